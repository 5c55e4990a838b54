"""The PACS-facing node must stay light: importing it never pulls in torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_agent_never_imports_torch() -> None:
    code = (
        "import sys, agent.cli, agent.config, agent.jobs, agent.db.migrate, agent.db.queries;"
        "import agent.api.app;"
        "sys.exit('torch' in sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_listing_models_never_imports_torch() -> None:
    code = (
        "import sys; from models.pipelines.registry import available;"
        "assert available(); sys.exit('torch' in sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
