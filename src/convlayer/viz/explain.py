"""Text explanations of one convolution, for ``convlayer explain``.

Everything here is a pure function: parsers turn the command line's small matrices,
sizes and paddings into arrays and tuples; ``render_trace`` turns a ``ConvTrace``
(computed by the library in ``viz.trace``) into the text the terminal shows, so tests
compare strings. The lesson's three worked examples live in ``EXAMPLES``.

Matrix syntax: rows separated by ``;`` (or new lines), numbers by spaces or commas,
channels by ``|``. ``"1 2; 3 4 | 5 6; 7 8"`` is a 2x2 input with 2 channels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .trace import ConvTrace, trace_convolution

MATRIX_SYNTAX = "rows separated by ';', numbers by spaces or commas, channels by '|', e.g. \"1 2; 3 4 | 5 6; 7 8\""
DEFAULT_MAX_STEPS = 9  # show every step up to this many; beyond it the first few (``--all`` shows all)
SHORT_STEPS = 4
MAX_SUM_TERMS = 12  # write out "a + b + ..." up to this many products; beyond it just the total
MAX_MAP_WIDTH = 20  # padded width above which the position map is left out


# ---------------------------------------------------------------------------- the lesson's examples


@dataclass(frozen=True)
class Example:
    """One of the lesson's worked examples: the numbers and the convolution's settings."""

    number: int
    title: str
    note: str
    input: tuple  # rows of numbers, (H, W)
    kernel: tuple  # (kh, kw)
    bias: float = 0.0
    strides: tuple = (1, 1)
    padding: str = "valid"

    def trace(self) -> ConvTrace:
        """The example's ``ConvTrace``.

        >>> EXAMPLES[3].trace().padding
        ((0, 1), (0, 1))
        """
        return trace_convolution(np.array(self.input, float), np.array(self.kernel, float), self.bias,
                                 strides=self.strides, padding=self.padding)


# The same numbers as tests/test_conv_lesson.py, where every expected value is worked out by hand.
_FIVE_BY_FIVE = tuple(tuple(range(row * 5, row * 5 + 5)) for row in range(5))  # x[r, c] = 5r + c

EXAMPLES = {
    1: Example(1, "Example 1: a matrix dot product plus a bias",
               "A 3x3 kernel on a 3x3 input: one dot product (the sum of the element-wise products), plus the bias.",
               ((1, 2, 0), (0, 1, 3), (4, 1, 2)), ((1, 0, -1), (2, 1, 0), (0, -1, 3)), bias=0.5),
    2: Example(2, "Example 2: a 3x3 kernel with stride 2 on a 5x5 input",
               "The kernel moves 2 columns right, then 2 rows down: 4 dot products, a 2x2 output.",
               _FIVE_BY_FIVE, ((1, 0, 0), (0, 0, 0), (0, 0, 2)), strides=(2, 2)),
    3: Example(3, "Example 3: a 2x2 kernel with stride 2 and 'same' padding on a 5x5 input",
               "Without padding the last row and column would never be used; 'same' adds the minimum zeros: one "
               "row at the bottom and one column at the right.",
               _FIVE_BY_FIVE, ((1, 1), (1, 1)), strides=(2, 2), padding="same"),
}


# ---------------------------------------------------------------------------- parsing user input


def parse_matrix(text: str, what: str = "input") -> np.ndarray:
    """Parse ``"1 2; 3 4 | 5 6; 7 8"`` into an (H, W, C) float array.

    Args:
        text: rows separated by ';' or new lines, numbers by spaces or commas, channels by '|'.
        what: what the matrix is ('input', 'kernel'), for error messages.
    Returns:
        (H, W, C) float64; C is the number of '|'-separated matrices.

    >>> parse_matrix("1 2; 3 4 | 5 6; 7 8").shape
    (2, 2, 2)
    >>> parse_matrix("1, 2, 3")[..., 0].tolist()
    [[1.0, 2.0, 3.0]]
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{what}: expected numbers ({MATRIX_SYNTAX}), got {text!r}.")
    channels = []
    for c, channel_text in enumerate(text.split("|")):
        rows = [row for row in re.split(r"[;\n]", channel_text) if row.strip()]
        if not rows:
            raise ValueError(f"{what}: channel {c + 1} is empty in {text!r}; give one matrix per channel "
                             f"({MATRIX_SYNTAX}).")
        matrix = []
        for r, row in enumerate(rows):
            values = []
            for token in re.split(r"[,\s]+", row.strip()):
                try:
                    values.append(float(token))
                except ValueError:
                    raise ValueError(f"{what}: {token!r} is not a number (in {text!r}; {MATRIX_SYNTAX}).") from None
            if matrix and len(values) != len(matrix[0]):
                where = f"channel {c + 1}, " if "|" in text else ""
                raise ValueError(f"{what}: {where}row {r + 1} has {len(values)} number{'s' * (len(values) > 1)} "
                                 f"but row 1 has "
                                 f"{len(matrix[0])}; every row needs the same count ({MATRIX_SYNTAX}).")
            matrix.append(values)
        channels.append(np.array(matrix, dtype=np.float64))  # (H, W)
    if any(m.shape != channels[0].shape for m in channels):
        found = ", ".join(f"{m.shape[0]}x{m.shape[1]}" for m in channels)
        raise ValueError(f"{what}: every channel must have the same size, got {found} in {text!r}.")
    array = np.stack(channels, axis=-1)  # (H, W, C)
    if not np.isfinite(array).all():
        raise ValueError(f"{what}: numbers must be finite, got {text!r}.")
    return array


