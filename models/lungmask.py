"""A lung mask from HU: low-density regions inside the body, holes and pleural bumps closed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

LUNG_THRESHOLD_HU = -400.0
MIN_LUNG_ML = 30.0


def lung_mask(hu: np.ndarray, spacing: Sequence[float], close_mm: float = 6.0) -> np.ndarray:
    """Boolean mask of the lungs on the grid of `hu` (use a coarse grid: it is made for speed).

    Air outside the body (touching the in-plane border) is dropped; components smaller than
    MIN_LUNG_ML are dropped; each axial slice's holes (vessels, nodules) are filled and a closing
    of `close_mm` takes in nodules that sit on the pleura.
    """
    low = hu < LUNG_THRESHOLD_HU
    labels, count = ndimage.label(low)
    if count == 0:
        return np.zeros(hu.shape, dtype=bool)
    border = np.unique(
        np.concatenate(
            [labels[:, 0, :], labels[:, -1, :], labels[:, :, 0], labels[:, :, -1]], axis=None
        )
    )
    sizes = ndimage.sum_labels(np.ones_like(labels), labels, index=np.arange(1, count + 1))
    voxel_ml = float(np.prod(spacing)) / 1000.0
    keep = np.zeros(count + 1, dtype=bool)
    keep[1:] = sizes * voxel_ml >= MIN_LUNG_ML
    keep[border] = False
    mask = keep[labels]
    radius = np.maximum(np.round(close_mm / np.asarray(spacing)).astype(int), 1)
    structure = _ellipsoid(radius)
    mask = ndimage.binary_closing(np.pad(mask, [(r, r) for r in radius]), structure)
    mask = mask[tuple(slice(r, -r) for r in radius)]
    return fill_holes_per_slice(mask)


def fill_holes_per_slice(mask: np.ndarray) -> np.ndarray:
    """`binary_fill_holes` of every axial slice, in one labelling of the whole volume: the
    background's 4-connected components within each slice (no connection across slices);
    those not touching the slice's border are holes."""
    cross = ndimage.generate_binary_structure(2, 1)
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = cross
    labels, _ = ndimage.label(~mask, structure=structure)
    outside = np.unique(
        np.concatenate(
            [labels[:, 0, :], labels[:, -1, :], labels[:, :, 0], labels[:, :, -1]], axis=None
        )
    )
    filled: np.ndarray = ~np.isin(labels, outside[outside > 0])
    return filled


def _ellipsoid(radius: np.ndarray) -> np.ndarray:
    grids = np.ogrid[tuple(slice(-r, r + 1) for r in radius)]
    result: np.ndarray = (
        sum((g / max(r, 1)) ** 2 for g, r in zip(grids, radius, strict=True)) <= 1.0
    )
    return result
