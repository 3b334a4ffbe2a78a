"""``convlayer draw``: frames and GIFs exist, have the expected size, are not blank, and follow the trace."""

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from convlayer.cli import main
from convlayer.viz import draw
from convlayer.viz.explain import EXAMPLES
from convlayer.viz.trace import trace_convolution

Image = pytest.importorskip("PIL.Image")


def _assert_picture(image, size):
    assert image.size == size
    pixels = np.asarray(image.convert("RGB"), dtype=np.float64)  # (H, W, 3)
    assert pixels.std() > 20, "picture looks blank"
    colours = np.unique(pixels.reshape(-1, 3), axis=0)
    assert len(colours) >= 6, f"only {len(colours)} colours"


def _colour_present(image, hex_colour):
    rgb = tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    pixels = np.asarray(image.convert("RGB"))
    return bool((pixels == rgb).all(axis=-1).any())


def test_layout_of_example2_in_pixels():
    box = draw.layout(EXAMPLES[2].trace())
    assert box.cell == 44 and box.numbers
    # 5 input + 2 output cells + 1.5 cells gap + margins; the caption line is wider still
    assert box.width >= 22 + 5 * 44 + 66 + 2 * 44 + 22
    assert (box.width, box.height) == (742, 376)  # the caption sets the width


@pytest.mark.parametrize("number, steps", [(1, 1), (2, 4), (3, 9)])
def test_frames_one_per_output_position_plus_result(number, steps):
    trace = EXAMPLES[number].trace()
    scenes = draw.frames(trace)
    assert len(scenes) == steps + 1
    box = draw.layout(trace)
    for scene in (scenes[0], scenes[-1]):
        _assert_picture(draw.to_image(scene), (box.width, box.height))


def test_window_and_padding_are_drawn():
    trace = EXAMPLES[3].trace()
    scenes = draw.frames(trace)
    first, last_step, result = (draw.to_image(scenes[i]) for i in (0, -2, -1))
    assert _colour_present(first, draw.WINDOW_FILL)
    assert _colour_present(first, draw.OUTPUT_CURRENT_FILL)
    assert _colour_present(last_step, draw.PAD_WINDOW_FILL)  # the window sits on the padded corner
    assert not _colour_present(result, draw.WINDOW_FILL)  # the result frame has no window
    # 36 padded cells, 11 of them padding (dashed); output: 9 cells
    rects = [item for item in scenes[0].items if isinstance(item, draw.Rect)]
    assert sum(r.dashed and r.stroke == draw.PAD_STROKE for r in rects) == 11
    assert sum(r.fill == draw.WINDOW_FILL for r in rects) == 4
    texts = [item.text for item in scenes[7].items if isinstance(item, draw.Text)]
    assert texts[-2:] == ["output[2, 1] = sum of (window \u00b7 kernel) + bias",
                          "= 22 \u00b7 1 + 23 \u00b7 1 + 0 \u00b7 1 + 0 \u00b7 1 + 0 = 45"]
    result_texts = [item.text for item in scenes[-1].items if isinstance(item, draw.Text)]
    assert result_texts[-2:] == trace.formulas


def test_dilation_window_cells_follow_the_trace():
    trace = trace_convolution(np.arange(36.0).reshape(6, 6), np.ones((2, 2)), dilation=2, strides=(1, 2))
    scene = draw.frames(trace)[1]  # output[0, 1]
    box = draw.layout(trace)
    windows = {(round((r.y - box.input_ys[0]) / box.cell), round((r.x - box.input_x) / box.cell))
               for r in scene.items if isinstance(r, draw.Rect) and r.fill == draw.WINDOW_FILL}
    step = trace.steps[1]
    assert windows == {(row, col) for row in step.rows for col in step.cols} == {(0, 2), (0, 4), (2, 2), (2, 4)}


def test_big_input_shrinks_cells_and_drops_numbers():
    trace = trace_convolution(np.zeros((40, 40)), np.ones((3, 3)), padding="same", strides=4)
    box = draw.layout(trace)
    assert box.cell < draw.NUMBERS_MIN_CELL and not box.numbers
    assert box.width < 1000
    with pytest.raises(ValueError, match="cell must be"):
        draw.layout(trace, cell=3)


