"""The whole product path with real peers: DCMTK storescu -> SCP -> completion and routing ->
Celery worker subprocess -> SEG + SR in a folder destination; and a worker killed mid-job.

Each backend pair runs (`tests.support.fixtures`): SQLite with the embedded broker (Kombu's
SQLAlchemy transport), and PostgreSQL with Redis.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydicom import dcmread

from agent.api.app import create_app
from agent.config import ApiSettings
from agent.db.enums import JobState, SeriesState
from agent.db.models import Job
from agent.dicomweb.client import multipart
from agent.jobs import parse_stage
from agent.serve import Node
from models.reference.phantom import Geometry
from tests.support.node import (
    REPO,
    Deployment,
    all_exported,
    clean_environment,
    run_cli,
    series_by_number,
    series_state,
    storescu,
    the_job,
    wait_for,
)
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
    pytest.mark.skipif(shutil.which("storescu") is None, reason="DCMTK storescu is not installed"),
]

WORKER_STARTED = re.compile(r"local worker started \(pid (?P<pid>\d+)\)")


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> CtStudy:
    """A small chest CT series (40 slices of 256 x 256) with two nodules, and a localizer."""
    geometry = Geometry(256, 1.4, 2.5, 40)
    directory = tmp_path_factory.mktemp("study")
    return write_ct_study(directory, 7, geometry, nodule_count=2, window=(110.0, 210.0))


@pytest.fixture
def out_dir(destinations: list[dict[str, Any]]) -> Path:
    (folder,) = destinations
    return Path(folder["path"])


def assert_results_in_folder(out_dir: Path, job: Job) -> None:
    assert job.state == JobState.SUCCEEDED, job.error
    (seg,) = out_dir.glob("*/seg-*/*.dcm")
    (sr,) = out_dir.glob("*/sr-*/*.dcm")
    assert dcmread(seg).Modality == "SEG"
    assert dcmread(sr).Modality == "SR"
    stages = [parse_stage(event.message) for event in job.events]
    assert [stage[0] for stage in stages if stage][-3:] == ["load", "infer", "encode"]


def test_series_in_results_out(
    deployment: Deployment,
    node: Node,
    start_worker: Callable[[], subprocess.Popen[bytes]],
    study: CtStudy,
    out_dir: Path,
) -> None:
    start_worker()
    storescu(node.scp_address[1], *study.files)

    job = wait_for("the job and its exports", deployment, lambda: all_exported(deployment))

    assert_results_in_folder(out_dir, job)
    assert job.attempts == 1
    assert series_by_number(deployment, CT_SERIES_NUMBER).state == SeriesState.DONE
    skipped = series_by_number(deployment, LOCALIZER_SERIES_NUMBER)
    assert skipped.state == SeriesState.SKIPPED
    assert skipped.skip_reason == LOCALIZER_SKIP_REASON


def test_a_study_sent_by_stow_rs_becomes_a_job(
    deployment: Deployment, node: Node, study: CtStudy
) -> None:
    settings = deployment.settings.model_copy(update={"api": ApiSettings(tokens=["flow"])})
    body = multipart([path.read_bytes() for path in study.files], "flow-boundary")
    content_type = 'multipart/related; type="application/dicom"; boundary=flow-boundary'

    with TestClient(create_app(settings), headers={"Authorization": "Bearer flow"}) as client:
        answer = client.post(
            "/dicom-web/studies", content=body, headers={"Content-Type": content_type}
        )

    assert answer.status_code == 200, answer.text
    wait_for("the job", deployment, lambda: the_job(deployment, JobState.QUEUED))
    wait_for(
        "the localizer skipped",
        deployment,
        lambda: series_state(deployment, LOCALIZER_SERIES_NUMBER) == SeriesState.SKIPPED,
    )
    assert series_by_number(deployment, LOCALIZER_SERIES_NUMBER).skip_reason == (
        LOCALIZER_SKIP_REASON
    )


def test_job_of_a_killed_worker_is_taken_over(
    deployment: Deployment,
    node: Node,
    start_worker: Callable[[], subprocess.Popen[bytes]],
    study: CtStudy,
    out_dir: Path,
) -> None:
    first = start_worker()
    storescu(node.scp_address[1], *study.ct)
    wait_for("the job to run", deployment, lambda: the_job(deployment, JobState.RUNNING))
    first.send_signal(signal.SIGKILL)
    first.wait()
    start_worker()

    job = wait_for("the job and its exports", deployment, lambda: all_exported(deployment))

    assert_results_in_folder(out_dir, job)
    assert job.attempts == 2
    assert any(event.message.startswith("lease ran out; reclaimed") for event in job.events)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_serve_runs_a_local_worker_and_stops_cleanly(
    deployment: Deployment, study: CtStudy
) -> None:
    log = deployment.config_path.parent / "serve.log"
    deployment.logs.append(log)
    with log.open("wb") as output:
        serve = subprocess.Popen(
            deployment.command("serve"),
            cwd=REPO,
            env=clean_environment(),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        started = wait_for(
            "the local worker", deployment, lambda: WORKER_STARTED.search(log.read_text())
        )
        wait_for("the listener", deployment, lambda: "agent.serve: serving;" in log.read_text())
        assert study.localizer is not None
        storescu(deployment.settings.port, study.localizer)
        wait_for(
            "the localizer to be skipped",
            deployment,
            lambda: series_state(deployment, LOCALIZER_SERIES_NUMBER) == SeriesState.SKIPPED,
        )
        studies = run_cli(deployment, "studies", "list", "--series")
        assert "skipped  1          not a volume: a volume needs at least 2" in studies
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(60) == 0, deployment.log_tails()
    finally:
        serve.kill()
    with pytest.raises(ProcessLookupError):
        os.kill(int(started["pid"]), 0)
    assert "node stopped" in log.read_text()
