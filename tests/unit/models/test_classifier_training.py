"""Stage 2's candidate sampling and training: what `mine` keeps of a slab's false candidates,
training that goes on from given weights, and training under bf16 autocast."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.pipelines.inference import cpu_runs_bf16
from models.reference import train
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


@pytest.mark.skipif(
    not cpu_runs_bf16(),
    reason="bf16 training is for CPUs with bf16 kernels (`train` refuses it elsewhere); without"
    " them these three steps took 2 minutes",
)
def test_training_under_bf16_keeps_float32_weights_and_follows_the_fp32_run() -> None:
    torch.manual_seed(0)
    inputs = torch.rand(6, 2, 32, 32, 32)
    labels = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0])
    torch.manual_seed(1)
    start = CandidateClassifier(spatial=True).state_dict()
    runs = {}
    for bf16 in (False, True):
        model = CandidateClassifier(spatial=True)
        model.load_state_dict(start)
        runs[bf16], report = train_classifier(inputs, labels, 3, seed=0, start=model, bf16=bf16)
        assert np.isfinite(report["final_loss"])

    fp32, bf16 = (dict(runs[flag].named_parameters()) for flag in (False, True))
    assert all(value.dtype == torch.float32 for value in bf16.values())
    moved = sum(float((fp32[k] - start[k]).abs().sum()) for k in fp32)
    apart = sum(float((bf16[k] - fp32[k]).abs().sum()) for k in fp32)
    assert 0.0 < apart < 0.3 * moved  # bf16 rounding of the same steps (measured: 0.13)


def test_bf16_training_is_refused_on_a_cpu_without_bf16_kernels(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(train, "cpu_runs_bf16", lambda: False)
    monkeypatch.setattr("sys.argv", ["train", "--stage", "classifiers", "--classifier-bf16"])

    with pytest.raises(SystemExit) as stopped:
        train.main()

    assert stopped.value.code == 2
    assert "no bf16 kernels" in capsys.readouterr().err
