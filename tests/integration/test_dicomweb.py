"""STOW-RS exports and the QIDO-RS check against Orthanc with its DICOMweb plugin."""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

from agent.config import Settings
from agent.db.models import Result
from agent.destinations import check_destination, find_destination
from tests.support.orthanc import DICOMWEB_PLUGIN, ORTHANC, Pacs, running_orthanc
from workers.export import ExportError, deliver

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(ORTHANC is None, reason="Orthanc is not installed"),
    pytest.mark.skipif(not DICOMWEB_PLUGIN.exists(), reason="orthanc-dicomweb is not installed"),
]


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pacs]:
    with running_orthanc(tmp_path_factory.mktemp("orthanc")) as running:
        yield running


def settings_for(url: str, tmp_path: Path) -> Settings:
    return Settings.model_validate(
        {
            "spool_dir": tmp_path / "spool",
            "destinations": [{"kind": "dicomweb", "name": "web", "url": url}],
            "rules": [],
        }
    )


def test_a_result_is_stored_by_stow_rs(pacs: Pacs, tmp_path: Path) -> None:
    settings = settings_for(f"{pacs.http_url}/dicom-web", tmp_path)
    path = Path(str(get_testdata_file("CT_small.dcm")))

    answer = check_destination(find_destination(settings, "web"), settings.ae_title)
    deliver(settings, "web", path, Result())

    assert "answered a study query" in answer
    sent = dcmread(path)
    [stored] = pacs.instances_by_modality(sent.StudyInstanceUID)["CT"]
    assert dcmread(BytesIO(pacs.file(stored))).SOPInstanceUID == sent.SOPInstanceUID


def test_a_wrong_service_url_fails_for_good(pacs: Pacs, tmp_path: Path) -> None:
    settings = settings_for(f"{pacs.http_url}/no-such-service", tmp_path)
    path = Path(str(get_testdata_file("CT_small.dcm")))

    with pytest.raises(ExportError, match="answered 404") as failure:
        deliver(settings, "web", path, Result())

    assert failure.value.permanent
