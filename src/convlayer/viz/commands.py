"""The "Learn" commands: ``convlayer explain``, ``convlayer draw`` and ``convlayer show ...``.

``register(subparsers)`` adds them to the CLI (``convlayer.cli`` imports this module).
These command functions are the only place in ``viz`` that prints: each prints what it
explains or the paths it wrote. User mistakes raise ValueError / FileNotFoundError with one
line saying what is wrong; ``cli.main`` prints it and exits with status 1.

Input for ``explain`` and ``draw`` (one of; none means the lesson's example 1):

* ``--example 1|2|3`` - the lesson's worked examples (``explain`` also takes ``all``); any
  other flag given as well overrides the example's value, e.g. ``--example 3 --padding valid``.
* ``--input "1 2 3; 4 5 6; 7 8 9"`` - rows separated by ';', numbers by spaces or commas,
  channels by '|'.
* ``--size 5x5 [--channels 2] [--seed 0]`` - random integers 0..9.
* ``--image PATH [--crop X,Y,W,H]`` - a grayscale crop of an image file, as integers 0..255.

The kernel is ``--kernel`` in the same syntax (one matrix per input channel), or random
integers -1..1 of ``--kernel-size`` (default 3x3).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..clitools import (UsageError, add_preprocess_option, finite_float, load_checkpoint, non_negative_int, output_dir,
                        output_path, positive_float, positive_int, say)

INPUT_FLAGS = ("input", "size", "image")
DEFAULT_KERNEL_SIZE = (3, 3)
MISTAKES_COUNT = 24
MAX_FRAMES = 200  # one frame per output cell: 12x12 outputs; a 64x64 input would make a 100 MB GIF


# ---------------------------------------------------------------------------- explain and draw: input


def _add_input_options(parser, *, examples):
    from ..functional.padding import PADDING_MODES

    group = parser.add_argument_group("what to convolve (default: the lesson's example 1)")
    group.add_argument("--example", choices=examples, help="one of the lesson's worked examples: 1) a 3x3 kernel "
                       "dot product plus bias on a 3x3 input, 2) a 3x3 kernel with stride 2 on 5x5, 3) a 2x2 "
                       "kernel with stride 2 and 'same' padding on 5x5; other flags override its values")
    source = group.add_mutually_exclusive_group()
    source.add_argument("--input", metavar="MATRIX",
                        help="numbers: rows separated by ';', values by spaces or commas, channels by '|', "
                             "e.g. \"1 2 3; 4 5 6; 7 8 9\"")
    source.add_argument("--size", metavar="RxC", help="a random input of this size (integers 0..9), e.g. 5x5")
    source.add_argument("--image", metavar="PATH", help="a PNG/JPEG; its grayscale pixels (0..255) are the input")
    group.add_argument("--crop", metavar="X,Y,W,H", help="with --image: left, top, width, height in pixels")
    group.add_argument("--channels", type=positive_int, help="with --size: input channels (default 1)")
    group.add_argument("--seed", type=non_negative_int, default=0, help="for random inputs and kernels (default 0)")
    conv = parser.add_argument_group("the filter and the convolution (default: the example's, else as Conv2D)")
    conv.add_argument("--kernel", metavar="MATRIX", help="the kernel, same syntax as --input, one matrix per input "
                                                          "channel separated by '|'")
    conv.add_argument("--kernel-size", metavar="KxK",
                      help="size of a random kernel (integers -1..1) when --kernel is not given (default 3x3)")
    conv.add_argument("--bias", type=finite_float, help="the filter's bias (default 0)")
    conv.add_argument("--stride", metavar="S|SV,SH", help="stride, e.g. 2 or 2,1 (default 1)")
    conv.add_argument("--padding", metavar="P",
                      help="'valid' (default), 'same', or explicit: N, 'ROWS,COLS' or 'TOP,BOTTOM,LEFT,RIGHT'")
    conv.add_argument("--dilation", metavar="D|DV,DH", help="dilation rate, e.g. 2 (default 1)")
    conv.add_argument("--padding-mode", choices=PADDING_MODES, help="what padded cells hold (default zeros)")


def traces_from_args(args) -> list[tuple]:
    """The convolutions the flags describe, as [(trace, title, note)]: several only for ``--example all``."""
    from .explain import EXAMPLES

    chosen = getattr(args, "example", None)
    given_input = any(getattr(args, flag, None) is not None for flag in INPUT_FLAGS)
    if chosen == "all":
        numbers = sorted(EXAMPLES)
    elif chosen is not None:
        numbers = [int(chosen)]
    elif not given_input:
        numbers = [1]
    else:
        numbers = [None]
    return [_trace(args, EXAMPLES.get(number)) for number in numbers]


def _trace(args, example):
    from . import explain
    from .trace import MAX_TRACE_SIZE, trace_convolution

    if args.crop is not None and args.image is None:
        raise ValueError("--crop goes with --image PATH (the picture to crop).")
    if args.channels is not None and args.size is None:
        raise ValueError("--channels goes with --size (for --input, separate the channels with '|').")
    if args.kernel is not None and args.kernel_size is not None:
        raise ValueError("pass either --kernel (the numbers) or --kernel-size (a random kernel), not both.")
    title, note = "", ""
    if args.input is not None:
        x = explain.parse_matrix(args.input, "--input")
    elif args.size is not None:
        x = explain.random_input(explain.parse_size(args.size, "--size"), args.channels or 1, args.seed)
    elif args.image is not None:
        crop = None if args.crop is None else explain.parse_crop(args.crop)
        x = explain.image_crop(args.image, crop)
        if max(x.shape[:2]) > MAX_TRACE_SIZE:
            raise ValueError(f"{args.image} gives a {x.shape[0]}x{x.shape[1]} input, too big to trace (at most "
                             f"{MAX_TRACE_SIZE} pixels a side); pick a small part with --crop X,Y,W,H, e.g. "
                             "--crop 10,10,6,6.")
        where = "" if crop is None else \
            f", pixels x {crop[0]}..{crop[0] + crop[2] - 1}, y {crop[1]}..{crop[1] + crop[3] - 1}"
        note = f"Input: {args.image}{where}, grayscale 0 (black) .. 255 (white)."
    else:
        x = np.array(example.input, np.float64)[:, :, None]  # (H, W, 1)
        title, note = example.title, example.note
    channels = x.shape[2]
    if args.kernel is not None:
        kernel = explain.parse_matrix(args.kernel.split("/")[getattr(args, "filter_index", 0)], "--kernel")
        if kernel.shape[2] != channels:
            raise ValueError(f"the kernel needs one matrix per input channel: the input has {channels} channel"
                             f"{'s' if channels > 1 else ''} but --kernel has {kernel.shape[2]}; separate the "
                             "channels' matrices with '|'.")
    elif example is not None and args.kernel_size is None and channels == 1:
        kernel = np.array(example.kernel, np.float64)[:, :, None]  # (kh, kw, 1)
    else:
        size = DEFAULT_KERNEL_SIZE if args.kernel_size is None else explain.parse_size(args.kernel_size,
                                                                                       "--kernel-size")
        kernel = explain.random_kernel(size, channels, args.seed + getattr(args, "filter_index", 0))
    defaults = example or explain.Example(0, "", "", (), ())
    bias = defaults.bias if args.bias is None else args.bias
    strides = defaults.strides if args.stride is None else explain.parse_pair(args.stride, "--stride")
    padding = defaults.padding if args.padding is None else explain.parse_padding(args.padding)
    dilation = (1, 1) if args.dilation is None else explain.parse_pair(args.dilation, "--dilation")
    trace = trace_convolution(x, kernel, bias, strides=strides, padding=padding, dilation=dilation,
                              padding_mode=args.padding_mode or "zeros")
    if example is not None and any(getattr(args, name) is not None for name in
                                   ("input", "size", "image", "kernel", "kernel_size", "bias", "stride", "padding",
                                    "dilation", "padding_mode")):
        title += " (changed by your flags)"
    return trace, title, note


# ---------------------------------------------------------------------------- explain and draw: commands


def cmd_explain(args):
    from .explain import matrix_lines, render_trace

    if args.all and args.steps is not None:
        raise ValueError("pass either --all or --steps N, not both.")
    if args.backward:
        return _explain_backward(args)
    if args.dy is not None:
        raise UsageError("--dy (the output's gradient) goes with --backward.")
    filters = args.filters or (args.kernel.count("/") + 1 if args.kernel else 1)
    if args.kernel is not None and args.kernel.count("/") + 1 != filters:
        raise UsageError(f"--filters {filters} needs {filters} kernels in --kernel, separated by '/'; it has "
                         f"{args.kernel.count('/') + 1}.")
    if filters > 1 and args.example == "all":
        raise UsageError("--filters goes with one convolution, not --example all.")
    if filters > 1:
        return _explain_filters(args, filters, render_trace, matrix_lines)
    texts = []
    for trace, title, note in traces_from_args(args):
        max_steps = len(trace.steps) if args.all else args.steps
        texts.append(render_trace(trace, max_steps=max_steps, title=title, note=note))
    say("\n\n".join(texts))
    if args.example is None and not any(getattr(args, flag) is not None for flag in INPUT_FLAGS):
        say("\nMore: convlayer explain --example 2 (stride 2), --example 3 ('same' padding), or your own numbers "
             "with --input/--kernel (see --help), --filters 2 for a layer of several filters.")
    return 0


def _explain_filters(args, filters, render_trace, matrix_lines):
    """A layer of several filters: each filter's convolution is one output channel, stacked."""
    import argparse

    traces = []
    for f in range(filters):
        one = argparse.Namespace(**{**vars(args), "filter_index": f})
        (trace, title, note), = traces_from_args(one)
        traces.append(trace)
        max_steps = len(trace.steps) if args.all else (1 if args.steps is None else args.steps)
        say(f"{'=' * 24} Filter {f} of {filters}: its own kernel (one matrix per input channel) and bias make "
            f"output channel {f}\n")
        say(render_trace(trace, max_steps=max_steps, title=title if f == 0 else "", note=note if f == 0 else ""))
        say("")
    ho, wo = traces[0].output.shape
    say(f"{'=' * 24} The layer's output: {ho}x{wo}x{filters}, one channel per filter (each sums over all "
        f"{traces[0].input.shape[2]} input channel{'s' * (traces[0].input.shape[2] > 1)})")
    blocks = [[f"channel {f}:", *matrix_lines(t.output)] for f, t in enumerate(traces)]
    width = [max(len(line) for line in block) for block in blocks]
    for i in range(max(len(b) for b in blocks)):
        say("  " + "   ".join((b[i] if i < len(b) else "").ljust(w) for b, w in zip(blocks, width)).rstrip())
    return 0


