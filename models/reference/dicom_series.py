"""Write a phantom as a real DICOM CT series, for tests, benchmarks and the demo."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from models.reference.phantom import Phantom
from models.volume import Volume

SYNTHETIC_NOTICE = "SYNTHETIC PHANTOM - NOT PATIENT DATA"


@dataclass(frozen=True)
class SeriesIdentity:
    """Identifiers of the written study; UIDs are derived from `seed` unless given."""

    patient_id: str = "PHANTOM"
    patient_name: str = "Phantom^Chest"
    accession_number: str = "ACC0001"
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    series_number: int = 2
    feet_first: bool = False


def write_series(
    phantom: Phantom, directory: Path, identity: SeriesIdentity | None = None
) -> list[Path]:
    """One file per slice, named by instance number; returns the paths in slice order."""
    identity = identity or SeriesIdentity()
    directory.mkdir(parents=True, exist_ok=True)
    prefix = f"phantom-{phantom.seed}"
    study_uid = identity.study_instance_uid or generate_uid(entropy_srcs=[prefix, "study"])
    series_uid = identity.series_instance_uid or generate_uid(
        entropy_srcs=[prefix, "series", str(identity.series_number)]
    )
    frame_uid = generate_uid(entropy_srcs=[prefix, "frame"])
    template = _series_template(phantom, identity, study_uid, series_uid, frame_uid)
    paths = []
    count = phantom.hu.shape[0]
    for index in range(count):
        ds = _slice_dataset(template, phantom, identity, index, series_uid)
        path = directory / f"{index + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _series_template(
    phantom: Phantom, identity: SeriesIdentity, study_uid: str, series_uid: str, frame_uid: str
) -> Dataset:
    geometry = phantom.geometry
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.Modality = "CT"
    ds.PatientName = identity.patient_name
    ds.PatientID = identity.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = frame_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20260101"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
    ds.StudyID = "1"
    ds.AccessionNumber = identity.accession_number
    ds.ReferringPhysicianName = ""
    ds.SeriesNumber = identity.series_number
    ds.SeriesDescription = "Chest phantom"
    ds.StudyDescription = "CT CHEST"
    ds.BodyPartExamined = "CHEST"
    ds.Manufacturer = "dicom-agent reference phantom"
    ds.ImageComments = SYNTHETIC_NOTICE
    ds.PositionReferenceIndicator = ""
    ds.PatientPosition = "FFS" if identity.feet_first else "HFS"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [round(geometry.pixel_spacing, 6)] * 2
    ds.SliceThickness = geometry.slice_thickness
    ds.KVP = 120
    ds.AcquisitionNumber = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = geometry.matrix
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "HU"
    ds.WindowCenter = -600
    ds.WindowWidth = 1500
    return ds


def _slice_dataset(
    template: Dataset, phantom: Phantom, identity: SeriesIdentity, index: int, series_uid: str
) -> Dataset:
    geometry = phantom.geometry
    ds = template.copy()
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[series_uid, str(index)])
    ds.InstanceNumber = index + 1
    # Slice 0 is the most cranial; patient z grows towards the head.
    z = -index * geometry.slice_thickness
    half = (geometry.matrix - 1) * geometry.pixel_spacing / 2
    ds.ImagePositionPatient = [-round(half, 4), -round(half, 4), round(z, 4)]
    ds.SliceLocation = round(z, 4)
    ds.PixelData = np.ascontiguousarray(phantom.hu[index]).astype("<i2").tobytes()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    if identity.feet_first:
        ds.InstanceNumber = phantom.hu.shape[0] - index
    return ds


def phantom_volume(phantom: Phantom) -> Volume:
    """The volume `load_files(write_series(phantom, ...))` would give, in the phantom's slice order.

    Slice index grows towards the feet here (slice cosine -z); loading the written files sorts the
    other way round. Both describe the same voxels in the same patient space.
    """
    geometry = phantom.geometry
    half = (geometry.matrix - 1) * geometry.pixel_spacing / 2
    prefix = f"phantom-{phantom.seed}"
    series_uid = generate_uid(entropy_srcs=[prefix, "series", "2"])
    return Volume(
        voxels=phantom.hu.astype(np.float32),
        spacing=geometry.spacing,
        origin=(-half, -half, 0.0),
        row_cosine=(1.0, 0.0, 0.0),
        column_cosine=(0.0, 1.0, 0.0),
        slice_cosine=(0.0, 0.0, -1.0),
        source_sop_instance_uids=tuple(
            generate_uid(entropy_srcs=[series_uid, str(k)]) for k in range(phantom.hu.shape[0])
        ),
        series_instance_uid=series_uid,
    )
