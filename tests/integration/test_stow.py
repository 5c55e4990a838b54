"""STOW-RS in: the API stores what a DICOMweb client sends, on real job databases, and a real
peer (Orthanc's DICOMweb client) and our own STOW-RS client reach it over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydicom import dcmread
from pydicom.data import get_testdata_file
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from agent.api.app import create_app
from agent.api.stow import STOW_PEER
from agent.config import Settings
from agent.db.models import Instance
from agent.db.session import session_scope
from agent.dicomweb.client import multipart, store
from agent.spool import Spool
from tests.support.http import served
from tests.support.orthanc import DICOMWEB_PLUGIN, ORTHANC, running_orthanc

pytestmark = pytest.mark.integration

TOKEN = "stow-test-token"
BOUNDARY = "stow-test-boundary"
CONTENT_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
STORED, FAILED, REASON, INSTANCE_UID = "00081199", "00081198", "00081197", "00081155"
FILES = [Path(str(get_testdata_file(name))) for name in ("CT_small.dcm", "MR_small.dcm")]


def settings_for(tmp_path: Path, database_url: str) -> Settings:
    return Settings.model_validate(
        {
            "spool_dir": str(tmp_path / "spool"),
            "database_url": database_url,
            "api": {"tokens": [TOKEN]},
        }
    )


@pytest.fixture
def settings(tmp_path: Path, database_url: str, engine: Engine) -> Settings:
    """On an empty migrated database of each backend (`engine` empties PostgreSQL's after)."""
    return settings_for(tmp_path, database_url)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client


def post(client: TestClient, files: list[bytes], path: str = "/dicom-web/studies") -> Any:
    return client.post(
        path, content=multipart(files, BOUNDARY), headers={"Content-Type": CONTENT_TYPE}
    )


def uids(answer: dict[str, Any], sequence: str) -> list[str | None]:
    items = answer.get(sequence, {}).get("Value", [])
    return [item.get(INSTANCE_UID, {}).get("Value", [None])[0] for item in items]


def indexed(sessions: sessionmaker[Session]) -> dict[str, tuple[str, str]]:
    """SOP Instance UID -> (calling AE, spool path) of every indexed instance."""
    with session_scope(sessions) as session:
        rows = session.execute(
            select(Instance.sop_instance_uid, Instance.calling_ae, Instance.spool_path)
        )
        return {uid: (ae, path) for uid, ae, path in rows}


def test_stored_files_are_spooled_as_sent_and_indexed(
    client: TestClient, settings: Settings, sessions: sessionmaker[Session]
) -> None:
    sent = [path.read_bytes() for path in FILES]

    answer = post(client, sent)
    again = post(client, sent)  # an identical re-send is harmless

    expected = [dcmread(path).SOPInstanceUID for path in FILES]
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/dicom+json"
    assert uids(answer.json(), STORED) == expected
    assert FAILED not in answer.json()
    assert again.status_code == 200
    rows = indexed(sessions)
    assert sorted(rows) == sorted(expected)
    spool = Spool(settings.spool_dir)
    for uid, data in zip(expected, sent, strict=True):
        calling_ae, spool_path = rows[uid]
        assert calling_ae == STOW_PEER
        assert spool.path_of(spool_path).read_bytes() == data


def test_an_unreadable_part_is_quarantined_and_the_rest_stored(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    answer = post(client, [b"not a DICOM file", FILES[0].read_bytes()])

    assert answer.status_code == 202, answer.text
    assert uids(answer.json(), STORED) == [dcmread(FILES[0]).SOPInstanceUID]
    failed = answer.json()[FAILED]["Value"]
    assert [item[REASON]["Value"] for item in failed] == [[0xC000]]
    quarantined = client.get("/api/quarantine").json()
    assert [(q["calling_ae"], q["size_bytes"]) for q in quarantined] == [(STOW_PEER, 16)]
    assert len(indexed(sessions)) == 1


def test_instances_of_another_study_than_the_url_names_are_refused(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    study = dcmread(FILES[0]).StudyInstanceUID
    sent = [path.read_bytes() for path in FILES]

    mixed = post(client, sent, f"/dicom-web/studies/{study}")
    none = post(client, sent[1:], "/dicom-web/studies/1.2.3.4")

    assert mixed.status_code == 202, mixed.text
    assert uids(mixed.json(), FAILED) == [dcmread(FILES[1]).SOPInstanceUID]
    assert mixed.json()[FAILED]["Value"][0][REASON]["Value"] == [0xA901]
    assert none.status_code == 409
    assert sorted(indexed(sessions)) == [dcmread(FILES[0]).SOPInstanceUID]


@pytest.mark.parametrize(
    "content_type, body, status",
    [
        ("application/dicom", b"DICM", 415),
        ('multipart/related; type="application/dicom+json"; boundary=x', b"", 415),
        ('multipart/related; type="application/dicom"', b"", 400),
        (CONTENT_TYPE, f"--{BOUNDARY}\r\n\r\ncut short".encode(), 400),
    ],
)
def test_a_request_that_is_not_a_stow_body_is_refused(
    client: TestClient, content_type: str, body: bytes, status: int
) -> None:
    answer = client.post("/dicom-web/studies", content=body, headers={"Content-Type": content_type})
    assert answer.status_code == status, answer.text


def test_storing_needs_a_token(settings: Settings) -> None:
    with TestClient(create_app(settings)) as anonymous:
        answer = post(anonymous, [FILES[0].read_bytes()])
    assert answer.status_code == 401


@pytest.mark.skipif(ORTHANC is None, reason="Orthanc is not installed")
@pytest.mark.skipif(not DICOMWEB_PLUGIN.exists(), reason="orthanc-dicomweb is not installed")
def test_orthanc_and_our_own_client_store_over_real_http(
    tmp_path: Path, sessions: sessionmaker[Session], database_url: str
) -> None:
    app = create_app(settings_for(tmp_path, database_url))
    with served(app) as base_url:
        agent = {
            "Url": f"{base_url}/dicom-web/",
            "HttpHeaders": {"Authorization": f"Bearer {TOKEN}"},
        }
        extra = {"DicomWeb": {"Enable": True, "Root": "/dicom-web/", "Servers": {"agent": agent}}}
        with running_orthanc(tmp_path / "orthanc", extra_config=extra) as pacs:
            uploaded = httpx.post(f"{pacs.http_url}/instances", content=FILES[0].read_bytes())
            uploaded.raise_for_status()
            sent = httpx.post(
                f"{pacs.http_url}/dicom-web/servers/agent/stow",
                json={"Resources": pacs.get("/instances")},
                timeout=30,
            )
        store(f"{base_url}/dicom-web", [FILES[1].read_bytes()], token=TOKEN)

    assert sent.status_code == 200, sent.text
    rows = indexed(sessions)
    assert sorted(rows) == sorted(dcmread(path).SOPInstanceUID for path in FILES)
    assert {ae for ae, _ in rows.values()} == {STOW_PEER}
