"""What a pipeline returns: label maps, segment descriptions, per-lesion measurements."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Code:
    """A coded concept (value, coding scheme, meaning), e.g. SNOMED CT 27925004 "Nodule"."""

    value: str
    scheme: str
    meaning: str


LUNG = Code("39607008", "SCT", "Lung")
NODULE = Code("27925004", "SCT", "Nodule")
ABNORMAL_STRUCTURE = Code("49755003", "SCT", "Morphologically Abnormal Structure")


@dataclass(frozen=True)
class SegmentDescription:
    """One class of finding in the label map (label value = segment number, from 1)."""

    label: int
    name: str
    category: Code
    property_type: Code
    anatomic_region: Code | None = None


@dataclass(frozen=True)
class Lesion:
    """One connected finding, measured on the original voxel grid.

    `index` is 1-based and is the lesion's value in `Findings.lesion_map`; it doubles as the
    tracking identifier in reports.
    """

    index: int
    label: int
    volume_mm3: float
    longest_axial_diameter_mm: float
    mean_hu: float
    centroid_patient_mm: tuple[float, float, float]
    centroid_voxel: tuple[float, float, float]
    confidence: float


@dataclass(frozen=True)
class Findings:
    """A pipeline's output for one volume.

    `label_map` holds segment labels (0 = background) and `lesion_map` lesion indices, both on the
    voxel grid of the input `Volume` (slice, row, column).
    """

    pipeline_name: str
    pipeline_version: str
    label_map: np.ndarray
    lesion_map: np.ndarray
    segments: tuple[SegmentDescription, ...]
    lesions: tuple[Lesion, ...]
    scores: dict[str, float] = field(default_factory=dict)
    probability_map: np.ndarray | None = None

    def segment(self, label: int) -> SegmentDescription:
        for description in self.segments:
            if description.label == label:
                return description
        raise KeyError(f"no segment with label {label}")
