"""What Keras and TensorFlow code expects of the values it handles: a ``.shape`` with ``as_list()``.

``Tensor`` is a NumPy array (every NumPy function takes it and returns arrays) whose ``shape``
is a ``TensorShape``, a tuple with TensorFlow's ``as_list()``, ``rank`` and ``num_elements()``.
``KerasTensor`` is the symbolic input ``keras.Input(shape=...)`` returns: calling layers on it
records a chain of layers that ``keras.Model(inputs, outputs)`` turns into a ``Sequential``.

>>> x = as_tensor(np.zeros((2, 7, 7, 64), np.float32))
>>> x.shape.as_list(), x.shape == (2, 7, 7, 64), type(x.sum())
([2, 7, 7, 64], True, <class 'numpy.float32'>)
"""

from __future__ import annotations

import math

import numpy as np


class TensorShape(tuple):
    """A shape tuple with TensorFlow's ``as_list()``; None marks an unknown axis (the batch)."""

    def as_list(self) -> list:
        return list(self)

    @property
    def rank(self) -> int:
        return len(self)

    ndims = rank

    def num_elements(self) -> int | None:
        return None if any(d is None for d in self) else math.prod(self)


class Tensor(np.ndarray):
    """A NumPy array whose ``shape`` is a ``TensorShape``; full reductions give plain scalars."""

    @property
    def shape(self) -> TensorShape:
        return TensorShape(np.ndarray.shape.__get__(self))

    @shape.setter
    def shape(self, value) -> None:
        np.ndarray.shape.__set__(self, value)

    def __array_wrap__(self, array, context=None, return_scalar=False):
        if return_scalar or array.ndim == 0:
            return array[()]  # a NumPy scalar, as a plain array's reduction gives
        return super().__array_wrap__(array, context, return_scalar)

    def numpy(self) -> np.ndarray:
        """The values as a plain ``np.ndarray`` (TensorFlow's ``Tensor.numpy()``)."""
        return self.view(np.ndarray)


def as_tensor(value, dtype=None) -> Tensor:
    """``value`` as a ``Tensor`` (a view when it already is an array of ``dtype``)."""
    return np.asarray(value, dtype=dtype).view(Tensor)


class KerasTensor:
    """A symbolic batch: its shape (batch axis None), dtype, and the layer chain that made it."""

    def __init__(self, shape, dtype="float32", name=None, *, layer=None, parent=None):
        self.shape = TensorShape(shape)
        self.dtype = np.dtype(dtype).name
        self.name = name
        self.layer = layer  # the layer that produced this tensor; None for an Input
        self.parent = parent  # the KerasTensor that layer was called on

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return f"<KerasTensor shape={tuple(self.shape)}, dtype={self.dtype}, name={self.name}>"

    def __array__(self, *args, **kwargs):
        raise TypeError(f"{self!r} is symbolic: it has no values. Build a model with keras.Model(inputs, outputs) "
                        "(or keras.Sequential) and call model.predict(x) on data.")
