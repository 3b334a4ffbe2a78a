"""``convlayer check FILE``: run a learner's convolution on small probes and name the mistake it makes.

Three parts, kept apart so that the quiz and the web page can reuse the middle one:

1. ``run_file`` runs FILE in a child process (``sandbox``) with a time limit and reads back what
   each call returned (an ``Outcome`` per probe);
2. ``diagnose_forward``, ``diagnose_backward``, ``diagnose_model`` are pure: outcomes in, a
   ``Diagnosis`` out (a ✓/✗ per lesson concept, and ``Finding``s: the catalogued mistake that
   reproduces the learner's numbers, the smallest probe that shows it, the first cell that differs
   with the terms of its sum, the ``convlayer explain`` command for that very case);
3. ``render`` turns a ``CheckResult`` into text.

The comparison is exact up to rounding: probes are small integers and a bias of halves, so a
right answer equals the reference to ~1e-6, and each mistake's answer is computed exactly.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..clitools import UsageError, say
from ..functional import shapes
from . import mistakes as catalogue
from .probes import Probe, make_probes
from .reference import conv2d as reference_conv2d
from .reference import conv2d_backward as reference_backward
from .reference import padding_amounts

CONCEPTS = ("dot product + bias", "stride", "padding", "channels", "filters", "shapes")
FUNCTIONS = ("convolve", "conv2d", "conv2d_backward", "MNISTModel")
ALIASES = {"backward": "conv2d_backward", "model": "MNISTModel"}
FAMILY = {"convolve": "convolve", "conv2d": "conv2d", "conv2d_backward": "backward"}
PARTS = ("dx", "dkernel", "dbias")
MODEL_INPUT = {"input_dim": 28, "output_size": 10, "batch": 2}
RTOL = 1e-6

OK, WRONG, UNCHECKED, NOT_PART = "✓", "✗", "?", "-"


# ---------------------------------------------------------------------------- what came back, what it means


@dataclass
class Outcome:
    """One call of the learner's function, as the child process reported it."""

    status: str  # 'ok', 'error' (raised), 'timeout' (was running when stopped), 'not run'
    kind: str = ""  # 'array', 'none', 'object', 'tuple'
    value: np.ndarray | None = None
    parts: list | None = None  # for 'tuple': a list of Outcome (status 'ok')
    type: str = ""
    dtype: str = ""
    exception: str = ""
    message: str = ""
    traceback: str = ""
    line: int | None = None


@dataclass
class Cell:
    """One output cell: where, the right value, the learner's, and the sum that gives the right one."""

    label: str  # 'out[0, 1, 2, 0]'
    expected: float
    got: float | None
    terms: str  # '3×1 + 5×(-2) + bias 1.5 = 4.5'


@dataclass
class Finding:
    """One thing wrong (or not checked), in plain words."""

    kind: str  # 'mistake', 'unmatched', 'shape', 'dtype', 'nan', 'none', 'object', 'crash', 'not written',
    #            'timeout', 'signature', 'missing', 'model', 'not run'
    title: str
    lines: list[str] = field(default_factory=list)
    mistake: catalogue.Mistake | None = None
    probe: Probe | None = None
    cell: Cell | None = None
    explain: str | None = None


@dataclass
class Diagnosis:
    """What ``check`` found about one function."""

    function: str
    concepts: dict  # concept (or part, or model setting) -> OK / WRONG / UNCHECKED / NOT_PART
    findings: list
    probes: int = 0
    right: int = 0

    @property
    def passed(self) -> bool:
        return not self.findings and all(mark in (OK, NOT_PART) for mark in self.concepts.values())


@dataclass
class CheckResult:
    file: str
    problems: list  # Findings about the file itself (missing, syntax error, nothing to check)
    diagnoses: list

    @property
    def passed(self) -> bool:
        return not self.problems and bool(self.diagnoses) and all(d.passed for d in self.diagnoses)


# ---------------------------------------------------------------------------- numbers and cells


def _close(got: np.ndarray, expected: np.ndarray) -> bool:
    if got.shape != expected.shape:
        return False
    scale = max(1.0, float(np.abs(expected).max(initial=0)))
    return bool(np.all(np.abs(got - expected) <= RTOL * scale))


def _num(value) -> str:
    from ..viz.explain import format_number

    return format_number(value)


def _factor(value) -> str:
    text = _num(value)
    return f"({text})" if text.startswith("-") else text


def _shorten(terms: list[str]) -> list[str]:
    """A long sum keeps its first and last terms."""
    return terms[:6] + [f"... ({len(terms) - 9} more)"] + terms[-3:] if len(terms) > 12 else terms


def _sum_line(products, bias=None) -> str:
    """'3×1 + 5×(-2) + bias 1.5 = 4.5' from [(a, b), ...]."""
    terms = _shorten([f"{_factor(a)}×{_factor(b)}" for a, b in products])
    total = sum(float(a) * float(b) for a, b in products)
    text = " + ".join(terms) if terms else "0"
    if bias is not None:
        text += f" + bias {_factor(bias)}"
        total += float(bias)
    return f"{text} = {_num(total)}"


