# A vectorized solution: windows by as_strided, one einsum; the gradients by einsum and a scatter loop.
# expect: convolve: pass
# expect: conv2d: pass
# expect: conv2d_backward: pass
import numpy as np
from numpy.lib.stride_tricks import as_strided


def _pairs(strides):
    return (strides, strides) if np.ndim(strides) == 0 else tuple(strides)


def _pad(x, kh, kw, sv, sh, padding):
    if padding != "same":
        return x, 0, 0
    h, w = x.shape[1:3]
    ph = max((-(-h // sv) - 1) * sv + kh - h, 0)
    pw = max((-(-w // sh) - 1) * sh + kw - w, 0)
    return np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0))), ph // 2, pw // 2


def _windows(xp, kh, kw, sv, sh):
    n, hp, wp, c = xp.shape
    ho, wo = (hp - kh) // sv + 1, (wp - kw) // sh + 1
    sn, sr, sc, sch = xp.strides
    return as_strided(xp, (n, ho, wo, kh, kw, c), (sn, sr * sv, sc * sh, sr, sc, sch), writeable=False)


def conv2d(x, kernel, bias, strides=(1, 1), padding="valid"):
    sv, sh = _pairs(strides)
    kh, kw = kernel.shape[:2]
    xp, _, _ = _pad(np.asarray(x, float), kh, kw, sv, sh, padding)
    return np.einsum("nijabc,abcf->nijf", _windows(xp, kh, kw, sv, sh), kernel) + bias


def convolve(image, kernel, bias=0.0, stride=1, padding="valid"):
    return conv2d(image[None, :, :, None], kernel[:, :, None, None], bias, stride, padding)[0, :, :, 0]


def conv2d_backward(dy, x, kernel, strides=(1, 1), padding="valid"):
    sv, sh = _pairs(strides)
    kh, kw = kernel.shape[:2]
    h, w = x.shape[1:3]
    xp, top, left = _pad(np.asarray(x, float), kh, kw, sv, sh, padding)
    dkernel = np.einsum("nijabc,nijf->abcf", _windows(xp, kh, kw, sv, sh), dy)
    dwindows = np.einsum("abcf,nijf->nijabc", kernel, dy)
    dxp = np.zeros_like(xp)
    for a in range(kh):
        for b in range(kw):
            dxp[:, a:a + sv * dy.shape[1]:sv, b:b + sh * dy.shape[2]:sh] += dwindows[:, :, :, a, b]
    return dxp[:, top:top + h, left:left + w], dkernel, dy.sum(axis=(0, 1, 2))
