"""Resampling and intensity scaling shared by training and inference, so both see the same input."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

HU_RANGE = (-1000.0, 400.0)


def working_shape(
    shape: Sequence[int], spacing: Sequence[float], target: Sequence[float]
) -> tuple[int, int, int]:
    size = [max(1, round(n * s / t)) for n, s, t in zip(shape, spacing, target, strict=True)]
    return (size[0], size[1], size[2])


def resample(volume: torch.Tensor, size: Sequence[int], mode: str = "trilinear") -> torch.Tensor:
    """Resample a (z, y, x) tensor to `size`; voxel centres keep their corner alignment."""
    batch = volume[None, None]
    if mode == "nearest":
        out = F.interpolate(batch, size=tuple(size), mode="nearest-exact")
    else:
        out = F.interpolate(batch, size=tuple(size), mode="trilinear", align_corners=False)
    return out[0, 0]


def scale_hu(hu: torch.Tensor) -> torch.Tensor:
    """Clip HU to the lung-and-soft-tissue window and map it to [0, 1]."""
    low, high = HU_RANGE
    return (hu.clamp(low, high) - low) / (high - low)


def to_working_grid(
    hu: np.ndarray, spacing: Sequence[float], target: Sequence[float]
) -> torch.Tensor:
    """HU volume on its own grid -> scaled float32 tensor on the working grid."""
    tensor = torch.from_numpy(np.ascontiguousarray(hu, dtype=np.float32))
    return scale_hu(resample(tensor, working_shape(hu.shape, spacing, target)))