def _padded(probe: Probe):
    pads = padding_amounts(probe.x.shape[1:3], probe.kernel.shape[:2], probe.strides, probe.padding)
    (top, bottom), (left, right) = pads
    xp = np.pad(probe.x, ((0, 0), (top, bottom), (left, right), (0, 0)))  # (N, Hp, Wp, C)
    return xp, pads


def forward_terms(probe: Probe, index) -> str:
    """The sum behind the right value of output cell (n, i, j, f) of ``probe``."""
    n, i, j, f = index
    xp, _ = _padded(probe)
    sv, sh = probe.strides
    kh, kw, c, _ = probe.kernel.shape
    window = xp[n, i * sv:i * sv + kh, j * sh:j * sh + kw]  # (kh, kw, C)
    products = [(window[a, b, ch], probe.kernel[a, b, ch, f]) for a in range(kh) for b in range(kw)
                for ch in range(c)]
    return _sum_line(products, probe.bias[f])


def backward_terms(probe: Probe, part: str, index) -> str:
    """The sum behind the right value of one cell of dx, dkernel or dbias."""
    dy = probe.dy  # (N, Ho, Wo, F)
    sv, sh = probe.strides
    kh, kw = probe.kernel.shape[:2]
    if part == "dbias":
        (f,) = index
        values = dy[..., f].reshape(-1)
        text = " ".join(_shorten([(f"- {_num(-v)}" if v < 0 else f"+ {_num(v)}") for v in values]))
        return f"{text.removeprefix('+ ')} = {_num(values.sum())}  (dy[..., {f}] summed)"
    xp, ((top, _), (left, _)) = _padded(probe)
    if part == "dkernel":
        a, b, c, f = index
        products = [(xp[n, i * sv + a, j * sh + b, c], dy[n, i, j, f]) for n in range(dy.shape[0])
                    for i in range(dy.shape[1]) for j in range(dy.shape[2])]
        return _sum_line(products) + "  (x × dy over every window)"
    n, r, col, c = index
    products = []
    for i in range(dy.shape[1]):
        for j in range(dy.shape[2]):
            a, b = r + top - i * sv, col + left - j * sh
            if 0 <= a < kh and 0 <= b < kw:
                products += [(probe.kernel[a, b, c, f], dy[n, i, j, f]) for f in range(dy.shape[3])]
    return _sum_line(products) + "  (kernel × dy over the windows that read this input)"


def _matrix_text(array) -> str:
    """An (H, W, C) array in ``explain``'s syntax: rows by ';', channels by '|'."""
    return " | ".join("; ".join(" ".join(_num(v) for v in row) for row in array[:, :, c])
                      for c in range(array.shape[2]))


def explain_command(probe: Probe, index) -> str:
    """``convlayer explain ...`` for the filter and image of output cell (n, i, j, f), up to that cell."""
    n, i, j, f = index
    sv, sh = probe.strides
    _, (left, right) = padding_amounts(probe.x.shape[1:3], probe.kernel.shape[:2], probe.strides, probe.padding)
    wo = shapes.conv_output_size(probe.x.shape[2], probe.kernel.shape[1], sh, 1, (left, right))
    stride = f"{sv}" if sv == sh else f"{sv},{sh}"
    flags = [("--input", _matrix_text(probe.x[n])), ("--kernel", _matrix_text(probe.kernel[:, :, :, f])),
             ("--bias", _num(probe.bias[f])), ("--stride", stride), ("--padding", probe.padding),
             ("--steps", str(i * wo + j + 1))]
    return "convlayer explain " + " ".join(f"{flag} {shlex.quote(value)}" for flag, value in flags)


def explain_backward_command(probe: Probe, part: str, index) -> str | None:
    """``convlayer explain --backward ...`` for that cell, when one image and one filter give all of it."""
    if probe.dy.shape[0] > 1 or (part == "dx" and probe.kernel.shape[3] > 1):
        return None  # the cell sums over images or filters: explain traces one of each
    f = 0 if part == "dx" else index[-1]
    sv, sh = probe.strides
    flags = [("--input", _matrix_text(probe.x[0])), ("--kernel", _matrix_text(probe.kernel[:, :, :, f])),
             ("--dy", _matrix_text(probe.dy[0, :, :, f:f + 1])), ("--stride", f"{sv}" if sv == sh else f"{sv},{sh}"),
             ("--padding", probe.padding)]
    return "convlayer explain --backward " + " ".join(f"{flag} {shlex.quote(value)}" for flag, value in flags)


def _label(family: str, index) -> str:
    if family == "convolve":
        return f"out[{index[1]}, {index[2]}]"
    return "out[" + ", ".join(str(int(k)) for k in index) + "]"


def _view(family: str, y: np.ndarray) -> np.ndarray:
    """The reference's (N, Ho, Wo, F) as the family returns it: (Ho, Wo) for convolve."""
    return y[0, :, :, 0] if family == "convolve" else y


def _first_difference(got: np.ndarray, expected: np.ndarray):
    """The first index (in reading order) where the two differ, over their common part; None if none."""
    if got.ndim != expected.ndim:
        return None
    common = tuple(slice(0, min(a, b)) for a, b in zip(got.shape, expected.shape))
    g, e = got[common], expected[common]
    scale = max(1.0, float(np.abs(expected).max(initial=0)))
    wrong = np.argwhere(~(np.abs(g - e) <= RTOL * scale))
    return tuple(int(k) for k in wrong[0]) if len(wrong) else None


