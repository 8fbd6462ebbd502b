"""Custom Keras layers saved inside Swatch models (registered so ``load_model`` finds them)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from shared.backbones import get_backbone, preprocess_function


@keras.saving.register_keras_serializable(package="swatch")
class BackbonePreprocess(keras.layers.Layer):
    """The backbone's own input scaling (VGG: BGR and ImageNet means), inside the model."""

    def __init__(self, backbone: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.backbone = backbone
        self._fn = preprocess_function(get_backbone(backbone))

    def call(self, inputs: Any) -> Any:
        return self._fn(ops.cast(inputs, "float32"))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "backbone": self.backbone}


@keras.saving.register_keras_serializable(package="swatch")
class SegmentNormalize(keras.layers.Layer):
    """Signed square root then L2 norm, separately on each concatenated feature segment.

    Pooled CNN features are bursty (a few channels dominate); the square root evens them
    out and the per-segment norm stops one tap or view from outweighing another.
    """

    def __init__(self, sizes: list[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sizes = [int(s) for s in sizes]

    def call(self, inputs: Any) -> Any:
        parts = []
        start = 0
        for size in self.sizes:
            part = inputs[:, start : start + size]
            part = ops.sign(part) * ops.sqrt(ops.abs(part))
            norm = ops.sqrt(ops.sum(ops.square(part), axis=-1, keepdims=True))
            parts.append(part / ops.maximum(norm, 1e-12))
            start += size
        return ops.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "sizes": self.sizes}
