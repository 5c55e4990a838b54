"""dicom3tools' `dciodvfy`: what it says about a DICOM file, as error and warning lines."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

EXECUTABLE = shutil.which("dciodvfy")


def dciodvfy(path: Path) -> tuple[list[str], list[str]]:
    """The (error, warning) lines dciodvfy prints about the file at `path`."""
    assert EXECUTABLE is not None, "dciodvfy (dicom3tools) is not installed"
    done = subprocess.run([EXECUTABLE, str(path)], capture_output=True, text=True, check=False)
    lines = (done.stdout + done.stderr).splitlines()
    return (
        [line for line in lines if line.startswith("Error")],
        [line for line in lines if line.startswith("Warning")],
    )
