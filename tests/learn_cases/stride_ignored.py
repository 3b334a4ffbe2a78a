# The window moves one cell at a time, whatever strides says.
# expect: conv2d: stride ignored
# expect: convolve: stride ignored
import numpy as np


def convolve(image, kernel, bias=0.0, stride=1, padding="valid"):
    kh, kw = kernel.shape
    if padding == "same":
        image = np.pad(image, (((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2)))
    out = np.zeros((image.shape[0] - kh + 1, image.shape[1] - kw + 1))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = np.sum(image[i:i + kh, j:j + kw] * kernel) + bias
    return out


def conv2d(x, kernel, bias, strides=(1, 1), padding="valid"):
    n, h, w, c = x.shape
    kh, kw, _, f = kernel.shape
    if padding == "same":
        x = np.pad(x, ((0, 0), ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0)))
    out = np.zeros((n, x.shape[1] - kh + 1, x.shape[2] - kw + 1, f))
    for b in range(n):
        for i in range(out.shape[1]):
            for j in range(out.shape[2]):
                for k in range(f):
                    out[b, i, j, k] = np.sum(x[b, i:i + kh, j:j + kw] * kernel[..., k]) + bias[k]
    return out