def _explain_backward(args):
    """``explain --backward``: the gradients of one filter's convolution (default: the lesson's example 3)."""
    import argparse

    from . import explain
    from .backward import render_backward, trace_backward

    if (args.filters or 1) > 1 or (args.kernel is not None and "/" in args.kernel):
        raise UsageError("--backward explains one filter; drop --filters (and the '/' in --kernel).")
    if args.example is None and not any(getattr(args, flag) is not None for flag in INPUT_FLAGS):
        args = argparse.Namespace(**{**vars(args), "example": "3"})  # stride 2 and 'same': scatter and trim show
    texts = []
    for forward, title, note in traces_from_args(args):
        dy = None if args.dy is None else explain.parse_matrix(args.dy, "--dy")
        if dy is not None and dy.shape != (*forward.output.shape, 1):
            ho, wo = forward.output.shape
            raise UsageError(f"--dy needs one number per output cell, {ho}x{wo} (the output's shape), got "
                             f"{'x'.join(map(str, dy.shape[:2]))}"
                             + (f" with {dy.shape[2]} channels" if dy.shape[2] > 1 else "") + ".")
        backward = trace_backward(forward, dy, seed=args.seed)
        dy_note = "yours, from --dy" if args.dy is not None else \
            f"made up: small integers from --seed {args.seed}; --dy gives your own"
        max_cells = len(forward.steps) if args.all else args.steps
        texts.append(render_backward(backward, max_cells=max_cells, title=f"{title}: the gradients" if title else "",
                                     note=note, dy_note=dy_note))
    say("\n\n".join(texts))
    return 0


