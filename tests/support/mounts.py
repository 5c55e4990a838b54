"""Small filesystems mounted for a test: only where the tests may mount (root in a container)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def mounted(mount_point: Path, fstype: str, options: str = "") -> Iterator[Path]:
    """Mount a `fstype` (tmpfs, ramfs) at `mount_point`; skip the test where that is refused."""
    mount_point.mkdir()
    command = ["mount", "-t", fstype, *(["-o", options] if options else []), fstype]
    if subprocess.run([*command, str(mount_point)], capture_output=True, check=False).returncode:
        pytest.skip(f"cannot mount a {fstype} here")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)
