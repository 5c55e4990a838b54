"""New files written around the page cache, and the fallback where a filesystem refuses that."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import direct_write
from agent.direct_write import ALIGNMENT, CHUNK_BYTES, write_new_file
from tests.support.mounts import mounted


@pytest.mark.parametrize(
    "size", [0, 1, ALIGNMENT - 1, ALIGNMENT, 525_652, CHUNK_BYTES, 2 * CHUNK_BYTES + 7]
)
def test_a_new_file_holds_exactly_the_bytes(tmp_path: Path, size: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)

    path = write_new_file(tmp_path, ".part", data)

    assert path.parent == tmp_path and path.suffix == ".part"
    assert path.read_bytes() == data


def test_padding_from_an_earlier_file_never_shows(tmp_path: Path) -> None:
    write_new_file(tmp_path, ".a", b"\xff" * (3 * ALIGNMENT))
    path = write_new_file(tmp_path, ".b", b"\x01" * 10)

    assert path.read_bytes() == b"\x01" * 10


def test_every_file_gets_a_name_of_its_own(tmp_path: Path) -> None:
    names = {write_new_file(tmp_path, ".part", b"x").name for _ in range(50)}

    assert len(names) == 50


@pytest.fixture
def ramfs(tmp_path: Path) -> Iterator[Path]:
    """A ramfs, which refuses O_DIRECT."""
    with mounted(tmp_path / "ramfs", "ramfs") as mount_point:
        yield mount_point


def test_a_filesystem_without_o_direct_gets_ordinary_writes(
    ramfs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(direct_write._direct, "supported", True)  # restored afterwards

    path = write_new_file(ramfs, ".part", b"abc" * 5000)

    assert path.read_bytes() == b"abc" * 5000
    assert direct_write._direct["supported"] is False
    assert list(ramfs.iterdir()) == [path]  # the refused attempt left nothing