# ---------------------------------------------------------------------------- outcomes that are not numbers


def _bad_value(function: str, probe: Probe, family: str, outcome: Outcome, expected_shape) -> Finding | None:
    """A Finding for an outcome that cannot be compared (an exception, None, not numbers, NaN)."""
    where = f"on probe {probe.describe(family)}"
    if outcome.status == "error":
        did = "ended the Python process" if outcome.exception == "exit" else f"raised {outcome.exception}"
        return Finding("crash", f"{function} {did} {where}", [outcome.traceback], probe=probe)
    if outcome.kind == "none":
        return Finding("none", f"{function} returned None {where}",
                       [f"Did you forget `return`? It should return an array of shape {expected_shape}."],
                       probe=probe)
    if outcome.kind == "object":
        what = f"a {outcome.type}" + (f" of {outcome.dtype}" if outcome.dtype else "")
        return Finding("object", f"{function} returned {what} {where}",
                       [f"Expected a NumPy array of numbers, shape {expected_shape}."], probe=probe)
    return None


def _nan_finding(function, probe, family, got, label_of) -> Finding | None:
    bad = np.argwhere(~np.isfinite(got))
    if not len(bad):
        return None
    index = tuple(int(k) for k in bad[0])
    value = got[index]
    return Finding("nan", f"{function} returned {value} at {label_of(index)} on probe {probe.describe(family)}",
                   [f"{len(bad)} of {got.size} cells are NaN or infinite: a cell never written (np.empty), a "
                    "division by zero, or an overflow. Start from np.zeros(shape) and write every cell."],
                   probe=probe)


# ---------------------------------------------------------------------------- forward: convolve and conv2d


def _shape_lines(probe: Probe, family: str, got_shape, expected_shape) -> list[str]:
    pads = padding_amounts(probe.x.shape[1:3], probe.kernel.shape[:2], probe.strides, probe.padding)
    lines = [f"Your output has shape {tuple(got_shape)}; expected {tuple(expected_shape)}"
             + (" (N, Ho, Wo, F)." if family != "convolve" else " (Ho, Wo).")]
    for axis, name in ((0, "rows"), (1, "columns")):
        size, k, s = probe.x.shape[1 + axis], probe.kernel.shape[axis], probe.strides[axis]
        lines.append(f"  {name}: {shapes.output_size_formula(size, k, s, 1, pads[axis])}"
                     + (f" (padding '{probe.padding}': {pads[axis][0]} before, {pads[axis][1]} after)"
                        if probe.padding == "same" else ""))
    return lines


def _one_per_kind(findings: list[Finding], probes, family) -> list[Finding]:
    """One finding per kind of trouble (the smallest probe's), saying on how many probes it happened."""
    kept = []
    for kind in dict.fromkeys(f.kind for f in findings):
        same = [f for f in findings if f.kind == kind]
        first = same[0]
        if len(same) > 1:
            what = "raised an exception" if kind == "crash" else "gave the same"
            first.lines.append(f"({len(same)} of {len(probes)} probes {what}; the smallest is shown.)")
        if kind == "crash":
            _int_strides_hint(first, family)
        kept.append(first)
    return kept


def _int_strides_hint(finding: Finding, family: str) -> None:
    probe = finding.probe
    if probe is not None and family != "convolve" and isinstance(probe.call_strides(family), int) \
            and "TypeError" in finding.title:
        finding.lines.append(f"This probe passes strides={probe.call_strides(family)}, an int: the contract says "
                             "an int or a pair; turn an int into (s, s) first.")


def diagnose_forward(function: str, probes: list[Probe], outcomes: list[Outcome]) -> Diagnosis:
    """Compare ``convolve`` or ``conv2d`` outcomes (one per probe) with the reference and each mistake."""
    family = FAMILY[function]
    expected = [_view(family, reference_conv2d(p.x, p.kernel, p.bias, p.strides, p.padding)) for p in probes]

    def label_of(index):
        return _label(family, (0, *index, 0) if family == "convolve" else index)

    findings: list[Finding] = []
    arrays: dict[int, np.ndarray] = {}  # probe index -> the learner's finite numeric output
    if all(o.status == "not run" for o in outcomes):
        return _not_run(function)
    for k, (probe, outcome, want) in enumerate(zip(probes, outcomes, expected)):
        if outcome.status in ("timeout", "not run"):
            continue
        bad = _bad_value(function, probe, family, outcome, want.shape)
        if bad is None:
            got = np.asarray(outcome.value, np.float64)
            bad = _nan_finding(function, probe, family, got, label_of)
        if bad is not None:
            findings.append(bad)
            continue
        arrays[k] = got
    if _not_written(findings, outcomes):
        return _not_written_diagnosis(function, family, probes, outcomes)
    findings = _timeouts(function, probes, outcomes, family) + _one_per_kind(findings, probes, family)

    wrong = [k for k, got in arrays.items() if not _close(got, expected[k])]
    dtype = _integer_output(function, probes, outcomes, arrays, expected, family)
    truncated = dtype is not None and dtype.kind == "dtype"  # integers explain every difference
    mistake = None
    if wrong and not truncated:
        mistake = _matching_mistake(catalogue.FORWARD, probes, arrays, expected, _forward_compute(family))
        findings.insert(0, _forward_difference(function, family, probes, arrays, expected, wrong, mistake,
                                               label_of))
    if dtype is not None:
        findings.insert(0 if truncated else 1, dtype)
    findings.sort(key=lambda f: f.kind != "timeout")  # a hang first: the rest only saw part of the probes
    concepts = _concepts(family, probes, outcomes, arrays, expected, mistake, truncated)
    return Diagnosis(function, concepts, findings, len(probes), len(arrays) - len(wrong))


