"""Use every core: split work into independent parts and run them on a small thread pool.

NumPy releases the GIL inside copies, ufuncs and BLAS calls, so plain Python threads run
them side by side. By itself NumPy runs only BLAS on several cores (and runs skinny GEMMs
poorly there); the copies, adds, pooling and optimizer arithmetic around them stay on one.
Here each part runs everything, GEMMs included, on one core, and the parts run at once.

While parts run, BLAS is held to one thread (via threadpoolctl); otherwise each part's GEMM
would start its own BLAS threads and the cores would be oversubscribed. ``compute()`` holds
that setting across many calls (a whole training step); ``run`` enters it for one call
when no caller did. Without threadpoolctl everything runs in the calling thread: the pure
NumPy path, which the tests also cover.

>>> run(lambda lo, hi: list(range(lo, hi)), 5, parts=2)
[[0, 1], [2, 3, 4]]
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Callable, TypeVar

import numpy as np

from . import memory

T = TypeVar("T")

try:
    from threadpoolctl import ThreadpoolController
except ImportError:  # pragma: no cover - exercised by installs without the 'fast' extra
    ThreadpoolController = None

_lock = threading.Lock()
_worker = threading.local()  # .active is True inside pool threads: no nested splitting there
_threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
_pool: ThreadPoolExecutor | None = None
_controller = None
_depth = 0  # nesting of compute() blocks
_limiter = None  # threadpoolctl's limit while depth > 0


def get_num_threads() -> int:
    """How many parts work is split into (default: the cores this process may use)."""
    return _threads if ThreadpoolController is not None else 1


def set_num_threads(threads: int) -> None:
    """Split work into ``threads`` parts; 1 runs everything in the calling thread."""
    global _threads, _pool
    import numpy as np

    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"set_num_threads expects a positive int (1: everything in the calling thread), "
                         f"got {threads!r}.")
    with _lock:
        if _depth:
            raise RuntimeError("set_num_threads cannot change the thread count inside compute(); call it before.")
        _threads = int(threads)
        if _pool is not None:
            _pool.shutdown(wait=True)
            _pool = None


def _blas_controller():
    """threadpoolctl's handle on the BLAS that NumPy calls (other BLAS copies in the process are left alone)."""
    global _controller
    if _controller is None:
        import numpy  # noqa: F401  (loads NumPy's BLAS so threadpoolctl can find it)

        everything = ThreadpoolController()
        blas = [lib.filepath for lib in everything.lib_controllers if lib.user_api == "blas"]
        numpy_blas = [path for path in blas if "numpy" in path] or blas  # wheels bundle it under numpy.libs
        _controller = everything.select(filepath=numpy_blas)
        _controller.limit(limits=1, user_api="blas").restore_original_limits()  # fails here, not mid-step
    return _controller


@contextmanager
def compute():
    """Hold BLAS to one thread for the block, so parts can run on every core.

    Nestable; cheap (about 10 us) to enter. Outside any block BLAS keeps the caller's setting.
    The first call also asks the allocator to keep freed memory (see ``convlayer.memory``).
    """
    global _depth, _limiter
    memory.keep_freed_memory()
    if get_num_threads() == 1 or getattr(_worker, "active", False):
        yield
        return
    with _lock:
        if _depth == 0:
            _limiter = _blas_controller().limit(limits=1, user_api="blas")
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _limiter.restore_original_limits()
                _limiter = None


def _forget_pool_after_fork() -> None:
    """A forked child has none of the parent's threads: start a fresh pool there on demand."""
    global _pool, _depth, _limiter, _lock
    _pool, _depth, _limiter, _lock = None, 0, None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def _mark_worker() -> None:
    _worker.active = True


def _get_pool(size: int) -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="convlayer", initializer=_mark_worker)
        return _pool


def split(n: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous (lo, hi) ranges covering range(n), sizes differing by at most 1, none empty.

    >>> split(5, 2)
    [(0, 2), (2, 5)]
    """
    parts = max(1, min(parts, n))
    bounds = [n * k // parts for k in range(parts + 1)]
    return [(bounds[k], bounds[k + 1]) for k in range(parts)]


class SharedBlocks:
    """The (lo, hi) blocks of ``range(n)``, ``step`` long, taken in turn by whichever part is ready.

    With ``run``'s fixed halves, the part on a woken thread starts late (waking a sleeping thread
    takes about 0.1 ms on this kind of VM) and the caller then waits for it; parts that take
    blocks from one shared iterator finish together (measured: the direct convolution of conv1
    and the strided layer 0.88x and 0.84x the time). Safe across threads: each block is one
    step of a C-level range iterator, under the GIL.

    >>> list(SharedBlocks(5, 2))
    [(0, 2), (2, 4), (4, 5)]
    """

    def __init__(self, n: int, step: int):
        self.n, self.step = n, max(1, step)
        self._starts = iter(range(0, n, self.step))

    def __iter__(self):
        return self

    def __next__(self) -> tuple[int, int]:
        lo = next(self._starts)
        return lo, min(lo + self.step, self.n)


def run_blocks(fn: Callable[["SharedBlocks"], T], n: int, step: int) -> list[T]:
    """Call ``fn(blocks)`` once per part, in parallel, all sharing ``SharedBlocks(n, step)``.

    Each part sets up what it needs (buffers in its core's cache) and then takes ``(lo, hi)``
    blocks from ``blocks`` until none is left; results come back one per part.
    """
    blocks = SharedBlocks(n, step)
    return run(lambda _lo, _hi: fn(blocks), n)


def block_size(n: int, most: int, per_part: int = 4) -> int:
    """Items per shared block: ``per_part`` blocks for each part, at most ``most`` items each."""
    return max(1, min(most, n // (per_part * get_num_threads())))


def run(fn: Callable[[int, int], T], n: int, *, parts: int | None = None, min_size: int = 1) -> list[T]:
    """Call ``fn(lo, hi)`` on contiguous ranges of ``range(n)``, in parallel; results in range order.

    ``fn`` must touch only its own range's data. Ranges are at least ``min_size`` long, so small
    jobs are not split. The calling thread runs the first range itself.
    """
    if parts is None:
        parts = get_num_threads()
    if getattr(_worker, "active", False):
        parts = 1
    parts = max(1, min(parts, n // max(min_size, 1)))
    if parts == 1 or ThreadpoolController is None:
        memory.keep_freed_memory()
        return [fn(0, n)]
    ranges = split(n, parts)
    with compute():
        settings = np.geterr()  # NumPy's error state is per thread: the parts keep the caller's

        def part(lo, hi):
            with np.errstate(**settings):
                return fn(lo, hi)

        futures = [_get_pool(get_num_threads()).submit(part, lo, hi) for lo, hi in ranges[1:]]
        try:
            first = fn(*ranges[0])
        finally:
            wait(futures)  # no part may still be writing when this returns or raises
    return [first, *(f.result() for f in futures)]
