"""The symmetries of a candidate cube that the classifier is trained to ignore, and scoring
averaged over some of them (test-time augmentation).

A cube is (batch, channel, z, y, x). Its 16 views: a flip or not along each of the three
axes, times the in-plane (y, x) transpose or not. Nodules have no handedness, so the
classifier learns all 16 as augmentation (`models.reference.classifier_training.augment`). At
inference the mean of its probabilities over four of them (`SCORING_VIEWS`) is steadier than
one view: on validation phantoms vessel crossings that one view scored above the blob threshold
rarely stayed there on average (docs/models.md, release 0.5.5).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import torch

SPATIAL_AXES = (2, 3, 4)


@dataclass(frozen=True)
class View:
    flips: tuple[bool, bool, bool]  # along z, y, x
    transpose: bool  # y and x swapped, after the flips

    def apply(self, cubes: torch.Tensor) -> torch.Tensor:
        axes = [axis for axis, flip in zip(SPATIAL_AXES, self.flips, strict=True) if flip]
        viewed = cubes.flip(axes) if axes else cubes
        return viewed.transpose(3, 4) if self.transpose else viewed


VIEWS = tuple(
    View((z, y, x), transpose) for z, y, x, transpose in itertools.product((False, True), repeat=4)
)
SCORING_VIEWS = (
    View((False, False, False), False),
    View((True, False, True), True),
    View((False, True, True), False),
    View((True, True, False), True),
)
"""Four of the 16, each flip and the transpose in two of them: the mean over all 16 found one
validation nodule more of 247, at four times the cost (per candidate, docs/models.md)."""


def mean_over_views(
    probability: Callable[[torch.Tensor], torch.Tensor], cubes: torch.Tensor
) -> torch.Tensor:
    """The mean of `probability` (cubes -> one probability per cube) over `SCORING_VIEWS`."""
    return torch.stack([probability(view.apply(cubes)) for view in SCORING_VIEWS]).mean(0)
