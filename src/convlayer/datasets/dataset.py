"""The ``Dataset`` container, seeded splits and minibatch iteration.

All randomness comes from an explicit seed or ``np.random.Generator``; nothing here
touches NumPy's global random state.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Iterator

import numpy as np

__all__ = ["Dataset", "DatasetError", "iterate_batches"]


class DatasetError(ValueError):
    """A dataset cannot be loaded: unknown name, files missing or inconsistent, download failed."""


@dataclass(frozen=True, eq=False)  # eq=False: comparing NumPy arrays with == has no single truth value
class Dataset:
    """Train, validation and test splits of an image-classification dataset.

    Images are float32 in [0, 1] with shape ``(N, H, W)`` (H == W == ``input_dim``);
    labels are int64 with shape ``(N,)`` and values in ``range(num_classes)``. Without a
    validation split, ``x_val`` has shape ``(0, H, W)`` and ``y_val`` shape ``(0,)``.

    Example:
        >>> from convlayer.datasets import load
        >>> data = load("digits", validation_split=0.1)
        >>> data.x_train.shape[1:], data.num_classes, data.class_names[:3]
        ((8, 8), 10, ('0', '1', '2'))
    """

    name: str
    x_train: np.ndarray  # (N_train, H, W) float32 in [0, 1]
    y_train: np.ndarray  # (N_train,) int64
    x_val: np.ndarray  # (N_val, H, W); N_val may be 0
    y_val: np.ndarray  # (N_val,)
    x_test: np.ndarray  # (N_test, H, W)
    y_test: np.ndarray  # (N_test,)
    class_names: tuple[str, ...]
    input_dim: int  # H == W
    num_classes: int
    source: str  # where the data came from, for people

    def __post_init__(self):
        if self.num_classes != len(self.class_names):
            raise ValueError(
                f"Dataset {self.name!r}: num_classes={self.num_classes} but {len(self.class_names)} class_names "
                f"were given ({self.class_names!r}); they must agree."
            )
        for split in ("train", "val", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.ndim != 3 or x.shape[1:] != (self.input_dim, self.input_dim) or x.dtype != np.float32:
                raise ValueError(
                    f"Dataset {self.name!r}: x_{split} must be float32 of shape (N, {self.input_dim}, "
                    f"{self.input_dim}), got {x.dtype} {x.shape}."
                )
            if y.shape != (len(x),) or y.dtype != np.int64:
                raise ValueError(
                    f"Dataset {self.name!r}: y_{split} must be int64 of shape ({len(x)},) to match x_{split}, "
                    f"got {y.dtype} {y.shape}."
                )

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, train={self.x_train.shape}, val={self.x_val.shape}, "
            f"test={self.x_test.shape}, num_classes={self.num_classes}, source={self.source!r})"
        )


def check_validation_split(validation_split) -> float:
    """Return ``validation_split`` as a float in [0, 1), or raise a ValueError/TypeError saying why not."""
    if isinstance(validation_split, bool) or not isinstance(validation_split, numbers.Real):
        raise TypeError(
            f"validation_split must be a number in [0, 1), got {validation_split!r} "
            f"({type(validation_split).__name__}); e.g. validation_split=0.1 holds out 10% of the training set."
        )
    value = float(validation_split)
    if not (0.0 <= value < 1.0):  # also rejects NaN
        raise ValueError(
            f"validation_split must be in [0, 1), got {validation_split!r}; e.g. validation_split=0.1 holds out "
            "10% of the training set, 0 keeps it whole."
        )
    return value


def check_seed(seed) -> int:
    """Return ``seed`` as a non-negative int, or raise saying what a seed must be."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int (it seeds np.random.default_rng), got {seed!r}; e.g. seed=0.")
    if seed < 0:
        raise ValueError(f"seed must be >= 0 (np.random.default_rng rejects negative seeds), got {seed}.")
    return int(seed)


