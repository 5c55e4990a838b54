"""Findings as a DICOM Segmentation: one segment per finding class, frames on the source slices."""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset

from models.findings import Findings, SegmentDescription
from models.pipelines.base import NOT_FOR_DIAGNOSTIC_USE
from models.volume import Volume
from workers.results.common import (
    ResultEncodingError,
    ResultIdentity,
    algorithm_identification,
    coded,
    ordered_source,
    processing_equipment,
)
from workers.results.uids import OutputKind

SegmentationType = hd.seg.SegmentationTypeValues
SUPPORTED_TYPES = (SegmentationType.BINARY, SegmentationType.LABELMAP)


def encode_seg(
    source: Sequence[Dataset],
    volume: Volume,
    findings: Findings,
    identity: ResultIdentity,
    segmentation_type: SegmentationType | str = SegmentationType.BINARY,
) -> hd.seg.Segmentation:
    """A SEG of `findings.label_map`, frame k referencing source slice k of `volume`.

    `source` holds the series' instances in any order. BINARY (the default) or LABELMAP; frames
    without any segmented pixel are left out. Raises ResultEncodingError when the label map,
    segment descriptions, source and identity do not fit together, or nothing is segmented.
    """
    kind = SegmentationType(segmentation_type)
    if kind not in SUPPORTED_TYPES:
        raise ResultEncodingError(f"a label map cannot be encoded as a {kind.value} SEG")
    identity.require_same_pipeline(findings)
    _require_encodable(volume, findings)
    return hd.seg.Segmentation(
        source_images=ordered_source(source, volume),
        pixel_array=findings.label_map,
        segmentation_type=kind,
        segment_descriptions=[
            _segment_description(segment, identity)
            for segment in sorted(findings.segments, key=lambda s: s.label)
        ],
        series_instance_uid=identity.uid(OutputKind.SEG_SERIES, volume, kind.value),
        series_number=identity.seg_series_number,
        sop_instance_uid=identity.uid(OutputKind.SEG_INSTANCE, volume, kind.value),
        instance_number=1,
        manufacturer=identity.manufacturer,
        manufacturer_model_name=identity.pipeline_name,
        software_versions=identity.pipeline_version,
        device_serial_number=identity.device_serial_number,
        content_description=NOT_FOR_DIAGNOSTIC_USE,
        series_description=identity.series_description,
        contributing_equipment=[processing_equipment(identity)],
        omit_empty_frames=True,
    )


def _require_encodable(volume: Volume, findings: Findings) -> None:
    if findings.label_map.shape != volume.shape:
        raise ResultEncodingError(
            f"label map shape {findings.label_map.shape} differs from the volume's {volume.shape}"
        )
    labels = sorted(segment.label for segment in findings.segments)
    if labels != list(range(1, len(labels) + 1)):
        raise ResultEncodingError(f"segment labels must be 1..n without gaps, got {labels}")
    present = np.unique(findings.label_map)
    undescribed = sorted(set(present[present > 0].tolist()) - set(labels))
    if undescribed:
        raise ResultEncodingError(f"label map values {undescribed} have no segment description")
    if not present.any():
        raise ResultEncodingError("the label map is empty: there is nothing to segment")


def _segment_description(
    segment: SegmentDescription, identity: ResultIdentity
) -> hd.seg.SegmentDescription:
    regions = None if segment.anatomic_region is None else [coded(segment.anatomic_region)]
    return hd.seg.SegmentDescription(
        segment_number=segment.label,
        segment_label=segment.name,
        segmented_property_category=coded(segment.category),
        segmented_property_type=coded(segment.property_type),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm_identification(identity),
        anatomic_regions=regions,
    )
