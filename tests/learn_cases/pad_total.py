# 'same' pads k - 1 in all (right for stride 1) and makes ceil(in / stride) outputs.
# expect: conv2d: wrong padding total
# expect: conv2d_backward: dbias not summed over positions
import numpy as np


def conv2d(x, kernel, bias, strides=(1, 1), padding="valid"):
    sv, sh = (strides, strides) if isinstance(strides, int) else strides
    n, h, w, c = x.shape
    kh, kw, _, f = kernel.shape
    if padding == "same":
        ho, wo = -(-h // sv), -(-w // sh)
        x = np.pad(x, ((0, 0), ((kh - 1) // 2, kh - 1 - (kh - 1) // 2), ((kw - 1) // 2, kw - 1 - (kw - 1) // 2),
                       (0, 0)))
    else:
        ho, wo = (h - kh) // sv + 1, (w - kw) // sh + 1
    out = np.zeros((n, ho, wo, f))
    for b in range(n):
        for i in range(ho):
            for j in range(wo):
                window = x[b, i * sv:i * sv + kh, j * sh:j * sh + kw, :]
                for k in range(f):
                    out[b, i, j, k] = np.sum(window * kernel[:, :, :, k]) + bias[k]
    return out


def conv2d_backward(dy, x, kernel, strides=(1, 1), padding="valid"):
    sv, sh = (strides, strides) if isinstance(strides, int) else strides
    n, h, w, c = x.shape
    kh, kw, _, f = kernel.shape
    pad_h = max((dy.shape[1] - 1) * sv + kh - h, 0) if padding == "same" else 0
    pad_w = max((dy.shape[2] - 1) * sh + kw - w, 0) if padding == "same" else 0
    top, left = pad_h // 2, pad_w // 2
    xp = np.pad(x, ((0, 0), (top, pad_h - top), (left, pad_w - left), (0, 0)))
    dxp = np.zeros_like(xp)
    dkernel = np.zeros_like(kernel)
    for i in range(dy.shape[1]):
        for j in range(dy.shape[2]):
            g = dy[:, i, j, :]  # (N, F)
            dbias = g.sum(axis=0)
            window = xp[:, i * sv:i * sv + kh, j * sh:j * sh + kw, :]
            dkernel += np.einsum("nabc,nf->abcf", window, g)
            dxp[:, i * sv:i * sv + kh, j * sh:j * sh + kw, :] += np.einsum("abcf,nf->nabc", kernel, g)
    return dxp[:, top:top + h, left:left + w], dkernel, dbias
