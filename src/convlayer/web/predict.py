"""The convolution panel's "predict the next cell": is a typed number right, and which classic mistake gives it.

The right value is the trace's own step (``viz.trace``, checked against the layer); a wrong one is
matched against the catalogue of ``convlayer check`` and ``convlayer quiz``
(``learn.mistakes.mistakes_giving``), so the page names the same mistakes as the command line.
"""

from __future__ import annotations

import numpy as np

from ..learn.mistakes import mistakes_giving
from ..viz.trace import ConvTrace

ANSWER_ATOL = 0.005  # the page shows two decimals: any number that rounds to the shown one is right


def diagnosable(trace: ConvTrace) -> str | None:
    """None when the catalogue of mistakes covers this setting, else why it does not."""
    if trace.padding_name not in ("valid", "same"):
        return "explicit padding; the catalogue of classic mistakes covers 'valid' and 'same'"
    if trace.padding_mode != "zeros":
        return f"padding_mode {trace.padding_mode!r}; the catalogue of classic mistakes covers zero padding only"
    if trace.dilation != (1, 1):
        return f"dilation {trace.dilation}; the catalogue of classic mistakes covers dilation 1 only"
    return None


def judge(trace: ConvTrace, row: int, col: int, value: float) -> dict:
    """The verdict on ``value`` typed for output cell (row, col) of ``trace``.

    Returns:
        ``{"cell", "value", "correct", "expected", "terms", "bias", "mistakes", "diagnosed", "hint"}``;
        ``terms`` lists each product of the cell's sum (padded-input row and column, channel, input,
        weight, product); ``mistakes`` the catalogue entries (name, concept, says, rule) whose output
        at that cell is ``value``.

    >>> from convlayer.viz.trace import trace_convolution
    >>> t = trace_convolution(np.arange(9.).reshape(3, 3), np.array([[1., 2.], [3., 4.]]))
    >>> [m["name"] for m in judge(t, 0, 0, 0 * 4 + 1 * 3 + 3 * 2 + 4 * 1)["mistakes"]]
    ['kernel flipped']
    """
    step = trace.steps[row * trace.output.shape[1] + col]
    expected = step.total
    correct = bool(np.isclose(value, expected, rtol=0, atol=ANSWER_ATOL))
    kh, kw, channels = trace.kernel.shape
    terms = [{"row": step.rows[a], "col": step.cols[b], "channel": ch, "input": float(step.window[a, b, ch]),
              "weight": float(trace.kernel[a, b, ch]), "product": float(step.products[a, b, ch])}
             for a in range(kh) for b in range(kw) for ch in range(channels)]
    unsupported = diagnosable(trace)
    mistakes = []
    if not correct and unsupported is None:
        x, kernel = trace.input[None], trace.kernel[..., None]  # (1, H, W, C), (kh, kw, C, 1): one image, one filter
        mistakes = mistakes_giving(value, (0, row, col, 0), x, kernel, np.array([trace.bias]), trace.strides,
                                   trace.padding_name, atol=ANSWER_ATOL)
    cell = f"output[{row}, {col}]"
    if correct:
        hint = (f"Right: {cell} is the {len(terms)} products of the window and the kernel added up, plus the bias "
                "once.")
    elif unsupported is not None:
        hint = (f"No diagnosis for this setting ({unsupported}). "
                f"{cell} is {expected:g}; compare your sum with the terms.")
    elif mistakes:
        names = " and ".join(f"'{m.name}'" for m in mistakes)
        verb = "gives" if len(mistakes) == 1 else "each give"
        hint = f"{value:g} is exactly what {names} {verb} here; {cell} is {expected:g}."
    else:
        hint = (f"No classic mistake gives {value:g}; {cell} is {expected:g}. Check each product of the window and "
                "the kernel (the terms), then add the bias once.")
    return {"cell": [row, col], "value": value, "correct": correct, "expected": expected, "terms": terms,
            "bias": trace.bias, "diagnosed": unsupported is None,
            "mistakes": [{"name": m.name, "concept": m.concept, "says": m.says, "rule": m.rule} for m in mistakes],
            "hint": hint}
