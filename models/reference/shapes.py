"""Partial-volume rasterisers for the phantom: ellipsoids and tubes on an anisotropic grid.

Occupancy is a linear ramp of the signed distance across one voxel measured along the surface
normal, which approximates the slice-profile blur of a real scanner at little cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Grid:
    """Voxel centres at index * spacing (mm), axes (z, y, x)."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]

    def box(self, low_mm: np.ndarray, high_mm: np.ndarray) -> tuple[slice, slice, slice] | None:
        spacing = np.asarray(self.spacing)
        low = np.maximum(np.floor(low_mm / spacing).astype(int), 0)
        high = np.minimum(np.ceil(high_mm / spacing).astype(int) + 1, self.shape)
        if np.any(high <= low):
            return None
        return (slice(low[0], high[0]), slice(low[1], high[1]), slice(low[2], high[2]))

    def coordinates(self, box: tuple[slice, slice, slice]) -> tuple[np.ndarray, ...]:
        axes = [
            (np.arange(part.start, part.stop, dtype=np.float32) * step)
            for part, step in zip(box, self.spacing, strict=True)
        ]
        return tuple(np.meshgrid(*axes, indexing="ij", sparse=True))


def ramp(distance: np.ndarray, width: np.ndarray | float) -> np.ndarray:
    """Occupancy in [0, 1] from a signed distance (negative inside)."""
    result: np.ndarray = np.clip(0.5 - distance / width, 0.0, 1.0)
    return result


def normal_width(normal: tuple[np.ndarray, ...], spacing: tuple[float, float, float]) -> np.ndarray:
    """Voxel extent along a unit normal field: the ramp width for partial volume."""
    squared = sum((n * s) ** 2 for n, s in zip(normal, spacing, strict=True))
    result: np.ndarray = np.sqrt(np.maximum(squared, 1e-6))
    return result


def ellipsoid(
    grid: Grid, centre: np.ndarray, radii: np.ndarray, rotation: np.ndarray
) -> tuple[tuple[slice, slice, slice], np.ndarray, np.ndarray] | None:
    """Occupancy and hard mask (voxel centre inside) of a rotated ellipsoid, in its bounding box."""
    reach = float(radii.max()) + 2.0 * max(grid.spacing)
    box = grid.box(centre - reach, centre + reach)
    if box is None:
        return None
    z, y, x = grid.coordinates(box)
    offsets = (z - centre[0], y - centre[1], x - centre[2])
    local = [sum(rotation[row, col] * offsets[col] for col in range(3)) for row in range(3)]
    scaled = np.sqrt(sum((c / r) ** 2 for c, r in zip(local, radii, strict=True)))
    scaled = np.maximum(scaled, 1e-6)
    distance = (scaled - 1.0) * float(np.exp(np.mean(np.log(radii))))
    gradient = [
        sum(rotation[row, axis] * local[row] / radii[row] ** 2 for row in range(3))
        for axis in range(3)
    ]
    norm = np.sqrt(sum(g**2 for g in gradient)) + 1e-9
    width = normal_width(tuple(g / norm for g in gradient), grid.spacing)
    return box, ramp(distance, width), distance < 0


def tube_segment(
    grid: Grid, start: np.ndarray, end: np.ndarray, radius: float
) -> tuple[tuple[slice, slice, slice], np.ndarray] | None:
    """Occupancy of a cylinder with rounded ends from `start` to `end` (mm, z/y/x)."""
    reach = radius + 2.0 * max(grid.spacing)
    box = grid.box(np.minimum(start, end) - reach, np.maximum(start, end) + reach)
    if box is None:
        return None
    z, y, x = grid.coordinates(box)
    axis = end - start
    length_sq = float(axis @ axis) or 1e-6
    rel = (z - start[0], y - start[1], x - start[2])
    t = np.clip(sum(r * a for r, a in zip(rel, axis, strict=True)) / length_sq, 0.0, 1.0)
    offset = tuple(r - t * a for r, a in zip(rel, axis, strict=True))
    distance_centre = np.sqrt(sum(o**2 for o in offset)) + 1e-6
    width = normal_width(tuple(o / distance_centre for o in offset), grid.spacing)
    return box, ramp(distance_centre - radius, width)
