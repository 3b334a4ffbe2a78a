"""Fully connected layer math: ``y = x @ kernel + bias`` over the last axis.

The GEMMs are split into row ranges run on every core (``parallel.run``).
"""

from __future__ import annotations

import numpy as np

from .. import parallel

MIN_ROWS_PER_PART = 16  # smaller splits cost more in handoff than they save (measured)


def dense_forward(x, kernel, bias=None):
    """x (..., in) @ kernel (in, units) + bias (units,) -> (..., units)."""
    x2 = x.reshape(-1, x.shape[-1])  # (M, in)
    y = np.empty((len(x2), kernel.shape[1]), np.result_type(x, kernel))  # (M, units)

    def part(lo, hi):
        np.matmul(x2[lo:hi], kernel, out=y[lo:hi])
        if bias is not None:
            y[lo:hi] += bias

    parallel.run(part, len(x2), min_size=MIN_ROWS_PER_PART)
    return y.reshape(*x.shape[:-1], kernel.shape[1])


def dense_backward(dy, x, kernel, *, has_bias=True, need_dx=True):
    """Returns dx (..., in) or None, dkernel (in, units), dbias (units,) or None."""
    x2 = x.reshape(-1, x.shape[-1])  # (M, in)
    dy2 = dy.reshape(-1, dy.shape[-1])  # (M, units)
    dtype = np.result_type(dy, x, kernel)
    dkernel = np.empty(kernel.shape, dtype)  # (in, units)
    parallel.run(lambda lo, hi: np.matmul(x2[:, lo:hi].T, dy2, out=dkernel[lo:hi]), len(dkernel),
                 min_size=MIN_ROWS_PER_PART)
    dbias = dy2.sum(axis=0) if has_bias else None
    if not need_dx:
        return None, dkernel, dbias
    dx = np.empty(x2.shape, dtype)  # (M, in)
    parallel.run(lambda lo, hi: np.matmul(dy2[lo:hi], kernel.T, out=dx[lo:hi]), len(dx), min_size=MIN_ROWS_PER_PART)
    return dx.reshape(x.shape), dkernel, dbias
