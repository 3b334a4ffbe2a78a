# The odd row and column of 'same' go first (as PyTorch-style or Caffe-style code would put them).
# expect: conv2d: odd padding at the top/left
# expect: convolve: odd padding at the top/left
import numpy as np


def conv2d(x, kernel, bias, strides=(1, 1), padding="valid"):
    sv, sh = (strides, strides) if isinstance(strides, int) else strides
    n, h, w, c = x.shape
    kh, kw, _, f = kernel.shape
    if padding == "same":
        ho, wo = -(-h // sv), -(-w // sh)
        pad_h = max((ho - 1) * sv + kh - h, 0)
        pad_w = max((wo - 1) * sh + kw - w, 0)
        top, left = pad_h - pad_h // 2, pad_w - pad_w // 2  # the bigger half first
        xp = np.zeros((n, h + pad_h, w + pad_w, c))
        xp[:, top:top + h, left:left + w, :] = x
    else:
        xp = x
    ho = (xp.shape[1] - kh) // sv + 1
    wo = (xp.shape[2] - kw) // sh + 1
    out = np.zeros((n, ho, wo, f))
    for b in range(n):
        for i in range(ho):
            for j in range(wo):
                window = xp[b, i * sv:i * sv + kh, j * sh:j * sh + kw, :]
                for k in range(f):
                    out[b, i, j, k] = np.sum(window * kernel[:, :, :, k]) + bias[k]
    return out


def convolve(image, kernel, bias=0.0, stride=1, padding="valid"):
    return conv2d(image[None, :, :, None], kernel[:, :, None, None], [bias], stride, padding)[0, :, :, 0]
