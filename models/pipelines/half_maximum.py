"""Half-maximum segmentation of a small bright lesion around a point, on the original grid.

For blob candidates the detector's probability is too faint to outline them, so the lesion
is outlined from the HU themselves: the voxels brighter than halfway between the lung around
it and its centre, connected to the centre and within 1.4 blob radii. A partial-
volume voxel is about half nodule at that level, so the outline follows the nodule's edge.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

BACKGROUND_PERCENTILE = 25.0
REACH = 1.4  # the box and the sphere kept, in blob radii


def half_maximum_mask(
    hu: np.ndarray,
    centre: Sequence[float],
    radius_mm: float,
    spacing: Sequence[float],
) -> tuple[tuple[slice, slice, slice], np.ndarray]:
    """The lesion's box on `hu`'s grid and its mask there; `centre` in voxels of `hu`."""
    spacing_array = np.asarray(spacing, dtype=float)
    reach = np.ceil(REACH * radius_mm / spacing_array).astype(int) + 1
    middle = np.clip(np.round(centre).astype(int), 0, np.array(hu.shape) - 1)
    low = np.maximum(middle - reach, 0)
    high = np.minimum(middle + reach + 1, hu.shape)
    box = (slice(low[0], high[0]), slice(low[1], high[1]), slice(low[2], high[2]))
    local = hu[box].astype(np.float32)
    inner = middle - low
    offsets = (np.indices(local.shape).T - inner).T * spacing_array[:, None, None, None]
    distance = np.sqrt((offsets**2).sum(axis=0))
    sphere = distance <= REACH * radius_mm
    core = distance <= max(0.5 * radius_mm, float(spacing_array.max()))
    peak = float(np.mean(local[core]))
    background = float(np.percentile(local[sphere], BACKGROUND_PERCENTILE))
    bright = (local >= 0.5 * (peak + background)) & sphere
    labels, _ = ndimage.label(bright)
    chosen = labels[tuple(inner)] or _nearest_label(labels, distance)
    mask = labels == chosen if chosen else np.zeros(local.shape, dtype=bool)
    return box, mask


def _nearest_label(labels: np.ndarray, distance: np.ndarray) -> int:
    """The component closest to the centre, or 0 if there is none."""
    if not labels.any():
        return 0
    return int(labels.flat[int(np.argmin(np.where(labels > 0, distance, np.inf)))])
