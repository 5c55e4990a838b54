"""Which runtime the pipelines pick on CPU: bf16 autocast only where the CPU computes bf16."""

from __future__ import annotations

import pytest
import torch

from models.pipelines import inference
from models.pipelines.inference import CPU_BF16_ENV, pick_runtime

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


def test_the_cpu_check_runs_on_this_torch() -> None:
    assert isinstance(inference.cpu_runs_bf16(), bool)
