"""``keras.utils``: ``to_categorical`` and ``set_random_seed``.

>>> to_categorical([0, 2], num_classes=3)
array([[1., 0., 0.],
       [0., 0., 1.]], dtype=float32)
"""

from __future__ import annotations

import numpy as np

__all__ = ["to_categorical", "set_random_seed"]

# Set only by an explicit set_random_seed call; None means fresh entropy for every layer and fit.
_seed_rng: np.random.Generator | None = None


def set_random_seed(seed) -> None:
    """Make the weights of layers built without ``seed=`` and ``fit``'s shuffling reproducible.

    Like Keras' function of the same name, but nothing global outside ``convlayer.keras`` is
    touched: convlayer never seeds NumPy's or Python's global generators.
    """
    global _seed_rng
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"set_random_seed: seed must be a non-negative int, got {seed!r}.")
    _seed_rng = np.random.default_rng(int(seed))


def next_seed() -> int | None:
    """A seed drawn from the ``set_random_seed`` stream, or None when no seed was set."""
    return None if _seed_rng is None else int(_seed_rng.integers(2**31))


def to_categorical(x, num_classes=None) -> np.ndarray:
    """Class indices -> one-hot float32 rows, like ``keras.utils.to_categorical``.

    Args:
        x: integer class indices of any shape (a trailing axis of size 1 is dropped, as Keras does).
        num_classes: the number of classes; default ``max(x) + 1``.
    Returns:
        float32 array of shape ``x.shape + (num_classes,)``.
    """
    labels = np.asarray(x)
    if labels.dtype.kind == "f" and np.isfinite(labels).all() and (labels == np.round(labels)).all():
        labels = labels.astype(np.int64)  # 3.0 means class 3
    if labels.dtype.kind not in "iub" or labels.dtype.kind == "b":
        raise ValueError(f"to_categorical: expects integer class indices, got dtype {labels.dtype}; pass "
                         "np.asarray(y).astype(int) if the labels are whole numbers.")
    if labels.ndim > 1 and labels.shape[-1] == 1:
        labels = labels[..., 0]
    if labels.size and int(labels.min()) < 0:
        raise ValueError(f"to_categorical: class indices must be >= 0, got {int(labels.min())}.")
    top = int(labels.max()) + 1 if labels.size else 0
    if num_classes is None:
        num_classes = top
    elif isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes <= 0:
        raise ValueError(f"to_categorical: num_classes must be a positive int, got {num_classes!r}.")
    elif top > num_classes:
        raise ValueError(f"to_categorical: label {top - 1} is out of range for num_classes={num_classes} "
                         f"(classes 0..{num_classes - 1}); pass num_classes={top} or fix the labels.")
    out = np.zeros((*labels.shape, int(num_classes)), np.float32)  # (..., num_classes)
    np.put_along_axis(out, labels[..., None].astype(np.intp), 1.0, axis=-1)
    return out
