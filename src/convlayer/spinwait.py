"""Waiting for flags without going to sleep: a compiled loop that watches an int64 array.

``convlayer.parallel`` waits for its worker threads' parts at the end of every call. Sleeping
there (a lock) costs the caller about 0.1 ms when the last part ends: on this kind of VM a
sleeping thread's virtual CPU is halted, and waking it goes through the hypervisor. Watching
a flag that each part sets as it ends, the caller sees it within a microsecond.

The loop runs without the GIL (numba, nogil), so the worker can take the GIL to finish its part,
and reads the flags with atomic loads, so the compiler reads them again on every turn. After
the last flag it goes on watching for ``linger`` more turns: the worker still holds the GIL for
a few microseconds after setting its flag, and a caller that asked for the GIL then would sleep.
Imported only where numba is on.
"""

from __future__ import annotations

import numba
from numba import types
from numba.extending import intrinsic


@intrinsic
def _load_acquire(typingctx, array, index):
    """``array[index]`` of an int64 array as an atomic load (acquire): never hoisted out of a loop."""
    if not (isinstance(array, types.Array) and array.dtype == types.int64):
        raise TypeError(f"_load_acquire needs an int64 array, got {array}")

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        return builder.load_atomic(builder.gep(data, [args[1]], inbounds=True), "acquire", 8)

    return types.int64(array, index), codegen


def _wait_all(flags, limit, linger):  # pragma: no cover - compiled
    """Watch ``flags`` until all are nonzero, at most ``limit`` turns; True if they all were."""
    turns = 0
    for k in range(flags.shape[0]):
        while _load_acquire(flags, k) == 0:
            turns += 1
            if turns >= limit:
                return False
    seen = 0
    for _ in range(linger):
        seen += _load_acquire(flags, 0)
    return seen >= 0


try:
    wait_all = numba.njit(nogil=True, cache=True)(_wait_all)
except RuntimeError:  # no writable cache location: compile on every run instead
    wait_all = numba.njit(nogil=True)(_wait_all)
