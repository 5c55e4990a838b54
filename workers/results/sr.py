"""Findings as a TID 1500 Measurement Report in a Comprehensive 3D SR.

Per lesion, two groups sharing its tracking identifier ("Nodule <index>") and tracking UID: a
volumetric one referencing the lesion's SEG segment, with finding type and site from its segment
description, volume, long axis, mean attenuation and the algorithm's certainty; and a planar one
holding the lesion's centre of mass as a 3D point (highdicom, like TID 1411, allows only one ROI
reference per group). A study without lesions gets one group per finding class saying that the
finding is absent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from models.findings import Findings, Lesion, SegmentDescription
from models.volume import Volume
from workers.results.common import (
    ALGORITHM_FAMILY,
    ResultEncodingError,
    ResultIdentity,
    coded,
    ordered_source,
    processing_equipment,
)
from workers.results.image_library import image_library
from workers.results.uids import OutputKind, device_uid

CT_OF_CHEST = hd.sr.CodedConcept("169069000", "SCT", "Computed tomography of chest")
MeasurementGroup = (
    hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations
    | hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations
    | hd.sr.MeasurementsAndQualitativeEvaluations
)


def encode_sr(
    source: Sequence[Dataset],
    volume: Volume,
    findings: Findings,
    seg: Dataset | None,
    identity: ResultIdentity,
) -> hd.sr.Comprehensive3DSR:
    """The measurement report of `findings`, its lesions referencing their segments in `seg`.

    `seg` is the SEG encoded from the same findings; it may be None only when there is no lesion.
    Raises ResultEncodingError when findings, source, SEG and identity do not fit together.
    """
    identity.require_same_pipeline(findings)
    images = ordered_source(source, volume)
    groups: list[MeasurementGroup]
    if not findings.lesions:
        groups = _absence_groups(volume, findings, identity)
    elif seg is None:
        raise ResultEncodingError("lesions are reported with a reference to their SEG; none given")
    else:
        groups = _lesion_groups(images, volume, findings, seg, identity)
    report = hd.sr.MeasurementReport(
        observation_context=_observation_context(identity),
        procedure_reported=CT_OF_CHEST,
        imaging_measurements=groups,
    )
    _add_image_library(report, images)
    return hd.sr.Comprehensive3DSR(
        evidence=images if seg is None else [*images, seg],
        content=report,
        series_instance_uid=identity.uid(OutputKind.SR_SERIES, volume),
        series_number=identity.sr_series_number,
        sop_instance_uid=identity.uid(OutputKind.SR_INSTANCE, volume),
        instance_number=1,
        manufacturer=identity.manufacturer,
        manufacturer_model_name=identity.pipeline_name,
        software_versions=identity.pipeline_version,
        device_serial_number=identity.device_serial_number,
        is_complete=True,
        series_description=identity.series_description,
        contributing_equipment=[processing_equipment(identity)],
    )


def _add_image_library(report: hd.sr.MeasurementReport, images: Sequence[Dataset]) -> None:
    """Put the Image Library where TID 1500 has it: just before the Imaging Measurements."""
    content = report[0].ContentSequence
    (position,) = [
        index for index, item in enumerate(content) if item.name == codes.DCM.ImagingMeasurements
    ]
    content.insert(position, image_library(images))


def _observation_context(identity: ResultIdentity) -> hd.sr.ObservationContext:
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=device_uid(identity.pipeline_name, identity.pipeline_version),
        name=f"{identity.pipeline_name} {identity.pipeline_version}",
        manufacturer_name=identity.manufacturer,
        model_name=identity.pipeline_name,
        serial_number=identity.device_serial_number,
    )
    return hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.cid270.Device, observer_identifying_attributes=device
        )
    )


class _FindingContext(TypedDict):
    """What every measurement group of one finding repeats."""

    tracking_identifier: hd.sr.TrackingIdentifier
    finding_category: hd.sr.CodedConcept
    finding_type: hd.sr.CodedConcept
    finding_sites: list[hd.sr.FindingSite] | None
    algorithm_id: hd.sr.AlgorithmIdentification


def _finding_context(
    segment: SegmentDescription, tracking_uid: str, tracking_id: str, identity: ResultIdentity
) -> _FindingContext:
    sites = None
    if segment.anatomic_region is not None:
        sites = [hd.sr.FindingSite(anatomic_location=coded(segment.anatomic_region))]
    return _FindingContext(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=tracking_uid, identifier=tracking_id),
        finding_category=coded(segment.category),
        finding_type=coded(segment.property_type),
        finding_sites=sites,
        algorithm_id=hd.sr.AlgorithmIdentification(
            name=identity.pipeline_name,
            version=identity.pipeline_version,
            family=ALGORITHM_FAMILY,
            manufacturer=identity.manufacturer,
        ),
    )


def _lesion_groups(
    images: list[Dataset],
    volume: Volume,
    findings: Findings,
    seg: Dataset,
    identity: ResultIdentity,
) -> list[MeasurementGroup]:
    """Per lesion a volumetric group (segment, measurements) and a planar one (centre point)."""
    groups: list[MeasurementGroup] = []
    for lesion in findings.lesions:
        slices = np.flatnonzero((findings.lesion_map == lesion.index).any(axis=(1, 2)))
        if slices.size == 0:
            raise ResultEncodingError(f"lesion {lesion.index} has no voxel in the lesion map")
        segment = findings.segment(lesion.label)
        uid = identity.uid(OutputKind.TRACKING, volume, lesion.index)
        name = f"Nodule {lesion.index}"
        lesion_images = [images[k] for k in slices]
        groups.append(
            hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                referenced_segment=_referenced_segment(seg, lesion.label, lesion_images),
                measurements=_measurements(lesion),
                **_finding_context(segment, uid, name, identity),
            )
        )
        groups.append(
            hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                referenced_region=hd.sr.ImageRegion3D(
                    graphic_type=hd.sr.GraphicTypeValues3D.POINT,
                    graphic_data=np.array([lesion.centroid_patient_mm]),
                    frame_of_reference_uid=volume.frame_of_reference_uid,
                ),
                geometric_purpose=codes.DCM.CenterOfMass,
                **_finding_context(segment, uid, name, identity),
            )
        )
    return groups


def _absence_groups(
    volume: Volume, findings: Findings, identity: ResultIdentity
) -> list[MeasurementGroup]:
    if not findings.segments:
        raise ResultEncodingError("findings without lesions must still name what was looked for")
    return [
        hd.sr.MeasurementsAndQualitativeEvaluations(
            qualitative_evaluations=[
                hd.sr.QualitativeEvaluation(codes.DCM.PresenceOfProperty, codes.SCT.Absent)
            ],
            **_finding_context(
                segment,
                identity.uid(OutputKind.TRACKING, volume, f"absent-{segment.label}"),
                f"{segment.name}: none detected",
                identity,
            ),
        )
        for segment in findings.segments
    ]


def _referenced_segment(
    seg: Dataset, segment_number: int, lesion_images: list[Dataset]
) -> hd.sr.ReferencedSegment:
    """The lesion's segment, with the slices the lesion lies on as its source images.

    The reference names the whole segment: the Image SOP Instance Reference Macro allows either a
    segment number or frame numbers, not both.
    """
    described = {int(item.SegmentNumber) for item in seg.SegmentSequence}
    if segment_number not in described:
        raise ResultEncodingError(f"the SEG has no segment {segment_number}")
    return hd.sr.ReferencedSegment(
        sop_class_uid=seg.SOPClassUID,
        sop_instance_uid=seg.SOPInstanceUID,
        segment_number=segment_number,
        source_images=[
            hd.sr.SourceImageForSegmentation.from_source_image(image) for image in lesion_images
        ],
    )


def _measurements(lesion: Lesion) -> list[hd.sr.Measurement]:
    return [
        hd.sr.Measurement(codes.SCT.Volume, lesion.volume_mm3, codes.UCUM.CubicMillimeter),
        hd.sr.Measurement(
            codes.SCT.LongAxis, lesion.longest_axial_diameter_mm, codes.UCUM.Millimeter
        ),
        hd.sr.Measurement(
            codes.DCM.AttenuationCoefficient,
            lesion.mean_hu,
            codes.UCUM.HounsfieldUnit,
            derivation=codes.SCT.Mean,
        ),
        hd.sr.Measurement(
            codes.DCM.CertaintyOfFinding, 100.0 * lesion.confidence, codes.UCUM.Percent
        ),
    ]
