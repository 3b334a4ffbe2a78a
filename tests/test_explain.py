"""``convlayer explain``: the lesson's three examples as golden text, the parsers, the CLI and its errors.

Regenerate the golden files after an intended change of wording:
    CONVLAYER_UPDATE_GOLDEN=1 pytest tests/test_explain.py
"""

import os
from pathlib import Path

import numpy as np
import pytest

from convlayer.cli import main
from convlayer.functional.conv import conv2d_forward
from convlayer.viz import explain
from convlayer.viz.explain import EXAMPLES, parse_matrix, parse_padding, render_trace
from convlayer.viz.trace import trace_convolution

GOLDEN = Path(__file__).parent / "golden"
UPDATE = bool(os.environ.get("CONVLAYER_UPDATE_GOLDEN"))


def _example_text(number: int) -> str:
    example = EXAMPLES[number]
    return render_trace(example.trace(), title=example.title, note=example.note)


@pytest.mark.parametrize("number", [1, 2, 3])
def test_examples_match_golden_text(number):
    text = _example_text(number) + "\n"
    path = GOLDEN / f"explain_example{number}.txt"
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"{path} missing; run with CONVLAYER_UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("number", [1, 2, 3])
def test_cli_example_prints_the_golden_text(number, capsys):
    assert main(["explain", "--example", str(number)]) == 0
    out = capsys.readouterr().out
    assert out == (GOLDEN / f"explain_example{number}.txt").read_text(encoding="utf-8")


def test_example1_is_one_dot_product_plus_bias():
    trace = EXAMPLES[1].trace()
    assert trace.output.tolist() == [[7.5]]  # as worked out by hand in test_conv_lesson.py
    text = _example_text(1)
    assert "sum of products: 1 + 0 + 0 + 0 + 1 + 0 + 0 - 1 + 6 = 7" in text
    assert "plus bias 0.5: 7 + 0.5 = 7.5" in text
    assert "floor((3 + 0 + 0 - 3) / 1) + 1 = 1" in text


def test_example2_stride_2_gives_2x2():
    trace = EXAMPLES[2].trace()
    assert trace.padding == ((0, 0), (0, 0))
    assert trace.output.tolist() == [[24, 30], [54, 60]]
    text = _example_text(2)
    assert text.count("\nStep ") == 4
    assert "floor((5 + 0 + 0 - 3) / 2) + 1 = 2" in text
    assert "the kernel covers rows 2-4, columns 2-4" in text


def test_example3_same_padding_adds_one_row_bottom_one_column_right():
    trace = EXAMPLES[3].trace()
    assert trace.padding == ((0, 1), (0, 1))
    assert trace.output.tolist() == [[12, 20, 13], [52, 60, 33], [41, 45, 24]]
    text = _example_text(3)
    assert "i.e. ((0, 1), (0, 1))" in text
    assert "0 at the top, 1 at the bottom" in text and "0 at the left, 1 at the right" in text
    assert "floor((5 + 0 + 1 - 2) / 2) + 1 = 3" in text
    assert "  (0)  (0)  (0)  (0)  (0)  (0)" in text  # the padded bottom row, marked
    assert "sum of products: 24 + 0 + 0 + 0 = 24" in text  # the corner window: one pixel, three zeros
    assert text.count("\nStep ") == 9
    # without padding, the lesson's point: the last row and column are never used
    valid = trace_convolution(np.array(EXAMPLES[3].input, float), np.array(EXAMPLES[3].kernel, float),
                              strides=2, padding="valid")
    assert valid.output.shape == (2, 2)
    assert "(the last 1 never used)" in render_trace(valid)


def test_examples_agree_with_conv2d_forward():
    for example in EXAMPLES.values():
        x = np.array(example.input, float)[None, :, :, None]  # (1, H, W, 1)
        kernel = np.array(example.kernel, float)[:, :, None, None]  # (kh, kw, 1, 1)
        from convlayer.functional.shapes import normalize_padding, resolve_padding
        pads = resolve_padding(normalize_padding(example.padding), x.shape[1:3], kernel.shape[:2], example.strides,
                               (1, 1))
        y, _ = conv2d_forward(x, kernel, np.array([example.bias]), strides=example.strides, padding=pads,
                              dilation=(1, 1), keep_cache=False)
        np.testing.assert_allclose(example.trace().output, y[0, :, :, 0])


