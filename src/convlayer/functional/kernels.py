"""Compiled loops (numba) for the memory-bound steps between the GEMMs.

NumPy does col2im and max pooling as a series of whole-array operations over strided
slices, each a pass over memory whose inner loops run over only C values. Written as one
loop each, they touch every value once. Measured on this machine (one core, per call):
max pooling's backward 2.8x faster, its forward 1.3x, col2im 1.1x (conv2) to 2.3x (the
strided layer). Only where they win: one-channel col2im (tap-major whole-row adds) and
Adam (a scalar loop LLVM does not vectorize, since its arrays might alias) stay in NumPy,
which was as fast or faster. The GEMMs stay in NumPy's BLAS.

numba comes with the ``fast`` extra and is imported on first use. Without it, or with
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
        raise RuntimeError("the compiled kernels need numba; install it with pip install 'convlayer[fast]'.")
    _enabled = bool(flag)


def _jit(fn):
    """Compile ``fn`` on its first call. numba (and LLVM, ~100 MB) is imported only then."""
    compiled = None

    def call(*args):
        nonlocal compiled
        if compiled is None:
            import numba

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

    ``dxp`` is the whole contiguous array and the block is given by offsets, so the compiler
    knows the channel stride is 1 and vectorizes the inner loop.
    """
    c = dcols.shape[1] // (kh * kw)
    for b in range(n):
        for oh in range(ho):
            for ow in range(wo):
                row = (b * ho + oh) * wo + ow
                for i in range(kh):
                    y = h0 + oh * sh + i * dh
                    for j in range(kw):
                        x = ow * sw + j * dw
                        base = (i * kw + j) * c
                        for ch in range(c):
                            dxp[n0 + b, y, x, c0 + ch] += dcols[row, base + ch]


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


# Winograd transforms (see ``winograd``). Each is a series of row updates
# ``dst[d0:d0+L] (+)= w * src[s0:s0+L]`` over long contiguous runs, one store per loop, so LLVM
# vectorizes them; ``max(offset, 0)`` tells it the flat indices are never negative (else every
# access carries NumPy's wrap-around test and the loop stays scalar: measured 14x slower).


@_jit
def winograd_input(phases, bt_h, bt_w, m_h, th, tw, scratch, out):  # pragma: no cover - compiled
    """out (a_h, a_w, n*th*tw, C), flat = B^T d B of every tile d of the padded block.

    ``phases`` (n, Hx, m_w, U, C) holds the padded block by column phase:
    ``phases[b, y, p, q] = padded[b, y, q*m_w + p]``, so one kernel column of all tiles in a
    row is one contiguous run. ``scratch`` holds (Hx, a_w, tw*C) of row-transformed input.
    """
    n, hx, m_w, u, c = phases.shape
    flat = phases.reshape(-1)
    a_h, a_w = bt_h.shape[0], bt_w.shape[0]
    t_all = n * th * tw
    run = tw * c
    for b in range(n):
        # along each row: scratch[y, j, tx] = sum_l bt_w[j, l] * padded[b, y, tx*m_w + l]
        for y in range(hx):
            for j in range(a_w):
                d0 = max((y * a_w + j) * run, 0)
                first = True
                for l in range(a_w):
                    w = bt_w[j, l]
                    if w == 0:
                        continue
                    s0 = max((((b * hx + y) * m_w + l % m_w) * u + l // m_w) * c, 0)
                    if first:
                        for q in range(run):
                            scratch[d0 + q] = w * flat[s0 + q]
                        first = False
                    else:
                        for q in range(run):
                            scratch[d0 + q] += w * flat[s0 + q]
        # down each column: out[i, j, tiles of row ty] = sum_k bt_h[i, k] * scratch[ty*m_h + k, j]
        for ty in range(th):
            t0 = (b * th + ty) * tw
            for i in range(a_h):
                for j in range(a_w):
                    d0 = max(((i * a_w + j) * t_all + t0) * c, 0)
                    first = True
                    for k in range(a_h):
                        w = bt_h[i, k]
                        if w == 0:
                            continue
                        s0 = max(((ty * m_h + k) * a_w + j) * run, 0)
                        if first:
                            for q in range(run):
                                out[d0 + q] = w * scratch[s0 + q]
                            first = False
                        else:
                            for q in range(run):
                                out[d0 + q] += w * scratch[s0 + q]


@_jit
def winograd_output(products, at_h, at_w, bias, n, th, tw, scratch, y):  # pragma: no cover - compiled
    """y (n, Ho, Wo, F) = bias + A^T M A of every tile M of ``products`` (a_h, a_w, n*th*tw, F), flat.

    Tiles that overhang the bottom or right edge are cropped. ``scratch`` holds (m_h, a_w, tw*F).
    """
    m_h, a_h = at_h.shape
    m_w, a_w = at_w.shape
    _, ho, wo, f = y.shape
    flat_y = y.reshape(-1)
    t_all = n * th * tw
    run = tw * f
    for b in range(n):
        for ty in range(th):
            t0 = (b * th + ty) * tw
            # down each column: scratch[i, v] = sum_x at_h[i, x] * products[x, v, tiles of row ty]
            for i in range(m_h):
                for v in range(a_w):
                    d0 = max((i * a_w + v) * run, 0)
                    first = True
                    for x in range(a_h):
                        w = at_h[i, x]
                        if w == 0:
                            continue
                        s0 = max(((x * a_w + v) * t_all + t0) * f, 0)
                        if first:
                            for q in range(run):
                                scratch[d0 + q] = w * products[s0 + q]
                            first = False
                        else:
                            for q in range(run):
                                scratch[d0 + q] += w * products[s0 + q]
            # along each row, straight into y: y[b, ty*m_h + i, tx*m_w + j] = bias + sum_v at_w[j, v] * scratch[i, v, tx]
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
                        first = True
                        for v in range(a_w):
                            w = at_w[j, v]
                            if w == 0:
                                continue
                            s0 = max(((i * a_w + v) * tw + tx) * f, 0)
                            if first:
                                for q in range(f):
                                    flat_y[d0 + q] = bias[q] + w * scratch[s0 + q]
                                first = False
                            else:
                                for q in range(f):
                                    flat_y[d0 + q] += w * scratch[s0 + q]