def _not_run(function) -> Diagnosis:
    return Diagnosis(function, {}, [Finding("not run", "not checked: the check stopped before it")])


def _not_written(findings, outcomes) -> bool:
    ran = [o for o in outcomes if o.status == "error"]
    return bool(ran) and all(o.exception == "NotImplementedError" for o in ran) and \
        len(ran) == sum(o.status != "not run" for o in outcomes)


def _not_written_diagnosis(function, family, probes, outcomes) -> Diagnosis:
    first = next(o for o in outcomes if o.status == "error")
    where = f" (line {first.line})" if first.line else ""
    finding = Finding("not written", f"{function} is not written yet: it raises NotImplementedError{where}",
                      ["Replace the `raise NotImplementedError` with your code; the docstring says what it "
                       "takes and returns."])
    concepts = {c: UNCHECKED if _applies(family, probes, c) else NOT_PART for c in CONCEPTS}
    return Diagnosis(function, concepts, [finding], len(probes), 0)


def _timeouts(function, probes, outcomes, family) -> list[Finding]:
    for probe, outcome in zip(probes, outcomes):
        if outcome.status == "timeout":
            return [Finding("timeout", f"stopped after {outcome.message} s: does your loop end?",
                            [f"{function} had not returned on probe {probe.describe(family)}, a small input that "
                             "a plain loop finishes in well under a second. Look for a while loop whose counter "
                             "never moves past the end, or a step of 0."], probe=probe)]
    return []


def _integer_output(function, probes, outcomes, arrays, expected, family) -> Finding | None:
    """Integers in the output: kind 'dtype' when cutting the right answer to integers gives it, else
    'integers' (a remark beside the other differences)."""
    ints = [k for k in arrays if outcomes[k].dtype and np.dtype(outcomes[k].dtype).kind in "biu"]
    if not ints:
        return None
    k = ints[0]
    truncated = all(_close(arrays[j], np.trunc(expected[j])) for j in arrays)
    lines = [f"Your output array holds {outcomes[k].dtype}: every cell is cut to a whole number"
             + (" (e.g. the bias 1.5 is lost)" if truncated else "") + ".",
             "Create it as floats: np.zeros(shape) is float64 by default; np.zeros(shape, dtype=int), "
             "np.zeros_like(an int array) and .astype(int) are not."]
    if truncated:
        return Finding("dtype", f"{function} returns integers ({outcomes[k].dtype}) on probe "
                                f"{probes[k].describe(family)}", lines, probe=probes[k])
    return Finding("integers", f"{function} also returns integers ({outcomes[k].dtype})", lines, probe=probes[k])


def _matching_mistake(mistakes, probes, arrays, expected, compute, part=None):
    """The first mistake whose output equals the learner's on every probe that gave numbers."""
    for mistake in mistakes:
        outputs = {}
        for k in arrays:
            y = compute(mistake, probes[k])
            outputs[k] = y if part is None else y[part]
        if all(_close(arrays[k], outputs[k]) for k in arrays) and \
                any(not _close(outputs[k], expected[k]) for k in arrays):
            return mistake
    return None


def _per_probe_matches(mistakes, probe, got, compute, part=None) -> list[str]:
    names = []
    for mistake in mistakes:
        y = compute(mistake, probe)
        if _close(got, y if part is None else y[part]):
            names.append(mistake.name)
    return names


def _forward_difference(function, family, probes, arrays, expected, wrong, mistake, label_of) -> Finding:
    k = wrong[0]  # probes go from small to large: the first wrong one is the smallest that shows it
    probe, got, want = probes[k], arrays[k], expected[k]
    index = _first_difference(got, want)
    lines = []
    if mistake is not None:
        title = f"{mistake.concept}: {mistake.name}"
        lines += [_sentence(mistake.says) + ".", f"The rule: {_sentence(mistake.rule)}"]
    else:
        title = f"{function} gives other numbers than the reference, and no catalogued mistake explains them" \
            if not _size_only(got, want) else \
            f"{function}'s output has the wrong size, and no catalogued mistake explains it"
        compute = _forward_compute(family)
        near = _per_probe_matches(catalogue.FORWARD, probe, got, compute)
        if near:
            lines.append(f"On this probe your output equals '{near[0]}', but not on every probe: two mistakes "
                         "at once?")
    lines.append(f"Smallest probe that shows it: {probe.describe(family)}")
    if got.shape != want.shape:
        lines += _shape_lines(probe, family, got.shape, want.shape)
    cell = explain = None
    if index is not None:
        full = (0, *index, 0) if family == "convolve" else index
        cell = Cell(label_of(index), float(want[index]), float(got[index]), forward_terms(probe, full))
        lines.append(f"First cell that differs: {cell.label} = {cell.terms}; yours: {_num(cell.got)}")
        explain = explain_command(probe, full)
        lines.append(f"See that cell worked out: {explain}")
    elif got.ndim == want.ndim:
        lines.append("Every cell your output and the reference both have is right: only the size is wrong.")
    return Finding("mistake" if mistake else "unmatched", title, lines, mistake, probe, cell, explain)


