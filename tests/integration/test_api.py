"""The admin API in-process (FastAPI's TestClient) against real, migrated job databases:
SQLite and PostgreSQL in turn wherever a test uses the `database_url` fixture."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from agent.api.app import create_app
from agent.config import Settings
from agent.db.enums import ExportState, JobState
from agent.db.models import Export
from agent.db.session import session_scope
from agent.spool import Spool
from tests.conftest import result_row

pytestmark = pytest.mark.integration

SeedJobs = Callable[[sessionmaker[Session]], list[int]]

TOKEN = "api-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PROTECTED = [
    ("GET", "/api/jobs"),
    ("GET", "/api/jobs/1"),
    ("POST", "/api/jobs/1/retry"),
    ("POST", "/api/jobs/1/cancel"),
    ("GET", "/api/studies"),
    ("GET", "/api/quarantine"),
    ("GET", "/metrics"),
]


def _settings(tmp_path: Path, database_url: str, tokens: list[str]) -> Settings:
    return Settings.model_validate(
        {
            "spool_dir": str(tmp_path / "spool"),
            "database_url": database_url,
            "api": {"tokens": tokens},
        }
    )


def _client(settings: Settings) -> TestClient:
    return TestClient(create_app(settings), headers=AUTH)


@pytest.fixture
def client(tmp_path: Path, database_url: str, engine: Engine) -> Iterator[TestClient]:
    """A client sending the right token, on an empty migrated database (each backend).
    Using `engine` makes the PostgreSQL tables empty only after this app has shut down."""
    with _client(_settings(tmp_path, database_url, [TOKEN])) as client:
        yield client


@pytest.fixture
def job_ids(sessions: sessionmaker[Session], seed_jobs: SeedJobs) -> list[int]:
    """[failed job of patient P1, queued job of patient P2]."""
    return seed_jobs(sessions)


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    """Settings on an unmigrated SQLite file: enough for what never reaches the tables."""
    return _settings(tmp_path, f"sqlite:///{tmp_path / 'agent.db'}", [TOKEN, "second-token"])


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _ids(client: TestClient, query: str = "") -> list[int]:
    response = client.get(f"/api/jobs{query}")
    assert response.status_code == 200, response.text
    return [job["id"] for job in response.json()]


def test_data_needs_one_of_the_configured_tokens(sqlite_settings: Settings) -> None:
    with TestClient(create_app(sqlite_settings)) as client:
        for method, path in PROTECTED:
            missing = client.request(method, path)
            wrong = client.request(method, path, headers={"Authorization": f"Bearer {TOKEN}x"})
            for refused in (missing, wrong):
                assert refused.status_code == 401, (method, path)
                assert refused.headers["WWW-Authenticate"] == "Bearer"
                assert "Authorization: Bearer <token>" in refused.json()["detail"]
        second = client.get("/api/quarantine", headers={"Authorization": "Bearer second-token"})
        assert second.status_code == 200
        for public in ("/healthz", "/docs", "/openapi.json", "/", "/static/app.js"):
            assert client.get(public).status_code == 200, public


def test_without_configured_tokens_only_healthz_answers(tmp_path: Path) -> None:
    settings = _settings(tmp_path, f"sqlite:///{tmp_path / 'agent.db'}", [])
    with _client(settings) as client:
        refused = client.get("/api/jobs")
        assert refused.status_code == 401
        assert "api: tokens:" in refused.json()["detail"]
        assert client.get("/metrics").status_code == 401
        assert client.get("/healthz").json() == {"status": "ok"}


def test_list_jobs_with_filters(client: TestClient, job_ids: list[int]) -> None:
    failed, queued = job_ids
    assert _ids(client) == [queued, failed]
    assert _ids(client, "?state=failed") == [failed]
    assert _ids(client, "?state=failed&state=queued") == [queued, failed]
    assert _ids(client, "?state=succeeded") == []
    assert _ids(client, "?patient=P2") == [queued]
    assert _ids(client, "?accession=ACC-0") == [failed]
    assert _ids(client, "?since=2000-01-01T00:00:00Z&until=2000-12-31T00:00:00Z") == []
    assert _ids(client, "?since=2000-01-01T00:00:00%2B01:00") == [queued, failed]
    assert _ids(client, "?limit=1") == [queued]
    job = client.get("/api/jobs?state=failed").json()[0]
    assert (job["error"], job["series"]["study"]["patient_id"]) == ("model crashed", "P1")
    for bad in ("?state=lost", "?since=2000-01-01", "?limit=0"):
        assert client.get(f"/api/jobs{bad}").status_code == 422, bad


def _add_result(sessions: sessionmaker[Session], job_id: int) -> None:
    with session_scope(sessions) as session:
        result = result_row("results/seg.dcm", job_id=job_id)
        result.exports.append(
            Export(destination="pacs", state=ExportState.FAILED, attempts=2, last_error="refused")
        )
        session.add(result)


def test_job_detail_has_events_results_and_exports(
    client: TestClient, job_ids: list[int], sessions: sessionmaker[Session]
) -> None:
    _add_result(sessions, job_ids[0])
    detail = client.get(f"/api/jobs/{job_ids[0]}").json()
    assert [event["to_state"] for event in detail["events"]] == ["queued", "running", "failed"]
    [result] = detail["results"]
    assert (result["kind"], result["sop_instance_uid"]) == ("seg", "2.25.1")
    [export] = result["exports"]
    assert (export["destination"], export["state"], export["attempts"]) == ("pacs", "failed", 2)


def test_retry_and_cancel_follow_the_state_machine(client: TestClient, job_ids: list[int]) -> None:
    failed, queued = job_ids
    retried = client.post(f"/api/jobs/{failed}/retry")
    assert (retried.status_code, retried.json()["state"]) == (200, JobState.QUEUED)
    assert retried.json()["error"] is None
    again = client.post(f"/api/jobs/{failed}/retry")
    assert again.status_code == 409
    assert again.json() == {
        "detail": f"job {failed}: cannot go from queued to queued",
        "error": "IllegalTransitionError",
    }
    cancelled = client.post(f"/api/jobs/{queued}/cancel")
    assert (cancelled.status_code, cancelled.json()["state"]) == (200, JobState.CANCELLED)
    assert client.post(f"/api/jobs/{queued}/cancel").status_code == 409
    messages = [event["message"] for event in client.get(f"/api/jobs/{failed}").json()["events"]]
    assert messages[-1] == "retry requested from the API"


def test_unknown_job_is_404(client: TestClient, job_ids: list[int]) -> None:
    missing = max(job_ids) + 1
    for response in (
        client.get(f"/api/jobs/{missing}"),
        client.post(f"/api/jobs/{missing}/retry"),
        client.post(f"/api/jobs/{missing}/cancel"),
    ):
        assert response.status_code == 404
        assert response.json()["detail"] == f"job {missing} not found"


def test_studies(client: TestClient, job_ids: list[int]) -> None:
    studies = client.get("/api/studies").json()
    counts = [(s["study"]["patient_id"], s["series_count"], s["instance_count"]) for s in studies]
    assert counts == [("P2", 1, 1), ("P1", 1, 1)]
    only = client.get("/api/studies?accession=ACC-1").json()
    assert [s["study"]["patient_id"] for s in only] == ["P2"]


def test_quarantine_lists_what_the_spool_kept(client: TestClient, tmp_path: Path) -> None:
    assert client.get("/api/quarantine").json() == []
    kept = Spool(tmp_path / "spool").quarantine(b"not DICOM", "no DICM prefix", "MODALITY_1")
    [item] = client.get("/api/quarantine").json()
    assert (item["name"], item["reason"], item["calling_ae"]) == (
        kept.name,
        "no DICM prefix",
        "MODALITY_1",
    )
    assert item["size_bytes"] == len(b"not DICOM")


def test_metrics_are_prometheus_text(
    client: TestClient, job_ids: list[int], tmp_path: Path
) -> None:
    Spool(tmp_path / "spool").quarantine(b"junk", "unreadable", "MODALITY_1")
    response = client.get("/metrics")
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    sample = re.compile(r'^(?P<name>[a-z_]+)(\{state="(?P<state>[a-z]+)"\})? (?P<value>\d+)$')
    values: dict[str, int] = {}
    declared: list[str] = []
    for line in response.text.splitlines():
        if line.startswith("# TYPE "):
            declared.append(line.split()[2])
            assert line.endswith(" gauge")
        elif not line.startswith("# HELP "):
            match = sample.match(line)
            assert match, line
            assert match["name"] == declared[-1]
            values[match["state"] or match["name"]] = int(match["value"])
    assert {state: values[state] for state in JobState} == {
        **dict.fromkeys(JobState, 0),
        JobState.FAILED: 1,
        JobState.QUEUED: 1,
    }
    assert values["dicom_agent_instances_received"] == 2
    assert values["dicom_agent_quarantined_files"] == 1


def test_healthz_checks_the_database(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_unreachable_database_is_503(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/nowhere"
    with _client(_settings(tmp_path, url, [TOKEN])) as client:
        for path in ("/healthz", "/api/jobs"):
            response = client.get(path)
            assert response.status_code == 503, path
            assert response.json()["error"] == "DatabaseError"


def test_openapi_docs(sqlite_settings: Settings) -> None:
    with _client(sqlite_settings) as client:
        assert "swagger-ui" in client.get("/docs").text
        schema = client.get("/openapi.json").json()
    assert {"/api/jobs", "/api/jobs/{job_id}/retry", "/api/quarantine", "/healthz"} <= set(
        schema["paths"]
    )
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "security" not in schema["paths"]["/healthz"]["get"]
    assert schema["paths"]["/api/jobs"]["get"]["security"] == [{"HTTPBearer": []}]