def stratified_split(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split indices of ``labels`` into ``(kept, held_out)``, holding out ``fraction`` of every class.

    The held-out total is ``round(fraction * N)`` (at least 1 when ``fraction > 0``); the
    per-class counts follow the class frequencies, the leftover from rounding going to the
    classes with the largest fractional quotas (Hamilton's method). Both index arrays are
    sorted, so each split keeps the original sample order.

    >>> kept, held = stratified_split(np.array([0, 0, 0, 0, 1, 1, 1, 1]), 0.25, np.random.default_rng(0))
    >>> len(kept), len(held), np.array([0, 0, 0, 0, 1, 1, 1, 1])[held].tolist()
    (6, 2, [0, 1])
    """
    n = len(labels)
    n_held = round(fraction * n)
    if fraction > 0:
        n_held = max(n_held, 1)
    if n_held >= n:
        raise ValueError(
            f"Holding out {fraction:g} of {n} samples leaves no training samples; use a smaller fraction."
        )
    classes, counts = np.unique(labels, return_counts=True)
    quotas = counts * (n_held / n)
    per_class = np.floor(quotas).astype(np.int64)
    leftover = n_held - int(per_class.sum())
    per_class[np.argsort(-(quotas - per_class), kind="stable")[:leftover]] += 1
    held = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, per_class)]
    held_idx = np.sort(np.concatenate(held)) if held else np.empty(0, np.int64)
    kept_mask = np.ones(n, dtype=bool)
    kept_mask[held_idx] = False
    return np.flatnonzero(kept_mask), held_idx


def split_validation(
    x: np.ndarray, y: np.ndarray, validation_split: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hold out a stratified, seeded ``validation_split`` of ``(x, y)``: returns ``x, y, x_val, y_val``."""
    if validation_split == 0:
        return x, y, np.empty((0,) + x.shape[1:], x.dtype), np.empty(0, y.dtype)
    kept, held = stratified_split(y, validation_split, np.random.default_rng(seed))
    return x[kept], y[kept], x[held], y[held]


def iterate_batches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    *,
    shuffle: bool,
    rng: np.random.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(xb, yb)`` minibatches covering every sample exactly once (one epoch).

    Args:
        x: samples, shape ``(N, ...)``.
        y: labels, shape ``(N, ...)``.
        batch_size: samples per batch; the last batch is smaller when N is not a multiple.
        shuffle: visit samples in a fresh random order drawn from ``rng``; otherwise in order.
        rng: an ``np.random.Generator``, required when ``shuffle`` is True. Each call draws a
            new permutation from it, so successive epochs differ yet reproduce from one seed.
        drop_last: skip the final partial batch.

    Returns:
        An iterator of ``(xb, yb)`` with shapes ``(B, ...)``; B == batch_size except perhaps
        the last. Unshuffled batches are views of ``x`` and ``y``; shuffled ones are copies.

    Example:
        >>> x, y = np.zeros((5, 2, 2), np.float32), np.arange(5)
        >>> [yb.tolist() for _, yb in iterate_batches(x, y, 2, shuffle=False)]
        [[0, 1], [2, 3], [4]]
    """
    if len(x) != len(y):
        raise ValueError(
            f"iterate_batches: x and y must hold the same number of samples, got x of shape {np.shape(x)} "
            f"and y of shape {np.shape(y)}."
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"iterate_batches: batch_size must be a positive int, got {batch_size!r}.")
    if shuffle and not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"iterate_batches(shuffle=True) needs rng=np.random.Generator (e.g. np.random.default_rng(0)), "
            f"got {rng!r}; there is no hidden global random state to fall back on."
        )
    n = len(x)
    stop = n - n % batch_size if drop_last else n
    order = rng.permutation(n) if shuffle else None
    # The checks above run at call time; the generator below only yields.
    return _batches(x, y, int(batch_size), stop, order)


def _batches(x, y, batch_size: int, stop: int, order) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for start in range(0, stop, batch_size):
        end = min(start + batch_size, stop)
        if order is None:
            yield x[start:end], y[start:end]
        else:
            idx = order[start:end]
            yield x[idx], y[idx]


def num_batches(n: int, batch_size: int, *, drop_last: bool = False) -> int:
    """How many batches ``iterate_batches`` yields for ``n`` samples."""
    return n // batch_size if drop_last else math.ceil(n / batch_size)
