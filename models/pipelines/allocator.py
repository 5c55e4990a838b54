"""glibc's allocator set for the large, short-lived tensors of CPU inference.

By default glibc serves every allocation over a dynamic threshold by a fresh `mmap` and gives
it back at `free`, so each sliding window's activations (16 channels of 96^3 float32: 57 MB)
are page-faulted in and zeroed by the kernel again. On a 2-core AVX2 VM (session 15) the
pipeline on the 512x512x300 benchmark CT took 13.3 s, and its process spent 6.7 s of its 30 s of
CPU time in the kernel. Raising the mmap threshold to glibc's maximum (32 MiB) and keeping up to
`TRIM_THRESHOLD_BYTES` of freed memory for reuse took the pipeline to 11.3 s, the resident size
steady (1.2-1.3 GiB) over five runs in one process; switching mmap off altogether was faster
still but the resident size grew by up to 300 MiB a run (1.4 to 1.9 GiB over three), so it is
not done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

logger = logging.getLogger(__name__)

# mallopt(3) parameter numbers, from glibc's malloc.h
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024  # the most glibc accepts on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD_BYTES = 1024 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Tune glibc's allocator for this process (see the module's docstring); False where the C
    library is not glibc or refuses the values. Safe to call more than once."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # no C library to load, or not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
    if not done:
        logger.warning("glibc refused the allocator settings; CPU inference runs slower")
    return done
