"""The classic mistakes of a hand-written convolution, each computed exactly.

Every mistake is a small function with the signature of ``reference.conv2d`` (forward) or
``reference.conv2d_backward`` (backward) that returns what a convolution with exactly that
mistake returns. ``check`` compares a learner's output with each of them to name the mistake.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..functional import shapes
from .reference import backward_with_padding, forward_with_padding, padding_amounts
from .reference import conv2d as reference_conv2d


@dataclass(frozen=True)
class Mistake:
    name: str
    concept: str  # 'dot product + bias', 'stride', 'padding', 'channels', 'filters', 'shapes'
    says: str  # what the learner's output equals, in plain words
    rule: str  # the lesson's rule it breaks
    compute: Callable


def _strides(strides) -> tuple[int, int]:
    return shapes.normalize_tuple(strides, 2, "strides")


def _setup(x, kernel, strides, padding):
    """For the padding mistakes: float arrays, (sv, sh) and the right padding, to be got wrong."""
    x = np.asarray(x, np.float64)  # (N, H, W, C)
    kernel = np.asarray(kernel, np.float64)  # (kh, kw, C, F)
    strides = _strides(strides)
    return x, kernel, strides, padding_amounts(x.shape[1:3], kernel.shape[:2], strides, padding)


def flipped(x, kernel, bias, strides=(1, 1), padding="valid"):
    return reference_conv2d(x, np.asarray(kernel)[::-1, ::-1], bias, strides, padding)


def odd_padding_top_left(x, kernel, bias, strides=(1, 1), padding="valid"):
    x, kernel, strides, pads = _setup(x, kernel, strides, padding)
    return forward_with_padding(x, kernel, bias, strides, tuple((after, before) for before, after in pads))


def padding_symmetric(x, kernel, bias, strides=(1, 1), padding="valid"):
    x, kernel, strides, pads = _setup(x, kernel, strides, padding)
    if padding == "same":  # half the kernel on every side, the habit from odd kernels
        pads = tuple(((k - 1) // 2, (k - 1) // 2) for k in kernel.shape[:2])
    return forward_with_padding(x, kernel, bias, strides, pads)


def padding_total_stride_one(x, kernel, bias, strides=(1, 1), padding="valid"):
    x, kernel, strides, pads = _setup(x, kernel, strides, padding)
    if padding == "same":  # the total for stride 1 (k - 1), whatever the stride
        pads = tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel.shape[:2])
        out = tuple(shapes.same_output_size(size, s) for size, s in zip(x.shape[1:3], strides))
        return forward_with_padding(x, kernel, bias, strides, pads, out)
    return forward_with_padding(x, kernel, bias, strides, pads)


def padding_not_applied(x, kernel, bias, strides=(1, 1), padding="valid"):
    x, kernel, strides, _ = _setup(x, kernel, strides, padding)
    return forward_with_padding(x, kernel, bias, strides, ((0, 0), (0, 0)))


def first_channel_only(x, kernel, bias, strides=(1, 1), padding="valid"):
    return reference_conv2d(np.asarray(x)[..., :1], np.asarray(kernel)[:, :, :1], bias, strides, padding)


def channels_not_summed(x, kernel, bias, strides=(1, 1), padding="valid"):
    # each channel's result replaced the one before: the last channel alone
    return reference_conv2d(np.asarray(x)[..., -1:], np.asarray(kernel)[:, :, -1:], bias, strides, padding)


def bias_missing(x, kernel, bias, strides=(1, 1), padding="valid"):
    return reference_conv2d(x, kernel, np.zeros_like(np.asarray(bias, float)), strides, padding)


def bias_per_element(x, kernel, bias, strides=(1, 1), padding="valid"):
    kh, kw, c, _ = np.shape(kernel)
    return reference_conv2d(x, kernel, np.asarray(bias, float) * kh * kw * c, strides, padding)


def bias_per_channel(x, kernel, bias, strides=(1, 1), padding="valid"):
    return reference_conv2d(x, kernel, np.asarray(bias, float) * np.shape(kernel)[2], strides, padding)


def bias_of_first_filter(x, kernel, bias, strides=(1, 1), padding="valid"):
    bias = np.asarray(bias, float)
    return reference_conv2d(x, kernel, np.full_like(bias, bias[0]), strides, padding)


def stride_ignored(x, kernel, bias, strides=(1, 1), padding="valid"):
    return reference_conv2d(x, kernel, bias, (1, 1), padding)


def stride_rows_only(x, kernel, bias, strides=(1, 1), padding="valid"):
    return reference_conv2d(x, kernel, bias, (_strides(strides)[0], 1), padding)


def stride_columns_only(x, kernel, bias, strides=(1, 1), padding="valid"):
    return reference_conv2d(x, kernel, bias, (1, _strides(strides)[1]), padding)


def strides_swapped(x, kernel, bias, strides=(1, 1), padding="valid"):
    return reference_conv2d(x, kernel, bias, _strides(strides)[::-1], padding)


def size_rounded_up(x, kernel, bias, strides=(1, 1), padding="valid"):
    x, kernel, strides, pads = _setup(x, kernel, strides, padding)
    out = tuple(-(-(size + sum(p) - k) // s) + 1 for size, p, k, s in zip(x.shape[1:3], pads, kernel.shape[:2],
                                                                          strides))
    return forward_with_padding(x, kernel, bias, strides, pads, out)


def kernel_transposed(x, kernel, bias, strides=(1, 1), padding="valid"):
    return reference_conv2d(x, np.asarray(kernel).transpose(1, 0, 2, 3), bias, strides, padding)  # (kw, kh, C, F)


def output_transposed(x, kernel, bias, strides=(1, 1), padding="valid"):
    return reference_conv2d(x, kernel, bias, strides, padding).transpose(0, 2, 1, 3)  # (N, Wo, Ho, F)


def kernel_read_as_oihw(x, kernel, bias, strides=(1, 1), padding="valid"):
    kh, kw, c, f = np.shape(kernel)
    return reference_conv2d(x, np.reshape(kernel, (f, c, kh, kw)).transpose(2, 3, 1, 0), bias, strides, padding)


def kernel_read_as_hwoi(x, kernel, bias, strides=(1, 1), padding="valid"):
    kh, kw, c, f = np.shape(kernel)
    return reference_conv2d(x, np.reshape(kernel, (kh, kw, f, c)).transpose(0, 1, 3, 2), bias, strides, padding)


_FLIP = "CNN layers compute cross-correlation: the kernel lies on each window as written, never flipped " \
        "(the network learns whichever orientation it needs, so the flip is skipped)."
_SAME = "'same' pads the minimum zeros for ceil(in / stride) outputs, split as evenly as possible; an odd " \
        "extra row goes to the bottom and an odd extra column to the right."
_BIAS = "each output cell is one dot product (the sum over the window's rows, columns and channels) plus the " \
        "filter's own bias, added once."
_STRIDE = "the stride is the step of the window: strides (sv, sh) move it sv rows down and sh columns across."
_CHANNELS = "a filter has one kernel matrix per input channel, and its output is the sum over all channels."

FORWARD = (
    Mistake("kernel flipped", "dot product + bias",
            "your output equals the true (mathematical) convolution: the kernel flipped upside down and left to right",
            _FLIP, flipped),
    Mistake("odd padding at the top/left", "padding",
            "your output equals 'same' with the odd extra row/column of zeros at the top/left", _SAME,
            odd_padding_top_left),
    Mistake("padding split symmetrically", "padding",
            "your output equals (k - 1) // 2 zeros on every side, whatever the stride and kernel", _SAME,
            padding_symmetric),
    Mistake("wrong padding total", "padding",
            "your output equals padding k - 1 in all (the total for stride 1) whatever the stride", _SAME,
            padding_total_stride_one),
    Mistake("padding not applied", "padding", "your output equals 'valid' (no zeros added) where 'same' was asked",
            _SAME, padding_not_applied),
    Mistake("only the first channel used", "channels", "your output equals using input channel 0 and its kernel only",
            _CHANNELS, first_channel_only),
    Mistake("channels not summed", "channels",
            "your output equals the last input channel alone: each channel's result replaced the one before "
            "(= instead of +=)", _CHANNELS, channels_not_summed),
    Mistake("bias missing", "dot product + bias", "your output equals the dot products without the bias", _BIAS,
            bias_missing),
    Mistake("bias added once per window element", "dot product + bias",
            "your output equals the bias added kh x kw x C times: inside the sum instead of after it", _BIAS,
            bias_per_element),
    Mistake("bias added per channel", "dot product + bias",
            "your output equals the bias added to each channel's sum before the channels are added", _BIAS,
            bias_per_channel),
    Mistake("the first filter's bias for every filter", "filters",
            "your output equals bias[0] used for every filter", "each filter has its own bias: bias[f] goes with "
            "output channel f.", bias_of_first_filter),
    Mistake("stride ignored", "stride", "your output equals stride 1", _STRIDE, stride_ignored),
    Mistake("stride on the rows only", "stride", "your output equals the stride used down the rows but not across",
            _STRIDE, stride_rows_only),
    Mistake("stride on the columns only", "stride",
            "your output equals the stride used across the columns but not down", _STRIDE, stride_columns_only),
    Mistake("strides swapped", "stride", "your output equals strides (sh, sv): vertical and horizontal swapped",
            _STRIDE + " The first is the vertical stride.", strides_swapped),
    Mistake("output size rounded up", "shapes",
            "your output equals ceil instead of floor in the output size: an extra window that runs past the edge",
            "out = floor((in + pad_before + pad_after - k) / stride) + 1: a window that does not fit is not "
            "computed.", size_rounded_up),
    Mistake("kernel height and width swapped", "shapes",
            "your output equals the kernel read as (kw, kh): its rows and columns swapped",
            "the kernel is (kh, kw, C, F): kernel[a, b] multiplies the window's row a, column b.", kernel_transposed),
    Mistake("output height and width swapped", "shapes",
            "your output has its rows and columns swapped: the cell for row i, column j is stored at [j, i]",
            "the output is laid out like the input, rows first and then columns: (N, Ho, Wo, F) for x "
            "(N, H, W, C).", output_transposed),
    Mistake("kernel read as OIHW", "filters",
            "your output equals the kernel's numbers read as (F, C, kh, kw) (PyTorch's layout, e.g. by reshape)",
            "the kernel is HWIO (kh, kw, C, F), as in Keras; reshape does not change a layout, transpose does.",
            kernel_read_as_oihw),
    Mistake("kernel read as HWOI", "filters",
            "your output equals the kernel's numbers read as (kh, kw, F, C)",
            "the kernel is HWIO (kh, kw, C, F): kernel[:, :, c, f] is filter f's matrix for channel c.",
            kernel_read_as_hwoi),
)


# ---------------------------------------------------------------------------- backward


def _backward_setup(dy, x, kernel, strides, padding):
    x, kernel, strides, pads = _setup(x, kernel, strides, padding)
    return np.asarray(dy, np.float64), x, kernel, strides, pads


def dbias_not_summed_over_batch(dy, x, kernel, strides=(1, 1), padding="valid"):
    dy, x, kernel, strides, pads = _backward_setup(dy, x, kernel, strides, padding)
    dx, dkernel, _ = backward_with_padding(dy, x, kernel, strides, pads)
    return dx, dkernel, dy[-1].sum(axis=(0, 1))  # the last image's, each image replaced the one before


def dbias_not_summed_over_positions(dy, x, kernel, strides=(1, 1), padding="valid"):
    dy, x, kernel, strides, pads = _backward_setup(dy, x, kernel, strides, padding)
    dx, dkernel, _ = backward_with_padding(dy, x, kernel, strides, pads)
    return dx, dkernel, dy[:, -1, -1].sum(axis=0)  # the last position only


def dkernel_not_summed_over_batch(dy, x, kernel, strides=(1, 1), padding="valid"):
    dy, x, kernel, strides, pads = _backward_setup(dy, x, kernel, strides, padding)
    dx, _, dbias = backward_with_padding(dy, x, kernel, strides, pads)
    _, dkernel, _ = backward_with_padding(dy[-1:], x[-1:], kernel, strides, pads)
    return dx, dkernel, dbias


def dx_not_strided(dy, x, kernel, strides=(1, 1), padding="valid"):
    dy, x, kernel, strides, pads = _backward_setup(dy, x, kernel, strides, padding)
    _, dkernel, dbias = backward_with_padding(dy, x, kernel, strides, pads)
    (top, bottom), (left, right) = pads
    n, h, w, c = x.shape
    kh, kw = kernel.shape[:2]
    dxp = np.zeros((n, h + top + bottom, w + left + right, c))
    for i in range(dy.shape[1]):
        for j in range(dy.shape[2]):  # the window's gradient lands at (i, j), not (i * sv, j * sh)
            dxp[:, i:i + kh, j:j + kw] += np.einsum("abcf,nf->nabc", kernel, dy[:, i, j])
    return dxp[:, top:top + h, left:left + w], dkernel, dbias


def dx_not_trimmed(dy, x, kernel, strides=(1, 1), padding="valid"):
    dy, x, kernel, strides, pads = _backward_setup(dy, x, kernel, strides, padding)
    (top, bottom), (left, right) = pads
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    dxp, dkernel, dbias = backward_with_padding(dy, xp, kernel, strides, ((0, 0), (0, 0)))
    return dxp, dkernel, dbias


def dx_kernel_flipped(dy, x, kernel, strides=(1, 1), padding="valid"):
    dy, x, kernel, strides, pads = _backward_setup(dy, x, kernel, strides, padding)
    dx, _, _ = backward_with_padding(dy, x, kernel[::-1, ::-1], strides, pads)
    _, dkernel, dbias = backward_with_padding(dy, x, kernel, strides, pads)
    return dx, dkernel, dbias


_CHAIN = "each weight is used at every position of every image, so its gradient is the sum over all of them."
BACKWARD = (
    Mistake("dbias not summed over the batch", "filters", "your dbias equals the last image's sum only", _CHAIN,
            dbias_not_summed_over_batch),
    Mistake("dbias not summed over positions", "dot product + bias",
            "your dbias equals dy at one position (the last) instead of the sum over positions", _CHAIN,
            dbias_not_summed_over_positions),
    Mistake("dkernel not summed over the batch", "filters", "your dkernel equals the last image's gradient only",
            _CHAIN, dkernel_not_summed_over_batch),
    Mistake("dx not scattered through the stride", "stride",
            "your dx equals each window's gradient added at (i, j) instead of (i * sv, j * sh)",
            "output cell (i, j) read the window starting at row i * sv, column j * sh; its gradient goes back there.",
            dx_not_strided),
    Mistake("dx not trimmed of the padding", "padding", "your dx equals the gradient of the padded input",
            "the zeros added by padding are not inputs: cut their rows and columns off dx.", dx_not_trimmed),
    Mistake("dx with the kernel flipped", "dot product + bias",
            "your dx equals the scatter with the kernel flipped (the 'full convolution' recipe applied to a "
            "cross-correlation that already scatters)", "dx[window] += kernel * dy[i, j]: the kernel as written.",
            dx_kernel_flipped),
)


# ---------------------------------------------------------------------------- one number


def mistakes_giving(value, cell, x, kernel, bias, strides=(1, 1), padding="valid", *, atol=1e-6) -> list[Mistake]:
    """The forward mistakes whose output at ``cell`` (n, i, j, f) equals ``value``.

    For one typed number (the quiz, the web page's "predict the next cell"); the right answer is
    not a mistake, so a value equal to the reference's gives [].

    >>> x = np.arange(12.).reshape(1, 3, 4, 1); k = np.array([[1., 2.], [3., 4.]])[:, :, None, None]
    >>> [m.name for m in mistakes_giving(float(np.sum(x[0, :2, :2, 0] * k[::-1, ::-1, 0, 0]) + 1), (0, 0, 0, 0),
    ...                                  x, k, np.array([1.]))]
    ['kernel flipped']
    """
    from .reference import conv2d

    n, i, j, f = cell
    if np.isclose(conv2d(x, kernel, bias, strides, padding)[n, i, j, f], value, rtol=0, atol=atol):
        return []
    found = []
    for mistake in FORWARD:
        try:
            y = mistake.compute(x, kernel, bias, strides, padding)  # (N, Ho', Wo', F)
        except ValueError:  # this mistake has no output here (a tall kernel read as wide no longer fits)
            continue
        if i < y.shape[1] and j < y.shape[2] and np.isclose(y[n, i, j, f], value, rtol=0, atol=atol):
            found.append(mistake)
    return found
