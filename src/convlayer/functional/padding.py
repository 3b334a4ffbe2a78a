"""Padding the spatial axes of NHWC arrays, and its gradient: shared by convolution and pooling."""

from __future__ import annotations

import numpy as np

from .shapes import Padding2D

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_NUMPY_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def pad_nhwc(x: np.ndarray, padding: Padding2D, mode: str = "zeros", fill: float = 0) -> np.ndarray:
    """Pad the two spatial axes of ``x`` (N, H, W, C) -> (N, H+t+b, W+l+r, C).

    ``fill`` is the constant of mode 'zeros' (max pooling pads with -inf).
    """
    (top, bottom), (left, right) = padding
    if top == bottom == left == right == 0:
        return x
    widths = ((0, 0), (top, bottom), (left, right), (0, 0))
    if mode == "zeros":
        return np.pad(x, widths, constant_values=fill)
    return np.pad(x, widths, mode=_NUMPY_PAD_MODES[mode])


def pad_into(out: np.ndarray, x: np.ndarray, padding: Padding2D, mode: str) -> None:
    """``out[...] = pad_nhwc(x, padding, mode)`` without the temporary for zero padding."""
    if mode != "zeros":
        out[...] = pad_nhwc(x, padding, mode)
        return
    (top, bottom), (left, right) = padding
    height, width = x.shape[1:3]
    out[:, :top] = 0
    out[:, top + height:] = 0
    out[:, top:top + height, :left] = 0
    out[:, top:top + height, left + width:] = 0
    out[:, top:top + height, left:left + width] = x


def pad_nhwc_backward(dxp: np.ndarray, in_hw: tuple[int, int], padding: Padding2D, mode: str) -> np.ndarray:
    """Gradient of ``pad_nhwc``: fold each padded pixel's gradient back onto its source."""
    (top, bottom), (left, right) = padding
    height, width = in_hw
    if mode == "zeros" or top == bottom == left == right == 0:
        return dxp[:, top:top + height, left:left + width]  # a view: no copy of the whole gradient
    np_mode = _NUMPY_PAD_MODES[mode]
    src_rows = np.pad(np.arange(height), (top, bottom), mode=np_mode)  # (Hp,) source row of each padded row
    src_cols = np.pad(np.arange(width), (left, right), mode=np_mode)  # (Wp,)
    n, _, wp, c = dxp.shape
    d_rows = np.zeros((n, height, wp, c), dxp.dtype)
    np.add.at(d_rows, (slice(None), src_rows), dxp)  # (N, H, Wp, C)
    dx = np.zeros((n, height, width, c), dxp.dtype)
    np.add.at(dx, (slice(None), slice(None), src_cols), d_rows)  # (N, H, W, C)
    return dx
