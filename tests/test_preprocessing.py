from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from shared.augment import Augmentation, augment, view_rng
from shared.preprocessing import Preprocessing, foreground_box, make_views, resize_view
from tests.fakes import ThresholdRemover


def _person_photo() -> Image.Image:
    """A light backdrop with a dark 'person' box at x 40-80, y 20-100."""
    image = Image.new("RGB", (120, 120), (240, 240, 240))
    image.paste((20, 30, 40), (40, 20, 80, 100))
    return image


def test_box_and_upper_views_follow_the_foreground() -> None:
    prep = Preprocessing(input_size=32, views=("image", "box", "upper"))
    full, box, upper = make_views(_person_photo(), prep, ThresholdRemover())
    assert full.size == (120, 120)
    # box: the person plus a 4% margin; upper: its top half
    assert box.size == (40 + 2 * 4, 80 + 2 * 4)
    assert upper.size == (48, 44)
    # the backdrop was replaced by the neutral grey
    assert np.asarray(full)[0, 0].tolist() == [128, 128, 128]


def test_without_background_removal_the_box_is_the_frame() -> None:
    prep = Preprocessing(input_size=32, background_removal=None, views=("box", "upper"))
    box, upper = make_views(_person_photo(), prep, None)
    assert box.size == (120, 120) and upper.size == (120, 60)


def test_empty_mask_falls_back_to_the_whole_frame() -> None:
    assert foreground_box(Image.new("L", (50, 50), 0)) is None
    prep = Preprocessing(input_size=32, views=("box",))
    (box,) = make_views(Image.new("RGB", (50, 40), (250, 250, 250)), prep, ThresholdRemover())
    assert box.size == (50, 40)


def test_resize_is_uint8_square() -> None:
    array = resize_view(_person_photo(), 24)
    assert array.shape == (24, 24, 3) and array.dtype == np.uint8


def test_preprocessing_round_trips_and_keys_differ_by_view() -> None:
    prep = Preprocessing(input_size=300, background_removal="u2net", views=("box", "upper"))
    assert Preprocessing.from_dict(prep.to_dict()) == prep
    assert prep.view_key("box") != prep.view_key("upper")
    assert prep.view_key("box") != Preprocessing(input_size=299, views=("box",)).view_key("box")
    with pytest.raises(ValueError):
        Preprocessing(views=("sideways",))


def test_augmentation_is_seeded_and_mild() -> None:
    image = _person_photo()
    first = augment(image, Augmentation(), view_rng("ab" * 32, 1, 0))
    again = augment(image, Augmentation(), view_rng("ab" * 32, 1, 0))
    other = augment(image, Augmentation(), view_rng("ab" * 32, 2, 0))
    assert np.array_equal(np.asarray(first), np.asarray(again))
    assert not np.array_equal(np.asarray(first), np.asarray(other))
    assert first.size == image.size
    # mild: most of the picture still matches the original
    diff = np.abs(np.asarray(first, float) - np.asarray(image, float)).mean()
    assert diff < 60
