# Written for grayscale first: only channel 0 is read.
# expect: conv2d: only the first channel used
# expect: conv2d_backward: dkernel not summed over the batch
import numpy as np


def conv2d(x, kernel, bias, strides=(1, 1), padding="valid"):
    sv, sh = (strides, strides) if isinstance(strides, int) else strides
    n, h, w, c = x.shape
    kh, kw, _, f = kernel.shape
    if padding == "same":
        pad_h = max((-(-h // sv) - 1) * sv + kh - h, 0)
        pad_w = max((-(-w // sh) - 1) * sh + kw - w, 0)
        x = np.pad(x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    out = np.zeros((n, (x.shape[1] - kh) // sv + 1, (x.shape[2] - kw) // sh + 1, f))
    for b in range(n):
        for i in range(out.shape[1]):
            for j in range(out.shape[2]):
                window = x[b, i * sv:i * sv + kh, j * sh:j * sh + kw, 0]
                for k in range(f):
                    out[b, i, j, k] = np.sum(window * kernel[:, :, 0, k]) + bias[k]
    return out


def conv2d_backward(dy, x, kernel, strides=(1, 1), padding="valid"):
    sv, sh = (strides, strides) if isinstance(strides, int) else strides
    n, h, w, c = x.shape
    kh, kw, _, f = kernel.shape
    pad_h = max((dy.shape[1] - 1) * sv + kh - h, 0)
    pad_w = max((dy.shape[2] - 1) * sh + kw - w, 0)
    top, left = pad_h // 2, pad_w // 2
    xp = np.pad(x, ((0, 0), (top, pad_h - top), (left, pad_w - left), (0, 0)))
    dx = np.zeros_like(xp)
    for b in range(n):
        dkernel = np.zeros_like(kernel)  # one image at a time
        for i in range(dy.shape[1]):
            for j in range(dy.shape[2]):
                for k in range(f):
                    dkernel[..., k] += xp[b, i * sv:i * sv + kh, j * sh:j * sh + kw] * dy[b, i, j, k]
                    dx[b, i * sv:i * sv + kh, j * sh:j * sh + kw] += kernel[..., k] * dy[b, i, j, k]
    return dx[:, top:top + h, left:left + w], dkernel, dy.sum(axis=(0, 1, 2))
