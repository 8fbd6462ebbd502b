"""Test doubles that stand in for rembg where the real model file is absent."""

from __future__ import annotations

import numpy as np
from PIL import Image

from shared.background import BackgroundRemover


class ThresholdRemover(BackgroundRemover):
    """Foreground = pixels darker than the light backdrop; counts its calls."""

    def __init__(self, cache_dir=None) -> None:
        super().__init__("u2netp", None, cache_dir)
        self.calls = 0

    def mask(self, image: Image.Image, sha256: str | None = None) -> Image.Image:
        self.calls += 1
        gray = np.asarray(image.convert("L"))
        return Image.fromarray(np.where(gray < 200, 255, 0).astype(np.uint8), mode="L")
