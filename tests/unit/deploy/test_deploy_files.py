"""deploy/: the production configuration example loads, the systemd units verify."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import DimseDestination
from agent.config_loading import load_settings

DEPLOY = Path(__file__).parents[3] / "deploy"
INSTALLED_VENV = "/opt/dicom-agent/.venv"
ENV_FILE = "/etc/dicom-agent/dicom-agent.env"


def example_environment() -> dict[str, str]:
    """The variables of systemd/dicom-agent.env.example, as systemd would set them."""
    lines = (DEPLOY / "systemd" / "dicom-agent.env.example").read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {key: value for key, value in pairs}


def test_the_production_example_is_a_valid_configuration() -> None:
    settings = load_settings(DEPLOY / "agent.production.yaml", example_environment())

    assert settings.database_url.startswith("postgresql+psycopg://")
    assert settings.broker_url.startswith("redis://")
    assert len(settings.api.tokens) == 1
    pacs = settings.destinations[0]
    assert isinstance(pacs, DimseDestination) and pacs.ae_title == "PACS_MAIN"
    assert [rule.destinations for rule in settings.rules] == [["pacs", "archive"]]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_the_systemd_units_verify_against_this_checkout(tmp_path: Path) -> None:
    """`systemd-analyze verify` with the install paths pointed at this checkout's .venv; it
    exits 0 on unknown keys too, so its warnings must be empty."""
    venv = str(Path(sys.executable).parent.parent)
    units = []
    for unit in sorted((DEPLOY / "systemd").glob("*.service")):
        text = unit.read_text().replace(INSTALLED_VENV, venv)
        text = text.replace(ENV_FILE, str(DEPLOY / "systemd" / "dicom-agent.env.example"))
        (tmp_path / unit.name).write_text(text)
        units.append(str(tmp_path / unit.name.replace("@.service", "@1.service")))  # an instance
    assert len(units) == 2

    verified = subprocess.run(
        ["systemd-analyze", "verify", *units], capture_output=True, text=True, check=False
    )

    assert verified.returncode == 0, verified.stderr
    assert verified.stderr == ""
