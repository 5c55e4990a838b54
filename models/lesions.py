"""Lesion measurements on the original grid: volume, longest axial diameter, mean HU, centroid."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from models.findings import Lesion
from models.volume import Volume


def longest_in_plane_diameter(mask: np.ndarray, row_spacing: float, column_spacing: float) -> float:
    """Longest distance across a 3D mask within one slice, in mm.

    Each voxel counts with its full extent: the distance between the farthest voxel centres plus
    one voxel, which is what a caliper on the displayed pixels reads.
    """
    best = 0.0
    for index in np.flatnonzero(mask.any(axis=(1, 2))):
        points = np.argwhere(mask[index]) * np.array([row_spacing, column_spacing])
        best = max(best, _farthest_pair(points))
    return best + (row_spacing + column_spacing) / 2 if mask.any() else 0.0


def _hull(points: np.ndarray) -> np.ndarray:
    if len(points) <= 3:
        return points
    try:
        hull: np.ndarray = points[ConvexHull(points).vertices]
    except QhullError:  # collinear points have no 2D hull: search them all
        return points
    return hull


def _farthest_pair(points: np.ndarray) -> float:
    points = _hull(points)
    if len(points) < 2:
        return 0.0
    differences = points[:, None, :] - points[None, :, :]
    return float(np.sqrt((differences**2).sum(-1)).max())


def measure(
    volume: Volume, lesion_map: np.ndarray, confidences: dict[int, float], label: int = 1
) -> tuple[Lesion, ...]:
    """One Lesion per index in `lesion_map` (1..n), measured on `volume`'s grid."""
    lesions = []
    boxes = ndimage.find_objects(lesion_map)
    for index, box in enumerate(boxes, start=1):
        if box is None:
            continue
        mask = lesion_map[box] == index
        centre = np.array(ndimage.center_of_mass(mask)) + [part.start for part in box]
        lesions.append(
            Lesion(
                index=index,
                label=label,
                volume_mm3=float(mask.sum()) * volume.voxel_volume_mm3,
                longest_axial_diameter_mm=longest_in_plane_diameter(
                    mask, volume.spacing[1], volume.spacing[2]
                ),
                mean_hu=float(volume.voxels[box][mask].mean()),
                centroid_patient_mm=tuple(float(v) for v in volume.index_to_patient(centre)),  # type: ignore[arg-type]
                centroid_voxel=tuple(float(v) for v in centre),  # type: ignore[arg-type]
                confidence=confidences.get(index, 0.0),
            )
        )
    return tuple(lesions)
