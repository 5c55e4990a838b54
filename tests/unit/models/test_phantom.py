"""The phantom generator: reproducible, nodules labelled where they are drawn, DICOM round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.reference.dicom_series import phantom_volume, write_series
from models.reference.phantom import (
    BAND_SHARES,
    PIXEL_SPACINGS_MM,
    Geometry,
    band_shares_with,
    generate,
    seed_geometry,
)
from models.reference.samples import training_phantom
from models.volume import load_files

SMALL = Geometry(matrix=256, pixel_spacing=1.4, slice_thickness=2.5, slices=40)


def test_same_seed_same_phantom_other_seed_other_phantom() -> None:
    first, again = generate(5, SMALL, 3, (110, 190)), generate(5, SMALL, 3, (110, 190))
    other = generate(6, SMALL, 3, (110, 190))
    np.testing.assert_array_equal(first.hu, again.hu)
    np.testing.assert_array_equal(first.labels, again.labels)
    assert first.nodules == again.nodules
    assert not np.array_equal(first.hu, other.hu)


def test_nodules_are_labelled_inside_the_lungs_and_denser_than_lung() -> None:
    phantom = generate(8, SMALL, 4, (100, 200))
    assert 1 <= len(phantom.nodules) <= 4
    for index, nodule in enumerate(phantom.nodules, start=1):
        mask = phantom.labels == index
        assert mask.any()
        assert phantom.lungs[mask].mean() > 0.9
        assert 3.0 <= nodule.diameter_mm <= 25.0
        assert (
            phantom.hu[mask].mean() > phantom.hu[phantom.lungs & (phantom.labels == 0)].mean() + 100
        )


def test_written_series_loads_back_to_the_same_voxels_and_geometry(tmp_path: Path) -> None:
    phantom = generate(9, SMALL, 1, (120, 170))
    loaded = load_files(write_series(phantom, tmp_path))
    direct = phantom_volume(phantom)
    # Loading sorts along +z (towards the head): the phantom's slice order reversed.
    np.testing.assert_array_equal(loaded.voxels, direct.voxels[::-1])
    assert loaded.spacing == direct.spacing
    last = direct.index_to_patient([phantom.hu.shape[0] - 1, 0, 0])
    np.testing.assert_allclose(loaded.index_to_patient([0, 0, 0]), last, atol=1e-3)


def test_a_training_slab_with_more_nodules_is_the_same_slab() -> None:
    usual, rich = training_phantom(11), training_phantom(11, nodule_count=10)

    assert rich.hu.shape == usual.hu.shape
    assert rich.geometry == usual.geometry
    assert 1 <= len(usual.nodules) <= 6
    assert len(rich.nodules) == 10
    assert set(np.unique(rich.labels)) == set(range(11))


def test_a_training_slab_with_more_small_nodules_is_the_same_slab_with_smaller_ones() -> None:
    usual = training_phantom(11, nodule_count=10)
    small = training_phantom(11, nodule_count=10, band_shares=band_shares_with(0.9))

    assert small.geometry == usual.geometry
    np.testing.assert_array_equal(small.lungs, usual.lungs)
    assert len(small.nodules) == 10
    assert sum(n.diameter_mm < 6 for n in small.nodules) > sum(
        n.diameter_mm < 6 for n in usual.nodules
    )


def test_shares_with_a_small_band_keep_the_other_bands_in_proportion() -> None:
    shares = band_shares_with(0.6)

    assert shares[0] == 0.6
    assert sum(shares) == pytest.approx(1.0)
    assert shares[1] / shares[2] == pytest.approx(BAND_SHARES[1] / BAND_SHARES[2])


@pytest.mark.parametrize("seed", [1, 2])  # a 256 and a 512 matrix
def test_seed_geometry_is_the_geometry_the_phantom_of_that_seed_is_drawn_with(seed: int) -> None:
    drawn = seed_geometry(seed)
    slab = generate(seed, nodule_count=0, window=(150, 156))

    assert (slab.geometry.matrix, slab.geometry.pixel_spacing, slab.geometry.slice_thickness) == (
        drawn.matrix,
        drawn.pixel_spacing,
        drawn.slice_thickness,
    )
    low, high = PIXEL_SPACINGS_MM[drawn.matrix]
    assert low <= drawn.pixel_spacing <= high
