"""Detector probability -> candidates on the working grid, and the classifier view of them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from models.patches import crop
from models.pipelines.blobs import Blob

CLASSIFIER_PATCH = 32


MIN_LUNG_FRACTION = 1 / 3
"""A component whose centre lies outside the lung mask is still a candidate if this share of
it is inside: a large nodule on the pleura is no lung by HU, so its centre can fall outside."""

BLOB_LABEL = 0
"""`Candidate.label` of a blob candidate: it has no component in the detector's label array."""


@dataclass(frozen=True)
class Candidate:
    """A connected region of thresholded probability (`label`: its value in the label array),
    or a round blob the detector missed (`label` BLOB_LABEL, `box` the cube of its radius)."""

    label: int
    box: tuple[slice, slice, slice]
    centroid: tuple[float, float, float]
    peak: tuple[int, int, int]
    max_probability: float
    volume_mm3: float
    radius_mm: float = 0.0  # a blob's; 0 for a detector component
    blob: Blob | None = None  # the blob a blob candidate stands for


def find_candidates(
    probability: np.ndarray,
    lungs: np.ndarray,
    spacing: Sequence[float],
    threshold: float,
    min_volume_mm3: float,
) -> tuple[list[Candidate], np.ndarray]:
    """Components of probability >= threshold, large enough, with their centre (or a third of
    them) in the lungs."""
    labels, _ = ndimage.label(probability >= threshold, structure=np.ones((3, 3, 3)))
    voxel_mm3 = float(np.prod(spacing))
    found = []
    for label, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        inside = labels[box] == label
        volume = float(inside.sum()) * voxel_mm3
        centre = np.array(ndimage.center_of_mass(inside)) + [part.start for part in box]
        index = tuple(np.clip(np.round(centre).astype(int), 0, np.array(lungs.shape) - 1))
        if volume < min_volume_mm3:
            continue
        if not lungs[index] and lungs[box][inside].mean() < MIN_LUNG_FRACTION:
            continue
        local = np.where(inside, probability[box], 0.0)
        peak = np.unravel_index(int(np.argmax(local)), local.shape)
        found.append(
            Candidate(
                label=label,
                box=box,
                centroid=(float(centre[0]), float(centre[1]), float(centre[2])),
                peak=tuple(int(p + part.start) for p, part in zip(peak, box, strict=True)),  # type: ignore[arg-type]
                max_probability=float(local.max()),
                volume_mm3=volume,
            )
        )
    return found, labels


def blob_candidates(
    blobs: Sequence[Blob], probability: np.ndarray, components: np.ndarray
) -> list[Candidate]:
    """Candidates for the blobs whose centre no detector component already covers."""
    found = []
    for blob in blobs:
        if components[blob.centre]:
            continue
        reach = int(np.ceil(blob.radius)) + 1
        box = tuple(
            slice(max(c - reach, 0), min(c + reach + 1, n))
            for c, n in zip(blob.centre, probability.shape, strict=True)
        )
        centre = (float(blob.centre[0]), float(blob.centre[1]), float(blob.centre[2]))
        found.append(
            Candidate(
                label=BLOB_LABEL,
                box=box,  # type: ignore[arg-type]
                centroid=centre,
                peak=blob.centre,
                max_probability=float(probability[blob.centre]),
                volume_mm3=4.0 / 3.0 * np.pi * blob.radius**3,
                radius_mm=blob.radius,
                blob=blob,
            )
        )
    return found


def classifier_inputs(
    image: torch.Tensor, probability: torch.Tensor, candidates: Sequence[Candidate]
) -> torch.Tensor:
    """(n, 2, 32, 32, 32): the scaled image and the detector probability around each candidate."""
    if not candidates:
        return torch.zeros((0, 2, CLASSIFIER_PATCH, CLASSIFIER_PATCH, CLASSIFIER_PATCH))
    return torch.stack(
        [
            torch.stack(
                [
                    crop(image, c.centroid, CLASSIFIER_PATCH),
                    crop(probability, c.centroid, CLASSIFIER_PATCH),
                ]
            )
            for c in candidates
        ]
    )
