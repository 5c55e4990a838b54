"""`dicom-agent models list`, `rules test` on real DICOM files, and `echo` against real peers:
the project's own storage SCP on a free port of 127.0.0.1, a closed port, folders on disk."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydicom.data import get_testdata_file
from typer.testing import CliRunner, Result

from agent.cli import app
from agent.dimse.scp import start_scp
from agent.received import ReceivedInstance
from agent.spool import Spool
from models.volume import load_files
from tests.support.bundles import write_bundle

pytestmark = pytest.mark.integration

LOCALHOST = "127.0.0.1"
AGENT_AE = "AI_AGENT"


class NoRecorder:
    """The echo tests store nothing; an SCP still needs a recorder."""

    def record_batch(self, instances: Sequence[ReceivedInstance]) -> None:
        raise AssertionError("nothing should be stored by a C-ECHO")


@pytest.fixture
def pacs_port(tmp_path: Path) -> Iterator[int]:
    """A storage SCP called PACS that accepts only the agent's AE title."""
    scp = start_scp(
        ae_title="PACS",
        address=(LOCALHOST, 0),
        spool=Spool(tmp_path / "pacs"),
        recorder=NoRecorder(),
        allowed_peers=[AGENT_AE],
    )
    yield scp.address[1]
    scp.shutdown()


class CollectingRecorder:
    """What a node's index would be told: every stored instance."""

    def __init__(self) -> None:
        self.instances: list[ReceivedInstance] = []

    def record_batch(self, instances: Sequence[ReceivedInstance]) -> None:
        self.instances.extend(instances)


def test_demo_sends_a_phantom_ct_the_node_stores(tmp_path: Path) -> None:
    recorder = CollectingRecorder()
    spool = Spool(tmp_path / "node")
    scp = start_scp(ae_title=AGENT_AE, address=(LOCALHOST, 0), spool=spool, recorder=recorder)
    try:
        config = _config(tmp_path, [])
        port = str(scp.address[1])
        sent = _run("--config", str(config), "demo", "--seed", "3", env={"DICOM_AGENT_PORT": port})
        again = _run("--config", str(config), "demo", "--seed", "3", env={"DICOM_AGENT_PORT": port})
    finally:
        scp.shutdown()

    assert sent.exit_code == 0, sent.output
    assert f"stored 120 of 120 slices at {AGENT_AE}:{port}" in sent.stdout
    assert "nodules drawn: " in sent.stdout and " mm " in sent.stdout
    assert again.exit_code == 0, again.output  # an identical re-send is harmless
    series = {instance.series_instance_uid for instance in recorder.instances}
    assert len(series) == 1 and len(recorder.instances) == 240
    paths = sorted({spool.path_of(instance.spool_path) for instance in recorder.instances})
    assert load_files(paths).shape == (120, 256, 256)  # one volume, whole


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOCALHOST, 0))
        port: int = probe.getsockname()[1]
    return port


def _config(
    tmp_path: Path,
    destinations: list[dict[str, Any]],
    rules: list[dict[str, Any]] | None = None,
    models_dir: Path | None = None,
) -> Path:
    path = tmp_path / "agent.yaml"
    settings = {
        "spool_dir": str(tmp_path / "spool"),
        "destinations": destinations,
        "rules": rules or [],
        "models_dir": None if models_dir is None else str(models_dir),
    }
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path


def _run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


def _dimse(name: str, port: int) -> dict[str, Any]:
    return {"kind": "dimse", "name": name, "ae_title": "PACS", "host": LOCALHOST, "port": port}


def test_models_list(tmp_path: Path) -> None:
    table = _run("models", "list")
    assert table.exit_code == 0, table.output
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["NAME", "VERSION", "KIND", "SOURCE"]
    assert [row.split()[0] for row in rows] == ["lung-nodule-reference"]
    (tmp_path / "spleen.pt").write_bytes(b"")
    (tmp_path / "spleen.json").write_text(json.dumps({"name": "spleen-seg", "version": "2.1"}))
    listed = _run("models", "list", "--models-dir", str(tmp_path), "--json")
    assert listed.exit_code == 0, listed.output
    assert [(m["name"], m["kind"]) for m in json.loads(listed.stdout)] == [
        ("lung-nodule-reference", "reference"),
        ("spleen-seg", "torchscript"),
    ]
    assert json.loads(listed.stdout)[1]["version"] == "2.1"


