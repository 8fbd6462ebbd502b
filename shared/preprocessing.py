"""Turning a decoded photo into the model's input views, the same in training and inference.

The whole recipe is a :class:`Preprocessing` value saved in every model's metadata; the
classifier rebuilds it from there, so training and serving cannot drift apart.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from shared.background import BackgroundRemover

# "image": the whole frame; "box": the foreground's bounding box; "upper": its upper half
# (on a street photo, the upper garment). Without background removal the box is the frame.
VIEWS = ("image", "box", "upper")
BOX_MARGIN = 0.04
# Bump when the pixel recipe's code changes, so cached features of the old one are not reused.
PIXELS_VERSION = 1


@dataclass(frozen=True)
class Preprocessing:
    input_size: int = 356
    background_removal: str | None = "u2netp"  # rembg model name, or None for off
    background_color: tuple[int, int, int] = (128, 128, 128)
    views: tuple[str, ...] = ("image",)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [v for v in self.views if v not in VIEWS]
        if unknown or not self.views:
            raise ValueError(f"views must be some of {VIEWS}, got {self.views}")
        if self.input_size < 16:
            raise ValueError("input_size must be at least 16")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["background_color"] = list(self.background_color)
        data["views"] = list(self.views)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        return cls(
            input_size=int(data["input_size"]),
            background_removal=data.get("background_removal"),
            background_color=tuple(data.get("background_color", (128, 128, 128))),
            views=tuple(data.get("views", ("image",))),
            extra=dict(data.get("extra", {})),
        )

    def view_key(self, view: str) -> str:
        """What determines one view's pixels, as a short digest (for feature cache keys)."""
        payload = {
            "size": self.input_size,
            "bg": self.background_removal,
            "color": list(self.background_color),
            "view": view,
            "extra": self.extra,
            "version": PIXELS_VERSION,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def foreground_box(mask: Image.Image, threshold: int = 128) -> tuple[int, int, int, int] | None:
    """The bounding box of the mask's foreground with a small margin, or None if empty."""
    array = np.asarray(mask) >= threshold
    if array.sum() < 0.005 * array.size:
        return None
    rows = np.flatnonzero(array.any(axis=1))
    cols = np.flatnonzero(array.any(axis=0))
    height, width = array.shape
    margin_y, margin_x = int(BOX_MARGIN * height), int(BOX_MARGIN * width)
    return (
        max(0, int(cols[0]) - margin_x),
        max(0, int(rows[0]) - margin_y),
        min(width, int(cols[-1]) + 1 + margin_x),
        min(height, int(rows[-1]) + 1 + margin_y),
    )


def composite(image: Image.Image, mask: Image.Image, color: tuple[int, int, int]) -> Image.Image:
    background = Image.new("RGB", image.size, color)
    return Image.composite(image, background, mask)


def make_views(
    image: Image.Image,
    prep: Preprocessing,
    remover: BackgroundRemover | None,
    sha256: str | None = None,
    mask: Image.Image | None = None,
) -> list[Image.Image]:
    """The un-resized view crops of one RGB image, in ``prep.views`` order."""
    box = None
    if prep.background_removal:
        if mask is None:
            if remover is None:
                raise ValueError("this preprocessing needs a background remover")
            mask = remover.mask(image, sha256)
        box = foreground_box(mask)
        image = composite(image, mask, prep.background_color)
    width, height = image.size
    left, top, right, bottom = box or (0, 0, width, height)
    views = []
    for view in prep.views:
        if view == "image":
            views.append(image)
        elif view == "box":
            views.append(image.crop((left, top, right, bottom)))
        else:  # upper
            views.append(image.crop((left, top, right, top + max(1, (bottom - top) // 2))))
    return views


def resize_view(view: Image.Image, size: int) -> np.ndarray:
    """Stretch to the square input (as the study's generators did), uint8 HxWx3."""
    return np.asarray(view.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)
