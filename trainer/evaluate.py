"""Judging a saved model on a folder of labelled images, through the feature cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from shared.background import BackgroundRemover
from shared.classifier import Classifier
from shared.config import Settings, get_settings
from shared.dataset import load_dataset
from shared.features import FeatureJob, FeatureKey, FeatureStore
from shared.progress import ProgressFactory, silent
from trainer.evaluation import compute_metrics


def evaluate_model(
    model_path: Path,
    data_dir: Path,
    split: str = "all",
    seed: int | None = None,
    settings: Settings | None = None,
    progress: ProgressFactory = silent,
) -> dict[str, dict[str, Any]]:
    """Metrics per split. The model's own sub-models run the images, so the result is the
    saved model's; features it has seen before come from the cache."""
    settings = settings or get_settings()
    classifier = Classifier.load(model_path, settings)
    meta = classifier.metadata
    dataset = load_dataset(
        data_dir,
        seed=meta.recipe.get("seed", 0) if seed is None else seed,
        max_pixels=settings.max_image_pixels,
    )
    unknown = sorted(set(dataset.class_names) - set(meta.class_names))
    if unknown:
        raise ValueError(
            f"the model does not know the classes {unknown}; it knows {meta.class_names}"
        )
    to_model = [meta.class_names.index(name) for name in dataset.class_names]
    remover = (
        BackgroundRemover(
            classifier.prep.background_removal, settings.u2net_home, settings.cache_dir
        )
        if classifier.prep.background_removal
        else None
    )
    taps = tuple(meta.taps)
    job = FeatureJob(
        classifier.model.get_layer("features"),
        taps,
        FeatureKey(meta.backbone, meta.weights_id),
        classifier.prep,
        FeatureStore(settings.cache_dir),
        remover,
    )
    head = classifier.model.get_layer("head")
    if split == "all":
        chosen = {"all": [s for samples in dataset.splits.values() for s in samples]}
    else:
        chosen = {split: dataset.splits[split]}
    results = {}
    for name, samples in chosen.items():
        if not samples:
            continue
        x = job.compute(samples, 0, progress)
        probs = np.asarray(head.predict(x, batch_size=256, verbose=0))
        y = np.array([to_model[s.label] for s in samples])
        results[name] = compute_metrics(y, probs, meta.class_names)
    return results