def _forward_compute(family):
    return lambda m, p: _view(family, m.compute(p.x, p.kernel, p.bias, p.strides, p.padding))


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:]


def _applies(family, probes, concept) -> bool:
    return concept == "shapes" or any(concept in p.concepts for p in probes)


def _size_only(got, want) -> bool:
    """Wrong size, but every cell both have is right."""
    return got.shape != want.shape and got.ndim == want.ndim and _first_difference(got, want) is None


def _concepts(family, probes, outcomes, arrays, expected, mistake, integer_output) -> dict:
    """✓/✗/? per lesson concept: a failure explained by a mistake blames that mistake's concept only;
    an unexplained one blames the concepts no passing probe vouches for (or all of the probe's)."""
    passing = {k for k in arrays if _close(arrays[k], expected[k])}
    size_only = {k for k in arrays if k not in passing and _size_only(arrays[k], expected[k])}
    vouched = {c for k in passing | size_only for c in probes[k].concepts}
    blamed = set()
    if integer_output:
        blamed.add("dot product + bias")
    elif mistake is not None:
        blamed.add(mistake.concept)
    else:
        for k in arrays:
            if k in passing:
                continue
            if k in size_only:
                blamed.add("shapes")  # the cells it has are right: only the size is wrong
                continue
            own = set(probes[k].concepts)
            blamed |= (own - vouched) or own
    shapes_ok = all(arrays[k].shape == expected[k].shape for k in arrays)
    if not shapes_ok and mistake is None:
        blamed.add("shapes")
    marks = {}
    for concept in CONCEPTS:
        if not _applies(family, probes, concept):
            marks[concept] = NOT_PART
        elif concept in blamed:
            marks[concept] = WRONG
        elif concept == "shapes":
            marks[concept] = OK if arrays else UNCHECKED
        elif concept in vouched or (mistake is not None and any(concept in probes[k].concepts for k in arrays)):
            marks[concept] = OK
        else:
            marks[concept] = UNCHECKED
    return marks


# ---------------------------------------------------------------------------- backward


def diagnose_backward(probes: list[Probe], outcomes: list[Outcome]) -> Diagnosis:
    """Compare (dx, dkernel, dbias) from ``conv2d_backward`` with the reference and each backward mistake."""
    function, family = "conv2d_backward", "backward"
    expected = [reference_backward(p.dy, p.x, p.kernel, p.strides, p.padding) for p in probes]
    if all(o.status == "not run" for o in outcomes):
        return _not_run(function)
    findings: list[Finding] = []
    arrays: dict[int, list] = {}
    for k, (probe, outcome) in enumerate(zip(probes, outcomes)):
        if outcome.status in ("timeout", "not run"):
            continue
        shapes_wanted = tuple(e.shape for e in expected[k])
        bad = _bad_value(function, probe, family, outcome, "(dx, dkernel, dbias)")
        if bad is None and (outcome.kind != "tuple" or len(outcome.parts) != 3):
            what = f"a {outcome.type} of {len(outcome.parts)}" if outcome.kind == "tuple" else \
                f"a {outcome.type or outcome.kind}"
            bad = Finding("object", f"{function} returned {what} on probe {probe.describe(family)}",
                          [f"Expected a tuple (dx, dkernel, dbias) of shapes {shapes_wanted[0]}, "
                           f"{shapes_wanted[1]}, {shapes_wanted[2]}."], probe=probe)
        if bad is None:
            for name, part, want in zip(PARTS, outcome.parts, shapes_wanted):
                bad = _bad_value(f"{function}'s {name}", probe, family, part, want)
                if bad is None:
                    bad = _nan_finding(f"{function}'s {name}", probe, family, np.asarray(part.value, float),
                                       lambda index, name=name: f"{name}[{', '.join(map(str, index))}]")
                if bad is not None:
                    break
        if bad is not None:
            findings.append(bad)
            continue
        arrays[k] = [np.asarray(part.value, np.float64) for part in outcome.parts]
    if _not_written(findings, outcomes):
        diagnosis = _not_written_diagnosis(function, family, probes, outcomes)
        diagnosis.concepts = {name: UNCHECKED for name in PARTS}
        return diagnosis
    findings = _timeouts(function, probes, outcomes, family) + _one_per_kind(findings, probes, family)

    def compute(mistake, p):
        return mistake.compute(p.dy, p.x, p.kernel, p.strides, p.padding)

    marks, differences, right = {}, [], set(arrays)
    for part, name in enumerate(PARTS):
        got = {k: arrays[k][part] for k in arrays}
        want = {k: expected[k][part] for k in arrays}
        wrong = [k for k in got if not _close(got[k], want[k])]
        right -= set(wrong)
        marks[name] = (WRONG if wrong else OK) if got else UNCHECKED
        if not wrong:
            continue
        mistake = _matching_mistake(catalogue.BACKWARD, probes, got, want, compute, part)
        differences.append(_backward_difference(probes, got, want, wrong, mistake, part, compute))
    findings = sorted(differences + findings, key=lambda f: f.kind != "timeout")
    return Diagnosis(function, marks, findings, len(probes), len(right))


