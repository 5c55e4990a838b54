"""Blob candidates and half-maximum outlines, on analytic spheres and tubes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from models.pipelines.blobs import PEAK_WINDOW, Blob, BlobGates, find_blobs, local_maxima
from models.pipelines.candidates import BLOB_LABEL, blob_candidates
from models.pipelines.half_maximum import half_maximum_mask, refine_outline
from models.preprocess import HU_RANGE
from models.reference.classifier_training import is_nodule

LUNG_HU, NODULE_HU = -850.0, 30.0


def _scaled(hu: np.ndarray) -> np.ndarray:
    low, high = HU_RANGE
    return ((np.clip(hu, low, high) - low) / (high - low)).astype(np.float32)


def _partial_volume_sphere(
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    centre_mm: np.ndarray,
    radius: float,
    supersample: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """HU with each voxel's nodule fraction, and the voxels whose centre is inside."""
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    fraction = np.zeros(shape)
    axes = [np.arange(n) * s for n, s in zip(shape, spacing, strict=True)]
    for dz in offsets:
        for dy in offsets:
            for dx in offsets:
                z, y, x = np.meshgrid(
                    axes[0] + dz * spacing[0],
                    axes[1] + dy * spacing[1],
                    axes[2] + dx * spacing[2],
                    indexing="ij",
                )
                fraction += (
                    (z - centre_mm[0]) ** 2 + (y - centre_mm[1]) ** 2 + (x - centre_mm[2]) ** 2
                ) <= radius**2
    fraction /= supersample**3
    z, y, x = np.meshgrid(*axes, indexing="ij")
    inside = ((z - centre_mm[0]) ** 2 + (y - centre_mm[1]) ** 2 + (x - centre_mm[2]) ** 2) <= (
        radius**2
    )
    return LUNG_HU + (NODULE_HU - LUNG_HU) * fraction, inside


@pytest.mark.parametrize("diameter", [3.5, 5.0, 8.0])
def test_a_small_sphere_is_a_blob_at_its_centre(diameter: float) -> None:
    centre = np.array([24.2, 25.6, 23.9])
    hu, _ = _partial_volume_sphere((48, 48, 48), (1.0, 1.0, 1.0), centre, diameter / 2)

    blobs = find_blobs(_scaled(hu), np.ones(hu.shape, dtype=bool))

    assert len(blobs) == 1
    (blob,) = blobs
    assert np.linalg.norm(np.array(blob.centre) - centre) <= 1.5
    assert blob.radius == pytest.approx(diameter / 2, rel=0.6)


def test_a_faint_ground_glass_sphere_passes_only_wider_gates() -> None:
    """200 HU over the lung (ground glass): response about 0.11, roundness about 0.035."""
    centre = np.array([24.2, 25.6, 23.9])
    fraction, _ = _partial_volume_sphere((48, 48, 48), (1.0, 1.0, 1.0), centre, 2.5)
    hu = LUNG_HU + 200.0 * (fraction - LUNG_HU) / (NODULE_HU - LUNG_HU)
    lungs = np.ones(hu.shape, dtype=bool)

    assert find_blobs(_scaled(hu), lungs) == []
    (blob,) = find_blobs(_scaled(hu), lungs, BlobGates(response=0.08, roundness=0.025))
    assert np.linalg.norm(np.array(blob.centre) - centre) <= 1.5


def test_a_vessel_is_no_blob_and_nothing_outside_the_lungs_is() -> None:
    _, y, x = np.meshgrid(*[np.arange(48.0)] * 3, indexing="ij")
    tube = np.where((y - 24) ** 2 + (x - 20) ** 2 <= 2.5**2, NODULE_HU, LUNG_HU)
    sphere, _ = _partial_volume_sphere((48, 48, 48), (1.0, 1.0, 1.0), np.array([24, 24, 36]), 3)
    image = _scaled(np.maximum(tube, sphere))
    outside = np.zeros(image.shape, dtype=bool)
    outside[:, :, :30] = True  # the lungs: the tube's side, not the sphere's

    assert find_blobs(image, outside) == []
    assert len(find_blobs(image, np.ones(image.shape, dtype=bool))) == 1


@pytest.mark.parametrize("diameter", [4.0, 6.0, 10.0])
@pytest.mark.parametrize("spacing", [(1.0, 0.7, 0.7), (2.5, 0.8, 0.8)])
def test_the_half_maximum_outline_matches_a_partial_volume_sphere(
    diameter: float, spacing: tuple[float, float, float]
) -> None:
    centre = np.array([20.3, 21.1, 19.7])
    shape = tuple(int(40 / s) for s in spacing)
    hu, inside = _partial_volume_sphere(shape, spacing, centre, diameter / 2)  # type: ignore[arg-type]

    box, mask = half_maximum_mask(hu, centre / np.array(spacing), diameter / 2, spacing)

    outline = np.zeros(hu.shape, dtype=bool)
    outline[box] = mask
    dice = 2 * (outline & inside).sum() / (outline.sum() + inside.sum())
    assert dice >= 0.8


