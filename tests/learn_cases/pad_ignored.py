# The padding argument is taken but never used.
# expect: conv2d: padding not applied
# expect: convolve: padding not applied
import numpy as np


def convolve(image, kernel, bias=0.0, stride=1, padding="valid"):
    sv, sh = (stride, stride) if isinstance(stride, int) else stride
    kh, kw = kernel.shape
    out = np.zeros(((image.shape[0] - kh) // sv + 1, (image.shape[1] - kw) // sh + 1))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = np.sum(image[i * sv:i * sv + kh, j * sh:j * sh + kw] * kernel) + bias
    return out


def conv2d(x, kernel, bias, strides=(1, 1), padding="valid"):
    out = []
    for b in range(x.shape[0]):
        maps = []
        for k in range(kernel.shape[3]):
            total = sum(convolve(x[b, :, :, ch], kernel[:, :, ch, k], 0.0, strides) for ch in range(x.shape[3]))
            maps.append(total + bias[k])
        out.append(np.stack(maps, axis=-1))
    return np.array(out)
