"""``convlayer quiz``: the lesson's rules as questions on small random convolutions.

Three kinds of question, each on a fresh small case (small integers, one channel, one filter):
the value of one output cell, the 'same' padding on each side, the output shape. The right
answers come from the library (``viz.trace`` runs ``conv2d_forward``, the padding and sizes come
from ``functional.shapes``). A wrong answer is compared with what each classic mistake gives, the
cell's value by ``mistakes.mistakes_giving``, the padding and the shape by the classic wrong
formulas below, and the right answer is explained with the trace.

Answers are read from stdin, one per line: typed at a prompt, or piped
(``printf '12\\n0 1 0 1\\n3 2\\n' | convlayer quiz --seed 3``). The end of the input ends the quiz
with the score so far.
"""

from __future__ import annotations

import re
import secrets
import sys
from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import numpy as np

from ..clitools import UsageError
from ..functional import shapes
from ..viz.explain import format_number, matrix_lines, render_step, side_by_side
from ..viz.trace import ConvTrace, trace_convolution
from . import mistakes

KINDS = ("value", "padding", "shape")
QUIT = ("q", "quit", "exit")
KERNEL_SIZES = ((2, 2), (2, 3), (3, 2), (3, 3))  # a value question leaves out 3x3: fewer products to add
STRIDES = ((1, 1), (2, 2), (1, 2), (2, 1))


# ---------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    """One small convolution: x (H, W), kernel (kh, kw), one filter."""

    x: np.ndarray  # (H, W)
    kernel: np.ndarray  # (kh, kw)
    bias: float
    strides: tuple[int, int]
    padding: str  # 'valid' or 'same'

    def trace(self) -> ConvTrace:
        return trace_convolution(self.x, self.kernel, self.bias, strides=self.strides, padding=self.padding)

    def settings(self) -> str:
        sv, sh = self.strides
        stride = f"stride {sv}" if sv == sh else f"stride {sv} down and {sh} across"
        return f"bias {format_number(self.bias)}, {stride}, padding '{self.padding}'"

    def sizes(self) -> str:
        (h, w), (kh, kw) = self.x.shape, self.kernel.shape
        return f"input {h}x{w}, kernel {kh}x{kw}, " + self.settings()

    def explain_command(self) -> str:
        """The ``convlayer explain`` command that spells out this very case."""
        def matrix(m):
            return "; ".join(" ".join(format_number(v) for v in row) for row in m)

        return (f'convlayer explain --input "{matrix(self.x)}" --kernel "{matrix(self.kernel)}" '
                f"--bias {format_number(self.bias)} --stride {self.strides[0]},{self.strides[1]} "
                f"--padding {self.padding} --all")


def _kernel(rng, shape) -> np.ndarray:
    while True:  # no symmetry, so that flipped or transposed it gives other numbers
        k = rng.integers(-2, 4, size=shape).astype(float)
        if np.all(k != 0) and not np.array_equal(k, k[::-1, ::-1]) and len(np.unique(k)) > 2:
            return k


def _case(rng, *, padding=None, sizes=(3, 5), kernel_sizes=KERNEL_SIZES) -> Case:
    kh, kw = kernel_sizes[rng.integers(len(kernel_sizes))]
    h, w = (int(rng.integers(max(sizes[0], k), sizes[1] + 1)) for k in (kh, kw))
    strides = STRIDES[rng.integers(len(STRIDES))]
    padding = padding or ("valid", "same")[rng.integers(2)]
    bias = float(rng.choice([-3, -2, -1, 1, 2, 3]))
    return Case(rng.integers(0, 10, size=(h, w)).astype(float), _kernel(rng, (kh, kw)), bias, strides, padding)


def _mistake(name: str) -> mistakes.Mistake:
    """A mistake of the catalogue, by name (its rule is the lesson's)."""
    return next(m for m in mistakes.FORWARD if m.name == name)


# ---------------------------------------------------------------------------- wrong answers