def _backward_difference(probes, got, want, wrong, mistake, part, compute) -> Finding:
    name = PARTS[part]
    k = wrong[0]
    probe = probes[k]
    lines = []
    if mistake is not None:
        title = f"{name}: {mistake.name} ({mistake.concept})"
        lines += [_sentence(mistake.says) + ".", f"The rule: {_sentence(mistake.rule)}"]
    else:
        title = f"{name} differs from the reference, and no catalogued mistake explains it"
        near = _per_probe_matches(catalogue.BACKWARD, probe, got[k], compute, part)
        if near:
            lines.append(f"On this probe your {name} equals '{near[0]}', but not on every probe.")
    lines.append(f"Smallest probe that shows it: {probe.describe('backward')}")
    if got[k].shape != want[k].shape:
        lines.append(f"Your {name} has shape {got[k].shape}; expected {want[k].shape}"
                     + {"dx": " (the input's shape).", "dkernel": " (the kernel's shape).",
                        "dbias": " (one per filter)."}[name])
    index = _first_difference(got[k], want[k])
    cell = explain = None
    if index is not None:
        label = f"{name}[{', '.join(map(str, index))}]"
        cell = Cell(label, float(want[k][index]), float(got[k][index]), backward_terms(probe, name, index))
        lines.append(f"First cell that differs: {label} = {cell.terms}; yours: {_num(cell.got)}")
        explain = explain_backward_command(probe, name, index)
        if explain:
            lines.append(f"See the gradients worked out: {explain}")
    return Finding("mistake" if mistake else "unmatched", title, lines, mistake, probe, cell, explain)


# ---------------------------------------------------------------------------- the model


MODEL_SETTINGS = (  # (setting, what the lesson's conv1 has, how to read it from the recorded layer)
    ("filters", 32, lambda c: c["filters"]),
    ("kernel_size", [5, 5], lambda c: c["kernel_size"]),
    ("padding", "same", lambda c: c["padding"]),
    ("activation", "relu", lambda c: c["activation"]),
    ("name", "conv1", lambda c: c["name"]),
)
_SETTING_WHY = {
    "filters": "32 filters: 32 feature maps, the input channels of conv2",
    "kernel_size": "5x5 kernels (kernel_size=[5, 5])",
    "padding": "'same' keeps the 28x28 size, so that two 2x2 poolings give 7x7",
    "activation": "ReLU after the convolution (activation=tf.nn.relu)",
    "name": "name='conv1', the name checkpoints and `convlayer show` use",
}


def diagnose_model(report: dict | None, outcome_status: str = "ok") -> Diagnosis:
    """Check the learner's MNISTModel: conv1's settings and the shapes it gives on a small batch."""
    function = "MNISTModel"
    batch, size, classes = MODEL_INPUT["batch"], MODEL_INPUT["input_dim"], MODEL_INPUT["output_size"]
    marks = {name: UNCHECKED for name, _, _ in MODEL_SETTINGS} | {"conv1 output shape": UNCHECKED,
                                                                    "logits shape": UNCHECKED}
    findings = []
    if report is None:
        status = "timeout" if outcome_status == "timeout" else "not run"
        title = "stopped: does your model's code end?" if status == "timeout" else "not checked: stopped earlier"
        return Diagnosis(function, marks, [Finding(status, title)])
    convs = report.get("convs", [])
    if report.get("tf") not in (None, "convlayer.tf"):
        return Diagnosis(function, marks, [Finding(
            "model", f"your file's tf is {report['tf']}, not convlayer's",
            ["Write `from convlayer import tf` (as the starter file does) so that check can look at your layers; "
             "the rest of the lesson's code runs unchanged."])])
    conv1 = next((c for c in convs if c["name"] == "conv1"), convs[0] if convs else None)
    if report.get("status") == "error":
        if report["exception"] == "NotImplementedError" and conv1 is None:
            line = f" (line {report['line']})" if report.get("line") else ""
            findings.append(Finding("not written", f"conv1 is not written yet: model_layers raises "
                                                   f"NotImplementedError{line}",
                                    ["Replace the `raise NotImplementedError` with the conv1 line."]))
        else:
            findings.append(Finding("crash", f"MNISTModel({size}, {classes}).model_layers raised "
                                             f"{report['exception']} on a batch of {batch} images",
                                    [report["traceback"]]))
    if conv1 is not None:
        for name, want, read in MODEL_SETTINGS:
            got = read(conv1)
            marks[name] = OK if got == want else WRONG
            if got != want:
                findings.append(Finding("model", f"conv1 {name} is {got!r}; the lesson's is {want!r}",
                                        [f"The lesson: {_SETTING_WHY[name]}."]))
        want_shape = [batch, size, size, 32]
        marks["conv1 output shape"] = OK if conv1["output_shape"] == want_shape else WRONG
        if conv1["output_shape"] != want_shape:
            findings.append(Finding("model", f"conv1 gives {tuple(conv1['output_shape'])}; expected "
                                             f"{tuple(want_shape)}",
                                    [f"Its input is {tuple(conv1['input_shape'])} (N, H, W, C)."]))
    elif report.get("status") == "ok":
        findings.append(Finding("model", "model_layers ran but called no Conv2D layer",
                                ["conv1 = tf.keras.layers.Conv2D(...)(reshaped_inputs) is the line to write."]))
    if report.get("status") == "ok":
        logits = report.get("logits", {})
        shape = logits.get("shape")
        marks["logits shape"] = OK if shape == [batch, classes] else WRONG
        if shape != [batch, classes]:
            what = f"a {logits['type']} of shape {tuple(shape)}" if shape is not None else \
                ("None" if logits.get('kind') == 'none' else logits.get('type') or 'nothing')
            findings.append(Finding("model", f"model_layers returned {what}; expected ({batch}, {classes}), one row "
                                             "of logits per image"))
    return Diagnosis(function, marks, findings, 1, int(not findings))


