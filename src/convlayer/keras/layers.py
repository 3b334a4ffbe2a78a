"""``keras.layers``: convlayer's layers with Keras' constructor conventions.

Each class is the convlayer layer of the same name (a subclass: checkpoints, exports and the
engine see an ordinary convlayer layer) that also takes what Keras code passes besides the
layer's own arguments: ``input_shape=`` / ``batch_input_shape=`` on the first layer (Keras 2
style), ``input_dim=`` on Dense. Called on data it returns a ``Tensor`` (an ndarray whose
``shape`` has ``as_list()``); called on ``keras.Input(...)`` it returns a symbolic
``KerasTensor`` for ``keras.Model(inputs, outputs)``.

>>> from convlayer.keras import layers
>>> conv = layers.Conv2D(8, 3, activation="relu", input_shape=(28, 28, 1))
>>> conv(np.zeros((2, 28, 28, 1), np.float32)).shape.as_list()
[2, 26, 26, 8]
"""

from __future__ import annotations

import inspect

import numpy as np

from .. import layers as _engine
from . import utils as _utils
from .tensors import KerasTensor, Tensor

__all__ = ["Input", "InputLayer", "Layer", "Conv2D", "Convolution2D", "MaxPooling2D", "MaxPool2D",
           "AveragePooling2D", "AvgPool2D", "Dense", "Dropout", "Flatten", "Reshape", "Activation"]

Layer = _engine.Layer


def _sample_shape(value, who: str, what: str) -> tuple:
    """A per-sample shape (no batch axis): positive ints or None."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (int(value),)
    if not isinstance(value, (tuple, list)) or not all(
            d is None or (isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0) for d in value):
        raise ValueError(f"{who}: {what} must be a tuple of positive ints (None for an unknown size), got "
                         f"{value!r}; e.g. {what}=(28, 28, 1) for 28x28 grayscale images.")
    return tuple(None if d is None else int(d) for d in value)


def _batch_shape(who, *, shape=None, batch_size=None, batch_shape=None, what="shape") -> tuple | None:
    """(batch, *sample) from Keras' spellings: shape/input_shape plus batch_size, or batch_shape."""
    if batch_shape is not None:
        full = _sample_shape(batch_shape, who, "batch_shape")
        if not full:
            raise ValueError(f"{who}: batch_shape must include the batch axis, got {batch_shape!r}.")
        return full
    if shape is None:
        return None
    return (batch_size, *_sample_shape(shape, who, what))


class KerasLayerMixin:
    """Keras-style calling: symbolic inputs record the chain; data gives a ``Tensor``."""

    keras_input_shape: tuple | None = None  # (batch, ...) from input_shape=, for a Sequential's first layer

    def __call__(self, inputs, training=None, *, keep_cache: bool = True):
        if isinstance(inputs, KerasTensor):
            shape = tuple(inputs.shape)
            self.ensure_built(shape)
            return KerasTensor(self.compute_output_shape(shape), self.dtype, self.name, layer=self, parent=inputs)
        return super().__call__(inputs, training=bool(training), keep_cache=keep_cache).view(Tensor)


def _keras_class(base, *, takes_input_dim: bool = False):
    """The Keras-facing subclass of the engine layer ``base`` (same class name)."""
    takes_seed = "seed" in inspect.signature(base.__init__).parameters

    def __init__(self, *args, input_shape=None, batch_input_shape=None, batch_size=None, input_dim=None, **kwargs):
        if input_dim is not None and not takes_input_dim:
            raise TypeError(f"{base.__name__}: unexpected argument input_dim; use input_shape=(...).")
        if takes_seed and kwargs.get("seed") is None:
            seed = _utils.next_seed()  # None unless keras.utils.set_random_seed was called
            if seed is not None:
                kwargs["seed"] = seed
        try:
            base.__init__(self, *args, **kwargs)
        except TypeError as exc:
            if "argument" not in str(exc) or "__init__()" not in str(exc):
                raise
            allowed = [p for p in inspect.signature(base.__init__).parameters if p not in ("self",)]
            raise TypeError(f"{base.__name__}: {str(exc).split('__init__() ', 1)[1]}; it takes "
                            f"{', '.join(allowed)}, input_shape, batch_input_shape.") from None
        who = self.describe()
        if input_dim is not None:
            input_shape = (input_dim,)
        self.keras_input_shape = _batch_shape(who, shape=input_shape, batch_size=batch_size,
                                              batch_shape=batch_input_shape, what="input_shape")

    namespace = {"__init__": __init__, "__module__": __name__, "__qualname__": base.__name__,
                 "__doc__": f"Keras' ``{base.__name__}`` on convlayer's: {(base.__doc__ or '').strip()}"}
    return type(base.__name__, (KerasLayerMixin, base), namespace)


Conv2D = _keras_class(_engine.Conv2D)
MaxPooling2D = _keras_class(_engine.MaxPooling2D)
AveragePooling2D = _keras_class(_engine.AveragePooling2D)
Dense = _keras_class(_engine.Dense, takes_input_dim=True)
Dropout = _keras_class(_engine.Dropout)
Flatten = _keras_class(_engine.Flatten)
Reshape = _keras_class(_engine.Reshape)
Activation = _keras_class(_engine.Activation)
Convolution2D = Conv2D
MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D


class InputLayer:
    """``keras.layers.InputLayer``: declares the input shape of a ``Sequential`` (it holds no weights)."""

    def __init__(self, shape=None, batch_size=None, dtype=None, batch_shape=None, name=None, *, input_shape=None,
                 batch_input_shape=None, sparse=None):
        who = "InputLayer"
        if sparse:
            raise ValueError(f"{who}: sparse inputs are not supported by convlayer; pass dense arrays.")
        if shape is not None and input_shape is not None:
            raise ValueError(f"{who}: pass shape= or input_shape=, not both.")
        self.batch_shape = _batch_shape(who, shape=shape if shape is not None else input_shape,
                                        batch_size=batch_size, batch_shape=batch_shape or batch_input_shape)
        if self.batch_shape is None:
            raise ValueError(f"{who}: needs shape=(...), the shape of one sample, e.g. shape=(28, 28, 1).")
        self.dtype = _engine.base.resolve_dtype(dtype, who)
        self.name = name or "input_layer"
        self.output = KerasTensor(self.batch_shape, self.dtype, self.name)


def Input(shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None, name=None, tensor=None):
    """``keras.Input``: a symbolic batch of samples of ``shape`` (the batch axis is added, None).

    Give it as the first entry of ``keras.Sequential([...])`` or call layers on it and pass the
    result to ``keras.Model(inputs, outputs)``.
    """
    if tensor is not None:
        raise ValueError("Input: tensor= is not supported by convlayer; pass shape=(...).")
    return InputLayer(shape, batch_size, dtype, batch_shape, name, sparse=sparse).output


def __getattr__(name):
    raise AttributeError(f"convlayer.keras.layers has no {name!r}; the layers convlayer implements are "
                         f"{', '.join(__all__)}.")