def _two_positive_ints(text, separators: str, message: str) -> tuple[int, int]:
    """Split ``text`` on ``separators`` into one or two positive ints (one is used twice)."""
    parts = [p for p in re.split(separators, str(text).strip().lower()) if p]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise ValueError(f"{message} got {text!r}.")
    return values


def parse_size(text: str, what: str = "size") -> tuple[int, int]:
    """``"5x4"`` -> (5, 4) (rows x columns); ``"5"`` -> (5, 5).

    >>> parse_size("5x4")
    (5, 4)
    """
    return _two_positive_ints(text, r"\s*[x×,]\s*",
                              f"{what} must be ROWSxCOLUMNS of positive integers like 5x5 (or one number),")


def parse_pair(text, what: str) -> tuple[int, int]:
    """``"2"`` -> (2, 2); ``"2,1"`` -> (2, 1) (vertical, horizontal), for strides and dilation.

    >>> parse_pair("2,1", "stride")
    (2, 1)
    """
    return _two_positive_ints(text, r"[,\sx]+",
                              f"{what} must be a positive integer or 'VERTICAL,HORIZONTAL' like 2,1;")


def parse_padding(text):
    """'valid', 'same', or explicit: ``"1"`` (all sides), ``"1,2"`` (rows, columns) or ``"0,1,0,1"``
    (top, bottom, left, right). Returns what ``trace_convolution`` accepts.

    >>> parse_padding("0,1,0,1")
    ((0, 1), (0, 1))
    >>> parse_padding("SAME")
    'same'
    """
    text = str(text).strip().lower()
    if text in ("valid", "same"):
        return text
    parts = [p for p in re.split(r"[,\s]+", text) if p]
    bad = ValueError(f"padding must be 'valid', 'same', N, 'ROWS,COLUMNS' or 'TOP,BOTTOM,LEFT,RIGHT' of "
                     f"non-negative integers; got {text!r}.")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise bad from None
    if len(values) not in (1, 2, 4) or min(values) < 0:
        raise bad
    if len(values) == 1:
        values = values * 4
    elif len(values) == 2:
        values = [values[0], values[0], values[1], values[1]]
    return ((values[0], values[1]), (values[2], values[3]))


def parse_crop(text: str) -> tuple[int, int, int, int]:
    """``"x,y,w,h"`` -> (x, y, w, h): left column, top row, width and height in pixels.

    >>> parse_crop("10,4,6,5")
    (10, 4, 6, 5)
    """
    parts = [p for p in re.split(r"[,\s]+", str(text).strip()) if p]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or min(values[:2]) < 0 or min(values[2:]) < 1:
        raise ValueError(f"crop must be X,Y,W,H (left, top, width, height in pixels; X, Y >= 0 and W, H >= 1), "
                         f"got {text!r}.")
    return values


def random_input(size: tuple[int, int], channels: int = 1, seed: int = 0) -> np.ndarray:
    """(H, W, C) small integers 0..9 from ``np.random.default_rng(seed)``, easy to add up by eye.

    >>> random_input((2, 3), 2).shape
    (2, 3, 2)
    """
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"channels must be a positive integer, got {channels!r}.")
    rng = np.random.default_rng(seed)
    return rng.integers(0, 10, size=(*size, channels)).astype(np.float64)  # (H, W, C)