def test_channels_show_per_channel_sums_adding_up():
    x = parse_matrix("1 2; 3 4 | 5 6; 7 8")
    kernel = parse_matrix("1 0; 0 1 | 0 1; 1 0")
    text = render_trace(trace_convolution(x, kernel, bias=0.5))
    assert "channel 0:" in text and "channel 1:" in text
    assert "sum of products: 1 + 0 + 0 + 4 = 5" in text
    assert "sum of products: 0 + 6 + 7 + 0 = 13" in text
    assert "channel sums plus bias: 5 + 13 + 0.5 = 18.5   -> output[0, 0] = 18.5" in text


def test_step_limits():
    trace = trace_convolution(np.arange(36.0).reshape(6, 6), np.ones((2, 2)), padding="same")
    assert len(trace.steps) == 36
    default = render_trace(trace)
    assert default.count("\nStep ") == explain.SHORT_STEPS and "32 more steps not shown" in default
    assert render_trace(trace, max_steps=36).count("\nStep ") == 36
    assert render_trace(trace, max_steps=0).count("\nStep ") == 0
    assert "Output (6x6):" in render_trace(trace, max_steps=0)


def test_dilation_and_reflect_padding_are_explained():
    trace = trace_convolution(np.arange(16.0).reshape(4, 4), np.ones((2, 2)), padding=((1, 0), (0, 1)),
                              dilation=2, padding_mode="reflect")
    text = render_trace(trace, max_steps=1)
    assert "Dilation: 2 down, 2 across" in text
    assert "padding_mode='reflect'" in text and "(v) = padding (reflect)" in text
    assert "rows 0, 2, columns 0, 2" in text
    assert "((2 - 1) * 2 + 1)" in text  # the dilated span in the formula


def test_number_formatting():
    assert [explain.format_number(v) for v in (2.0, -3.0, 0.5, -0.0, 1 / 3, 1e20)] == \
        ["2", "-3", "0.5", "0", "0.3333", "100000000000000000000"]


# ---------------------------------------------------------------------------- parsers


def test_parse_matrix_forms():
    assert parse_matrix("1 2 3; 4 5 6")[..., 0].tolist() == [[1, 2, 3], [4, 5, 6]]
    assert parse_matrix("1,2\n3,4").shape == (2, 2, 1)
    assert parse_matrix("-1.5 2e1").tolist() == [[[-1.5], [20.0]]]
    assert parse_matrix(" 1 2 ; 3 4 ; ").shape == (2, 2, 1)


@pytest.mark.parametrize("text, message", [
    ("", "expected numbers"),
    ("1 2; 3", "row 2 has 1 number but row 1 has 2"),
    ("1 x", "'x' is not a number"),
    ("1 2 | 1 2; 3 4", "every channel must have the same size"),
    ("1 2 |", "channel 2 is empty"),
    ("1 inf", "finite"),
])
def test_parse_matrix_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_matrix(text)


def test_parse_padding_and_pairs():
    assert parse_padding("valid") == "valid"
    assert parse_padding("1") == ((1, 1), (1, 1))
    assert parse_padding("1,2") == ((1, 1), (2, 2))
    assert parse_padding("0 1 2 3") == ((0, 1), (2, 3))
    assert explain.parse_pair("2", "stride") == (2, 2)
    assert explain.parse_size("3x4") == (3, 4)
    for bad in ("full", "1,2,3", "-1"):
        with pytest.raises(ValueError, match="padding must be"):
            parse_padding(bad)
    for bad in ("0", "a", "1,2,3"):
        with pytest.raises(ValueError, match="stride must be"):
            explain.parse_pair(bad, "stride")
    with pytest.raises(ValueError, match="ROWSxCOLUMNS"):
        explain.parse_size("0x3")
    with pytest.raises(ValueError, match="X,Y,W,H"):
        explain.parse_crop("1,2,3")