def _draw_target(out, fmt, example_number):
    """(format, output path) from --out and --format; a suffix on --out picks the format."""
    suffix = Path(out).suffix.lower().lstrip(".") if out else ""
    if suffix in ("gif", "png", "svg"):
        if fmt is not None and fmt != suffix:
            raise ValueError(f"--out {out} ends in .{suffix} but --format is {fmt}; drop one of them.")
        fmt = suffix
    fmt = fmt or "gif"
    if out is None:
        stem = "convolution" if example_number is None else f"convolution_example{example_number}"
        out = f"{stem}.gif" if fmt == "gif" else f"{stem}_frames/"
    elif fmt == "gif" and suffix != "gif":
        raise ValueError(f"an animation needs a .gif file name, got --out {out}; for single frames pass "
                         "--format png or svg.")
    return fmt, out


def cmd_draw(args):
    from . import draw

    (trace, _, _), = traces_from_args(args)
    example_number = args.example if args.example is not None else (
        1 if not any(getattr(args, flag) is not None for flag in INPUT_FLAGS) else None)
    fmt, out = _draw_target(args.out, args.format, example_number)
    if fmt == "gif":
        output_path(out, what="--out")
    elif str(out).endswith(("/", "\\")) or Path(out).is_dir():
        output_dir(out, what="--out folder")
    else:
        output_path(Path(out).with_name(Path(out).name + "_000." + fmt), what="--out")
    count = len(trace.steps) + 1
    if count > args.max_frames:
        sample = draw.png_bytes(draw.frames_sample(trace, cell=args.cell))
        raise UsageError(f"this drawing has {count:,} frames (about {_megabytes(count * len(sample))} as "
                         f"{fmt.upper()}), more than --max-frames {args.max_frames}; draw a smaller input or "
                         f"kernel, a bigger --stride, or pass --max-frames {count} to write it anyway.")
    if count > 100:
        say(f"Writing {count:,} frames...")
    if fmt == "gif":
        paths = [draw.write_gif(trace, out, fps=args.fps, cell=args.cell)]
    else:
        paths = draw.write_frames(trace, out, fmt, cell=args.cell)
    for path in paths:
        say(path)
    return 0


