"""Stage 2's candidate sampling and fine-tuning: what `mine` keeps of a slab's false candidates,
and training that goes on from given weights."""

from __future__ import annotations

import numpy as np
import torch

from models.reference.classifier_training import keep_negatives, train_classifier
from models.reference.network import CandidateClassifier


def test_every_true_candidate_is_kept_and_false_ones_up_to_the_cap() -> None:
    truth = [0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]

    kept = keep_negatives(truth, 2, np.random.default_rng(7))

    assert kept == sorted(kept)
    assert {1, 4} <= set(kept)
    assert sum(1 for i in kept if not truth[i]) == 2
    assert kept == keep_negatives(truth, 2, np.random.default_rng(7))  # seeded: reproducible


def test_without_a_cap_or_under_it_every_candidate_is_kept() -> None:
    truth = [0.0, 1.0, 0.0]

    assert keep_negatives(truth, None, np.random.default_rng(0)) == [0, 1, 2]
    assert keep_negatives(truth, 5, np.random.default_rng(0)) == [0, 1, 2]


def test_fine_tuning_goes_on_from_the_given_weights() -> None:
    torch.manual_seed(0)
    start = CandidateClassifier(spatial=True)
    before = {k: v.detach().clone() for k, v in start.named_parameters()}
    inputs = torch.rand(6, 2, 32, 32, 32)
    labels = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0])

    model, report = train_classifier(inputs, labels, 2, seed=0, start=start, max_lr=1e-5)

    assert model is start
    moved = [float((v - before[k]).abs().max()) for k, v in model.named_parameters()]
    assert 0.0 < max(moved) < 0.05  # trained a little from where it was, not afresh
    assert report["candidates"] == 6.0
