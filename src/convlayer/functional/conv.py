"""2-D convolution, forward and backward, as pure NumPy functions (channels_last).

``conv2d_forward`` returns ``(y, cache)``; ``conv2d_backward(dy, cache)`` returns
``(dx, dkernel, dbias)``. The kernel is HWIO: ``(kh, kw, C // groups, F)``, as in Keras.
Like TensorFlow and PyTorch this is cross-correlation: the kernel is never flipped.

Two layouts feed the GEMMs, chosen by geometry only (both compute the same sums and
are tested against each other and against TensorFlow and PyTorch):

* ``"rows"`` (vertical stride 1): windows only along the width, ``(N*Hp*Wo, kw*C)``.
  Kernel row ``i`` then reads the same matrix shifted by ``i * dh * Wo`` rows, so each
  of the ``kh`` GEMMs takes a contiguous slice and no ``kh``-fold copy is ever built.
  Rows at the bottom of each padded image (``Ho <= h < Hp``) are computed and dropped.
* ``"im2col"``: every window, ``(N*Ho*Wo, kh*kw*C)``, then one GEMM. Used for strided
  rows and for small ``kw*C`` where the rows layout would starve the GEMM.

Batches are processed in chunks so no layout exceeds ``max_chunk_bytes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .shapes import Padding2D, conv_output_size, effective_kernel_size

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
METHODS = ("rows", "im2col")
_NUMPY_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}

MAX_CHUNK_BYTES = 48 << 20  # largest window layout built at once
MAX_CACHE_BYTES = 256 << 20  # layouts kept for backward up to this size, else recomputed
_MIN_ROWS_DEPTH = 32  # kw * C below this: GEMMs too thin for the rows layout


# ---------------------------------------------------------------------------- padding


def pad_nhwc(x: np.ndarray, padding: Padding2D, mode: str = "zeros") -> np.ndarray:
    """Pad the two spatial axes of ``x`` (N, H, W, C) -> (N, H+t+b, W+l+r, C)."""
    (top, bottom), (left, right) = padding
    if top == bottom == left == right == 0:
        return x
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), mode=_NUMPY_PAD_MODES[mode])


def pad_nhwc_backward(dxp: np.ndarray, in_hw: tuple[int, int], padding: Padding2D, mode: str) -> np.ndarray:
    """Gradient of ``pad_nhwc``: fold each padded pixel's gradient back onto its source."""
    (top, bottom), (left, right) = padding
    height, width = in_hw
    if mode == "zeros" or top == bottom == left == right == 0:
        return np.ascontiguousarray(dxp[:, top:top + height, left:left + width])
    np_mode = _NUMPY_PAD_MODES[mode]
    src_rows = np.pad(np.arange(height), (top, bottom), mode=np_mode)  # (Hp,) source row of each padded row
    src_cols = np.pad(np.arange(width), (left, right), mode=np_mode)  # (Wp,)
    n, _, wp, c = dxp.shape
    d_rows = np.zeros((n, height, wp, c), dxp.dtype)
    np.add.at(d_rows, (slice(None), src_rows), dxp)  # (N, H, Wp, C)
    dx = np.zeros((n, height, width, c), dxp.dtype)
    np.add.at(dx, (slice(None), slice(None), src_cols), d_rows)  # (N, H, W, C)
    return dx


# ---------------------------------------------------------------------------- layouts


def _width_windows(xp: np.ndarray, kw: int, sw: int, dw: int, out_w: int) -> np.ndarray:
    """(N, Hp, Wp, C) -> (N*Hp*Wo, kw*C): the horizontal windows of every padded row."""
    n, hp, _, c = xp.shape
    s_n, s_h, s_w, s_c = xp.strides
    view = as_strided(xp, (n, hp, out_w, kw, c), (s_n, s_h, s_w * sw, s_w * dw, s_c))  # (N, Hp, Wo, kw, C)
    return view.reshape(n * hp * out_w, kw * c)


def _windows(xp: np.ndarray, kernel_hw, strides, dilation, out_hw, *, ones_column: bool = False) -> np.ndarray:
    """(N, Hp, Wp, C) -> (N*Ho*Wo, kh*kw*C): im2col in (kh, kw, C) order, matching HWIO.

    With ``ones_column`` the result is (N*Ho*Wo, kh*kw*C + 1), its last column all ones.
    """
    n, _, _, c = xp.shape
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = kernel_hw, strides, dilation, out_hw
    s_n, s_h, s_w, s_c = xp.strides
    view = as_strided(xp, (n, ho, wo, kh, kw, c), (s_n, s_h * sh, s_w * sw, s_h * dh, s_w * dw, s_c))
    depth = kh * kw * c
    if not ones_column:
        return view.reshape(n * ho * wo, depth)  # (N*Ho*Wo, kh*kw*C)
    cols = np.empty((n * ho * wo, depth + 1), xp.dtype)  # (N*Ho*Wo, kh*kw*C + 1)
    cols[:, depth] = 1
    item = cols.itemsize
    row = (depth + 1) * item
    target = as_strided(cols, view.shape, (ho * wo * row, wo * row, row, kw * c * item, c * item, item))
    np.copyto(target, view)  # (N, Ho, Wo, kh, kw, C) written straight into the first kh*kw*C columns
    return cols


