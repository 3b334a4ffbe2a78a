"""``keras.losses``: the cross-entropies, with Keras' ``from_logits=False`` default.

A loss object (or name) given to ``compile`` tells the model whether its outputs are
probabilities (``from_logits=False``: the last layer must be softmax) or logits. Called
directly, ``loss(y_true, y_pred)`` returns the mean loss as Keras does.

>>> import numpy as np
>>> round(SparseCategoricalCrossentropy()(np.array([0]), np.array([[0.5, 0.5]])), 4)
0.6931
"""

from __future__ import annotations

import numpy as np

from ..functional import losses as _fn

__all__ = ["Loss", "SparseCategoricalCrossentropy", "CategoricalCrossentropy", "sparse_categorical_crossentropy",
           "categorical_crossentropy", "get"]

_REDUCTIONS = ("sum_over_batch_size", "auto", "mean")


class Loss:
    """A cross-entropy: ``name`` is the engine's loss, ``from_logits`` how outputs are read."""

    name = "loss"
    sparse = True

    def __init__(self, from_logits=False, *, reduction="sum_over_batch_size", name=None, dtype=None):
        cls = type(self).__name__
        if not isinstance(from_logits, bool):
            raise ValueError(f"{cls}: from_logits must be True or False, got {from_logits!r}.")
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{cls}: convlayer computes the mean over the batch (reduction="
                             f"'sum_over_batch_size'); got reduction={reduction!r}.")
        self.from_logits = from_logits
        self.name = name or self.name

    @property
    def engine_name(self) -> str:
        return "sparse_categorical_crossentropy" if self.sparse else "categorical_crossentropy"

    def __call__(self, y_true, y_pred, sample_weight=None) -> float:
        if sample_weight is not None:
            raise ValueError(f"{type(self).__name__}: sample_weight is not supported by convlayer.")
        y_pred = np.asarray(y_pred, dtype=np.result_type(np.asarray(y_pred).dtype, np.float32))
        y_true = np.asarray(y_true)
        if self.sparse:
            y_true = y_true.reshape(-1).astype(np.int64)
            value, _ = _fn.sparse_categorical_crossentropy(y_pred, y_true, from_logits=self.from_logits)
        else:
            value, _ = _fn.categorical_crossentropy(y_pred, y_true, from_logits=self.from_logits)
        return value

    def __repr__(self) -> str:
        return f"{type(self).__name__}(from_logits={self.from_logits})"


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy of integer class labels (N,) against (N, K) outputs."""

    name = "sparse_categorical_crossentropy"
    sparse = True

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size", name=None,
                 dtype=None):
        if ignore_class is not None:
            raise ValueError("SparseCategoricalCrossentropy: ignore_class is not supported by convlayer.")
        super().__init__(from_logits, reduction=reduction, name=name, dtype=dtype)


class CategoricalCrossentropy(Loss):
    """Cross-entropy of one-hot rows (N, K) (e.g. ``to_categorical(y)``) against (N, K) outputs."""

    name = "categorical_crossentropy"
    sparse = False

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name=None, dtype=None):
        if label_smoothing:
            raise ValueError("CategoricalCrossentropy: label_smoothing is not supported by convlayer; smooth the "
                             "one-hot targets yourself (y * (1 - s) + s / K).")
        if axis not in (-1, 1):
            raise ValueError(f"CategoricalCrossentropy: classes must be the last axis, got axis={axis!r}.")
        super().__init__(from_logits, reduction=reduction, name=name, dtype=dtype)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    """Per-sample losses (N,), like Keras' function."""
    y_pred = np.asarray(y_pred, np.float32 if np.asarray(y_pred).dtype != np.float64 else np.float64)
    return categorical_crossentropy(_fn.one_hot(np.asarray(y_true).reshape(-1).astype(np.int64), y_pred.shape[-1],
                                                y_pred.dtype), y_pred, from_logits=from_logits)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-sample losses (N,) of one-hot (or soft) rows, like Keras' function."""
    y_pred = np.asarray(y_pred, np.float32 if np.asarray(y_pred).dtype != np.float64 else np.float64)
    y_true = np.asarray(y_true, y_pred.dtype)
    if from_logits:
        return -(y_true * _fn.log_softmax(y_pred)).sum(axis=-1)
    probs = y_pred / y_pred.sum(axis=-1, keepdims=True)
    return -(y_true * np.log(np.clip(probs, _fn.EPSILON, 1 - _fn.EPSILON))).sum(axis=-1)


_BY_NAME = {"sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
            "categorical_crossentropy": CategoricalCrossentropy}


def get(identifier) -> Loss:
    """A loss object from a name, a loss object or one of this module's functions."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if identifier in (sparse_categorical_crossentropy, categorical_crossentropy):
        identifier = identifier.__name__
    if isinstance(identifier, str):
        key = identifier.lower()
        key = {"sparsecategoricalcrossentropy": "sparse_categorical_crossentropy",
               "categoricalcrossentropy": "categorical_crossentropy"}.get(key, key)
        if key in _BY_NAME:
            return _BY_NAME[key]()
    raise ValueError(f"unknown loss {identifier!r}: convlayer trains with 'sparse_categorical_crossentropy' "
                     "(integer labels) or 'categorical_crossentropy' (one-hot labels), or the loss objects "
                     "keras.losses.SparseCategoricalCrossentropy(from_logits=...) / CategoricalCrossentropy(...); "
                     "other losses (and custom loss functions, which convlayer cannot differentiate) are not "
                     "available.")


def __getattr__(name):
    raise AttributeError(f"convlayer.keras.losses has no {name!r}; it has {', '.join(__all__)}.")
