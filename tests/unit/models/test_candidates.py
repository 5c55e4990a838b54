"""Detector candidates: components of thresholded probability, kept by size and by the lungs."""

from __future__ import annotations

import numpy as np

from models.pipelines.candidates import find_candidates

SHAPE = (32, 32, 32)


def _ball(radius: float) -> np.ndarray:
    z, y, x = np.indices(SHAPE)
    inside = (z - 15) ** 2 + (y - 15) ** 2 + (x - 15) ** 2 <= radius**2
    return np.where(inside, 0.9, 0.0)


def _lungs_left_of(column: int) -> np.ndarray:
    lungs = np.zeros(SHAPE, dtype=bool)
    lungs[:, :, :column] = True
    return lungs


def test_a_component_inside_the_lungs_is_a_candidate_with_its_measures() -> None:
    (candidate,), labels = find_candidates(_ball(5), _lungs_left_of(32), (1.0, 1.0, 1.0), 0.5, 6.0)

    assert candidate.centroid == (15.0, 15.0, 15.0) and candidate.max_probability == 0.9
    assert candidate.volume_mm3 == float((labels == candidate.label).sum()) == 515.0


def test_a_pleural_nodule_half_in_the_lungs_counts_though_its_centre_is_outside() -> None:
    lungs = _lungs_left_of(15)  # the ball's centre column and those right of it are no lung
    found, _ = find_candidates(_ball(5), lungs, (1.0, 1.0, 1.0), 0.5, 6.0)

    assert len(found) == 1


def test_a_component_mostly_outside_the_lungs_or_too_small_is_dropped() -> None:
    assert find_candidates(_ball(5), _lungs_left_of(12), (1.0, 1.0, 1.0), 0.5, 6.0)[0] == []
    assert find_candidates(_ball(1), _lungs_left_of(32), (1.0, 1.0, 1.0), 0.5, 8.0)[0] == []
