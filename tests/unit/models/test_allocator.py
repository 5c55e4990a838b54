"""glibc's allocator is set for large CPU tensors where the C library is glibc."""

from __future__ import annotations

import platform

import pytest

from models.pipelines.allocator import keep_freed_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_takes_the_settings_and_takes_them_again() -> None:
    assert keep_freed_memory()
    assert keep_freed_memory()