def _col2im_add(dxp: np.ndarray, dcols: np.ndarray, kernel_hw, strides, dilation, out_hw) -> None:
    """Scatter-add window gradients (N*Ho*Wo, kh*kw*C) into ``dxp`` (N, Hp, Wp, C)."""
    n, _, _, c = dxp.shape
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = kernel_hw, strides, dilation, out_hw
    dwin = dcols.reshape(n, ho, wo, kh, kw, c)
    for i in range(kh):  # loops over kernel taps only; each add covers the whole batch
        for j in range(kw):
            dxp[:, i * dh:i * dh + (ho - 1) * sh + 1:sh, j * dw:j * dw + (wo - 1) * sw + 1:sw] += dwin[:, :, :, i, j]


# ---------------------------------------------------------------------------- plan


@dataclass
class ConvCache:
    """What backward needs: the input, the geometry, and (when small enough) the layouts."""

    x: np.ndarray  # (N, H, W, C)
    kernel: np.ndarray  # (kh, kw, C // groups, F)
    has_bias: bool
    strides: tuple[int, int]
    padding: Padding2D
    dilation: tuple[int, int]
    groups: int
    padding_mode: str
    method: str
    out_hw: tuple[int, int]
    chunk: int
    max_chunk_bytes: int
    layouts: list | None = field(default=None, repr=False)  # [chunk][group] -> 2-D array


def choose_method(kernel_shape, strides) -> str:
    kh, kw, c_group, _ = kernel_shape
    if strides[0] == 1 and kh > 1 and kw * c_group >= _MIN_ROWS_DEPTH:
        return "rows"
    return "im2col"


