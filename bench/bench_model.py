"""Classifier throughput on this machine's CPU (or GPU), against the raw model.

    python -m bench.bench_model [--model PATH] [--images N]

Prints images/s at batch 1 and 32 for the raw Keras model on ready arrays and for
``Classifier.predict`` on decoded photos (resizing, views, batching: our overhead), their
ratio, rembg seconds per image, and peak memory. Uses the real VGG16 weights and u2netp
from ../shared when present; without them it says so and measures the same code paths.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARED = Path(__file__).resolve().parents[2] / "shared"
WEIGHTS = SHARED / "models" / "vgg16_imagenet_notop.weights.h5"


def _images(n: int) -> list:
    from shared.images import load_image

    folder = SHARED / "datasets" / "dress-patterns"
    if folder.is_dir():
        files = sorted(folder.rglob("*.jpg"))[:: max(1, 2000 // n)][:n]
        return [load_image(f)[0] for f in files]
    from tests.patterns import PATTERNS, draw_pattern

    return [draw_pattern(PATTERNS[i % 4], i, size=256) for i in range(n)]


def _default_model(settings):
    """A study-shaped model (VGG16 356 px, Flatten, Dense 384, softmax), untrained head."""
    from shared.artifact import ModelMetadata
    from shared.backbones import get_backbone, resolve_weights, weights_id
    from shared.classifier import Classifier
    from shared.model import HeadConfig, assemble, build_feature_extractor, build_head, tap_dims
    from shared.preprocessing import Preprocessing

    spec = get_backbone("vgg16")
    weights = resolve_weights(spec, settings.backbone_weights)
    features = build_feature_extractor(spec, weights, 356, ("last:flatten",))
    dims = tap_dims(features)
    head = build_head(sum(dims), dims, 6, HeadConfig())
    prep = Preprocessing(356, background_removal=None)
    meta = ModelMetadata(
        class_names=[f"c{i}" for i in range(6)],
        backbone="vgg16",
        weights_id=weights_id(weights),
        input_size=356,
        taps=["last:flatten"],
        preprocessing=prep.to_dict(),
    )
    return Classifier(assemble(features, head, 1, 356), meta, None, settings)


def _rate(fn, n_images: int, repeats: int) -> float:
    fn()  # warm-up: graph tracing is not throughput
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return n_images * repeats / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a saved model (default: VGG16 study shape)")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--rembg-images", type=int, default=8)
    args = parser.parse_args()

    from shared.background import BackgroundRemover
    from shared.classifier import Classifier
    from shared.config import Settings

    real = WEIGHTS.is_file()
    settings = Settings(
        backbone_weights=str(WEIGHTS) if real else "none",
        u2net_home=SHARED / "models" if real else None,
    )
    classifier = Classifier.load(args.model, settings) if args.model else _default_model(settings)
    if args.model is None and not real:
        print("note: ../shared is absent, VGG16 runs with random weights (same speed)")
    classifier.remover = None  # rembg is measured on its own below
    images = _images(args.images)
    prepared = [classifier.prepare(im) for im in images]
    n_views = len(classifier.prep.views)
    arrays = [np.stack([p[v] for p in prepared]).astype(np.float32) for v in range(n_views)]

    rows = []
    for batch in (1, 32):
        n = min(batch, len(images))
        raw_in = [a[:n] for a in arrays]
        raw_in = raw_in if n_views > 1 else raw_in[0]
        raw = _rate(
            lambda x=raw_in: classifier.model.predict_on_batch(x),
            n,
            repeats=max(1, 8 // n) if batch == 1 else 2,
        )
        ours = _rate(
            lambda n=n, b=batch: classifier.predict(images[:n], batch_size=b),
            n,
            repeats=max(1, 8 // n) if batch == 1 else 2,
        )
        rows.append((batch, raw, ours))

    rembg = None
    if real or args.model:
        remover = BackgroundRemover(settings.rembg_model, settings.u2net_home)
        sample = images[: args.rembg_images]
        remover.mask(sample[0])
        start = time.perf_counter()
        for im in sample:
            remover.mask(im)
        rembg = (time.perf_counter() - start) / len(sample)

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"model: {args.model or 'VGG16 356px study shape'}  cpus: {os.cpu_count()}")
    print(f"{'batch':>5} {'raw model img/s':>16} {'Classifier img/s':>17} {'ratio':>6}")
    for batch, raw, ours in rows:
        print(f"{batch:>5} {raw:>16.2f} {ours:>17.2f} {ours / raw:>6.2f}")
    if rembg is not None:
        print(
            f"rembg {settings.rembg_model}: {rembg:.3f} s/image "
            f"({1 / rembg:.2f} images/s, average size {images[0].size})"
        )
    print(f"peak memory: {peak_mb:.0f} MiB")


if __name__ == "__main__":
    main()
