# 'same' as "half the kernel on each side", the habit from 3x3 kernels and stride 1.
# expect: conv2d: padding split symmetrically
import numpy as np


def conv2d(x, kernel, bias, strides=(1, 1), padding="valid"):
    sv, sh = (strides, strides) if isinstance(strides, int) else strides
    n, h, w, c = x.shape
    kh, kw, _, f = kernel.shape
    if padding == "same":
        ph, pw = (kh - 1) // 2, (kw - 1) // 2
        x = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    ho = (x.shape[1] - kh) // sv + 1
    wo = (x.shape[2] - kw) // sh + 1
    out = np.zeros((n, ho, wo, f))
    for b in range(n):
        for i in range(ho):
            for j in range(wo):
                for k in range(f):
                    out[b, i, j, k] = np.sum(x[b, i * sv:i * sv + kh, j * sh:j * sh + kw, :] * kernel[..., k]) + bias[k]
    return out
