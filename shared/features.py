"""Frozen-backbone features, computed once per image and cached on disk.

While the backbone is frozen its output depends only on the pixels, so each (image, view,
augmentation copy, tap) is computed once and kept as ``.npy`` under a key made of the
backbone, its weights, the tap and everything that shapes the view's pixels. Training then
re-reads features instead of re-running VGG16 every epoch.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared.augment import Augmentation, augment, view_rng
from shared.background import BackgroundRemover
from shared.dataset import Sample
from shared.images import load_image
from shared.preprocessing import Preprocessing, make_views, resize_view
from shared.progress import ProgressFactory, silent


@dataclass(frozen=True)
class FeatureKey:
    backbone: str
    weights_id: str

    def digest(self, tap: str, view_key: str, augmentation: str) -> str:
        text = f"{self.backbone}|{self.weights_id}|{tap}|{view_key}|{augmentation}"
        return hashlib.sha256(text.encode()).hexdigest()[:20]


class FeatureStore:
    """Feature vectors on disk: ``<root>/<key>/<sha[:2]>/<sha>-<copy>.npy``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root) / "features"

    def path(self, key: str, sha256: str, copy: int) -> Path:
        return self.root / key / sha256[:2] / f"{sha256}-{copy}.npy"

    def load(self, key: str, sha256: str, copy: int) -> np.ndarray | None:
        path = self.path(key, sha256, copy)
        try:
            return np.load(path)
        except (OSError, ValueError):
            return None

    def has(self, key: str, sha256: str, copy: int) -> bool:
        return self.path(key, sha256, copy).exists()

    def save(self, key: str, sha256: str, copy: int, vector: np.ndarray) -> None:
        path = self.path(key, sha256, copy)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as handle:
            np.save(handle, vector)
        os.replace(tmp, path)


@dataclass
class FeatureJob:
    """Everything needed to compute one set of features: model, pixels recipe, cache."""

    extractor: object  # keras.Model from shared.model.build_feature_extractor
    taps: tuple[str, ...]
    key: FeatureKey
    prep: Preprocessing
    store: FeatureStore | None
    remover: BackgroundRemover | None
    augmentation: Augmentation | None = None
    seed: int = 0
    batch_size: int = 16
    # The taps returned; ``taps`` may hold more, cached on the way since they come free.
    wanted: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        self.wanted = self.wanted or self.taps
        missing = set(self.wanted) - set(self.taps)
        if missing:
            raise ValueError(f"the extractor does not compute taps {sorted(missing)}")

    def _aug_tag(self, copy: int) -> str:
        if copy == 0 or self.augmentation is None:
            return "none"
        return f"{sorted(self.augmentation.to_dict().items())}|seed={self.seed}"

    def keys(self, copy: int, taps: tuple[str, ...] | None = None) -> list[list[str]]:
        """keys[view][tap] for one augmentation copy."""
        tag = self._aug_tag(copy)
        return [
            [self.key.digest(tap, self.prep.view_key(view), tag) for tap in taps or self.taps]
            for view in self.prep.views
        ]

    def _cached(self, sha: str, copy: int) -> bool:
        return self.store is not None and all(
            self.store.has(k, sha, copy) for row in self.keys(copy, self.wanted) for k in row
        )

    def view_pixels(self, sample: Sample, copy: int) -> list[np.ndarray]:
        image, _ = load_image(sample.path)
        views = make_views(image, self.prep, self.remover, sample.sha256)
        if copy and self.augmentation is not None:
            rng = view_rng(sample.sha256, copy, self.seed)
            views = [augment(v, self.augmentation, rng, self.prep.background_color) for v in views]
        return [resize_view(v, self.prep.input_size) for v in views]

    def compute(
        self, samples: Sequence[Sample], copies: int = 0, progress: ProgressFactory = silent
    ) -> np.ndarray:
        """Feature rows for every sample and copy (copy 0 is the plain image).

        Rows are ordered sample-major: sample 0 copy 0..copies, sample 1 ... Each row is
        every view's taps concatenated, view-major, the order ``assemble`` uses.
        """
        work = [(s, c) for s in samples for c in range(copies + 1) if not self._cached(s.sha256, c)]
        if self.remover is not None and self.remover.cache_dir is not None:
            todo = sorted(
                {s.sha256: s for s, _ in work if not self.remover.is_cached(s.sha256)}.values(),
                key=lambda s: s.sha256,
            )
            bar = progress("background removal", len(todo))
            for sample in todo:
                image, _ = load_image(sample.path)
                self.remover.mask(image, sample.sha256)
                bar.update()
            bar.close()
        rows: dict[tuple[str, int], list[np.ndarray]] = {}
        bar = progress("features", len(work))
        for start in range(0, len(work), self.batch_size):
            chunk = work[start : start + self.batch_size]
            pixels = [self.view_pixels(s, c) for s, c in chunk]
            outputs = self._run(np.stack([v for views in pixels for v in views]))
            n_views = len(self.prep.views)
            for i, (sample, copy) in enumerate(chunk):
                per_view = [[out[i * n_views + v] for out in outputs] for v in range(n_views)]
                if self.store is not None:
                    for v, row in enumerate(self.keys(copy)):
                        for t, key in enumerate(row):
                            self.store.save(key, sample.sha256, copy, per_view[v][t])
                picks = [self.taps.index(t) for t in self.wanted]
                rows[(sample.sha256, copy)] = [view[t] for view in per_view for t in picks]
            bar.update(len(chunk))
        bar.close()
        result = []
        for sample in samples:
            for copy in range(copies + 1):
                parts = rows.get((sample.sha256, copy))
                if parts is None:
                    parts = [
                        self.store.load(k, sample.sha256, copy)
                        for row in self.keys(copy, self.wanted)
                        for k in row
                    ]
                result.append(np.concatenate(parts).astype(np.float32, copy=False))
        return np.stack(result) if result else np.zeros((0, 0), np.float32)

    def _run(self, batch: np.ndarray) -> list[np.ndarray]:
        outputs = self.extractor.predict_on_batch(batch.astype(np.float32))
        if not isinstance(outputs, list | tuple):
            outputs = [outputs]
        return [np.asarray(o) for o in outputs]
