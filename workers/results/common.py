"""What every result encoder shares: the job's identity, the wording, coded concepts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import UID

from models.findings import Code, Findings
from models.pipelines.base import NOT_FOR_DIAGNOSTIC_USE
from models.volume import Volume
from workers.results.uids import OutputKind, result_uid

# Long String (LO) attributes such as SeriesDescription hold at most 64 characters.
LONG_STRING_MAX = 64
ALGORITHM_FAMILY = codes.DCM.ArtificialIntelligence


class ResultEncodingError(ValueError):
    """Findings, source images and identity do not fit together; the message says how."""


@dataclass(frozen=True)
class ResultIdentity:
    """Who made a result and where it goes in the study: the job, the pipeline, the series."""

    job_id: int
    pipeline_name: str
    pipeline_version: str
    manufacturer: str = "dicom-agent"
    device_serial_number: str = "0"
    seg_series_number: int = 901
    sr_series_number: int = 902
    key_image_series_number: int = 903

    def uid(self, kind: OutputKind, volume: Volume, item: str | int | None = None) -> UID:
        """The deterministic UID of one output of this job for the volume's series."""
        return result_uid(
            self.job_id,
            volume.series_instance_uid,
            self.pipeline_name,
            self.pipeline_version,
            kind,
            item,
        )

    @property
    def series_description(self) -> str:
        """The not-for-diagnostic-use wording with pipeline and version, cut to fit a LO."""
        text = f"{NOT_FOR_DIAGNOSTIC_USE} ({self.pipeline_name} {self.pipeline_version})"
        if len(text) <= LONG_STRING_MAX:
            return text
        return text[: LONG_STRING_MAX - 1] + ")"

    def require_same_pipeline(self, findings: Findings) -> None:
        """Raise unless the findings come from the pipeline this identity names."""
        ours = (self.pipeline_name, self.pipeline_version)
        theirs = (findings.pipeline_name, findings.pipeline_version)
        if ours != theirs:
            raise ResultEncodingError(f"findings of pipeline {theirs} given to a job of {ours}")


def coded(code: Code) -> hd.sr.CodedConcept:
    """The highdicom form of a models code."""
    return hd.sr.CodedConcept(code.value, code.scheme, code.meaning)


def algorithm_identification(identity: ResultIdentity) -> hd.AlgorithmIdentificationSequence:
    """The algorithm as the SEG's AlgorithmIdentificationSequence describes it."""
    return hd.AlgorithmIdentificationSequence(
        name=identity.pipeline_name,
        family=ALGORITHM_FAMILY,
        version=identity.pipeline_version,
        source=identity.manufacturer,
    )


def processing_equipment(identity: ResultIdentity) -> hd.ContributingEquipment:
    """The algorithm as an item of ContributingEquipmentSequence."""
    return hd.ContributingEquipment(
        manufacturer=identity.manufacturer,
        purpose_of_reference=codes.DCM.ProcessingEquipment,
        manufacturer_model_name=identity.pipeline_name,
        software_versions=identity.pipeline_version,
        contribution_description=identity.series_description,
    )


def ordered_source(source: Sequence[Dataset], volume: Volume) -> list[Dataset]:
    """The source instances in the volume's slice order (slice k first at index k)."""
    by_uid = {str(ds.SOPInstanceUID): ds for ds in source}
    missing = [uid for uid in volume.source_sop_instance_uids if uid not in by_uid]
    if missing or len(by_uid) != len(volume.source_sop_instance_uids):
        raise ResultEncodingError(
            f"source has {len(by_uid)} instances, the volume {volume.shape[0]} slices; "
            f"{len(missing)} slice(s) have no source instance"
        )
    return [by_uid[uid] for uid in volume.source_sop_instance_uids]
