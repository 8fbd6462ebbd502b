"""The convolutional backbones a pattern model can stand on.

Each backbone names two feature taps: ``last`` (the output of its last block, what the study
flattens) and ``mid`` (the block before it: VGG16's block 4, which helps on fine patterns).
Weights come from Keras's own ``weights="imagenet"`` download, or a local file configured
with ``SWATCH_BACKBONE_WEIGHTS`` (a file, or a folder of ``<backbone>*notop*.h5`` files).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any


class BackboneError(ValueError):
    """A backbone or its weights cannot be had; the message says why."""


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    application: str  # attribute of keras.applications, or "" for the built-in tiny net
    module: str  # keras.applications submodule that owns preprocess_input
    taps: dict[str, str]  # tap name -> layer name
    default_input_size: int
    min_input_size: int
    # Layers a fine-tune unfreezes (the last block), first layer of that block first.
    last_block_prefix: str


BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec(
            "vgg16",
            "VGG16",
            "vgg16",
            {"mid": "block4_pool", "last": "block5_pool"},
            356,
            32,
            "block5_",
        ),
        BackboneSpec(
            "vgg19",
            "VGG19",
            "vgg19",
            {"mid": "block4_pool", "last": "block5_pool"},
            356,
            32,
            "block5_",
        ),
        BackboneSpec(
            "resnet50",
            "ResNet50",
            "resnet50",
            {"mid": "conv4_block6_out", "last": "conv5_block3_out"},
            356,
            32,
            "conv5_",
        ),
        BackboneSpec(
            "inception_v3",
            "InceptionV3",
            "inception_v3",
            {"mid": "mixed7", "last": "mixed10"},
            356,
            75,
            "mixed",
        ),
        BackboneSpec(
            "xception",
            "Xception",
            "xception",
            {"mid": "block13_sepconv1_act", "last": "block14_sepconv2_act"},
            356,
            71,
            "block14_",
        ),
        # A three-block convolutional net with seeded random weights, for tests and smoke
        # runs where no pretrained weights exist. Never the default.
        BackboneSpec(
            "tiny", "", "tiny", {"mid": "block2_pool", "last": "block3_pool"}, 64, 16, "block3_"
        ),
    )
}
PRETRAINED_BACKBONES = ("vgg16", "vgg19", "inception_v3", "xception", "resnet50")


def get_backbone(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise BackboneError(
            f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}"
        ) from None


def resolve_weights(spec: BackboneSpec, configured: str) -> str | None:
    """Turn the configured weights into what Keras takes: "imagenet", a file path or None."""
    if spec.name == "tiny" or configured in {"none", "random"}:
        return None
    if configured == "imagenet":
        return "imagenet"
    path = Path(configured).expanduser()
    if path.is_dir():
        matches = sorted(path.glob(f"{spec.name}*notop*.h5")) or sorted(
            path.glob(f"{spec.name}*.h5")
        )
        if not matches:
            raise BackboneError(
                f"no local ImageNet weights for {spec.name} in {path} "
                f"(expected a file named like {spec.name}_imagenet_notop.weights.h5)"
            )
        return str(matches[0])
    if path.is_file():
        if not path.name.lower().startswith(spec.name.split("_")[0]):
            raise BackboneError(
                f"no ImageNet weights for {spec.name}: SWATCH_BACKBONE_WEIGHTS names "
                f"{path.name} (give a folder of <backbone>*notop*.h5 files, or 'imagenet' "
                "where Keras can download)"
            )
        return str(path)
    raise BackboneError(f"backbone weights {configured!r} are neither 'imagenet' nor a file")


@lru_cache(maxsize=16)
def weights_id(weights: str | None) -> str:
    """A stable identity for a weights choice, for cache keys and metadata."""
    if weights is None:
        return "random-seed0"
    if weights == "imagenet":
        return "imagenet"
    digest = hashlib.sha256()
    with open(weights, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()[:16]


def build_backbone(spec: BackboneSpec, weights: str | None, input_size: int) -> Any:
    """The backbone without its classifier, as a Keras model on ``input_size`` squares."""
    import keras

    if input_size < spec.min_input_size:
        raise BackboneError(f"{spec.name} needs an input of at least {spec.min_input_size} px")
    shape = (input_size, input_size, 3)
    if spec.name == "tiny":
        return _tiny_backbone(shape)
    constructor = getattr(keras.applications, spec.application)
    try:
        return constructor(include_top=False, weights=weights, input_shape=shape)
    except Exception as exc:  # a failed download or a mismatched file
        raise BackboneError(f"cannot load {spec.name} weights {weights!r}: {exc}") from exc


def preprocess_function(spec: BackboneSpec) -> Callable[[Any], Any]:
    import keras

    if spec.name == "tiny":
        return lambda x: x / 127.5 - 1.0
    return getattr(keras.applications, spec.module).preprocess_input


def _tiny_backbone(shape: tuple[int, int, int]) -> Any:
    import keras
    from keras import layers

    inputs = keras.Input(shape)
    x = inputs
    for block, filters in enumerate((8, 16, 32), start=1):
        init = keras.initializers.HeNormal(seed=block)
        x = layers.Conv2D(
            filters,
            3,
            padding="same",
            activation="relu",
            kernel_initializer=init,
            name=f"block{block}_conv1",
        )(x)
        x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    return keras.Model(inputs, x, name="tiny")