def _megabytes(size: int) -> str:
    return f"{size / 1e6:,.0f} MB" if size >= 1e6 else f"{size / 1e3:,.0f} kB"


# ---------------------------------------------------------------------------- show


def _default_out(args, source, suffix: str) -> Path:
    if args.out:
        return Path(args.out)
    source = Path(source)
    return source.with_name(f"{source.stem}_{suffix}.png")


def load_test_data(ck, dataset=None, data_dir=None):
    """The test split of the checkpoint's dataset (see ``Checkpoint.test_data``). Tests replace this function."""
    return ck.test_data(dataset, data_dir)


def _test_predictions(args):
    ck = load_checkpoint(args.checkpoint)
    data = load_test_data(ck, args.dataset, args.data_dir)
    x, y = data.x_test, np.asarray(data.y_test)
    if args.limit:
        x, y = x[:args.limit], y[:args.limit]
    from ..functional.losses import softmax

    probs = ck.model.probabilities(x)  # (N, classes)
    return ck, data, x, y, probs


def cmd_show_filters(args):
    from . import figures

    ck = load_checkpoint(args.checkpoint)
    layer = ck.model.get_layer("conv1")
    figure = figures.filters_figure(layer.params["kernel"], title=f"{Path(args.checkpoint).name} conv1")
    say(figures.save_png(figure, _default_out(args, args.checkpoint, "filters")))
    return 0


def cmd_show_activations(args):
    from . import figures

    ck = load_checkpoint(args.checkpoint)
    model = ck.model
    image = ck.prepare_image(args.image, args.preprocess).image  # (d, d)
    maps, probs = figures.feature_maps(model, image)
    top = figures.top_predictions(probs, ck.class_names(len(probs)), k=3)
    figure = figures.activations_figure(image, maps, top, title=f"{Path(args.image).name} through "
                                                                f"{Path(args.checkpoint).name}")
    out = Path(args.out) if args.out else Path(args.checkpoint).with_name(
        f"{Path(args.checkpoint).stem}_activations_{Path(args.image).stem}.png")
    say(figures.save_png(figure, out))
    return 0


def cmd_show_curves(args):
    from ..training import read_log
    from . import figures

    source = Path(args.run)
    log = source / "log.csv" if source.is_dir() else source
    if log.suffix.lower() == ".npz":
        raise UsageError(f"{source} is a checkpoint; curves come from the training log: pass the run folder "
                         f"({str(log.parent)!r}) or its log.csv.")
    rows = read_log(log)
    figure = figures.curves_figure(rows, title=f"training curves: {log.parent.name or log.name}")
    out = Path(args.out) if args.out else log.with_name("curves.png")
    say(figures.save_png(figure, out))
    return 0


