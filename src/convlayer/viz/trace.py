"""A step-by-step record of one convolution, for ``convlayer explain``, ``draw`` and the web panel.

The numbers come from the library itself: padding from ``functional.shapes``, the padded
input from ``functional.padding.pad_nhwc`` and the output from ``functional.conv.conv2d_forward``.
The per-position windows are views of that padded input; each step's sum is checked
against the real output, so the trace cannot drift from what the layer computes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..functional import shapes
from ..functional.conv import conv2d_forward
from ..functional.padding import PADDING_MODES, pad_nhwc


@dataclass
class Step:
    """One output position: which padded pixels the kernel covers and what they add up to."""

    out_row: int
    out_col: int
    rows: list[int]  # padded-input row of each kernel row
    cols: list[int]  # padded-input column of each kernel column
    window: np.ndarray  # (kh, kw, C)
    products: np.ndarray  # (kh, kw, C) window * kernel
    channel_sums: np.ndarray  # (C,)
    total: float  # sum of products + bias == output[out_row, out_col]


@dataclass
class ConvTrace:
    input: np.ndarray  # (H, W, C)
    kernel: np.ndarray  # (kh, kw, C)
    bias: float
    strides: tuple[int, int]
    dilation: tuple[int, int]
    padding_name: str  # 'valid', 'same' or 'explicit'
    padding_mode: str
    padding: tuple[tuple[int, int], tuple[int, int]]
    padded: np.ndarray  # (Hp, Wp, C)
    output: np.ndarray  # (Ho, Wo)
    steps: list[Step] = field(default_factory=list)

    @property
    def padding_mask(self) -> np.ndarray:
        """(Hp, Wp) True where the padded input holds padding rather than an input pixel."""
        (top, bottom), (left, right) = self.padding
        hp, wp = self.padded.shape[:2]
        mask = np.ones((hp, wp), bool)
        mask[top:hp - bottom, left:wp - right] = False
        return mask

    @property
    def padding_reason(self) -> list[str]:
        """Why each axis got the padding it did (the minimal-padding rule, bottom/right extra)."""
        lines = []
        (height, width) = self.input.shape[:2]
        for axis, size, k, s, d, (before, after), ends in (
            ("rows", height, self.kernel.shape[0], self.strides[0], self.dilation[0], self.padding[0],
             ("top", "bottom")),
            ("columns", width, self.kernel.shape[1], self.strides[1], self.dilation[1], self.padding[1],
             ("left", "right")),
        ):
            span = shapes.effective_kernel_size(k, d)
            if self.padding_name == "valid":
                used = (shapes.conv_output_size(size, k, s, d, (0, 0)) - 1) * s + span
                note = f"{axis}: 'valid' adds no zeros; the windows cover {used} of {size} {axis}"
                lines.append(note + (f" (the last {size - used} never used)." if used < size else "."))
            elif self.padding_name == "same":
                out = shapes.same_output_size(size, s)
                total = before + after
                lines.append(
                    f"{axis}: 'same' wants ceil({size} / {s}) = {out} outputs, which need "
                    f"({out} - 1) * {s} + {span} = {(out - 1) * s + span} {axis}; the input has {size}, so "
                    f"{total} zero {axis[:-1] if total == 1 else axis} {'is' if total == 1 else 'are'} added: "
                    f"{before} at the {ends[0]}, {after} at the {ends[1]}"
                    + (f" (the odd one goes to the {ends[1]})." if total % 2 else ".")
                )
            else:
                lines.append(f"{axis}: explicit padding, {before} at the {ends[0]} and {after} at the {ends[1]}.")
        return lines

    @property
    def formulas(self) -> list[str]:
        """The output-size formula for rows and columns with the numbers filled in."""
        (height, width) = self.input.shape[:2]
        return [
            "rows:    " + shapes.output_size_formula(height, self.kernel.shape[0], self.strides[0], self.dilation[0],
                                                     self.padding[0]),
            "columns: " + shapes.output_size_formula(width, self.kernel.shape[1], self.strides[1], self.dilation[1],
                                                     self.padding[1]),
        ]

    def to_dict(self) -> dict:
        """JSON-friendly form (lists of floats) for the web page."""
        return {
            "input": self.input.tolist(), "kernel": self.kernel.tolist(), "bias": self.bias,
            "strides": list(self.strides), "dilation": list(self.dilation), "padding_name": self.padding_name,
            "padding_mode": self.padding_mode, "padding": [list(p) for p in self.padding],
            "padded": self.padded.tolist(), "output": self.output.tolist(),
            "padding_reason": self.padding_reason, "formulas": self.formulas,
            "steps": [{"out_row": s.out_row, "out_col": s.out_col, "rows": s.rows, "cols": s.cols,
                       "window": s.window.tolist(), "products": s.products.tolist(),
                       "channel_sums": s.channel_sums.tolist(), "total": s.total} for s in self.steps],
        }


MAX_TRACE_SIZE = 64  # an explanation is for small inputs; bigger ones are unreadable anyway


def trace_convolution(x, kernel, bias: float = 0.0, *, strides=(1, 1), padding="valid", dilation=(1, 1),
                      padding_mode: str = "zeros") -> ConvTrace:
    """Trace one filter over ``x``.

    Args:
        x: (H, W) or (H, W, C) numbers.
        kernel: (kh, kw) or (kh, kw, C): one kernel matrix per input channel.
        bias: the filter's bias.
        strides, dilation: int or (vertical, horizontal).
        padding: 'valid', 'same', or explicit as in ``Conv2D``.
    Returns:
        A ``ConvTrace``; ``trace.output`` equals ``Conv2D``'s output for the same numbers.

    >>> t = trace_convolution(np.arange(25.).reshape(5, 5), np.ones((2, 2)), strides=2, padding="same")
    >>> t.padding
    ((0, 1), (0, 1))
    """
    x = np.asarray(x, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    if x.ndim == 2:
        x = x[:, :, None]  # (H, W, 1)
    if kernel.ndim == 2:
        kernel = kernel[:, :, None]  # (kh, kw, 1)
    if x.ndim != 3 or kernel.ndim != 3:
        raise ValueError(f"trace_convolution expects x (H, W) or (H, W, C) and kernel (kh, kw) or (kh, kw, C); got "
                         f"x {x.shape} and kernel {kernel.shape}.")
    if x.shape[2] != kernel.shape[2]:
        raise ValueError(f"the kernel needs one matrix per input channel: x has {x.shape[2]} channels, kernel "
                         f"{kernel.shape[2]}.")
    if max(x.shape[:2]) > MAX_TRACE_SIZE or min(x.shape[:2]) < 1:
        raise ValueError(f"trace inputs must be 1..{MAX_TRACE_SIZE} pixels a side, got {x.shape[:2]}.")
    if not np.isfinite(x).all() or not np.isfinite(kernel).all():
        raise ValueError("trace inputs and kernels must be finite numbers.")
    try:
        bias = float(bias)
    except (TypeError, ValueError):
        raise ValueError(f"bias must be a number, got {bias!r}.") from None
    strides = shapes.normalize_tuple(strides, 2, "strides")
    dilation = shapes.normalize_tuple(dilation, 2, "dilation")
    kernel_hw = shapes.normalize_tuple(list(kernel.shape[:2]), 2, "kernel size")
    norm = shapes.normalize_padding(padding)
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {', '.join(PADDING_MODES)}, got {padding_mode!r}.")
    pads = shapes.resolve_padding(norm, x.shape[:2], kernel_hw, strides, dilation)
    out_hw = shapes.conv_output_spatial(norm, x.shape[:2], kernel_hw, strides, dilation)
    if min(out_hw) <= 0:
        raise ValueError(f"a {kernel_hw[0]}x{kernel_hw[1]} kernel (dilation {dilation}) does not fit in the padded "
                         f"{x.shape[0]}x{x.shape[1]} input: the output size would be 0. Use 'same' padding (--padding same), a "
                         "smaller kernel or a bigger input.")
    if padding_mode == "reflect" and any(max(p) >= s for p, s in zip(pads, x.shape[:2])):
        (top, bottom), (left, right) = pads
        raise ValueError(f"reflect padding mirrors the input without its edge, so each pad must be smaller than "
                         f"the input: padding top {top}, bottom {bottom} of {x.shape[0]} rows, left {left}, right "
                         f"{right} of {x.shape[1]} columns; use smaller padding, a bigger input or --padding-mode "
                         "replicate.")

    padded = pad_nhwc(x[None], pads, padding_mode)[0]  # (Hp, Wp, C)
    y, _ = conv2d_forward(x[None], kernel[..., None], np.array([bias]), strides=strides, padding=pads,
                          dilation=dilation, padding_mode=padding_mode, keep_cache=False)
    output = y[0, :, :, 0]  # (Ho, Wo)
    steps = []
    kh, kw = kernel_hw
    for r in range(output.shape[0]):
        for c in range(output.shape[1]):
            rows = [r * strides[0] + i * dilation[0] for i in range(kh)]
            cols = [c * strides[1] + j * dilation[1] for j in range(kw)]
            window = padded[np.ix_(rows, cols)]  # (kh, kw, C)
            products = window * kernel
            channel_sums = products.sum(axis=(0, 1))
            total = float(channel_sums.sum() + bias)
            assert np.isclose(total, output[r, c], rtol=1e-9, atol=1e-9), "trace disagrees with conv2d_forward"
            steps.append(Step(r, c, rows, cols, window, products, channel_sums, total))
    name = norm if isinstance(norm, str) else "explicit"
    return ConvTrace(x, kernel, bias, strides, dilation, name, padding_mode, pads, padded, output, steps)