@dataclass(frozen=True)
class Slip:
    """A classic wrong way to get a padding or a shape: a name, what it does, the rule it breaks."""

    name: str
    says: str
    rule: str
    compute: Callable  # (case, axis) -> that axis' wrong answer, or (case) -> the whole answer when whole=True
    whole: bool = False


def _axis(case: Case, axis: int):
    """(input size, kernel size, stride) of axis 0 (rows) or 1 (columns)."""
    return case.x.shape[axis], case.kernel.shape[axis], case.strides[axis]


def _same_pair(total: int) -> tuple[int, int]:
    return total // 2, total - total // 2


def _floor_total(case, axis):
    n, k, s = _axis(case, axis)
    return max((n // s - 1) * s + k - n, 0)


def _same_total(case, axis):
    n, k, s = _axis(case, axis)
    return sum(shapes.same_padding(n, k, s))


def _transposed_kernel(case: Case) -> Case:
    return Case(case.x, case.kernel.T, case.bias, case.strides, case.padding)


def _padding_answer(case: Case) -> tuple[int, ...]:
    (top, bottom), (left, right) = shapes.resolve_padding(case.padding, case.x.shape, case.kernel.shape, case.strides,
                                                          (1, 1))
    return top, bottom, left, right


PADDING_SLIPS = (
    Slip("odd padding at the top/left", "the odd extra zero put at the top/left instead of the bottom/right",
         _mistake("odd padding at the top/left").rule, lambda c, a: _same_pair(_same_total(c, a))[::-1]),
    Slip("padding split symmetrically", "(k - 1) // 2 zeros on each side, the habit from odd kernels",
         _mistake("padding split symmetrically").rule, lambda c, a: ((_axis(c, a)[1] - 1) // 2,) * 2),
    Slip("the odd zero dropped", "total // 2 on both sides, which loses the odd zero",
         _mistake("padding split symmetrically").rule, lambda c, a: (_same_total(c, a) // 2,) * 2),
    Slip("the odd zero on both sides", "ceil(total / 2) on both sides, one zero too many",
         _mistake("padding split symmetrically").rule, lambda c, a: (-(-_same_total(c, a) // 2),) * 2),
    Slip("the whole total on each side", "the total padding added on each side instead of split between them",
         _mistake("padding split symmetrically").rule, lambda c, a: (_same_total(c, a),) * 2),
    Slip("all the zeros at the bottom/right", "the whole total after the input, none before",
         _mistake("padding split symmetrically").rule, lambda c, a: (0, _same_total(c, a))),
    Slip("all the zeros at the top/left", "the whole total before the input, none after",
         _mistake("padding split symmetrically").rule, lambda c, a: (_same_total(c, a), 0)),
    Slip("full padding", "k - 1 zeros on each side, the padding of a 'full' convolution",
         _mistake("wrong padding total").rule, lambda c, a: (_axis(c, a)[1] - 1,) * 2),
    Slip("wrong padding total", "a total of k - 1 (stride 1's) whatever the stride",
         _mistake("wrong padding total").rule, lambda c, a: _same_pair(_axis(c, a)[1] - 1)),
    Slip("floor instead of ceil", "padding for floor(in / stride) outputs; 'same' keeps ceil(in / stride)",
         _mistake("wrong padding total").rule, lambda c, a: _same_pair(_floor_total(c, a))),
    Slip("padding not applied", "no zeros at all, as for 'valid'", _mistake("padding not applied").rule,
         lambda c, a: (0, 0)),
    Slip("kernel height and width swapped", "the padding of a kernel read as (kw, kh)",
         _mistake("kernel height and width swapped").rule, lambda c: _padding_answer(_transposed_kernel(c)), True),
    Slip("rows and columns swapped", "the columns' padding given first",
         "the order asked is top, bottom (the rows) then left, right (the columns).",
         lambda c: _padding_answer(c)[2:] + _padding_answer(c)[:2], True),
)


def _size(case: Case, axis: int, pads=None) -> int:
    n, k, s = _axis(case, axis)
    pads = _padding_answer(case)[2 * axis:2 * axis + 2] if pads is None else pads
    return shapes.conv_output_size(n, k, s, 1, pads)


def _shape_answer(case: Case) -> tuple[int, int]:
    return _size(case, 0), _size(case, 1)


def _rounded_up(case, axis):
    n, k, s = _axis(case, axis)
    p = sum(_padding_answer(case)[2 * axis:2 * axis + 2])
    return -(-(n + p - k) // s) + 1


def _stride_one(case, axis):
    n, k, _ = _axis(case, axis)
    return n if case.padding == "same" else n - k + 1


def _no_plus_one(case, axis):
    n, k, s = _axis(case, axis)
    p = sum(_padding_answer(case)[2 * axis:2 * axis + 2])
    return (n + p - k) // s


def _same_floor(case, axis):
    n, _, s = _axis(case, axis)
    return n // s if case.padding == "same" else None


def _same_rule_for_valid(case, axis):
    n, _, s = _axis(case, axis)
    return -(-n // s) if case.padding == "valid" else None


_SIZE = _mistake("output size rounded up").rule

SHAPE_SLIPS = (
    Slip("output size rounded up", "ceil instead of floor: a last window that runs past the edge", _SIZE,
         _rounded_up),
    Slip("stride ignored", "the size for stride 1", _mistake("stride ignored").rule, _stride_one),
    Slip("the + 1 forgotten", "floor((in + pads - k) / stride) without the + 1 for the first window", _SIZE,
         _no_plus_one),
    Slip("floor instead of ceil", "floor(in / stride) for 'same'", "'same' keeps ceil(in / stride) outputs.",
         _same_floor),
    Slip("padding not applied", "the size for 'valid' (no zeros) where 'same' was asked", _SIZE,
         lambda c, a: _size(c, a, (0, 0)) if c.padding == "same" else None),
    Slip("the ceil rule for valid", "ceil(in / stride), the 'same' size, where 'valid' was asked",
         "'valid' adds no zeros: " + _SIZE, _same_rule_for_valid),
    Slip("kernel height and width swapped", "the shape for a kernel read as (kw, kh)",
         _mistake("kernel height and width swapped").rule, lambda c: _shape_answer(_transposed_kernel(c)), True),
    Slip("strides swapped", "the shape for strides (sh, sv)", _mistake("strides swapped").rule,
         lambda c: _shape_answer(Case(c.x, c.kernel, c.bias, c.strides[::-1], c.padding)), True),
    Slip("rows and columns swapped", "(columns, rows) instead of (rows, columns)",
         "a shape is given rows first, then columns, like the input's.", lambda c: _shape_answer(c)[::-1], True),
)


def _matching_slips(slips, case: Case, given: tuple, right: tuple, per_axis: int) -> tuple[list[str], list[str]]:
    """(lines naming the slips that give ``given``, notes): whole answers first, else per wrong axis."""
    def answer_of(slip):
        if slip.whole:
            return tuple(slip.compute(case))
        parts = [_as_tuple(slip.compute(case, axis)) for axis in (0, 1)]
        return None if None in parts else parts[0] + parts[1]

    whole = [s for s in slips if answer_of(s) == given]
    if whole:
        return [f"{format_answer(given)} is what '{s.name}' gives: {s.says}. The rule: {s.rule}" for s in whole], []
    named, notes, unnamed = [], [], []
    for axis, name in ((0, "rows"), (1, "columns")):
        part = slice(axis * per_axis, (axis + 1) * per_axis)
        if given[part] == right[part]:
            notes.append(f"The {name} are right.")
            continue
        found = [f"For the {name}, {format_answer(given[part])} is what '{slip.name}' gives: {slip.says}. The rule: "
                 f"{slip.rule}" for slip in slips
                 if not slip.whole and _as_tuple(slip.compute(case, axis)) == given[part]]
        named += found
        if not found:
            unnamed.append(f"For the {name}, no classic mistake gives {format_answer(given[part])}.")
    return named, notes + (unnamed if named else [])


def _as_tuple(value):
    return value if value is None or isinstance(value, tuple) else (value,)


def _value_slips(case: Case, trace: ConvTrace, cell: tuple[int, int], given: float) -> list[str]:
    """Lines naming what gives ``given`` instead of output[cell]: the catalogue, another cell, a slipped term."""
    i, j = cell
    x4, k4 = case.x[None, :, :, None], case.kernel[:, :, None, None]  # (1, H, W, 1), (kh, kw, 1, 1)
    found = mistakes.mistakes_giving(given, (0, i, j, 0), x4, k4, np.array([case.bias]), case.strides, case.padding)
    lines = [f"{format_number(given)} is what '{m.name}' gives: {m.says}. The rule: {m.rule}" for m in found]
    if lines:
        return lines
    others = [(r, c) for r in range(trace.output.shape[0]) for c in range(trace.output.shape[1])
              if (r, c) != cell and np.isclose(trace.output[r, c], given)]
    if others:
        r, c = others[0]
        return [f"{format_number(given)} is output[{r}, {c}]: the window at the wrong position. output[i, j]'s window "
                f"starts at (padded) row i * {case.strides[0]}, column j * {case.strides[1]}."]
    step = trace.steps[i * trace.output.shape[1] + j]
    for a in range(step.products.shape[0]):
        for b in range(step.products.shape[1]):
            p = float(step.products[a, b, 0])
            if p and np.isclose(step.total - p, given):
                return [f"{format_number(given)} is the sum with one product left out: window[{a}, {b}] * kernel[{a}, "
                        f"{b}] = {format_number(p)}."]
            if p and np.isclose(step.total - 2 * p, given):
                return [f"{format_number(given)} is the sum with one product's sign flipped: window[{a}, {b}] * "
                        f"kernel[{a}, {b}] = {format_number(p)}."]
    return []


# ---------------------------------------------------------------------------- questions


def format_answer(values) -> str:
    return " ".join(format_number(v) for v in values)


@dataclass
class Question:
    kind: str  # 'value', 'padding' or 'shape'
    case: Case
    cell: tuple[int, int] | None = None  # for 'value'

    @cached_property
    def trace(self) -> ConvTrace:
        return self.case.trace()

    @property
    def answer(self) -> tuple:
        """The right answer, from the library: output[cell], the padding amounts, or the output shape."""
        trace = self.trace
        if self.kind == "value":
            return (float(trace.output[self.cell]),)
        if self.kind == "padding":
            (top, bottom), (left, right) = trace.padding
            return top, bottom, left, right
        return tuple(trace.output.shape)

    @property
    def expected(self) -> str:
        """The answer's format, in words."""
        return {"value": "one number, e.g. 12 or -3.5",
                "padding": "four whole numbers: top bottom left right, e.g. 0 1 1 1",
                "shape": "two whole numbers: rows columns, e.g. 3 4 or 3x4"}[self.kind]

    def prompt(self) -> list[str]:
        case = self.case
        if self.kind == "value":
            (h, w), (kh, kw) = case.x.shape, case.kernel.shape
            blocks = [[f"input ({h}x{w})"] + matrix_lines(case.x), [f"kernel ({kh}x{kw})"] + matrix_lines(case.kernel)]
            return ([f"What is output[{self.cell[0]}, {self.cell[1]}]?"]
                    + ["  " + line for line in side_by_side(blocks, gap="     ")]
                    + [f"  {case.settings()}"])
        if self.kind == "padding":
            return ["How many zeros does 'same' padding add on each side (top, bottom, left, right)?",
                    f"  {case.sizes()}"]
        return ["What is the output's shape (rows, columns)?", f"  {case.sizes()}"]

    def parse(self, text: str) -> tuple:
        """The answer in ``text``; ValueError when it is not in the expected format."""
        parts = [p for p in re.split(r"[\s,;x×()\[\]]+", text.strip().lower()) if p]
        count = {"value": 1, "padding": 4, "shape": 2}[self.kind]
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            numbers = None
        if numbers is None or len(numbers) != count or not all(np.isfinite(numbers)):
            raise ValueError(self.expected)
        if self.kind == "value":
            return (numbers[0],)
        if not all(v.is_integer() and v >= 0 for v in numbers):
            raise ValueError(self.expected)
        return tuple(int(v) for v in numbers)

    def is_right(self, given: tuple) -> bool:
        return len(given) == len(self.answer) and bool(np.allclose(given, self.answer, rtol=0, atol=1e-6))

    def diagnose(self, given: tuple) -> list[str]:
        """What gives ``given``: the named mistakes (or a note that none does)."""
        if self.kind == "value":
            named, notes = _value_slips(self.case, self.trace, self.cell, given[0]), []
        elif self.kind == "padding":
            named, notes = _matching_slips(PADDING_SLIPS, self.case, given, self.answer, 2)
        else:
            named, notes = _matching_slips(SHAPE_SLIPS, self.case, given, self.answer, 1)
        if not named:
            notes.append(f"No classic mistake gives {format_answer(given)}; compare your steps with these.")
        return notes + named

    def explanation(self) -> list[str]:
        """The right answer worked out, from the trace."""
        trace = self.trace
        if self.kind == "value":
            whole_input = trace.padded.shape[:2] == trace.kernel.shape[:2]  # one window: no map needed
            lines = render_step(trace, *self.cell, show_map=not whole_input).splitlines()
        elif self.kind == "padding":
            lines = [f"  {reason}" for reason in trace.padding_reason]
        else:
            (top, bottom), (left, right) = trace.padding
            lines = [f"  padding '{trace.padding_name}': top {top}, bottom {bottom}, left {left}, right {right}"]
            if trace.padding_name == "same":
                (h, w), (sv, sh) = self.case.x.shape, self.case.strides
                rows, cols = shapes.same_output_size(h, sv), shapes.same_output_size(w, sh)
                lines.append(f"  'same' keeps ceil(in / stride) outputs: ceil({h} / {sv}) = {rows} rows, "
                             f"ceil({w} / {sh}) = {cols} columns; the formula agrees:")
            lines += [f"  {formula}" for formula in trace.formulas]
        return lines + [f"  The whole trace: {self.case.explain_command()}"]


def _value_cell(rng, case: Case) -> tuple[int, int]:
    """A cell where the kernel flipped gives another number (so that mistake can be told apart)."""
    right = case.trace().output  # (Ho, Wo)
    flipped = _mistake("kernel flipped").compute(case.x[None, :, :, None], case.kernel[:, :, None, None],
                                                  np.array([case.bias]), case.strides, case.padding)[0, :, :, 0]
    cells = [(i, j) for i in range(right.shape[0]) for j in range(right.shape[1]) if right[i, j] != flipped[i, j]]
    cells = cells or [(i, j) for i in range(right.shape[0]) for j in range(right.shape[1])]
    return cells[rng.integers(len(cells))]


def _padding_case(rng) -> Case:
    while True:  # at least one odd total, where the bottom/right rule decides
        case = _case(rng, padding="same", sizes=(3, 6))
        if any(_same_total(case, axis) % 2 for axis in (0, 1)):
            return case


def _has_remainder(case: Case, axis: int) -> bool:
    """The stride does not divide evenly: floor and ceil give different sizes."""
    n, k, s = _axis(case, axis)
    return (n % s if case.padding == "same" else (n - k) % s) != 0


def _shape_case(rng) -> Case:
    while True:  # a stride > 1 with a remainder, where rounding the wrong way shows
        case = _case(rng, sizes=(4, 7))
        case = Case(case.x, case.kernel, case.bias, (int(rng.integers(1, 4)), int(rng.integers(1, 4))), case.padding)
        if any(_has_remainder(case, axis) for axis in (0, 1)):
            return case


def make_questions(seed: int, count: int) -> list[Question]:
    """``count`` questions, cycling value, padding, shape; the same ``seed`` gives the same questions.

    >>> [q.kind for q in make_questions(3, 4)]
    ['value', 'padding', 'shape', 'value']
    """
    rng = np.random.default_rng(seed)
    questions = []
    for n in range(count):
        kind = KINDS[n % len(KINDS)]
        if kind == "value":
            case = _case(rng, kernel_sizes=KERNEL_SIZES[:3])
            questions.append(Question(kind, case, _value_cell(rng, case)))
        elif kind == "padding":
            questions.append(Question(kind, _padding_case(rng)))
        else:
            questions.append(Question(kind, _shape_case(rng)))
    return questions


# ---------------------------------------------------------------------------- the session


class _Ended(Exception):
    """The input ended, or the learner typed q."""


def _read(stdin, out, interactive: bool) -> str:
    out.write("answer> ")
    out.flush()
    line = stdin.readline()
    if not line:
        out.write("\n")
        raise _Ended("end of input")
    if not interactive:  # piped: show what was read, so the transcript reads like a dialogue
        out.write(line if line.endswith("\n") else line + "\n")
    if line.strip().lower() in QUIT:
        raise _Ended("quit")
    return line


def _ask(question: Question, stdin, out, interactive: bool) -> tuple[tuple | None, str]:
    """(the parsed answer or None, the text typed); interactive input is asked again until it parses."""
    while True:
        text = _read(stdin, out, interactive)
        try:
            return question.parse(text), text.strip()
        except ValueError:
            if not interactive:
                return None, text.strip()
            print(f"  Expected {question.expected}; try again (q to stop).", file=out, flush=True)


def run(seed: int | None = None, questions: int = 5, *, stdin=None, stdout=None,
        interactive: bool | None = None) -> int:
    """Ask ``questions`` questions and print the score; returns the exit status (0).

    Args:
        seed: the same questions again; None picks one and prints it.
        stdin, stdout: where answers come from and text goes (default: the terminal's).
        interactive: prompt again on an unreadable answer (default: when stdin is a terminal);
            piped answers that cannot be read count as wrong, with a note.
    """
    stdin = sys.stdin if stdin is None else stdin
    out = sys.stdout if stdout is None else stdout
    if interactive is None:
        interactive = bool(getattr(stdin, "isatty", lambda: False)())
    if seed is not None and seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {seed}.")
    if seed is None:
        seed = secrets.randbelow(100_000)
    asked = make_questions(seed, questions)

    def say(*lines):
        for line in lines:
            print(line, file=out)
        out.flush()

    say(f"Quiz: {questions} question{'s' * (questions > 1)} on small convolutions (seed {seed}: "
        f"`convlayer quiz --seed {seed}` asks the same ones again). One answer per line; q stops.")
    right = answered = 0
    ended = ""
    for number, question in enumerate(asked, 1):
        say("", f"Question {number} of {questions}: " + question.prompt()[0], *question.prompt()[1:],
            f"  ({question.expected})")
        try:
            given, text = _ask(question, stdin, out, interactive)
        except _Ended as stop:
            ended = str(stop)
            break
        answered += 1
        answer = format_answer(question.answer)
        if given is not None and question.is_right(given):
            right += 1
            say(f"Right: {answer}.")
            continue
        if given is None:
            say(f"Could not read {text!r} as {question.expected}; counted as wrong. The answer is {answer}.")
        else:
            say(f"Not quite: the answer is {answer}, not {format_answer(given)}.")
            say(*(f"  {line}" for line in question.diagnose(given)))
        say("How it is worked out:", *question.explanation())
    say("")
    if ended:
        say(f"{'End of input' if ended == 'end of input' else 'Stopped'} after {answered} of {questions} "
            f"question{'s' * (questions > 1)}.")
    say(f"Score: {right} of {answered} right." if answered else "Score: no answers.")
    return 0
