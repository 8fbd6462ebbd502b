"""Tiny generated pattern images (stripes, checks, dots, solids) for fast tests."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

PATTERNS = ("checkered", "dotted", "solid", "striped")


def _colours(rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...]]:
    a = tuple(int(v) for v in rng.integers(0, 120, 3))
    b = tuple(int(v) for v in rng.integers(135, 256, 3))
    return a, b


def draw_pattern(kind: str, seed: int, size: int = 64) -> Image.Image:
    rng = np.random.default_rng(seed)
    dark, light = _colours(rng)
    image = Image.new("RGB", (size, size), light)
    draw = ImageDraw.Draw(image)
    period = int(rng.integers(6, 14))
    if kind == "striped":
        for y in range(0, size, period):
            draw.rectangle((0, y, size, y + period // 2 - 1), fill=dark)
        if rng.random() < 0.5:
            image = image.transpose(Image.Transpose.ROTATE_90)
    elif kind == "checkered":
        for y in range(0, size, period):
            for x in range(0, size, period):
                if (x // period + y // period) % 2 == 0:
                    draw.rectangle((x, y, x + period - 1, y + period - 1), fill=dark)
    elif kind == "dotted":
        radius = max(1, period // 4)
        for y in range(period // 2, size, period):
            for x in range(period // 2, size, period):
                draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=dark)
    elif kind != "solid":
        raise ValueError(kind)
    noise = rng.normal(0, 6, (size, size, 3))
    array = np.clip(np.asarray(image, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(array)


def make_tree(
    root: Path, per_class: int = 10, size: int = 64, kinds: tuple[str, ...] = PATTERNS
) -> Path:
    for k, kind in enumerate(kinds):
        folder = root / kind
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw_pattern(kind, seed=1000 * k + i, size=size).save(
                folder / f"{kind}_{i:03d}.jpg", quality=92
            )
    return root


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims huge dimensions: a decompression bomb's first bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 32))
        + chunk(b"IEND", b"")
    )
