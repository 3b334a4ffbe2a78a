"""Fully connected layer math: ``y = x @ kernel + bias`` over the last axis.

The GEMMs are split over the cores (``parallel.run``): by output columns, or by rows where
that measured faster (the kernel gradient, and outputs too narrow to split by columns).
"""

from __future__ import annotations

import numpy as np

from .. import parallel

MIN_PART = 16  # rows or columns; smaller splits cost more in handoff than they save


def _matmul_by_columns(a, b, out) -> None:
    """``out = a @ b`` with each core computing a range of out's columns (rows when out is narrow).

    Measured for the lesson's dense layer: column ranges run 10-20% faster than row ranges
    of a 128-row batch (every core then multiplies all rows; the GEMM is less skinny).
    """
    if out.shape[1] >= 2 * MIN_PART:
        parallel.run(lambda lo, hi: np.matmul(a, b[:, lo:hi], out=out[:, lo:hi]), out.shape[1], min_size=MIN_PART)
    else:
        parallel.run(lambda lo, hi: np.matmul(a[lo:hi], b, out=out[lo:hi]), len(out), min_size=MIN_PART)


def dense_forward(x, kernel, bias=None):
    """x (..., in) @ kernel (in, units) + bias (units,) -> (..., units)."""
    x2 = x.reshape(-1, x.shape[-1])  # (M, in)
    y = np.empty((len(x2), kernel.shape[1]), np.result_type(x, kernel))  # (M, units)
    _matmul_by_columns(x2, kernel, y)
    if bias is not None:
        y += bias
    return y.reshape(*x.shape[:-1], kernel.shape[1])


def dense_backward(dy, x, kernel, *, has_bias=True, need_dx=True):
    """Returns dx (..., in) or None, dkernel (in, units), dbias (units,) or None."""
    x2 = x.reshape(-1, x.shape[-1])  # (M, in)
    dy2 = dy.reshape(-1, dy.shape[-1])  # (M, units)
    dtype = np.result_type(dy, x, kernel)
    dkernel = np.empty(kernel.shape, dtype)  # (in, units); row ranges measured faster here
    parallel.run(lambda lo, hi: np.matmul(x2[:, lo:hi].T, dy2, out=dkernel[lo:hi]), len(dkernel), min_size=MIN_PART)
    dbias = dy2.sum(axis=0) if has_bias else None
    if not need_dx:
        return None, dkernel, dbias
    dx = np.empty(x2.shape, dtype)  # (M, in)
    _matmul_by_columns(dy2, kernel.T, dx)
    return dx.reshape(x.shape), dkernel, dbias
