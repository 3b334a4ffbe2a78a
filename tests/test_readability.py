"""What a learner reads: formulas, signs, alignment, messages in the CLI's own words, several filters."""

import numpy as np

from convlayer.cli import main
from convlayer.viz import draw
from convlayer.viz.explain import matrix_lines
from convlayer.viz.trace import trace_convolution


def test_draw_keeps_the_multiplication_sign_readable_before_a_zero_and_never_writes_plus_minus():
    x = np.array([[8, 5, 3], [9, 1, 0], [2, 2, 2]], np.float64)[:, :, None]
    kernel = np.array([[0, 1, 1], [0, 1, 0], [1, 1, 1]], np.float64)[:, :, None]
    trace = trace_convolution(x, kernel, -2.0)
    caption = [t.text for t in draw.frames(trace)[0].items if isinstance(t, draw.Text)][-1]
    assert caption.startswith("= 8 \u00b7 0 + 5 \u00b7 1 + 3 \u00b7 1 + 9 \u00b7 0")
    assert caption.endswith("- 2 = 13") and "+ -" not in caption


def test_several_channels_keep_cells_big_enough_for_numbers():
    x = np.arange(5 * 5 * 4, dtype=np.float64).reshape(5, 5, 4)
    box = draw.layout(trace_convolution(x, np.ones((3, 3, 4, )), 0.0))
    assert box.numbers and box.cell >= draw.NUMBERS_MIN_CELL


def test_explain_subtracts_a_negative_bias_and_aligns_padding_with_decimals(capsys):
    assert main(["explain", "--input", "0.5 0.25; 1 2", "--kernel", "1 -1; 0.5 1", "--padding", "same",
                 "--bias", "-0.25"]) == 0
    out = capsys.readouterr().out
    assert "plus bias -0.25: 2.75 - 0.25 = 2.5" in out and "+ -" not in out
    assert "   0.5    0.25  (0)\n   1      2     (0)\n  (0)    (0)    (0)" in out
    assert matrix_lines(np.array([[0.25, 1.5], [0, 2]]), np.array([[0, 0], [1, 0]], bool)) == \
        [" 0.25   1.5", "(0)     2"]


def test_cli_messages_use_the_cli_flags_and_give_the_sizes(capsys):
    assert main(["explain", "--size", "3x3", "--kernel-size", "5x5"]) == 1
    assert "--padding same" in capsys.readouterr().err
    assert main(["explain", "--size", "3x3", "--padding", "3", "--padding-mode", "reflect"]) == 1
    err = capsys.readouterr().err
    assert "top 3, bottom 3 of 3 rows" in err and "left 3, right 3 of 3 columns" in err


def test_explain_shows_a_layer_of_several_filters(capsys):
    kernels = "1 0; 0 1 / 0 1; 1 0"
    assert main(["explain", "--input", "1 2 3; 4 5 6; 7 8 9", "--kernel", kernels]) == 0
    out = capsys.readouterr().out
    assert "Filter 0 of 2" in out and "Filter 1 of 2" in out
    assert "The layer's output: 2x2x2" in out
    assert "    6    8       6    8\n   12   14      12   14" in out  # 1+5, 2+6 / 2+4, 3+5 ...
    assert main(["explain", "--filters", "3", "--kernel", kernels]) == 1
    assert "needs 3 kernels" in capsys.readouterr().err
