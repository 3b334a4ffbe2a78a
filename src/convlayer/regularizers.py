"""Weight penalties (Keras names): ``penalty(w) -> float`` and ``gradient(w) -> dw``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class L1L2:
    l1: float = 0.0
    l2: float = 0.0

    def __post_init__(self):
        for name in ("l1", "l2"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"regularizer {name} must be a non-negative number, got {value!r}.")

    def __call__(self, w: np.ndarray) -> float:
        penalty = 0.0
        if self.l1:
            penalty += self.l1 * float(np.abs(w).sum())
        if self.l2:
            penalty += self.l2 * float(np.square(w).sum())
        return penalty

    def gradient(self, w: np.ndarray) -> np.ndarray:
        grad = np.zeros_like(w)
        if self.l1:
            grad += self.l1 * np.sign(w)
        if self.l2:
            grad += 2 * self.l2 * w
        return grad


def l1(l1: float = 0.01) -> L1L2:
    return L1L2(l1=l1)


def l2(l2: float = 0.01) -> L1L2:
    return L1L2(l2=l2)


def l1_l2(l1: float = 0.01, l2: float = 0.01) -> L1L2:
    return L1L2(l1=l1, l2=l2)


_NAMES = {"l1": l1, "l2": l2, "l1_l2": l1_l2}


def get(identifier, *, owner: str = "", what: str = "regularizer"):
    where = f"{owner}: " if owner else ""
    if identifier is None or isinstance(identifier, L1L2):
        return identifier
    if isinstance(identifier, str):
        if identifier.lower() not in _NAMES:
            raise ValueError(f"{where}unknown {what} {identifier!r}; valid names: {', '.join(_NAMES)}.")
        return _NAMES[identifier.lower()]()
    if isinstance(identifier, dict):
        return L1L2(**identifier)
    if callable(identifier) and hasattr(identifier, "gradient"):
        return identifier
    raise TypeError(f"{where}{what} must be None, 'l1', 'l2', 'l1_l2' or an L1L2, got {identifier!r}.")


def serialize(reg):
    return None if reg is None else {"l1": reg.l1, "l2": reg.l2}
