"""A naive, readable 2-D convolution used as a test reference, plus error metrics.

Deliberately slow: one dot product per output value, no stride tricks, float64
accumulation. The vectorized implementation that ships lives in
``convlayer.functional.conv`` (cs231n keeps ``layers.py`` and ``fast_layers.py`` the same way).
"""

from __future__ import annotations

import numpy as np

# convlayer padding_mode -> np.pad mode
NUMPY_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def conv2d_reference(x, kernel, bias=None, *, strides=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1),
                     groups=1, padding_mode="zeros"):
    """Cross-correlation by loops.

    Args:
        x: (N, H, W, C) input, channels_last.
        kernel: (kh, kw, C // groups, F), HWIO; never flipped.
        bias: (F,) or None.
        strides, dilation: (vertical, horizontal).
        padding: explicit ((top, bottom), (left, right)).
        groups: input channel group ``g`` feeds only the filters of group ``g``.
        padding_mode: 'zeros', 'reflect', 'replicate' or 'circular'.

    Returns:
        (N, Ho, Wo, F) float64.

    >>> conv2d_reference(np.ones((1, 3, 3, 1)), np.ones((2, 2, 1, 1)))[0, :, :, 0]
    array([[4., 4.],
           [4., 4.]])
    """
    x = np.asarray(x, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    n, _, _, channels = x.shape
    kh, kw, channels_per_group, filters = kernel.shape
    assert channels == channels_per_group * groups and filters % groups == 0
    filters_per_group = filters // groups
    (top, bottom), (left, right) = padding
    padded = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), mode=NUMPY_PAD_MODES[padding_mode])
    span_h = (kh - 1) * dilation[0] + 1
    span_w = (kw - 1) * dilation[1] + 1
    out_h = (padded.shape[1] - span_h) // strides[0] + 1
    out_w = (padded.shape[2] - span_w) // strides[1] + 1
    y = np.zeros((n, out_h, out_w, filters))
    for b in range(n):
        for i in range(out_h):
            for j in range(out_w):
                row, col = i * strides[0], j * strides[1]
                for f in range(filters):
                    group = f // filters_per_group
                    channel_slice = slice(group * channels_per_group, (group + 1) * channels_per_group)
                    window = padded[b, row:row + span_h:dilation[0], col:col + span_w:dilation[1], channel_slice]
                    y[b, i, j, f] = np.sum(window * kernel[:, :, :, f])  # (kh, kw, C // groups) dot
                    if bias is not None:
                        y[b, i, j, f] += bias[f]
    return y


def relative_error(actual, expected) -> float:
    """max |actual - expected| relative to max |expected| (shapes must agree)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"shape {actual.shape} != expected {expected.shape}"
    scale = np.max(np.abs(expected), initial=0.0)
    error = np.max(np.abs(actual - expected), initial=0.0)
    return float(error / scale) if scale > 0 else float(error)


def assert_close(actual, expected, tol: float, what: str = "") -> None:
    """Fail with the relative error and the name of the compared quantity."""
    error = relative_error(actual, expected)
    assert error <= tol, f"{what}: relative error {error:.3e} > {tol:.0e}"
