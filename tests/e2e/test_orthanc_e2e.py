"""A study in, results out at a real PACS: DCMTK storescu sends a CT series and a localizer
to the node, a Celery worker runs the reference pipeline, and the SEG, the TID 1500 SR and
the key images arrive at Orthanc over C-STORE. Checked through Orthanc's REST API (what is
stored, its references to the CT series, dciodvfy on every object) and through the node's
own command line (the job, the skipped localizer).

Runs on SQLite with the embedded broker, and on PostgreSQL with Redis
(`tests.support.fixtures`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from agent.db.models import Job
from agent.serve import Node
from models.reference.phantom import Geometry
from tests.support.dciodvfy import EXECUTABLE as DCIODVFY
from tests.support.dciodvfy import dciodvfy
from tests.support.node import (
    PIPELINE,
    SCP_AE,
    Deployment,
    all_exported,
    run_cli,
    storescu,
    wait_for,
)
from tests.support.orthanc import ORTHANC, Pacs, running_orthanc
from tests.support.studies import (
    CT_SERIES_NUMBER,
    LOCALIZER_SERIES_NUMBER,
    LOCALIZER_SKIP_REASON,
    CtStudy,
    write_ct_study,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(ORTHANC is None, reason="Orthanc is not installed"),
    pytest.mark.skipif(shutil.which("storescu") is None, reason="DCMTK storescu is not installed"),
    pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy (dicom3tools) is not installed"),
]

# Seed 164 puts one obvious solid nodule (17 mm) in this slab of the chest.
SEED = 164
GEOMETRY = Geometry(256, 1.4, 2.0, 40)
WINDOW_MM = (120.0, 200.0)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> CtStudy:
    directory = tmp_path_factory.mktemp("study")
    return write_ct_study(directory, SEED, GEOMETRY, nodule_count=1, window=WINDOW_MM)


@pytest.fixture
def pacs(tmp_path: Path, scp_port: int) -> Iterator[Pacs]:
    """Orthanc, with the node registered in it as a modality (as a hospital would)."""
    with running_orthanc(tmp_path / "orthanc", peer=(SCP_AE, scp_port)) as running:
        yield running


@pytest.fixture
def destinations(pacs: Pacs) -> list[dict[str, Any]]:
    """Results go to Orthanc over C-STORE (overrides the folder of `tests.support.fixtures`)."""
    return [pacs.destination("pacs")]


def download_study(pacs: Pacs, study_uid: str, directory: Path) -> dict[str, list[Path]]:
    """Every object of the study stored at the PACS, as files in `directory`, by modality."""
    directory.mkdir()
    files: dict[str, list[Path]] = {}
    for modality, instances in pacs.instances_by_modality(study_uid).items():
        for instance in instances:
            path = directory / f"{instance}.dcm"
            path.write_bytes(pacs.file(instance))
            files.setdefault(modality, []).append(path)
    return files


def assert_seg_refers_to(seg: Dataset, ct: Sequence[Dataset]) -> None:
    (referenced,) = seg.ReferencedSeriesSequence
    assert referenced.SeriesInstanceUID == ct[0].SeriesInstanceUID
    sop_uids = {item.ReferencedSOPInstanceUID for item in referenced.ReferencedInstanceSequence}
    assert sop_uids <= {image.SOPInstanceUID for image in ct}


def assert_sr_refers_to(sr: Dataset, seg: Dataset, ct: Sequence[Dataset]) -> None:
    (evidence,) = sr.CurrentRequestedProcedureEvidenceSequence
    assert evidence.StudyInstanceUID == ct[0].StudyInstanceUID
    series = {item.SeriesInstanceUID: item for item in evidence.ReferencedSeriesSequence}
    assert set(series) == {ct[0].SeriesInstanceUID, seg.SeriesInstanceUID}
    cited = series[ct[0].SeriesInstanceUID].ReferencedSOPSequence
    assert {item.ReferencedSOPInstanceUID for item in cited} <= {i.SOPInstanceUID for i in ct}


def assert_node_reports(deployment: Deployment, ct_series_uid: str) -> None:
    """`jobs list --json`: one succeeded job for the CT series; `studies list --series
    --json`: the CT series done, the localizer skipped with its reason."""
    (job,) = json.loads(run_cli(deployment, "jobs", "list", "--json"))
    assert (job["state"], job["pipeline"]) == ("succeeded", PIPELINE), job["error"]
    assert job["series"]["series_instance_uid"] == ct_series_uid
    (study,) = json.loads(run_cli(deployment, "studies", "list", "--series", "--json"))
    series = {item["series_number"]: item for item in study["series"]}
    assert series[CT_SERIES_NUMBER]["state"] == "done"
    skipped = series[LOCALIZER_SERIES_NUMBER]
    assert (skipped["state"], skipped["skip_reason"]) == ("skipped", LOCALIZER_SKIP_REASON)


def test_study_in_seg_and_sr_out_at_the_pacs(
    deployment: Deployment,
    node: Node,
    start_worker: Callable[[], subprocess.Popen[bytes]],
    study: CtStudy,
    pacs: Pacs,
    tmp_path: Path,
) -> None:
    start_worker()
    storescu(node.scp_address[1], *study.files)

    job: Job = wait_for("the job and its exports", deployment, lambda: all_exported(deployment))

    ct = [dcmread(path, stop_before_pixels=True) for path in study.ct]
    stored = download_study(pacs, ct[0].StudyInstanceUID, tmp_path / "from-pacs")
    assert sorted(stored) == ["OT", "SEG", "SR"]  # key images: secondary captures, "OT"
    assert sum(map(len, stored.values())) == len(job.results)
    (seg_path,), (sr_path,) = stored["SEG"], stored["SR"]
    seg, sr = dcmread(seg_path), dcmread(sr_path)
    assert_seg_refers_to(seg, ct)
    assert_sr_refers_to(sr, seg, ct)
    for path in [path for paths in stored.values() for path in paths]:
        errors, _ = dciodvfy(path)
        assert errors == [], f"{dcmread(path).Modality} {path.name}"
    assert_node_reports(deployment, ct[0].SeriesInstanceUID)
