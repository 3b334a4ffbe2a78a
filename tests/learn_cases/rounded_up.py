# Padding by bounds checks (no padded copy), and the output size rounded up.
# expect: conv2d: output size rounded up
# expect: convolve: output size rounded up
import math

import numpy as np


def conv2d(x, kernel, bias, strides=(1, 1), padding="valid"):
    sv, sh = (strides, strides) if isinstance(strides, int) else strides
    n, h, w, c = x.shape
    kh, kw, _, f = kernel.shape
    top = left = pad_h = pad_w = 0
    if padding == "same":
        pad_h = max((math.ceil(h / sv) - 1) * sv + kh - h, 0)
        pad_w = max((math.ceil(w / sh) - 1) * sh + kw - w, 0)
        top, left = pad_h // 2, pad_w // 2
    ho = math.ceil((h + pad_h - kh) / sv) + 1
    wo = math.ceil((w + pad_w - kw) / sh) + 1
    out = np.zeros((n, ho, wo, f))
    for b in range(n):
        for i in range(ho):
            for j in range(wo):
                for k in range(f):
                    total = bias[k]
                    for di in range(kh):
                        for dj in range(kw):
                            r, col = i * sv + di - top, j * sh + dj - left
                            if 0 <= r < h and 0 <= col < w:
                                total += np.dot(x[b, r, col, :], kernel[di, dj, :, k])
                    out[b, i, j, k] = total
    return out


def convolve(image, kernel, bias=0.0, stride=1, padding="valid"):
    return conv2d(image[None, :, :, None], kernel[:, :, None, None], [bias], stride, padding)[0, :, :, 0]
