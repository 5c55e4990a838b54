"""Kept candidates drawn on the original grid: one lesion each, numbered without gaps."""

from __future__ import annotations

import numpy as np
import torch

from models.pipelines.candidates import BLOB_LABEL, Candidate
from models.pipelines.lung_nodule import paint_lesions

LUNG_HU, NODULE_HU = -850.0, 30.0
SHAPE = (40, 40, 40)
SPACING = (1.0, 1.0, 1.0)


def _ball(centre: tuple[int, int, int], radius: float) -> np.ndarray:
    offsets = (np.indices(SHAPE).T - np.array(centre)).T
    ball: np.ndarray = np.sqrt((offsets**2).sum(axis=0)) <= radius
    return ball


def _cube(centre: tuple[int, int, int]) -> tuple[slice, slice, slice]:
    z, y, x = centre
    return (slice(z - 4, z + 5), slice(y - 4, y + 5), slice(x - 4, x + 5))


def _detector_candidate(centre: tuple[int, int, int], probability: float) -> Candidate:
    z, y, x = centre
    return Candidate(1, _cube(centre), (z, y, x), centre, probability, 300.0)


def test_a_second_candidate_on_a_lesion_already_drawn_adds_no_lesion() -> None:
    nodule, other = _ball((20, 20, 12), 4.0), _ball((20, 20, 30), 3.0)
    hu = np.where(nodule | other, NODULE_HU, LUNG_HU)
    probability = torch.from_numpy(np.where(nodule | other, 0.9, 0.0).astype(np.float32))
    blob_on_the_nodule = Candidate(
        BLOB_LABEL, _cube((20, 20, 12)), (20.0, 20.0, 12.0), (20, 20, 12), 0.1, 200.0, 4.0
    )
    kept = [
        (_detector_candidate((20, 20, 12), 0.9), 0.95),
        (blob_on_the_nodule, 0.99),
        (_detector_candidate((20, 20, 30), 0.8), 0.92),
    ]
    lesion_map = np.zeros(SHAPE, dtype=np.int32)
    box = (slice(0, 40), slice(0, 40), slice(0, 40))

    confidences = paint_lesions(lesion_map, box, probability, kept, hu, SPACING)

    assert confidences == {1: 0.95, 2: 0.92}
    assert set(np.unique(lesion_map)) == {0, 1, 2}
    assert (lesion_map == 1)[nodule].all() and (lesion_map == 2)[other].all()
