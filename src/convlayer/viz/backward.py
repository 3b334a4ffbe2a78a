"""The gradients of one convolution, step by step, for ``convlayer explain --backward``.

The totals come from the library: ``functional.conv.conv2d_backward`` gives dx, dkernel and
dbias, and the same backward run on the padded input gives the gradient before the padding is
trimmed. The trace lists the terms behind each total (which input pixel times which output
gradient, where each window's gradient lands) and checks that they add up to the library's
numbers, so the text cannot drift from what ``Conv2D.backward`` computes.

The chain rule for ``output[i, j] = sum_abc padded[i*sv + a, j*sh + b, c] * kernel[a, b, c] + bias``:
``d output[i, j] / d bias = 1``, ``/ d kernel[a, b, c] = padded[i*sv + a, j*sh + b, c]`` and
``/ d padded[i*sv + a, j*sh + b, c] = kernel[a, b, c]``; every number gets ``dy[i, j]`` times
that, summed over the output cells that used it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..functional.conv import conv2d_backward, conv2d_forward
from .explain import format_number, heading_lines, matrix_lines, side_by_side, span, sum_text
from .trace import ConvTrace, Step

DEFAULT_MAX_CELLS = 9  # output cells whose scatter is drawn, beyond which the first SHORT_CELLS are
SHORT_CELLS = 4
CELLS_PER_ROW = 4  # scatter blocks side by side
MAX_TERMS = 25  # write a gradient's terms out up to this many (a 5x5 output); beyond it just the total


@dataclass
class BackwardTrace:
    """One filter's backward pass: the forward it belongs to, dy, and the library's gradients."""

    forward: ConvTrace  # input, kernel, bias, strides, padding, padded input, output, steps (windows)
    dy: np.ndarray  # (Ho, Wo), the gradient of the loss w.r.t. the output
    dbias: float
    dkernel: np.ndarray  # (kh, kw, C)
    dx_padded: np.ndarray  # (Hp, Wp, C), before the padding is trimmed
    dx: np.ndarray  # (H, W, C)

    def kernel_terms(self, a: int, b: int, c: int = 0) -> list[tuple[tuple[int, int], tuple[int, int], float, float]]:
        """dkernel[a, b, c]'s terms: [((i, j), (padded row, padded column), pixel, dy[i, j])] over the windows."""
        return [((step.out_row, step.out_col), (step.rows[a], step.cols[b]), float(step.window[a, b, c]),
                 float(self.dy[step.out_row, step.out_col])) for step in self.forward.steps]

    def scatter(self) -> list[tuple[Step, np.ndarray]]:
        """[(step, dy[i, j] * kernel (kh, kw, C))]: what each output cell sends back onto its window."""
        return [(step, self.dy[step.out_row, step.out_col] * self.forward.kernel) for step in self.forward.steps]

    def landing(self, row: int, col: int, c: int = 0) -> list[tuple[tuple[int, int], tuple[int, int], float, float]]:
        """The contributions to dx_padded[row, col, c]: [((i, j), (a, b), kernel[a, b, c], dy[i, j])]."""
        found = []
        for step in self.forward.steps:
            for a, r in enumerate(step.rows):
                for b, q in enumerate(step.cols):
                    if (r, q) == (row, col):
                        found.append(((step.out_row, step.out_col), (a, b), float(self.forward.kernel[a, b, c]),
                                      float(self.dy[step.out_row, step.out_col])))
        return found

    def coverage(self) -> np.ndarray:
        """(Hp, Wp) how many windows read each padded cell: > 1 where the gradients add up, 0 where none lands."""
        counts = np.zeros(self.dx_padded.shape[:2], int)
        for step in self.forward.steps:
            counts[np.ix_(step.rows, step.cols)] += 1
        return counts


