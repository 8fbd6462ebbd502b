from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from shared.artifact import ArtifactError
from shared.classifier import Classifier
from shared.config import Settings
from shared.dataset import load_dataset
from tests.fakes import ThresholdRemover
from trainer.recipes import get_recipe
from trainer.training import Stopwatch, extract_features, train

TINY = {"backbone": "tiny", "input_size": 32, "background_removal": None}


def tiny(name: str, **extra) -> object:
    return replace(get_recipe(name), **{**TINY, **extra})


def test_pooled_recipe_trains_saves_and_classifies(
    pattern_tree: Path, tmp_path: Path, settings: Settings
) -> None:
    result = train(pattern_tree, tmp_path / "model", tiny("pooled"), settings=settings)
    folder = result.path
    for name in (
        "model.keras",
        "metadata.json",
        "metrics.json",
        "c_sweep.png",
        "confusion_train.png",
        "confusion_validation.png",
        "confusion_test.png",
    ):
        assert (folder / name).is_file(), name
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["class_names"] == ["checkered", "dotted", "solid", "striped"]
    assert meta["preprocessing"]["input_size"] == 32
    assert meta["dataset"]["fingerprint"] == load_dataset(pattern_tree).fingerprint()
    assert set(meta["timings_s"]) >= {"scan dataset", "features", "fit head", "save"}
    for split in ("train", "validation", "test"):
        m = result.metrics[split]
        assert {
            "loss",
            "accuracy",
            "precision",
            "recall",
            "f1",
            "per_class",
            "confusion_matrix",
        } <= set(m)
    # Random tiny features still separate stripes from solids well above chance (25%).
    assert result.metrics["train"]["accuracy"] > 0.8
    assert result.metrics["validation"]["accuracy"] >= 0.5

    classifier = Classifier.load(folder, settings)
    files = sorted(pattern_tree.rglob("*.jpg"))
    probs = classifier.predict(files, batch_size=7)
    assert probs.shape == (len(files), 4)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    truth = np.array([classifier.class_names.index(f.parent.name) for f in files])
    assert np.mean(probs.argmax(1) == truth) > 0.7


def test_study_recipe_trains_a_dense_head_with_checkpointing(
    pattern_tree: Path, tmp_path: Path, settings: Settings
) -> None:
    result = train(pattern_tree, tmp_path / "study", tiny("study", epochs=4), settings=settings)
    assert len(result.history["loss"]) == 4
    assert 1 <= result.metadata.recipe["best_epoch"] <= 4
    best = result.metadata.recipe["best_epoch"] - 1
    assert result.history["val_loss"][best] == min(result.history["val_loss"])
    assert (result.path / "curves.png").is_file()


