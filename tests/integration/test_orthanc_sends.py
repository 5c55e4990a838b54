"""A PACS forwarding to the node: Orthanc's own C-STORE SCU sends to our SCP."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

from tests.support.orthanc import ORTHANC, running_orthanc
from tests.support.scp import SCP_AE, RunningScp, StartScp

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(ORTHANC is None, reason="Orthanc is not installed"),
]


def test_orthanc_forwards_a_series_to_the_scp(scp_starter: StartScp, tmp_path: Path) -> None:
    scp: RunningScp = scp_starter()
    files = [Path(str(get_testdata_file(name))) for name in ("CT_small.dcm", "MR_small.dcm")]
    with running_orthanc(tmp_path / "orthanc", peer=(SCP_AE, scp.port)) as pacs:
        for path in files:
            uploaded = httpx.post(f"{pacs.http_url}/instances", content=path.read_bytes())
            uploaded.raise_for_status()
        instances = pacs.get("/instances")
        sent = httpx.post(
            f"{pacs.http_url}/modalities/agent/store", json={"Resources": instances}, timeout=30
        )
        sent.raise_for_status()

    assert sent.json()["FailedInstancesCount"] == 0
    stored = {
        dcmread(scp.spool.path_of(i.spool_path)).SOPInstanceUID for i in scp.recorder.instances
    }
    assert stored == {dcmread(path).SOPInstanceUID for path in files}
    assert {i.calling_ae for i in scp.recorder.instances} == {"E2E_PACS"}
