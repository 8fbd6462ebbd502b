"""Seeded, mild augmentation of one view: flips, small rotation/zoom/shift, colour jitter."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageEnhance


@dataclass(frozen=True)
class Augmentation:
    flip: bool = True
    rotation_deg: float = 10.0
    zoom: float = 0.1
    shift: float = 0.05
    color: float = 0.1

    def to_dict(self) -> dict[str, float | bool]:
        return asdict(self)


def augment(
    view: Image.Image,
    aug: Augmentation,
    rng: np.random.Generator,
    fill: tuple[int, int, int] = (128, 128, 128),
) -> Image.Image:
    if aug.flip and rng.random() < 0.5:
        view = view.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    width, height = view.size
    angle = rng.uniform(-aug.rotation_deg, aug.rotation_deg)
    scale = 1.0 + rng.uniform(-aug.zoom, aug.zoom)
    dx = rng.uniform(-aug.shift, aug.shift) * width
    dy = rng.uniform(-aug.shift, aug.shift) * height
    # Rotate and scale about the centre, then shift: one affine warp, one resampling.
    theta = np.deg2rad(angle)
    cos, sin = np.cos(theta) / scale, np.sin(theta) / scale
    cx, cy = width / 2, height / 2
    matrix = (
        cos,
        sin,
        cx - cos * (cx + dx) - sin * (cy + dy),
        -sin,
        cos,
        cy + sin * (cx + dx) - cos * (cy + dy),
    )
    view = view.transform(
        view.size,
        Image.Transform.AFFINE,
        matrix,
        resample=Image.Resampling.BILINEAR,
        fillcolor=fill,
    )
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        view = enhancer(view).enhance(1.0 + rng.uniform(-aug.color, aug.color))
    return view


def view_rng(sha256: str, copy: int, seed: int) -> np.random.Generator:
    """The same image, copy and seed always get the same augmentation."""
    return np.random.default_rng([int(sha256[:16], 16), copy, seed])
