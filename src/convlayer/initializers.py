"""Weight initializers with Keras 3 names and formulas, driven by an explicit RNG.

Every initializer is ``init(shape, dtype, rng) -> array``. Randomness comes only from
the ``np.random.Generator`` passed in (layers derive it from their ``seed``), never from
NumPy's global state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

# Keras: stddev of a normal truncated at 2 sigma, so the truncated draw has variance `scale / n`.
_TRUNCATED_STDDEV_CORRECTION = 0.87962566103423978


def compute_fans(shape) -> tuple[int, int]:
    """Keras' fans: for a conv kernel (kh, kw, in, out) the receptive field multiplies both."""
    shape = tuple(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def truncated_normal(rng: np.random.Generator, shape, mean: float, stddev: float) -> np.ndarray:
    """Normal draws outside mean +- 2 stddev are redrawn (Keras/TF semantics)."""
    values = rng.standard_normal(shape)
    bad = np.abs(values) > 2
    while bad.any():
        values[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(values) > 2
    return mean + stddev * values


@dataclass(frozen=True)
class VarianceScaling:
    scale: float = 1.0
    mode: str = "fan_in"  # fan_in | fan_out | fan_avg
    distribution: str = "truncated_normal"  # truncated_normal | untruncated_normal | uniform
    name: str = "variance_scaling"

    def __call__(self, shape, dtype, rng):
        fan_in, fan_out = compute_fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, n)
        if self.distribution == "truncated_normal":
            values = truncated_normal(rng, shape, 0.0, math.sqrt(variance) / _TRUNCATED_STDDEV_CORRECTION)
        elif self.distribution == "untruncated_normal":
            values = rng.normal(0.0, math.sqrt(variance), shape)
        else:
            limit = math.sqrt(3.0 * variance)
            values = rng.uniform(-limit, limit, shape)
        return values.astype(dtype)


@dataclass(frozen=True)
class Constant:
    value: float = 0.0
    name: str = "constant"

    def __call__(self, shape, dtype, rng):
        return np.full(shape, self.value, dtype=dtype)


@dataclass(frozen=True)
class RandomNormal:
    mean: float = 0.0
    stddev: float = 0.05
    name: str = "random_normal"

    def __call__(self, shape, dtype, rng):
        return rng.normal(self.mean, self.stddev, shape).astype(dtype)


@dataclass(frozen=True)
class TruncatedNormal:
    mean: float = 0.0
    stddev: float = 0.05
    name: str = "truncated_normal"

    def __call__(self, shape, dtype, rng):
        return truncated_normal(rng, shape, self.mean, self.stddev).astype(dtype)


@dataclass(frozen=True)
class RandomUniform:
    minval: float = -0.05
    maxval: float = 0.05
    name: str = "random_uniform"

    def __call__(self, shape, dtype, rng):
        return rng.uniform(self.minval, self.maxval, shape).astype(dtype)


_REGISTRY: dict[str, Callable] = {
    "zeros": Constant(0.0, name="zeros"),
    "ones": Constant(1.0, name="ones"),
    "glorot_uniform": VarianceScaling(1.0, "fan_avg", "uniform", name="glorot_uniform"),
    "glorot_normal": VarianceScaling(1.0, "fan_avg", "truncated_normal", name="glorot_normal"),
    "he_uniform": VarianceScaling(2.0, "fan_in", "uniform", name="he_uniform"),
    "he_normal": VarianceScaling(2.0, "fan_in", "truncated_normal", name="he_normal"),
    "lecun_uniform": VarianceScaling(1.0, "fan_in", "uniform", name="lecun_uniform"),
    "lecun_normal": VarianceScaling(1.0, "fan_in", "truncated_normal", name="lecun_normal"),
    "random_normal": RandomNormal(),
    "random_uniform": RandomUniform(),
    "truncated_normal": TruncatedNormal(),
}
_ALIASES = {"xavier_uniform": "glorot_uniform", "xavier_normal": "glorot_normal", "kaiming_uniform": "he_uniform",
            "kaiming_normal": "he_normal"}


def available() -> list[str]:
    return sorted(_REGISTRY)


def get(identifier, *, owner: str = "", what: str = "initializer") -> Callable:
    """An initializer from a name or a callable ``(shape, dtype, rng) -> array``."""
    where = f"{owner}: " if owner else ""
    if isinstance(identifier, str):
        key = _ALIASES.get(identifier.lower(), identifier.lower())
        if key not in _REGISTRY:
            raise ValueError(f"{where}unknown {what} {identifier!r}; valid names: {', '.join(available())}.")
        return _REGISTRY[key]
    if callable(identifier):
        return identifier
    raise TypeError(f"{where}{what} must be a name or a callable (shape, dtype, rng) -> array, got {identifier!r}.")


def serialize(init) -> str | dict | None:
    name = getattr(init, "name", None)
    if name in _REGISTRY and _REGISTRY[name] == init:
        return name
    if hasattr(init, "__dataclass_fields__"):
        return {"class_name": type(init).__name__,
                "config": {k: getattr(init, k) for k in init.__dataclass_fields__}}
    return None


def deserialize(config):
    if isinstance(config, dict):
        cls = {c.__name__: c for c in (VarianceScaling, Constant, RandomNormal, TruncatedNormal, RandomUniform)}
        return cls[config["class_name"]](**config["config"])
    return get(config)
