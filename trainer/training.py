"""Training a pattern model on cached frozen-backbone features, end to end."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shared.artifact import ModelMetadata, save_artifact, write_metadata
from shared.augment import Augmentation
from shared.backbones import get_backbone, resolve_weights, weights_id
from shared.background import BackgroundRemover
from shared.config import Settings, get_settings
from shared.dataset import Dataset, class_counts, load_dataset
from shared.features import FeatureJob, FeatureKey, FeatureStore
from shared.model import CHEAP_TAPS, assemble, build_feature_extractor, build_head, tap_dims
from shared.preprocessing import Preprocessing
from shared.progress import ProgressFactory, silent
from trainer.evaluation import compute_metrics
from trainer.plots import plot_confusion, plot_history, plot_sweep
from trainer.recipes import Recipe

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    path: Path
    metadata: ModelMetadata
    metrics: dict[str, dict[str, Any]]
    timings: dict[str, float]
    dataset: Dataset
    history: dict[str, list[float]] = field(default_factory=dict)


class Stopwatch:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - start, 3)


def balanced_class_weights(labels: np.ndarray, n_classes: int) -> dict[int, float]:
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = len(labels) / (present.sum() * counts[present])
    return {i: float(w) for i, w in enumerate(weights)}


@dataclass
class FeatureSet:
    """Everything the head trains and is judged on: features and labels per split."""

    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    segment_sizes: list[int]
    extractor: Any
    job: FeatureJob


def extract_features(
    dataset: Dataset,
    recipe: Recipe,
    settings: Settings,
    seed: int,
    progress: ProgressFactory,
    watch: Stopwatch,
    remover: BackgroundRemover | None = None,
) -> FeatureSet:
    spec = get_backbone(recipe.backbone)
    weights = resolve_weights(spec, settings.backbone_weights)
    prep = Preprocessing(recipe.input_size, recipe.background_removal, views=recipe.views)
    cache_taps = tuple(dict.fromkeys(recipe.taps + CHEAP_TAPS))
    with watch.stage("load backbone"):
        extractor = build_feature_extractor(spec, weights, recipe.input_size, cache_taps)
    if remover is None and recipe.background_removal:
        remover = BackgroundRemover(
            recipe.background_removal, settings.u2net_home, settings.cache_dir
        )
    job = FeatureJob(
        extractor,
        cache_taps,
        FeatureKey(spec.name, weights_id(weights)),
        prep,
        FeatureStore(settings.cache_dir),
        remover,
        Augmentation() if recipe.augment_copies else None,
        seed,
        wanted=recipe.taps,
    )
    x, y = {}, {}
    with watch.stage("features"):
        for split, samples in dataset.splits.items():
            copies = recipe.augment_copies if split == "train" else 0
            x[split] = job.compute(
                samples, copies, lambda desc, total, s=split: progress(f"{desc} ({s})", total)
            )
            y[split] = np.repeat(np.array([s.label for s in samples], dtype=np.int64), copies + 1)
    dims = dict(zip(cache_taps, tap_dims(extractor), strict=True))
    sizes = [dims[t] for _ in recipe.views for t in recipe.taps]
    return FeatureSet(x, y, sizes, extractor, job)


def fit_dense_head(
    recipe: Recipe,
    fs: FeatureSet,
    n_classes: int,
    seed: int,
    progress: ProgressFactory,
    workdir: Path,
) -> tuple[Any, dict, int]:
    import keras

    keras.utils.set_random_seed(seed)
    head = build_head(fs.x["train"].shape[1], fs.segment_sizes, n_classes, recipe.head_config, seed)
    optimizers = {
        "rmsprop": keras.optimizers.RMSprop,
        "adam": keras.optimizers.Adam,
        "sgd": keras.optimizers.SGD,
    }
    head.compile(
        optimizer=optimizers[recipe.optimizer](learning_rate=recipe.learning_rate),
        loss="categorical_crossentropy",
        metrics=[
            "accuracy",
            keras.metrics.Precision(name="precision"),
            keras.metrics.Recall(name="recall"),
        ],
    )
    has_val = len(fs.y.get("validation", [])) > 0
    monitor = "val_loss" if has_val else "loss"
    best = workdir / "best.weights.h5"
    bar = progress("epochs", recipe.epochs)

    class _Bar(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            bar.update()

    y_train = keras.utils.to_categorical(fs.y["train"], n_classes)
    validation = (
        (fs.x["validation"], keras.utils.to_categorical(fs.y["validation"], n_classes))
        if has_val
        else None
    )
    history = head.fit(
        fs.x["train"],
        y_train,
        validation_data=validation,
        epochs=recipe.epochs,
        batch_size=recipe.batch_size,
        verbose=0,
        shuffle=True,
        class_weight=(
            balanced_class_weights(fs.y["train"], n_classes) if recipe.class_weight else None
        ),
        callbacks=[
            keras.callbacks.ModelCheckpoint(
                best, monitor=monitor, save_best_only=True, save_weights_only=True
            ),
            _Bar(),
        ],
    )
    bar.close()
    head.load_weights(best)
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    best_epoch = int(np.argmin(hist[monitor])) + 1
    return head, hist, best_epoch


def fit_logreg_head(
    recipe: Recipe,
    fs: FeatureSet,
    n_classes: int,
    seed: int,
    progress: ProgressFactory,
    workdir: Path,
) -> tuple[Any, dict, int]:
    """Pick C on validation, then copy the fitted regression into the Keras head."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score, log_loss

    head = build_head(fs.x["train"].shape[1], fs.segment_sizes, n_classes, recipe.head_config, seed)
    normalize = head.get_layer("ssqrt_l2") if recipe.head_config.normalize else None

    def transform(x: np.ndarray) -> np.ndarray:
        return np.asarray(normalize(x)) if normalize is not None else x

    z_train = transform(fs.x["train"])
    z_val = transform(fs.x["validation"]) if len(fs.y["validation"]) else None
    sweep: dict[str, list[float]] = {
        "train_accuracy": [],
        "val_balanced_accuracy": [],
        "val_loss": [],
    }
    best, best_score = None, None
    bar = progress("logistic regression C", len(recipe.logreg_c))
    for c in recipe.logreg_c:
        model = LogisticRegression(
            C=c,
            max_iter=3000,
            random_state=seed,
            class_weight="balanced" if recipe.class_weight else None,
        )
        model.fit(z_train, fs.y["train"])
        sweep["train_accuracy"].append(float(model.score(z_train, fs.y["train"])))
        if z_val is not None:
            probs = model.predict_proba(z_val)
            # Balanced accuracy (mean per-class recall): on unbalanced data plain accuracy
            # rewards predicting the big class; on balanced data the two are the same.
            acc = float(
                balanced_accuracy_score(fs.y["validation"], model.classes_[probs.argmax(1)])
            )
            loss = float(log_loss(fs.y["validation"], probs, labels=model.classes_))
            sweep["val_balanced_accuracy"].append(acc)
            sweep["val_loss"].append(loss)
            score = (acc, -loss)
        else:
            score = (-abs(np.log10(c)), 0.0)  # no validation: the middle of the grid
        if best_score is None or score > best_score:
            best, best_score = model, score
        bar.update()
    bar.close()
    # A class missing from training gets a bias that keeps it improbable, not a crash.
    kernel = np.zeros((z_train.shape[1], n_classes), np.float32)
    bias = np.full(n_classes, -30.0, np.float32)
    coef = best.coef_ if len(best.classes_) > 2 else np.vstack([-best.coef_, best.coef_]) / 2
    intercept = (
        best.intercept_
        if len(best.classes_) > 2
        else np.array([-best.intercept_[0], best.intercept_[0]]) / 2
    )
    for row, cls in enumerate(best.classes_):
        kernel[:, cls] = coef[row]
        bias[cls] = intercept[row]
    head.get_layer("probabilities").set_weights([kernel, bias])
    sweep["C"] = [float(c) for c in recipe.logreg_c]
    sweep["chosen_C"] = [float(best.C)]
    return head, sweep, 0