def test_features_are_cached_and_equal_to_fresh_ones(
    pattern_tree: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = load_dataset(pattern_tree)
    recipe = tiny("pooled", taps=("last:flatten",))
    first = extract_features(dataset, recipe, settings, 0, _silent, Stopwatch())
    calls = []
    original = type(first.job)._run
    monkeypatch.setattr(
        type(first.job),
        "_run",
        lambda self, batch: calls.append(len(batch)) or original(self, batch),
    )
    second = extract_features(dataset, recipe, settings, 0, _silent, Stopwatch())
    assert calls == []  # everything came from the cache
    for split in first.x:
        assert np.array_equal(first.x[split], second.x[split])
    # and the cache holds what the model computes from scratch
    fresh = replace(first.job, store=None).compute(dataset.splits["validation"])
    assert np.allclose(fresh, first.x["validation"], atol=1e-5)
    calls.clear()
    # a different tap set shares the pass: the cheap pooled taps were cached on the way
    pooled = extract_features(dataset, tiny("pooled"), settings, 0, _silent, Stopwatch())
    assert calls == [] and pooled.x["train"].shape[1] == 16 + 32


def test_training_on_cached_features_equals_training_end_to_end(
    pattern_tree: Path, settings: Settings
) -> None:
    import keras

    from shared.model import HeadConfig, assemble, build_head

    dataset = load_dataset(pattern_tree)
    fs = extract_features(dataset, tiny("study"), settings, 0, _silent, Stopwatch())
    config = HeadConfig(((16, "relu"),), dropout=0.0)
    y = keras.utils.to_categorical(fs.y["train"], 4)
    pixels = np.stack([fs.job.view_pixels(s, 0)[0] for s in dataset.splits["train"]])

    cached_head = build_head(fs.x["train"].shape[1], fs.segment_sizes, 4, config, seed=5)
    cached_head.compile(keras.optimizers.SGD(0.05), "categorical_crossentropy")
    cached_head.fit(fs.x["train"], y, epochs=2, batch_size=8, shuffle=False, verbose=0)

    naive_head = build_head(fs.x["train"].shape[1], fs.segment_sizes, 4, config, seed=5)
    features = keras.Model(fs.extractor.inputs, fs.extractor.get_layer("last_flatten").output)
    features.trainable = False
    naive = assemble(features, naive_head, 1, 32)
    naive.compile(keras.optimizers.SGD(0.05), "categorical_crossentropy")
    naive.fit(pixels.astype(np.float32), y, epochs=2, batch_size=8, shuffle=False, verbose=0)

    for a, b in zip(cached_head.get_weights(), naive_head.get_weights(), strict=True):
        assert np.allclose(a, b, atol=1e-4)


def test_augmented_copies_are_cached_per_copy(pattern_tree: Path, settings: Settings) -> None:
    dataset = load_dataset(pattern_tree)
    fs = extract_features(
        dataset, tiny("pooled", augment_copies=2), settings, 0, _silent, Stopwatch()
    )
    n = len(dataset.splits["train"])
    assert fs.x["train"].shape[0] == 3 * n
    assert fs.x["validation"].shape[0] == len(dataset.splits["validation"])
    # copy 0 is the plain image; copies 1 and 2 differ from it and from each other
    assert not np.allclose(fs.x["train"][0], fs.x["train"][1])
    assert not np.allclose(fs.x["train"][1], fs.x["train"][2])


def test_background_removal_and_views_flow_into_the_saved_model(
    pattern_tree: Path, tmp_path: Path, settings: Settings
) -> None:
    recipe = tiny("pooled-street", background_removal="u2netp")
    remover = ThresholdRemover(settings.cache_dir)
    result = train(pattern_tree, tmp_path / "street", recipe, settings=settings, remover=remover)
    assert remover.calls > 0
    meta = result.metadata
    assert meta.preprocessing["background_removal"] == "u2netp"
    assert meta.preprocessing["views"] == ["box", "upper"]
    model_inputs = Classifier.load(result.path, settings).model.inputs
    assert len(model_inputs) == 2


def test_loading_something_that_is_not_a_model_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not a Swatch model"):
        Classifier.load(tmp_path)


class _Bar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _silent(_desc: str, _total: int) -> _Bar:
    return _Bar()


def test_auto_keeps_the_better_candidate_on_validation(
    pattern_tree: Path, tmp_path: Path, settings: Settings
) -> None:
    from trainer.recipes import recipes_from_options
    from trainer.training import selection_score, train_best

    candidates = recipes_from_options(
        "auto", backbone="tiny", input_size=32, background_removal=False
    )
    # without background removal "pooled" and "pooled-nobg" are the same: trained once
    assert [c.name for c in candidates] == ["pooled", "pooled-street"]
    assert len(recipes_from_options("auto")) == 3
    result = train_best(pattern_tree, tmp_path / "best", candidates, settings=settings)
    selection = result.metadata.recipe["selection"]
    assert set(selection) == {"pooled", "pooled-street"}
    winner = max(
        selection,
        key=lambda n: (
            selection[n]["validation_balanced_accuracy"],
            -selection[n]["validation_loss"],
        ),
    )
    assert result.metadata.recipe["name"] == winner
    assert selection_score(result.metrics)[0] == selection[winner]["validation_balanced_accuracy"]
    saved = json.loads((tmp_path / "best" / "metadata.json").read_text())
    assert saved["recipe"]["selection"] == selection
    assert Classifier.load(tmp_path / "best", settings).class_names == result.dataset.class_names
