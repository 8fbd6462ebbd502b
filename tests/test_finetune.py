from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from shared.classifier import Classifier
from shared.config import Settings
from trainer.finetune import FinetuneConfig, finetune
from trainer.recipes import get_recipe
from trainer.training import train


@pytest.mark.parametrize("recipe_name", ["pooled", "pooled-street"])
def test_finetune_trains_the_last_block_and_saves_an_end_to_end_model(
    pattern_tree: Path, tmp_path: Path, settings: Settings, recipe_name: str
) -> None:
    recipe = replace(
        get_recipe(recipe_name), backbone="tiny", input_size=32, background_removal=None
    )
    base = train(pattern_tree, tmp_path / "base", recipe, settings=settings)
    before = Classifier.load(base.path, settings)
    result = finetune(
        base.path,
        pattern_tree,
        tmp_path / "tuned",
        FinetuneConfig(epochs=3, learning_rate=1e-3, patience=2),
        settings=settings,
    )
    assert 1 <= len(result.history["loss"]) <= 3
    assert result.metadata.weights_id.startswith(base.metadata.weights_id + "+finetuned:")
    assert result.metadata.recipe["finetune"]["metrics_before"] == base.metrics
    # fine-tuning again starts from the same frozen lower blocks: no chain of suffixes
    again = finetune(
        result.path, pattern_tree, tmp_path / "again", FinetuneConfig(epochs=1), settings=settings
    )
    assert again.metadata.weights_id.count("+finetuned:") == 1
    after = Classifier.load(result.path, settings)
    changed = [
        not np.allclose(a, b)
        for a, b in zip(
            before.model.get_layer("features").get_weights(),
            after.model.get_layer("features").get_weights(),
            strict=True,
        )
    ]
    assert any(changed), "the last block did not move"
    # The saved end-to-end model reproduces the metrics computed on cached maps.
    files = sorted(pattern_tree.rglob("*.jpg"))
    probs = after.predict(files)
    assert probs.shape == (len(files), 4)
    from shared.dataset import load_dataset

    dataset = load_dataset(pattern_tree)
    test = dataset.splits["test"]
    test_probs = after.predict([s.path for s in test])
    accuracy = float(np.mean(test_probs.argmax(1) == [s.label for s in test]))
    assert accuracy == pytest.approx(result.metrics["test"]["accuracy"])


def test_finetune_refuses_a_non_sequential_backbone(tmp_path: Path, settings: Settings) -> None:
    from shared.artifact import ModelMetadata

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.keras").write_bytes(b"")
    meta = ModelMetadata(
        class_names=["a", "b"],
        backbone="resnet50",
        weights_id="imagenet",
        input_size=224,
        taps=["last:avg"],
        preprocessing={"input_size": 224},
    )
    (tmp_path / "m" / "metadata.json").write_text(meta.model_dump_json())
    with pytest.raises(ValueError, match="fine-tuning supports"):
        finetune(tmp_path / "m", tmp_path, tmp_path / "out", settings=settings)


def test_finetune_if_better_keeps_the_better_model(
    pattern_tree: Path, tmp_path: Path, settings: Settings
) -> None:
    from trainer.finetune import finetune_if_better

    recipe = replace(get_recipe("pooled"), backbone="tiny", input_size=32, background_removal=None)
    base = train(pattern_tree, tmp_path / "m", recipe, settings=settings)
    result = finetune_if_better(
        base, pattern_tree, FinetuneConfig(epochs=2, learning_rate=1e-3), settings=settings
    )
    decision = (
        result.metadata.recipe.get("finetune", {}).get("decision")
        or result.metadata.recipe["finetune_decision"]
    )
    assert decision["kept"] == (decision["loss_after"] < decision["loss_before"])
    assert result.path == tmp_path / "m" and (result.path / "model.keras").is_file()
    assert Classifier.load(result.path, settings).predict(
        sorted(pattern_tree.rglob("*.jpg"))[:2]
    ).shape == (2, 4)
