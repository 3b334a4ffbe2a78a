"""``keras.metrics``: accuracy, the metric convlayer's training reports.

``compile(metrics=["accuracy"])`` (or ``"acc"``, ``"sparse_categorical_accuracy"``,
``"categorical_accuracy"``, or these classes) adds it to the History under the name given.
"""

from __future__ import annotations

__all__ = ["Accuracy", "SparseCategoricalAccuracy", "CategoricalAccuracy", "get"]


class Accuracy:
    """The fraction of samples whose arg-max output is the label (one-hot labels: their arg-max)."""

    default_name = "accuracy"

    def __init__(self, name=None, dtype=None):
        self.name = name or self.default_name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class SparseCategoricalAccuracy(Accuracy):
    default_name = "sparse_categorical_accuracy"


class CategoricalAccuracy(Accuracy):
    default_name = "categorical_accuracy"


_NAMES = ("accuracy", "acc", "sparse_categorical_accuracy", "categorical_accuracy")


def get(identifier) -> Accuracy:
    if isinstance(identifier, Accuracy):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Accuracy):
        return identifier()
    if isinstance(identifier, str) and identifier.lower() in _NAMES:
        return Accuracy(name=identifier)
    raise ValueError(f"unknown metric {identifier!r}: convlayer reports accuracy "
                     f"({', '.join(repr(n) for n in _NAMES)}); the loss is always reported.")


def __getattr__(name):
    raise AttributeError(f"convlayer.keras.metrics has no {name!r}; it has {', '.join(__all__)}.")
