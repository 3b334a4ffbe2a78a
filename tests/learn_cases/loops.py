# A learner's plain-loop solution of all three exercises, with np.pad.
# expect: convolve: pass
# expect: conv2d: pass
# expect: conv2d_backward: pass
import numpy as np


def same_pads(size, k, s):
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def conv2d(x, kernel, bias, strides=(1, 1), padding="valid"):
    if isinstance(strides, int):
        strides = (strides, strides)
    sv, sh = strides
    n, h, w, c = x.shape
    kh, kw, _, f = kernel.shape
    if padding == "same":
        top, bottom = same_pads(h, kh, sv)
        left, right = same_pads(w, kw, sh)
        x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    ho = (x.shape[1] - kh) // sv + 1
    wo = (x.shape[2] - kw) // sh + 1
    out = np.zeros((n, ho, wo, f))
    for b in range(n):
        for i in range(ho):
            for j in range(wo):
                for k in range(f):
                    total = 0.0
                    for di in range(kh):
                        for dj in range(kw):
                            for ch in range(c):
                                total += x[b, i * sv + di, j * sh + dj, ch] * kernel[di, dj, ch, k]
                    out[b, i, j, k] = total + bias[k]
    return out


def convolve(image, kernel, bias=0.0, stride=1, padding="valid"):
    y = conv2d(image[None, :, :, None], kernel[:, :, None, None], np.array([bias]), stride, padding)
    return y[0, :, :, 0]


def conv2d_backward(dy, x, kernel, strides=(1, 1), padding="valid"):
    if isinstance(strides, int):
        strides = (strides, strides)
    sv, sh = strides
    n, h, w, c = x.shape
    kh, kw, _, f = kernel.shape
    top = left = 0
    if padding == "same":
        top, bottom = same_pads(h, kh, sv)
        left, right = same_pads(w, kw, sh)
        x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    dx = np.zeros_like(x)
    dkernel = np.zeros_like(kernel)
    dbias = np.zeros(f)
    for b in range(n):
        for i in range(dy.shape[1]):
            for j in range(dy.shape[2]):
                for k in range(f):
                    g = dy[b, i, j, k]
                    dbias[k] += g
                    dkernel[:, :, :, k] += x[b, i * sv:i * sv + kh, j * sh:j * sh + kw, :] * g
                    dx[b, i * sv:i * sv + kh, j * sh:j * sh + kw, :] += kernel[:, :, :, k] * g
    return dx[:, top:top + h, left:left + w, :], dkernel, dbias
