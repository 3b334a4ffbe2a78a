# The output is filled as out[column, row].
# expect: conv2d: output height and width swapped
# expect: convolve: output height and width swapped
import numpy as np


def convolve(image, kernel, bias=0.0, stride=1, padding="valid"):
    sv, sh = (stride, stride) if isinstance(stride, int) else stride
    h, w = image.shape
    kh, kw = kernel.shape
    if padding == "same":
        pad_h = max((-(-h // sv) - 1) * sv + kh - h, 0)
        pad_w = max((-(-w // sh) - 1) * sh + kw - w, 0)
        image = np.pad(image, ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2)))
    ho, wo = (image.shape[0] - kh) // sv + 1, (image.shape[1] - kw) // sh + 1
    out = np.zeros((wo, ho))
    for i in range(ho):
        for j in range(wo):
            out[j, i] = np.sum(image[i * sv:i * sv + kh, j * sh:j * sh + kw] * kernel) + bias
    return out


def conv2d(x, kernel, bias, strides=(1, 1), padding="valid"):
    out = [[np.sum([convolve(x[b, :, :, ch], kernel[:, :, ch, k], 0.0, strides, padding)
                    for ch in range(x.shape[3])], axis=0) + bias[k]
            for k in range(kernel.shape[3])] for b in range(x.shape[0])]
    return np.array(out).transpose(0, 2, 3, 1)
