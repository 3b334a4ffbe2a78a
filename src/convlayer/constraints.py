"""Weight constraints (Keras names), applied after each optimizer step.

Norms are taken over ``axis`` with Keras' default ``axis=0``: for a Dense kernel (in, units)
that is one norm per unit; for a Conv2D kernel (kh, kw, in, filters) Keras' default norms
the kernel's rows only, so pass ``axis=[0, 1, 2]`` to constrain each filter as a whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_EPSILON = 1e-7  # Keras backend epsilon


def _norms(w: np.ndarray, axis) -> np.ndarray:
    axes = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
    return np.sqrt(np.sum(np.square(w), axis=axes, keepdims=True))


@dataclass(frozen=True)
class MaxNorm:
    max_value: float = 2.0
    axis: int | tuple = 0
    name: str = "max_norm"

    def __call__(self, w):
        norms = _norms(w, self.axis)
        desired = np.clip(norms, 0, self.max_value)
        return (w * (desired / (_EPSILON + norms))).astype(w.dtype)


@dataclass(frozen=True)
class NonNeg:
    name: str = "non_neg"

    def __call__(self, w):
        return w * (w >= 0)


@dataclass(frozen=True)
class UnitNorm:
    axis: int | tuple = 0
    name: str = "unit_norm"

    def __call__(self, w):
        return (w / (_EPSILON + _norms(w, self.axis))).astype(w.dtype)


@dataclass(frozen=True)
class MinMaxNorm:
    min_value: float = 0.0
    max_value: float = 1.0
    rate: float = 1.0
    axis: int | tuple = 0
    name: str = "min_max_norm"

    def __call__(self, w):
        norms = _norms(w, self.axis)
        desired = self.rate * np.clip(norms, self.min_value, self.max_value) + (1 - self.rate) * norms
        return (w * (desired / (_EPSILON + norms))).astype(w.dtype)


_NAMES = {"max_norm": MaxNorm, "non_neg": NonNeg, "unit_norm": UnitNorm, "min_max_norm": MinMaxNorm}


def get(identifier, *, owner: str = "", what: str = "constraint"):
    where = f"{owner}: " if owner else ""
    if identifier is None:
        return None
    if isinstance(identifier, str):
        if identifier.lower() not in _NAMES:
            raise ValueError(f"{where}unknown {what} {identifier!r}; valid names: {', '.join(_NAMES)}.")
        return _NAMES[identifier.lower()]()
    if isinstance(identifier, dict):
        config = dict(identifier)
        if isinstance(config.get("axis"), list):
            config["axis"] = tuple(config["axis"])
        return _NAMES[config.pop("name")](**config)
    if callable(identifier):
        return identifier
    raise TypeError(f"{where}{what} must be None, a name or a callable w -> w, got {identifier!r}.")


def serialize(constraint):
    if constraint is None or not hasattr(constraint, "__dataclass_fields__"):
        return None
    config = {k: getattr(constraint, k) for k in constraint.__dataclass_fields__}
    if isinstance(config.get("axis"), tuple):
        config["axis"] = list(config["axis"])
    return config
