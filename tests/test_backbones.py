from __future__ import annotations

from pathlib import Path

import pytest

from shared.backbones import BackboneError, get_backbone, resolve_weights, weights_id


def test_weights_are_resolved_from_configuration(tmp_path: Path) -> None:
    vgg16, vgg19 = get_backbone("vgg16"), get_backbone("vgg19")
    assert resolve_weights(vgg16, "imagenet") == "imagenet"
    assert resolve_weights(vgg16, "none") is None
    assert resolve_weights(get_backbone("tiny"), "imagenet") is None  # never pretrained
    file = tmp_path / "vgg16_imagenet_notop.weights.h5"
    file.write_bytes(b"weights")
    assert resolve_weights(vgg16, str(file)) == str(file)
    assert resolve_weights(vgg16, str(tmp_path)) == str(file)  # a folder of files
    with pytest.raises(BackboneError, match="no ImageNet weights for vgg19"):
        resolve_weights(vgg19, str(file))
    with pytest.raises(BackboneError, match="no local ImageNet weights for vgg19"):
        resolve_weights(vgg19, str(tmp_path))
    with pytest.raises(BackboneError, match="neither"):
        resolve_weights(vgg16, str(tmp_path / "missing.h5"))
    assert weights_id(str(file)).startswith("sha256:") and weights_id(None) == "random-seed0"


def test_unknown_backbone() -> None:
    with pytest.raises(BackboneError, match="unknown backbone 'alexnet'"):
        get_backbone("alexnet")