def _check_end_to_end(
    model: Any, head: Any, fs: FeatureSet, dataset: Dataset, train_stride: int
) -> float:
    """The assembled model on pixels must agree with the head on cached features."""
    split = "validation" if dataset.splits.get("validation") else "train"
    samples = dataset.splits[split][:2]
    pixels = [fs.job.view_pixels(s, 0) for s in samples]
    n_views = len(fs.job.prep.views)
    inputs = [np.stack([p[v] for p in pixels]).astype(np.float32) for v in range(n_views)]
    direct = np.asarray(model.predict(inputs if n_views > 1 else inputs[0], verbose=0))
    stride = train_stride if split == "train" else 1
    cached = np.asarray(head.predict(fs.x[split][::stride][: len(samples)], verbose=0))
    return float(np.max(np.abs(direct - cached)))


def train(
    data_dir: Path | str,
    out: Path | str,
    recipe: Recipe,
    *,
    seed: int = 0,
    settings: Settings | None = None,
    progress: ProgressFactory = silent,
    remover: BackgroundRemover | None = None,
    dataset: Dataset | None = None,
) -> TrainResult:
    """Train ``recipe`` on ``data_dir`` and save the model to ``out``.

    ``remover`` replaces the rembg remover the recipe would make (tests use a stand-in);
    ``dataset`` is ``data_dir`` already scanned with this seed (every file is decoded once).
    """
    import keras

    settings = settings or get_settings()
    out = Path(out)
    watch = Stopwatch()
    with watch.stage("scan dataset"):
        if dataset is None:
            dataset = load_dataset(data_dir, seed=seed, max_pixels=settings.max_image_pixels)
    n_classes = len(dataset.class_names)
    if len(set(class_counts(dataset.splits["train"], n_classes)) - {0}) == 0:
        raise ValueError("no training images")
    fs = extract_features(dataset, recipe, settings, seed, progress, watch, remover)

    with tempfile.TemporaryDirectory() as tmp, watch.stage("fit head"):
        fit = fit_logreg_head if recipe.head == "logreg" else fit_dense_head
        head, history, best_epoch = fit(recipe, fs, n_classes, seed, progress, Path(tmp))

    with watch.stage("evaluate"):
        metrics = {}
        for split in ("train", "validation", "test"):
            if not len(fs.y.get(split, [])):
                continue
            stride = recipe.augment_copies + 1 if split == "train" else 1
            x, y = fs.x[split][::stride], fs.y[split][::stride]
            probs = np.asarray(head.predict(x, batch_size=256, verbose=0))
            metrics[split] = compute_metrics(y, probs, dataset.class_names)

    with watch.stage("save"):
        features = keras.Model(
            fs.extractor.inputs,
            [fs.extractor.get_layer(t.replace(":", "_")).output for t in recipe.taps],
            name="features",
        )
        features.trainable = False
        model = assemble(features, head, len(recipe.views), recipe.input_size)
        drift = _check_end_to_end(model, head, fs, dataset, recipe.augment_copies + 1)
        if drift > 1e-3:
            raise RuntimeError(f"end-to-end model disagrees with cached features by {drift:.2e}")
        plots_dir = Path(tempfile.mkdtemp())
        extra = {"metrics.json": plots_dir / "metrics.json"}
        (plots_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        if recipe.head == "dense":
            extra["curves.png"] = plot_history(
                history,
                plots_dir / "curves.png",
                f"{recipe.name} on {dataset.root.name}",
                best_epoch,
            )
        else:
            extra["c_sweep.png"] = plot_sweep(
                history["C"],
                {k: history[k] for k in ("train_accuracy", "val_balanced_accuracy") if history[k]},
                plots_dir / "c_sweep.png",
                f"{recipe.name} on {dataset.root.name}",
                "logistic regression C",
            )
        for split, m in metrics.items():
            extra[f"confusion_{split}.png"] = plot_confusion(
                m["confusion_matrix"],
                dataset.class_names,
                plots_dir / f"confusion_{split}.png",
                f"{split} ({m['accuracy']:.1%} accurate)",
            )
        metadata = ModelMetadata(
            class_names=dataset.class_names,
            backbone=recipe.backbone,
            weights_id=fs.job.key.weights_id,
            input_size=recipe.input_size,
            taps=list(recipe.taps),
            preprocessing=fs.job.prep.to_dict(),
            recipe={**recipe.to_dict(), "seed": seed, "best_epoch": best_epoch, "history": history},
            metrics=metrics,
            dataset={
                "root": str(dataset.root),
                "fingerprint": dataset.fingerprint(),
                "counts": dataset.counts(),
                "skipped": len(dataset.skipped),
                "duplicates": dataset.duplicates,
                "presplit": dataset.presplit,
            },
            versions={"keras": keras.__version__, "swatch": _swatch_version()},
        )
        metadata.timings_s = dict(watch.timings)
        save_artifact(out, model, metadata, extra)
    metadata.timings_s = dict(watch.timings)
    write_metadata(out, metadata)
    return TrainResult(out, metadata, metrics, dict(watch.timings), dataset, history)


def _swatch_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("swatch")
    except PackageNotFoundError:
        return "dev"


def selection_score(metrics: dict[str, dict[str, Any]]) -> tuple[float, float]:
    """Validation balanced accuracy, ties to the lower loss (train split when no validation)."""
    m = metrics.get("validation") or metrics["train"]
    return (m["balanced_accuracy"], -m["loss"])


def train_best(
    data_dir: Path | str,
    out: Path | str,
    recipes: list[Recipe],
    *,
    seed: int = 0,
    settings: Settings | None = None,
    progress: ProgressFactory = silent,
    remover: BackgroundRemover | None = None,
) -> TrainResult:
    """Train each recipe on the same split; keep the best on validation at ``out``."""
    if len(recipes) == 1:
        return train(
            data_dir,
            out,
            recipes[0],
            seed=seed,
            settings=settings,
            progress=progress,
            remover=remover,
        )
    out = Path(out)
    settings = settings or get_settings()
    dataset = load_dataset(data_dir, seed=seed, max_pixels=settings.max_image_pixels)
    results = []
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
        for recipe in recipes:
            results.append(
                train(
                    data_dir,
                    Path(tmp) / recipe.name,
                    recipe,
                    seed=seed,
                    settings=settings,
                    progress=progress,
                    remover=remover,
                    dataset=dataset,
                )
            )
        best = max(results, key=lambda r: selection_score(r.metrics))
        best.metadata.recipe["selection"] = {
            r.metadata.recipe["name"]: {
                "validation_balanced_accuracy": selection_score(r.metrics)[0],
                "validation_loss": -selection_score(r.metrics)[1],
            }
            for r in results
        }
        write_metadata(best.path, best.metadata)
        if out.exists():
            shutil.rmtree(out)
        shutil.move(str(best.path), out)
    best.path = out
    best.timings = {
        f"{r.metadata.recipe['name']}: {k}": v for r in results for k, v in r.timings.items()
    }
    return best
