from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from shared.config import Settings
from trainer.recipes import get_recipe
from trainer.tuning import tune


def test_tuner_searches_the_study_space_and_resumes(
    pattern_tree: Path, tmp_path: Path, settings: Settings
) -> None:
    base = replace(
        get_recipe("study"), backbone="tiny", input_size=32, background_removal=None, epochs=3
    )
    first = tune(
        pattern_tree,
        tmp_path / "m1",
        base,
        directory=tmp_path / "tuner",
        max_trials=2,
        trial_epochs=2,
        settings=settings,
    )
    assert len(first.trials) == 2
    for trial in first.trials:
        assert 1 <= len(trial["dense_layers"]) <= 2
        units, activation = trial["dense_layers"][0]
        assert 32 <= units <= 512 and units % 32 == 0
        assert activation in {"relu", "sigmoid", "tanh", "elu", "selu"}
        assert trial["optimizer"] in {"adam", "rmsprop", "sgd"}
    losses = [t["val_loss"] for t in first.trials]
    assert losses == sorted(losses)
    best = first.trials[0]
    meta = first.result.metadata
    assert meta.recipe["head_config"]["dense_layers"] == best["dense_layers"]
    assert meta.recipe["optimizer"] == best["optimizer"]
    assert (first.result.path / "model.keras").is_file()

    # Same directory, more trials: the two finished ones are kept, one more runs.
    again = tune(
        pattern_tree,
        tmp_path / "m2",
        base,
        directory=tmp_path / "tuner",
        max_trials=3,
        trial_epochs=2,
        settings=settings,
    )
    assert len(again.trials) == 3
    assert {t["trial"] for t in first.trials} < {t["trial"] for t in again.trials}
