"""Losses that return ``(value, gradient)`` together.

With ``from_logits=True`` (convlayer's default) the outputs are unnormalized scores and the
gradient is w.r.t. them: ``(softmax - target) / N``, computed from a stable log-softmax.
With ``from_logits=False`` the outputs are probabilities (a softmax layer's), as Keras assumes
for its string losses: the reported loss clips them to ``[EPSILON, 1 - EPSILON]`` like Keras, and
the gradient w.r.t. the probabilities is ``-target / (p N)``, which the softmax layer's backward
turns into exactly ``(p - target) / N`` (no clipping in the gradient: training never stalls on a
confidently wrong sample the way a clipped gradient does).
"""

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


EPSILON = 1e-7  # Keras' backend epsilon, for the reported loss of probabilities


def sparse_categorical_crossentropy(logits: np.ndarray, labels: np.ndarray, *,
                                    from_logits: bool = True) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of integer ``labels`` under ``softmax(logits)``, and d(loss)/d(logits).

    Args:
        logits: (N, K) unnormalized scores.
        labels: (N,) ints in [0, K).
        from_logits: False when ``logits`` are probabilities (see the module docstring).
    Returns:
        loss (float), dlogits (N, K) = (softmax - one_hot) / N.

    >>> loss, _ = sparse_categorical_crossentropy(np.zeros((2, 4)), np.array([0, 3]))
    >>> round(loss, 4)  # log(4): uniform over 4 classes
    1.3863
    """
    if not from_logits:
        return categorical_crossentropy(logits, one_hot(labels, logits.shape[-1], logits.dtype), from_logits=False)
    n = logits.shape[0]
    log_probs = log_softmax(logits)
    rows = np.arange(n)
    loss = -log_probs[rows, labels].mean()
    dlogits = np.exp(log_probs)
    dlogits[rows, labels] -= 1
    dlogits /= n
    return float(loss), dlogits.astype(logits.dtype, copy=False)


def one_hot(labels: np.ndarray, num_classes: int, dtype=np.float32) -> np.ndarray:
    """(N,) class indices -> (N, num_classes) rows of zeros with a one at the label."""
    out = np.zeros((len(labels), num_classes), dtype)
    out[np.arange(len(labels)), labels] = 1
    return out


def categorical_crossentropy(outputs: np.ndarray, targets: np.ndarray, *,
                             from_logits: bool = True) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of target distributions (one-hot or soft rows) and its gradient.

    Args:
        outputs: (N, K) logits, or probabilities when ``from_logits=False``.
        targets: (N, K) non-negative rows (one-hot labels, or smoothed ones).
    Returns:
        loss (float), d(loss)/d(outputs) (N, K).

    >>> p = np.array([[0.7, 0.2, 0.1]], np.float32)
    >>> loss, grad = categorical_crossentropy(p, np.array([[1.0, 0, 0]]), from_logits=False)
    >>> round(loss, 4), round(float(grad[0, 0]), 4)   # -log 0.7, -1 / 0.7
    (0.3567, -1.4286)
    """
    n = outputs.shape[0]
    targets = np.asarray(targets, outputs.dtype)
    if from_logits:
        log_probs = log_softmax(outputs)
        loss = -(targets * log_probs).sum(axis=-1).mean()
        grad = np.exp(log_probs) * targets.sum(axis=-1, keepdims=True) - targets
    else:
        probs = outputs / np.maximum(outputs.sum(axis=-1, keepdims=True), np.finfo(outputs.dtype).tiny)
        loss = -(targets * np.log(np.clip(probs, EPSILON, 1 - EPSILON))).sum(axis=-1).mean()
        grad = -targets / np.maximum(outputs, np.finfo(outputs.dtype).tiny)
    grad /= n
    return float(loss), grad.astype(outputs.dtype, copy=False)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose arg-max equals the label."""
    return float((logits.argmax(axis=-1) == labels).mean()) if len(labels) else float("nan")
