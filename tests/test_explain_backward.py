"""``convlayer explain --backward``: the gradients it prints are the layer's, and its terms add up to them.

Regenerate the golden file after an intended change of wording:
    CONVLAYER_UPDATE_GOLDEN=1 pytest tests/test_explain_backward.py
"""

import os
import re
from pathlib import Path

import numpy as np
import pytest

from convlayer.cli import main
from convlayer.layers import Conv2D
from convlayer.learn import reference
from convlayer.viz.backward import render_backward, trace_backward
from convlayer.viz.explain import EXAMPLES
from convlayer.viz.trace import trace_convolution

GOLDEN = Path(__file__).parent / "golden"
UPDATE = bool(os.environ.get("CONVLAYER_UPDATE_GOLDEN"))

# (input (H, W, C), kernel (kh, kw, C), bias, strides, padding, dilation)
rng = np.random.default_rng(5)
CASES = {
    "example 2 (stride 2, overlapping windows)": (np.array(EXAMPLES[2].input, float)[..., None],
                                                  np.array(EXAMPLES[2].kernel, float)[..., None], 0.0, (2, 2),
                                                  "valid", (1, 1)),
    "example 3 (stride 2, 'same')": (np.array(EXAMPLES[3].input, float)[..., None],
                                     np.array(EXAMPLES[3].kernel, float)[..., None], 0.0, (2, 2), "same", (1, 1)),
    "2 channels, strides (2, 1), 'same'": (rng.integers(0, 10, (5, 4, 2)).astype(float),
                                          rng.integers(-2, 3, (2, 3, 2)).astype(float), 1.5, (2, 1), "same", (1, 1)),
    "explicit padding": (rng.integers(0, 10, (3, 4, 1)).astype(float), rng.integers(-2, 3, (2, 2, 1)).astype(float),
                         -1.0, (1, 2), ((1, 0), (2, 1)), (1, 1)),
    "stride 3 skips pixels": (rng.integers(0, 10, (5, 7, 1)).astype(float),
                              rng.integers(-2, 3, (2, 2, 1)).astype(float), 0.0, (3, 3), "valid", (1, 1)),
    "dilation 2": (rng.integers(0, 10, (4, 5, 1)).astype(float), rng.integers(-2, 3, (2, 2, 1)).astype(float), 0.5,
                   (1, 1), "same", (2, 2)),
}


def _traced(case, seed=0):
    x, kernel, bias, strides, padding, dilation = CASES[case]
    forward = trace_convolution(x, kernel, bias, strides=strides, padding=padding, dilation=dilation)
    return trace_backward(forward, seed=seed)


@pytest.mark.parametrize("case", CASES)
def test_gradients_are_the_layers(case):
    x, kernel, bias, strides, padding, dilation = CASES[case]
    trace = _traced(case)
    layer = Conv2D(1, kernel.shape[:2], strides=strides, padding=padding, dilation_rate=dilation, dtype="float64")
    layer.build((1, *x.shape))
    layer.set_weights([kernel[..., None], np.array([bias])])
    y = layer(x[None])
    np.testing.assert_allclose(y[0, :, :, 0], trace.forward.output)
    dx = layer.backward(trace.dy[None, :, :, None])
    dkernel, dbias = layer.get_gradients()
    np.testing.assert_allclose(trace.dx, dx[0], atol=1e-12)
    np.testing.assert_allclose(trace.dkernel, dkernel[..., 0], atol=1e-12)
    np.testing.assert_allclose(trace.dbias, dbias[0], atol=1e-12)