# ---------------------------------------------------------------------------- running the file


def _calls(functions) -> tuple[list, dict, dict]:
    """The calls for the child, their arrays, and the probes of each function."""
    calls, inputs, probes_of = [], {}, {}
    for function in functions:
        if function == "MNISTModel":
            continue
        family = FAMILY[function]
        probes = make_probes(family)
        probes_of[function] = probes
        for k, probe in enumerate(probes):
            cid = f"{function}_{k}"
            args = []
            for a, value in enumerate(probe.call_args(family)):
                if isinstance(value, np.ndarray):
                    inputs[f"{cid}_{a}"] = value
                    args.append({"array": f"{cid}_{a}"})
                elif isinstance(value, tuple):
                    args.append({"tuple": list(value)})
                else:
                    args.append({"value": value})
            calls.append({"id": cid, "function": function, "args": args, "parts": family == "backward"})
    return calls, inputs, probes_of


def _read_outcome(folder: Path, cid: str) -> Outcome | None:
    path = folder / f"out_{cid}.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    arrays = dict(np.load(folder / f"out_{cid}.npz", allow_pickle=False)) if (folder / f"out_{cid}.npz").is_file() \
        else {}
    if data["status"] == "error":
        return Outcome("error", exception=data["exception"], message=data["message"], traceback=data["traceback"],
                       line=data.get("line"))
    if data["kind"] == "tuple":
        parts = [Outcome("ok", kind=p["kind"], value=arrays.get(f"part{i}"), type=p.get("type", ""),
                         dtype=p.get("dtype", "")) for i, p in enumerate(data["parts"])]
        return Outcome("ok", kind="tuple", parts=parts, type=data["type"])
    return Outcome("ok", kind=data["kind"], value=arrays.get("value"), type=data.get("type", ""),
                   dtype=data.get("dtype", ""))


def _resolve_function(function: str | None):
    if function is None:
        return None
    name = ALIASES.get(function, function)
    if name not in FUNCTIONS:
        raise UsageError(f"--function {function}: check knows {', '.join(FUNCTIONS)} (or backward, model).")
    return name


def _file_problem(title, lines=()) -> Finding:
    return Finding("file", title, list(lines))


def check_file(file, *, function: str | None = None, timeout: float = 60.0) -> CheckResult:
    """Run FILE's functions on the probes in a child process and diagnose each one."""
    path = Path(file)
    shown = str(file)
    if not path.exists():
        raise UsageError(f"{shown}: no such file; write a starter with `convlayer exercise conv2d --out {shown}`.")
    if path.is_dir():
        raise UsageError(f"{shown} is a folder; give the Python file to check, e.g. {shown}/my_conv2d.py.")
    wanted = [_resolve_function(function)] if function else list(FUNCTIONS)
    calls, inputs, probes_of = _calls(wanted)
    with tempfile.TemporaryDirectory(prefix="convlayer-check-") as tmp:
        folder = Path(tmp)
        request = {"file": str(path.resolve()), "shown_as": shown, "wanted": wanted, "calls": calls,
                   "model": MODEL_INPUT if "MNISTModel" in wanted else None}
        (folder / "request.json").write_text(json.dumps(request), encoding="utf-8")
        np.savez(folder / "inputs.npz", **inputs)
        timed_out, code, stderr = _run_child(folder, timeout)
        return _collect(folder, shown, wanted, calls, probes_of, timed_out, code, stderr, timeout)


