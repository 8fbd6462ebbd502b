"""Fine-tuning: unfreeze the backbone's last block, train it with the head at a low rate.

Everything below the last block stays frozen, so its output (VGG16: block 4's pooled maps)
is cached like any other feature and each epoch runs only the last block and the head: on
a 2-core CPU a full VGG16 pass at 356 px costs about 0.15-0.36 s per image, far too much to
repeat every epoch. The layers trained are the saved model's own layer objects, so the
fine-tuned weights land in the end-to-end model that is saved.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shared.artifact import MODEL_FILE, read_metadata, save_artifact, write_metadata
from shared.augment import Augmentation
from shared.backbones import get_backbone, resolve_weights
from shared.background import BackgroundRemover
from shared.config import Settings, get_settings
from shared.dataset import load_dataset
from shared.features import FeatureJob, FeatureKey, FeatureStore
from shared.model import build_feature_extractor, parse_tap
from shared.preprocessing import Preprocessing
from shared.progress import ProgressFactory, silent
from trainer.evaluation import compute_metrics
from trainer.training import Stopwatch, TrainResult, balanced_class_weights

SEQUENTIAL_BACKBONES = ("vgg16", "vgg19", "tiny")
FINETUNED = "+finetuned:"


def base_weights_id(weights_id: str) -> str:
    """The pretrained weights a (possibly fine-tuned) model started from."""
    return weights_id.split(FINETUNED, 1)[0]


@dataclass(frozen=True)
class FinetuneConfig:
    epochs: int = 50
    learning_rate: float = 1e-5
    batch_size: int = 32
    patience: int = 5
    augment_copies: int = 0
    class_weight: bool = True


def _last_block(features: Any, prefix: str) -> tuple[Any, list[Any]]:
    """The backbone inside the features model, and its last block's layers in order."""
    backbone = next(layer for layer in features.layers if layer.name.endswith("_taps"))
    block = [layer for layer in backbone.layers if layer.name.startswith(prefix)]
    if not block:
        raise ValueError(f"no layers named {prefix}* in the backbone")
    return backbone, block


def _trainable_model(model: Any, meta: Any, input_shape: tuple[int, ...]) -> Any:
    """Cached maps below the last block -> last block -> taps -> head, per view."""
    import keras
    from keras import layers

    spec = get_backbone(meta.backbone)
    features = model.get_layer("features")
    head = model.get_layer("head")
    _, block = _last_block(features, spec.last_block_prefix)
    for layer in block:
        layer.trainable = True
    pools = {
        "avg": layers.GlobalAveragePooling2D,
        "max": layers.GlobalMaxPooling2D,
        "flatten": layers.Flatten,
    }
    n_views = len(meta.preprocessing["views"])
    inputs = [keras.Input(input_shape, name=f"below_{v}") for v in range(n_views)]
    parts = []
    for below in inputs:
        x = below
        for layer in block:
            x = layer(x)
        for tap in meta.taps:
            where, pooling = parse_tap(tap)
            parts.append(pools[pooling]()(x if where == "last" else below))
    x = layers.Concatenate()(parts) if len(parts) > 1 else parts[0]
    return keras.Model(inputs, head(x), name="finetune")


