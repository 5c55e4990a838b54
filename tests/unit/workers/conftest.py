"""A small chest phantom written as a real CT series, loaded back, and findings drawn from it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from models.findings import ABNORMAL_STRUCTURE, LUNG, NODULE, Findings, Lesion, SegmentDescription
from models.reference.dicom_series import write_series
from models.reference.phantom import Geometry, Phantom, generate
from models.volume import Volume, load_datasets
from tests.support.dciodvfy import EXECUTABLE as DCIODVFY
from tests.support.dciodvfy import dciodvfy as dciodvfy_lines
from workers.results.common import ResultIdentity
from workers.results.overlay import encode_key_images
from workers.results.seg import encode_seg
from workers.results.sr import encode_sr

# Seed 11 puts three nodules in this slab, two of them on one slice (frames shared by lesions).
PHANTOM_SEED = 11
GEOMETRY = Geometry(matrix=256, pixel_spacing=1.4, slice_thickness=2.0, slices=30)
WINDOW_MM = (120.0, 180.0)
PIPELINE = ("test-nodules", "1.0.0")
NODULE_SEGMENT = SegmentDescription(1, "Lung nodule", ABNORMAL_STRUCTURE, NODULE, LUNG)


@pytest.fixture(scope="session")
def phantom() -> Phantom:
    return generate(PHANTOM_SEED, GEOMETRY, nodule_count=3, window=WINDOW_MM)


@pytest.fixture(scope="session")
def source(phantom: Phantom, tmp_path_factory: pytest.TempPathFactory) -> list[Dataset]:
    """The series' instances, deliberately not in slice or instance order."""
    paths = write_series(phantom, tmp_path_factory.mktemp("ct"))
    datasets: list[Dataset] = [pydicom.dcmread(path) for path in paths]
    return datasets[7:] + datasets[:7][::-1]


@pytest.fixture(scope="session")
def volume(source: list[Dataset]) -> Volume:
    return load_datasets(source)


@pytest.fixture(scope="session")
def findings(phantom: Phantom, volume: Volume) -> Findings:
    # write_series puts phantom slice 0 at the top, so the loaded volume runs the other way.
    return findings_from_lesion_map(volume, phantom.labels[::-1].astype(np.int32))


@pytest.fixture(scope="session")
def no_findings(volume: Volume) -> Findings:
    return findings_from_lesion_map(volume, np.zeros(volume.shape, dtype=np.int32))


@pytest.fixture(scope="session")
def identity() -> ResultIdentity:
    return ResultIdentity(job_id=42, pipeline_name=PIPELINE[0], pipeline_version=PIPELINE[1])


@pytest.fixture(scope="session")
def seg(
    source: list[Dataset], volume: Volume, findings: Findings, identity: ResultIdentity
) -> hd.seg.Segmentation:
    return encode_seg(source, volume, findings, identity)


@pytest.fixture(scope="session")
def sr(
    source: list[Dataset],
    volume: Volume,
    findings: Findings,
    seg: hd.seg.Segmentation,
    identity: ResultIdentity,
) -> hd.sr.Comprehensive3DSR:
    return encode_sr(source, volume, findings, seg, identity)


@pytest.fixture(scope="session")
def no_finding_sr(
    source: list[Dataset], volume: Volume, no_findings: Findings, identity: ResultIdentity
) -> hd.sr.Comprehensive3DSR:
    return encode_sr(source, volume, no_findings, None, identity)


@pytest.fixture(scope="session")
def key_images(
    source: list[Dataset], volume: Volume, findings: Findings, identity: ResultIdentity
) -> list[hd.sc.SCImage]:
    return encode_key_images(source, volume, findings, identity)


@pytest.fixture
def dciodvfy(tmp_path: Path) -> Callable[[Dataset], tuple[list[str], list[str]]]:
    """Write a dataset as a Part 10 file and return dciodvfy's (error, warning) lines about it."""
    if DCIODVFY is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed")

    def verify(dataset: Dataset) -> tuple[list[str], list[str]]:
        path = tmp_path / "object.dcm"
        dataset.save_as(path, enforce_file_format=True)
        return dciodvfy_lines(path)

    return verify


def findings_from_lesion_map(volume: Volume, lesion_map: np.ndarray) -> Findings:
    """Findings with one nodule per lesion index, measured roughly the way a pipeline would."""
    lesions = tuple(
        _lesion(volume, lesion_map == index, int(index))
        for index in np.unique(lesion_map)
        if index > 0
    )
    return Findings(
        pipeline_name=PIPELINE[0],
        pipeline_version=PIPELINE[1],
        label_map=(lesion_map > 0).astype(np.uint8),
        lesion_map=lesion_map,
        segments=(NODULE_SEGMENT,),
        lesions=lesions,
    )


def _lesion(volume: Volume, mask: np.ndarray, index: int) -> Lesion:
    centroid = np.argwhere(mask).mean(axis=0)
    largest_slice_area = float(mask.sum(axis=(1, 2)).max()) * volume.spacing[1] * volume.spacing[2]
    return Lesion(
        index=index,
        label=NODULE_SEGMENT.label,
        volume_mm3=float(mask.sum()) * volume.voxel_volume_mm3,
        longest_axial_diameter_mm=2.0 * float(np.sqrt(largest_slice_area / np.pi)),
        mean_hu=float(volume.voxels[mask].mean()),
        centroid_patient_mm=tuple(float(v) for v in volume.index_to_patient(centroid)),  # type: ignore[arg-type]
        centroid_voxel=tuple(float(v) for v in centroid),  # type: ignore[arg-type]
        confidence=round(0.5 + 0.1 * index, 2),
    )
