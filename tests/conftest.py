from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.config import Settings
from tests.patterns import make_tree

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SHARED_MODELS = SHARED / "models"
SHARED_DATASETS = SHARED / "datasets"


def shared_available() -> bool:
    return (SHARED_MODELS / "vgg16_imagenet_notop.weights.h5").is_file() and (
        SHARED_DATASETS / "dress-patterns"
    ).is_dir()


needs_shared = pytest.mark.skipif(
    not shared_available(),
    reason=f"needs the real weights and data sets in {SHARED} (absent here)",
)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", backbone_weights="none")


@pytest.fixture(scope="session")
def pattern_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tree(tmp_path_factory.mktemp("patterns"), per_class=10)
