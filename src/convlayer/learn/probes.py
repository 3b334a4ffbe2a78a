"""Small inputs chosen so that every catalogued mistake gives a different answer.

Non-square inputs and kernels, kernels with no symmetry, several channels with different
kernels, a different bias per filter, strides that leave a remainder, 'same' with an odd padding
total, batch > 1. Small integers (easy to add up), ordered from the smallest case up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Probe:
    name: str
    x: np.ndarray  # (N, H, W, C)
    kernel: np.ndarray  # (kh, kw, C, F)
    bias: np.ndarray  # (F,)
    strides: tuple
    padding: str
    concepts: tuple
    dy: np.ndarray | None = None  # (N, Ho, Wo, F), for backward

    def call_strides(self, family: str):
        """The strides as the learner's function receives them: an int where the contract allows one."""
        sv, sh = self.strides
        if family == "convolve" and sv == sh:
            return sv  # convolve's default is stride=1
        if self.name in INT_STRIDES:
            return sv  # one layer probe passes an int: the contract says an int or a pair
        return (sv, sh)

    def call_args(self, family: str) -> tuple:
        """The positional arguments of the learner's ``convolve``, ``conv2d`` or ``conv2d_backward``."""
        strides = self.call_strides(family)
        if family == "convolve":  # image (H, W), kernel (kh, kw), bias a number
            return self.x[0, :, :, 0], self.kernel[:, :, 0, 0], float(self.bias[0]), strides, self.padding
        if family == "backward":
            return self.dy, self.x, self.kernel, strides, self.padding
        return self.x, self.kernel, self.bias, strides, self.padding

    def describe(self, family: str = "conv2d") -> str:
        strides = self.call_strides(family)
        if family == "convolve":
            return (f"{self.name}: image {self.x.shape[1:3]}, kernel {self.kernel.shape[:2]}, "
                    f"bias {format(float(self.bias[0]), 'g')}, stride {strides}, padding '{self.padding}'")
        if family == "backward":
            return (f"{self.name}: dy {self.dy.shape}, x {self.x.shape}, kernel {self.kernel.shape}, "
                    f"strides {strides}, padding '{self.padding}'")
        return (f"{self.name}: x {self.x.shape}, kernel {self.kernel.shape}, bias {self.bias.tolist()}, "
                f"strides {strides}, padding '{self.padding}'")


# (name, x shape, kernel shape, strides, padding, concepts)
_CASES = (
    ("one channel, stride 1", (1, 3, 4, 1), (2, 3, 1, 1), (1, 1), "valid", ("dot product + bias",)),
    ("stride with a remainder", (1, 6, 7, 1), (2, 3, 1, 1), (2, 3), "valid", ("dot product + bias", "stride")),
    ("'same', odd padding total", (1, 4, 5, 1), (2, 3, 1, 1), (1, 1), "same", ("dot product + bias", "padding")),
    ("'same' with stride 2", (1, 6, 7, 1), (3, 2, 1, 1), (2, 2), "same",
     ("dot product + bias", "stride", "padding")),
    ("three channels", (1, 3, 4, 3), (2, 2, 3, 1), (1, 1), "valid", ("dot product + bias", "channels")),
    ("three filters", (1, 3, 4, 1), (2, 3, 1, 3), (1, 1), "valid", ("dot product + bias", "filters")),
    ("a layer, batch of 2", (2, 5, 6, 2), (3, 2, 2, 3), (2, 1), "same",
     ("dot product + bias", "stride", "padding", "channels", "filters")),
)

INT_STRIDES = ("'same' with stride 2",)


def _kernel(rng, shape):
    while True:  # no symmetry: flipped or transposed it would give other numbers
        k = rng.integers(-3, 4, size=shape).astype(float)
        if np.all(k != 0) and not np.array_equal(k, k[::-1, ::-1]) and len(np.unique(k)) > 2:
            return k


def make_probes(family: str = "conv2d") -> list[Probe]:
    """The probes for 'convolve' (one channel, one filter, one image), 'conv2d' or 'backward'."""
    from .reference import conv2d

    rng = np.random.default_rng(11)
    probes = []
    for name, x_shape, k_shape, strides, padding, concepts in _CASES:
        x = rng.integers(1, 10, size=x_shape).astype(float)
        kernel = _kernel(rng, k_shape)
        bias = (np.arange(k_shape[3]) + 1.5) * np.where(np.arange(k_shape[3]) % 2, -1, 1)  # 1.5, -2.5, 3.5
        probe = Probe(name, x, kernel, bias, strides, padding, concepts)
        if family == "backward":
            y = conv2d(x, kernel, bias, strides, padding)
            probe.dy = rng.integers(-2, 3, size=y.shape).astype(float)
        if family == "convolve" and (x_shape[0], x_shape[3], k_shape[3]) != (1, 1, 1):
            continue
        probes.append(probe)
    return probes
