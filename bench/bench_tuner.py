"""One tuner trial on cached features against the same trial run naively on pixels.

    python -m bench.bench_tuner [--images 64] [--epochs 3]

The naive trial is what Keras-Tuner does without Swatch's cache: the frozen VGG16 runs on
every image in every epoch. The cached trial trains the same head on features computed
once. Prints both wall times and their ratio, and the one-off extraction time.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
SHARED = Path(__file__).resolve().parents[2] / "shared"
WEIGHTS = SHARED / "models" / "vgg16_imagenet_notop.weights.h5"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--input-size", type=int, default=356)
    args = parser.parse_args()

    import keras

    from shared.backbones import get_backbone
    from shared.model import HeadConfig, assemble, build_feature_extractor, build_head
    from tests.patterns import PATTERNS, draw_pattern

    weights = str(WEIGHTS) if WEIGHTS.is_file() else None
    size = args.input_size
    pixels = np.stack(
        [np.asarray(draw_pattern(PATTERNS[i % 4], i, size), np.float32) for i in range(args.images)]
    )
    labels = keras.utils.to_categorical(np.arange(args.images) % 4, 4)
    features = build_feature_extractor(get_backbone("vgg16"), weights, size, ("last:flatten",))
    config = HeadConfig(((384, "sigmoid"),), 0.5)

    start = time.perf_counter()
    cached = features.predict(pixels, batch_size=16, verbose=0)
    extract_s = time.perf_counter() - start

    def trial(x, model) -> float:
        model.compile(keras.optimizers.RMSprop(1e-3), "categorical_crossentropy")
        t0 = time.perf_counter()
        model.fit(x, labels, epochs=args.epochs, batch_size=32, verbose=0)
        return time.perf_counter() - t0

    head = build_head(cached.shape[1], [cached.shape[1]], 4, config)
    cached_s = trial(cached, head)
    naive_head = build_head(cached.shape[1], [cached.shape[1]], 4, config)
    naive_s = trial(pixels, assemble(features, naive_head, 1, size))

    print(
        f"VGG16 {size}px ({'ImageNet weights' if weights else 'random weights'}), "
        f"{args.images} images, {args.epochs} epochs, {os.cpu_count()} cpus"
    )
    print(f"one-off feature extraction: {extract_s:.1f}s")
    print(
        f"trial on cached features: {cached_s:.2f}s; naive trial on pixels: {naive_s:.1f}s; "
        f"ratio {naive_s / cached_s:.0f}x"
    )
    print(
        f"10 trials: cached {extract_s + 10 * cached_s:.0f}s (extraction included) "
        f"against naive {10 * naive_s:.0f}s"
    )


if __name__ == "__main__":
    main()
