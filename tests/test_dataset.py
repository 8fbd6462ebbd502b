from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from shared.dataset import DatasetError, load_dataset
from tests.patterns import make_tree


def test_split_is_stratified_deterministic_and_disjoint(tmp_path: Path) -> None:
    make_tree(tmp_path, per_class=20)
    first = load_dataset(tmp_path, seed=3)
    again = load_dataset(tmp_path, seed=3)
    other = load_dataset(tmp_path, seed=4)
    assert first.class_names == ["checkered", "dotted", "solid", "striped"]
    assert first.split_manifest() == again.split_manifest()
    assert first.split_manifest() != other.split_manifest()
    counts = first.counts()
    assert all(n == 16 for n in counts["train"].values())
    assert all(n == 2 for n in counts["validation"].values())
    assert all(n == 2 for n in counts["test"].values())
    shas = [s.sha256 for samples in first.splits.values() for s in samples]
    assert len(shas) == len(set(shas)) == 80


def test_fingerprint_follows_content_and_labels(tmp_path: Path) -> None:
    make_tree(tmp_path, per_class=5)
    before = load_dataset(tmp_path).fingerprint()
    moved = next((tmp_path / "solid").iterdir())
    shutil.move(moved, tmp_path / "dotted" / moved.name)
    assert load_dataset(tmp_path).fingerprint() != before


def test_bad_files_are_skipped_counted_and_warned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_tree(tmp_path, per_class=4)
    (tmp_path / "solid" / "notes.txt").write_text("not an image")
    (tmp_path / "solid" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (tmp_path / "solid" / "empty.png").write_bytes(b"")
    (tmp_path / "solid" / ".DS_Store").write_bytes(b"\x00")
    dataset = load_dataset(tmp_path)
    assert len(dataset.skipped) == 3
    assert sum(len(s) for s in dataset.splits.values()) == 16
    assert sum("skipping" in r.message for r in caplog.records) == 3


def test_duplicates_are_kept_once(tmp_path: Path) -> None:
    make_tree(tmp_path, per_class=4)
    src = next((tmp_path / "solid").iterdir())
    shutil.copy(src, tmp_path / "striped" / "copy.jpg")
    dataset = load_dataset(tmp_path)
    assert dataset.duplicates == 1
    assert sum(len(s) for s in dataset.splits.values()) == 16


def test_presplit_layout_is_used_as_is(tmp_path: Path) -> None:
    make_tree(tmp_path / "train", per_class=6)
    make_tree(tmp_path / "val", per_class=2, kinds=("dotted", "solid"))
    dataset = load_dataset(tmp_path)
    assert dataset.presplit
    assert len(dataset.splits["train"]) == 24
    assert len(dataset.splits["validation"]) == 4
    assert dataset.splits["test"] == []


def test_too_few_classes_is_a_clear_error(tmp_path: Path) -> None:
    make_tree(tmp_path, per_class=3, kinds=("solid",))
    with pytest.raises(DatasetError, match="at least two class folders"):
        load_dataset(tmp_path)
