from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from shared.config import Settings
from trainer.compare import compare, comparison_table
from trainer.finetune import FinetuneConfig
from trainer.pipeline import run_pipeline
from trainer.recipes import get_recipe


def test_compare_trains_what_has_weights_and_skips_the_rest(
    pattern_tree: Path, tmp_path: Path, settings: Settings
) -> None:
    base = replace(get_recipe("compare"), input_size=32, background_removal=None, epochs=2)
    rows = compare(
        pattern_tree, tmp_path, backbones=("tiny", "vgg19"), base=base, settings=settings
    )
    assert rows[0]["backbone"] == "tiny" and rows[0]["status"] == "trained"
    assert 0 <= rows[0]["test_accuracy"] <= 1
    assert rows[1] == {
        "backbone": "vgg19",
        "status": "skipped",
        "reason": "no pretrained weights configured",
    }
    table = comparison_table(rows)
    assert "skipped: no pretrained weights" in table


def test_pipeline_trains_tunes_and_finetunes(
    pattern_tree: Path, tmp_path: Path, settings: Settings
) -> None:
    base = replace(
        get_recipe("study"), backbone="tiny", input_size=32, background_removal=None, epochs=2
    )
    stages = []
    result = run_pipeline(
        pattern_tree,
        tmp_path / "p",
        base=base,
        max_trials=2,
        trial_epochs=1,
        finetune_config=FinetuneConfig(epochs=1),
        settings=settings,
        on_stage=lambda name, r, seconds: stages.append(name),
    )
    assert stages == ["train", "tune", "finetune"]
    for folder in ("trained", "tuned", "finetuned"):
        assert (tmp_path / "p" / folder / "model.keras").is_file()
    assert result.finetuned.metadata.recipe["finetune"]["from_model"].endswith("tuned")
    assert len(result.trials) == 2
    assert set(result.seconds) == {"train", "tune", "finetune"}
    assert all(s > 0 for s in result.seconds.values())
