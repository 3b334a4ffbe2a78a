"""Compiled loops (numba) for the memory-bound steps between the GEMMs.

NumPy does im2col, col2im and max pooling as a series of whole-array operations over
strided slices, each a pass over memory whose inner loops run over only C values. Written as
one loop each, they touch every value once. Measured on this machine (one core, per call):
max pooling's backward 2.8x faster, its forward 1.3x, col2im 5x (conv2) to 11x (the
strided layer), the strided layer's window copy 1.7x, ReLU 4x (NumPy's maximum against a
scalar is not vectorized). Winograd's transforms (``winograd``) are only worth doing this way:
in NumPy, Winograd is slower than im2col. Only where they win: one-channel im2col and col2im
(tap-major whole-row copies and adds) and Adam (a scalar loop LLVM does not vectorize, since
its arrays might alias) stay in NumPy, which was as fast or faster. The GEMMs stay in NumPy's BLAS.

numba is a dependency (imported on first use). Without it, or with
``CONVLAYER_NUMBA=0`` in the environment, or after ``set_enabled(False)``, the NumPy code
runs instead; the tests run both and check they agree.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np

AVAILABLE = importlib.util.find_spec("numba") is not None
_enabled = AVAILABLE and os.environ.get("CONVLAYER_NUMBA", "1") != "0"


def enabled() -> bool:
    """True when the compiled loops run (numba installed and not switched off)."""
    return _enabled


def set_enabled(flag: bool) -> None:
    """Switch the compiled loops on or off (on needs numba)."""
    global _enabled
    if flag and not AVAILABLE:
        raise RuntimeError("the compiled kernels need numba; install it with pip install numba.")
    _enabled = bool(flag)


_HELPERS: dict = {}


def _helper(fn):
    """A loop shared by kernels; compiled, to be inlined into them, when the first kernel compiles."""
    _HELPERS[fn.__name__] = fn
    return fn


def _compile_helpers(numba) -> None:
    for name, fn in _HELPERS.items():
        if globals()[name] is fn:  # numba resolves globals when it compiles a kernel: swap in the compiled one
            globals()[name] = numba.njit(nogil=True, inline="always")(fn)


def _jit(fn):
    """Compile ``fn`` on its first call. numba (and LLVM, ~100 MB) is imported only then."""
    compiled = None

    def call(*args):
        nonlocal compiled
        if compiled is None:
            import numba

            _compile_helpers(numba)

            # nogil: convlayer.parallel runs these on several threads at once. No fastmath:
            # results must match the NumPy path (IEEE order, no fused multiply-adds).
            try:
                compiled = numba.njit(nogil=True, cache=True)(fn)
            except RuntimeError:  # no writable cache location: compile on every run instead
                compiled = numba.njit(nogil=True)(fn)
        return compiled(*args)

    call.__name__, call.__doc__, call.__wrapped__ = fn.__name__, fn.__doc__, fn
    return call


@_jit
def col2im_add(dxp, n0, h0, c0, dcols, n, kh, kw, sh, sw, dh, dw, ho, wo):  # pragma: no cover - compiled
    """dxp[n0 + b, h0 + y, x, c0 + ch] += window gradients dcols (n*ho*wo, kh*kw*C), rows (b, ho, wo).

    ``dxp`` is the whole contiguous array and the block is given by offsets. When a kernel row's
    taps are adjacent pixels with all channels (no horizontal dilation, one group) each kernel row
    is one run of kw*C values; else one run of C per tap. Flat indices, kept non-negative by
    ``max`` as in the Winograd loops: measured 5x faster than indexing the 4-D array.
    """
    _, hp, wp, c_all = dxp.shape
    c = dcols.shape[1] // (kh * kw)
    depth = dcols.shape[1]
    flat, src = dxp.reshape(-1), dcols.reshape(-1)
    whole_rows = dw == 1 and c == c_all
    for b in range(n):
        for oh in range(ho):
            for ow in range(wo):
                row = (b * ho + oh) * wo + ow
                for i in range(kh):
                    y = h0 + oh * sh + i * dh
                    if whole_rows:
                        d0 = max((((n0 + b) * hp + y) * wp + ow * sw) * c_all, 0)
                        s0 = max(row * depth + i * kw * c, 0)
                        for q in range(kw * c):
                            flat[d0 + q] += src[s0 + q]
                        continue
                    for j in range(kw):
                        d0 = max((((n0 + b) * hp + y) * wp + ow * sw + j * dw) * c_all + c0, 0)
                        s0 = max(row * depth + (i * kw + j) * c, 0)
                        for q in range(c):
                            flat[d0 + q] += src[s0 + q]


@_jit
def im2col(xp, cols, b0, b1, h0, h1, kh, kw, sh, sw, dh, wo):  # pragma: no cover - compiled
    """cols[r, (i*kw + j)*C + c] = xp[b, oy*sh + i*dh, ox*sw + j, c] for the rows r of (b, oy, ox) in the block.

    Each window is kh contiguous runs of kw*C values (no horizontal dilation). ``xp`` (N, Hp, Wp, C)
    and ``cols`` (rows, >= kh*kw*C) are contiguous; columns past kh*kw*C (the ones) are left alone.
    NumPy's strided copy moves C values per step: 1.7x slower for the strided layer's windows.
    """
    _, hp, wp, c = xp.shape
    src = xp.reshape(-1)
    depth = cols.shape[1]
    dst = cols.reshape(-1)
    run = kw * c
    row = 0
    for b in range(b0, b1):
        for oy in range(h0, h1):
            for ox in range(wo):
                for i in range(kh):
                    s0 = max(((b * hp + oy * sh + i * dh) * wp + ox * sw) * c, 0)
                    d0 = max(row * depth + i * run, 0)
                    for q in range(run):
                        dst[d0 + q] = src[s0 + q]
                row += 1


@_jit
def max_pool(xp, y, ph, pw, sh, sw):  # pragma: no cover - compiled
    """y (n, Ho, Wo, C) = max over each window of xp (n, Hp, Wp, C); NaN wins, as np.maximum."""
    n, ho, wo, c = y.shape
    for b in range(n):
        for oh in range(ho):
            for ow in range(wo):
                out = y[b, oh, ow]
                for ch in range(c):
                    out[ch] = xp[b, oh * sh, ow * sw, ch]
                for i in range(ph):
                    for j in range(pw):
                        tap = xp[b, oh * sh + i, ow * sw + j]
                        for ch in range(c):
                            v = tap[ch]
                            best = out[ch]
                            if v > best or (v != v and best == best):
                                out[ch] = v


@_jit
def max_pool_backward(xp, y, dy, dxp, ph, pw, sh, sw, write_all):  # pragma: no cover - compiled
    """Route each window's dy to its first maximum (else its last tap, when y is NaN) in dxp.

    ``write_all``: windows tile dxp exactly, so every value is written (dxp may start empty);
    otherwise dxp starts at zero and overlapping windows accumulate.
    """
    n, ho, wo, c = y.shape
    unclaimed = np.empty(c, np.bool_)
    for b in range(n):
        for oh in range(ho):
            for ow in range(wo):
                target, grad = y[b, oh, ow], dy[b, oh, ow]
                unclaimed[:] = True
                for i in range(ph):
                    for j in range(pw):
                        last = i == ph - 1 and j == pw - 1
                        tap, dtap = xp[b, oh * sh + i, ow * sw + j], dxp[b, oh * sh + i, ow * sw + j]
                        for ch in range(c):
                            hit = unclaimed[ch] and (last or tap[ch] == target[ch])
                            unclaimed[ch] = unclaimed[ch] and not hit
                            if write_all:
                                dtap[ch] = grad[ch] if hit else 0
                            elif hit:
                                dtap[ch] += grad[ch]


@_jit
def relu(x, out):  # pragma: no cover - compiled
    """out = max(x, 0) over flat arrays that do not overlap, as np.maximum (NaN stays NaN, -0.0 becomes 0.0).

    NumPy 2.4's maximum against a scalar is not vectorized here: 0.45 ns a value, against 0.1.
    """
    zero = np.zeros(1, x.dtype)[0]
    for i in range(x.size):
        v = x[i]
        out[i] = v if v > 0 or v != v else zero


@_jit
def relu_in_place(x):  # pragma: no cover - compiled
    """x = max(x, 0), flat. (Given as two arrays, LLVM's overlap test fails and it runs the scalar loop.)"""
    zero = np.zeros(1, x.dtype)[0]
    for i in range(x.size):
        v = x[i]
        x[i] = v if v > 0 or v != v else zero


@_jit
def relu_grad(dy, y, out):  # pragma: no cover - compiled
    """out = dy * (y > 0) over flat arrays, with NumPy's rounding (NaN * 0 is NaN)."""
    one, zero = np.ones(1, dy.dtype)[0], np.zeros(1, dy.dtype)[0]
    for i in range(dy.size):
        out[i] = dy[i] * (one if y[i] > 0 else zero)


# Winograd transforms (see ``winograd``). Each is a series of row updates: a weighted sum of a few
# long contiguous runs of the source, written to one contiguous run of the destination. With one
# store per loop LLVM vectorizes them; two source runs per pass halve the passes over the
# destination (measured 1.2x). ``max(offset, 0)`` tells LLVM the flat indices are never negative;
# without it every access carries NumPy's wrap-around test and the loop stays scalar (14x slower).


@_helper
def _weighted_sum(dst, d0, src, offsets, weights, row, count, run, accumulate):  # pragma: no cover - compiled
    """dst[d0:d0+run] (+)= sum over p < count of weights[row, p] * src[offsets[p]:offsets[p]+run].

    Up to four source runs per pass over dst (one store per loop, which LLVM vectorizes).
    """
    d0 = max(d0, 0)
    p = 0
    while p < count:
        take = min(count - p, 4)
        s0, w0 = max(offsets[p], 0), weights[row, p]
        if take == 4:
            s1, w1 = max(offsets[p + 1], 0), weights[row, p + 1]
            s2, w2 = max(offsets[p + 2], 0), weights[row, p + 2]
            s3, w3 = max(offsets[p + 3], 0), weights[row, p + 3]
            if p == 0 and not accumulate:
                for q in range(run):
                    dst[d0 + q] = w0 * src[s0 + q] + w1 * src[s1 + q] + w2 * src[s2 + q] + w3 * src[s3 + q]
            else:
                for q in range(run):
                    dst[d0 + q] += w0 * src[s0 + q] + w1 * src[s1 + q] + w2 * src[s2 + q] + w3 * src[s3 + q]
        elif take == 3:
            s1, w1 = max(offsets[p + 1], 0), weights[row, p + 1]
            s2, w2 = max(offsets[p + 2], 0), weights[row, p + 2]
            if p == 0 and not accumulate:
                for q in range(run):
                    dst[d0 + q] = w0 * src[s0 + q] + w1 * src[s1 + q] + w2 * src[s2 + q]
            else:
                for q in range(run):
                    dst[d0 + q] += w0 * src[s0 + q] + w1 * src[s1 + q] + w2 * src[s2 + q]
        elif take == 2:
            s1, w1 = max(offsets[p + 1], 0), weights[row, p + 1]
            if p == 0 and not accumulate:
                for q in range(run):
                    dst[d0 + q] = w0 * src[s0 + q] + w1 * src[s1 + q]
            else:
                for q in range(run):
                    dst[d0 + q] += w0 * src[s0 + q] + w1 * src[s1 + q]
        else:
            if p == 0 and not accumulate:
                for q in range(run):
                    dst[d0 + q] = w0 * src[s0 + q]
            else:
                for q in range(run):
                    dst[d0 + q] += w0 * src[s0 + q]
        p += take


@_jit
def winograd_input(phases, rows_h, rows_w, m_h, th, tw, scratch, out):  # pragma: no cover - compiled
    """out (a_h, a_w, n*th*tw, C), flat = B^T d B of every tile d of the padded block.

    ``phases`` (n, Hx, m_w, U, C) holds the padded block by column phase:
    ``phases[b, y, p, q] = padded[b, y, q*m_w + p]``, so one kernel column of all tiles in a
    row is one contiguous run. ``rows_h``/``rows_w``: (columns, weights, counts) of the nonzeros
    of each row of B^T for the two axes. ``scratch`` holds (Hx, a_w, tw*C) row-transformed input.
    """
    n, hx, m_w, u, c = phases.shape
    flat = phases.reshape(-1)
    cols_h, weights_h, counts_h = rows_h
    cols_w, weights_w, counts_w = rows_w
    a_h, a_w = counts_h.shape[0], counts_w.shape[0]
    t_all = n * th * tw
    run = tw * c
    offsets = np.empty(max(a_h, a_w), np.int64)
    for b in range(n):
        # along each row: scratch[y, j, tx] = sum_l B^T[j, l] * padded[b, y, tx*m_w + l]
        for y in range(hx):
            for j in range(a_w):
                for p in range(counts_w[j]):
                    col = cols_w[j, p]
                    offsets[p] = (((b * hx + y) * m_w + col % m_w) * u + col // m_w) * c
                _weighted_sum(scratch, (y * a_w + j) * run, flat, offsets, weights_w, j, counts_w[j], run, False)
        # down each column: out[i, j, tiles of row ty] = sum_k B^T[i, k] * scratch[ty*m_h + k, j]
        for ty in range(th):
            t0 = (b * th + ty) * tw
            for i in range(a_h):
                for j in range(a_w):
                    for p in range(counts_h[i]):
                        offsets[p] = ((ty * m_h + cols_h[i, p]) * a_w + j) * run
                    _weighted_sum(out, ((i * a_w + j) * t_all + t0) * c, scratch, offsets, weights_h, i, counts_h[i],
                                  run, False)


@_jit
def winograd_output(products, rows_h, rows_w, bias, n, th, tw, scratch, y):  # pragma: no cover - compiled
    """y (n, Ho, Wo, F) = bias + A^T M A of every tile M of ``products`` (a_h, a_w, n*th*tw, F), flat.

    ``rows_h``/``rows_w``: the nonzeros of each row of A^T, as for ``winograd_input``. Tiles that
    overhang the bottom or right edge are cropped. ``scratch`` holds (m_h, a_w, tw*F).
    """
    cols_h, weights_h, counts_h = rows_h
    cols_w, weights_w, counts_w = rows_w
    m_h, m_w = counts_h.shape[0], counts_w.shape[0]
    a_w = cols_w.shape[1]  # A^T is (m, a)
    _, ho, wo, f = y.shape
    flat_y = y.reshape(-1)
    t_all = n * th * tw
    run = tw * f
    offsets = np.empty(cols_h.shape[1] + cols_w.shape[1], np.int64)
    for b in range(n):
        for ty in range(th):
            t0 = (b * th + ty) * tw
            # down each column: scratch[i, v] = sum_x A^T[i, x] * products[x, v, tiles of row ty]
            for i in range(m_h):
                for v in range(a_w):
                    for p in range(counts_h[i]):
                        offsets[p] = ((cols_h[i, p] * a_w + v) * t_all + t0) * f
                    _weighted_sum(scratch, (i * a_w + v) * run, products, offsets, weights_h, i, counts_h[i], run,
                                  False)
            # along each row, straight into y: y[b, ty*m_h + i, tx*m_w + j] = bias + sum_v A^T[j, v] * scratch[i, v, tx]
            for i in range(m_h):
                row = ty * m_h + i
                if row >= ho:
                    break
                for tx in range(tw):
                    for j in range(m_w):
                        col = tx * m_w + j
                        if col >= wo:
                            break
                        d0 = max(((b * ho + row) * wo + col) * f, 0)
                        for q in range(f):
                            flat_y[d0 + q] = bias[q]
                        for p in range(counts_w[j]):
                            offsets[p] = ((i * a_w + cols_w[j, p]) * tw + tx) * f
                        _weighted_sum(flat_y, d0, scratch, offsets, weights_w, j, counts_w[j], f, True)
