"""Patch centre sampling for detector training: per nodule voxel, or per nodule."""

from __future__ import annotations

import numpy as np
import torch

from models.reference.phantom import Phantom
from models.reference.samples import NODULE_JITTER, WorkingSample, sample_centres


def _sample_with_a_large_and_a_small_nodule() -> WorkingSample:
    target = torch.zeros((60, 60, 200), dtype=torch.uint8)
    target[10:50, 10:50, 10:50] = 1  # 64,000 voxels
    target[28:31, 28:31, 88:91] = 1  # 27 voxels
    lungs = torch.zeros(target.shape, dtype=torch.bool)
    lungs[:, :, 150:] = True  # the draws off nodules land here, away from both
    phantom = Phantom.__new__(Phantom)  # the sampler never looks at the phantom
    return WorkingSample(torch.zeros(target.shape), target, lungs, phantom)


def _draws_near(centres: np.ndarray, point: tuple[int, int, int], reach: float) -> int:
    return int((np.abs(centres - np.array(point)).max(axis=1) <= reach).sum())


def test_per_nodule_sampling_draws_a_small_nodule_as_often_as_a_large_one() -> None:
    sample = _sample_with_a_large_and_a_small_nodule()
    centres = sample_centres(sample, np.random.default_rng(0), 4000, per_nodule=True)
    near_small = _draws_near(centres, (29, 29, 89), 1 + NODULE_JITTER)
    near_large = _draws_near(centres, (29, 29, 29), 20 + NODULE_JITTER)
    # Half the draws go to nodules, split evenly between the two.
    assert 850 < near_small < 1150
    assert 850 < near_large < 1150


def test_per_voxel_sampling_rarely_draws_the_small_nodule() -> None:
    sample = _sample_with_a_large_and_a_small_nodule()
    centres = sample_centres(sample, np.random.default_rng(0), 4000)
    near_small = _draws_near(centres, (29, 29, 89), 1)
    assert near_small < 20
