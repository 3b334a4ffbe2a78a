# The learner rotates the kernel by 180 degrees, as the textbook definition of convolution does.
# expect: conv2d: kernel flipped
# expect: conv2d_backward: dbias not summed over the batch
import numpy as np


def conv2d(x, kernel, bias, strides=(1, 1), padding="valid"):
    sv, sh = (strides, strides) if isinstance(strides, int) else strides
    n, h, w, c = x.shape
    kh, kw, _, f = kernel.shape
    if padding == "same":
        pad_h = max((-(-h // sv) - 1) * sv + kh - h, 0)
        pad_w = max((-(-w // sh) - 1) * sh + kw - w, 0)
        x = np.pad(x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    flipped = np.flip(kernel, axis=(0, 1))  # convolution flips the kernel
    ho = (x.shape[1] - kh) // sv + 1
    wo = (x.shape[2] - kw) // sh + 1
    out = np.zeros((n, ho, wo, f))
    for b in range(n):
        for i in range(ho):
            for j in range(wo):
                window = x[b, i * sv:i * sv + kh, j * sh:j * sh + kw, :]
                for k in range(f):
                    out[b, i, j, k] = np.sum(window * flipped[:, :, :, k]) + bias[k]
    return out


def conv2d_backward(dy, x, kernel, strides=(1, 1), padding="valid"):
    sv, sh = (strides, strides) if isinstance(strides, int) else strides
    n, h, w, c = x.shape
    kh, kw, _, f = kernel.shape
    pad_h = pad_w = 0
    if padding == "same":
        pad_h = max((-(-h // sv) - 1) * sv + kh - h, 0)
        pad_w = max((-(-w // sh) - 1) * sh + kw - w, 0)
    top, left = pad_h // 2, pad_w // 2
    xp = np.pad(x, ((0, 0), (top, pad_h - top), (left, pad_w - left), (0, 0)))
    dxp = np.zeros_like(xp)
    dkernel = np.zeros_like(kernel)
    for b in range(n):
        dbias = dy[b].sum(axis=(0, 1))  # the bias gradient: dy summed over the positions
        for i in range(dy.shape[1]):
            for j in range(dy.shape[2]):
                for k in range(f):
                    rows, cols = slice(i * sv, i * sv + kh), slice(j * sh, j * sh + kw)
                    dkernel[:, :, :, k] += xp[b, rows, cols, :] * dy[b, i, j, k]
                    dxp[b, rows, cols, :] += kernel[:, :, :, k] * dy[b, i, j, k]
    return dxp[:, top:top + h, left:left + w], dkernel, dbias
