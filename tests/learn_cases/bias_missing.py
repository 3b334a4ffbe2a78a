# The dot products, and no bias.
# expect: conv2d: bias missing
# expect: convolve: bias missing
import numpy as np


def convolve(image, kernel, bias=0.0, stride=1, padding="valid"):
    return conv2d(image[:, :, None][None], kernel[:, :, None, None], np.array([bias]), stride, padding)[0, :, :, 0]


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
                for k in range(f):
                    out[b, i, j, k] = np.sum(x[b, i * sv:i * sv + kh, j * sh:j * sh + kw] * kernel[..., k])
    return out
