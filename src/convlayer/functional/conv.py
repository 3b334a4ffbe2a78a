"""2-D convolution, forward and backward, as pure NumPy functions (channels_last).

``conv2d_forward`` returns ``(y, cache)``; ``conv2d_backward(dy, cache)`` returns
``(dx, dkernel, dbias)``. The kernel is HWIO: ``(kh, kw, C // groups, F)``, as in Keras.
Like TensorFlow and PyTorch this is cross-correlation: the kernel is never flipped.

How it is computed: im2col in cache-sized blocks. The windows of a block of output rows
are copied into a small reused buffer, ``(rows*Wo, kh*kw*C + 1)`` whose last column is
ones, and one GEMM against ``[kernel; bias]`` writes the block's output in place. A block
holds a few MB (``max_chunk_bytes``), so the copy and the GEMM that reads it stay in the
CPU cache, and memory stays bounded for any batch or image size. Backward walks the same
blocks: it rebuilds each block's windows (cheaper than keeping them all), accumulates
``[dkernel; dbias] += cols.T @ dy`` and scatters ``dy @ kernel.T`` back onto the padded
input (col2im: a compiled loop, or whole-block NumPy adds per kernel tap or per kernel
row and column). One-channel inputs keep their windows tap-major (the transpose), so each
copy and add moves whole image rows.

The batch is split into one part per core (``convlayer.parallel``); each part pads, copies
and multiplies its own images with its own buffer, and backward sums the parts' kernel
gradients. Images never share a block, so parts never write to the same memory.

Stride-1 layers with enough channels take Winograd's algorithm instead (``winograd``, chosen
by ``choose_algorithm``): fewer multiplications, the same blocks and parts. Thin layers (few
taps: conv1, the strided layer) take a direct convolution (``direct``), with no window copy,
backward too where the input channels come in vectors of 8.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import parallel
from . import direct, kernels, winograd
from .padding import pad_into, pad_nhwc_backward
from .shapes import Padding2D, conv_output_size

MAX_CHUNK_BYTES = 2 << 20  # one im2col block: small enough to stay in cache while its GEMM runs (measured)
ALGORITHMS = ("auto", "im2col", "winograd", "direct")
WINOGRAD_MIN_CHANNELS = 8  # below this the (tiles, C) @ (C, F) GEMMs are too thin to pay for the transforms
WINOGRAD_BLOCK_BYTES = 4 << 20  # Winograd's tiles per block: 9 of conv2's images (2 MB: 4, measured 5-8% slower)
WINOGRAD_MAX_IMAGE_BYTES = 64 << 20  # 'auto' keeps bigger images on im2col, whose memory is bounded per row band


# ---------------------------------------------------------------------------- blocks


def _blocks(n: int, out_h: int, row_bytes: int, max_bytes: int):
    """Yield (n0, n1, h0, h1): whole images while they fit in ``max_bytes``, else row bands of one image."""
    per_image = out_h * row_bytes
    if per_image <= max_bytes:
        step = max(1, max_bytes // per_image)
        for n0 in range(0, n, step):
            yield n0, min(n0 + step, n), 0, out_h
        return
    rows = max(1, max_bytes // row_bytes)
    for n0 in range(n):
        for h0 in range(0, out_h, rows):
            yield n0, n0 + 1, h0, min(h0 + rows, out_h)


def _window_views(xp: np.ndarray, buf: np.ndarray, c_group: int, kernel_hw, strides, dilation, out_hw, block_hw,
                  tap_major: bool):
    """(windows, room): strided views of every window of ``xp`` (N, Hp, Wp, C) and of ``buf`` as cols.

    A block's windows are copied by slicing both: ``room[:n, :h] <- windows[n0:n1, h0:h1, ..., c_sl]``.
    Row-major: windows (N, Ho, Wo, kh, kw, C); room (n_max, h_max, Wo, kh, kw, Cg) over buf
    (rows, depth [+ 1]), rows (n, ho, wo) and columns (kh, kw, Cg).
    Tap-major (one channel per group): windows (kh, kw, N, Ho, Wo, C); room (kh, kw, n_max, h_max, Wo)
    over buf (depth [+ 1], rows). With one channel the row-major copy moves runs of kw values;
    here every tap moves whole image rows (measured 3.5x faster to fill).
    The views are made once per call: NumPy's as_strided costs about as much as copying a block.
    """
    (kh, kw), (sh, sw), (dh, dw), (ho, wo), (n_max, h_max) = kernel_hw, strides, dilation, out_hw, block_hw
    s_n, s_h, s_w, s_c = xp.strides
    item = buf.itemsize
    if tap_major:
        windows = as_strided(xp, (kh, kw, xp.shape[0], ho, wo, xp.shape[3]),
                             (s_h * dh, s_w * dw, s_n, s_h * sh, s_w * sw, s_c))
        lead = buf.strides[0]
        room = as_strided(buf, (kh, kw, n_max, h_max, wo), (kw * lead, lead, h_max * wo * item, wo * item, item))
    else:
        windows = as_strided(xp, (xp.shape[0], ho, wo, kh, kw, xp.shape[3]),
                             (s_n, s_h * sh, s_w * sw, s_h * dh, s_w * dw, s_c))
        row = buf.strides[0]
        room = as_strided(buf, (n_max, h_max, wo, kh, kw, c_group),
                          (h_max * wo * row, wo * row, row, kw * c_group * item, c_group * item, item))
    return windows, room


def _col2im_add(dxp: np.ndarray, origin, dwin: np.ndarray, strides, dilation) -> None:
    """Scatter-add a block's window gradients ``dwin`` (n, Ho, Wo, kh, kw, C) into ``dxp`` (N, Hp, Wp, C_all).

    The block's images, padded rows and channels start at ``origin`` = (n0, h0, c0) of ``dxp``.
    ``dwin`` may be a view of tap-major gradients (one channel); with several channels it is contiguous.
    """
    n0, h0, c0 = origin
    n, ho, wo, kh, kw, c = dwin.shape
    # Measured per block: the compiled loop beats NumPy 5x (conv2) to 11x (the strided layer);
    # in NumPy, two passes win for big kernels over many channels (conv2: 1.5x), taps otherwise.
    if kernels.enabled() and c > 1:
        kernels.col2im_add(dxp, n0, h0, c0, dwin.reshape(n * ho * wo, kh * kw * c), n, kh, kw, *strides,
                           *dilation, ho, wo)
    elif kh * kw >= 16 and c >= 8:
        _col2im_rows_then_columns(dxp[n0:n0 + n, h0:, :, c0:c0 + c], dwin, strides, dilation)
    else:
        _col2im_taps(dxp[n0:n0 + n, h0:, :, c0:c0 + c], dwin, strides, dilation)


def _col2im_taps(dxp, dwin, strides, dilation) -> None:
    """One strided add per kernel tap, each over the whole block (whole image rows when tap-major)."""
    _, ho, wo, kh, kw, _ = dwin.shape
    (sh, sw), (dh, dw) = strides, dilation
    for i in range(kh):
        for j in range(kw):
            dxp[:, i * dh:i * dh + (ho - 1) * sh + 1:sh, j * dw:j * dw + (wo - 1) * sw + 1:sw] += dwin[:, :, :, i, j]


def _col2im_rows_then_columns(dxp, dwin, strides, dilation) -> None:
    """Sum over kernel rows first (adds of kw*C contiguous values), then over kernel columns."""
    n, ho, wo, kh, kw, c = dwin.shape
    hp = dxp.shape[1]
    (sh, sw), (dh, dw) = strides, dilation
    rows = dwin.reshape(n, ho, wo, kh, kw * c)
    by_row = np.zeros((n, hp, wo, kw * c), dwin.dtype)  # (n, Hp, Wo, kw*C): summed over kernel rows
    for i in range(kh):
        by_row[:, i * dh:i * dh + (ho - 1) * sh + 1:sh] += rows[:, :, :, i]
    by_row = by_row.reshape(n, hp, wo, kw, c)
    for j in range(kw):
        dxp[:, :, j * dw:j * dw + (wo - 1) * sw + 1:sw] += by_row[:, :, :, j]


def _group_slices(c_in, f_out, groups):
    cg, fg = c_in // groups, f_out // groups
    return [(slice(g * cg, (g + 1) * cg), slice(g * fg, (g + 1) * fg)) for g in range(groups)]


def _tap_major(c_group: int) -> bool:
    """One input channel per group: windows are stored tap-major (see ``_window_views``)."""
    return c_group == 1


def _im2col_blocks(xp, kernel_shape, groups, strides, dilation, out_hw, max_bytes, ones_column):
    """Yield ``((n0, n1, h0, h1), g, c_sl, f_sl, cols)`` for every block and group of ``xp`` (N, Hp, Wp, C).

    ``cols`` (block rows, kh*kw*Cg [+ 1]) is a view of one reused buffer, valid until the next
    item; with ``ones_column`` its last column is ones (it carries the bias in the GEMMs).
    """
    kh, kw, c_group, f_out = kernel_shape
    depth = kh * kw * c_group
    row_bytes = out_hw[1] * (depth + 1) * xp.itemsize
    slices = _group_slices(xp.shape[3], f_out, groups)
    tap_major = _tap_major(c_group)
    blocks = list(_blocks(xp.shape[0], out_hw[0], row_bytes, max_bytes))
    if not blocks:  # no images
        return
    n0, n1, h0, h1 = blocks[0]  # the biggest block
    block_hw = (n1 - n0, h1 - h0)
    rows_max = block_hw[0] * block_hw[1] * out_hw[1]
    buf = np.empty((depth + ones_column, rows_max) if tap_major else (rows_max, depth + ones_column), xp.dtype)
    if ones_column:
        (buf[depth] if tap_major else buf[:, depth])[...] = 1
    windows, room = _window_views(xp, buf, c_group, (kh, kw), strides, dilation, out_hw, block_hw, tap_major)
    # The compiled copy moves each window as kh runs of kw*C values: one group, no horizontal dilation.
    compiled = kernels.enabled() and not tap_major and groups == 1 and dilation[1] == 1 and xp.flags.c_contiguous
    for n0, n1, h0, h1 in blocks:
        n, h = n1 - n0, h1 - h0
        rows = n * h * out_hw[1]
        for g, (c_sl, f_sl) in enumerate(slices):
            if tap_major:
                np.copyto(room[:, :, :n, :h], windows[:, :, n0:n1, h0:h1, :, g])
                cols = buf[:, :rows].T  # (rows, kh*kw [+ 1]), a transposed view BLAS reads as is
            elif compiled:
                kernels.im2col(xp, buf, n0, n1, h0, h1, kh, kw, *strides, dilation[0], out_hw[1])
                cols = buf[:rows]
            else:
                np.copyto(room[:n, :h], windows[n0:n1, h0:h1, ..., c_sl])
                cols = buf[:rows]
            yield (n0, n1, h0, h1), g, c_sl, f_sl, cols


@dataclass
class ConvCache:
    """What backward needs: the padded input and the geometry (the windows are rebuilt)."""

    xp: np.ndarray  # (N, Hp, Wp, C), the padded input
    in_hw: tuple[int, int]
    kernel: np.ndarray  # (kh, kw, C // groups, F)
    has_bias: bool
    strides: tuple[int, int]
    padding: Padding2D
    dilation: tuple[int, int]
    groups: int
    padding_mode: str
    out_hw: tuple[int, int]
    max_chunk_bytes: int
    algorithm: str  # 'im2col', 'winograd' or 'direct', as chosen by forward


def check_algorithm(algorithm, kernel_hw, strides, dilation, groups: int, *, filters: int | None = None,
                    dtype=None, owner: str = "") -> None:
    """Raise ValueError unless ``algorithm`` is one of ``ALGORITHMS`` and can compute this geometry.

    ``filters`` and ``dtype``, where known, are checked for 'direct' too.
    """
    where = f"{owner}: " if owner else ""
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        raise ValueError(f"{where}algorithm must be one of {', '.join(map(repr, ALGORITHMS))}; got {algorithm!r}.")
    if algorithm == "winograd" and not winograd.supports(kernel_hw, strides, dilation, groups):
        raise ValueError(f"{where}algorithm='winograd' needs strides 1, dilation 1, groups=1 and a kernel "
                         f"2-{winograd.MAX_TILE - 1} wide; got kernel {tuple(kernel_hw)}, strides {tuple(strides)}, "
                         f"dilation {tuple(dilation)}, groups {groups}. Use algorithm='auto' or 'im2col'.")
    if algorithm == "direct":
        why = direct.unsupported(filters, groups, dtype)
        if why:
            raise ValueError(f"{where}algorithm='direct' needs numba, float32, groups=1 and a multiple of "
                             f"{direct.LANES} filters; {why}. Use algorithm='auto' or 'im2col'.")


def choose_algorithm(algorithm: str, kernel_shape, strides, dilation, groups: int, out_hw=None,
                     dtype=np.float32) -> str:
    """'im2col', 'winograd' or 'direct' for ``algorithm`` (one of ``ALGORITHMS``) and this geometry.

    'auto' takes Winograd where it applies (stride 1, no dilation, one group, kernel 2-7 wide)
    and wins: at least ``WINOGRAD_MIN_CHANNELS`` input channels, with the compiled transforms,
    and, given the output size ``out_hw``, one image's tiles within ``WINOGRAD_MAX_IMAGE_BYTES``
    (Winograd works on whole images; im2col also splits an image into bands of rows). Otherwise
    the direct convolution where it applies and the windows are short (``direct.MAX_DEPTH``
    taps), else im2col.
    """
    kh, kw, c_group, f_out = kernel_shape
    check_algorithm(algorithm, (kh, kw), strides, dilation, groups, filters=f_out, dtype=dtype)
    if algorithm != "auto":
        return algorithm
    if (winograd.supports((kh, kw), strides, dilation, groups) and c_group >= WINOGRAD_MIN_CHANNELS
            and kernels.enabled() and (out_hw is None or winograd.tiling(out_hw, (kh, kw)).bytes_per_image(
                c_group, f_out, np.dtype(dtype).itemsize) <= WINOGRAD_MAX_IMAGE_BYTES)):
        return "winograd"
    if not direct.unsupported(f_out, groups, dtype) and kh * kw * c_group <= direct.MAX_DEPTH:
        return "direct"
    return "im2col"


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
    epilogue: Callable[[np.ndarray], object] | None = None,
    max_chunk_bytes: int | None = None,
    algorithm: str = "auto",
    then: Callable[[np.ndarray, int], object] | None = None,
) -> tuple[np.ndarray | None, ConvCache | None]:
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
        epilogue: applied in place to each finished output block while it is in cache
            (e.g. ReLU); backward then receives the gradient w.r.t. the pre-epilogue output.
        max_chunk_bytes: size of one block (default ``MAX_CHUNK_BYTES`` for im2col,
            ``WINOGRAD_BLOCK_BYTES`` for Winograd).
        algorithm: 'im2col', 'winograd' (see ``winograd``; stride 1, no dilation, one group),
            'direct' (see ``direct``; float32, one group, filters a multiple of 8) or 'auto'
            (``choose_algorithm``). Backward uses the same one (im2col's for 'direct' when the
            input channels are not a multiple of 8 and dx is needed).
        then: inference only (no cache): ``then(block, n0)`` receives each finished block of
            whole images (n0: the first one's index), after the epilogue, while it is in cache,
            e.g. to pool it; y is then not returned (None), and blocks go to a per-core buffer
            instead of an (N, Ho, Wo, F) array in memory.

    Returns:
        y: (N, Ho, Wo, F) (None with ``then``) and the cache (None when ``keep_cache`` is False).

    >>> y, _ = conv2d_forward(np.ones((1, 3, 3, 1)), np.ones((2, 2, 1, 1)), np.zeros(1))
    >>> y[0, :, :, 0]
    array([[4., 4.],
           [4., 4.]])
    """
    _, height, width, c_in = x.shape
    kh, kw, c_group, _ = kernel.shape
    (top, bottom), (left, right) = padding
    out_hw = (conv_output_size(height, kh, strides[0], dilation[0], (top, bottom)),
              conv_output_size(width, kw, strides[1], dilation[1], (left, right)))
    assert min(out_hw) > 0 and c_group * groups == c_in, "callers validate the geometry"
    algorithm = choose_algorithm(algorithm, kernel.shape, strides, dilation, groups, out_hw, x.dtype)
    max_chunk_bytes = max_chunk_bytes or (WINOGRAD_BLOCK_BYTES if algorithm == "winograd" else MAX_CHUNK_BYTES)
    assert then is None or not keep_cache, "then= is for inference: backward needs the whole output"
    if algorithm == "winograd":
        y, xp = winograd.conv2d(x, kernel, bias, padding, padding_mode, epilogue, max_chunk_bytes,
                                keep_padded=keep_cache, then=then)
    elif algorithm == "direct":
        y, xp = direct.conv2d(x, kernel, bias, strides, padding, dilation, padding_mode, epilogue, out_hw,
                              max_chunk_bytes, keep_padded=keep_cache, then=then)
    else:
        y, xp = _im2col_forward(x, kernel, bias, strides, padding, dilation, groups, padding_mode, epilogue,
                                out_hw, max_chunk_bytes, then)
    if not keep_cache:
        return y, None
    cache = ConvCache(xp, (height, width), kernel, bias is not None, tuple(strides), padding, tuple(dilation), groups,
                      padding_mode, out_hw, max_chunk_bytes, algorithm)
    return y, cache


