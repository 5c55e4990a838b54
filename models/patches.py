"""Fixed-size cubes around a point, padded where the volume is smaller or the point near an edge."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def _pad_to(tensor: torch.Tensor, size: int) -> torch.Tensor:
    pads: list[int] = []
    for n in reversed(tensor.shape):
        extra = max(0, size - n)
        pads += [extra // 2, extra - extra // 2]
    return F.pad(tensor, pads) if any(pads) else tensor


def crop(tensor: torch.Tensor, centre: Sequence[float], size: int) -> torch.Tensor:
    """A size^3 cube around `centre` (z, y, x), shifted to stay inside the volume."""
    padded = _pad_to(tensor, size)
    offset = [(p - n) // 2 for p, n in zip(padded.shape, tensor.shape, strict=True)]
    start = [
        int(min(max(round(c) + o - size // 2, 0), p - size))
        for c, o, p in zip(centre, offset, padded.shape, strict=True)
    ]
    return padded[
        start[0] : start[0] + size, start[1] : start[1] + size, start[2] : start[2] + size
    ]