@pytest.mark.parametrize("case", [c for c in CASES if CASES[c][5] == (1, 1)])
def test_library_gradients_equal_the_loop_reference(case):
    x, kernel, bias, strides, padding, _ = CASES[case]
    trace = _traced(case)
    if isinstance(padding, str):
        rdx, rdkernel, rdbias = reference.conv2d_backward(trace.dy[None, :, :, None], x[None], kernel[..., None],
                                                          strides, padding)
    else:
        rdx, rdkernel, rdbias = reference.backward_with_padding(trace.dy[None, :, :, None], x[None], kernel[..., None],
                                                                strides, padding)
    np.testing.assert_allclose(trace.dx, rdx[0], atol=1e-12)
    np.testing.assert_allclose(trace.dkernel, rdkernel[..., 0], atol=1e-12)
    np.testing.assert_allclose(trace.dbias, rdbias[0], atol=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_terms_add_up_to_the_library_totals(case):
    trace = _traced(case, seed=3)
    assert np.isclose(trace.dy.sum(), trace.dbias)
    kh, kw, channels = trace.dkernel.shape
    for a in range(kh):
        for b in range(kw):
            for c in range(channels):
                terms = trace.kernel_terms(a, b, c)
                assert len(terms) == trace.dy.size  # one term per window
                for (i, j), (row, col), pixel, grad in terms:
                    assert pixel == trace.forward.padded[row, col, c] and grad == trace.dy[i, j]
                assert np.isclose(sum(p * g for _, _, p, g in terms), trace.dkernel[a, b, c])
    hp, wp, _ = trace.dx_padded.shape
    for row in range(hp):
        for col in range(wp):
            for c in range(channels):
                landed = trace.landing(row, col, c)  # [((i, j), (a, b), kernel[a, b, c], dy[i, j])]
                assert np.isclose(sum(k * g for _, _, k, g in landed), trace.dx_padded[row, col, c])
    (top, _), (left, _) = trace.forward.padding
    h, w, _ = trace.dx.shape
    np.testing.assert_array_equal(trace.dx_padded[top:top + h, left:left + w], trace.dx)


def _printed_sums(text, name):
    """{index: (value of the printed terms, printed total)} for lines 'name[...] = a*b + c*d + ... = total'."""
    found = {}
    for index, expression, total in re.findall(rf"^  {name}\[([\d, ]+)\] = ([-\d.*+() ]+) = (-?[\d.]+)$", text,
                                               re.MULTILINE):
        assert re.fullmatch(r"[-\d.*+() ]+", expression)
        found[tuple(int(v) for v in index.split(", "))] = (eval(expression), float(total))  # digits and + - * ( )
    return found


@pytest.mark.parametrize("case", CASES)
def test_printed_terms_evaluate_to_the_printed_library_totals(case):
    trace = _traced(case)
    text = render_backward(trace)
    sums = _printed_sums(text, "dkernel")
    assert len(sums) == trace.dkernel.size
    for index, (value, total) in sums.items():
        index = index if len(index) == 3 else (*index, 0)
        assert value == pytest.approx(total) == pytest.approx(trace.dkernel[index])
    dbias = re.search(r"^  dbias = ([-\d. +]+) = (-?[\d.]+)$", text, re.MULTILINE)
    assert eval(dbias.group(1)) == pytest.approx(float(dbias.group(2))) == pytest.approx(trace.dbias)


def test_example3_scatters_through_the_stride_and_trims_the_padding():
    trace = trace_backward(EXAMPLES[3].trace(), seed=0)
    text = render_backward(trace)
    # output cell (2, 1) read padded rows 4-5, columns 2-3: its dy times the kernel lands there
    assert "rows 4-5, cols 2-3" in text
    step = trace.forward.steps[2 * 3 + 1]
    assert (step.rows, step.cols) == ([4, 5], [2, 3])
    np.testing.assert_array_equal(trace.dx_padded[4:6, 2:4, 0], trace.dy[2, 1] * trace.forward.kernel[:, :, 0])
    assert trace.dx_padded.shape == (6, 6, 1) and trace.dx.shape == (5, 5, 1)
    assert "Trimmed of the padding (top 0, bottom 1, left 0, right 1)" in text
    assert "(The windows do not overlap" in text  # 2x2 kernel, stride 2


def test_example2_overlapping_windows_add_up():
    text = render_backward(trace_backward(EXAMPLES[2].trace(), np.array([[1.0, 2.0], [3.0, 4.0]])))
    # padded[2, 2] is the corner of all four windows: kernel[2, 2]*1 + kernel[2, 0]*2 + kernel[0, 2]*3 + kernel[0, 0]*4
    assert "4 windows cover [2, 2]" in text
    assert "= 2*1 + 0*2 + 0*3 + 1*4 = 6" in text
    assert "No padding, so nothing to trim" in text


def test_stride_that_skips_pixels_says_they_get_zero():
    trace = _traced("stride 3 skips pixels")
    text = render_backward(trace)
    assert "get 0" in text
    assert not trace.dx[2].any() and not trace.dx[:, 2].any()  # row 2 and column 2: no window reads them


def test_golden_default(capsys):
    assert main(["explain", "--backward"]) == 0
    out = capsys.readouterr().out
    path = GOLDEN / "explain_backward_example3.txt"
    if UPDATE:
        path.write_text(out, encoding="utf-8")
    assert path.is_file(), f"{path} missing; run with CONVLAYER_UPDATE_GOLDEN=1 to create it"
    assert out == path.read_text(encoding="utf-8")
    assert out.startswith(EXAMPLES[3].title + ": the gradients")


def test_cli_own_numbers_and_dy(capsys):
    args = ["explain", "--backward", "--input", "1 2 3 4; 5 6 7 8", "--kernel", "1 -1", "--bias", "2", "--stride",
            "1,2", "--dy", "1 -1; 2 0"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "dy = dL/d output (2x2)" in out and "yours, from --dy" in out
    assert "dbias = 1 - 1 + 2 + 0 = 2" in out
    assert "dkernel[0, 0] = 1*1 + 3*(-1) + 5*2 + 7*0 = 8" in out  # the pixel under kernel[0, 0] in each window


def test_cli_steps_limit_the_scatter(capsys):
    assert main(["explain", "--backward", "--size", "5x5", "--kernel-size", "2x2", "--padding", "same",
                 "--steps", "2"]) == 0
    out = capsys.readouterr().out
    assert "23 more output cells not shown" in out
    assert "dx (5x5):" in out


@pytest.mark.parametrize("args, message", [
    (["--dy", "1 2"], "--dy needs one number per output cell, 3x3 (the output's shape), got 1x2"),
    (["--example", "1", "--dy", "1 | 2"], "got 1x1 with 2 channels"),
    (["--dy", "1"], "--dy (the output's gradient) goes with --backward"),
    (["--filters", "2"], "--backward explains one filter"),
    (["--padding", "1", "--padding-mode", "reflect"], "zero padding only"),
    (["--dy", "1 x"], "'x' is not a number"),
])
def test_cli_errors_are_one_line(args, message, capsys):
    extra = [] if args[0] == "--dy" and args[1] == "1" else ["--backward"]
    assert main(["explain", *extra, *args]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("convlayer explain: error:")
    assert message in lines[0]
