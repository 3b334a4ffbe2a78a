"""The convolution as plain loops, for reading: every output cell is one dot product plus a bias.

Cross-correlation, as in every CNN library: the kernel is never flipped. 'same' padding comes
from ``convlayer.functional.shapes`` (TensorFlow's rule: the minimum zeros for
``ceil(in / stride)`` outputs, an odd extra row/column at the bottom/right).

>>> convolve(np.arange(9.).reshape(3, 3), np.ones((2, 2)), bias=1.0).tolist()
[[9.0, 13.0], [21.0, 25.0]]
"""

from __future__ import annotations

import numpy as np

from ..functional import shapes


def padding_amounts(in_hw, kernel_hw, strides, padding) -> shapes.Padding2D:
    """((top, bottom), (left, right)) for 'valid' or 'same', from ``functional.shapes``."""
    strides = shapes.normalize_tuple(strides, 2, "strides")
    padding = shapes.normalize_padding(padding, allow_explicit=False)
    return shapes.resolve_padding(padding, tuple(in_hw), tuple(kernel_hw), strides, (1, 1))


def forward_with_padding(x, kernel, bias, strides, pads, out_hw=None) -> np.ndarray:
    """conv2d on explicit pads ((top, bottom), (left, right)); ``out_hw`` forces the output size."""
    x = np.asarray(x, np.float64)  # (N, H, W, C)
    kernel = np.asarray(kernel, np.float64)  # (kh, kw, C, F)
    bias = np.asarray(bias, np.float64)  # (F,)
    (top, bottom), (left, right) = pads
    sv, sh = strides
    n, h, w, c = x.shape
    kh, kw, _, f = kernel.shape
    xp = np.zeros((n, h + top + bottom, w + left + right, c))  # (N, Hp, Wp, C)
    xp[:, top:top + h, left:left + w] = x
    if out_hw is None:
        out_hw = ((xp.shape[1] - kh) // sv + 1, (xp.shape[2] - kw) // sh + 1)
    ho, wo = out_hw
    # windows past the padded edge (only when out_hw is forced) read zeros
    xp = np.pad(xp, ((0, 0), (0, max(0, (ho - 1) * sv + kh - xp.shape[1])),
                     (0, max(0, (wo - 1) * sh + kw - xp.shape[2])), (0, 0)))
    y = np.zeros((n, ho, wo, f))  # (N, Ho, Wo, F)
    for b in range(n):
        for i in range(ho):
            for j in range(wo):
                window = xp[b, i * sv:i * sv + kh, j * sh:j * sh + kw, :]  # (kh, kw, C)
                for k in range(f):
                    y[b, i, j, k] = np.sum(window * kernel[:, :, :, k]) + bias[k]
    return y


def conv2d(x, kernel, bias, strides=(1, 1), padding="valid") -> np.ndarray:
    """A convolution layer: x (N, H, W, C), kernel (kh, kw, C, F) HWIO, bias (F,) -> (N, Ho, Wo, F).

    >>> conv2d(np.ones((1, 3, 3, 2)), np.ones((2, 2, 2, 1)), np.array([0.5])).shape
    (1, 2, 2, 1)
    """
    strides = shapes.normalize_tuple(strides, 2, "strides")
    x = np.asarray(x, np.float64)
    kernel = np.asarray(kernel, np.float64)
    pads = padding_amounts(x.shape[1:3], kernel.shape[:2], strides, padding)
    return forward_with_padding(x, kernel, bias, strides, pads)


def convolve(image, kernel, bias=0.0, stride=1, padding="valid") -> np.ndarray:
    """One channel, one filter: image (H, W), kernel (kh, kw) -> (Ho, Wo)."""
    image = np.asarray(image, np.float64)
    kernel = np.asarray(kernel, np.float64)
    y = conv2d(image[None, :, :, None], kernel[:, :, None, None], np.array([float(bias)]), stride, padding)
    return y[0, :, :, 0]


def backward_with_padding(dy, x, kernel, strides, pads):
    """(dx, dkernel, dbias) of ``forward_with_padding``, as loops over the output cells."""
    dy = np.asarray(dy, np.float64)  # (N, Ho, Wo, F)
    x = np.asarray(x, np.float64)
    kernel = np.asarray(kernel, np.float64)
    (top, bottom), (left, right) = pads
    sv, sh = strides
    n, h, w, c = x.shape
    kh, kw, _, f = kernel.shape
    xp = np.zeros((n, h + top + bottom, w + left + right, c))
    xp[:, top:top + h, left:left + w] = x
    dxp = np.zeros_like(xp)  # (N, Hp, Wp, C)
    dkernel = np.zeros_like(kernel)
    for b in range(n):
        for i in range(dy.shape[1]):
            for j in range(dy.shape[2]):
                window = xp[b, i * sv:i * sv + kh, j * sh:j * sh + kw, :]  # (kh, kw, C)
                for k in range(f):
                    dkernel[:, :, :, k] += window * dy[b, i, j, k]
                    dxp[b, i * sv:i * sv + kh, j * sh:j * sh + kw, :] += kernel[:, :, :, k] * dy[b, i, j, k]
    dbias = dy.sum(axis=(0, 1, 2))  # (F,): every position of every image
    return dxp[:, top:top + h, left:left + w], dkernel, dbias


def conv2d_backward(dy, x, kernel, strides=(1, 1), padding="valid"):
    """Gradients of ``conv2d``: (dx (N, H, W, C), dkernel (kh, kw, C, F), dbias (F,))."""
    strides = shapes.normalize_tuple(strides, 2, "strides")
    x = np.asarray(x, np.float64)
    kernel = np.asarray(kernel, np.float64)
    pads = padding_amounts(x.shape[1:3], kernel.shape[:2], strides, padding)
    return backward_with_padding(dy, x, kernel, strides, pads)
