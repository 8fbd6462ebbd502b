"""The pattern model: a frozen backbone's feature taps, then a small trainable head.

A model is assembled from two named parts, so training can run the head alone on cached
features and the saved model still runs end to end on pixels:

    views (uint8 squares) -> "features" (preprocess, backbone, tap pooling) -> concat
        -> "head" (optional per-segment normalisation, dense layers, softmax)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
from keras import layers

from shared.backbones import BackboneSpec, build_backbone
from shared.layers import BackbonePreprocess, SegmentNormalize

POOLINGS = ("flatten", "avg", "max")
# Taps that cost nothing extra once the backbone has run; cached alongside any request.
CHEAP_TAPS = ("mid:avg", "last:avg")


def parse_tap(tap: str) -> tuple[str, str]:
    where, _, pooling = tap.partition(":")
    if where not in {"mid", "last"} or pooling not in POOLINGS:
        raise ValueError(f"bad feature tap {tap!r}: expected (mid|last):(flatten|avg|max)")
    return where, pooling


def build_feature_extractor(
    spec: BackboneSpec, weights: str | None, input_size: int, taps: tuple[str, ...]
) -> keras.Model:
    """Pixels (0-255 RGB) to one pooled or flattened vector per tap. Frozen."""
    backbone = build_backbone(spec, weights, input_size)
    wanted = sorted({parse_tap(t)[0] for t in taps})
    tapped = keras.Model(
        backbone.inputs,
        [backbone.get_layer(spec.taps[w]).output for w in wanted],
        name=f"{spec.name}_taps",
    )
    inputs = keras.Input((input_size, input_size, 3), name="pixels")
    maps = tapped(BackbonePreprocess(spec.name, name="preprocess")(inputs))
    maps = dict(zip(wanted, maps if isinstance(maps, list) else [maps], strict=True))
    outputs = []
    for tap in taps:
        where, pooling = parse_tap(tap)
        name = tap.replace(":", "_")
        if pooling == "flatten":
            outputs.append(layers.Flatten(name=name)(maps[where]))
        elif pooling == "avg":
            outputs.append(layers.GlobalAveragePooling2D(name=name)(maps[where]))
        else:
            outputs.append(layers.GlobalMaxPooling2D(name=name)(maps[where]))
    model = keras.Model(inputs, outputs, name="features")
    model.trainable = False
    return model


@dataclass(frozen=True)
class HeadConfig:
    dense_layers: tuple[tuple[int, str], ...] = ((384, "sigmoid"),)
    dropout: float = 0.5
    normalize: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "dense_layers": [list(d) for d in self.dense_layers],
            "dropout": self.dropout,
            "normalize": self.normalize,
        }


def build_head(
    input_dim: int, segment_sizes: list[int], n_classes: int, config: HeadConfig, seed: int = 0
) -> keras.Model:
    inputs = keras.Input((input_dim,), name="features")
    x = inputs
    if config.normalize:
        x = SegmentNormalize(segment_sizes, name="ssqrt_l2")(x)
    for i, (units, activation) in enumerate(config.dense_layers):
        x = layers.Dense(
            units,
            activation=activation,
            name=f"dense_{i}",
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed + i),
        )(x)
        if config.dropout:
            x = layers.Dropout(config.dropout, seed=seed + i, name=f"dropout_{i}")(x)
    outputs = layers.Dense(
        n_classes,
        activation="softmax",
        name="probabilities",
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 99),
    )(x)
    return keras.Model(inputs, outputs, name="head")


def assemble(
    features: keras.Model, head: keras.Model, n_views: int, input_size: int
) -> keras.Model:
    """The end-to-end model: one input per view, features of all views concatenated."""
    inputs = [keras.Input((input_size, input_size, 3), name=f"view_{i}") for i in range(n_views)]
    parts: list[Any] = []
    for view in inputs:
        out = features(view)
        parts.extend(out if isinstance(out, list | tuple) else [out])
    x = layers.Concatenate(name="concat")(parts) if len(parts) > 1 else parts[0]
    return keras.Model(inputs, head(x), name="swatch_pattern")


def tap_dims(features: keras.Model) -> list[int]:
    return [int(t.shape[-1]) for t in features.outputs]
