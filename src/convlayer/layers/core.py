"""Dense, Dropout, Flatten, Reshape and Activation, with Keras names and defaults."""

from __future__ import annotations

import math

import numpy as np

from ..functional import activations as act_mod
from ..functional.dense import dense_backward, dense_forward
from .base import KernelLayer, Layer


class Dense(KernelLayer):
    """``activation(x @ kernel + bias)`` over the last axis; kernel (in, units) as in Keras."""

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, *, name=None,
                 dtype=None, trainable=True, seed=None):
        super().__init__(name=name, dtype=dtype, trainable=trainable, activity_regularizer=activity_regularizer,
                         seed=seed)
        who = self.describe()
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(f"{who}: units must be a positive int, got units={units!r}.")
        self.units = int(units)
        self._set_kernel_args(activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                              bias_regularizer, kernel_constraint, bias_constraint)
        self.input_units: int | None = None

    def _check_shape(self, shape):
        if len(shape) < 2:
            raise ValueError(f"{self.describe()} expects input of rank >= 2 (batch, features), got shape "
                             f"{tuple(shape)}. Add a batch axis, e.g. x[None].")
        if self.input_units is not None and shape[-1] != self.input_units:
            raise ValueError(f"{self.describe()} expects {self.input_units} input features (last axis), got "
                             f"input of shape {tuple(shape)}. Flatten the input first or rebuild the layer.")

    def compute_output_shape(self, input_shape):
        self._check_shape(tuple(input_shape))
        return tuple(input_shape)[:-1] + (self.units,)

    def build(self, input_shape):
        self._check_shape(tuple(input_shape))
        self.input_units = int(input_shape[-1])
        self._add_kernel_and_bias((self.input_units, self.units), self.units)

    def forward(self, x, *, training=False, keep_cache=True):
        self._check_shape(x.shape)
        z = dense_forward(x, self.params["kernel"], self.params.get("bias"))
        pre = z.copy() if keep_cache and self.activation.needs_input else None
        y = act_mod.apply(self.activation, z, in_place=True)
        self._cache = (x, pre, y) if keep_cache else None
        return y

    def backward_impl(self, dy, *, need_input_grad=True):
        x, pre, y = self._cache
        dz = self.activation.backward(dy, pre, y)
        dx, dkernel, dbias = dense_backward(dz, x, self.params["kernel"], has_bias=self.use_bias,
                                            need_dx=need_input_grad)
        self._store_grad("kernel", dkernel)
        if self.use_bias:
            self._store_grad("bias", dbias)
        return dx

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units)
        return config


class Dropout(Layer):
    """Zero a ``rate`` fraction of inputs and scale the rest by 1/(1 - rate), only when training."""

    def __init__(self, rate, noise_shape=None, *, name=None, dtype=None, trainable=True, seed=None):
        super().__init__(name=name, dtype=dtype, trainable=trainable, seed=seed)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError(f"{self.describe()}: rate must be a number in [0, 1), got rate={rate!r}.")
        self.rate = float(rate)
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, x, *, training=False, keep_cache=True):
        if not training or self.rate == 0:
            self._cache = (None,) if keep_cache else None  # identity: no mask
            return x
        shape = x.shape if self.noise_shape is None else tuple(
            x.shape[i] if s is None else s for i, s in enumerate(self.noise_shape))
        scale = np.asarray(1.0 / (1.0 - self.rate), x.dtype)
        mask = (self.rng.random(shape, dtype=np.float32) >= self.rate) * scale  # (x.shape) kept/(1-rate)
        mask = mask.astype(x.dtype, copy=False)
        self._cache = (mask,) if keep_cache else None
        return x * mask

    def backward_impl(self, dy, *, need_input_grad=True):
        (mask,) = self._cache
        return dy if mask is None else dy * mask

    def get_config(self):
        config = super().get_config()
        config.pop("activity_regularizer")
        config.update(rate=self.rate, noise_shape=None if self.noise_shape is None else list(self.noise_shape),
                      seed=self.seed if isinstance(self.seed, int) else None)
        return config


