"""The real thing on a few dozen real images: VGG16 ImageNet weights and rembg's u2netp."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from shared.background import BackgroundRemover
from shared.classifier import Classifier
from shared.config import Settings
from shared.images import load_image
from tests.conftest import SHARED_DATASETS, SHARED_MODELS, needs_shared
from trainer.recipes import get_recipe
from trainer.training import train

pytestmark = [needs_shared, pytest.mark.shared_data, pytest.mark.slow]


@pytest.fixture(scope="module")
def real_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dress")
    for folder in sorted((SHARED_DATASETS / "dress-patterns").iterdir()):
        (root / folder.name).mkdir()
        for path in sorted(folder.iterdir())[:6]:
            shutil.copy(path, root / folder.name / path.name)
    return root


@pytest.fixture
def real_settings(tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path / "home",
        backbone_weights=str(SHARED_MODELS / "vgg16_imagenet_notop.weights.h5"),
        u2net_home=SHARED_MODELS,
    )


def test_u2netp_finds_the_garment(real_tree: Path, real_settings: Settings) -> None:
    remover = BackgroundRemover("u2netp", real_settings.u2net_home)
    image, _ = load_image(next((real_tree / "floral").iterdir()))
    mask = np.asarray(remover.mask(image))
    assert mask.shape == image.size[::-1]
    assert 0.05 < (mask > 128).mean() < 0.98


def test_vgg16_with_rembg_trains_and_classifies(
    real_tree: Path, tmp_path: Path, real_settings: Settings
) -> None:
    recipe = replace(get_recipe("pooled"), input_size=224)
    result = train(real_tree, tmp_path / "model", recipe, settings=real_settings)
    assert result.metadata.weights_id.startswith("sha256:")
    assert result.metrics["train"]["accuracy"] > 0.9
    classifier = Classifier.load(result.path, real_settings)
    files = sorted(real_tree.rglob("*.jpg"))[:8]
    probs = classifier.predict(files, batch_size=4)
    assert probs.shape == (8, 6)
    assert np.allclose(probs.sum(1), 1, atol=1e-4)
