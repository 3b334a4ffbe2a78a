"""Winograd's transforms as straight-line loops, generated from the exact matrices and compiled.

A transform ``dst_i = sum_l M[i, l] src_l`` of ``a`` runs of values into ``b`` runs is one
loop over the run: load the ``a`` inputs once, keep them in registers, store the ``b``
outputs once. The matrices' constants are written into the code, so zeros cost nothing, ones
cost no multiplication, and the structure of the interpolation points ``p, -p`` is used
twice over:

- rows of B^T and G at ``p`` and ``-p`` differ in the sign of their odd (or even) columns:
  ``E + O`` and ``E - O`` of the even and odd parts, computed once;
- columns of A^T at ``p`` and ``-p`` differ in the sign of their odd rows: each output row uses
  either ``x_p + x_-p`` or ``x_p - x_-p``, computed once.

For F(4x4, 5x5) an input row takes 26 products and 6 sums for B^T's 44 nonzeros, an output
row 19 operations for A^T's 26; loads and stores fall from about 60 per value (the weighted
sums of ``kernels`` pass over the destination once per four sources) to 16 and 12.

Each tiling gets one compiled function (``module_source``) that runs both passes image by
image, so the rows transformed along one axis are still in cache when the other pass reads
them; ``winograd`` gives it the flat offsets of every run as small tables.

The source is written to a file in the user's cache (``codegen.cache_dir``), so numba's on-disk
cache keeps the compiled code between runs; where nothing can be written, it compiles in memory.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np

from . import codegen


def _weighted(terms: list[tuple[float, str]], literal) -> str:
    """``c0 * v0 + c1 * v1 + ...``, the ones and minus ones without a multiplication."""
    parts = []
    for coef, var in terms:
        parts.append(("+" if coef > 0 else "-", var if abs(coef) == 1 else f"{literal(abs(float(coef)))} * {var}"))
    first_sign, first = parts[0]
    return (first if first_sign == "+" else f"-{first}") + "".join(f" {sign} {text}" for sign, text in parts[1:])


def _paired_columns(mat: np.ndarray) -> list[int]:
    """Columns l whose next column has, row by row, the same magnitude (A^T at points p and -p)."""
    pairs, l = [], 0
    while l + 1 < mat.shape[1]:
        a, b = mat[:, l], mat[:, l + 1]
        if np.any(a != 0) and np.array_equal(np.abs(a), np.abs(b)) and np.any(a != b):
            pairs.append(l)
            l += 2
        else:
            l += 1
    return pairs


def _rows_paired(r1: np.ndarray, r2: np.ndarray) -> int:
    """+1 when r2 = r1 with its odd columns negated, -1 when with its even ones, 0 otherwise."""
    alternate = np.where(np.arange(len(r1)) % 2 == 0, 1.0, -1.0)
    if np.count_nonzero(r1 * (alternate < 0)) == 0 or np.count_nonzero(r1 * (alternate > 0)) == 0:
        return 0  # one part is empty: nothing to share
    if np.array_equal(r2, r1 * alternate):
        return 1
    if np.array_equal(r2, -r1 * alternate):
        return -1
    return 0


def loop_body(mat: np.ndarray, literal) -> list[str]:
    """The statements for one value q: load the inputs, combine them, store the outputs (``mat`` (rows, cols))."""
    rows, cols = mat.shape
    assert np.all(np.any(mat != 0, axis=1)), "a transform's rows are never all zero"
    lines = [f"x{l} = src[s{l} + q]" for l in range(cols) if np.any(mat[:, l] != 0)]
    column_pairs = _paired_columns(mat)
    exprs: list[str | None] = [None] * rows
    if column_pairs:  # A^T: sums and differences of the columns at p and -p
        partner = {l: p for p in column_pairs for l in (p, p + 1)}
        needed = set()
        for i in range(rows):
            terms = []
            for l in range(cols):
                if mat[i, l] == 0 or partner.get(l, l) != l:
                    continue
                if l in partner:
                    kind = "p" if mat[i, l + 1] == mat[i, l] else "n"
                    needed.add((l, kind))
                    terms.append((mat[i, l], f"{kind}{l}"))
                else:
                    terms.append((mat[i, l], f"x{l}"))
            exprs[i] = _weighted(terms, literal)
        lines += [f"{kind}{l} = x{l} {'+' if kind == 'p' else '-'} x{l + 1}" for l, kind in sorted(needed)]
    else:  # B^T and G: even and odd parts of the rows at p and -p
        i = 0
        while i < rows:
            sign = _rows_paired(mat[i], mat[i + 1]) if i + 1 < rows else 0
            if sign:
                even = [(mat[i, l], f"x{l}") for l in range(0, cols, 2) if mat[i, l] != 0]
                odd = [(mat[i, l], f"x{l}") for l in range(1, cols, 2) if mat[i, l] != 0]
                lines += [f"e{i} = {_weighted(even, literal)}", f"o{i} = {_weighted(odd, literal)}"]
                exprs[i], exprs[i + 1] = f"e{i} + o{i}", f"e{i} - o{i}" if sign > 0 else f"o{i} - e{i}"
                i += 2
            else:
                exprs[i] = _weighted([(mat[i, l], f"x{l}") for l in range(cols) if mat[i, l] != 0], literal)
                i += 1
    return lines + [f"dst[d{i} + q] = {expr}" for i, expr in enumerate(exprs)]


def _pass_lines(mat: np.ndarray, literal, src: str, s: str, s_shift: str, dst: str, d: str, d_shift: str,
                groups: str, run: str, bias: bool, junk: bool) -> list[str]:
    """One pass of ``mat`` over ``groups`` of runs: for each group g and output row i,
    dst[d[g, i] + d_shift:][:run] = (bias +) sum_l mat[i, l] * src[s[g, l] + s_shift:][:run].

    With ``junk``, an output whose offset is negative goes to offset ``junk`` instead (the parts
    of tiles that overhang the edges).
    """
    rows, cols = mat.shape
    body = [line.replace("src[", f"{src}[").replace("dst[", f"{dst}[") for line in loop_body(mat, literal)]
    if bias:
        body = [line + " + bias[q]" if line.startswith(f"{dst}[") else line for line in body]
    out = [f"for g in range({groups}):"]
    # max(., 0): the flat offsets are never negative (without it every access tests for wrap-around)
    out += [f"    s{l} = max({s}[g, {l}] + {s_shift}, 0)" for l in range(cols)]
    if junk:
        out += [f"    d{i} = max(junk if {d}[g, {i}] < 0 else {d}[g, {i}] + {d_shift}, 0)" for i in range(rows)]
    else:
        out += [f"    d{i} = max({d}[g, {i}] + {d_shift}, 0)" for i in range(rows)]
    out.append(f"    for q in range({run}):")
    return out + ["        " + line for line in body]


def _indent(lines: list[str], depth: int) -> list[str]:
    return ["    " * depth + line for line in lines]


def module_source(kind: str, mat_h: np.ndarray, mat_w: np.ndarray, dtype, cache: bool) -> str:
    """A module with one compiled function: the two passes of a tile transform, image by image.

    ``kind`` 'transform': ``tiles(src, s_al, d_al, scratch, s_dn, dst, d_dn, n, image_in, image_out, run)``,
    along each row with W = ``mat_w`` into ``scratch``, then down each column with H = ``mat_h``.
    ``kind`` 'untransform': ``tiles(src, s_dn, d_dn, scratch, s_al, d_al, dst, n, th, tile_row_in,
    image_out, base, junk, run_down, run_along, bias)``, per tile row: down each column with A^T_h
    into ``scratch``, then along each row with A^T_w, plus ``bias``, into ``dst``.
    """
    literal = (lambda v: f"np.float32({v!r})") if np.dtype(dtype).name == "float32" else repr
    if kind == "transform":
        head = "def tiles(src, s_al, d_al, scratch, s_dn, dst, d_dn, n, image_in, image_out, run):"
        body = ["for b in range(n):"] + _indent(
            _pass_lines(mat_w, literal, "src", "s_al", "b * image_in", "scratch", "d_al", "0", "s_al.shape[0]", "run",
                        False, False)
            + _pass_lines(mat_h, literal, "scratch", "s_dn", "0", "dst", "d_dn", "b * image_out", "s_dn.shape[0]",
                          "run", False, False), 1)
    else:
        head = ("def tiles(src, s_dn, d_dn, scratch, s_al, d_al, dst, n, th, tile_row_in, image_out, base, junk, "
                "run_down, run_along, bias):")
        body = ["groups = s_al.shape[0] // th", "for b in range(n):", "    for ty in range(th):"] + _indent(
            _pass_lines(mat_h, literal, "src", "s_dn", "(b * th + ty) * tile_row_in", "scratch", "d_dn", "0",
                        "s_dn.shape[0]", "run_down", False, False)
            + _pass_lines(mat_w, literal, "scratch", "s_al", "0", "dst", "d_al", "base + b * image_out",
                          "ty * groups, (ty + 1) * groups", "run_along", True, True), 2)
    lines = ["# Generated by convlayer.functional.transforms from Winograd matrices: do not edit.",
             "import numba", "import numpy as np", "", "",
             f"@numba.njit(nogil=True, cache={cache})", head + "  # pragma: no cover - compiled"]
    return "\n".join(lines + _indent(body, 1)) + "\n"


@lru_cache(maxsize=None)
def _compiled(kind: str, key_h: bytes, shape_h, key_w: bytes, shape_w, dtype_name: str):
    mat_h, mat_w = np.frombuffer(key_h).reshape(shape_h), np.frombuffer(key_w).reshape(shape_w)
    source = module_source(kind, mat_h, mat_w, dtype_name, cache=True)
    return codegen.load_module(source, f"winograd_{hashlib.sha1(source.encode()).hexdigest()[:16]}")["tiles"]


def compiled(kind: str, mat_h: np.ndarray, mat_w: np.ndarray, dtype):
    """The compiled ``tiles`` of ``module_source`` for these matrices and ``dtype``."""
    mat_h, mat_w = (np.ascontiguousarray(m, np.float64) for m in (mat_h, mat_w))
    return _compiled(kind, mat_h.tobytes(), mat_h.shape, mat_w.tobytes(), mat_w.shape, np.dtype(dtype).name)