def random_kernel(size: tuple[int, int], channels: int = 1, seed: int = 0) -> np.ndarray:
    """(kh, kw, C) integers in -1..1, for when only the input is given."""
    rng = np.random.default_rng([seed, 1])  # a different stream from the input's
    return rng.integers(-1, 2, size=(*size, channels)).astype(np.float64)  # (kh, kw, C)


def image_crop(path, crop: tuple[int, int, int, int] | None) -> np.ndarray:
    """A grayscale crop of an image file as (h, w, 1) integers 0..255 (0 = black), as stored in the file.

    Args:
        path: a PNG/JPEG file.
        crop: (x, y, w, h) in pixels, or None for the whole image.
    """
    from ..preprocess import load_image

    gray = np.round(load_image(path) * 255.0)  # (H, W), [0, 255]
    height, width = gray.shape
    if crop is None:
        x, y, w, h = 0, 0, width, height
    else:
        x, y, w, h = crop
        if x + w > width or y + h > height:
            raise ValueError(f"crop {x},{y},{w},{h} reaches column {x + w} and row {y + h} but {path} is only "
                             f"{width}x{height} pixels; pick X + W <= {width} and Y + H <= {height}.")
    return gray[y:y + h, x:x + w, None].astype(np.float64)  # (h, w, 1)


# ---------------------------------------------------------------------------- formatting


def format_number(value: float) -> str:
    """Shortest readable form: integers without '.0', others with up to 4 decimals.

    >>> format_number(3.0), format_number(-0.0), format_number(0.125), format_number(1 / 3)
    ('3', '0', '0.125', '0.3333')
    """
    value = float(value)
    if value == 0:
        return "0"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return np.format_float_positional(value, precision=4, unique=True, trim="-")


def matrix_lines(matrix: np.ndarray, marked: np.ndarray | None = None) -> list[str]:
    """Rows of a 2-D matrix, aligned on the decimal point; cells where ``marked`` is True are ``(v)``.

    >>> matrix_lines(np.array([[1, 10], [0, 2]]), np.array([[False, False], [True, False]]))
    ['  1   10', ' (0)   2']
    >>> matrix_lines(np.array([[0.25, 1.5], [0, 2]]), np.array([[False, False], [True, False]]))
    [' 0.25   1.5', '(0)     2']
    """
    cells = [[format_number(v).partition(".") for v in row] for row in np.asarray(matrix)]
    if marked is None:
        marked = np.zeros(np.shape(matrix), bool)
    whole = max(len(i) for row in cells for i, _, _ in row)
    frac = max((len(f) + 1 if f else 0) for row in cells for _, _, f in row)

    def cell(parts, mark):
        integer, dot, fraction = parts
        number = integer.rjust(whole) + (dot + fraction)
        start, end = whole - len(integer), len(number)  # the number's first and past-last columns
        text = list(" " + number.ljust(whole + frac) + " ")
        if mark:  # the parentheses hug the number; its digits stay in their columns
            text[start], text[end + 1] = "(", ")"
        return "".join(text)

    return [" ".join(cell(parts, mark) for parts, mark in zip(row, mrow)).rstrip()
            for row, mrow in zip(cells, marked)]


def side_by_side(blocks: list[list[str]], gap: str = "   ") -> list[str]:
    """Join blocks of lines horizontally, top-aligned, each padded to its own width.

    >>> side_by_side([["a", "bb"], ["c"]])
    ['a    c', 'bb']
    """
    height = max(len(b) for b in blocks)
    widths = [max((len(line) for line in b), default=0) for b in blocks]
    lines = []
    for i in range(height):
        parts = [(b[i] if i < len(b) else "").ljust(w) for b, w in zip(blocks, widths)]
        lines.append(gap.join(parts).rstrip())
    return lines


def _operator(symbol: str, height: int, row: int) -> list[str]:
    """A one-character column with ``symbol`` on ``row`` (the row below the block labels)."""
    return [symbol if i == row else " " for i in range(height)]


def _labelled(label: str, lines: list[str]) -> list[str]:
    return [label] + lines


def span(indices: list[int]) -> str:
    """'2-4' for consecutive rows or columns, else '0, 2, 4' (dilation); one index alone."""
    if len(indices) > 1 and all(b - a == 1 for a, b in zip(indices, indices[1:])):
        return f"{indices[0]}-{indices[-1]}"
    return ", ".join(str(i) for i in indices) if len(indices) > 1 else str(indices[0])


def sum_text(terms) -> str:
    """'2 - 2 - 1 + 0': the numbers added, negatives written as subtraction."""
    terms = [float(t) for t in terms]
    text = format_number(terms[0])
    for t in terms[1:]:
        text += f" - {format_number(-t)}" if t < 0 else f" + {format_number(t)}"
    return text


