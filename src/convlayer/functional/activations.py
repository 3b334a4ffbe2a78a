"""Activations as (forward, backward) pairs of pure functions.

``forward(x) -> y``; ``backward(dy, x, y) -> dx``. Forwards that may run in place
(``out=x``) say so, which lets layers fuse them onto a freshly computed GEMM result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import kernels
from .losses import softmax as _stable_softmax


@dataclass(frozen=True)
class Activation:
    """A named activation with its derivative. Callable like a function."""

    name: str
    forward: Callable[..., np.ndarray]
    backward: Callable[[np.ndarray, np.ndarray | None, np.ndarray], np.ndarray]
    needs_input: bool = False  # backward needs x (the pre-activation), not only y
    in_place: bool = False  # forward(x, out=x) is allowed

    def __call__(self, x):
        return self.forward(np.asarray(x))

    def __repr__(self) -> str:
        return f"<activation {self.name}>"


def _flat_compiled(*arrays) -> bool:
    """Whether the compiled element-wise loops take these: one float dtype, one shape, all contiguous."""
    first = arrays[0]
    return (kernels.enabled() and first.dtype in (np.float32, np.float64)
            and all(a.dtype == first.dtype and a.shape == first.shape and a.flags.c_contiguous for a in arrays))


def _relu(x, out=None):
    x = np.asarray(x)
    if _flat_compiled(x, x if out is None else out):
        if out is not None and out.__array_interface__["data"][0] == x.__array_interface__["data"][0]:
            kernels.relu_in_place(x.reshape(-1))
            return out
        if out is None or not np.may_share_memory(x, out):
            out = np.empty_like(x) if out is None else out
            kernels.relu(x.reshape(-1), out.reshape(-1))
            return out
    return np.maximum(x, 0, out=out)


def _relu_grad(dy, x, y):
    if isinstance(dy, np.ndarray) and isinstance(y, np.ndarray) and _flat_compiled(dy, y):
        out = np.empty_like(dy)
        kernels.relu_grad(dy.reshape(-1), y.reshape(-1), out.reshape(-1))
        return out
    return dy * (y > 0)


def _linear(x, out=None):
    return x


def _sigmoid(x, out=None):
    # Stable for large |x|: exp never sees a large positive argument.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def _tanh(x, out=None):
    return np.tanh(x, out=out)


def _softmax(x, out=None):
    return _stable_softmax(x)


def _softmax_grad(dy, x, y):
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))


def _elu(x, out=None):
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0))).astype(x.dtype, copy=False)


def _elu_grad(dy, x, y):
    return dy * np.where(x > 0, 1, y + 1)


_SELU_ALPHA = 1.6732632423543772
_SELU_SCALE = 1.0507009873554805


def _selu(x, out=None):
    return (_SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * np.expm1(np.minimum(x, 0)))).astype(x.dtype, copy=False)


def _selu_grad(dy, x, y):
    return dy * np.where(x > 0, _SELU_SCALE, y + _SELU_SCALE * _SELU_ALPHA)


def _softplus(x, out=None):
    return (np.logaddexp(0, x)).astype(x.dtype, copy=False)


def _softsign(x, out=None):
    return x / (1 + np.abs(x))


def _silu(x, out=None):
    return x * _sigmoid(x)


def _silu_grad(dy, x, y):
    s = _sigmoid(x)
    return dy * (s * (1 + x * (1 - s)))


def _relu6(x, out=None):
    return np.clip(x, 0, 6, out=out)


def _exponential(x, out=None):
    return np.exp(x, out=out)


_ACTIVATIONS = {
    a.name: a
    for a in (
        Activation("linear", _linear, lambda dy, x, y: dy, in_place=True),
        Activation("relu", _relu, _relu_grad, in_place=True),
        Activation("sigmoid", _sigmoid, lambda dy, x, y: dy * y * (1 - y)),
        Activation("tanh", _tanh, lambda dy, x, y: dy * (1 - y * y), in_place=True),
        Activation("softmax", _softmax, _softmax_grad),
        Activation("elu", _elu, _elu_grad, needs_input=True),
        Activation("selu", _selu, _selu_grad, needs_input=True),
        Activation("softplus", _softplus, lambda dy, x, y: dy * _sigmoid(x), needs_input=True),
        Activation("softsign", _softsign, lambda dy, x, y: dy / (1 + np.abs(x)) ** 2, needs_input=True),
        Activation("silu", _silu, _silu_grad, needs_input=True),
        Activation("relu6", _relu6, lambda dy, x, y: dy * ((x > 0) & (x < 6)), needs_input=True, in_place=False),
        Activation("exponential", _exponential, lambda dy, x, y: dy * y, in_place=True),
    )
}
_ALIASES = {"swish": "silu", None: "linear"}

relu = _ACTIVATIONS["relu"]
sigmoid = _ACTIVATIONS["sigmoid"]
tanh = _ACTIVATIONS["tanh"]
softmax = _ACTIVATIONS["softmax"]
linear = _ACTIVATIONS["linear"]


def available() -> list[str]:
    return sorted(_ACTIVATIONS)


def get(identifier, *, owner: str = "") -> Activation:
    """Look up an activation by name (or None for linear), or accept an ``Activation``.

    Plain callables are accepted if they are a known activation's forward (for example
    ``convlayer.tf.nn.relu``); otherwise wrap them in ``Activation`` with a backward.
    """
    where = f"{owner}: " if owner else ""
    if isinstance(identifier, Activation):
        return identifier
    if identifier is None or isinstance(identifier, str):
        key = _ALIASES.get(identifier, identifier)
        if isinstance(key, str):
            key = key.lower()
        if key not in _ACTIVATIONS:
            raise ValueError(f"{where}unknown activation {identifier!r}; valid names: {', '.join(available())}.")
        return _ACTIVATIONS[key]
    if callable(identifier):
        for act in _ACTIVATIONS.values():
            if identifier is act.forward:
                return act
        name = getattr(identifier, "__name__", "")
        if name in _ACTIVATIONS:
            return _ACTIVATIONS[name]
        raise TypeError(
            f"{where}activation {identifier!r} is a callable convlayer cannot differentiate; "
            f"use a name ({', '.join(available())}) or "
            "convlayer.activations.Activation(name, forward, backward)."
        )
    raise TypeError(f"{where}activation must be None, a name or an Activation, got {identifier!r}.")


def apply(act: Activation, z: np.ndarray, *, in_place: bool = False) -> np.ndarray:
    """Apply ``act`` to ``z``, reusing its memory when allowed."""
    if in_place and act.in_place:
        out = act.forward(z, out=z)
        return z if out is None else out
    return act.forward(z)
