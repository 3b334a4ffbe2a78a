"""The small part of TensorFlow's namespace the lesson's code touches, backed by convlayer.

The lesson's ``MNISTModel`` runs unchanged except for its import line::

    from convlayer import tf
    reshaped = tf.reshape(inputs, [-1, 28, 28, 1])
    conv1 = tf.keras.layers.Conv2D(filters=32, kernel_size=[5, 5], padding="same",
                                   activation=tf.nn.relu, name="conv1")(reshaped)
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from . import layers as _layers
from .functional import activations as _activations
from .functional import losses as _losses

float32 = np.float32
float64 = np.float64


def reshape(tensor, shape):
    """``tf.reshape``: at most one -1; the element count must match."""
    array = np.asarray(tensor)
    try:
        return array.reshape(tuple(int(d) for d in shape))
    except ValueError:
        raise ValueError(f"tf.reshape: cannot reshape an array of shape {array.shape} ({array.size} values) "
                         f"into {list(shape)}.") from None


def constant(value, dtype=None):
    return np.asarray(value, dtype=dtype or np.float32)


nn = SimpleNamespace(
    relu=_activations.relu,
    sigmoid=_activations.sigmoid,
    tanh=_activations.tanh,
    softmax=_activations.softmax,
    sparse_softmax_cross_entropy_with_logits=lambda labels, logits: -_losses.log_softmax(np.asarray(logits))[
        np.arange(len(labels)), np.asarray(labels)],
)

keras = SimpleNamespace(
    layers=SimpleNamespace(
        Conv2D=_layers.Conv2D, Convolution2D=_layers.Conv2D, MaxPooling2D=_layers.MaxPooling2D,
        MaxPool2D=_layers.MaxPooling2D, AveragePooling2D=_layers.AveragePooling2D, Dense=_layers.Dense,
        Dropout=_layers.Dropout, Flatten=_layers.Flatten, Reshape=_layers.Reshape, Activation=_layers.Activation,
    ),
    activations=SimpleNamespace(relu=_activations.relu, sigmoid=_activations.sigmoid, tanh=_activations.tanh,
                                softmax=_activations.softmax, linear=_activations.linear),
)