def cmd_show_confusion(args):
    from ..training import confusion_matrix
    from . import figures

    ck, data, _, y, probs = _test_predictions(args)
    matrix = confusion_matrix(y, probs.argmax(axis=1), probs.shape[1])
    figure = figures.confusion_figure(matrix, ck.class_names(probs.shape[1]),
                                      title=f"{data.name} test set, {Path(args.checkpoint).name}")
    say(figures.save_png(figure, _default_out(args, args.checkpoint, "confusion")))
    return 0


def cmd_show_mistakes(args):
    from . import figures

    ck, data, x, y, probs = _test_predictions(args)
    index = figures.mistakes(y, probs, args.count)
    predictions = probs.argmax(axis=1)
    wrong = int((predictions != y).sum())
    figure = figures.mistakes_figure(np.asarray(x)[index], y[index], predictions[index],
                                     probs[index, predictions[index]], ck.class_names(probs.shape[1]),
                                     title=f"{data.name}: {wrong} of {len(y)} test images misclassified, "
                                           f"most confident first")
    say(figures.save_png(figure, _default_out(args, args.checkpoint, "mistakes")))
    return 0


# ---------------------------------------------------------------------------- show cards, show ablation


def _filter_list(text):
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"--filters {text!r}: expected filter numbers separated by commas, e.g. --filters 0,5,9.") \
            from None


def _cards_data(args):
    ck = load_checkpoint(args.checkpoint)
    data = load_test_data(ck, args.dataset, args.data_dir)
    x, y = np.asarray(data.x_test), np.asarray(data.y_test)
    if args.limit:
        x, y = x[:args.limit], y[:args.limit]
    return ck, data, x, y


def cmd_show_cards(args):
    import json
    import time

    from ..fileio import atomic_write_text
    from . import cards, figures

    out = output_path(_default_out(args, args.checkpoint, f"cards_{args.layer}"), suffixes=(".png",), what="--out")
    json_out = None if args.json is None else output_path(args.json, suffixes=(".json",), what="--json")
    ck, data, x, y = _cards_data(args)
    layer = cards.conv_layer(ck.model, args.layer)
    filters = cards.check_filters(_filter_list(args.filters), layer.filters, args.layer)
    start = time.perf_counter()
    stats = cards.filter_stats(ck.model, args.layer, x, y, ck.num_classes, filters=filters)
    seconds = time.perf_counter() - start
    say(f"{args.layer}: top {cards.TOP} patches and class means of {len(filters)} filters over {len(x):,} "
        f"{data.name} test images in {seconds:.1f} s")
    value_range = (float(x.min()), float(x.max())) if x.max() > x.min() else (0.0, 1.0)
    optimized = {}
    for f in filters:
        optimized[f], before, after = cards.optimize_input(ck.model, args.layer, f, seed=args.seed,
                                                           value_range=value_range)
    document = cards.stats_json(stats, x.shape[1:3], class_names=ck.class_names())
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(document, indent=1) + "\n")
        say(json_out)
    figure = cards.cards_figure(document, x.reshape(len(x), *x.shape[1:3]), layer.kernel, optimized,
                                title=f"{Path(args.checkpoint).name}, {data.name}")
    say(figures.save_png(figure, out))
    return 0


