"""Pure math: shapes, convolution, pooling, dense, activations and losses."""

from . import activations, shapes
from .conv import conv2d_backward, conv2d_forward
from .padding import PADDING_MODES, pad_nhwc, pad_nhwc_backward
from .shapes import conv_output_size, resolve_padding, same_padding

__all__ = [
    "activations", "shapes", "PADDING_MODES", "conv2d_forward", "conv2d_backward", "pad_nhwc",
    "pad_nhwc_backward", "conv_output_size", "resolve_padding", "same_padding",
]
