"""Lesion measurements against analytic spheres on anisotropic grids."""

from __future__ import annotations

import numpy as np
import pytest

from models.lesions import longest_in_plane_diameter, measure
from models.volume import Volume


def _sphere_volume(
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    centre_mm: np.ndarray,
    radius: float,
) -> tuple[Volume, np.ndarray]:
    grids = np.meshgrid(
        *[np.arange(n) * s for n, s in zip(shape, spacing, strict=True)], indexing="ij"
    )
    inside = sum((g - c) ** 2 for g, c in zip(grids, centre_mm, strict=True)) <= radius**2
    voxels = np.where(inside, 40.0, -850.0).astype(np.float32)
    volume = Volume(
        voxels=voxels,
        spacing=spacing,
        origin=(-100.0, -50.0, 20.0),
        row_cosine=(1.0, 0.0, 0.0),
        column_cosine=(0.0, 1.0, 0.0),
        slice_cosine=(0.0, 0.0, -1.0),
        source_sop_instance_uids=tuple(str(k) for k in range(shape[0])),
    )
    return volume, inside.astype(np.int32)


@pytest.mark.parametrize("diameter", [4.0, 7.5, 12.0, 24.0])
@pytest.mark.parametrize("spacing", [(1.0, 0.7, 0.7), (1.25, 0.6, 0.6), (0.8, 0.9, 0.9)])
def test_sphere_volume_diameter_hu_and_centre(
    diameter: float, spacing: tuple[float, float, float]
) -> None:
    centre = np.array([20.3, 21.1, 19.7])
    volume, lesion_map = _sphere_volume((40, 60, 60), spacing, centre, diameter / 2)

    (lesion,) = measure(volume, lesion_map, {1: 0.9})

    assert lesion.volume_mm3 == pytest.approx(np.pi / 6 * diameter**3, rel=0.10)
    assert abs(lesion.longest_axial_diameter_mm - diameter) <= max(spacing[1:])
    assert lesion.mean_hu == pytest.approx(40.0)
    assert lesion.confidence == 0.9
    expected = volume.index_to_patient(centre / np.array(spacing))
    assert lesion.centroid_patient_mm == pytest.approx(tuple(expected), abs=max(spacing) / 2)


@pytest.mark.parametrize("diameter", [7.5, 12.0])
def test_thick_slices_measure_the_digitised_sphere(diameter: float) -> None:
    """At 2.5 mm slices the digitised sphere itself differs from the analytic one by >10 %:
    volume is exactly what the mask holds, and the in-plane diameter is still within a voxel."""
    spacing = (2.5, 0.8, 0.8)
    centre = np.array([50.3, 21.1, 19.7])
    volume, lesion_map = _sphere_volume((40, 60, 60), spacing, centre, diameter / 2)
    (lesion,) = measure(volume, lesion_map, {})
    assert lesion.volume_mm3 == pytest.approx(lesion_map.sum() * 2.5 * 0.8 * 0.8)
    assert abs(lesion.longest_axial_diameter_mm - diameter) <= 0.8


def test_diameter_of_an_elongated_lesion_is_its_long_axis() -> None:
    mask = np.zeros((3, 30, 30), dtype=bool)
    mask[1, 10, 5:25] = True
    assert longest_in_plane_diameter(mask, 0.5, 0.5) == pytest.approx(20 * 0.5)


def test_lesions_are_numbered_from_their_map() -> None:
    volume, first = _sphere_volume((30, 40, 40), (1.0, 1.0, 1.0), np.array([10.0, 10.0, 10.0]), 4.0)
    _, second = _sphere_volume((30, 40, 40), (1.0, 1.0, 1.0), np.array([20.0, 28.0, 28.0]), 3.0)
    lesions = measure(volume, first + 2 * second, {})
    assert [lesion.index for lesion in lesions] == [1, 2]
    assert lesions[0].volume_mm3 > lesions[1].volume_mm3