def cmd_show_ablation(args):
    from ..training import confusion_matrix
    from . import cards, figures

    suffix = f"surgery_{args.layer}" if args.set else f"ablation_{args.layer}"
    out = output_path(_default_out(args, args.checkpoint, suffix), suffixes=(".png",), what="--out")
    ck, data, x, y = _cards_data(args)
    layer = cards.conv_layer(ck.model, args.layer)
    replacements = cards.parse_set(args.set, layer) if args.set else None
    if replacements and layer.kernel.shape[2] > 1:
        say(f"{args.layer} has {layer.kernel.shape[2]} input channels: each new kernel is applied to every one.")
    result = cards.ablation(ck.model, args.layer, x, y, replacements=replacements, zero_each=not replacements)
    say(f"{data.name}, {len(y):,} test images: accuracy {result.baseline * 100:.2f}% with every filter as trained")
    if not replacements:
        for f in sorted(result.zeroed, key=lambda f: (result.zeroed[f], f)):
            change = (result.zeroed[f] - result.baseline) * 100
            say(f"  {args.layer} filter {f:>3} zeroed: {result.zeroed[f] * 100:6.2f}% ({change:+.2f})")
        figure = cards.ablation_figure(result, title=f"{Path(args.checkpoint).name}: {data.name} test accuracy "
                                                     f"with one filter of {args.layer} zeroed")
        say(figures.save_png(figure, out))
        return 0
    names = ", ".join(f"{f}={text.partition('=')[2].strip()}" for f, text in zip(replacements, args.set))
    say(f"with {names} (bias 0): {result.replaced * 100:.2f}% "
        f"({(result.replaced - result.baseline) * 100:+.2f} points)")
    classes = ck.class_names()
    before = confusion_matrix(y, result.predictions, len(classes))
    after = confusion_matrix(y, result.replaced_predictions, len(classes))
    width = max(5, *(len(c) for c in classes))
    say("confusion matrix after the change (rows: true class, columns: predicted):")
    say(" " * (width + 2) + " ".join(f"{c[:5]:>5}" for c in classes) + "   class accuracy before -> after")
    for i, name in enumerate(classes):
        total = max(int(before[i].sum()), 1)
        say(f"{name:>{width}}  " + " ".join(f"{v:>5}" for v in after[i]) +
            f"   {before[i, i] / total * 100:6.2f}% -> {after[i, i] / total * 100:6.2f}%")
    figure = figures.confusion_figure(after, classes, title=f"{data.name}, {args.layer} with {names}")
    say(figures.save_png(figure, out))
    return 0


# ---------------------------------------------------------------------------- parser