def default_dy(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """(Ho, Wo) small integers -2..2 (not all zero) standing in for the gradient from the layers above.

    >>> default_dy((2, 3)).shape
    (2, 3)
    """
    rng = np.random.default_rng([seed, 2])  # a stream of its own, apart from the input's and kernel's
    while True:
        dy = rng.integers(-2, 3, size=shape).astype(np.float64)
        if dy.any():
            return dy


def trace_backward(forward: ConvTrace, dy=None, *, seed: int = 0) -> BackwardTrace:
    """The gradients of ``forward``'s convolution for the output gradient ``dy``.

    Args:
        forward: from ``trace_convolution`` (zero padding).
        dy: (Ho, Wo) numbers, the output's shape; None for ``default_dy(seed)``.
    Returns:
        A ``BackwardTrace`` whose dbias, dkernel and dx are ``conv2d_backward``'s.

    >>> from convlayer.viz.explain import EXAMPLES
    >>> trace_backward(EXAMPLES[1].trace(), np.array([[2.0]])).dbias
    2.0
    """
    if forward.padding_mode != "zeros":
        raise ValueError(f"--backward explains zero padding only (its gradient is trimmed off); got padding mode "
                         f"'{forward.padding_mode}'. Drop --padding-mode.")
    ho, wo = forward.output.shape
    if dy is None:
        dy = default_dy((ho, wo), seed)
    dy = np.asarray(dy, np.float64)
    if dy.ndim == 3 and dy.shape[2] == 1:
        dy = dy[:, :, 0]
    if dy.shape != (ho, wo):
        raise ValueError(f"dy needs one number per output cell, {ho}x{wo} (the output's shape), got "
                         f"{'x'.join(map(str, dy.shape))}.")
    if not np.isfinite(dy).all():
        raise ValueError("dy must be finite numbers.")
    kernel = forward.kernel[..., None]  # (kh, kw, C, 1): one filter
    bias = np.array([forward.bias])
    settings = dict(strides=forward.strides, dilation=forward.dilation)
    dy4 = dy[None, :, :, None]  # (1, Ho, Wo, 1)
    y, cache = conv2d_forward(forward.input[None], kernel, bias, padding=forward.padding, **settings)
    assert np.allclose(y[0, :, :, 0], forward.output), "backward's forward disagrees with the trace"
    dx, dkernel, dbias = conv2d_backward(dy4, cache)
    # The gradient before the trim: the same backward on the already padded input.
    _, cache_padded = conv2d_forward(forward.padded[None], kernel, bias, padding=((0, 0), (0, 0)), **settings)
    dx_padded, _, _ = conv2d_backward(dy4, cache_padded)
    trace = BackwardTrace(forward, dy, float(dbias[0]), dkernel[..., 0], dx_padded[0], dx[0])
    _check_terms(trace)
    return trace


def _check_terms(trace: BackwardTrace) -> None:
    """The terms the text shows add up to the library's totals."""
    assert np.isclose(trace.dy.sum(), trace.dbias), "dbias is not the sum of dy"
    kh, kw, channels = trace.dkernel.shape
    for a in range(kh):
        for b in range(kw):
            for c in range(channels):
                total = sum(pixel * grad for _, _, pixel, grad in trace.kernel_terms(a, b, c))
                assert np.isclose(total, trace.dkernel[a, b, c]), f"dkernel[{a}, {b}, {c}] terms disagree"
    grid = np.zeros_like(trace.dx_padded)  # (Hp, Wp, C)
    for step, contribution in trace.scatter():
        grid[np.ix_(step.rows, step.cols)] += contribution
    assert np.allclose(grid, trace.dx_padded), "the scatter disagrees with conv2d_backward"
    (top, _), (left, _) = trace.forward.padding
    height, width = trace.dx.shape[:2]
    assert np.allclose(trace.dx_padded[top:top + height, left:left + width], trace.dx), "trim disagrees"


# ---------------------------------------------------------------------------- text


def _product(a: float, b: float) -> str:
    return f"{_parenthesized(a)}*{_parenthesized(b)}"


def _parenthesized(value: float) -> str:
    text = format_number(value)
    return f"({text})" if text.startswith("-") else text


def _sum_of(terms: list[str]) -> str:
    return " + ".join(terms)


def _index(trace: ConvTrace, *names: str) -> str:
    """'a, b' or 'a, b, c' (with channels): how an entry of the kernel or a window is named."""
    return ", ".join(names if trace.input.shape[2] > 1 else names[:2])


def _grids(label: str, array: np.ndarray, mask=None) -> list[str]:
    """One block per channel (H, W, C) -> lines, labelled."""
    channels = array.shape[2]
    if channels == 1:
        return [label] + matrix_lines(array[:, :, 0], mask)
    blocks = [[f"channel {c}"] + matrix_lines(array[:, :, c], mask) for c in range(channels)]
    return [label] + side_by_side(blocks)


def _forward_lines(trace: ConvTrace) -> list[str]:
    (top, bottom), (left, right) = trace.padding
    h, w, _ = trace.input.shape
    kh, kw = trace.kernel.shape[:2]
    hp, wp = trace.padded.shape[:2]
    ho, wo = trace.output.shape
    padding = "no padding" if trace.padding == ((0, 0), (0, 0)) else \
        f"padding '{trace.padding_name}': top {top}, bottom {bottom}, left {left}, right {right}"
    lines = [f"Forward: stride {trace.strides[0]} down, {trace.strides[1]} across; {padding}; bias "
             f"{format_number(trace.bias)}."]
    blocks = [_grids(f"input ({h}x{w})", trace.input), _grids(f"kernel ({kh}x{kw})", trace.kernel)]
    if trace.padding != ((0, 0), (0, 0)):
        blocks.append(_grids(f"padded ({hp}x{wp}; (v) = zero)", trace.padded, trace.padding_mask))
    blocks.append([f"output ({ho}x{wo})"] + matrix_lines(trace.output))
    return lines + ["  " + line for line in side_by_side(blocks)]


def _chain_rule_lines(trace: ConvTrace) -> list[str]:
    sv, sh = trace.strides
    dv, dh = trace.dilation
    a = "a" if dv == 1 else f"a*{dv}"
    b = "b" if dh == 1 else f"b*{dh}"
    c = ", c" if trace.input.shape[2] > 1 else ""
    where = f"padded[i*{sv} + {a}, j*{sh} + {b}{c}]"
    over = "a, b, c" if c else "a, b"
    return [
        f"The chain rule. output[i, j] = sum over {over} of {where} * kernel[{over}] + bias, so",
        "  d output[i, j] / d bias = 1",
        f"  d output[i, j] / d kernel[{over}] = {where}",
        f"  d output[i, j] / d {where} = kernel[{over}]",
        "Each number gets dy[i, j] times that from every output cell (i, j) that used it, added up.",
    ]


def _dbias_lines(trace: BackwardTrace) -> list[str]:
    values = trace.dy.ravel()
    ho, wo = trace.dy.shape
    total = format_number(trace.dbias)
    summed = f"{sum_text(values)} = {total}" if len(values) <= MAX_TERMS else \
        f"the {len(values)} values of dy add up to {total}"
    return [f"1. dbias: the bias is added once at each of the {ho * wo} output positions, so dbias is the sum of "
            "dy over all of them:",
            f"  dbias = {summed}"]


def _dkernel_lines(trace: BackwardTrace) -> list[str]:
    forward = trace.forward
    kh, kw, channels = trace.dkernel.shape
    entry = _index(forward, "a", "b", "c")
    lines = [f"2. dkernel[{entry}]: the kernel entry multiplied one pixel of every window, so it is the sum over the "
             f"windows (i, j) of that pixel times dy[i, j]:"]
    first = trace.kernel_terms(0, 0, 0)
    channel = ", 0" if channels > 1 else ""
    named = [f"padded[{r}, {q}{channel}]*dy[{i}, {j}]" for (i, j), (r, q), _, _ in first]
    if len(named) > 4:
        named = named[:2] + ["..."] + named[-1:]
    lines.append(f"  e.g. dkernel[{_index(forward, '0', '0', '0')}] = {_sum_of(named)}:")
    for a in range(kh):
        for b in range(kw):
            for c in range(channels):
                terms = trace.kernel_terms(a, b, c)
                total = format_number(trace.dkernel[a, b, c])
                summed = f"{_sum_of([_product(p, g) for _, _, p, g in terms])} = {total}" \
                    if len(terms) <= MAX_TERMS else f"the {len(terms)} products add up to {total}"
                lines.append(f"  dkernel[{_index(forward, str(a), str(b), str(c))}] = {summed}")
    lines += ["  " + line for line in _grids(f"dkernel ({kh}x{kw}):", trace.dkernel)]
    return lines


def _scatter_lines(trace: BackwardTrace, max_cells: int) -> list[str]:
    forward = trace.forward
    sv, sh = forward.strides
    kh, kw = forward.kernel.shape[:2]
    padded = forward.padding != ((0, 0), (0, 0))
    grid = "padded rows" if padded else "rows"
    lines = [f"3. dx: output[i, j] read the window at {grid} i*{sv} .. i*{sv} + {(kh - 1) * forward.dilation[0]}, "
             f"columns j*{sh} .. j*{sh} + {(kw - 1) * forward.dilation[1]}; dy[i, j] * kernel goes back onto that "
             "window (the stride decides where it lands):"]
    cells = trace.scatter()
    blocks = []
    for step, contribution in cells[:max_cells]:
        i, j = step.out_row, step.out_col
        blocks.append([f"dy[{i}, {j}] = {format_number(trace.dy[i, j])}",
                       f"rows {span(step.rows)}, cols {span(step.cols)}"]
                      + _grids("", contribution)[1:])
    for start in range(0, len(blocks), CELLS_PER_ROW):
        lines += ["  " + line for line in side_by_side(blocks[start:start + CELLS_PER_ROW], gap="    ")]
    if max_cells < len(cells):
        rest = len(cells) - max_cells
        lines.append(f"  ... {rest} more output cell{'s' if rest > 1 else ''} not shown (--all shows every one, "
                     "--steps N the first N).")
    hp, wp = trace.dx_padded.shape[:2]
    mask = forward.padding_mask
    where = f"the padded grid ({hp}x{wp}; (v) = padding)" if padded else f"the input grid ({hp}x{wp})"
    lines.append(f"  Added up on {where}:")
    lines += ["    " + line for line in _grids("", trace.dx_padded, mask)[1:]]
    lines += _overlap_lines(trace)
    lines += _unused_lines(trace, mask)
    (top, bottom), (left, right) = forward.padding
    height, width = trace.dx.shape[:2]
    if not padded:
        return lines + [f"  No padding, so nothing to trim: that is dx ({height}x{width})."]
    lines.append(f"  Trimmed of the padding (top {top}, bottom {bottom}, left {left}, right {right}): those cells "
                 "are zeros the layer added, not inputs, so their gradient is dropped:")
    return lines + ["    " + line for line in _grids(f"dx ({height}x{width}):", trace.dx)]


def _overlap_lines(trace: BackwardTrace) -> list[str]:
    """Where windows overlap, one cell's sum written out."""
    counts = trace.coverage()
    if counts.max() <= 1:
        return ["  (The windows do not overlap: each cell gets at most one contribution.)"]
    row, col = np.unravel_index(np.argmax(counts), counts.shape)
    terms = trace.landing(int(row), int(col))
    total = format_number(trace.dx_padded[row, col, 0])
    channel = ", 0" if trace.dx.shape[2] > 1 else ""
    named = " + ".join(f"kernel[{a}, {b}{channel}]*dy[{i}, {j}]" for (i, j), (a, b), _, _ in terms)
    numbers = _sum_of([_product(k, g) for _, _, k, g in terms])
    return [f"  Where windows overlap, their contributions add up; e.g. {int(counts.max())} windows cover "
            f"[{row}, {col}{channel}]:",
            f"    {named} = {numbers} = {total}"]


def _unused_lines(trace: BackwardTrace, mask: np.ndarray) -> list[str]:
    unused = (trace.coverage() == 0) & ~mask  # input pixels (not padding) that no window read
    if not unused.any():
        return []
    return [f"  {int(unused.sum())} input pixel{'s' if unused.sum() > 1 else ''} no window read (the stride or the "
            "kernel's size steps over them) get 0."]


def render_backward(trace: BackwardTrace, *, max_cells: int | None = None, title: str = "", note: str = "",
                    dy_note: str = "") -> str:
    """The whole backward explanation of ``trace`` as text (no trailing newline).

    Args:
        trace: from ``trace_backward``.
        max_cells: how many output cells' scatter to draw; None shows all up to ``DEFAULT_MAX_CELLS``,
            else the first ``SHORT_CELLS``.
        title, note: optional heading lines; dy_note: where dy came from.
    """
    count = len(trace.forward.steps)
    if max_cells is None:
        max_cells = count if count <= DEFAULT_MAX_CELLS else SHORT_CELLS
    max_cells = max(0, min(int(max_cells), count))
    lines = heading_lines(title, note)
    lines += _forward_lines(trace.forward)
    lines.append("")
    ho, wo = trace.dy.shape
    lines.append(f"dy = dL/d output ({ho}x{wo}), the gradient coming back from the layers above"
                 + (f" ({dy_note})" if dy_note else "") + ":")
    lines += ["  " + line for line in matrix_lines(trace.dy)]
    lines.append("")
    lines += _chain_rule_lines(trace.forward)
    lines.append("")
    lines += _dbias_lines(trace)
    lines.append("")
    lines += _dkernel_lines(trace)
    lines.append("")
    lines += _scatter_lines(trace, max_cells)
    lines.append("")
    lines.append("These totals are conv2d_backward's, the function Conv2D.backward calls; the terms above add up to "
                 "them.")
    return "\n".join(line.rstrip() for line in lines)