def _dice(box: tuple[slice, ...], mask: np.ndarray, truth: np.ndarray) -> float:
    outline = np.zeros(truth.shape, dtype=bool)
    outline[box] = mask
    return float(2 * (outline & truth).sum() / (outline.sum() + truth.sum()))


def _ball(
    shape: tuple[int, ...], spacing: np.ndarray, centre: np.ndarray, radius: float
) -> np.ndarray:
    offsets = (np.indices(shape).T - centre / spacing).T * spacing[:, None, None, None]
    ball: np.ndarray = np.sqrt((offsets**2).sum(axis=0)) <= radius
    return ball


@pytest.mark.parametrize("diameter", [6.0, 10.0, 16.0])
@pytest.mark.parametrize("spacing", [(1.0, 0.7, 0.7), (2.5, 0.8, 0.8)])
def test_an_outline_drawn_too_small_is_redrawn_at_the_edge(
    diameter: float, spacing: tuple[float, float, float]
) -> None:
    centre = np.array([20.3, 21.1, 19.7])
    shape = tuple(int(40 / s) for s in spacing)
    hu, inside = _partial_volume_sphere(shape, spacing, centre, diameter / 2)  # type: ignore[arg-type]
    first = _ball(hu.shape, np.array(spacing), centre, 0.4 * diameter)  # about half the volume
    box = tuple(slice(0, n) for n in hu.shape)

    refined_box, refined = refine_outline(hu, box, first, spacing)

    assert _dice(box, first, inside) < 0.75
    assert _dice(refined_box, refined, inside) >= 0.85


def test_a_part_solid_outline_takes_in_the_ground_glass_around_its_core() -> None:
    spacing = (1.0, 0.7, 0.7)
    shape = (40, 57, 57)
    centre = np.array([20.0, 20.0, 20.0])
    shell, inside = _partial_volume_sphere(shape, spacing, centre, 6.0)
    core, _ = _partial_volume_sphere(shape, spacing, centre, 2.5)
    ground_glass = LUNG_HU + (shell - LUNG_HU) * (-550.0 - LUNG_HU) / (NODULE_HU - LUNG_HU)
    hu = np.maximum(ground_glass, core)
    first = _ball(shape, np.array(spacing), centre, 4.8)  # the core and half the shell
    box = tuple(slice(0, n) for n in shape)

    refined_box, refined = refine_outline(hu, box, first, spacing)

    assert _dice(refined_box, refined, inside) >= 0.85 > _dice(box, first, inside)


def test_an_outline_without_contrast_is_kept_as_it_is() -> None:
    hu = np.full((30, 30, 30), LUNG_HU)
    first = np.zeros((6, 6, 6), dtype=bool)
    first[2:4, 2:4, 2:4] = True
    box = (slice(10, 16), slice(10, 16), slice(10, 16))

    assert refine_outline(hu, box, first, (1.0, 1.0, 1.0)) == (box, first)


def test_blobs_the_detector_already_covers_are_no_new_candidates() -> None:
    probability = np.zeros((20, 20, 20), dtype=np.float32)
    components = np.zeros(probability.shape, dtype=np.int32)
    components[4:8, 4:8, 4:8] = 1
    probability[15, 5, 5] = 0.2
    covered = Blob((5, 5, 5), 1.0, 0.3, 0.1)
    missed = Blob((15, 5, 5), 1.5, 0.3, 0.1)

    (candidate,) = blob_candidates([covered, missed], probability, components)

    assert candidate.label == BLOB_LABEL
    assert candidate.peak == (15, 5, 5)
    assert candidate.max_probability == pytest.approx(0.2)
    assert candidate.radius_mm == pytest.approx(missed.radius)
    assert candidate.blob is missed
    assert all(
        part.start <= c < part.stop for part, c in zip(candidate.box, (15, 5, 5), strict=True)
    )


def test_a_blob_is_a_true_nodule_when_a_nodule_voxel_is_near_its_centre() -> None:
    target = np.zeros((20, 20, 20), dtype=bool)
    target[10, 10, 12] = True
    components = np.zeros(target.shape, dtype=np.int32)
    near, far = Blob((10, 10, 10), 2.0, 0.3, 0.1), Blob((10, 10, 4), 2.0, 0.3, 0.1)

    probability = np.zeros(target.shape, dtype=np.float32)
    candidates = blob_candidates([near, far], probability, components)

    labels = [is_nodule(candidate, target, components) for candidate in candidates]

    assert labels == [1.0, 0.0]


def test_local_maxima_are_the_maximum_filter_peaks_edges_and_ties_included() -> None:
    rng = np.random.default_rng(7)
    values = rng.integers(0, 6, size=(12, 9, 10)).astype(np.float32)  # many ties
    everywhere = np.argwhere(np.ones(values.shape, dtype=bool))

    expected = np.argwhere(values == ndimage.maximum_filter(values, size=PEAK_WINDOW))

    assert np.array_equal(local_maxima(values, everywhere), expected)
