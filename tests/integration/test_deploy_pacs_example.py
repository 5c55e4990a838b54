"""deploy/pacs/: the example Orthanc configuration forwards CT, and only CT, to the agent."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

from tests.support.orthanc import ORTHANC, running_orthanc
from tests.support.scp import LOCALHOST, SCP_AE, RunningScp, StartScp, run_dcmtk

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(ORTHANC is None, reason="Orthanc is not installed"),
]

EXAMPLE = Path(__file__).parents[2] / "deploy" / "pacs"


def example_config(agent_port: int) -> dict[str, object]:
    """The example as shipped, its agent address pointed at this test's SCP."""
    config = json.loads((EXAMPLE / "orthanc-ai-agent.json").read_text())
    agent = config["DicomModalities"]["ai-agent"]
    assert agent["AET"] == "AI_AGENT"
    config["DicomModalities"]["ai-agent"] = {
        **agent,
        "AET": SCP_AE,
        "Host": "127.0.0.1",
        "Port": agent_port,
    }
    config["LuaScripts"] = [str(EXAMPLE / name) for name in config["LuaScripts"]]
    return config


def test_the_example_pacs_forwards_ct_and_nothing_else(
    scp_starter: StartScp, tmp_path: Path
) -> None:
    scp: RunningScp = scp_starter()
    ct, mr = (Path(str(get_testdata_file(name))) for name in ("CT_small.dcm", "MR_small.dcm"))
    with running_orthanc(tmp_path / "orthanc", extra_config=example_config(scp.port)) as pacs:
        sent = run_dcmtk(
            "storescu",
            "-aet",
            "CT_SCANNER_1",
            "-aec",
            pacs.ae_title,
            LOCALHOST,
            str(pacs.dicom_port),
            str(mr),
            str(ct),
        )
        assert sent.returncode == 0, sent.stderr
        deadline = time.monotonic() + 20
        while not scp.recorder.instances and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # time enough for a wrongly forwarded MR to arrive too

    forwarded = [dcmread(scp.spool.path_of(i.spool_path)) for i in scp.recorder.instances]
    assert [ds.SOPInstanceUID for ds in forwarded] == [dcmread(ct).SOPInstanceUID]
