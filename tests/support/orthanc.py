"""A real PACS for end-to-end tests and benchmarks: Debian's Orthanc on loopback, own config."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.node import free_port

ORTHANC = shutil.which("Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


@dataclass(frozen=True)
class Pacs:
    ae_title: str
    dicom_port: int
    http_url: str

    def destination(self, name: str) -> dict[str, Any]:
        """This PACS as a `dimse` destination of the agent's configuration."""
        address = {"ae_title": self.ae_title, "host": "127.0.0.1", "port": self.dicom_port}
        return {"kind": "dimse", "name": name, **address}

    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.http_url}{path}", timeout=10)
        response.raise_for_status()
        return response.json()

    def file(self, instance_id: str) -> bytes:
        response = httpx.get(f"{self.http_url}/instances/{instance_id}/file", timeout=10)
        response.raise_for_status()
        return response.content

    def find_study(self, study_instance_uid: str) -> str | None:
        """Orthanc's id of the study with this StudyInstanceUID, None if it has none."""
        response = httpx.post(
            f"{self.http_url}/tools/lookup", content=study_instance_uid, timeout=10
        )
        response.raise_for_status()
        found = [item["ID"] for item in response.json() if item["Type"] == "Study"]
        return found[0] if found else None

    def instances_by_modality(self, study_instance_uid: str) -> dict[str, list[str]]:
        """Orthanc's instance ids of the study, by the Modality of their series."""
        study = self.find_study(study_instance_uid)
        if study is None:
            return {}
        found: dict[str, list[str]] = {}
        for series in self.get(f"/studies/{study}/series"):
            modality = series["MainDicomTags"].get("Modality", "")
            found.setdefault(modality, []).extend(series["Instances"])
        return found


def _config(
    root: Path, ae_title: str, dicom_port: int, http_port: int, peer: tuple[str, int]
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "Name": "e2e-pacs",
        "StorageDirectory": str(root / "storage"),
        "IndexDirectory": str(root / "index"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": ae_title,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomCheckCalledAet": True,
        "DicomAlwaysAllowStore": True,
        "DicomModalities": {"agent": [peer[0], "127.0.0.1", peer[1]]},
        "Plugins": [],
    }
    if DICOMWEB_PLUGIN.exists():
        config["Plugins"] = [str(DICOMWEB_PLUGIN)]
        config["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/"}
    return config


@contextmanager
def running_orthanc(
    root: Path,
    peer: tuple[str, int] = ("AI_AGENT", 11112),
    extra_config: Mapping[str, Any] | None = None,
) -> Iterator[Pacs]:
    """Start Orthanc on free loopback ports; stop it and keep its log on failure.
    `extra_config` replaces or adds top-level configuration keys."""
    assert ORTHANC, "Orthanc is not installed (Debian package orthanc)"
    root.mkdir(parents=True, exist_ok=True)
    dicom_port, http_port = free_port(), free_port()
    config_path = root / "orthanc.json"
    config = _config(root, "E2E_PACS", dicom_port, http_port, peer) | dict(extra_config or {})
    config_path.write_text(json.dumps(config))
    log = (root / "orthanc.log").open("w")
    process = subprocess.Popen([ORTHANC, str(config_path)], stdout=log, stderr=subprocess.STDOUT)
    pacs = Pacs("E2E_PACS", dicom_port, f"http://127.0.0.1:{http_port}")
    try:
        _wait_ready(pacs, process, root / "orthanc.log")
        yield pacs
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _wait_ready(pacs: Pacs, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Orthanc exited: {log.read_text()[-2000:]}")
        try:
            pacs.get("/system")
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"Orthanc did not answer in 30 s: {log.read_text()[-2000:]}")
