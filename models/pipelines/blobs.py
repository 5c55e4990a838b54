"""Blob candidates: round bright spots in the lungs, from a multi-scale Laplacian of Gaussian.

The U-Net detector finds nodules from about 6 mm up; on 3-6 mm ones its probability barely
rises. A classical blob filter finds them, together with many vessel crossings and bends,
which the candidate classifier is trained to reject (the detection + false-positive
reduction design of lung CAD systems).

Per scale sigma, on the working grid (1 mm, scaled HU): smooth with a Gaussian, take the
scale-normalised negative Laplacian (bright blobs of radius ~ sigma * sqrt(3) peak), keep its
local maxima inside the lungs above the response gate, and among those the round ones: all
three Hessian eigenvalues negative, the weakest of them (sigma^2-normalised) at least the
roundness gate (a vessel is flat along its axis, so its weakest eigenvalue is ~0); `BlobGates`.
Peaks of several scales close to each other are merged, the strongest response kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

FINE_SIGMAS_MM = (1.0, 1.5)  # on the 1 mm working grid: nodules of about 3-5 mm
COARSE_SIGMAS_MM = (2.2, 3.2)  # on a 2 mm grid: about 7-11 mm (larger ones are the U-Net's)
PEAK_WINDOW = 5


@dataclass(frozen=True)
class BlobGates:
    """The least filter response and roundness of a blob. The defaults are the gates the
    shipped classifier was mined through, and the pipeline's where the weights' thresholds
    name none (`blob_response`, `blob_roundness` in reference.json)."""

    response: float = 0.15
    roundness: float = 0.04


@dataclass(frozen=True)
class Blob:
    """A round peak on the working grid: centre (z, y, x), sigma (voxels), filter responses."""

    centre: tuple[int, int, int]
    sigma: float
    response: float
    roundness: float

    @property
    def radius(self) -> float:
        return self.sigma * math.sqrt(3.0)


def find_blobs(image: np.ndarray, lungs: np.ndarray, gates: BlobGates = BlobGates()) -> list[Blob]:
    """Round peaks of `image` (z, y, x, scaled HU on a 1 mm grid) inside `lungs`."""
    image = np.ascontiguousarray(image, dtype=np.float32)
    found = [blob for sigma in FINE_SIGMAS_MM for blob in _blobs_at(image, lungs, sigma, 1, gates)]
    coarse_image = halve(image)
    coarse_lungs = lungs[::2, ::2, ::2][tuple(slice(0, n) for n in coarse_image.shape)]
    for sigma in COARSE_SIGMAS_MM:
        found += _blobs_at(coarse_image, coarse_lungs, sigma, 2, gates)
    return merge_scales(found)


def halve(image: np.ndarray) -> np.ndarray:
    """Means of 2x2x2 blocks: coarse voxel i covers fine voxels 2i and 2i + 1."""
    a, b, c = (max(n // 2, 1) for n in image.shape)
    padding = [(0, max(0, 2 * k - n)) for k, n in zip((a, b, c), image.shape, strict=True)]
    even = np.pad(image, padding, "edge")
    blocks = even[: 2 * a, : 2 * b, : 2 * c].reshape(a, 2, b, 2, c, 2)
    result: np.ndarray = blocks.mean(axis=(1, 3, 5), dtype=np.float32)
    return result


def _blobs_at(
    image: np.ndarray, lungs: np.ndarray, sigma_mm: float, step: int, gates: BlobGates
) -> list[Blob]:
    """Round local maxima of the normalised LoG at one scale, in working-grid voxels."""
    sigma = sigma_mm / step
    smooth = ndimage.gaussian_filter(image, sigma, mode="nearest", truncate=3.0)
    response = -(sigma**2) * laplacian(smooth)
    points = local_maxima(response, np.argwhere((response > gates.response) & lungs))
    roundness = sigma**2 * weakest_curvature(smooth, points)
    return [
        Blob(
            (int(z) * step, int(y) * step, int(x) * step),
            sigma_mm,
            float(response[z, y, x]),
            float(value),
        )
        for (z, y, x), value in zip(points, roundness, strict=True)
        if value >= gates.roundness
    ]


def local_maxima(values: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The rows of `points` (n, 3 indices) whose value is the largest in their PEAK_WINDOW
    cube, cut at the volume's edges, ties included: `values == maximum_filter(values)` at
    those points, without filtering the whole volume (the face neighbours, compared first,
    rule out most points)."""
    reach = PEAK_WINDOW // 2
    padded = np.pad(values, reach, mode="constant", constant_values=-np.inf)
    strides = np.array(padded.strides) // padded.itemsize
    flat_values = padded.ravel()
    flat = (points + reach) @ strides
    centre = flat_values[flat]
    keep = np.arange(len(points))
    for offset in _window_offsets(reach):
        keep = keep[centre[keep] >= flat_values[flat[keep] + int(offset @ strides)]]
    result: np.ndarray = points[keep]
    return result


