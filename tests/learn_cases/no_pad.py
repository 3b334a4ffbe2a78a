# Padding without np.pad: positions outside the image count as zero. Returns nested lists.
# expect: convolve: pass
# expect: conv2d: pass
import math


def convolve(image, kernel, bias=0.0, stride=1, padding="valid"):
    sv, sh = (stride, stride) if isinstance(stride, int) else stride
    h, w = len(image), len(image[0])
    kh, kw = len(kernel), len(kernel[0])
    if padding == "same":
        ho, wo = math.ceil(h / sv), math.ceil(w / sh)
        top = max((ho - 1) * sv + kh - h, 0) // 2
        left = max((wo - 1) * sh + kw - w, 0) // 2
    else:
        ho, wo, top, left = (h - kh) // sv + 1, (w - kw) // sh + 1, 0, 0
    out = []
    for i in range(ho):
        row = []
        for j in range(wo):
            total = bias
            for a in range(kh):
                for b in range(kw):
                    r, c = i * sv + a - top, j * sh + b - left
                    if 0 <= r < h and 0 <= c < w:
                        total += image[r][c] * kernel[a][b]
            row.append(float(total))
        out.append(row)
    return out


def conv2d(x, kernel, bias, strides=(1, 1), padding="valid"):
    n, c, f = x.shape[0], x.shape[3], kernel.shape[3]
    result = []
    for b in range(n):
        maps = []
        for k in range(f):
            total = None
            for ch in range(c):
                one = convolve(x[b, :, :, ch], kernel[:, :, ch, k], 0.0, strides, padding)
                total = one if total is None else [[p + q for p, q in zip(r1, r2)] for r1, r2 in zip(total, one)]
            maps.append([[v + bias[k] for v in row] for row in total])
        result.append([[[maps[k][i][j] for k in range(f)] for j in range(len(maps[0][0]))]
                       for i in range(len(maps[0]))])
    return result
