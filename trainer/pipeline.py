"""The study's whole loop as one run: transfer learning, then tuning, then fine-tuning."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.config import Settings, get_settings
from shared.progress import ProgressFactory, silent
from trainer.finetune import FinetuneConfig, finetune
from trainer.recipes import Recipe, get_recipe
from trainer.training import TrainResult, train
from trainer.tuning import tune

# Called as each stage ends with its name, its model and its wall time in seconds.
StageCallback = Callable[[str, TrainResult, float], None]


@dataclass
class PipelineResult:
    trained: TrainResult
    tuned: TrainResult
    trials: list[dict[str, Any]]
    finetuned: TrainResult
    seconds: dict[str, float] = field(default_factory=dict)


def run_pipeline(
    data_dir: Path | str,
    out_dir: Path | str,
    *,
    base: Recipe | None = None,
    max_trials: int = 10,
    trial_epochs: int = 15,
    finetune_config: FinetuneConfig | None = None,
    seed: int = 0,
    settings: Settings | None = None,
    progress: ProgressFactory = silent,
    on_stage: StageCallback | None = None,
) -> PipelineResult:
    """``out_dir`` gets ``trained/``, ``tuned/`` (with ``tuner/`` state) and ``finetuned/``."""
    settings = settings or get_settings()
    base = base or get_recipe("study")
    out_dir = Path(out_dir)
    seconds: dict[str, float] = {}
    start = time.perf_counter()

    def done(name: str, result: TrainResult) -> None:
        nonlocal start
        seconds[name] = round(time.perf_counter() - start, 1)
        if on_stage:
            on_stage(name, result, seconds[name])
        start = time.perf_counter()

    trained = train(
        data_dir, out_dir / "trained", base, seed=seed, settings=settings, progress=progress
    )
    done("train", trained)
    tuned = tune(
        data_dir,
        out_dir / "tuned",
        base,
        directory=out_dir / "tuner",
        max_trials=max_trials,
        trial_epochs=trial_epochs,
        seed=seed,
        settings=settings,
        progress=progress,
    )
    done("tune", tuned.result)
    finetuned = finetune(
        tuned.result.path,
        data_dir,
        out_dir / "finetuned",
        finetune_config or FinetuneConfig(),
        settings=settings,
        progress=progress,
    )
    done("finetune", finetuned)
    return PipelineResult(trained, tuned.result, tuned.trials, finetuned, seconds)
