"""The lung mask's hole filling: every axial slice on its own, as `binary_fill_holes` does."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from models.lungmask import fill_holes_per_slice


@pytest.mark.parametrize("seed", range(10))
def test_holes_are_filled_slice_by_slice_as_binary_fill_holes_does(seed: int) -> None:
    mask = np.random.default_rng(seed).random((6, 30, 40)) < 0.55
    expected = np.stack([ndimage.binary_fill_holes(plane) for plane in mask])

    assert np.array_equal(fill_holes_per_slice(mask), expected)


def test_a_hole_open_to_the_next_slice_is_still_a_hole_in_its_own() -> None:
    mask = np.zeros((2, 7, 7), dtype=bool)
    mask[0, 1:6, 1:6] = True
    mask[0, 3, 3] = False  # a hole in slice 0, above background in slice 1

    assert fill_holes_per_slice(mask)[0, 3, 3]
