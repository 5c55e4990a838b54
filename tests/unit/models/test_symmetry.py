"""The classifier's symmetry views: the 16 of training, the four averaged at inference, and the
pipeline's confidence as that average for the candidates over the gate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from models.pipelines.candidates import Candidate
from models.pipelines.lung_nodule import VIEW_GATE, LungNodulePipeline
from models.pipelines.symmetry import SCORING_VIEWS, VIEWS, mean_over_views
from models.reference.classifier_training import augment


def _ball(size: int = 9) -> torch.Tensor:
    axis = torch.arange(size) - size // 2
    z, y, x = torch.meshgrid(axis, axis, axis, indexing="ij")
    return (z**2 + y**2 + x**2 <= 9).float()[None, None]


def test_the_sixteen_views_differ_and_leave_a_ball_alone() -> None:
    cube = torch.rand(1, 2, 6, 5, 5, generator=torch.Generator().manual_seed(0))

    seen = {view.apply(cube).numpy().tobytes() for view in VIEWS}

    assert len(VIEWS) == len(seen) == 16
    assert all(torch.equal(view.apply(_ball()), _ball()) for view in VIEWS)


def test_each_flip_and_the_transpose_is_in_half_the_scoring_views() -> None:
    assert set(SCORING_VIEWS) <= set(VIEWS) and len(set(SCORING_VIEWS)) == 4
    assert all(sum(view.flips[axis] for view in SCORING_VIEWS) == 2 for axis in range(3))
    assert sum(view.transpose for view in SCORING_VIEWS) == 2


def test_training_draws_every_view() -> None:
    cube = torch.rand(1, 1, 4, 3, 3, generator=torch.Generator().manual_seed(1))
    rng = np.random.default_rng(2)
    by_view = {view.apply(cube).numpy().tobytes(): view for view in VIEWS}

    drawn = [by_view[augment(cube, rng).numpy().tobytes()] for _ in range(200)]

    assert set(drawn) == set(VIEWS)


def _corner(cubes: torch.Tensor) -> torch.Tensor:
    return cubes[:, 0, 0, 0, 0]


def test_the_mean_over_views_averages_what_each_view_shows() -> None:
    cube = torch.arange(2 * 4 * 4 * 4, dtype=torch.float32).reshape(1, 2, 4, 4, 4)

    expected = torch.stack([_corner(view.apply(cube)) for view in SCORING_VIEWS]).mean(0)

    assert torch.equal(mean_over_views(_corner, cube), expected)
    assert not torch.equal(expected, _corner(cube))


class _LowerHalfBrighter(nn.Module):
    """A stand-in classifier that, unlike a trained one, depends on the cube's orientation:
    confident where the cube's lower z half is brighter than its upper half."""

    def forward(self, cubes: torch.Tensor) -> torch.Tensor:
        half = cubes.shape[2] // 2
        lower, upper = cubes[:, 0, :half], cubes[:, 0, half:]
        return 10 * (lower.mean((1, 2, 3)) - upper.mean((1, 2, 3)))


def _candidate(z: int, y: int, x: int) -> Candidate:
    box = (slice(z - 2, z + 3), slice(y - 2, y + 3), slice(x - 2, x + 3))
    return Candidate(1, box, (float(z), float(y), float(x)), (z, y, x), 0.9, 100.0)


def test_candidates_over_the_gate_get_the_mean_over_views_the_others_their_own_view() -> None:
    pipeline = LungNodulePipeline()
    image = torch.zeros(64, 64, 64)
    image[16:32, :, :32] = 1.0  # the first candidate's lower half
    image[32:48, :, 32:] = 1.0  # the second one's upper half
    over, under = _candidate(32, 20, 16), _candidate(32, 20, 48)

    scores = pipeline.score(image, torch.zeros_like(image), [over, under], _LowerHalfBrighter())

    # one view of `over` says 1.0; two of the four scoring views flip z and say 0.0
    assert scores[0][1] == pytest.approx(0.5, abs=1e-3)
    assert scores[1][1] < VIEW_GATE and scores[1][1] == pytest.approx(0.0, abs=1e-3)