def _window_offsets(reach: int) -> np.ndarray:
    """Every offset of a (2 reach + 1)^3 cube but the centre, nearest first."""
    span = np.arange(-reach, reach + 1)
    offsets = np.stack(np.meshgrid(span, span, span, indexing="ij"), axis=-1).reshape(-1, 3)
    offsets = offsets[np.abs(offsets).sum(axis=1) > 0]
    ordered: np.ndarray = offsets[np.argsort(np.abs(offsets).sum(axis=1), kind="stable")]
    return ordered


def laplacian(volume: np.ndarray) -> np.ndarray:
    """The 7-point discrete Laplacian, edges replicated; same shape and dtype."""
    padded = np.pad(volume, 1, mode="edge")
    result = -6 * volume
    for axis in range(3):
        for shift in (0, 2):
            index = [slice(1, -1)] * 3
            index[axis] = slice(shift, shift + volume.shape[axis])
            result += padded[tuple(index)]
    return result


def weakest_curvature(smooth: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Per point, minus the largest Hessian eigenvalue of `smooth` (> 0 only if all are < 0)."""
    z, y, x = np.clip(points, 1, np.array(smooth.shape) - 2).T

    def at(dz: int, dy: int, dx: int) -> np.ndarray:
        values: np.ndarray = smooth[z + dz, y + dy, x + dx]
        return values

    centre = at(0, 0, 0)
    hessian = np.empty((len(points), 3, 3), dtype=np.float32)
    hessian[:, 0, 0] = at(1, 0, 0) - 2 * centre + at(-1, 0, 0)
    hessian[:, 1, 1] = at(0, 1, 0) - 2 * centre + at(0, -1, 0)
    hessian[:, 2, 2] = at(0, 0, 1) - 2 * centre + at(0, 0, -1)
    hessian[:, 0, 1] = hessian[:, 1, 0] = (
        at(1, 1, 0) - at(1, -1, 0) - at(-1, 1, 0) + at(-1, -1, 0)
    ) / 4
    hessian[:, 0, 2] = hessian[:, 2, 0] = (
        at(1, 0, 1) - at(1, 0, -1) - at(-1, 0, 1) + at(-1, 0, -1)
    ) / 4
    hessian[:, 1, 2] = hessian[:, 2, 1] = (
        at(0, 1, 1) - at(0, 1, -1) - at(0, -1, 1) + at(0, -1, -1)
    ) / 4
    largest = np.linalg.eigvalsh(hessian)[:, 2] if len(points) else np.zeros(0)
    result: np.ndarray = np.maximum(-largest, 0.0)
    return result


def merge_scales(blobs: list[Blob]) -> list[Blob]:
    """Strongest first; a blob whose centre lies within a kept one's radius is dropped."""
    kept: list[Blob] = []
    centres = np.zeros((len(blobs), 3))
    reach = np.zeros(len(blobs))
    for blob in sorted(blobs, key=lambda b: -b.response):
        distances = np.linalg.norm(centres[: len(kept)] - blob.centre, axis=1)
        if not (distances <= reach[: len(kept)]).any():
            centres[len(kept)], reach[len(kept)] = blob.centre, max(blob.radius, 2.0)
            kept.append(blob)
    return kept
