"""The `dicom-agent` command against a real, migrated SQLite job database."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner, Result

from agent.cli import app
from agent.db.session import create_db_engine, session_factory

pytestmark = pytest.mark.integration

SeedJobs = Callable[[sessionmaker[Session]], list[int]]


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "agent.yaml"
    settings = {"spool_dir": str(tmp_path / "spool"), "api": {"tokens": ["top-secret"]}}
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path


def _run(config_path: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, ["--config", str(config_path), *args], env=env)


@pytest.fixture
def job_ids(config_path: Path, tmp_path: Path, seed_jobs: SeedJobs) -> list[int]:
    """`db upgrade` on a fresh database, then two jobs: one failed, one queued."""
    assert _run(config_path, "db", "upgrade").exit_code == 0
    engine = create_db_engine(f"sqlite:///{tmp_path / 'spool' / 'agent.db'}")
    try:
        return seed_jobs(session_factory(engine))
    finally:
        engine.dispose()


def test_config_check_prints_masked_settings(config_path: Path) -> None:
    result = _run(config_path, "config", "check")
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.stdout)
    assert printed["api"]["tokens"] == ["**********"]
    assert printed["database_url"].endswith("spool/agent.db")
    assert "top-secret" not in result.output


def test_config_check_fails_with_the_reason(config_path: Path) -> None:
    result = _run(config_path, "config", "check", env={"DICOM_AGENT_PORT": "70000"})
    assert result.exit_code == 1
    assert "port: Input should be less than 65536 (from DICOM_AGENT_PORT)" in result.stderr


def test_jobs_list_table_and_filters(config_path: Path, job_ids: list[int]) -> None:
    table = _run(config_path, "jobs", "list")
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "STATE", "PIPELINE"]
    assert [line.split()[:2] for line in lines[1:]] == [
        [str(job_ids[1]), "queued"],
        [str(job_ids[0]), "failed"],
    ]
    failed = json.loads(_run(config_path, "jobs", "list", "--state", "failed", "--json").stdout)
    assert [(job["id"], job["error"]) for job in failed] == [(job_ids[0], "model crashed")]
    by_patient = json.loads(_run(config_path, "jobs", "list", "--patient", "P2", "--json").stdout)
    assert [job["series"]["study"]["patient_id"] for job in by_patient] == ["P2"]
    window = ["--since", "2000-01-01", "--until", "2000-12-31", "--json"]
    assert json.loads(_run(config_path, "jobs", "list", *window).stdout) == []


def test_jobs_show_has_events(config_path: Path, job_ids: list[int]) -> None:
    detail = json.loads(_run(config_path, "jobs", "show", str(job_ids[0]), "--json").stdout)
    assert [e["to_state"] for e in detail["events"]] == ["queued", "running", "failed"]
    assert (detail["results"], detail["worker"]) == ([], "w1")
    text = _run(config_path, "jobs", "show", str(job_ids[0]))
    assert text.exit_code == 0, text.output
    assert f"job {job_ids[0]}: failed" in text.stdout
    assert "error: model crashed" in text.stdout


def test_jobs_retry_and_cancel(config_path: Path, job_ids: list[int]) -> None:
    failed, queued = job_ids
    retried = _run(config_path, "jobs", "retry", str(failed))
    assert (retried.exit_code, retried.stdout) == (0, f"job {failed} is queued\n")
    again = _run(config_path, "jobs", "retry", str(failed))
    assert again.exit_code == 1
    assert f"job {failed}: cannot go from queued to queued" in again.stderr
    cancelled = _run(config_path, "jobs", "cancel", str(queued))
    assert (cancelled.exit_code, cancelled.stdout) == (0, f"job {queued} is cancelled\n")
    detail = json.loads(_run(config_path, "jobs", "show", str(queued), "--json").stdout)
    assert detail["events"][-1]["message"] == "cancelled from the command line"


def test_unknown_job_is_an_error(config_path: Path, job_ids: list[int]) -> None:
    result = _run(config_path, "jobs", "show", "999")
    assert result.exit_code == 1
    assert "job 999 not found" in result.stderr


def test_studies_list(config_path: Path, job_ids: list[int]) -> None:
    studies = json.loads(_run(config_path, "studies", "list", "--json").stdout)
    assert [
        (s["study"]["patient_id"], s["series_count"], s["instance_count"]) for s in studies
    ] == [
        ("P2", 1, 1),
        ("P1", 1, 1),
    ]
    table = _run(config_path, "studies", "list").stdout.splitlines()
    assert table[0].split()[:2] == ["ID", "STUDY"]
    assert len(table) == 3


def test_commands_on_an_unmigrated_database_say_what_to_do(config_path: Path) -> None:
    result = _run(config_path, "jobs", "list")
    assert result.exit_code == 1
    assert "did `dicom-agent db upgrade` run?" in result.stderr
