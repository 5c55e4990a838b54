"""Bring a volume's axes into the orientation the reference networks were trained in, and back.

Canonical: slice index grows towards the feet, row index towards the patient's back, column index
towards the patient's left (an axial head-first supine acquisition). Only axis flips are applied.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.volume import Volume

# Patient-space direction each canonical axis should point along (DICOM LPS: +z is head).
CANONICAL = (np.array([0.0, 0.0, -1.0]), np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0]))


@dataclass(frozen=True)
class Flips:
    axes: tuple[int, ...]

    def apply(self, array: np.ndarray) -> np.ndarray:
        return np.flip(array, self.axes) if self.axes else array

    # Flipping is its own inverse.
    undo = apply


def canonical_flips(volume: Volume) -> Flips:
    directions = (volume.slice_cosine, volume.column_cosine, volume.row_cosine)
    axes = tuple(
        axis
        for axis, (direction, wanted) in enumerate(zip(directions, CANONICAL, strict=True))
        if float(np.dot(direction, wanted)) < 0
    )
    return Flips(axes)
