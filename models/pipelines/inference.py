"""Device choice and sliding-window inference, shared by the pipelines."""

from __future__ import annotations

import itertools
import logging
import os
import warnings
from dataclasses import dataclass

import torch
from monai.inferers import sliding_window_inference
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from models.pipelines.allocator import keep_freed_memory

# bf16 autocast on CPU: measured in bench/inference.py; the pipelines use it where results hold
# and where the CPU computes bf16 itself. "1" forces it on, "0" off; unset: `cpu_runs_bf16()`.
CPU_BF16_ENV = "DICOM_AGENT_CPU_BF16"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    autocast_dtype: torch.dtype | None

    @property
    def name(self) -> str:
        precision = (
            "fp32" if self.autocast_dtype is None else str(self.autocast_dtype).split(".")[-1]
        )
        return f"{self.device.type}/{precision}"


def pick_runtime(cpu_bf16: bool | None = None) -> Runtime:
    """CUDA with fp16 autocast when present, else CPU: bf16 autocast where the CPU runs bf16
    (or `CPU_BF16_ENV` says so), fp32 otherwise. On CPU the process's allocator is set to
    reuse freed memory (`keep_freed_memory`)."""
    if torch.cuda.is_available():
        return Runtime(torch.device("cuda"), torch.float16)
    keep_freed_memory()
    if cpu_bf16 is None:
        setting = os.environ.get(CPU_BF16_ENV, "")
        cpu_bf16 = setting == "1" if setting in ("0", "1") else cpu_runs_bf16()
    if cpu_bf16 and not cpu_runs_bf16():
        log.warning(
            "bf16 autocast forced on a CPU without bf16 kernels: expect inference many times"
            " slower than fp32 (%s=0 or unset picks fp32 here)",
            CPU_BF16_ENV,
        )
    return Runtime(torch.device("cpu"), torch.bfloat16 if cpu_bf16 else None)


def cpu_runs_bf16() -> bool:
    """Whether oneDNN has bf16 kernels for this CPU (AVX-512 or newer). Without them bf16
    convolutions fall back to a reference path: on an AVX2-only AMD EPYC (session 7) the U-Net
    took 5.2 s in bf16 against 0.30 s in fp32 for one 64x96x96 window."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def channels_last(model: nn.Module) -> nn.Module:
    """Channels-last 3D layout: measured faster for 3D convolutions on CPU (bench/inference.py)."""
    result: nn.Module = model.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
    return result


def prepare(model: nn.Module, runtime: Runtime) -> nn.Module:
    """The model for inference on `runtime`: eval mode, channels-last, and in fp32 its batch
    norms folded into the convolutions before them."""
    model = model.to(runtime.device).eval()
    if runtime.autocast_dtype is None:
        fold_batch_norms(model)
    return channels_last(model)


def optimise_for_cpu(
    model: nn.Module, runtime: Runtime, example_shape: tuple[int, ...]
) -> nn.Module:
    """In fp32 on CPU, `model` traced, frozen and rewritten by TorchScript's
    `optimize_for_inference` (oneDNN convolutions with their layouts kept between layers); any
    other runtime gets `model` back. Measured for the detector on a 2-core AVX2 VM (session 15):
    0.10 s per 96^3 window against 0.17 s eager, logits within 1.2e-5, 2.4 s to build once per
    process; the candidate classifier (32^3 cubes) gained nothing, so it stays eager. Works for
    any input of the same rank: the trace holds no shapes."""
    if runtime.device.type != "cpu" or runtime.autocast_dtype is not None:
        return model
    example = torch.zeros(example_shape).contiguous(memory_format=torch.channels_last_3d)
    with torch.no_grad(), warnings.catch_warnings():
        # TorchScript is deprecated in favour of torch.compile (not tried: it compiles at each
        # process's first call and needs a C++ compiler on CPU); the pinned torch keeps it. The
        # tracer's warnings are about shape checks (instance norm's) kept as constants.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        frozen = torch.jit.freeze(torch.jit.trace(model, example))
        optimised: nn.Module = torch.jit.optimize_for_inference(frozen)
    return optimised


def fold_batch_norms(model: nn.Module) -> None:
    """Fold every BatchNorm3d that follows a Conv3d in a Sequential into that convolution, in
    place (eval mode). The same function in fp32 up to rounding (the candidate classifier's
    sigmoid moved by at most 3e-7), a quarter less time for the classifier on this CPU. Not
    under bf16 autocast: there it moved scores by up to 0.006 (docs/models.md)."""
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module)
        for index, (conv, norm) in enumerate(itertools.pairwise(children)):
            if isinstance(conv, nn.Conv3d) and isinstance(norm, nn.BatchNorm3d):
                module[index] = fuse_conv_bn_eval(conv, norm)
                module[index + 1] = nn.Identity()


def autocast(runtime: Runtime) -> torch.autocast:
    """The runtime's autocast context (a no-op without an autocast dtype)."""
    return torch.autocast(
        runtime.device.type,
        dtype=runtime.autocast_dtype or torch.float32,
        enabled=runtime.autocast_dtype is not None,
    )


def sliding_window_probability(
    model: nn.Module,
    image: torch.Tensor,
    runtime: Runtime,
    roi: tuple[int, int, int],
    overlap: float = 0.25,
) -> torch.Tensor:
    """Softmax probability of class 1 for a (z, y, x) scaled image; same shape, float32 on CPU."""
    batch = image[None, None].to(runtime.device).contiguous(memory_format=torch.channels_last_3d)
    roi = tuple(min(r, _ceil16(n)) for r, n in zip(roi, image.shape, strict=True))  # type: ignore[assignment]
    with torch.inference_mode(), autocast(runtime):
        logits = sliding_window_inference(
            batch, roi_size=roi, sw_batch_size=1, predictor=model, overlap=overlap, mode="gaussian"
        )
    assert isinstance(logits, torch.Tensor)
    probability: torch.Tensor = torch.softmax(logits.float(), dim=1)[0, 1]
    return probability.cpu()


def _ceil16(n: int) -> int:
    return max(16, -(-n // 16) * 16)