def register(subparsers) -> None:
    """Add ``explain``, ``draw`` and ``show`` to the CLI's subparsers."""
    p = subparsers.add_parser(
        "explain", help="a convolution step by step in the terminal (the lesson's examples or your numbers)",
        description="Trace one filter's convolution: the padding and why, the padded input, each window's "
                    "element-wise products and their sum plus bias, the output and the output-size formula. "
                    "With no input flags it explains the lesson's example 1; --example all shows all three.")
    _add_input_options(p, examples=["1", "2", "3", "all"])
    verbosity = p.add_argument_group("how much to show")
    verbosity.add_argument("--steps", type=non_negative_int, metavar="N",
                           help="spell out the first N output positions (default: all up to 9, else 4)")
    verbosity.add_argument("--all", action="store_true", help="spell out every output position")
    p.add_argument("--filters", type=positive_int, metavar="F",
                   help="a layer of F filters (random kernels, or F kernels in --kernel separated by '/'): each "
                        "makes one output channel (default: 1, or the number of kernels given)")
    gradients = p.add_argument_group("gradients")
    gradients.add_argument("--backward", action="store_true",
                           help="the backward pass instead: dbias, dkernel and dx for an output gradient dy, with "
                                "the chain rule's terms (default: the lesson's example 3; --steps/--all limit the "
                                "output cells whose scatter is drawn)")
    gradients.add_argument("--dy", metavar="MATRIX",
                           help="with --backward: the output's gradient, one number per output cell, same syntax as "
                                "--input (default: small random integers from --seed)")
    p.set_defaults(func=cmd_explain)

    p = subparsers.add_parser(
        "draw", help="an animated GIF (or PNG/SVG frames) of the kernel sliding over the input",
        description="Draw the convolution like the conv_arithmetic animations: blue input, dashed padding, the "
                    "shaded kernel window, the green output filling in. One frame per output position plus the "
                    "finished output. Prints the paths written.")
    _add_input_options(p, examples=["1", "2", "3"])
    pictures = p.add_argument_group("pictures")
    pictures.add_argument("--out", metavar="PATH",
                          help="a .gif file, or for frames a folder (ending in '/') or a file prefix "
                               "(default: convolution[_exampleN].gif or convolution[_exampleN]_frames/)")
    pictures.add_argument("--format", choices=["gif", "png", "svg"],
                          help="gif (default): one animation; png or svg: one file per frame")
    pictures.add_argument("--fps", type=positive_float, default=1.5, help="GIF frames per second (default 1.5)")
    pictures.add_argument("--max-frames", type=positive_int, default=MAX_FRAMES,
                          help=f"refuse drawings of more frames than this (default {MAX_FRAMES}); says how many and "
                               "about how big first")
    pictures.add_argument("--cell", type=positive_int, help="cell size in pixels (default: 44, smaller for big "
                                                             "inputs)")
    p.set_defaults(func=cmd_draw)

    show = subparsers.add_parser("show", help="pictures of a trained model: filters, activations, curves, "
                                              "confusion, mistakes, cards, ablation",
                                 description="Each command writes a PNG (next to the checkpoint unless --out) and "
                                             "prints its path. Needs matplotlib: pip install 'convlayer[viz]'.")
    kinds = show.add_subparsers(dest="figure", metavar="FIGURE", parser_class=type(show))
    kinds.required = True

    q = kinds.add_parser("filters", help="conv1's 32 kernels as a grid")
    q.add_argument("checkpoint")
    q.add_argument("--out", metavar="PNG", help="default: CHECKPOINT_filters.png next to the checkpoint")
    q.set_defaults(func=cmd_show_filters)

    q = kinds.add_parser("activations", help="an image after preprocessing, its conv1/conv2 feature maps, top 3")
    q.add_argument("checkpoint")
    q.add_argument("image", help="a PNG/JPEG of one digit or object (prepared like the checkpoint's dataset)")
    q.add_argument("--out", metavar="PNG", help="default: CHECKPOINT_activations_IMAGE.png next to the checkpoint")
    add_preprocess_option(q)
    q.set_defaults(func=cmd_show_activations)

    q = kinds.add_parser("curves", help="loss and accuracy per epoch from a run's log.csv")
    q.add_argument("run", metavar="RUN_DIR_or_log.csv")
    q.add_argument("--out", metavar="PNG", help="default: curves.png next to log.csv")
    q.set_defaults(func=cmd_show_curves)

    for name, func, text in (("confusion", cmd_show_confusion, "confusion matrix on the test set"),
                             ("mistakes", cmd_show_mistakes, "misclassified test images, most confident first")):
        q = kinds.add_parser(name, help=text)
        q.add_argument("checkpoint")
        q.add_argument("--dataset", choices=["mnist", "fashion-mnist", "digits"],
                       help="default: the dataset the checkpoint was trained on")
        q.add_argument("--data-dir", help="folder with the dataset's IDX files")
        q.add_argument("--limit", type=positive_int, metavar="N", help="use only the first N test images")
        if name == "mistakes":
            q.add_argument("--count", type=positive_int, default=MISTAKES_COUNT,
                           help=f"how many to show (default {MISTAKES_COUNT})")
        q.add_argument("--out", metavar="PNG", help=f"default: CHECKPOINT_{name}.png next to the checkpoint")
        q.set_defaults(func=func)

    for name, func, text in (("cards", cmd_show_cards, "what each filter learned: kernel, top test patches, class "
                                                        "means, an optimized input"),
                             ("ablation", cmd_show_ablation, "test accuracy with each filter zeroed, or with "
                                                             "filters replaced by classic kernels (--set)")):
        q = kinds.add_parser(name, help=text)
        q.add_argument("checkpoint")
        q.add_argument("--layer", default="conv1", help="a Conv2D layer: conv1 (default) or conv2")
        q.add_argument("--dataset", choices=["mnist", "fashion-mnist", "digits"],
                       help="default: the dataset the checkpoint was trained on")
        q.add_argument("--data-dir", help="folder with the dataset's IDX files")
        q.add_argument("--limit", type=positive_int, metavar="N", help="use only the first N test images")
        if name == "cards":
            q.add_argument("--filters", metavar="F,F,...", help="only these filters, e.g. 0,5,9 (default: all)")
            q.add_argument("--json", metavar="OUT", help="also write the numbers as JSON")
            q.add_argument("--seed", type=non_negative_int, default=0,
                           help="start of the optimized inputs (default 0)")
        else:
            q.add_argument("--set", action="append", metavar="FILTER=KERNEL",
                           help="replace a filter (bias 0) by sobel_x, sobel_y, blur, identity or numbers like "
                                "'1,0,-1;2,0,-2;1,0,-1' (a 3x3 is centred in a 5x5 kernel); repeatable")
        q.add_argument("--out", metavar="PNG", help=f"default: CHECKPOINT_{name}_LAYER.png next to the checkpoint")
        q.set_defaults(func=func)
