"""The admin web page in a real headless Chromium against a real uvicorn server."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from agent.api.app import create_app
from agent.config import Settings
from agent.db.migrate import upgrade
from agent.db.session import create_db_engine, session_factory
from agent.spool import Spool
from tests.support.http import served

pytestmark = pytest.mark.integration

SeedJobs = Callable[[sessionmaker[Session]], list[int]]

TOKEN = "web-page-token"
CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--virtual-time-budget=10000",  # let the page's fetches finish before the DOM is dumped
]


@pytest.fixture
def settings(tmp_path: Path, seed_jobs: SeedJobs) -> Settings:
    """A migrated SQLite database with a failed and a queued job, and one quarantined file."""
    settings = Settings.model_validate(
        {"spool_dir": str(tmp_path / "spool"), "api": {"tokens": [TOKEN]}}
    )
    upgrade(settings.database_url)
    engine = create_db_engine(settings.database_url)
    seed_jobs(session_factory(engine))
    engine.dispose()
    Spool(settings.spool_dir).quarantine(b"junk", "no DICM prefix", "MODALITY_1")
    return settings


@pytest.fixture
def base_url(settings: Settings) -> Iterator[str]:
    with served(create_app(settings)) as url:
        yield url


def _dump_dom(url: str, profile: Path) -> str:
    assert CHROMIUM is not None
    command = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def _rows(dom: str, attribute: str) -> list[str]:
    return re.findall(rf'<tr data-{attribute}="([^"]+)"', dom)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_page_renders_jobs_and_quarantine(
    base_url: str, settings: Settings, tmp_path: Path
) -> None:
    dom = _dump_dom(f"{base_url}/#token={TOKEN}", tmp_path / "chromium")
    states = re.findall(r'<tr data-job-id="(\d+)" data-state="([a-z]+)"', dom)
    assert [state for _, state in states] == ["queued", "failed"]
    failed_row = dom[dom.index('data-state="failed"') :].split("</tr>")[0]
    assert "model crashed" in failed_row
    assert 'data-action="retry"' in failed_row
    assert 'data-action="cancel"' not in failed_row
    [quarantined] = Spool(settings.spool_dir).list_quarantine()
    assert _rows(dom, "file") == [quarantined.path.name]
    assert "no DICM prefix" in dom


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_page_without_token_asks_for_one(base_url: str, tmp_path: Path) -> None:
    dom = _dump_dom(f"{base_url}/", tmp_path / "chromium")
    assert re.search(r'<form id="login">', dom), "the token form should be visible"
    assert re.search(r'<main id="content" hidden="">', dom)
    assert _rows(dom, "job-id") == []


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_openapi_docs_render_without_internet(base_url: str, tmp_path: Path) -> None:
    """Swagger UI comes from the node (Chromium here cannot reach a CDN either way)."""
    dom = _dump_dom(f"{base_url}/docs", tmp_path / "chromium")

    assert "/static-offline-docs/swagger-ui-bundle.js" in dom
    assert 'class="swagger-ui' in dom
    assert "/api/jobs/{job_id}/retry" in dom
