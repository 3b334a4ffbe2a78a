"""Pictures of one convolution, for ``convlayer draw``: the kernel window moving over the
(padded) input and filling the output, in the style of vdumoulin's conv_arithmetic
animations (blue input grid, dashed white padding cells, a shaded kernel window, a green
output grid).

A frame is first built as a ``Scene``: a list of rectangles and texts with pixel
coordinates, computed from a ``ConvTrace`` only. Two small back ends draw a scene: Pillow
(PNG frames and the animated GIF) and plain SVG text. So every format shows the same
picture, and the geometry is tested once.

>>> from convlayer.viz.explain import EXAMPLES
>>> trace = EXAMPLES[3].trace()
>>> len(frames(trace))          # one per output position, plus the finished output
10
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from .explain import format_number
from .trace import ConvTrace

# conv_arithmetic's palette, roughly
INPUT_FILL, INPUT_STROKE, INPUT_TEXT = "#a6c8ea", "#2f5f8f", "#13314f"
WINDOW_FILL, WINDOW_TEXT = "#2e6db4", "#ffffff"
PAD_FILL, PAD_STROKE, PAD_TEXT = "#ffffff", "#8a8a8a", "#8a8a8a"
PAD_WINDOW_FILL = "#c9dcf2"
OUTPUT_EMPTY_STROKE = "#5b9a3c"
OUTPUT_FILL, OUTPUT_TEXT = "#bfe3a8", "#1f3d10"
OUTPUT_CURRENT_FILL, OUTPUT_CURRENT_TEXT = "#4c9a2a", "#ffffff"
TITLE_TEXT, CAPTION_TEXT, LABEL_TEXT = "#222222", "#333333", "#555555"
BACKGROUND = "#ffffff"

MAX_CELL, MIN_CELL = 44, 12
NUMBERS_MIN_CELL = 26  # below this cell size the values are left out (they would not fit)
CHAR_WIDTH = 0.56  # average glyph width / font size, to size frames without a font at hand
MAX_CAPTION_TERMS = 9
TIMES = "\u00b7"  # the middle dot (Latin-1, so every font has it; Pillow's default font lacks U+00D7)


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    w: float
    h: float
    fill: str
    stroke: str | None = None
    dashed: bool = False


@dataclass(frozen=True)
class Text:
    x: float  # anchor point; ``align`` says which end of the text sits there
    y: float  # vertical centre
    text: str
    size: int
    fill: str
    align: str = "middle"  # 'start', 'middle' or 'end'


@dataclass(frozen=True)
class Scene:
    width: int
    height: int
    items: tuple


@dataclass(frozen=True)
class Layout:
    """Pixel geometry shared by every frame of one trace."""

    cell: int
    margin: int
    title_y: float
    input_x: int
    input_ys: tuple  # top of each channel's grid
    output_x: int
    output_y: int
    caption_ys: tuple  # centre of each caption line
    width: int
    height: int
    font: int
    numbers: bool


def describe(trace: ConvTrace) -> str:
    """A one-line summary of the convolution's settings.

    >>> from convlayer.viz.explain import EXAMPLES
    >>> describe(EXAMPLES[3].trace())
    "5x5 input, 2x2 kernel, stride 2, 'same' padding ((0, 1), (0, 1)) -> 3x3 output"
    """
    h, w, c = trace.input.shape
    kh, kw = trace.kernel.shape[:2]
    channels = f"x{c}" if c > 1 else ""
    stride = str(trace.strides[0]) if trace.strides[0] == trace.strides[1] else f"{trace.strides}"
    dilation = "" if trace.dilation == (1, 1) else (
        f", dilation {trace.dilation[0]}" if trace.dilation[0] == trace.dilation[1] else f", dilation {trace.dilation}")
    pad = f"'{trace.padding_name}' padding" + ("" if trace.padding_name == "valid" else f" {trace.padding}")
    mode = "" if trace.padding_mode == "zeros" or trace.padding == ((0, 0), (0, 0)) else f" ({trace.padding_mode})"
    ho, wo = trace.output.shape
    return f"{h}x{w}{channels} input, {kh}x{kw} kernel, stride {stride}{dilation}, {pad}{mode} -> {ho}x{wo} output"


def _factor(value) -> str:
    text = format_number(value)
    return f"({text})" if text.startswith("-") else text


def _plus(value) -> str:
    """'+ 2' or '- 2' (never '+ -2')."""
    return f"- {format_number(-value)}" if value < 0 else f"+ {format_number(value)}"


def _captions(trace: ConvTrace) -> list[tuple[str, str]]:
    """Two caption lines per frame: the steps, then the finished output."""
    captions = []
    channels = trace.input.shape[2]
    for step in trace.steps:
        head = f"output[{step.out_row}, {step.out_col}] = sum of (window {TIMES} kernel) + bias"
        if channels == 1 and step.products.size <= MAX_CAPTION_TERMS:
            # Spaced: at caption size a bare middle dot between two digits reads as nothing ("80" for 8·0).
            terms = " + ".join(f"{_factor(v)} {TIMES} {_factor(k)}" for v, k in zip(step.window.ravel(),
                                                                                 trace.kernel.ravel()))
            body = f"= {terms} {_plus(trace.bias)} = {format_number(step.total)}"
        elif channels == 1:
            body = f"= {format_number(step.channel_sums[0])} {_plus(trace.bias)} = {format_number(step.total)}"
        else:
            parts = [(s, f" (ch {c})") for c, s in enumerate(step.channel_sums)] + [(trace.bias, " (bias)")]
            sums = "".join(("" if i == 0 else (" - " if v < 0 else " + ")) + format_number(abs(v) if i else v) + name
                           for i, (v, name) in enumerate(parts))
            body = f"= {sums} = {format_number(step.total)}"
        captions.append((head, body))
    captions.append(tuple(trace.formulas))
    return captions


def layout(trace: ConvTrace, cell: int | None = None) -> Layout:
    """Frame geometry: cell size, grid origins, caption lines and the frame's pixel size.

    >>> from convlayer.viz.explain import EXAMPLES
    >>> box = layout(EXAMPLES[2].trace())
    >>> (box.cell, box.width, box.height)
    (44, 742, 376)
    """
    hp, wp, channels = trace.padded.shape
    ho, wo = trace.output.shape
    if cell is None:
        # Width for the input and output side by side; the channels stack downwards and may take a
        # taller frame, so that several channels keep cells big enough for their numbers.
        cell = int(np.clip(min(600 // (wp + wo + 2), 1200 // (channels * (hp + 1))), MIN_CELL, MAX_CELL))
    elif isinstance(cell, bool) or not isinstance(cell, (int, np.integer)) or not MIN_CELL <= cell <= 200:
        raise ValueError(f"cell must be an integer number of pixels in {MIN_CELL}..200, got {cell!r}.")
    cell = int(cell)
    margin = cell // 2
    font = max(9, int(cell * 0.34))
    line = int(font * 1.8)
    title_y = margin + line / 2
    grid_top = margin + line + line  # title, then the grid labels
    channel_gap = line if channels > 1 else 0
    input_ys = tuple(grid_top + c * (hp * cell + channel_gap + line) for c in range(channels))
    input_bottom = input_ys[-1] + hp * cell
    output_x = margin + wp * cell + int(cell * 1.5)
    grids_bottom = max(input_bottom, grid_top + ho * cell)
    caption_ys = (grids_bottom + line, grids_bottom + 2 * line)
    text_chars = max(len(describe(trace)), *(len(t) for pair in _captions(trace) for t in pair))
    width = max(output_x + wo * cell + margin, 2 * margin + int(np.ceil(text_chars * CHAR_WIDTH * font)))
    height = int(caption_ys[-1] + line / 2 + margin)
    return Layout(cell, margin, title_y, margin, input_ys, output_x, grid_top, caption_ys, width, height, font,
                  cell >= NUMBERS_MIN_CELL)


def frames(trace: ConvTrace, *, cell: int | None = None) -> list[Scene]:
    """Every frame: one per output position (window shaded, output filled so far), then the result."""
    box = layout(trace, cell)
    captions = _captions(trace)
    return [_frame(trace, box, index, captions[index]) for index in range(len(trace.steps) + 1)]


def frames_sample(trace: ConvTrace, *, cell: int | None = None) -> Scene:
    """The first frame alone (to estimate a drawing's size before rendering all of it)."""
    return _frame(trace, layout(trace, cell), 0, _captions(trace)[0])


def _frame(trace: ConvTrace, box: Layout, index: int, caption: tuple[str, str]) -> Scene:
    hp, wp, channels = trace.padded.shape
    (top, bottom), (left, right) = trace.padding
    cell, font = box.cell, box.font
    step = trace.steps[index] if index < len(trace.steps) else None
    under = np.zeros((hp, wp), bool)  # (Hp, Wp) cells under the kernel
    kernel_at = {}
    if step is not None:
        under[np.ix_(step.rows, step.cols)] = True
        kernel_at = {(r, c): (i, j) for i, r in enumerate(step.rows) for j, c in enumerate(step.cols)}
    items = [Rect(0, 0, box.width, box.height, BACKGROUND),
             Text(box.margin, box.title_y, describe(trace), font, TITLE_TEXT, "start")]
    label_dy = -font
    for ch, gy in enumerate(box.input_ys):
        label = "input" + ("" if trace.padding == ((0, 0), (0, 0)) else " (padded)") + \
            (f", channel {ch}" if channels > 1 else "")
        items.append(Text(box.input_x, gy + label_dy, label, font, LABEL_TEXT, "start"))
        for r in range(hp):
            for c in range(wp):
                is_pad = not (top <= r < hp - bottom and left <= c < wp - right)
                x, y = box.input_x + c * cell, gy + r * cell
                if is_pad:
                    fill, text_fill = (PAD_WINDOW_FILL if under[r, c] else PAD_FILL), PAD_TEXT
                    items.append(Rect(x, y, cell, cell, fill, PAD_STROKE, dashed=True))
                else:
                    fill, text_fill = (WINDOW_FILL, WINDOW_TEXT) if under[r, c] else (INPUT_FILL, INPUT_TEXT)
                    items.append(Rect(x, y, cell, cell, fill, INPUT_STROKE))
                if not box.numbers:
                    continue
                value_y = y + cell / 2 - (cell * 0.1 if under[r, c] else 0)
                items.append(Text(x + cell / 2, value_y, format_number(trace.padded[r, c, ch]), font, text_fill))
                if under[r, c]:
                    i, j = kernel_at[(r, c)]
                    weight = "x" + format_number(trace.kernel[i, j, ch])
                    items.append(Text(x + cell - 3, y + cell - font * 0.45, weight, max(7, int(font * 0.7)),
                                      text_fill if not is_pad else INPUT_STROKE, "end"))
    items.append(Text(box.output_x, box.output_y + label_dy, "output", font, LABEL_TEXT, "start"))
    done = len(trace.steps) if step is None else index
    for k, s in enumerate(trace.steps):
        x, y = box.output_x + s.out_col * cell, box.output_y + s.out_row * cell
        if k < done or step is None:
            items.append(Rect(x, y, cell, cell, OUTPUT_FILL, OUTPUT_EMPTY_STROKE))
            text_fill = OUTPUT_TEXT
        elif k == done:
            items.append(Rect(x, y, cell, cell, OUTPUT_CURRENT_FILL, OUTPUT_EMPTY_STROKE))
            text_fill = OUTPUT_CURRENT_TEXT
        else:
            items.append(Rect(x, y, cell, cell, BACKGROUND, OUTPUT_EMPTY_STROKE, dashed=True))
            continue
        if box.numbers:
            items.append(Text(x + cell / 2, y + cell / 2, format_number(s.total), font, text_fill))
    for line_y, text in zip(box.caption_ys, caption):
        items.append(Text(box.margin, line_y, text, font, CAPTION_TEXT, "start"))
    return Scene(box.width, box.height, tuple(items))


# ---------------------------------------------------------------------------- back ends


def _pil():
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:  # pragma: no cover - Pillow is in the viz extra
        raise ImportError("drawing frames needs Pillow: pip install pillow") from None
    return Image, ImageDraw, ImageFont


_FONTS: dict = {}


def _font(size: int):
    _, _, ImageFont = _pil()
    if size not in _FONTS:
        try:
            _FONTS[size] = ImageFont.load_default(size)  # scalable (Pillow >= 10.1 with FreeType)
        except (TypeError, ImportError, OSError):  # pragma: no cover - older Pillow: fixed bitmap font
            _FONTS[size] = ImageFont.load_default()
    return _FONTS[size]


def _dashed_rect(draw, x0, y0, x1, y1, colour, dash=4):
    for a, b, fixed, horizontal in ((x0, x1, y0, True), (x0, x1, y1, True), (y0, y1, x0, False),
                                    (y0, y1, x1, False)):
        for start in np.arange(a, b, 2 * dash):
            end = min(start + dash, b)
            draw.line([(start, fixed), (end, fixed)] if horizontal else [(fixed, start), (fixed, end)], fill=colour)


def to_image(scene: Scene):
    """Draw a scene with Pillow; returns an RGB ``PIL.Image`` of ``scene.width`` x ``scene.height``."""
    Image, ImageDraw, _ = _pil()
    image = Image.new("RGB", (scene.width, scene.height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for item in scene.items:
        if isinstance(item, Rect):
            x0, y0, x1, y1 = item.x, item.y, item.x + item.w - 1, item.y + item.h - 1
            draw.rectangle([x0, y0, x1, y1], fill=item.fill,
                           outline=None if item.dashed or item.stroke is None else item.stroke)
            if item.dashed and item.stroke:
                _dashed_rect(draw, x0, y0, x1, y1, item.stroke)
        else:
            font = _font(item.size)
            text = item.text
            left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
            width = right - left
            x = {"start": item.x, "middle": item.x - width / 2, "end": item.x - width}[item.align] - left
            y = item.y - (top + bottom) / 2
            draw.text((x, y), text, fill=item.fill, font=font)
    return image


def to_svg(scene: Scene) -> str:
    """The scene as a standalone SVG document (text)."""
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{scene.width}" height="{scene.height}" '
             f'viewBox="0 0 {scene.width} {scene.height}" font-family="DejaVu Sans, Arial, sans-serif">']
    for item in scene.items:
        if isinstance(item, Rect):
            stroke = "" if item.stroke is None else f' stroke="{item.stroke}" stroke-width="1"'
            dash = ' stroke-dasharray="4 4"' if item.dashed else ""
            parts.append(f'<rect x="{item.x + 0.5:g}" y="{item.y + 0.5:g}" width="{item.w - 1:g}" '
                         f'height="{item.h - 1:g}" fill="{item.fill}"{stroke}{dash}/>')
        else:
            parts.append(f'<text x="{item.x:g}" y="{item.y:g}" font-size="{item.size}" fill="{item.fill}" '
                         f'text-anchor="{item.align}" dominant-baseline="central">{escape(item.text)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def gif_bytes(scenes: list[Scene], fps: float = 1.5, hold_last: float = 3.0) -> bytes:
    """An animated GIF (looping) of the scenes; the last frame stays ``hold_last`` times longer."""
    if not fps > 0:
        raise ValueError(f"fps must be a positive number of frames per second, got {fps!r}.")
    Image, _, _ = _pil()
    images = [to_image(s).quantize(colors=64, method=Image.Quantize.MEDIANCUT) for s in scenes]
    frame_ms = max(20, int(round(1000 / fps)))
    durations = [frame_ms] * (len(images) - 1) + [int(frame_ms * hold_last)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0,
                   optimize=False, disposal=1)
    return buffer.getvalue()


def png_bytes(scene: Scene) -> bytes:
    buffer = io.BytesIO()
    to_image(scene).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


# ---------------------------------------------------------------------------- files


FRAME_FORMATS = ("png", "svg")


def frame_paths(out, count: int, fmt: str) -> list[Path]:
    """Where ``count`` frames go: ``DIR/frame_000.png`` for a folder (existing, or written with a
    trailing '/'), else ``PREFIX_000.png``.

    >>> [p.name for p in frame_paths("steps/", 2, "svg")]
    ['frame_000.svg', 'frame_001.svg']
    >>> [str(p) for p in frame_paths("out/ex3", 1, "png")]
    ['out/ex3_000.png']
    """
    if fmt not in FRAME_FORMATS:
        raise ValueError(f"frame format must be one of {', '.join(FRAME_FORMATS)}, got {fmt!r}.")
    text = str(out)
    path = Path(text)
    digits = max(3, len(str(count - 1)))
    if text.endswith(("/", "\\")) or path.is_dir():
        return [path / f"frame_{i:0{digits}d}.{fmt}" for i in range(count)]
    if path.suffix.lower() in (".png", ".svg"):
        path = path.with_suffix("")
    return [path.with_name(f"{path.name}_{i:0{digits}d}.{fmt}") for i in range(count)]


def _write(path: Path, data: bytes) -> Path:
    from ..fileio import atomic_write_bytes

    atomic_write_bytes(path, lambda f: f.write(data))
    return path


def write_png(scene: Scene, path) -> Path:
    """Write one frame as PNG (atomically); returns the path."""
    return _write(Path(path), png_bytes(scene))


def write_gif(trace: ConvTrace, path, *, fps: float = 1.5, cell: int | None = None) -> Path:
    """Write the animation of ``trace`` to ``path`` (atomically); returns the path."""
    return _write(Path(path), gif_bytes(frames(trace, cell=cell), fps))


def write_frames(trace: ConvTrace, out, fmt: str = "png", *, cell: int | None = None) -> list[Path]:
    """Write every frame as PNG or SVG (see ``frame_paths``), atomically; returns the paths."""
    scenes = frames(trace, cell=cell)
    paths = frame_paths(out, len(scenes), fmt)
    for scene, path in zip(scenes, paths):
        _write(path, png_bytes(scene) if fmt == "png" else to_svg(scene).encode("utf-8"))
    return paths
