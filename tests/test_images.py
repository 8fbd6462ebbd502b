from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from shared.images import ImageError, decode_image, to_rgb
from tests.patterns import png_claiming


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [
        ("L", "PNG"),
        ("P", "PNG"),
        ("RGBA", "PNG"),
        ("CMYK", "JPEG"),
        ("LA", "PNG"),
        ("1", "PNG"),
        ("I;16", "PNG"),
        ("RGB", "WEBP"),
        ("RGB", "BMP"),
        ("RGB", "TIFF"),
    ],
)
def test_every_mode_becomes_8bit_rgb(mode: str, fmt: str) -> None:
    if mode == "I;16":
        source = Image.fromarray((np.arange(64 * 32).reshape(32, 64) * 30).astype(np.uint16))
    else:
        source = Image.new("RGB", (64, 32), (200, 30, 40)).convert(mode)
    image = decode_image(_encode(source, fmt))
    assert image.mode == "RGB"
    assert image.size == (64, 32)


def test_sixteen_bit_uses_the_whole_range_instead_of_clipping() -> None:
    array = np.linspace(0, 4000, 64 * 8, dtype=np.uint16).reshape(8, 64)
    image = decode_image(_encode(Image.fromarray(array), "PNG"))
    values = np.asarray(image)[..., 0]
    assert values.max() == 255 and values.min() == 0


def test_transparent_pixels_go_white() -> None:
    rgba = Image.new("RGBA", (8, 8), (10, 10, 10, 0))
    assert np.asarray(decode_image(_encode(rgba, "PNG")))[0, 0].tolist() == [255, 255, 255]


def test_exif_orientation_is_applied() -> None:
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    decoded = decode_image(_encode(image, "JPEG", exif=exif.tobytes()))
    assert decoded.size == (20, 40)


def test_empty_and_non_images_are_refused_clearly() -> None:
    with pytest.raises(ImageError, match="empty"):
        decode_image(b"")
    with pytest.raises(ImageError, match="not a recognised image"):
        decode_image(b"%PDF-1.4 definitely not a picture")


def test_truncated_jpeg_is_refused() -> None:
    data = _encode(Image.new("RGB", (256, 256), (1, 2, 3)), "JPEG")
    with pytest.raises(ImageError, match="corrupt or truncated"):
        decode_image(data[: len(data) // 2])


def test_decompression_bomb_is_refused_before_decoding() -> None:
    with pytest.raises(ImageError, match="than the limit"):
        decode_image(png_claiming(100_000, 100_000))
    with pytest.raises(ImageError, match="more than the limit"):
        decode_image(png_claiming(8_000, 8_000), max_pixels=1_000_000)
    with pytest.raises(ImageError, match="more than the limit"):
        decode_image(_encode(Image.new("RGB", (100, 100)), "PNG"), max_pixels=5_000)


def test_float_images_are_rescaled() -> None:
    image = Image.fromarray(np.linspace(-1, 1, 64, dtype=np.float32).reshape(8, 8), mode="F")
    assert to_rgb(image).mode == "RGB"