def test_models_list_reads_the_configured_models_dir(tmp_path: Path) -> None:
    write_bundle(tmp_path / "models" / "dense-bundle")
    config = _config(tmp_path, [], models_dir=tmp_path / "models")
    listed = _run("--config", str(config), "models", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert [(m["name"], m["kind"]) for m in json.loads(listed.stdout)] == [
        ("lung-nodule-reference", "reference"),
        ("dense-bundle", "monai-bundle"),
    ]
    assert json.loads(listed.stdout)[1]["version"] == "0.2.0"


def test_config_check_names_a_rule_whose_pipeline_is_not_installed(tmp_path: Path) -> None:
    rule = {"name": "dense", "match": {}, "pipeline": "dense-bundle", "destinations": ["here"]}
    here = [{"kind": "folder", "name": "here", "path": str(tmp_path / "out")}]
    config = _config(tmp_path, here, [rule], models_dir=tmp_path / "models")
    missing = _run("--config", str(config), "config", "check")
    assert missing.exit_code == 1
    assert "rule 'dense' runs pipeline 'dense-bundle', which is not installed" in missing.stderr
    write_bundle(tmp_path / "models" / "dense-bundle")
    installed = _run("--config", str(config), "config", "check")
    assert installed.exit_code == 0, installed.output


def test_echo_a_dimse_destination(tmp_path: Path, pacs_port: int) -> None:
    config = _config(tmp_path, [_dimse("pacs", pacs_port), _dimse("offline", _closed_port())])
    ok = _run("--config", str(config), "echo", "pacs")
    assert ok.exit_code == 0, ok.output
    assert ok.stdout == f"C-ECHO to PACS at {LOCALHOST}:{pacs_port} succeeded\n"
    stranger = _run("--config", str(config), "echo", "pacs", env={"DICOM_AGENT_AE_TITLE": "OTHER"})
    assert stranger.exit_code == 1
    assert "rejected the association" in stranger.stderr
    offline = _run("--config", str(config), "echo", "offline")
    assert offline.exit_code == 1
    assert "is unreachable" in offline.stderr


def test_echo_a_folder_destination(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    config = _config(
        tmp_path,
        [
            {"kind": "folder", "name": "here", "path": str(tmp_path)},
            {"kind": "folder", "name": "later", "path": str(tmp_path / "new" / "results")},
            {"kind": "folder", "name": "file", "path": str(tmp_path / "a-file")},
        ],
    )
    here = _run("--config", str(config), "echo", "here")
    assert (here.exit_code, here.stdout) == (0, f"folder {tmp_path} is writable\n")
    later = _run("--config", str(config), "echo", "later")
    assert later.exit_code == 0, later.output
    assert f"does not exist yet; it can be created in {tmp_path}" in later.stdout
    file = _run("--config", str(config), "echo", "file")
    assert file.exit_code == 1
    assert "exists but is not a folder" in file.stderr


def test_echo_names_unknown_and_unreachable_destinations(tmp_path: Path) -> None:
    web = {"kind": "dicomweb", "name": "web", "url": "http://127.0.0.1:1/dicom-web"}
    config = _config(tmp_path, [web])
    unknown = _run("--config", str(config), "echo", "nope")
    assert unknown.exit_code == 1
    assert "no destination named 'nope'; configured: web" in unknown.stderr
    dicomweb = _run("--config", str(config), "echo", "web")
    assert dicomweb.exit_code == 1
    assert "QIDO-RS to http://127.0.0.1:1/dicom-web/studies failed" in dicomweb.stderr


def test_rules_test_explains_each_file(tmp_path: Path) -> None:
    ct_file = get_testdata_file("CT_small.dcm")
    assert ct_file is not None
    rule = {"pipeline": "lung", "destinations": ["here"]}
    config = _config(
        tmp_path,
        [{"kind": "folder", "name": "here", "path": str(tmp_path)}],
        [
            {**rule, "name": "ct-chest", "match": {"Modality": "CT"}},
            {**rule, "name": "mr-first", "match": {"Modality": {"in": ["MR"]}}, "priority": 5},
        ],
    )
    explained = _run("--config", str(config), "rules", "test", str(ct_file))
    assert explained.exit_code == 0, explained.output
    assert explained.stdout.splitlines() == [
        str(ct_file),
        "  rule mr-first (priority 5, pipeline lung): does not match",
        "    FAIL Modality in {'MR'}: 'CT' is not one of the listed values",
        "  rule ct-chest (priority 0, pipeline lung): matches <- chosen",
        "    ok   Modality == 'CT': 'CT' is 'CT'",
        "  result: ct-chest",
    ]
    not_dicom = tmp_path / "notes.txt"
    not_dicom.write_text("hello")
    mixed = _run("--config", str(config), "rules", "test", str(not_dicom), str(ct_file))
    assert mixed.exit_code == 1
    assert f"error: {not_dicom}: not a readable DICOM file" in mixed.stderr
    assert "  result: ct-chest" in mixed.stdout