class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1*d2*...), in row-major (channels_last) order as Keras."""

    def __init__(self, data_format=None, *, name=None, dtype=None, trainable=True):
        super().__init__(name=name, dtype=dtype, trainable=trainable)
        self.data_format = data_format or "channels_last"

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        if len(shape) < 1:
            raise ValueError(f"{self.describe()} expects input with a batch axis, got shape {shape}.")
        rest = shape[1:]
        size = None if any(d is None for d in rest) else math.prod(rest)
        return (shape[0], size)

    def forward(self, x, *, training=False, keep_cache=True):
        if x.ndim < 1:
            raise ValueError(f"{self.describe()} expects input with a batch axis, got a scalar.")
        self._cache = (x.shape,) if keep_cache else None
        if self.data_format == "channels_first" and x.ndim > 2:
            x = np.moveaxis(x, 1, -1)  # Keras flattens channels_first data in channels_last order
        return x.reshape(x.shape[0], -1)  # (N, d1*d2*...)

    def backward_impl(self, dy, *, need_input_grad=True):
        (shape,) = self._cache
        if self.data_format == "channels_first" and len(shape) > 2:
            moved = (shape[0], *shape[2:], shape[1])
            return np.moveaxis(dy.reshape(moved), -1, 1)
        return dy.reshape(shape)

    def get_config(self):
        config = super().get_config()
        config.pop("activity_regularizer")
        config.update(data_format=self.data_format)
        return config


class Reshape(Layer):
    """Reshape every sample to ``target_shape`` (the batch axis is kept; one -1 allowed)."""

    def __init__(self, target_shape, *, name=None, dtype=None, trainable=True):
        super().__init__(name=name, dtype=dtype, trainable=trainable)
        target = tuple(target_shape) if isinstance(target_shape, (list, tuple)) else None
        if target is None or not all(isinstance(d, int) and (d > 0 or d == -1) for d in target) or \
                target.count(-1) > 1:
            raise ValueError(f"{self.describe()}: target_shape must be a tuple of positive ints with at most one "
                             f"-1, got {target_shape!r}.")
        self.target_shape = target

    def _resolve(self, input_shape):
        shape = tuple(input_shape)
        if len(shape) < 1:
            raise ValueError(f"{self.describe()} expects input with a batch axis, got a scalar.")
        if any(d is None for d in shape[1:]):
            return (shape[0], *[None if d == -1 else d for d in self.target_shape])
        size = math.prod(shape[1:])
        known = math.prod(d for d in self.target_shape if d != -1)
        if (-1 in self.target_shape and size % known) or (-1 not in self.target_shape and size != known):
            raise ValueError(f"{self.describe()} cannot reshape samples of shape {shape[1:]} ({size} values) to "
                             f"{self.target_shape}.")
        return (shape[0], *[size // known if d == -1 else d for d in self.target_shape])

    def compute_output_shape(self, input_shape):
        return self._resolve(input_shape)

    def forward(self, x, *, training=False, keep_cache=True):
        out = self._resolve(x.shape)
        self._cache = (x.shape,) if keep_cache else None
        return x.reshape(out)

    def backward_impl(self, dy, *, need_input_grad=True):
        return dy.reshape(self._cache[0])

    def get_config(self):
        config = super().get_config()
        config.pop("activity_regularizer")
        config.update(target_shape=list(self.target_shape))
        return config


class Activation(Layer):
    """Apply a named activation element-wise (softmax over the last axis)."""

    def __init__(self, activation, *, name=None, dtype=None, trainable=True):
        super().__init__(name=name, dtype=dtype, trainable=trainable)
        self.activation = act_mod.get(activation, owner=self.describe())

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, x, *, training=False, keep_cache=True):
        y = self.activation.forward(x)
        self._cache = (x, y) if keep_cache else None
        return y

    def backward_impl(self, dy, *, need_input_grad=True):
        x, y = self._cache
        return self.activation.backward(dy, x, y)

    def get_config(self):
        config = super().get_config()
        config.pop("activity_regularizer")
        config.update(activation=self.activation.name)
        return config