def finetune(
    model_dir: Path | str,
    data_dir: Path | str,
    out: Path | str,
    config: FinetuneConfig = FinetuneConfig(),
    *,
    settings: Settings | None = None,
    progress: ProgressFactory = silent,
    remover: BackgroundRemover | None = None,
) -> TrainResult:
    import keras

    import shared.layers  # noqa: F401  (custom layers for load_model)

    settings = settings or get_settings()
    watch = Stopwatch()
    meta = read_metadata(Path(model_dir))
    spec = get_backbone(meta.backbone)
    if spec.name not in SEQUENTIAL_BACKBONES:
        raise ValueError(
            f"fine-tuning supports {', '.join(SEQUENTIAL_BACKBONES)}; this model uses {spec.name}"
        )
    seed = int(meta.recipe.get("seed", 0))
    with watch.stage("scan dataset"):
        dataset = load_dataset(data_dir, seed=seed, max_pixels=settings.max_image_pixels)
    if dataset.class_names != meta.class_names:
        raise ValueError(
            f"the data's classes {dataset.class_names} are not the model's {meta.class_names}"
        )
    with watch.stage("load model"):
        model = keras.models.load_model(Path(model_dir) / MODEL_FILE, compile=False)
        weights = resolve_weights(spec, settings.backbone_weights)
        below = build_feature_extractor(spec, weights, meta.input_size, ("mid:flatten",))
    prep = Preprocessing.from_dict(meta.preprocessing)
    if remover is None and prep.background_removal:
        remover = BackgroundRemover(
            prep.background_removal, settings.u2net_home, settings.cache_dir
        )
    job = FeatureJob(
        below,
        ("mid:flatten",),
        # The blocks below the last are frozen, so a fine-tuned model's maps are the base's.
        FeatureKey(spec.name, base_weights_id(meta.weights_id)),
        prep,
        FeatureStore(settings.cache_dir),
        remover,
        Augmentation() if config.augment_copies else None,
        seed,
    )
    map_shape = tuple(int(d) for d in below.get_layer("mid_flatten").input.shape[1:])
    n_views = len(prep.views)
    x, y = {}, {}
    with watch.stage("features"):
        for split, samples in dataset.splits.items():
            copies = config.augment_copies if split == "train" else 0
            flat = job.compute(samples, copies, lambda d, t, s=split: progress(f"{d} ({s})", t))
            size = int(np.prod(map_shape))
            x[split] = [
                flat[:, v * size : (v + 1) * size].reshape((-1, *map_shape)) for v in range(n_views)
            ]
            y[split] = np.repeat(np.array([s.label for s in samples]), copies + 1)

    trainable = _trainable_model(model, meta, map_shape)
    n_classes = len(meta.class_names)
    trainable.compile(
        optimizer=keras.optimizers.RMSprop(config.learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    has_val = len(y["validation"]) > 0
    monitor = "val_loss" if has_val else "loss"
    bar = progress("fine-tune epochs", config.epochs)

    class _Bar(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            bar.update()

    def inputs(split: str) -> Any:
        return x[split] if n_views > 1 else x[split][0]

    with tempfile.TemporaryDirectory() as tmp, watch.stage("fine-tune"):
        best = Path(tmp) / "best.weights.h5"
        history = trainable.fit(
            inputs("train"),
            keras.utils.to_categorical(y["train"], n_classes),
            validation_data=(
                inputs("validation"),
                keras.utils.to_categorical(y["validation"], n_classes),
            )
            if has_val
            else None,
            epochs=config.epochs,
            batch_size=config.batch_size,
            shuffle=True,
            verbose=0,
            class_weight=balanced_class_weights(y["train"], n_classes)
            if config.class_weight
            else None,
            callbacks=[
                keras.callbacks.ModelCheckpoint(
                    best, monitor=monitor, save_best_only=True, save_weights_only=True
                ),
                keras.callbacks.EarlyStopping(monitor=monitor, patience=config.patience),
                _Bar(),
            ],
        )
        bar.close()
        trainable.load_weights(best)  # shared layers: the full model now holds them too
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    best_epoch = int(np.argmin(hist[monitor])) + 1

    with watch.stage("evaluate"):
        metrics = {}
        for split in ("train", "validation", "test"):
            if not len(y[split]):
                continue
            stride = config.augment_copies + 1 if split == "train" else 1
            probs = np.asarray(
                trainable.predict(
                    [a[::stride] for a in x[split]] if n_views > 1 else x[split][0][::stride],
                    batch_size=64,
                    verbose=0,
                )
            )
            metrics[split] = compute_metrics(y[split][::stride], probs, meta.class_names)

    with watch.stage("save"):
        digest = hashlib.sha256()
        for layer in _last_block(model.get_layer("features"), spec.last_block_prefix)[1]:
            for w in layer.get_weights():
                digest.update(np.ascontiguousarray(w).tobytes())
        meta = meta.model_copy(deep=True)
        meta.weights_id = f"{base_weights_id(meta.weights_id)}{FINETUNED}{digest.hexdigest()[:16]}"
        meta.recipe = {
            **meta.recipe,
            "finetune": {
                **config.__dict__,
                "best_epoch": best_epoch,
                "history": hist,
                "from_model": str(model_dir),
                "metrics_before": meta.metrics,
            },
        }
        meta.metrics = metrics
        meta.timings_s = dict(watch.timings)
        save_artifact(Path(out), model, meta)
    return TrainResult(Path(out), meta, metrics, dict(watch.timings), dataset, hist)


def finetune_if_better(
    result: TrainResult,
    data_dir: Path | str,
    config: FinetuneConfig,
    *,
    settings: Settings | None = None,
    progress: ProgressFactory = silent,
) -> TrainResult:
    """Fine-tune a freshly trained model in place; keep it only if the validation loss drops.

    Loss, not accuracy: fine-tuning optimises and checkpoints on it (as the study did), and
    on a validation split of a few hundred images accuracy moves by single images.
    """
    import shutil

    if result.metadata.backbone not in SEQUENTIAL_BACKBONES:
        return _not_finetuned(result, {"kept": False, "reason": "backbone not supported"})
    split = "validation" if "validation" in result.metrics else "train"
    before = result.metrics[split]
    with tempfile.TemporaryDirectory(dir=result.path.parent) as tmp:
        tuned = finetune(
            result.path, data_dir, Path(tmp) / "tuned", config, settings=settings, progress=progress
        )
        after = tuned.metrics[split]
        keep = after["loss"] < before["loss"]
        summary = {
            "split": split,
            "kept": keep,
            "loss_before": before["loss"],
            "loss_after": after["loss"],
            "balanced_accuracy_before": before["balanced_accuracy"],
            "balanced_accuracy_after": after["balanced_accuracy"],
        }
        if keep:
            tuned.metadata.recipe["finetune"]["decision"] = summary
            write_metadata(tuned.path, tuned.metadata)
            shutil.rmtree(result.path)
            shutil.move(str(tuned.path), result.path)
            tuned.path = result.path
            tuned.timings = {
                **result.timings,
                **{f"finetune {k}": v for k, v in tuned.timings.items()},
            }
            return tuned
    return _not_finetuned(result, summary)


def _not_finetuned(result: TrainResult, decision: dict[str, Any]) -> TrainResult:
    result.metadata.recipe["finetune_decision"] = decision
    write_metadata(result.path, result.metadata)
    return result