def _run_child(folder: Path, timeout: float):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    process = subprocess.Popen([sys.executable, "-m", "convlayer.learn.sandbox", str(folder)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        _, stderr = process.communicate(timeout=timeout)
        return False, process.returncode, stderr.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        return True, process.returncode, stderr.decode("utf-8", "replace")


def _collect(folder, shown, wanted, calls, probes_of, timed_out, code, stderr, timeout) -> CheckResult:
    def load(name):
        p = folder / name
        return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None

    failed_import = load("import.json")
    if failed_import is not None:
        kind = "a syntax error" if failed_import["exception"] in ("SyntaxError", "IndentationError", "TabError") \
            else f"{failed_import['exception']} while importing it"
        return CheckResult(shown, [_file_problem(f"{shown} could not be run: {kind}", [failed_import["traceback"]])],
                           [])
    defined = load("defined.json")
    progress = load("progress.json")
    if defined is None:
        what = f"stopped after {_num(timeout)} s while importing it: does a loop at the top of the file end?" \
            if timed_out else f"the Python process ended while importing it (exit status {code})"
        return CheckResult(shown, [_file_problem(f"{shown}: {what}", _stderr_tail(stderr))], [])
    names = defined["names"]
    present = [n for n in wanted if names[n]["defined"]]
    if not present:
        near = [f"{names[n]['near']} (did you mean {n}?)" for n in wanted if names[n].get("near")]
        listed = ", ".join(defined["module_names"][:8]) or "nothing"
        lines = [f"It defines: {listed}."] + ([f"Close: {', '.join(near)}"] if near else []) + \
                ["Start from a starter file: convlayer exercise conv2d (or convolve, backward, model)."]
        target = wanted[0] if len(wanted) == 1 else " or ".join((", ".join(FUNCTIONS[:-1]), FUNCTIONS[-1]))
        return CheckResult(shown, [_file_problem(f"{shown} defines no {target}", lines)], [])
    diagnoses = []
    hung = progress["id"] if (timed_out and progress) else None
    ended = code not in (0, None) and not timed_out and load("done.json") is None
    died = progress["id"] if (ended and progress) else None  # the call that ended the process
    for function in wanted:
        entry = names[function]
        if not entry["defined"]:
            if len(wanted) == 1 or entry.get("near"):
                hint = f" (you have {entry['near']}: rename it?)" if entry.get("near") else ""
                diagnoses.append(Diagnosis(function, {}, [Finding("missing", f"{shown} has no {function}{hint}")]))
            continue
        if entry.get("signature"):
            sig = entry["signature"]
            diagnoses.append(Diagnosis(function, {}, [Finding(
                "signature", f"{function} cannot take the contract's arguments: yours is {sig['yours']}",
                [f"Expected {sig['expected']}: check calls it with {sig['arguments']} positional arguments."])]))
            continue
        if function == "MNISTModel":
            diagnoses.append(diagnose_model(load("out_model.json"), "timeout" if hung == "model" else "not run"))
            continue
        outcomes = []
        for call in (c for c in calls if c["function"] == function):
            outcome = _read_outcome(folder, call["id"])
            if outcome is None and call["id"] == died:
                outcome = Outcome("error", exception="exit", traceback="\n".join(
                    [f"The Python process ended (exit status {code}) inside {function}: os._exit, or a crash of "
                     "Python itself; return the result instead.", *_stderr_tail(stderr)]))
            elif outcome is None:
                outcome = Outcome("timeout", message=_num(timeout)) if call["id"] == hung else Outcome("not run")
            outcomes.append(outcome)
        probes = probes_of[function]
        diagnosis = diagnose_backward(probes, outcomes) if function == "conv2d_backward" else \
            diagnose_forward(function, probes, outcomes)
        if any(o.status == "not run" for o in outcomes) and not diagnosis.findings:
            diagnosis.findings.append(Finding("not run", "not every probe ran: the check stopped before the others"))
        diagnoses.append(diagnosis)
    return CheckResult(shown, [], diagnoses)


def _stderr_tail(stderr: str) -> list[str]:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return ["\n".join(lines[-6:])] if lines else []


# ---------------------------------------------------------------------------- text


def render_diagnosis(d: Diagnosis) -> str:
    if not d.concepts:  # nothing compared: a missing function, a wrong signature, not run
        return "\n".join(_finding_lines(f, f"{'?' if f.kind == 'not run' else '✗'} {d.function}: ")
                         for f in d.findings)
    if d.passed:
        head = f"{d.function}: ✓ all {d.probes} probes match the reference" if d.probes > 1 else \
            f"{d.function}: ✓ as the lesson's"
    else:
        head = f"{d.function}: ✗ {d.right} of {d.probes} probes right" if d.function != "MNISTModel" else \
            f"{d.function}: ✗ not yet the lesson's"
    lines = [head]
    for concept, mark in d.concepts.items():
        if mark == NOT_PART or all(m in (UNCHECKED, NOT_PART) for m in d.concepts.values()):
            continue
        lines.append(f"  {mark} {concept}" + ("  (not checked)" if mark == UNCHECKED else ""))
    for finding in d.findings:
        lines += ["", _finding_lines(finding, "  ✗ ")]
    return "\n".join(lines)


def _finding_lines(finding: Finding, prefix: str) -> str:
    lines = [prefix + finding.title]
    indent = " " * len(prefix)
    for line in finding.lines:
        lines += [indent + part for part in line.splitlines()]
    return "\n".join(lines)


def render(result: CheckResult) -> str:
    blocks = [_finding_lines(p, "✗ ") for p in result.problems]
    blocks += [render_diagnosis(d) for d in result.diagnoses]
    if result.passed:
        blocks.append("Everything passes.")
    else:
        blocks.append(f"Fix the first ✗, then run again: convlayer check {shlex.quote(result.file)}")
    return "\n\n".join(blocks)


def run(file, *, function: str | None = None, timeout: float = 60.0) -> int:
    """The ``check`` command: print the diagnosis; 0 only when everything passes."""
    result = check_file(file, function=function, timeout=timeout)
    say(render(result))
    return 0 if result.passed else 1