def _position_map(trace: ConvTrace, step) -> list[str]:
    """The padded grid: '#' under the kernel, '.' input pixel, '+' padding."""
    padding = trace.padding_mask
    window = np.zeros_like(padding)
    window[np.ix_(step.rows, step.cols)] = True
    return [" ".join("#" if w else ("+" if p else ".") for w, p in zip(wrow, prow))
            for wrow, prow in zip(window, padding)]


def _describe_settings(trace: ConvTrace) -> list[str]:
    (top, bottom), (left, right) = trace.padding
    mode = "" if trace.padding_mode == "zeros" else f", padding_mode='{trace.padding_mode}'"
    lines = [
        f"Bias: {format_number(trace.bias)}",
        f"Stride: {trace.strides[0]} down, {trace.strides[1]} across"
        + ("" if trace.dilation == (1, 1) else
           f"   Dilation: {trace.dilation[0]} down, {trace.dilation[1]} across (the kernel's taps are "
           f"{trace.dilation[0]} rows and {trace.dilation[1]} columns apart)"),
        f"Padding: '{trace.padding_name}'{mode} -> top {top}, bottom {bottom}, left {left}, right {right}, "
        f"i.e. {trace.padding}",
    ]
    lines += [f"  {reason}" for reason in trace.padding_reason]
    return lines


def _input_blocks(trace: ConvTrace) -> list[str]:
    (height, width, channels) = trace.input.shape
    kh, kw = trace.kernel.shape[:2]
    plural = "channel" if channels == 1 else "channels"
    lines = [f"Input ({height}x{width}, {channels} {plural}):"]
    if channels == 1:
        lines += ["  " + line for line in matrix_lines(trace.input[:, :, 0])]
        lines += [f"Kernel ({kh}x{kw}):"]
        lines += ["  " + line for line in matrix_lines(trace.kernel[:, :, 0])]
        return lines
    blocks = [_labelled(f"channel {c}", matrix_lines(trace.input[:, :, c])) for c in range(channels)]
    lines += ["  " + line for line in side_by_side(blocks)]
    lines += [f"Kernel ({kh}x{kw}, one matrix per input channel):"]
    blocks = [_labelled(f"channel {c}", matrix_lines(trace.kernel[:, :, c])) for c in range(channels)]
    lines += ["  " + line for line in side_by_side(blocks)]
    return lines


def _padded_block(trace: ConvTrace) -> list[str]:
    hp, wp, channels = trace.padded.shape
    if trace.padding == ((0, 0), (0, 0)):
        return ["No padding: the kernel moves over the input itself."]
    mask = trace.padding_mask
    what = "(v) = zero padding" if trace.padding_mode == "zeros" else f"(v) = padding ({trace.padding_mode})"
    lines = [f"Padded input ({hp}x{wp}; {what}):"]
    blocks = [matrix_lines(trace.padded[:, :, c], mask) for c in range(channels)]
    if channels > 1:
        blocks = [_labelled(f"channel {c}", b) for c, b in enumerate(blocks)]
    return lines + ["  " + line for line in side_by_side(blocks)]


def _step_lines(trace: ConvTrace, index: int, show_map: bool) -> list[str]:
    step = trace.steps[index]
    channels = trace.input.shape[2]
    where = "padded rows" if trace.padding != ((0, 0), (0, 0)) else "rows"
    lines = [f"Step {index + 1} of {len(trace.steps)}: output[{step.out_row}, {step.out_col}] - the kernel covers "
             f"{where} {span(step.rows)}, columns {span(step.cols)}"]
    padding = trace.padding_mask[np.ix_(step.rows, step.cols)]  # (kh, kw)
    map_block = _labelled("position", _position_map(trace, step)) if show_map else None
    for c in range(channels):
        window = _labelled("window", matrix_lines(step.window[:, :, c], padding))
        kernel = _labelled("kernel", matrix_lines(trace.kernel[:, :, c]))
        products = _labelled("products", matrix_lines(step.products[:, :, c]))
        height = max(len(window), len(kernel))
        blocks = [window, _operator("*", height, 1), kernel, _operator("=", height, 1), products]
        if map_block is not None:
            blocks.insert(0, map_block if c == 0 else [" " * len(map_block[1])])
        if channels > 1:
            lines.append(f"  channel {c}:")
        lines += ["    " + line if channels > 1 else "  " + line for line in side_by_side(blocks)]
        terms = step.products[:, :, c].ravel()
        total = format_number(step.channel_sums[c])
        summed = f"{sum_text(terms)} = {total}" if len(terms) <= MAX_SUM_TERMS else \
            f"the {len(terms)} products add up to {total}"
        indent = "    " if channels > 1 else "  "
        lines.append(f"{indent}sum of products: {summed}")
    bias = format_number(trace.bias)
    if channels == 1:
        lines.append(f"  plus bias {bias}: {sum_text([step.channel_sums[0], trace.bias])} = "
                     f"{format_number(step.total)}   -> output[{step.out_row}, {step.out_col}] = "
                     f"{format_number(step.total)}")
    else:
        lines.append(f"  channel sums plus bias: {sum_text(list(step.channel_sums) + [trace.bias])} = "
                     f"{format_number(step.total)}   -> output[{step.out_row}, {step.out_col}] = "
                     f"{format_number(step.total)}")
    return lines


