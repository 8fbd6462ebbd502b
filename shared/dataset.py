"""Class-per-folder image trees: scanning, validating, splitting and fingerprinting."""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shared.images import DEFAULT_MAX_PIXELS, ImageError, load_image

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
_SPLIT_ALIASES = {
    "train": "train",
    "validation": "validation",
    "val": "validation",
    "valid": "validation",
    "test": "test",
}


class DatasetError(ValueError):
    pass


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int
    sha256: str


@dataclass
class Dataset:
    root: Path
    class_names: list[str]
    splits: dict[str, list[Sample]]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    duplicates: int = 0
    presplit: bool = False
    seed: int = 0

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            split: {
                name: sum(1 for s in samples if s.label == i)
                for i, name in enumerate(self.class_names)
            }
            for split, samples in self.splits.items()
        }

    def fingerprint(self) -> str:
        """Changes when any image's content, label or split changes."""
        digest = hashlib.sha256()
        for split in SPLITS:
            for sample in sorted(self.splits.get(split, []), key=lambda s: s.sha256):
                digest.update(
                    f"{split}:{self.class_names[sample.label]}:{sample.sha256}\n".encode()
                )
        return digest.hexdigest()

    def split_manifest(self) -> dict[str, list[str]]:
        return {split: [s.sha256 for s in samples] for split, samples in self.splits.items()}


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _scan_class(folder: Path, max_pixels: int) -> tuple[list[tuple[Path, str]], list]:
    good, bad = [], []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or any(
            part.startswith(".") for part in path.relative_to(folder).parts
        ):
            continue
        try:
            _, sha = load_image(path, max_pixels=max_pixels)
        except ImageError as exc:
            log.warning("skipping %s: %s", path, exc)
            bad.append((path, str(exc)))
            continue
        good.append((path, sha))
    return good, bad


def load_dataset(
    root: Path | str,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress=None,
) -> Dataset:
    """Scan ``root``: either ``train/ validation/ test/`` trees or one tree to split.

    Every file is decoded once here; unreadable ones are skipped with a warning each and
    counted. Identical files (same SHA-256) are kept once, so no image can sit in two
    splits. ``progress`` is called with the number of class folders scanned.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder")
    top = _class_dirs(root)
    split_dirs = {
        _SPLIT_ALIASES[p.name.lower()]: p for p in top if p.name.lower() in _SPLIT_ALIASES
    }
    presplit = "train" in split_dirs and len(split_dirs) >= 2
    if presplit:
        layout = {
            split: {d.name: d for d in _class_dirs(folder)} for split, folder in split_dirs.items()
        }
    else:
        layout = {"all": {d.name: d for d in top}}
    class_names = sorted({name for classes in layout.values() for name in classes})
    if len(class_names) < 2:
        raise DatasetError(f"{root} needs at least two class folders, found {class_names}")

    seen: set[str] = set()
    duplicates = 0
    skipped: list[tuple[Path, str]] = []
    found: dict[str, list[Sample]] = {}
    for split, classes in layout.items():
        found[split] = []
        for name, folder in sorted(classes.items()):
            good, bad = _scan_class(folder, max_pixels)
            skipped.extend(bad)
            for path, sha in good:
                if sha in seen:
                    duplicates += 1
                    continue
                seen.add(sha)
                found[split].append(Sample(path, class_names.index(name), sha))
            if progress:
                progress(1)
    if duplicates:
        log.warning("%d duplicate images (same content) were kept once", duplicates)

    splits = (
        {split: found.get(split, []) for split in SPLITS}
        if presplit
        else stratified_split(found["all"], seed, fractions)
    )
    if not splits["train"]:
        raise DatasetError(f"{root} has no readable training images")
    return Dataset(root, class_names, splits, skipped, duplicates, presplit, seed)


def stratified_split(
    samples: list[Sample], seed: int, fractions: tuple[float, float, float]
) -> dict[str, list[Sample]]:
    """Deterministic per-class split; the order of files on disk does not matter."""
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise DatasetError("split fractions must add up to 1")
    by_label: dict[int, list[Sample]] = {}
    for sample in sorted(samples, key=lambda s: s.sha256):
        by_label.setdefault(sample.label, []).append(sample)
    rng = np.random.default_rng(seed)
    splits: dict[str, list[Sample]] = {split: [] for split in SPLITS}
    for label in sorted(by_label):
        group = by_label[label]
        order = rng.permutation(len(group))
        n = len(group)
        n_val = round(fractions[1] * n)
        n_test = round(fractions[2] * n)
        if n >= 3:  # every class present in every split when it can be
            n_val, n_test = max(1, n_val), max(1, n_test)
        shuffled = [group[i] for i in order]
        splits["validation"] += shuffled[:n_val]
        splits["test"] += shuffled[n_val : n_val + n_test]
        splits["train"] += shuffled[n_val + n_test :]
    return splits


def class_counts(samples: list[Sample], n_classes: int) -> list[int]:
    counts = Counter(s.label for s in samples)
    return [counts.get(i, 0) for i in range(n_classes)]
