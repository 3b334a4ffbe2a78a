"""Winograd's minimal filtering: stride-1 convolution with fewer multiplications.

An ``m x m`` tile of outputs of an ``r x r`` filter reads an ``a x a`` tile of input,
``a = m + r - 1``. Winograd's algorithm F(m x m, r x r) computes the tile as

    Y = A^T [ (G g G^T) * (B^T d B) ] A          (* element-wise, a x a)

(Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2015,
arXiv:1509.09308). Summed over input channels, the element-wise product becomes ``a*a``
independent GEMMs, ``(tiles, C) @ (C, F)``: ``a*a`` multiplications per tile and channel
pair instead of ``m*m*r*r``. For the lesson's conv2 (5x5, 14x14 outputs) that is 4.8x fewer
GEMM FLOPs with 4x4 tiles. The transforms around the GEMMs are additions with small
constants, done in cache on each block of images.

The matrices come from polynomial interpolation (Toom-Cook) at the points 0, 1, -1, 2, -2,
1/2, -1/2 and infinity; they are computed here exactly, with fractions, for any tile and
filter size, so no table of constants is copied from anywhere. The price is rounding: the
transforms add and subtract values of different sizes, so float32 results differ from
im2col's by a few 1e-6 relative to the largest output (tested). Tiles are at most 8x8
(``MAX_TILE``), where the error stays small.

Only for stride 1, dilation 1 and one group; ``conv.conv2d_forward`` picks it when those
hold. Backward uses it twice more: the input gradient is itself a stride-1 convolution (of
the output gradient with the flipped kernel), and the kernel gradient is F(r, m) over the
same tiles (``kernel_grad``). The transforms run as straight-line loops generated for the
tiling's matrices (``transforms``; batches of ``GENERATED_MIN_IMAGES`` or more), as general
compiled loops (``kernels``), or as ``einsum`` in NumPy, which also documents what they
compute; the tests check all three against each other and against im2col.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Callable

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import parallel
from . import kernels, transforms
from .padding import pad_into
from .shapes import Padding2D

GENERATED_MIN_IMAGES = 32  # from this many images a call uses the transforms generated for its tiling
MAX_TILE = 8  # a = m + r - 1 <= 8: points up to +-2 and +-1/2 keep float32 error near 1e-6
_POINTS = (Fraction(0), Fraction(1), Fraction(-1), Fraction(2), Fraction(-2), Fraction(1, 2), Fraction(-1, 2))


# ---------------------------------------------------------------------------- the matrices


def _inverse(rows: list[list[Fraction]]) -> list[list[Fraction]]:
    """Exact Gauss-Jordan inverse of a small invertible matrix of fractions."""
    n = len(rows)
    work = [list(row) + [Fraction(int(i == j)) for j in range(n)] for i, row in enumerate(rows)]
    for col in range(n):
        pivot = next(r for r in range(col, n) if work[r][col] != 0)
        work[col], work[pivot] = work[pivot], work[col]
        scale = work[col][col]
        work[col] = [v / scale for v in work[col]]
        for r in range(n):
            if r != col and work[r][col] != 0:
                factor = work[r][col]
                work[r] = [v - factor * p for v, p in zip(work[r], work[col])]
    return [row[n:] for row in work]


@lru_cache(maxsize=None)
def transform_matrices(m: int, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A^T, G, B^T) of F(m, r), exact, as read-only float64: (m, a), (a, r), (a, a) with a = m + r - 1.

    One axis; the 2-D algorithm applies them to rows and columns. ``y = A^T ((G g) * (B^T d))``
    is the correlation ``y[i] = sum_k g[k] d[i + k]`` of ``d`` (a,) with ``g`` (r,).

    >>> at, g, bt = transform_matrices(2, 3)
    >>> d, w = np.arange(4.0), np.array([1.0, 2.0, 3.0])
    >>> at @ ((g @ w) * (bt @ d))
    array([ 8., 14.])
    """
    a = m + r - 1
    if not (m >= 1 and r >= 1 and 2 <= a <= MAX_TILE):
        raise ValueError(f"F({m}, {r}) needs m, r >= 1 and 2 <= m + r - 1 <= {MAX_TILE}, got m={m}, r={r}.")
    points = _POINTS[:a - 1]  # plus the point at infinity
    # Lagrange denominators, made positive (a sign flip of a row of G and of B^T cancels): as printed by Lavin & Gray
    scale = [abs(Fraction(np.prod([p - q for q in points if q != p], dtype=object))) for p in points]
    # Evaluate the output polynomial at the points (A^T) and the filter polynomial, divided by
    # the denominators (G); infinity picks the leading coefficients.
    at = [[p ** i for p in points] + [Fraction(int(i == m - 1))] for i in range(m)]
    g = [[p ** k / s for k in range(r)] for p, s in zip(points, scale)] + [[Fraction(int(k == r - 1)) for k in range(r)]]
    # A^T[i, j] G[j, k] depends on i + k only: row i + k of W. The identity needs W B^T = I.
    w = [[p ** d / s for p, s in zip(points, scale)] + [Fraction(int(d == a - 1))] for d in range(a)]
    bt = _inverse(w)
    mats = tuple(np.array([[float(v) for v in row] for row in mat]) for mat in (at, g, bt))
    for mat in mats:
        mat.flags.writeable = False  # cached and shared: nobody may change them
    return mats


