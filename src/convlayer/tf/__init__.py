"""The part of TensorFlow's namespace the lesson's code touches, backed by convlayer.

The lesson's ``MNISTModel`` runs unchanged except for its import line, and so does the rest of
that network as TensorFlow's tutorial writes it::

    from convlayer import tf
    reshaped = tf.reshape(inputs, [-1, 28, 28, 1])
    conv1 = tf.keras.layers.Conv2D(filters=32, kernel_size=[5, 5], padding="same",
                                   activation=tf.nn.relu, name="conv1")(reshaped)
    ...
    pool2_flat = tf.reshape(pool2, [-1, 7 * 7 * 64])       # or pool2.shape.as_list()
    dropout = tf.keras.layers.Dropout(rate=0.4)(dense, training=is_training)
    logits = tf.keras.layers.Dense(units=10, name="logits")(dropout)
    classes, probabilities = tf.argmax(logits, axis=1), tf.nn.softmax(logits)

``tf.keras`` is ``convlayer.keras`` (also importable as ``convlayer.tf.keras``). Values are
``tf.Tensor``: NumPy arrays whose ``shape`` has TensorFlow's ``as_list()``; NumPy takes them as
they are. Everything runs eagerly, on NumPy.

>>> x = reshape(np.arange(12.0), [-1, 2, 3])
>>> x.shape.as_list(), shape(x).tolist(), argmax(x, axis=2).tolist()
([2, 2, 3], [2, 2, 3], [[2, 2], [2, 2]])
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np

from .. import keras
from ..functional import activations as _activations
from ..functional import losses as _losses
from ..keras.tensors import Tensor, TensorShape, as_tensor

# `from convlayer.tf.keras import layers` and `import convlayer.tf.keras.layers` find the same
# modules as `convlayer.keras`: one set of classes, whichever name the code imports.
sys.modules[f"{__name__}.keras"] = keras
for _name in ("activations", "callbacks", "datasets", "layers", "losses", "metrics", "models", "optimizers",
              "utils"):
    sys.modules[f"{__name__}.keras.{_name}"] = getattr(keras, _name)

float16, float32, float64 = np.float16, np.float32, np.float64
int8, int32, int64, uint8, bool_ = np.int8, np.int32, np.int64, np.uint8, np.bool_
string = np.str_

__all__ = ["keras", "nn", "Tensor", "TensorShape", "reshape", "shape", "argmax", "argmin", "constant",
           "convert_to_tensor", "cast", "reduce_mean", "reduce_sum", "reduce_max", "equal", "one_hot", "float32",
           "float64", "int32", "int64"]


def _int_list(values, who: str) -> list[int]:
    try:
        return [int(d) for d in np.asarray(values).reshape(-1)]
    except (TypeError, ValueError):
        raise ValueError(f"{who}: expects a list of ints, got {values!r}.") from None


def reshape(tensor, shape, name=None) -> Tensor:
    """``tf.reshape``: at most one -1; the element count must match."""
    array = np.asarray(tensor)
    target = _int_list(shape, "tf.reshape")
    try:
        return array.reshape(target).view(Tensor)
    except ValueError:
        raise ValueError(f"tf.reshape: cannot reshape an array of shape {array.shape} ({array.size} values) "
                         f"into {target}.") from None


def shape(input, out_type=np.int32, name=None) -> Tensor:  # noqa: A002 - TensorFlow's argument name
    """``tf.shape``: the dynamic shape as an int32 tensor (``tf.shape(x)[0]`` is the batch size)."""
    return as_tensor(np.asarray(np.shape(input), dtype=out_type))


def _axis(axis, dimension, who):
    if dimension is not None:  # TensorFlow 1's name for it
        if axis is not None:
            raise ValueError(f"{who}: pass axis or dimension, not both.")
        axis = dimension
    return 0 if axis is None else int(axis)


def argmax(input, axis=None, output_type=np.int64, name=None, dimension=None) -> Tensor:  # noqa: A002
    """``tf.argmax``: index of the largest value along ``axis`` (default 0, as TensorFlow)."""
    return as_tensor(np.argmax(np.asarray(input), axis=_axis(axis, dimension, "tf.argmax")).astype(output_type))


def argmin(input, axis=None, output_type=np.int64, name=None, dimension=None) -> Tensor:  # noqa: A002
    """``tf.argmin``: index of the smallest value along ``axis`` (default 0)."""
    return as_tensor(np.argmin(np.asarray(input), axis=_axis(axis, dimension, "tf.argmin")).astype(output_type))


def constant(value, dtype=None, shape=None, name=None) -> Tensor:
    array = np.asarray(value, dtype=dtype or (np.float32 if np.asarray(value).dtype.kind == "f" else None))
    if shape is not None:
        array = np.broadcast_to(array, tuple(_int_list(shape, "tf.constant"))).copy()
    return array.view(Tensor)


def convert_to_tensor(value, dtype=None, name=None) -> Tensor:
    return as_tensor(value, dtype)


def cast(x, dtype, name=None) -> Tensor:
    return as_tensor(np.asarray(x).astype(dtype))


def _reduce(fn):
    def reduce(input_tensor, axis=None, keepdims=False, name=None):
        result = fn(np.asarray(input_tensor), axis=None if axis is None else tuple(np.atleast_1d(axis)),
                    keepdims=keepdims)
        return as_tensor(result)

    reduce.__doc__ = f"``tf.{fn.__name__}`` over ``axis`` (all axes by default)."
    return reduce


reduce_mean, reduce_sum, reduce_max, reduce_min = (_reduce(np.mean), _reduce(np.sum), _reduce(np.max),
                                                   _reduce(np.min))


def equal(x, y, name=None) -> Tensor:
    return as_tensor(np.equal(np.asarray(x), np.asarray(y)))


def one_hot(indices, depth, on_value=1.0, off_value=0.0, axis=None, dtype=np.float32, name=None) -> Tensor:
    """``tf.one_hot`` along the last axis."""
    if axis not in (None, -1):
        raise ValueError(f"tf.one_hot: only the last axis is supported, got axis={axis!r}.")
    indices = np.asarray(indices)
    out = np.where(indices[..., None] == np.arange(int(depth)), on_value, off_value)  # (..., depth)
    return as_tensor(out.astype(dtype))


def _softmax(logits, axis=None, name=None) -> Tensor:
    """``tf.nn.softmax`` over ``axis`` (the last by default), computed stably."""
    values = np.asarray(logits)
    values = values if values.dtype.kind == "f" else values.astype(np.float32)
    moved = np.moveaxis(values, -1 if axis is None else int(axis), -1)
    return as_tensor(np.moveaxis(_losses.softmax(moved), -1, -1 if axis is None else int(axis)))


def _log_softmax(logits, axis=None, name=None) -> Tensor:
    values = np.asarray(logits, np.float32 if np.asarray(logits).dtype != np.float64 else np.float64)
    moved = np.moveaxis(values, -1 if axis is None else int(axis), -1)
    return as_tensor(np.moveaxis(_losses.log_softmax(moved), -1, -1 if axis is None else int(axis)))


def _sparse_softmax_cross_entropy_with_logits(labels=None, logits=None, name=None) -> Tensor:
    """Per-sample cross-entropy (N,) of integer ``labels`` under ``softmax(logits)``."""
    logits = np.asarray(logits)
    labels = np.asarray(labels).astype(np.int64)
    return as_tensor(-_losses.log_softmax(logits)[np.arange(len(labels)), labels])


# relu, sigmoid and tanh stay convlayer's Activation objects, so that `activation=tf.nn.relu` is
# differentiable in a layer; called on arrays they return arrays.
nn = SimpleNamespace(
    relu=_activations.relu,
    sigmoid=_activations.sigmoid,
    tanh=_activations.tanh,
    softmax=_softmax,
    log_softmax=_log_softmax,
    sparse_softmax_cross_entropy_with_logits=_sparse_softmax_cross_entropy_with_logits,
)

math = SimpleNamespace(argmax=argmax, argmin=argmin, reduce_mean=reduce_mean, reduce_sum=reduce_sum,
                       reduce_max=reduce_max, reduce_min=reduce_min, equal=equal)
