"""Which runtime the pipelines pick on CPU: bf16 autocast only where the CPU computes bf16."""

from __future__ import annotations

import logging

import pytest
import torch

from models.pipelines import inference
from models.pipelines.inference import (
    CPU_BF16_ENV,
    Runtime,
    optimise_for_cpu,
    pick_runtime,
    prepare,
)
from models.reference.network import CandidateClassifier, build_detector

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is picked first")


@pytest.mark.parametrize("cpu_has_bf16", [True, False])
def test_unset_follows_what_the_cpu_can_do(
    monkeypatch: pytest.MonkeyPatch, cpu_has_bf16: bool
) -> None:
    monkeypatch.delenv(CPU_BF16_ENV, raising=False)
    monkeypatch.setattr(inference, "cpu_runs_bf16", lambda: cpu_has_bf16)

    assert pick_runtime().name == ("cpu/bfloat16" if cpu_has_bf16 else "cpu/fp32")


@pytest.mark.parametrize(("setting", "expected"), [("1", "cpu/bfloat16"), ("0", "cpu/fp32")])
def test_the_environment_overrides_the_cpu_check(
    monkeypatch: pytest.MonkeyPatch, setting: str, expected: str
) -> None:
    monkeypatch.setenv(CPU_BF16_ENV, setting)
    monkeypatch.setattr(inference, "cpu_runs_bf16", lambda: setting == "0")

    assert pick_runtime().name == expected


@pytest.mark.parametrize("cpu_has_bf16", [True, False])
def test_bf16_forced_without_bf16_kernels_is_warned_about(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, cpu_has_bf16: bool
) -> None:
    monkeypatch.setenv(CPU_BF16_ENV, "1")
    monkeypatch.setattr(inference, "cpu_runs_bf16", lambda: cpu_has_bf16)

    with caplog.at_level(logging.WARNING, logger=inference.__name__):
        assert pick_runtime().name == "cpu/bfloat16"

    assert ("without bf16 kernels" in caplog.text) is not cpu_has_bf16


def test_the_cpu_check_runs_on_this_torch() -> None:
    assert isinstance(inference.cpu_runs_bf16(), bool)


def test_folded_batch_norms_give_the_same_scores() -> None:
    torch.manual_seed(0)
    model = CandidateClassifier()
    for norm in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm3d)):
        norm.running_mean.uniform_(-0.5, 0.5)
        norm.running_var.uniform_(0.5, 2.0)
        torch.nn.init.uniform_(norm.weight, 0.5, 1.5)
        torch.nn.init.uniform_(norm.bias, -0.2, 0.2)
    inputs = torch.rand(4, 2, 32, 32, 32)
    with torch.inference_mode():
        expected = model.eval()(inputs)
        folded = prepare(model, Runtime(torch.device("cpu"), None))
        scores = folded(inputs.contiguous(memory_format=torch.channels_last_3d))

    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in folded.modules())
    assert torch.allclose(scores, expected, atol=1e-4)


def test_batch_norms_stay_under_autocast() -> None:
    model = prepare(CandidateClassifier(), Runtime(torch.device("cpu"), torch.bfloat16))

    assert any(isinstance(m, torch.nn.BatchNorm3d) for m in model.modules())


def test_the_cpu_optimised_detector_computes_what_the_eager_one_does() -> None:
    torch.manual_seed(0)
    runtime = Runtime(torch.device("cpu"), None)
    eager = prepare(build_detector(), runtime)
    optimised = optimise_for_cpu(eager, runtime, (1, 1, 32, 32, 32))

    assert isinstance(optimised, torch.jit.ScriptModule)
    for shape in [(1, 1, 32, 32, 32), (1, 1, 48, 32, 64)]:  # the trace holds no shapes
        inputs = torch.rand(shape).contiguous(memory_format=torch.channels_last_3d)
        with torch.inference_mode():
            assert torch.allclose(optimised(inputs), eager(inputs), atol=1e-4)


def test_under_autocast_the_model_stays_eager() -> None:
    runtime = Runtime(torch.device("cpu"), torch.bfloat16)
    model = prepare(build_detector(), runtime)

    assert optimise_for_cpu(model, runtime, (1, 1, 32, 32, 32)) is model
