"""Keras-Tuner's Bayesian search over the study's head space, on cached features.

Space (Teslyuk & Ivasiv 2024): 1 or 2 dense layers of 32-512 units in steps of 32,
activation relu/sigmoid/tanh/elu/selu, dropout 0.5 after each, optimizer adam/rmsprop/sgd;
objective val_loss. The tuner's state lives in ``directory``: a search that was interrupted
resumes where it stopped. The best configuration is then trained in full (checkpoint on
val_loss) and saved like any model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from shared.artifact import write_metadata
from shared.config import Settings, get_settings
from shared.dataset import load_dataset
from shared.model import HeadConfig, build_head
from shared.progress import ProgressFactory, silent
from trainer.recipes import ACTIVATIONS, Recipe
from trainer.training import (
    Stopwatch,
    TrainResult,
    balanced_class_weights,
    extract_features,
    train,
)

OPTIMIZERS = ("adam", "rmsprop", "sgd")


@dataclass
class TuneResult:
    result: TrainResult
    trials: list[dict[str, Any]]  # every finished trial, best first
    timings: dict[str, float]


def _config(values: dict[str, Any]) -> tuple[tuple[tuple[int, str], ...], str]:
    # A unit count first registered during a trial's build is missing from that trial's
    # values; the build used the range's minimum then, as hp.Int does.
    layers = tuple(
        (int(values.get(f"units_{i}", 32)), values["activation"])
        for i in range(int(values["layers"]))
    )
    return layers, values["optimizer"]


def tune(
    data_dir: Path | str,
    out: Path | str,
    base: Recipe,
    *,
    directory: Path,
    max_trials: int = 10,
    trial_epochs: int = 15,
    seed: int = 0,
    settings: Settings | None = None,
    progress: ProgressFactory = silent,
) -> TuneResult:
    import keras
    import keras_tuner

    settings = settings or get_settings()
    watch = Stopwatch()
    with watch.stage("scan dataset"):
        dataset = load_dataset(data_dir, seed=seed, max_pixels=settings.max_image_pixels)
    fs = extract_features(dataset, base, settings, seed, progress, watch)
    n_classes = len(dataset.class_names)
    normalize = base.head_config.normalize

    def build(hp: Any) -> Any:
        n_layers = hp.Int("layers", 1, 2)
        activation = hp.Choice("activation", list(ACTIVATIONS))
        dense = tuple((hp.Int(f"units_{i}", 32, 512, step=32), activation) for i in range(n_layers))
        head = build_head(
            fs.x["train"].shape[1],
            fs.segment_sizes,
            n_classes,
            HeadConfig(dense, 0.5, normalize),
            seed,
        )
        optimizer = {
            "adam": keras.optimizers.Adam,
            "rmsprop": keras.optimizers.RMSprop,
            "sgd": keras.optimizers.SGD,
        }[hp.Choice("optimizer", list(OPTIMIZERS))]
        head.compile(
            optimizer=optimizer(learning_rate=base.learning_rate),
            loss="categorical_crossentropy",
            metrics=["accuracy"],
        )
        return head

    bar = progress("tuner trials", max_trials)

    class Tuner(keras_tuner.BayesianOptimization):
        def on_trial_end(self, trial: Any) -> None:
            super().on_trial_end(trial)
            bar.update()

    tuner = Tuner(
        build,
        objective="val_loss",
        max_trials=max_trials,
        seed=seed,
        directory=str(directory),
        project_name="search",
        overwrite=False,
    )
    done_before = len([t for t in tuner.oracle.trials.values() if t.status == "COMPLETED"])
    bar.update(done_before)
    y = {s: keras.utils.to_categorical(fs.y[s], n_classes) for s in ("train", "validation")}
    with watch.stage("search"):
        tuner.search(
            fs.x["train"],
            y["train"],
            validation_data=(fs.x["validation"], y["validation"]),
            epochs=trial_epochs,
            batch_size=base.batch_size,
            verbose=0,
            class_weight=balanced_class_weights(fs.y["train"], n_classes)
            if base.class_weight
            else None,
        )
    bar.close()
    trials = []
    finished = [
        t
        for t in tuner.oracle.get_best_trials(num_trials=max_trials)
        if t.status == "COMPLETED" and t.score is not None
    ]
    for trial in finished:
        dense, optimizer = _config(trial.hyperparameters.values)
        trials.append(
            {
                "trial": trial.trial_id,
                "dense_layers": [list(d) for d in dense],
                "optimizer": optimizer,
                "val_loss": float(trial.score)
                if trial.score is not None and np.isfinite(trial.score)
                else None,
            }
        )
    if not trials:
        raise RuntimeError("the tuner finished no trial")
    best = finished[0].hyperparameters.values
    dense, optimizer = _config(best)
    recipe = replace(
        base,
        name=f"{base.name}-tuned",
        head="dense",
        head_config=HeadConfig(dense, 0.5, normalize),
        optimizer=optimizer,
    )
    result = train(
        data_dir, out, recipe, seed=seed, settings=settings, progress=progress, dataset=dataset
    )
    result.metadata.recipe["tuner_trials"] = trials
    write_metadata(result.path, result.metadata)
    timings = {**watch.timings, **{f"final {k}": v for k, v in result.timings.items()}}
    return TuneResult(result, trials, timings)
