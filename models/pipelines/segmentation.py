"""What bring-your-own segmentation models share: coded segments from JSON, lesions from labels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from models.findings import Code, SegmentDescription

TISSUE = Code("85756007", "SCT", "Tissue")
"""The category and type of a segment whose model says nothing more specific about it."""


def coded_segments(entries: Sequence[dict[str, Any]]) -> tuple[SegmentDescription, ...]:
    """Segments from `[{"label", "name", "category": [value, scheme, meaning], "type": [...]}]`."""
    return tuple(
        SegmentDescription(
            int(entry["label"]), str(entry["name"]), _code(entry["category"]), _code(entry["type"])
        )
        for entry in entries
    )


def _code(triple: Sequence[Any]) -> Code:
    return Code(str(triple[0]), str(triple[1]), str(triple[2]))


def lesions_of(label_map: np.ndarray) -> np.ndarray:
    """Connected components (26-connected) of all foreground labels, numbered from 1."""
    lesion_map, _ = ndimage.label(label_map > 0, structure=np.ones((3, 3, 3)))
    result: np.ndarray = lesion_map.astype(np.int32)
    return result
