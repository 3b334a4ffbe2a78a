"""Keep freed memory in the process, so big arrays do not page-fault on every call.

glibc hands each allocation above a threshold (128 KB to 32 MB, adjusted as it goes) to
a fresh ``mmap`` and returns it to the OS when the array is freed. A training step frees
and re-allocates the same activation-sized arrays every time, so each new array starts
as untouched pages: about 1,100 page faults for conv1's 12.8 MB output, 15-20 ms on this
VM, longer than the convolution itself (measured). Deep-learning frameworks avoid this
with caching allocators; here glibc is asked to keep what it has (``mallopt``): blocks up
to ``MMAP_THRESHOLD`` come from the heap, up to ``TRIM_THRESHOLD`` of free heap is kept
for reuse, and all threads share one heap (worker threads' own heaps were still returning
pages: 500-800 faults a step). Memory is reused instead of returned to the OS.

Set ``CONVLAYER_KEEP_MEMORY=0`` to leave the allocator alone. Elsewhere than glibc this
does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8  # from glibc's malloc.h
MMAP_THRESHOLD = 256 << 20
TRIM_THRESHOLD = 1 << 30

_applied: bool | None = None  # None: not tried yet


def keep_freed_memory() -> bool:
    """Apply the allocator settings once per process; True when they are in effect."""
    global _applied
    if _applied is None:
        _applied = False
        if os.environ.get("CONVLAYER_KEEP_MEMORY", "1") != "0":
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                mallopt = libc.mallopt
            except (OSError, AttributeError):  # not glibc
                return False
            mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
            settings = ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_ARENA_MAX, 1))
            _applied = all([bool(mallopt(option, value)) for option, value in settings])
    return _applied