def test_channels_stack_one_grid_per_channel():
    trace = trace_convolution(np.ones((3, 3, 2)), np.ones((2, 2, 2)), bias=1)
    box = draw.layout(trace)
    assert len(box.input_ys) == 2 and box.input_ys[1] > box.input_ys[0] + 3 * box.cell
    texts = [item.text for item in draw.frames(trace)[0].items if isinstance(item, draw.Text)]
    assert "= 4 (ch 0) + 4 (ch 1) + 1 (bias) = 9" in texts


def test_svg_is_well_formed():
    scene = draw.frames(EXAMPLES[3].trace())[4]
    root = ET.fromstring(draw.to_svg(scene))
    assert root.tag.endswith("svg") and root.get("width") == str(scene.width)
    rects = root.findall("{http://www.w3.org/2000/svg}rect")
    assert len(rects) == sum(isinstance(item, draw.Rect) for item in scene.items)
    assert any(r.get("stroke-dasharray") for r in rects)


def test_frame_paths():
    assert [p.name for p in draw.frame_paths("x/", 3, "png")] == ["frame_000.png", "frame_001.png", "frame_002.png"]
    assert [str(p) for p in draw.frame_paths("a/ex.svg", 1, "svg")] == ["a/ex_000.svg"]
    assert draw.frame_paths("p", 1200, "png")[-1].name == "p_1199.png"
    with pytest.raises(ValueError, match="frame format"):
        draw.frame_paths("p", 2, "jpg")


def test_write_gif_frames_and_size(tmp_path):
    trace = EXAMPLES[3].trace()
    path = draw.write_gif(trace, tmp_path / "ex3.gif", fps=4)
    box = draw.layout(trace)
    with Image.open(path) as gif:
        assert gif.n_frames == len(trace.steps) + 1
        assert gif.info.get("loop") == 0
        gif.seek(3)
        _assert_picture(gif, (box.width, box.height))
    assert path.stat().st_size < 200_000
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temp file
    with pytest.raises(ValueError, match="fps"):
        draw.gif_bytes(draw.frames(trace), fps=0)


# ---------------------------------------------------------------------------- CLI


def test_cli_draw_default_gif(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["draw", "--example", "2"]) == 0
    out = capsys.readouterr().out.split()
    assert out == ["convolution_example2.gif"]
    with Image.open(tmp_path / out[0]) as gif:
        assert gif.n_frames == 5


def test_cli_draw_png_frames_into_a_folder(tmp_path, capsys):
    folder = tmp_path / "frames"
    assert main(["draw", "--input", "1 2 3 4; 5 6 7 8; 9 10 11 12", "--kernel", "1 0; 0 1", "--padding", "same",
                 "--stride", "2", "--format", "png", "--out", f"{folder}/", "--cell", "30"]) == 0
    paths = capsys.readouterr().out.split()
    assert len(paths) == 2 * 2 + 1 and paths[0].endswith("frames/frame_000.png")
    for path in paths:
        with Image.open(path) as image:
            _assert_picture(image, image.size)
    trace = trace_convolution(np.arange(1.0, 13).reshape(3, 4), np.eye(2), strides=2, padding="same")
    box = draw.layout(trace, cell=30)
    with Image.open(paths[-1]) as image:
        assert image.size == (box.width, box.height)


def test_cli_draw_svg_prefix(tmp_path, capsys):
    assert main(["draw", "--example", "1", "--out", str(tmp_path / "ex1.svg")]) == 0
    paths = capsys.readouterr().out.split()
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["ex1_000.svg", "ex1_001.svg"]
    ET.parse(paths[0])


@pytest.mark.parametrize("args, message", [
    (["--out", "x.png", "--format", "svg"], "ends in .png but --format is svg"),
    (["--out", "movie.mp4"], "needs a .gif file name"),
    (["--kernel", "1 2; 3"], "row 2 has 1 number"),
    (["--size", "3x3", "--kernel", "1 | 2"], "one matrix per input channel"),
])
def test_cli_draw_errors(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["draw", *args]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("convlayer draw: error:") and message in err[0]
    assert list(tmp_path.iterdir()) == []


def test_docstring_examples_run():
    import doctest

    from convlayer.viz import commands, explain, figures

    for module in (draw, explain, figures, commands):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, f"{module.__name__}: {result.failed} failing docstring examples"
