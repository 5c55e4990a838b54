"""Half-maximum outlines of small bright lesions on the original grid, from their HU.

A phantom nodule's edge (and a real one's, to partial volume) lies where a voxel is half
nodule, half surrounding lung: at the HU halfway between the two. Two uses:

- `half_maximum_mask`, for blob candidates (the detector's probability is too faint to outline
  them): halfway between the lung around the blob and its centre, connected to the centre,
  within 1.4 blob radii.
- `refine_outline`, for every kept lesion once it has a first outline (the detector's
  thresholded probability, which runs small: the nodules the shipped pipeline detected in 40
  validation phantoms had a median of 0.86 of their true volume, a tenth of them under 0.34):
  halfway between the lung around the outline (its lower quartile in a ring) and the
  outline's median HU (its 70th percentile for outlines under 6 mm, where partial-volume
  voxels weigh more), the bright components that touch the first outline, within 1.3
  equivalent-sphere radii of its centroid. On those 88 nodules it raised the mean Dice from
  0.78 to 0.92 (under 6 mm 0.86 -> 0.89, 6 mm and over 0.74 -> 0.93; part-solid 0.59 -> 0.79,
  ground-glass 0.66 -> 0.93); the median alone for all sizes gave 0.90.
  Where the first outline is not brighter than its surroundings (by `MIN_CONTRAST_HU`), or
  lies too deep inside a lesion for a ring of lung to show, it is kept as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

BACKGROUND_PERCENTILE = 25.0
REACH = 1.4  # the box and the sphere kept, in blob radii
REFINE_LEVEL_PERCENTILE = 50.0
SMALL_OUTLINE_MM = 6.0  # equivalent-sphere diameter under which partial volume weighs more
SMALL_LEVEL_PERCENTILE = 70.0
REFINE_REACH = 1.3  # in equivalent-sphere radii of the first outline
MIN_CONTRAST_HU = 100.0

Box = tuple[slice, slice, slice]


def half_maximum_mask(
    hu: np.ndarray,
    centre: Sequence[float],
    radius_mm: float,
    spacing: Sequence[float],
) -> tuple[Box, np.ndarray]:
    """The lesion's box on `hu`'s grid and its mask there; `centre` in voxels of `hu`."""
    spacing_array = np.asarray(spacing, dtype=float)
    middle = np.clip(np.round(centre).astype(int), 0, np.array(hu.shape) - 1)
    box = _box_around(middle, REACH * radius_mm, spacing_array, hu.shape)
    local = hu[box].astype(np.float32)
    inner = middle - np.array([part.start for part in box])
    distance = _distance_mm(local.shape, inner, spacing_array)
    sphere = distance <= REACH * radius_mm
    core = distance <= max(0.5 * radius_mm, float(spacing_array.max()))
    peak = float(np.mean(local[core]))
    background = float(np.percentile(local[sphere], BACKGROUND_PERCENTILE))
    bright = (local >= 0.5 * (peak + background)) & sphere
    labels, _ = ndimage.label(bright)
    chosen = labels[tuple(inner)] or _nearest_label(labels, distance)
    mask = labels == chosen if chosen else np.zeros(local.shape, dtype=bool)
    return box, mask


def refine_outline(
    hu: np.ndarray, box: tuple[slice, ...], mask: np.ndarray, spacing: Sequence[float]
) -> tuple[tuple[slice, ...], np.ndarray]:
    """A lesion's outline redrawn at half maximum: `mask` is its first outline in `box` of
    `hu`; returns the new box on `hu`'s grid and the mask there (the first one if it cannot
    be improved on)."""
    spacing_array = np.asarray(spacing, dtype=float)
    starts = np.array([part.start for part in box])
    centroid = starts + np.array(ndimage.center_of_mass(mask))
    radius = float(np.cbrt(3 * mask.sum() * spacing_array.prod() / (4 * np.pi)))
    reach = REFINE_REACH * radius + 0.5 * float(spacing_array.max())
    region = _box_around(np.round(centroid).astype(int), reach, spacing_array, hu.shape)
    first = np.zeros([part.stop - part.start for part in region], dtype=bool)
    first[_overlap(region, box)] = mask[_overlap(box, region)]
    local = hu[region].astype(np.float32)
    offset = centroid - np.array([part.start for part in region])
    sphere = _distance_mm(local.shape, offset, spacing_array) <= reach
    ring = sphere & ~ndimage.binary_dilation(first)
    if not first.any() or not ring.any():
        return box, mask
    small = 2 * radius < SMALL_OUTLINE_MM
    level = float(
        np.percentile(local[first], SMALL_LEVEL_PERCENTILE if small else REFINE_LEVEL_PERCENTILE)
    )
    background = float(np.percentile(local[ring], BACKGROUND_PERCENTILE))
    if level - background < MIN_CONTRAST_HU:
        return box, mask
    labels, _ = ndimage.label((local >= 0.5 * (level + background)) & sphere)
    touching = np.unique(labels[first])
    touching = touching[touching > 0]
    if not touching.size:
        return box, mask
    return region, np.isin(labels, touching)


def _box_around(
    middle: np.ndarray, reach_mm: float, spacing: np.ndarray, shape: tuple[int, ...]
) -> Box:
    """The voxels within `reach_mm` (plus one) of voxel `middle` along each axis, clipped."""
    reach = np.ceil(reach_mm / spacing).astype(int) + 1
    low = np.maximum(middle - reach, 0)
    high = np.minimum(middle + reach + 1, shape)
    return (slice(low[0], high[0]), slice(low[1], high[1]), slice(low[2], high[2]))


def _distance_mm(shape: tuple[int, ...], centre: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Each voxel's distance from `centre` (voxel coordinates), in mm."""
    offsets = (np.indices(shape).T - centre).T * spacing[:, None, None, None]
    distance: np.ndarray = np.sqrt((offsets**2).sum(axis=0))
    return distance


def _overlap(inner: tuple[slice, ...], outer: tuple[slice, ...]) -> tuple[slice, ...]:
    """Where box `outer` meets box `inner`, in `inner`'s own coordinates."""
    return tuple(
        slice(max(o.start, i.start) - i.start, min(o.stop, i.stop) - i.start)
        for i, o in zip(inner, outer, strict=True)
    )


def _nearest_label(labels: np.ndarray, distance: np.ndarray) -> int:
    """The component closest to the centre, or 0 if there is none."""
    if not labels.any():
        return 0
    return int(labels.flat[int(np.argmin(np.where(labels > 0, distance, np.inf)))])
