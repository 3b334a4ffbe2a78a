"""Losses that return ``(value, gradient)`` together; the gradient is w.r.t. the logits."""

from __future__ import annotations

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable log-softmax over the last axis."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def sparse_categorical_crossentropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of integer ``labels`` under ``softmax(logits)``, and d(loss)/d(logits).

    Args:
        logits: (N, K) unnormalized scores.
        labels: (N,) ints in [0, K).
    Returns:
        loss (float), dlogits (N, K) = (softmax - one_hot) / N.

    >>> loss, _ = sparse_categorical_crossentropy(np.zeros((2, 4)), np.array([0, 3]))
    >>> round(loss, 4)  # log(4): uniform over 4 classes
    1.3863
    """
    n = logits.shape[0]
    log_probs = log_softmax(logits)
    rows = np.arange(n)
    loss = -log_probs[rows, labels].mean()
    dlogits = np.exp(log_probs)
    dlogits[rows, labels] -= 1
    dlogits /= n
    return float(loss), dlogits.astype(logits.dtype, copy=False)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose arg-max equals the label."""
    return float((logits.argmax(axis=-1) == labels).mean()) if len(labels) else float("nan")