def render_step(trace: ConvTrace, out_row: int, out_col: int, *, show_map: bool = True) -> str:
    """One output position of ``trace`` as text: the window, the products, their sum plus the bias.

    For answers that explain a single cell (``convlayer quiz``); ``render_trace`` shows them all.

    >>> render_step(EXAMPLES[1].trace(), 0, 0).splitlines()[-1]
    '  plus bias 0.5: 7 + 0.5 = 7.5   -> output[0, 0] = 7.5'
    """
    if not (0 <= out_row < trace.output.shape[0] and 0 <= out_col < trace.output.shape[1]):
        raise ValueError(f"output[{out_row}, {out_col}] is outside the {trace.output.shape[0]}x"
                         f"{trace.output.shape[1]} output.")
    index = out_row * trace.output.shape[1] + out_col  # steps are in row-major order
    show_map = show_map and trace.padded.shape[1] <= MAX_MAP_WIDTH
    return "\n".join(line.rstrip() for line in _step_lines(trace, index, show_map))


def heading_lines(title: str = "", note: str = "") -> list[str]:
    """A title underlined, a note, and a blank line after them (nothing when both are empty)."""
    lines = ([title, "=" * len(title)] if title else []) + ([note] if note else [])
    return lines + [""] if lines else []


def render_trace(trace: ConvTrace, *, max_steps: int | None = None, title: str = "", note: str = "") -> str:
    """The whole explanation of ``trace`` as text (no trailing newline).

    Args:
        trace: from ``trace_convolution``.
        max_steps: how many output positions to spell out; None shows all of them when there are
            at most ``DEFAULT_MAX_STEPS``, else the first ``SHORT_STEPS``.
        title, note: optional heading lines.
    Returns:
        Lines: the input and kernel, the settings and why the padding is what it is, the padded
        input (padding cells in parentheses), the output-size formula, each step (window,
        element-wise products, their sum plus the bias) and the output matrix.

    >>> text = render_trace(EXAMPLES[1].trace())
    >>> text.splitlines()[-1].strip()
    '7.5'
    """
    count = len(trace.steps)
    if max_steps is None:
        max_steps = count if count <= DEFAULT_MAX_STEPS else SHORT_STEPS
    max_steps = max(0, min(int(max_steps), count))
    show_map = trace.padded.shape[1] <= MAX_MAP_WIDTH and trace.padded.shape[:2] != trace.kernel.shape[:2]
    lines = heading_lines(title, note)
    lines += _input_blocks(trace)
    lines += _describe_settings(trace)
    lines.append("")
    lines += _padded_block(trace)
    lines.append("")
    ho, wo = trace.output.shape
    lines.append(f"Output size ({ho}x{wo}) = floor((in + pad_before + pad_after - kernel_span) / stride) + 1:")
    lines += [f"  {formula}" for formula in trace.formulas]
    if show_map:
        lines.append("")
        padded = "" if trace.padding == ((0, 0), (0, 0)) else ", '+' = padding; (v) = padding value"
        lines.append(f"In each step: position '#' = under the kernel, '.' = input pixel{padded}.")
    for index in range(max_steps):
        lines.append("")
        lines += _step_lines(trace, index, show_map)
    if max_steps < count:
        lines.append("")
        lines.append(f"... {count - max_steps} more step{'s' if count - max_steps > 1 else ''} not shown "
                     f"(--all shows every step, --steps N the first N).")
    lines.append("")
    lines.append(f"Output ({ho}x{wo}):")
    lines += ["  " + line for line in matrix_lines(trace.output)]
    return "\n".join(line.rstrip() for line in lines)
