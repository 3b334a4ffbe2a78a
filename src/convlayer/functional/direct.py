"""Direct convolution: each output pixel's inner product, summed in registers, with no im2col copy.

For a thin layer, im2col costs more than its GEMM: conv1 (one channel, 25 taps) and the
strided layer (16 channels, 144 taps) copy each input value 25 and 9 times into windows that
OpenBLAS then reads once, in products too thin for its kernels. Here a compiled loop walks the
padded input itself, and for ``P`` neighbouring output pixels of one row and ``8 * G`` filters it
keeps ``P * G`` vectors of eight sums in registers (``simd``): for each tap it broadcasts the P
input values, loads G vectors of weights and does ``P * G`` fused multiply-adds; the bias is
the starting value and each sum is stored once. The taps of a kernel row are written out in
the code (``kw`` is fixed per generated function; the channels and kernel rows are loops).

    for each image, output row i, block of 8G filters f0, block of P pixels j:
        acc[p][g] = bias[f0 + 8g : +8]
        for a in kernel rows, c in channels, b in kernel columns (written out):
            acc[p][g] += xp[i*sh + a*dh, (j+p)*sw + b*dw, c] * w[a, b, c, f0 + 8g : +8]
        y[i, j + p, f0 + 8g : +8] = acc[p][g]

Zero padding is part of the loop: each image is copied between zeros into a buffer just
before it is read. Backward works alike (``backward_source``): the kernel gradient sums taps
x filters in registers over the output pixels, reading the padded input in place, and the
input gradient sums each tap's ``dz @ kernel.T`` for pixels x channels and adds it at the
tap's input pixels (no column buffer, no col2im).

Measured on an AMD EPYC (family 25, AVX2), 2 cores, batch 128: conv1's forward 1.2-1.3 ms
against im2col's 2.5-3.1, the strided layer's 1.7-1.8 against 2.9 (about 70 GFLOP/s per core,
what OpenBLAS's SGEMM reaches), its backward 0.83x im2col's time. conv2 (32 channels, 800
taps) runs 1.4x slower than im2col: long inner products are what OpenBLAS's packed kernels do
best, so 'auto' takes this only up to ``MAX_DEPTH`` taps.

Sums are in a different order from im2col's GEMM and use fused multiply-adds, so float32
results differ from it by rounding (a few 1e-7 of the largest output); float64 and groups
go to im2col, and so does the input gradient where the channels are not a multiple of 8.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Callable

import numpy as np

from .. import parallel
from . import codegen, kernels
from .padding import pad_into
from .shapes import Padding2D, conv_output_size

LANES = 8  # float32 values per vector (simd.LANES)
GRAD_BLOCK_IMAGES = 4  # images per block in backward: their dz and padded input stay in L2 (conv1, strided)
GRAD_MAX_BLOCKS = 64  # more images per block beyond that: each block keeps a (K, F) sum of its own
_NOTHING = np.empty((0, 0, 0, 0), np.float32)  # no padded copy: the input is read as it is
MAX_DEPTH = 256  # taps (kh*kw*C) up to which 'auto' prefers this to im2col (measured: 25 and 144 win, 800 loses)


def unsupported(filters: int | None, groups: int, dtype) -> str:
    """Why this cannot compute the layer ('' if it can): it needs numba, float32, one group, filters a multiple of 8.

    ``filters`` and ``dtype`` may be None (not known yet): not checked.
    """
    if not kernels.enabled():
        return "numba is off"
    if groups != 1:
        return f"got groups={groups}"
    if dtype is not None and np.dtype(dtype) != np.float32:
        return f"got {np.dtype(dtype).name}"
    if filters is not None and filters % LANES:
        return f"got {filters} filters"
    return ""


def register_tile(filters: int) -> tuple[int, int]:
    """(P pixels, G vectors of filters) held in registers: 8 sums, as 2x4 or 4x2 or 8x1 (16 AVX2 registers).

    Measured for conv1 and the strided layer: 2x4 fastest (1.25 and 1.93 ms), 4x2 1.41 and 2.06;
    3x4 and 6x2, which fill the registers, spill and run 2-5x slower.
    """
    groups = 4 if filters % 32 == 0 else 2 if filters % 16 == 0 else 1
    return 8 // groups, groups


def _tiles(lines_for, full: int, step_var: str, limit: str, indent: str) -> list[str]:
    """``while`` over tiles of ``full`` along ``step_var`` up to ``limit``, then one tile of the rest (1 .. full-1)."""
    lines = [f"{indent}{step_var} = 0", f"{indent}while {step_var} + {full} <= {limit}:"]
    lines += [indent + "    " + line for line in lines_for(full)] + [f"{indent}    {step_var} += {full}"]
    lines.append(f"{indent}rest = {limit} - {step_var}")
    for rest in range(1, full):
        lines.append(f"{indent}{'if' if rest == 1 else 'elif'} rest == {rest}:")
        lines += [indent + "    " + line for line in lines_for(rest)]
    return lines


def module_source(kw: int, sw: int, dw: int, pixels: int, groups: int) -> str:
    """A module with one compiled function, the sketch in this module's docstring::

        conv(x, pads, dst, per_image, w, b, y, kh, sh, dh)

    x (n, H, W, C), y (n, Ho, Wo, F), w (kh*kw*C*F,) and b (F,) are contiguous float32; F is a
    multiple of 8 * ``groups``. With ``dst`` (n or 1, Hp, Wp, C), each image is first copied
    into it with ``pads`` = (top, left) rows and columns of zeros around it (into its own
    image of ``dst`` when ``per_image``, else into dst[0], reused) and read from there while
    it is in cache; with an empty ``dst``, x is read as the padded input itself.
    """
    def block(p_count: int) -> list[str]:
        lines = [f"xb = base + (i * sh * wp + j * {sw}) * c", "o = ((img * ho + i) * wo + j) * f + f0"]
        for g in range(groups):
            lines.append(f"b{g} = load(b, f0 + {LANES * g})")
            lines += [f"a{p}_{g} = b{g}" for p in range(p_count)]
        body = ["xo = xb + a * dh * row + ch", f"wt = (a * {kw} * c + ch) * f + f0"]
        for tap in range(kw):
            body += [f"x{p} = broadcast(src, xo + {p} * pixel_x + {tap} * tap_x)" for p in range(p_count)]
            for g in range(groups):
                body.append(f"w{g} = load(w, wt + {tap} * tap_w + {LANES * g})")
                body += [f"a{p}_{g} = fma(x{p}, w{g}, a{p}_{g})" for p in range(p_count)]
        lines += ["for a in range(kh):", "    for ch in range(c):"] + ["        " + line for line in body]
        lines += [f"store(out, o + {p} * f + {LANES * g}, a{p}_{g})" for p in range(p_count) for g in range(groups)]
        return lines

    head = [
        "# Generated by convlayer.functional.direct: do not edit.",
        "import numba",
        "",
        "from convlayer.functional.simd import broadcast, fma, load, store",
        "",
        "",
        "@numba.njit(nogil=True, cache=True)",
        "def conv(x, pads, dst, per_image, w, b, y, kh, sh, dh):  # pragma: no cover - compiled",
        "    n, h, wx, c = x.shape",
        "    _, ho, wo, f = y.shape",
        "    copy = dst.size > 0",
        "    top, left = pads",
        "    hp, wp = (dst.shape[1], dst.shape[2]) if copy else (h, wx)",
        "    flat, pad, out = x.reshape(-1), dst.reshape(-1), y.reshape(-1)",
        "    image, run, row = hp * wp * c, wx * c, wp * c",
        f"    pixel_x, tap_x, tap_w = {sw} * c, {dw} * c, c * f",
        "    for img in range(n):",
        "        if copy:",
        "            base = img * image if per_image else 0",
        "            if per_image or img == 0:  # the zeros around the image (a reused image keeps them)",
        "                pad[base:base + top * row] = 0",
        "                pad[base + (top + h) * row:base + image] = 0",
        "                for r in range(top, top + h):",
        "                    pad[base + r * row:base + r * row + left * c] = 0",
        "                    pad[base + r * row + left * c + run:base + (r + 1) * row] = 0",
        "            for r in range(h):  # the image's rows, in vectors: numba's slice copy was 4x slower",
        "                d0, s0 = base + (top + r) * row + left * c, (img * h + r) * run",
        f"                for q in range(0, run - {LANES - 1}, {LANES}):",
        "                    store(pad, d0 + q, load(flat, s0 + q))",
        f"                for q in range(run - run % {LANES}, run):",
        "                    pad[max(d0 + q, 0)] = flat[max(s0 + q, 0)]",
        "            src = pad",
        "        else:",
        "            base = img * image",
        "            src = flat",
        "        for i in range(ho):",
        f"            for f0 in range(0, f, {LANES * groups}):",
    ]
    return "\n".join(head + _tiles(block, pixels, "j", "wo", "                ")) + "\n"


@lru_cache(maxsize=None)
def compiled(kw: int, sw: int, dw: int, pixels: int, groups: int):
    """The compiled ``conv`` of ``module_source`` (compiled on first call, cached on disk by numba)."""
    source = module_source(kw, sw, dw, pixels, groups)
    return codegen.load_module(source, f"direct_{hashlib.sha1(source.encode()).hexdigest()[:16]}")["conv"]


def conv2d(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, strides, padding: Padding2D, dilation,
           padding_mode: str, epilogue: Callable | None, out_hw, max_bytes: int, keep_padded: bool,
           then: Callable | None = None):
    """Cross-correlation of ``x`` (N, H, W, C) with ``kernel`` (kh, kw, C, F) plus ``bias``; see ``conv.conv2d_forward``.

    Returns ``(y, xp)``: y (N, Ho, Wo, F) (None with ``then``) and, with ``keep_padded``, the
    padded input (N, Hp, Wp, C) for backward. Blocks of whole images (``max_bytes`` of output)
    go through the epilogue and ``then`` while in cache. Zero padding is done by the compiled
    loop, image by image, just before the image is read: into ``xp`` when it is kept, else
    into one per-core image. Other padding modes pad each core's images first.
    """
    n, height, width, c = x.shape
    kh, kw, _, f = kernel.shape
    (top, bottom), (left, right) = padding
    pixels, groups = register_tile(f)
    hp, wp = height + top + bottom, width + left + right
    # The compiled loop checks no bounds: every window it reads must lie inside the padded input.
    assert min(top, bottom, left, right) >= 0 and x.dtype == np.float32 and f % (LANES * groups) == 0
    assert tuple(out_hw) == (conv_output_size(height, kh, strides[0], dilation[0], (top, bottom)),
                             conv_output_size(width, kw, strides[1], dilation[1], (left, right))) and min(out_hw) > 0
    padded = bool(top or bottom or left or right)
    fused = padded and padding_mode == "zeros"  # the compiled loop pads each image as it goes
    conv = compiled(kw, strides[1], dilation[1], pixels, groups)
    weights = np.ascontiguousarray(kernel, np.float32).reshape(-1)  # (kh*kw*C*F,)
    bias = np.zeros(f, np.float32) if bias is None else np.ascontiguousarray(bias, np.float32)
    x = np.ascontiguousarray(x)
    xp = np.empty((n, hp, wp, c), np.float32) if padded and (keep_padded or not fused) else x  # (N, Hp, Wp, C)
    y = np.empty((n, *out_hw, f), np.float32) if then is None else None  # (N, Ho, Wo, F)
    pads = (top, left)

    step = parallel.block_size(n, max_bytes // (out_hw[0] * out_hw[1] * f * 4))  # images per block

    def part(blocks: parallel.SharedBlocks) -> None:  # on one core: blocks of images, as they come
        one = np.empty((1, hp, wp, c), np.float32) if fused and not keep_padded else None  # in cache, reused
        y_buf = np.empty((blocks.step, *out_hw, f), np.float32) if then is not None else None
        for b0, b1 in blocks:
            if padded and not fused:
                pad_into(xp[b0:b1], x[b0:b1], padding, padding_mode)
            y_block = y[b0:b1] if then is None else y_buf[:b1 - b0]
            if not fused:
                conv(xp[b0:b1], pads, _NOTHING, False, weights, bias, y_block, kh, strides[0], dilation[0])
            else:
                dst = xp[b0:b1] if keep_padded else one
                conv(x[b0:b1], pads, dst, keep_padded, weights, bias, y_block, kh, strides[0], dilation[0])
            if epilogue is not None:
                epilogue(y_block)
            if then is not None:
                then(y_block, b0)

    parallel.run_blocks(part, n, step)
    return y, xp


# ---------------------------------------------------------------------------- backward


def backward_source(taps: int, groups: int, pixels: int, channel_groups: int) -> str:
    """A module with the two compiled gradient loops of a direct convolution, image by image.

    ``kernel_grad(xp, dz, offsets, dw, db, sh, sw)``: dw (K, F) += sum over output pixels of
    window value k (at ``offsets[k]`` from the window's corner) times dz's F values, for ``taps``
    values of k at a time and 8 * ``groups`` filters; db (F,) += dz summed over pixels.

    ``input_grad(dz, wt, dxp, kh, kw, sh, sw, dh, dw)``: dxp (n, Hp, Wp, C) = the sum, over output
    pixels and taps, of dz's F values times the tap's (F, C) weights ``wt`` (kh*kw*F*C,), added at
    the tap's pixel: ``pixels`` output pixels x 8 * ``channel_groups`` channels of sums in
    registers, over F; then added to dxp (zeroed first, image by image).
    """
    def kernel_tile(t_count: int) -> list[str]:
        lines = []
        for t in range(t_count):
            lines += [f"a{t}_{g} = load(dwf, (k + {t}) * f + f0 + {LANES * g})" for g in range(groups)]
        lines += ["for i in range(ho):", "    for j in range(wo):",
                  "        corner = base + (i * sh * wp + j * sw) * c",
                  "        d = ((img * ho + i) * wo + j) * f + f0"]
        inner = [f"x{t} = broadcast(x, corner + offsets[k + {t}])" for t in range(t_count)]
        for g in range(groups):
            inner.append(f"g{g} = load(dzf, d + {LANES * g})")
            inner += [f"a{t}_{g} = fma(x{t}, g{g}, a{t}_{g})" for t in range(t_count)]
        lines += ["        " + line for line in inner]
        for t in range(t_count):
            lines += [f"store(dwf, (k + {t}) * f + f0 + {LANES * g}, a{t}_{g})" for g in range(groups)]
        return lines

    def input_tile(p_count: int) -> list[str]:
        lines = [f"s{p}_{g} = zeros()" for p in range(p_count) for g in range(channel_groups)]
        lines += ["d = ((img * ho + i) * wo + j) * f", "wt0 = (a * kw + b) * f * c + c0", "for q in range(f):"]
        inner = [f"w{g} = load(wt, wt0 + q * c + {LANES * g})" for g in range(channel_groups)]
        for p in range(p_count):
            inner.append(f"y{p} = broadcast(dzf, d + {p} * f + q)")
            inner += [f"s{p}_{g} = fma(y{p}, w{g}, s{p}_{g})" for g in range(channel_groups)]
        lines += ["    " + line for line in inner]
        lines.append("at = base + ((i * sh + a * dh) * wp + j * sw + b * dw) * c + c0")
        for p in range(p_count):
            for g in range(channel_groups):
                where = f"at + {p} * sw * c + {LANES * g}"
                lines.append(f"store(dxf, {where}, add(load(dxf, {where}), s{p}_{g}))")
        return lines

    head = [
        "# Generated by convlayer.functional.direct: do not edit.",
        "import numba",
        "",
        "from convlayer.functional.simd import add, broadcast, fma, load, store, zeros",
        "",
        "",
        "@numba.njit(nogil=True, cache=True)",
        "def kernel_grad(xp, dz, offsets, dw, db, sh, sw):  # pragma: no cover - compiled",
        "    n, hp, wp, c = xp.shape",
        "    _, ho, wo, f = dz.shape",
        "    x, dzf, dwf = xp.reshape(-1), dz.reshape(-1), dw.reshape(-1)",
        "    taps = offsets.shape[0]",
        "    for img in range(n):",
        "        base = img * hp * wp * c",
        f"        for f0 in range(0, f, {LANES * groups}):",
    ]
    bias = [f"b{g} = load(db, f0 + {LANES * g})" for g in range(groups)]
    bias += ["for px in range(img * ho * wo, (img + 1) * ho * wo):"]
    bias += [f"    b{g} = add(b{g}, load(dzf, px * f + f0 + {LANES * g}))" for g in range(groups)]
    bias += [f"store(db, f0 + {LANES * g}, b{g})" for g in range(groups)]
    lines = head + ["            " + line for line in bias] + _tiles(kernel_tile, taps, "k", "taps", "            ")
    lines += [
        "",
        "",
        "@numba.njit(nogil=True, cache=True)",
        "def input_grad(dz, wt, dxp, kh, kw, sh, sw, dh, dw):  # pragma: no cover - compiled",
        "    n, hp, wp, c = dxp.shape",
        "    _, ho, wo, f = dz.shape",
        "    dzf, dxf = dz.reshape(-1), dxp.reshape(-1)",
        "    for img in range(n):",
        "        base = img * hp * wp * c",
        "        dxf[base:base + hp * wp * c] = 0",
        "        for a in range(kh):",
        "            for b in range(kw):",
        f"                for c0 in range(0, c, {LANES * channel_groups}):",
        "                    for i in range(ho):",
    ]
    lines += _tiles(input_tile, pixels, "j", "wo", "                        ")
    return "\n".join(lines) + "\n"


def grad_tiles(channels: int, filters: int) -> tuple[int, int, int, int]:
    """(taps, groups, pixels, channel_groups) of ``backward_source``: 8 vectors of sums each."""
    groups = register_tile(filters)[1]
    channel_groups = 4 if channels % 32 == 0 else 2 if channels % 16 == 0 else 1
    return 8 // groups, groups, 8 // channel_groups, channel_groups


@lru_cache(maxsize=None)
def compiled_backward(taps: int, groups: int, pixels: int, channel_groups: int):
    """(kernel_grad, input_grad) of ``backward_source``."""
    source = backward_source(taps, groups, pixels, channel_groups)
    module = codegen.load_module(source, f"direct_grad_{hashlib.sha1(source.encode()).hexdigest()[:16]}")
    return module["kernel_grad"], module["input_grad"]


def backward_supported(channels: int, need_dx: bool) -> bool:
    """The input gradient needs channels in vectors of 8; the kernel gradient works for any."""
    return not need_dx or channels % LANES == 0


def conv2d_backward(dy: np.ndarray, xp: np.ndarray, kernel: np.ndarray, strides, dilation, need_dx: bool,
                    epilogue_grad: Callable | None = None):
    """(dxp (N, Hp, Wp, C) or None, dkernel (kh, kw, C, F), dbias (F,)) of a direct convolution.

    ``dy`` (N, Ho, Wo, F) is the gradient w.r.t. the output; ``epilogue_grad(dy_block, index)``,
    if given, turns a block of it into the gradient w.r.t. the convolution's output (see
    ``conv.conv2d_backward``). ``xp`` is the padded input forward kept. Each core takes blocks of
    a few images as they come (``parallel.SharedBlocks``): the epilogue's backward, the kernel
    gradient's sums over the block (one per block, added in order after), then its input
    gradient, all while the block's dz is in cache.
    """
    n, hp, wp, c = xp.shape
    kh, kw, _, f = kernel.shape
    (sh, sw), (dh, dw) = strides, dilation
    taps, groups, pixels, channel_groups = grad_tiles(c, f)
    kernel_grad, input_grad = compiled_backward(taps, groups, pixels, channel_groups)
    offsets = ((np.arange(kh)[:, None, None] * dh * wp + np.arange(kw)[None, :, None] * dw) * c
               + np.arange(c)[None, None, :]).reshape(-1).astype(np.int64)  # (K,): k = (a, b, ch) in HWIO order
    wt = np.ascontiguousarray(kernel.transpose(0, 1, 3, 2), np.float32).reshape(-1) if need_dx else None  # (kh, kw, F, C)
    xp = np.ascontiguousarray(xp)
    dxp = np.empty(xp.shape, np.float32) if need_dx else None

    # Blocks of images fixed by n alone, each summed on its own and the sums added in order: the
    # same numbers bit for bit whichever core took which block, and for any thread count.
    step = max(GRAD_BLOCK_IMAGES, -(-n // GRAD_MAX_BLOCKS))
    dweights = np.zeros((-(-n // step), kh * kw * c, f), np.float32)  # (blocks, K, F)
    dbias = np.zeros((len(dweights), f), np.float32)

    def part(blocks: parallel.SharedBlocks) -> None:  # on one core: blocks of images as they come
        for b0, b1 in blocks:
            dz = dy[b0:b1] if epilogue_grad is None else epilogue_grad(dy[b0:b1], (slice(b0, b1),))
            dz = np.ascontiguousarray(dz, np.float32)  # (b, Ho, Wo, F)
            kernel_grad(xp[b0:b1], dz, offsets, dweights[b0 // step], dbias[b0 // step], sh, sw)
            if need_dx:
                input_grad(dz, wt, dxp[b0:b1], kh, kw, sh, sw, dh, dw)

    parallel.run_blocks(part, n, step)
    return dxp, dweights.sum(axis=0).reshape(kh, kw, c, f), dbias.sum(axis=0)