def test_image_crop(tmp_path):
    from PIL import Image

    pixels = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5  # (H, W)
    path = tmp_path / "ramp.png"
    Image.fromarray(pixels).save(path)
    crop = explain.image_crop(path, (2, 1, 3, 2))
    assert crop.shape == (2, 3, 1)
    assert crop[..., 0].tolist() == pixels[1:3, 2:5].astype(float).tolist()
    assert explain.image_crop(path, None).shape == (6, 8, 1)
    with pytest.raises(ValueError, match="only 8x6 pixels"):
        explain.image_crop(path, (6, 0, 3, 2))


# ---------------------------------------------------------------------------- CLI


def test_cli_default_is_example1_with_a_hint(capsys):
    assert main(["explain"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Example 1: a matrix dot product plus a bias")
    assert "--example 2" in out.splitlines()[-1]


def test_cli_all_examples(capsys):
    assert main(["explain", "--example", "all"]) == 0
    out = capsys.readouterr().out
    for number in (1, 2, 3):
        assert EXAMPLES[number].title in out


def test_cli_own_numbers(capsys):
    args = ["explain", "--input", "1 2 3; 4 5 6; 7 8 9", "--kernel", "1 0; 0 -1", "--bias", "2", "--stride", "1",
            "--padding", "valid"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "sum of products: 1 + 0 + 0 - 5 = -4" in out
    assert "plus bias 2: -4 + 2 = -2" in out
    assert out.rstrip().endswith("-2   -2\n   -2   -2")


def test_cli_overrides_an_example(capsys):
    assert main(["explain", "--example", "3", "--padding", "valid", "--steps", "1"]) == 0
    out = capsys.readouterr().out
    assert "(changed by your flags)" in out and "Output (2x2):" in out
    assert out.count("\nStep ") == 1 and "3 more steps not shown" in out


def test_cli_size_channels_and_random_kernel(capsys):
    assert main(["explain", "--size", "4x5", "--channels", "2", "--seed", "3", "--kernel-size", "2x2",
                 "--padding", "same", "--dilation", "1", "--padding-mode", "replicate", "--all"]) == 0
    out = capsys.readouterr().out
    assert "Input (4x5, 2 channels):" in out and out.count("\nStep ") == 20
    assert "channel sums plus bias" in out


def test_cli_image_crop(tmp_path, capsys):
    from PIL import Image

    path = tmp_path / "img.png"
    Image.fromarray(np.full((10, 10), 255, np.uint8)).save(path)
    assert main(["explain", "--image", str(path), "--crop", "1,1,4,4", "--kernel", "1 1; 1 1", "--stride", "2"]) == 0
    out = capsys.readouterr().out
    assert "grayscale 0 (black) .. 255 (white)" in out
    assert out.rstrip().endswith("1020   1020\n   1020   1020")


@pytest.mark.parametrize("args, message", [
    (["--input", "1 2; 3"], "row 2 has 1 number but row 1 has 2"),
    (["--input", "1 2; 3 4 | 5 6; 7 8", "--kernel", "1"], "one matrix per input channel: the input has 2 channels"),
    (["--input", "1 2; 3 4", "--kernel", "1 2 3; 4 5 6; 7 8 9"], "does not fit"),
    (["--image", "no/such.png"], "not found"),
    (["--crop", "0,0,2,2"], "--crop goes with --image"),
    (["--input", "1 2", "--channels", "2"], "--channels goes with --size"),
    (["--stride", "0"], "--stride must be"),
    (["--padding", "full"], "padding must be"),
    (["--all", "--steps", "2"], "either --all or --steps"),
    (["--kernel", "1", "--kernel-size", "2x2"], "not both"),
])
def test_cli_errors_are_one_line(args, message, capsys):
    assert main(["explain", *args]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("convlayer explain: error:")
    assert message in lines[0]


def test_cli_big_image_needs_a_crop(tmp_path, capsys):
    from PIL import Image

    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((70, 80), np.uint8)).save(path)
    assert main(["explain", "--image", str(path)]) == 1
    assert "70x80 input, too big to trace" in capsys.readouterr().err


def test_cli_crop_outside_image(tmp_path, capsys):
    from PIL import Image

    path = tmp_path / "small.png"
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(path)
    assert main(["explain", "--image", str(path), "--crop", "3,3,4,4"]) == 1
    assert "only 5x5 pixels" in capsys.readouterr().err