def _im2col_forward(x, kernel, bias, strides, padding, dilation, groups, padding_mode, epilogue, out_hw, max_bytes,
                    then=None):
    """(y (N, Ho, Wo, F), the padded input (N, Hp, Wp, C)) by im2col blocks; see ``conv2d_forward``."""
    n, height, width, c_in = x.shape
    kh, kw, c_group, f_out = kernel.shape
    (top, bottom), (left, right) = padding
    padded = any(padding[0]) or any(padding[1])
    xp = np.empty((n, height + top + bottom, width + left + right, c_in), x.dtype) if padded else x  # (N, Hp, Wp, C)
    depth = kh * kw * c_group
    has_bias = bias is not None
    # [kernel; bias] per group: (groups, kh*kw*Cg + 1, Fg); the ones column of cols picks up the bias.
    weights = kernel.reshape(depth, groups, f_out // groups).transpose(1, 0, 2)
    if has_bias:
        weights = np.concatenate([weights, bias.astype(x.dtype, copy=False).reshape(groups, 1, -1)], axis=1)
    weights = np.ascontiguousarray(weights, dtype=x.dtype)
    if then is not None:  # whole images per block, however big
        max_bytes = max(max_bytes, out_hw[0] * out_hw[1] * (depth + 1) * x.itemsize)
    y = np.empty((n, *out_hw, f_out), x.dtype) if then is None else None

    def forward_part(n0: int, n1: int) -> None:  # images n0:n1, on one core
        if padded:
            pad_into(xp[n0:n1], x[n0:n1], padding, padding_mode)
        blocks = _im2col_blocks(xp[n0:n1], kernel.shape, groups, strides, dilation, out_hw, max_bytes, has_bias)
        scratch = None
        for (b0, b1, h0, h1), g, _, f_sl, cols in blocks:
            if then is None:
                y_block = y[n0 + b0:n0 + b1, h0:h1]  # (n, rows, Wo, F), contiguous
            else:  # one per-core buffer, reused by every block: it stays in cache
                if scratch is None:
                    scratch = np.empty((b1 - b0, *out_hw, f_out), x.dtype)
                y_block = scratch[:b1 - b0]
            if groups == 1:
                np.matmul(cols, weights[0], out=y_block.reshape(len(cols), f_out))
            else:
                y_block[..., f_sl] = (cols @ weights[g]).reshape(b1 - b0, h1 - h0, out_hw[1], -1)
            if g == groups - 1:
                if epilogue is not None:
                    epilogue(y_block)
                if then is not None:
                    then(y_block, n0 + b0)

    parallel.run(forward_part, n)
    return y, xp


def conv2d_backward(dy: np.ndarray, cache: ConvCache, *, need_dx: bool = True,
                    epilogue_grad: Callable[[np.ndarray, tuple], np.ndarray] | None = None):
    """Gradients of ``conv2d_forward``.

    Args:
        dy: (N, Ho, Wo, F) gradient of the loss w.r.t. the output.
        cache: from ``conv2d_forward``.
        need_dx: False skips the input gradient (the first layer of a network).
        epilogue_grad: ``(dy_block, index) -> dz_block``, the backward of the forward ``epilogue``:
            it turns a block of ``dy`` (``dy[index]``) into the gradient w.r.t. the convolution
            output, while the block is in cache. Without it ``dy`` must be that gradient already.

    Returns:
        dx (N, H, W, C) or None, dkernel (kh, kw, C // groups, F), dbias (F,) or None.
    """
    xp, kernel = cache.xp, cache.kernel
    dy = dy.astype(xp.dtype, copy=False)  # blocks are reshaped (copied if need be) inside the parts
    if cache.algorithm == "direct" and direct.backward_supported(xp.shape[3], need_dx):
        dxp, dkernel, dbias = direct.conv2d_backward(dy, xp, kernel, cache.strides, cache.dilation, need_dx,
                                                     epilogue_grad)
        dx = pad_nhwc_backward(dxp, cache.in_hw, cache.padding, cache.padding_mode) if need_dx else None
        return dx, dkernel, dbias if cache.has_bias else None
    if cache.algorithm == "winograd":  # whole-batch transforms: apply the epilogue's backward first
        dz = _apply_epilogue_grad(dy, epilogue_grad)
        dkernel, dbias = winograd.kernel_grad(xp, dz, kernel.shape[:2], cache.max_chunk_bytes)
        dx = _input_grad_winograd(dz, cache) if need_dx else None
        return dx, dkernel, dbias if cache.has_bias else None
    kh, kw, c_group, f_out = kernel.shape
    groups, out_hw, strides = cache.groups, cache.out_hw, cache.strides
    depth = kh * kw * c_group
    tap_major = _tap_major(c_group)
    kernel_t = np.ascontiguousarray(kernel.reshape(depth, groups, f_out // groups).transpose(1, 2, 0))  # (G, Fg, K)
    has_bias = cache.has_bias
    dxp = np.empty(xp.shape, xp.dtype) if need_dx else None

    def backward_part(n0: int, n1: int) -> np.ndarray:  # images n0:n1, on one core; their dxp is theirs alone
        # With a ones column in cols, one GEMM gives dkernel and (last row) dbias together.
        dweights = np.zeros((groups, depth + has_bias, f_out // groups), xp.dtype)  # (G, K [+ 1], Fg)
        step = np.empty((depth + has_bias, f_out // groups), xp.dtype)
        if need_dx:
            dxp[n0:n1] = 0
        dbuf = None
        blocks = _im2col_blocks(xp[n0:n1], kernel.shape, groups, strides, cache.dilation, out_hw,
                                cache.max_chunk_bytes, has_bias)
        for (b0, b1, h0, h1), g, c_sl, f_sl, cols in blocks:
            rows = len(cols)
            index = (slice(n0 + b0, n0 + b1), slice(h0, h1))
            dz = dy[index] if epilogue_grad is None else epilogue_grad(dy[index], index)
            dz = dz[..., f_sl].reshape(rows, -1)  # (rows, Fg)
            np.matmul(cols.T, dz, out=step)
            dweights[g] += step
            if not need_dx:
                continue
            if dbuf is None or dbuf.size < rows * depth:
                dbuf = np.empty(rows * depth, xp.dtype)
            n, h, wo = b1 - b0, h1 - h0, out_hw[1]
            if tap_major:  # (kh*kw, rows): each tap's gradients contiguous
                dcols_t = np.matmul(kernel_t[g].T, dz.T, out=dbuf[:rows * depth].reshape(depth, rows))
                dwin = dcols_t.reshape(kh, kw, n, h, wo, 1).transpose(2, 3, 4, 0, 1, 5)
            else:
                dcols = np.matmul(dz, kernel_t[g], out=dbuf[:rows * depth].reshape(rows, depth))  # (rows, K)
                dwin = dcols.reshape(n, h, wo, kh, kw, c_group)
            _col2im_add(dxp, (n0 + b0, h0 * strides[0], c_sl.start), dwin, strides, cache.dilation)
        return dweights

    dweights = sum(parallel.run(backward_part, xp.shape[0]))
    dkernel = dweights[:, :depth].transpose(1, 0, 2).reshape(kernel.shape)  # (kh, kw, Cg, F)
    dbias = dweights[:, depth].reshape(f_out) if has_bias else None
    dx = pad_nhwc_backward(dxp, cache.in_hw, cache.padding, cache.padding_mode) if need_dx else None
    return dx, dkernel, dbias


def _apply_epilogue_grad(dy: np.ndarray, epilogue_grad) -> np.ndarray:
    """The whole ``dz = epilogue_grad(dy)``, part by part (``dy`` itself without an epilogue)."""
    if epilogue_grad is None:
        return dy
    dz = np.empty_like(dy)

    def part(n0: int, n1: int) -> None:
        dz[n0:n1] = epilogue_grad(dy[n0:n1], (slice(n0, n1),))

    parallel.run(part, len(dy))
    return dz


def _input_grad_winograd(dz: np.ndarray, cache: ConvCache) -> np.ndarray:
    """dx of a stride-1 convolution: the 'full' correlation of dz with the flipped, transposed kernel.

    dxp[y, x] = sum_{k, l} dz[y - k, x - l] kernel[k, l].T, i.e. dz padded by (kh - 1, kw - 1)
    on every side, correlated with kernel[::-1, ::-1] (kh, kw, F, C). With zero padding only
    the unpadded input's rows and columns are computed: the pads shrink by the forward's
    (a negative pad crops dz); other modes fold the border's gradient back in afterwards.
    """
    kh, kw = cache.kernel.shape[:2]
    flipped = np.ascontiguousarray(cache.kernel[::-1, ::-1].transpose(0, 1, 3, 2))  # (kh, kw, F, C)
    (top, bottom), (left, right) = cache.padding
    zeros = cache.padding_mode == "zeros"
    pads = [kh - 1 - top, kh - 1 - bottom, kw - 1 - left, kw - 1 - right] if zeros else [kh - 1, kh - 1, kw - 1, kw - 1]
    crop = [max(0, -p) for p in pads]
    dz = dz[:, crop[0]:dz.shape[1] - crop[1], crop[2]:dz.shape[2] - crop[3]]  # (N, Ho', Wo', F)
    pads = [max(0, p) for p in pads]
    grad, _ = winograd.conv2d(dz, flipped, None, ((pads[0], pads[1]), (pads[2], pads[3])), "zeros", None,
                              cache.max_chunk_bytes, keep_padded=False)
    return grad if zeros else pad_nhwc_backward(grad, cache.in_hw, cache.padding, cache.padding_mode)
