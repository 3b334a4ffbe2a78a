"""Fully connected layer math: ``y = x @ kernel + bias`` over the last axis."""

from __future__ import annotations

import numpy as np


def dense_forward(x, kernel, bias=None):
    """x (..., in) @ kernel (in, units) + bias (units,) -> (..., units)."""
    y = x @ kernel
    if bias is not None:
        y += bias
    return y


def dense_backward(dy, x, kernel, *, has_bias=True, need_dx=True):
    """Returns dx (..., in) or None, dkernel (in, units), dbias (units,) or None."""
    x2 = x.reshape(-1, x.shape[-1])  # (M, in)
    dy2 = dy.reshape(-1, dy.shape[-1])  # (M, units)
    dkernel = x2.T @ dy2
    dbias = dy2.sum(axis=0) if has_bias else None
    dx = (dy @ kernel.T) if need_dx else None
    return dx, dkernel, dbias