def _chunk_size(method, n, padded_hw, out_hw, kernel_shape, itemsize, max_bytes) -> int:
    kh, kw, c_group, _ = kernel_shape
    if method == "rows":
        per_image = padded_hw[0] * out_hw[1] * kw * c_group * itemsize
    else:
        per_image = out_hw[0] * out_hw[1] * kh * kw * c_group * itemsize
    return int(max(1, min(n, max_bytes // max(per_image, 1))))


# ---------------------------------------------------------------------------- GEMM cores


def _rows_forward(xw, kernel_g, dh, padded_h, out_hw, n):
    """xw (N*Hp*Wo, kw*C), kernel_g (kh, kw, C, F) -> (N, Ho, Wo, F)."""
    kh, kw, c, f = kernel_g.shape
    ho, wo = out_hw
    weights = kernel_g.reshape(kh, kw * c, f)  # (kh, kw*C, F)
    total = xw.shape[0]
    y_full = np.matmul(xw, weights[0])  # (N*Hp*Wo, F)
    for i in range(1, kh):
        shift = i * dh * wo
        y_full[:total - shift] += xw[shift:] @ weights[i]
    return y_full.reshape(n, padded_h, wo, f)[:, :ho]  # (N, Ho, Wo, F) view


def _rows_backward(dz, xw, kernel_g, dh, padded_hw, strides, dilation, need_dx):
    """dz (N, Ho, Wo, F) -> (dxp (N, Hp, Wp, C) or None, dkernel_g (kh, kw, C, F))."""
    kh, kw, c, f = kernel_g.shape
    n, ho, wo, _ = dz.shape
    hp, wp = padded_hw
    weights = kernel_g.reshape(kh, kw * c, f)
    dy_full = np.zeros((n, hp, wo, f), dz.dtype)
    dy_full[:, :ho] = dz
    dy_full = dy_full.reshape(n * hp * wo, f)  # (N*Hp*Wo, F), zero on the dropped rows
    total = dy_full.shape[0]
    dweights = np.empty_like(weights)
    for i in range(kh):
        shift = i * dh * wo
        np.matmul(xw[shift:].T, dy_full[:total - shift], out=dweights[i])  # (kw*C, F)
    if not need_dx:
        return None, dweights.reshape(kernel_g.shape)
    dxw = np.matmul(dy_full, weights[0].T)  # (N*Hp*Wo, kw*C)
    for i in range(1, kh):
        shift = i * dh * wo
        dxw[shift:] += dy_full[:total - shift] @ weights[i].T
    dxp = np.zeros((n, hp, wp, c), dz.dtype)
    dwin = dxw.reshape(n, hp, wo, kw, c)
    sw, dw = strides[1], dilation[1]
    for j in range(kw):
        dxp[:, :, j * dw:j * dw + (wo - 1) * sw + 1:sw] += dwin[:, :, :, j]
    return dxp, dweights.reshape(kernel_g.shape)


def _layout(method, xp_g, kernel_g_shape, strides, dilation, out_hw):
    kh, kw = kernel_g_shape[:2]
    if method == "rows":
        return _width_windows(xp_g, kw, strides[1], dilation[1], out_hw[1])
    return _windows(xp_g, (kh, kw), strides, dilation, out_hw)


def _group_slices(c_in, f_out, groups):
    cg, fg = c_in // groups, f_out // groups
    return [(slice(g * cg, (g + 1) * cg), slice(g * fg, (g + 1) * fg)) for g in range(groups)]


# ---------------------------------------------------------------------------- public


def conv2d_forward(
    x: np.ndarray,
    kernel: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    strides: tuple[int, int] = (1, 1),
    padding: Padding2D = ((0, 0), (0, 0)),
    dilation: tuple[int, int] = (1, 1),
    groups: int = 1,
    padding_mode: str = "zeros",
    keep_cache: bool = True,
    method: str | None = None,
    max_chunk_bytes: int | None = None,
) -> tuple[np.ndarray, ConvCache | None]:
    """Cross-correlate ``x`` with ``kernel`` and add ``bias``.

    Args:
        x: (N, H, W, C) input, channels_last.
        kernel: (kh, kw, C // groups, F), HWIO.
        bias: (F,) or None.
        strides, dilation: (vertical, horizontal) ints >= 1.
        padding: explicit ((top, bottom), (left, right)); see ``shapes.resolve_padding``.
        groups: C and F are split into this many independent groups.
        padding_mode: 'zeros', 'reflect', 'replicate' or 'circular'.
        keep_cache: return what ``conv2d_backward`` needs (False for inference).
        method: force 'rows' (vertical stride 1 only) or 'im2col' (default: chosen from the geometry).
        max_chunk_bytes: largest window layout built at once (default ``MAX_CHUNK_BYTES``).

    Returns:
        y: (N, Ho, Wo, F) and the cache (None when ``keep_cache`` is False).

    >>> y, _ = conv2d_forward(np.ones((1, 3, 3, 1)), np.ones((2, 2, 1, 1)), np.zeros(1))
    >>> y[0, :, :, 0]
    array([[4., 4.],
           [4., 4.]])
    """
    n, height, width, c_in = x.shape
    kh, kw, _, f_out = kernel.shape
    (top, bottom), (left, right) = padding
    out_hw = (
        conv_output_size(height, kh, strides[0], dilation[0], (top, bottom)),
        conv_output_size(width, kw, strides[1], dilation[1], (left, right)),
    )
    assert min(out_hw) > 0, "callers validate the geometry"
    padded_hw = (height + top + bottom, width + left + right)
    if method is None:
        method = choose_method(kernel.shape, strides)
    elif method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))} or None, got {method!r}.")
    elif method == "rows" and strides[0] != 1:
        # the rows layout shifts whole padded rows, which only lines up with vertical stride 1
        raise ValueError(f"method='rows' needs a vertical stride of 1, got strides={tuple(strides)}; "
                         "use method='im2col' or None.")
    max_chunk_bytes = max_chunk_bytes or MAX_CHUNK_BYTES
    chunk = _chunk_size(method, n, padded_hw, out_hw, kernel.shape, x.dtype.itemsize, max_chunk_bytes)
    groups_sl = _group_slices(c_in, f_out, groups)
    n_chunks = -(-n // chunk)
    store = keep_cache and n_chunks * _layout_bytes(method, chunk, padded_hw, out_hw, kernel.shape, x.dtype) * groups <= MAX_CACHE_BYTES

    y = np.empty((n, *out_hw, f_out), x.dtype)
    layouts = [] if store else None
    for start in range(0, n, chunk):
        xp = pad_nhwc(x[start:start + chunk], padding, padding_mode)  # (n_c, Hp, Wp, C)
        chunk_layouts = []
        for c_sl, f_sl in groups_sl:
            kernel_g = kernel[..., f_sl]
            if method == "im2col" and groups == 1:
                # One GEMM writes the output in place; a column of ones carries the bias.
                layout = _windows(xp, kernel.shape[:2], strides, dilation, out_hw, ones_column=bias is not None)
                weights = kernel.reshape(-1, f_out)  # (kh*kw*C, F)
                if bias is not None:
                    weights = np.concatenate([weights, bias[None].astype(x.dtype, copy=False)])  # (K+1, F)
                np.matmul(layout, weights, out=y[start:start + chunk].reshape(-1, f_out))
                layout = layout[:, :weights.shape[0] - (bias is not None)]  # (M, K) view for backward
            else:
                layout = _layout(method, xp[..., c_sl], kernel_g.shape, strides, dilation, out_hw)
                if method == "rows":
                    z = _rows_forward(layout, kernel_g, dilation[0], padded_hw[0], out_hw, xp.shape[0])
                else:
                    z = (layout @ kernel_g.reshape(-1, kernel_g.shape[-1])).reshape(xp.shape[0], *out_hw, -1)
                if groups == 1:
                    np.add(z, bias if bias is not None else 0, out=y[start:start + chunk])
                else:
                    y[start:start + chunk, ..., f_sl] = z + (bias[f_sl] if bias is not None else 0)
            if store:
                chunk_layouts.append(layout)
        if store:
            layouts.append(chunk_layouts)
    if not keep_cache:
        return y, None
    cache = ConvCache(x, kernel, bias is not None, tuple(strides), padding, tuple(dilation), groups,
                      padding_mode, method, out_hw, chunk, max_chunk_bytes, layouts)
    return y, cache


def _layout_bytes(method, chunk, padded_hw, out_hw, kernel_shape, dtype) -> int:
    kh, kw, c_group, _ = kernel_shape
    rows = padded_hw[0] * out_hw[1] if method == "rows" else out_hw[0] * out_hw[1] * kh
    return chunk * rows * kw * c_group * np.dtype(dtype).itemsize


def conv2d_backward(dy: np.ndarray, cache: ConvCache, *, need_dx: bool = True):
    """Gradients of ``conv2d_forward``.

    Args:
        dy: (N, Ho, Wo, F) gradient of the loss w.r.t. the output (before activation).
        cache: from ``conv2d_forward``.
        need_dx: False skips the input gradient (the first layer of a network).

    Returns:
        dx (N, H, W, C) or None, dkernel (kh, kw, C // groups, F), dbias (F,) or None.
    """
    x, kernel = cache.x, cache.kernel
    n, height, width, c_in = x.shape
    kh, kw, _, f_out = kernel.shape
    (top, bottom), (left, right) = cache.padding
    padded_hw = (height + top + bottom, width + left + right)
    dy = np.ascontiguousarray(dy, dtype=x.dtype)
    dkernel = np.zeros_like(kernel)
    dx = np.empty_like(x) if need_dx else None
    groups_sl = _group_slices(c_in, f_out, cache.groups)
    for index, start in enumerate(range(0, n, cache.chunk)):
        stop = min(start + cache.chunk, n)
        xp = None
        dxp = np.zeros((stop - start, *padded_hw, c_in), x.dtype) if need_dx else None
        for g, (c_sl, f_sl) in enumerate(groups_sl):
            kernel_g = kernel[..., f_sl]
            if cache.layouts is not None:
                layout = cache.layouts[index][g]
            else:
                if xp is None:
                    xp = pad_nhwc(x[start:stop], cache.padding, cache.padding_mode)
                layout = _layout(cache.method, xp[..., c_sl], kernel_g.shape, cache.strides, cache.dilation,
                                 cache.out_hw)
            dz = dy[start:stop, ..., f_sl] if cache.groups > 1 else dy[start:stop]
            if cache.method == "rows":
                dxp_g, dkernel_g = _rows_backward(dz, layout, kernel_g, cache.dilation[0], padded_hw,
                                                  cache.strides, cache.dilation, need_dx)
                dkernel[..., f_sl] += dkernel_g
                if need_dx:
                    dxp[..., c_sl] += dxp_g
            else:
                dz2 = dz.reshape(-1, dz.shape[-1])  # (N*Ho*Wo, Fg)
                kernel2 = kernel_g.reshape(-1, kernel_g.shape[-1])  # (kh*kw*Cg, Fg)
                dkernel[..., f_sl] += (layout.T @ dz2).reshape(kernel_g.shape)
                if need_dx:
                    dcols = dz2 @ kernel2.T  # (N*Ho*Wo, kh*kw*Cg)
                    dxp_view = dxp[..., c_sl]
                    _col2im_add(dxp_view, dcols, (kh, kw), cache.strides, cache.dilation, cache.out_hw)
        if need_dx:
            dx[start:stop] = pad_nhwc_backward(dxp, (height, width), cache.padding, cache.padding_mode)
    dbias = dy.sum(axis=(0, 1, 2)) if cache.has_bias else None
    return dx, dkernel, dbias