def tile_size(out_size: int, r: int) -> int:
    """Output tile size along one axis: the m that minimizes GEMM work, ceil(out / m) * (m + r - 1).

    Ties go to the smaller tile (smaller rounding error).

    >>> tile_size(14, 5), tile_size(28, 3), tile_size(3, 3)
    (4, 6, 3)
    """
    choices = range(max(1, 2 - r + 1), MAX_TILE - r + 2)
    return min(choices, key=lambda m: (-(-out_size // m) * (m + r - 1), m))


def supports(kernel_hw, strides, dilation, groups: int) -> bool:
    """Whether Winograd applies: stride 1, no dilation, one group, each kernel side 1-7, not 1x1."""
    kh, kw = kernel_hw
    return (tuple(strides) == (1, 1) and tuple(dilation) == (1, 1) and groups == 1
            and max(kh, kw) <= MAX_TILE - 1 and max(kh, kw) > 1)


@dataclass(frozen=True)
class Tiling:
    """How Winograd cuts an (Ho, Wo) output into m x m tiles, per axis (rows, columns).

    Each tile reads an a x a window of the padded input, a = m + r - 1. The windows span ``hx``
    rows and ``ux * m_w`` columns (``wx``): the padded input, plus zeros below and to the right
    where the last tiles overhang, rounded to whole column phases (see ``kernels.winograd_input``).
    """

    m: tuple[int, int]  # output tile
    tiles: tuple[int, int]  # tiles down and across
    a: tuple[int, int]  # input window
    hx: int
    ux: int

    @property
    def wx(self) -> int:
        return self.ux * self.m[1]

    @property
    def per_image(self) -> int:
        return self.tiles[0] * self.tiles[1]

    def bytes_per_image(self, channels: int, filters: int, itemsize: int) -> int:
        """Working memory of one image: its transformed tiles, their GEMM products and its window."""
        return (self.a[0] * self.a[1] * self.per_image * (channels + filters) + self.hx * self.wx * channels) * itemsize


def tiling(out_hw, kernel_hw) -> Tiling:
    """The tiles of an (Ho, Wo) output of a (kh, kw) kernel: ``tile_size`` on each axis.

    >>> tiling((14, 14), (5, 5))
    Tiling(m=(4, 4), tiles=(4, 4), a=(8, 8), hx=20, ux=5)
    """
    (ho, wo), (kh, kw) = out_hw, kernel_hw
    m_h, m_w = tile_size(ho, kh), tile_size(wo, kw)
    th, tw = -(-ho // m_h), -(-wo // m_w)
    return Tiling((m_h, m_w), (th, tw), (m_h + kh - 1, m_w + kw - 1), th * m_h + kh - 1,
                  -(-(tw * m_w + kw - 1) // m_w))


# ---------------------------------------------------------------------------- the convolution


def _transforms_numpy(ext, mat_h, mat_w, tiles_hw, steps, out):
    """out (a_h, a_w, n*th*tw, C) = mat_h d mat_w^T for every tile d of ``ext`` (n, Hx, Wx, C).

    Tiles are ``mat.shape[1]`` wide and ``steps`` apart: B^T with overlapping input tiles, or the
    weight gradient's G with the output gradient's m x m tiles.
    """
    (th, tw), (m_h, m_w) = tiles_hw, steps
    s_n, s_h, s_w, s_c = ext.strides
    tiles = as_strided(ext, (len(ext), th, tw, mat_h.shape[1], mat_w.shape[1], ext.shape[3]),
                       (s_n, s_h * m_h, s_w * m_w, s_h, s_w, s_c))  # (n, th, tw, r_h, r_w, C)
    out[...] = np.einsum("ik,ntsklc,jl->ijntsc", mat_h, tiles, mat_w, optimize=True).reshape(out.shape)


def loops_for(n: int) -> str | None:
    """Which loops transform the tiles of ``n`` images: 'generated', 'kernels' or None (NumPy's einsum).

    The generated loops (``transforms``) are compiled for each tiling, about a second the first
    time on a machine: for small batches the general compiled loops of ``kernels`` are faster.
    """
    if not kernels.enabled():
        return None
    return "generated" if n >= GENERATED_MIN_IMAGES else "kernels"


def _row_nonzeros(mat: np.ndarray):
    """(columns, weights, counts) of each row's nonzero entries: what ``kernels``' transforms loop over."""
    counts = np.count_nonzero(mat, axis=1)
    cols = np.zeros(mat.shape, np.int64)
    weights = np.zeros(mat.shape, mat.dtype)
    for i, row in enumerate(mat):
        nonzero = np.flatnonzero(row)
        cols[i, :len(nonzero)], weights[i, :len(nonzero)] = nonzero, row[nonzero]
    return cols, weights, counts.astype(np.int64)


def _transform_tiles(ext, mats, loops, tiles_hw, steps, phases, scratch, out) -> None:
    """``_transforms_numpy``, by compiled ``loops`` (see ``loops_for``) unless None.

    ``phases`` (n, Hx, m_w, Wx // m_w, C) and ``scratch`` (``transform_scratch``) are their buffers.
    """
    if loops is None:
        _transforms_numpy(ext, *mats, tiles_hw, steps, out)
        return
    nb, hx, wx, c = ext.shape
    (m_h, m_w), (th, tw), (mat_h, mat_w) = steps, tiles_hw, mats
    # column phases: phases[b, y, p, q] = ext[b, y, q*m_w + p], so each tile column is a contiguous run
    np.copyto(phases[:nb], ext.reshape(nb, hx, wx // m_w, m_w, c).transpose(0, 1, 3, 2, 4))
    if loops == "kernels":
        kernels.winograd_input(phases[:nb], _row_nonzeros(mat_h), _row_nonzeros(mat_w), m_h, th, tw, scratch,
                               out.reshape(-1))
        return
    tables = _transform_offsets(nb, hx, m_w, wx // m_w, c, m_h, th, tw, mat_h.shape, mat_w.shape)
    s_al, d_al, s_dn, d_dn = tables
    transforms.compiled("transform", mat_h, mat_w, ext.dtype)(
        phases.reshape(-1), s_al, d_al, scratch, s_dn, out.reshape(-1), d_dn, nb, hx * wx * c, th * tw * c, tw * c)


def transform_scratch(hx: int, mat_w: np.ndarray, tw: int, c: int) -> int:
    """Values of scratch the compiled tile transform needs: one image's rows, transformed along."""
    return hx * mat_w.shape[0] * tw * c


@lru_cache(maxsize=64)
def _transform_offsets(n, hx, m_w, u, c, m_h, th, tw, shape_h, shape_w):
    """Flat offsets of the tile transform's two passes, per image (see ``transforms.leaf_source``).

    Along each row: group y, sources the W columns l of every tile of that row in ``phases``
    (Hx, m_w, U, C), outputs scratch (Hx, rows_w, tw*C). Down each column: group (ty, j),
    sources scratch rows ty*m_h + k, outputs out (rows_h, rows_w, n*th*tw, C) of n images.
    """
    (rows_h, cols_h), (rows_w, cols_w) = shape_h, shape_w
    run = tw * c
    y = np.arange(hx)[:, None]
    l = np.arange(cols_w)
    s_along = ((y * m_w + l % m_w) * u + l // m_w) * c  # (Hx, cols_w)
    d_along = (y * rows_w + np.arange(rows_w)) * run  # (Hx, rows_w)
    ty, j = (a.reshape(-1, 1) for a in np.meshgrid(np.arange(th), np.arange(rows_w), indexing="ij"))
    s_down = ((ty * m_h + np.arange(cols_h)) * rows_w + j) * run  # (th*rows_w, cols_h)
    d_down = ((np.arange(rows_h) * rows_w + j) * (n * th * tw) + ty * tw) * c  # (th*rows_w, rows_h)
    return tuple(np.ascontiguousarray(t, np.int64) for t in (s_along, d_along, s_down, d_down))


@lru_cache(maxsize=64)
def _untransform_offsets(n, ho, wo, f, th, tw, m_h, m_w, a_h, a_w):
    """Flat offsets of the output transform's two passes (A^T of (m, a) on each axis), per tile row.

    Down each column: group v, sources products (a_h, a_w, n*th*tw, F) of the tile row's tiles,
    outputs scratch (m_h, a_w, tw*F). Along each row: group (ty, i, tx), outputs y (Ho, Wo, F)
    offsets, -1 for the rows and columns of tiles that overhang the bottom or right edge.
    """
    t_all = n * th * tw
    v = np.arange(a_w)[:, None]
    s_down = (np.arange(a_h) * a_w + v) * t_all * f  # (a_w, a_h)
    d_down = (np.arange(m_h) * a_w + v) * tw * f  # (a_w, m_h)
    ty, i, tx = (a.reshape(-1, 1) for a in np.meshgrid(np.arange(th), np.arange(m_h), np.arange(tw), indexing="ij"))
    s_along = ((i * a_w + np.arange(a_w)) * tw + tx) * f  # (th*m_h*tw, a_w)
    row, col = ty * m_h + i, tx * m_w + np.arange(m_w)
    d_along = np.where((row < ho) & (col < wo), (row * wo + col) * f, -1)  # (th*m_h*tw, m_w)
    return tuple(np.ascontiguousarray(t, np.int64) for t in (s_down, d_down, s_along, d_along))


def _untransform_tiles(products, at_h, at_w, bias, n, tiles_hw, scratch, y_store, b0, y_shape) -> None:
    """y[b0:b0+n] = bias + A^T M A of every tile of ``products`` (a_h, a_w, n*th*tw, F), flat, compiled.

    ``y_store`` is y (N, Ho, Wo, F) flat with F values after it, where the parts of tiles that
    overhang the edges go.
    """
    _, ho, wo, f = y_shape
    (th, tw), (m_h, a_h), (m_w, a_w) = tiles_hw, at_h.shape, at_w.shape
    s_dn, d_dn, s_al, d_al = _untransform_offsets(n, ho, wo, f, th, tw, m_h, m_w, a_h, a_w)
    transforms.compiled("untransform", at_h, at_w, products.dtype)(
        products, s_dn, d_dn, scratch, s_al, d_al, y_store, n, th, tw * f, ho * wo * f, b0 * ho * wo * f,
        len(y_store) - f, tw * f, f, bias)


def _untransform_numpy(products, at_h, at_w, n, tiles_hw, y):
    """Y = A^T M A for every tile of ``products`` (a_h, a_w, n*th*tw, F), cropped into ``y`` (n, Ho, Wo, F)."""
    th, tw = tiles_hw
    m_h, m_w = len(at_h), len(at_w)
    a_h, a_w, _, f = products.shape
    tiles = np.einsum("ix,xvntsf,jv->ntisjf", at_h, products.reshape(a_h, a_w, n, th, tw, f), at_w,
                      optimize=True).reshape(n, th * m_h, tw * m_w, f)  # (n, th*m_h, tw*m_w, F)
    y += tiles[:, :y.shape[1], :y.shape[2]]


def conv2d(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, padding: Padding2D, padding_mode: str,
           epilogue: Callable | None, max_bytes: int, keep_padded: bool, then: Callable | None = None):
    """Stride-1 cross-correlation of ``x`` (N, H, W, C) with ``kernel`` (kh, kw, C, F), plus ``bias``.

    Returns ``(y, xp)``: y (N, Ho, Wo, F) and, with ``keep_padded``, the padded input
    (N, Hp, Wp, C) that backward needs (else None). With ``then`` (see ``conv.conv2d_forward``)
    each finished block goes to ``then(block, n0)`` from a per-core buffer, and y is None.
    """
    n, height, width, c = x.shape
    kh, kw, _, f = kernel.shape
    (top, bottom), (left, right) = padding
    hp, wp = height + top + bottom, width + left + right
    ho, wo = hp - kh + 1, wp - kw + 1
    tiles = tiling((ho, wo), (kh, kw))
    (m_h, m_w), (th, tw), (a_h, a_w), hx, ux, wx = tiles.m, tiles.tiles, tiles.a, tiles.hx, tiles.ux, tiles.wx
    at_h, g_h, bt_h = transform_matrices(m_h, kh)
    at_w, g_w, bt_w = transform_matrices(m_w, kw)
    at_h, bt_h, at_w, bt_w = (mat.astype(x.dtype) for mat in (at_h, bt_h, at_w, bt_w))
    loops = loops_for(n)
    # G g G^T for every (input, output) channel pair, in float64: one (C, F) matrix per tile point.
    # Under compute(): BLAS on one thread. A multi-threaded call here leaves OpenBLAS's threads
    # spinning, and they take cores from the parts below (measured 2x slower).
    with parallel.compute():
        u = (g_h @ kernel.astype(np.float64).reshape(kh, -1)).reshape(a_h, kw, c * f)  # (a_h, kw, C*F)
        u = np.matmul(g_w, u).astype(x.dtype).reshape(a_h * a_w, c, f)  # (a_h*a_w, C, F)
    bias = np.zeros(f, x.dtype) if bias is None else bias.astype(x.dtype, copy=False)
    tiles_per_image = tiles.per_image
    step = max(1, max_bytes // tiles.bytes_per_image(c, f, x.itemsize))  # images per block: in cache
    xp = np.empty((n, hp, wp, c), x.dtype) if keep_padded else None  # (N, Hp, Wp, C) for backward
    # y (N, Ho, Wo, F), stored with F values after it: where tiles put their columns past the right edge
    y_store = np.empty(n * ho * wo * f + f, x.dtype) if then is None else None
    y = y_store[:n * ho * wo * f].reshape(n, ho, wo, f) if then is None else None

    def part(blocks: parallel.SharedBlocks) -> None:  # on one core: blocks of images as they come
        nb = min(step, n)
        t_max = nb * tiles_per_image
        ext_buf = np.zeros((nb, hx, wx, c), x.dtype)  # below and right of the padded input: zeros, never written
        phases = np.empty((nb, hx, m_w, ux, c), x.dtype) if loops else None
        v_buf = np.empty(a_h * a_w * t_max * c, x.dtype)
        m_buf = np.empty(a_h * a_w * t_max * f, x.dtype)
        scratch = np.empty(max(transform_scratch(hx, bt_w, tw, c), m_h * a_w * tw * f), x.dtype) if loops else None
        y_buf_store = np.empty(nb * ho * wo * f + f, x.dtype) if then is not None else None  # as y_store
        y_buf = y_buf_store[:nb * ho * wo * f].reshape(nb, ho, wo, f) if then is not None else None
        for b0, b1 in blocks:
            nb = b1 - b0
            if keep_padded:
                pad_into(xp[b0:b1], x[b0:b1], padding, padding_mode)
            t = nb * tiles_per_image
            ext = ext_buf[:nb]  # (nb, hx, wx, C)
            if keep_padded:
                ext[:, :hp, :wp] = xp[b0:b1]
            else:
                pad_into(ext[:, :hp, :wp], x[b0:b1], padding, padding_mode)
            v = v_buf[:a_h * a_w * t * c].reshape(a_h, a_w, t, c)
            _transform_tiles(ext, (bt_h, bt_w), loops, (th, tw), (m_h, m_w), phases, scratch, v)
            products = m_buf[:a_h * a_w * t * f].reshape(a_h * a_w, t, f)
            np.matmul(v.reshape(a_h * a_w, t, c), u, out=products)  # (a_h*a_w, tiles, F): the only real work
            y_block = y[b0:b1] if then is None else y_buf[:nb]
            if loops == "kernels":
                kernels.winograd_output(m_buf, _row_nonzeros(at_h), _row_nonzeros(at_w), bias, nb, th, tw, scratch,
                                        y_block)
            elif loops == "generated":
                if then is None:
                    _untransform_tiles(m_buf, at_h, at_w, bias, nb, (th, tw), scratch, y_store, b0, y.shape)
                else:
                    _untransform_tiles(m_buf, at_h, at_w, bias, nb, (th, tw), scratch, y_buf_store, 0, y_buf.shape)
            else:
                y_block[...] = bias
                _untransform_numpy(products.reshape(a_h, a_w, t, f), at_h, at_w, nb, (th, tw), y_block)
            if epilogue is not None:
                epilogue(y_block)
            if then is not None:
                then(y_block, b0)

    parallel.run_blocks(part, n, step)
    return y, xp


def kernel_grad(xp: np.ndarray, dz: np.ndarray, kernel_hw, max_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """(dkernel (kh, kw, C, F), dbias (F,)) of the stride-1 correlation of ``xp`` (N, Hp, Wp, C) giving ``dz`` (N, Ho, Wo, F).

    dkernel[k, l] = sum over outputs (y, x) of xp[y + k, x + l] (x) dz[y, x]. Cut the outputs into
    the forward's m x m tiles: each tile adds the correlation of its a x a input tile with its
    m x m block of dz, an r x r result: F(r, m), the roles of output and filter swapped. Its B^T
    is the forward's (same points, same a), its G transforms dz, and the sum over tiles and images
    becomes a*a GEMMs ``(C, tiles) @ (tiles, F)`` with the whole batch as their inner dimension.
    """
    n, hp, wp, c = xp.shape
    _, ho, wo, f = dz.shape
    kh, kw = kernel_hw
    tiles = tiling((ho, wo), kernel_hw)  # the forward's
    (m_h, m_w), (th, tw), (a_h, a_w), hx, ux, wx = tiles.m, tiles.tiles, tiles.a, tiles.hx, tiles.ux, tiles.wx
    bt_h, bt_w = (transform_matrices(m, r)[2].astype(xp.dtype) for m, r in ((m_h, kh), (m_w, kw)))
    (at_h, g_h, _), (at_w, g_w, _) = transform_matrices(kh, m_h), transform_matrices(kw, m_w)  # F(r, m)
    g_h, g_w = g_h.astype(xp.dtype), g_w.astype(xp.dtype)
    loops = loops_for(n)
    tiles_per_image = tiles.per_image
    image_bytes = (a_h * a_w * tiles_per_image * (c + f) + hx * wx * c + th * m_h * tw * m_w * f) * xp.itemsize
    step = max(1, max_bytes // image_bytes)

    def part(n0: int, n1: int):  # images n0:n1, on one core: their share of the sums
        nb = min(step, n1 - n0)
        ext_buf = np.zeros((nb, hx, wx, c), xp.dtype)  # tile overhang: zeros, never written
        dz_buf = np.zeros((nb, th * m_h, tw * m_w, f), xp.dtype)
        v_buf = np.empty(a_h * a_w * nb * tiles_per_image * c, xp.dtype)
        z_buf = np.empty(a_h * a_w * nb * tiles_per_image * f, xp.dtype)
        phases_v = np.empty((nb, hx, m_w, ux, c), xp.dtype) if loops else None
        phases_z = np.empty((nb, th * m_h, m_w, tw, f), xp.dtype) if loops else None
        scratch = np.empty(max(transform_scratch(hx, bt_w, tw, c), transform_scratch(th * m_h, g_w, tw, f)),
                           xp.dtype) if loops else None
        total = np.zeros((a_h * a_w, c, f), xp.dtype)
        products = np.empty_like(total)
        dbias = np.zeros(f, xp.dtype)
        for b0 in range(n0, n1, step):
            b1 = min(b0 + step, n1)
            t = (b1 - b0) * tiles_per_image
            ext_buf[:b1 - b0, :hp, :wp] = xp[b0:b1]
            dz_buf[:b1 - b0, :ho, :wo] = dz[b0:b1]
            v = v_buf[:a_h * a_w * t * c].reshape(a_h, a_w, t, c)
            z = z_buf[:a_h * a_w * t * f].reshape(a_h, a_w, t, f)
            _transform_tiles(ext_buf[:b1 - b0], (bt_h, bt_w), loops, (th, tw), (m_h, m_w), phases_v, scratch, v)
            _transform_tiles(dz_buf[:b1 - b0], (g_h, g_w), loops, (th, tw), (m_h, m_w), phases_z, scratch, z)
            # (a*a, C, tiles) @ (a*a, tiles, F): every tile point's sum over the block's tiles
            np.matmul(v.reshape(a_h * a_w, t, c).transpose(0, 2, 1), z.reshape(a_h * a_w, t, f), out=products)
            total += products
            dbias += dz[b0:b1].reshape(-1, f).sum(axis=0)  # a block at a time: short sums, small rounding
        return total, dbias

    with parallel.compute():
        sums = parallel.run(part, n)
        total = sum(s[0] for s in sums).reshape(a_h, a_w, c, f).astype(np.float64)
        dkernel = np.einsum("ki,ijcf,lj->klcf", at_h, total, at_w, optimize=True).astype(xp.dtype)  # (kh, kw, C, F)
    return dkernel, sum(s[1] for s in sums)
