"""MaxPooling2D and AveragePooling2D with Keras names and semantics."""

from __future__ import annotations


import numpy as np

from ..functional import pool as pool_fn
from ..functional.shapes import DATA_FORMATS, conv_output_spatial, normalize_padding, normalize_tuple, resolve_padding
from .base import Layer


class _Pooling2D(Layer):
    _forward = staticmethod(pool_fn.max_pool2d_forward)
    _backward = staticmethod(pool_fn.max_pool2d_backward)

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, *, name=None,
                 dtype=None, trainable=True):
        super().__init__(name=name, dtype=dtype, trainable=trainable)
        who = self.describe()
        self.pool_size = normalize_tuple(pool_size, 2, "pool_size", owner=who)
        self.strides = normalize_tuple(strides if strides is not None else self.pool_size, 2, "strides", owner=who)
        self.padding = normalize_padding(padding, owner=who, allow_explicit=False)
        data_format = data_format or "channels_last"
        if data_format not in DATA_FORMATS:
            raise ValueError(f"{who}: data_format must be 'channels_last' or 'channels_first', got {data_format!r}.")
        self.data_format = data_format

    def _spatial(self, shape):
        return tuple(shape[-3:-1]) if self.data_format == "channels_last" else tuple(shape[-2:])

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        if len(shape) != 4:
            raise ValueError(f"{self.describe()} expects input of rank 4 (batch, rows, cols, channels for "
                             f"data_format='{self.data_format}'), got shape {shape}.")
        out = conv_output_spatial(self.padding, self._spatial(shape), self.pool_size, self.strides, (1, 1))
        if any(o is not None and o <= 0 for o in out):
            raise ValueError(f"{self.describe()}: pool_size {self.pool_size} is larger than the input "
                             f"{self._spatial(shape)} with padding='valid', so the output size would be 0. "
                             "Use padding='same' or a smaller pool_size.")
        if self.data_format == "channels_last":
            return (shape[0], *out, shape[3])
        return (shape[0], shape[1], *out)

    def forward(self, x, *, training=False, keep_cache=True):
        self.compute_output_shape(x.shape)
        if self.data_format == "channels_first":
            x = x.transpose(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C)
        pads = resolve_padding(self.padding, x.shape[1:3], self.pool_size, self.strides, (1, 1))
        y, cache = self._forward(x, self.pool_size, self.strides, pads, keep_cache=keep_cache)
        self._cache = cache
        if self.data_format == "channels_first":
            y = np.ascontiguousarray(y.transpose(0, 3, 1, 2))
        return y

    def backward_impl(self, dy, *, need_input_grad=True):
        if self.data_format == "channels_first":
            dy = dy.transpose(0, 2, 3, 1)
        dx = self._backward(np.ascontiguousarray(dy), self._cache)
        if self.data_format == "channels_first":
            dx = dx.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(dx)

    def get_config(self):
        config = super().get_config()
        config.pop("activity_regularizer")
        config.update(pool_size=list(self.pool_size), strides=list(self.strides), padding=self.padding,
                      data_format=self.data_format)
        return config


class MaxPooling2D(_Pooling2D):
    """Max over ``pool_size`` windows (stride defaults to ``pool_size``)."""


class AveragePooling2D(_Pooling2D):
    """Mean over ``pool_size`` windows; 'same' padding averages real pixels only."""

    _forward = staticmethod(pool_fn.avg_pool2d_forward)
    _backward = staticmethod(pool_fn.avg_pool2d_backward)


MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
