"""Training samples: phantom slabs on the working grid, and positive-biased patch sampling."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from models.patches import crop
from models.preprocess import resample, to_working_grid, working_shape
from models.reference.network import WORKING_SPACING
from models.reference.phantom import BAND_SHARES, Phantom, draw_geometry, generate

CHEST_LENGTH_MM = 300.0
# Seeds below this are for training; validation and evaluation seeds start above it.
TRAINING_SEED_LIMIT = 1_000_000
VALIDATION_SEED_BASE = 2_000_000
EVALUATION_SEED_BASE = 3_000_000


@dataclass(frozen=True)
class WorkingSample:
    image: torch.Tensor  # (z, y, x) scaled HU on the working grid
    target: torch.Tensor  # (z, y, x) uint8 nodule mask
    lungs: torch.Tensor  # (z, y, x) bool lung mask
    phantom: Phantom


def training_phantom(
    seed: int,
    nodule_count: int | None = None,
    band_shares: tuple[float, float, float] = BAND_SHARES,
) -> Phantom:
    """A slab of 72-110 mm from a random chest, with 1-6 nodules or `nodule_count` (sizes drawn
    by `band_shares`)."""
    rng = np.random.default_rng(seed + 7_000_000)
    geometry = draw_geometry(rng)
    length = float(rng.uniform(72, 110))
    start = float(rng.uniform(0, CHEST_LENGTH_MM - length))
    count = int(rng.integers(1, 7)) if nodule_count is None else nodule_count
    return generate(seed, geometry, count, (start, start + length), band_shares)


def on_working_grid(phantom: Phantom) -> WorkingSample:
    spacing = phantom.geometry.spacing
    image = to_working_grid(phantom.hu, spacing, WORKING_SPACING)
    size = image.shape
    target = resample(torch.from_numpy((phantom.labels > 0).astype(np.float32)), size) >= 0.5
    lungs = resample(torch.from_numpy(phantom.lungs.astype(np.float32)), size) >= 0.5
    return WorkingSample(image, target.to(torch.uint8), lungs, phantom)


NODULE_JITTER = 12
"""Voxels a per-nodule patch centre may stray from the nodule it was drawn for, on each axis."""


def _nodule_centres(
    sample: WorkingSample, rng: np.random.Generator, per_nodule: bool
) -> Callable[[], np.ndarray] | None:
    """Draws a centre on a nodule: a random nodule voxel (large nodules dominate), or with
    `per_nodule` a nodule drawn uniformly, then one of its voxels, moved up to NODULE_JITTER."""
    on_nodules = sample.target.numpy() > 0
    voxels = np.argwhere(on_nodules)
    if len(voxels) == 0:
        return None
    if not per_nodule:
        return lambda: voxels[int(rng.integers(len(voxels)))]
    components, count = ndimage.label(on_nodules)
    owners = components[tuple(voxels.T)]
    by_nodule = [voxels[owners == label] for label in range(1, count + 1)]

    def draw() -> np.ndarray:
        pool = by_nodule[int(rng.integers(count))]
        jitter = rng.integers(-NODULE_JITTER, NODULE_JITTER + 1, size=3)
        return pool[int(rng.integers(len(pool)))] + jitter

    return draw


def sample_centres(
    sample: WorkingSample, rng: np.random.Generator, count: int, per_nodule: bool = False
) -> np.ndarray:
    """Half on nodules, a quarter on bright lung (vessels: hard negatives), the rest in lung."""
    on_nodule = _nodule_centres(sample, rng, per_nodule)
    lungs = sample.lungs.numpy()
    bright = np.argwhere(lungs & (sample.image.numpy() > 0.35) & (sample.target.numpy() == 0))
    anywhere = np.argwhere(lungs)
    if len(anywhere) == 0:
        anywhere = np.argwhere(np.ones(sample.image.shape, dtype=bool))
    centres = []
    for draw in rng.uniform(size=count):
        if draw < 0.5 and on_nodule is not None:
            centres.append(on_nodule())
            continue
        pool = bright if draw < 0.75 and len(bright) else anywhere
        centres.append(pool[int(rng.integers(len(pool)))])
    return np.array(centres)


def patches(
    seeds: Iterator[int], size: int, per_phantom: int, per_nodule: bool = False
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless (image, target) patches, `per_phantom` from each freshly generated slab."""
    for seed in seeds:
        rng = np.random.default_rng(seed)
        sample = on_working_grid(training_phantom(seed))
        for centre in sample_centres(sample, rng, per_phantom, per_nodule):
            image, target = crop(sample.image, centre, size), crop(sample.target, centre, size)
            if rng.uniform() < 0.5:
                image, target = image.flip(-1), target.flip(-1)
            yield image, target


def working_shape_of(phantom: Phantom) -> tuple[int, int, int]:
    return working_shape(phantom.hu.shape, phantom.geometry.spacing, WORKING_SPACING)
