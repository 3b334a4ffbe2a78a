"""Conv2D: Keras 3 arguments and semantics, plus explicit padding and padding modes."""

from __future__ import annotations

import math

import numpy as np

from ..functional import activations as act_mod
from ..functional.conv import check_algorithm, conv2d_backward, conv2d_forward
from ..functional.padding import PADDING_MODES
from ..functional.pool import max_pool2d_into
from ..functional.shapes import (DATA_FORMATS, conv_output_spatial, effective_kernel_size, normalize_padding,
                                 normalize_tuple, resolve_padding)
from .base import KernelLayer


class Conv2D(KernelLayer):
    """2-D convolution layer with exactly ``tf.keras.layers.Conv2D``'s semantics.

    Input: ``batch_shape + (rows, cols, channels)`` (channels_last) or
    ``batch_shape + (channels, rows, cols)`` (channels_first), rank 4 or more; extra
    leading batch axes are kept in the output. Integer and float16 inputs are cast to
    ``dtype`` (float32 by default), as Keras does.

    Beyond Keras: ``padding`` may be explicit (an int, (pad_h, pad_w) or
    ((top, bottom), (left, right))); ``padding_mode`` may be 'zeros', 'reflect',
    'replicate' or 'circular' (for any padding, 'same' included); strides > 1 work with
    'same' and with dilation > 1. ``algorithm`` picks how it is computed: 'im2col',
    'winograd' (stride 1, no dilation, one group; fewer multiplications, float32 results
    within a few 1e-6 of im2col's), 'direct' (float32, one group, filters a multiple of 8;
    each output pixel summed in registers, for thin layers) or 'auto' (the fastest that applies).

    >>> layer = Conv2D(32, [5, 5], padding="same", activation="relu", name="conv1", seed=0)
    >>> layer(np.zeros((2, 28, 28, 1))).shape
    (2, 28, 28, 32)
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 padding_mode="zeros", *, algorithm="auto", name=None, dtype=None, trainable=True, seed=None):
        super().__init__(name=name, dtype=dtype, trainable=trainable, activity_regularizer=activity_regularizer,
                         seed=seed)
        who = self.describe()
        if isinstance(filters, bool) or not isinstance(filters, (int, np.integer)):
            raise TypeError(f"{who}: filters must be a positive int, got {filters!r}.")
        if filters <= 0:
            raise ValueError(f"{who}: filters must be a positive int (the number of output channels), "
                             f"got filters={filters}.")
        self.filters = int(filters)
        self.kernel_size = normalize_tuple(kernel_size, 2, "kernel_size", owner=who)
        self.strides = normalize_tuple(strides, 2, "strides", owner=who)
        self.dilation_rate = normalize_tuple(dilation_rate, 2, "dilation_rate", owner=who)
        self.padding = normalize_padding(padding, owner=who)
        if not isinstance(padding_mode, str) or padding_mode.lower() not in PADDING_MODES:
            raise ValueError(f"{who}: padding_mode must be one of {', '.join(map(repr, PADDING_MODES))}; "
                             f"got {padding_mode!r}.")
        self.padding_mode = padding_mode.lower()
        data_format = data_format or "channels_last"
        if data_format not in DATA_FORMATS:
            raise ValueError(f"{who}: data_format must be 'channels_last' or 'channels_first', got {data_format!r}.")
        self.data_format = data_format
        if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups <= 0:
            raise ValueError(f"{who}: groups must be a positive int, got {groups!r}.")
        if self.filters % groups:
            raise ValueError(f"{who}: filters={self.filters} must be divisible by groups={groups}; "
                             f"choose groups among the divisors of {self.filters}.")
        self.groups = int(groups)
        check_algorithm(algorithm, self.kernel_size, self.strides, self.dilation_rate, self.groups,
                        filters=self.filters, dtype=self.dtype, owner=who)
        self.algorithm = algorithm
        self._set_kernel_args(activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                              bias_regularizer, kernel_constraint, bias_constraint)
        self.input_channels: int | None = None

    # ------------------------------------------------------------------ geometry

    @property
    def _channel_axis(self) -> int:
        return -1 if self.data_format == "channels_last" else -3

    def _spatial(self, shape) -> tuple:
        return tuple(shape[-3:-1]) if self.data_format == "channels_last" else tuple(shape[-2:])

    def _check_shape(self, shape) -> None:
        layout = "rows, cols, channels" if self.data_format == "channels_last" else "channels, rows, cols"
        if len(shape) < 4:
            raise ValueError(
                f"{self.describe()} expects input of rank 4 or more (batch..., {layout}; "
                f"data_format='{self.data_format}'), got shape {tuple(shape)}. Add the missing axes, "
                "e.g. x.reshape(-1, rows, cols, 1) for one grayscale channel."
            )
        channels = shape[self._channel_axis]
        if self.input_channels is not None and channels is not None and channels != self.input_channels:
            other_axis = -3 if self.data_format == "channels_last" else -1
            other = "channels_first" if self.data_format == "channels_last" else "channels_last"
            hint = ""
            if shape[other_axis] == self.input_channels:
                hint = f" It looks like {other} data; pass data_format='{other}' or transpose the input."
            where = "last axis" if self.data_format == "channels_last" else "axis -3"
            plural = "s" if self.input_channels != 1 else ""
            raise ValueError(
                f"{self.describe()} expects {self.input_channels} input channel{plural} ({where}, "
                f"data_format='{self.data_format}'), got input of shape {tuple(shape)}.{hint}"
            )
        spatial = self._spatial(shape)
        if self.padding == "same" and all(s is not None for s in spatial) and min(spatial) == 0:
            raise ValueError(f"{self.describe()} got an empty spatial axis in input shape {tuple(shape)}.")
        out = conv_output_spatial(self.padding, spatial, self.kernel_size, self.strides, self.dilation_rate)
        if any(o is not None and o <= 0 for o in out):
            pads = resolve_padding(self.padding, spatial, self.kernel_size, self.strides, self.dilation_rate)
            spans = [effective_kernel_size(k, d) for k, d in zip(self.kernel_size, self.dilation_rate)]
            padded = [s + sum(p) for s, p in zip(spatial, pads)]
            raise ValueError(
                f"{self.describe()}: the kernel (span {spans[0]}x{spans[1]} with dilation {self.dilation_rate}) is "
                f"larger than the padded input ({padded[0]}x{padded[1]} from {spatial[0]}x{spatial[1]}), so the "
                f"output size would be 0. Use padding='same', a smaller kernel or dilation, or a larger input."
            )
        if self.padding_mode in ("reflect", "circular") and all(s is not None for s in spatial):
            pads = resolve_padding(self.padding, spatial, self.kernel_size, self.strides, self.dilation_rate)
            for size, pair in zip(spatial, pads):
                limit = size - 1 if self.padding_mode == "reflect" else size
                if max(pair) > limit:
                    raise ValueError(
                        f"{self.describe()}: padding_mode='{self.padding_mode}' needs each pad <= {limit} "
                        f"for an axis of size {size}, got padding {pads}. Use 'zeros' or 'replicate', "
                        "or a smaller padding."
                    )

    def compute_output_shape(self, input_shape):
        """Output shape for ``input_shape``; None dims are kept.

        >>> Conv2D(32, 5, padding="same").compute_output_shape((None, 28, 28, 1))
        (None, 28, 28, 32)
        """
        shape = tuple(input_shape)
        self._check_shape(shape)
        out = conv_output_spatial(self.padding, self._spatial(shape), self.kernel_size, self.strides,
                                  self.dilation_rate)
        if self.data_format == "channels_last":
            return shape[:-3] + tuple(out) + (self.filters,)
        return shape[:-3] + (self.filters,) + tuple(out)

    def padding_amounts(self, input_shape):
        """((top, bottom), (left, right)) zeros added for ``input_shape`` (None if unknown)."""
        shape = tuple(input_shape)
        self._check_shape(shape)
        return resolve_padding(self.padding, self._spatial(shape), self.kernel_size, self.strides,
                               self.dilation_rate)

    # ------------------------------------------------------------------ weights

    def build(self, input_shape) -> None:
        shape = tuple(input_shape)
        self._check_shape(shape)
        channels = shape[self._channel_axis]
        if channels is None or channels <= 0:
            raise ValueError(f"{self.describe()} needs a known, positive channel count; got input shape {shape}.")
        if channels % self.groups:
            raise ValueError(f"{self.describe()}: input channels ({channels}) must be divisible by "
                             f"groups={self.groups}.")
        self.input_channels = int(channels)
        self._add_kernel_and_bias((*self.kernel_size, self.input_channels // self.groups, self.filters),
                                  self.filters)
        self.built = True

    @property
    def kernel(self) -> np.ndarray:
        return self.params["kernel"]

    @property
    def bias(self) -> np.ndarray | None:
        return self.params.get("bias")

    # ------------------------------------------------------------------ compute

    def _to_nhwc(self, x):
        batch_shape = x.shape[:-3]
        x = x.reshape((math.prod(batch_shape), *x.shape[-3:]))  # (N, ...) with N = prod(batch_shape)
        if self.data_format == "channels_first":
            x = x.transpose(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C)
        return np.ascontiguousarray(x), batch_shape

    def _from_nhwc(self, y, batch_shape):
        if self.data_format == "channels_first":
            y = y.transpose(0, 3, 1, 2)  # (N, Ho, Wo, F) -> (N, F, Ho, Wo)
        return y.reshape(batch_shape + y.shape[1:])

    def _as_output_axes(self, a):
        """NHWC <-> the axis order the activation sees: Keras activates the output as laid out, so an
        axis-dependent activation (softmax over axis -1) runs over the width for channels_first."""
        return np.swapaxes(a, 2, 3) if self.data_format == "channels_first" else a  # (N, H, F, W) view

    @property
    def _fused_activation(self) -> bool:
        """Element-wise in-place activations (ReLU...) run on each output block while it is in cache."""
        return self.activation.in_place and not self.activation.needs_input

    @property
    def _epilogue(self) -> bool:
        """A fused activation with work to do on each block (linear has none: no pass, no copy)."""
        return self._fused_activation and self.activation is not act_mod.linear

    def _convolve(self, x_nhwc, *, keep_cache: bool, then=None):
        """conv2d_forward with this layer's settings; the activation fused when it can be."""
        pads = resolve_padding(self.padding, x_nhwc.shape[1:3], self.kernel_size, self.strides, self.dilation_rate)
        act = self.activation
        epilogue = (lambda block: act.forward(block, out=block)) if self._epilogue else None
        return conv2d_forward(
            x_nhwc, self.kernel, self.bias, strides=self.strides, padding=pads, dilation=self.dilation_rate,
            groups=self.groups, padding_mode=self.padding_mode, keep_cache=keep_cache, epilogue=epilogue,
            algorithm=self.algorithm, then=then,
        )  # (N, Ho, Wo, F) and the cache

    def forward(self, x, *, training: bool = False, keep_cache: bool = True):
        self._check_shape(x.shape)
        x_nhwc, batch_shape = self._to_nhwc(x)
        act, fuse = self.activation, self._fused_activation
        z, conv_cache = self._convolve(x_nhwc, keep_cache=keep_cache)  # (N, Ho, Wo, F)
        pre_activation = z.copy() if keep_cache and act.needs_input else None
        y = z if fuse else self._as_output_axes(act_mod.apply(act, self._as_output_axes(z), in_place=True))
        self._cache = (conv_cache, pre_activation, y, batch_shape, fuse) if keep_cache else None
        return self._from_nhwc(y, batch_shape)

    def can_pool_in_cache(self, pool) -> bool:
        """Whether ``pooled(x, pool)`` applies: a built layer with an in-place activation (or none), no
        activity regularizer, and ``pool`` a built max pooling, both channels_last."""
        from .pooling import MaxPooling2D

        return (isinstance(pool, MaxPooling2D) and self.built and pool.built and self._fused_activation
                and self.data_format == pool.data_format == "channels_last"
                and self.activity_regularizer is None and pool.activity_regularizer is None)

    def pooled(self, x, pool):
        """Inference: ``pool(self(x))``, each block of this layer's output pooled while in cache.

        The (N, Ho, Wo, F) output is never written to memory: for the lesson's conv1 at 512
        images that is 51 MB written and read again. Same numbers as the two calls.
        """
        x = self.cast_input(x)
        self._check_shape(x.shape)
        x_nhwc, batch_shape = self._to_nhwc(x)
        conv_shape = self.compute_output_shape(x_nhwc.shape)  # (N, Ho, Wo, F)
        out = np.empty(pool.compute_output_shape(conv_shape), self.dtype)  # (N, Ho', Wo', F)
        pool_pads = resolve_padding(pool.padding, conv_shape[1:3], pool.pool_size, pool.strides, (1, 1))

        def then(block, n0):  # (n, Ho, Wo, F), in cache
            max_pool2d_into(block, out[n0:n0 + len(block)], pool.pool_size, pool.strides, pool_pads)

        self._convolve(x_nhwc, keep_cache=False, then=then)
        self._cache = pool._cache = None
        return out.reshape(batch_shape + out.shape[1:])

    def backward_impl(self, dy, *, need_input_grad: bool = True):
        conv_cache, pre_activation, y, batch_shape, fused = self._cache
        dy_nhwc, _ = self._to_nhwc(dy)
        act = self.activation
        if fused and not self._epilogue:  # linear: dy is the convolution's output gradient itself
            dx, dkernel, dbias = conv2d_backward(dy_nhwc, conv_cache, need_dx=need_input_grad)
        elif fused:  # the element-wise activation's backward runs on each block inside conv2d_backward
            dx, dkernel, dbias = conv2d_backward(dy_nhwc, conv_cache, need_dx=need_input_grad,
                                                 epilogue_grad=lambda dy_block, index: act.backward(dy_block, None,
                                                                                                    y[index]))
        else:
            view = self._as_output_axes
            dz = view(act.backward(view(dy_nhwc), None if pre_activation is None else view(pre_activation), view(y)))
            dx, dkernel, dbias = conv2d_backward(dz, conv_cache, need_dx=need_input_grad)
        self._store_grad("kernel", dkernel)
        if self.use_bias:
            self._store_grad("bias", dbias)
        if dx is None:
            return None
        if self.data_format == "channels_first":
            dx = dx.transpose(0, 3, 1, 2)
        return dx.reshape(batch_shape + dx.shape[1:])

    # ------------------------------------------------------------------ config

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=list(self.kernel_size),
            strides=list(self.strides),
            padding=self.padding if isinstance(self.padding, str) else [list(p) for p in self.padding],
            padding_mode=self.padding_mode,
            data_format=self.data_format,
            dilation_rate=list(self.dilation_rate),
            groups=self.groups,
            algorithm=self.algorithm,
        )
        return config
