"""SGD and Adam with Keras 3 defaults and update rules, updating parameters in place.

An optimizer reads gradients that ``backward`` stored on the layers; it never lives
inside ``backward``. Its state (slots and step count) round-trips through ``state_dict``.
"""

from __future__ import annotations

import math

import numpy as np

from . import parallel

MIN_PART = 1 << 16  # parameters smaller than two of these update in one piece
CHUNK = 1 << 18  # elements per chunk of an update: 1 MB of each array stays in cache (measured best)


def _check_rate(value, name, owner, *, upper=None):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0 \
            or (upper is not None and value >= upper):
        bound = f" and < {upper}" if upper is not None else ""
        raise ValueError(f"{owner}: {name} must be a finite number >= 0{bound}, got {value!r}.")
    return float(value)


class Optimizer:
    name = "optimizer"

    def __init__(self, learning_rate):
        self.learning_rate = _check_rate(learning_rate, "learning_rate", type(self).__name__)
        self.iterations = 0
        self.slots: dict[str, dict[str, np.ndarray]] = {}

    def apply(self, params_and_grads) -> None:
        """One step over ``(key, param, grad)`` triples; params are updated in place."""
        self.iterations += 1
        for key, param, grad in params_and_grads:
            if grad is None:
                raise ValueError(f"{type(self).__name__}: no gradient for {key!r}; call backward before the step.")
            self._update(key, param, grad.astype(param.dtype, copy=False))

    def _slot(self, key, name, like):
        slots = self.slots.setdefault(name, {})
        if key not in slots:
            slots[key] = np.zeros_like(like)
        return slots[key]

    def _update(self, key, param, grad):
        raise NotImplementedError

    @staticmethod
    def _elementwise(fn, param, *others) -> None:
        """``fn(param, *others)`` on matching flat slices, split over the cores for big parameters.

        Every array must have ``param``'s shape; ``param`` and the slots are updated in place.
        """
        if not param.flags.c_contiguous:  # reshape(-1) would copy and lose the update
            fn(param, *others)
            return
        flat = [param.reshape(-1), *(np.ascontiguousarray(a).reshape(-1) for a in others)]

        def part(lo, hi):  # in cache-sized chunks: each array is read from memory once, not once per operation
            for start in range(lo, hi, CHUNK):
                fn(*(a[start:min(start + CHUNK, hi)] for a in flat))

        parallel.run(part, param.size, min_size=MIN_PART)

    def _scratch(self, like):
        """A reusable work buffer of ``like``'s shape and dtype (not part of the state)."""
        scratch = getattr(self, "_scratch_buffers", None)
        if scratch is None:
            scratch = self._scratch_buffers = {}
        buf = scratch.get((like.shape, like.dtype.str))
        if buf is None:
            buf = scratch[(like.shape, like.dtype.str)] = np.empty_like(like)
        return buf

    def get_config(self) -> dict:
        return {"name": self.name, "learning_rate": self.learning_rate}

    def state_dict(self) -> dict[str, np.ndarray]:
        state = {"iterations": np.asarray(self.iterations, np.int64)}
        for slot, arrays in self.slots.items():
            for key, value in arrays.items():
                state[f"{slot}/{key}"] = value
        return state

    def load_state_dict(self, state) -> None:
        self.iterations = int(state["iterations"])
        self.slots = {}
        for full_key, value in state.items():
            if full_key == "iterations":
                continue
            slot, key = full_key.split("/", 1)
            self.slots.setdefault(slot, {})[key] = np.array(value)


class SGD(Optimizer):
    """Keras SGD: ``m = momentum * m - lr * g``; ``w += m`` (or ``momentum * m - lr * g`` with nesterov)."""

    name = "sgd"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False):
        super().__init__(learning_rate)
        self.momentum = _check_rate(momentum, "momentum", "SGD", upper=1.0 + 1e-12)
        self.nesterov = bool(nesterov)

    def _update(self, key, param, grad):
        f = param.dtype.type
        lr, momentum = f(self.learning_rate), f(self.momentum)
        if self.momentum == 0:
            self._elementwise(lambda param, grad: np.subtract(param, lr * grad, out=param), param, grad)
            return

        def step(param, grad, m):
            m *= momentum
            m -= lr * grad
            if self.nesterov:
                param += momentum * m - lr * grad
            else:
                param += m

        self._elementwise(step, param, grad, self._slot(key, "momentum", param))

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Keras Adam (epsilon outside the square root, bias correction folded into the rate)."""

    name = "adam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        super().__init__(learning_rate)
        self.beta_1 = _check_rate(beta_1, "beta_1", "Adam", upper=1.0)
        self.beta_2 = _check_rate(beta_2, "beta_2", "Adam", upper=1.0)
        self.epsilon = _check_rate(epsilon, "epsilon", "Adam")

    def _update(self, key, param, grad):
        t = self.iterations
        # NOTE: Keras on TensorFlow turns the Python betas into float32 tensors before casting
        # them to the variable's dtype, so its bias correction uses float32(beta); matching that
        # keeps 50-step training curves equal to TensorFlow's instead of drifting by ~1e-5 a step.
        beta_1, beta_2 = float(np.float32(self.beta_1)), float(np.float32(self.beta_2))
        lr_t = self.learning_rate * math.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
        m = self._slot(key, "m", param)
        v = self._slot(key, "v", param)
        f = param.dtype.type
        one_minus_b1, one_minus_b2, eps, lr_t = f(1 - self.beta_1), f(1 - self.beta_2), f(self.epsilon), f(lr_t)

        def step(param, grad, m, v, tmp):  # in place, without temporaries
            np.subtract(grad, m, out=tmp)
            tmp *= one_minus_b1
            m += tmp  # m = b1 m + (1 - b1) g
            np.multiply(grad, grad, out=tmp)
            tmp -= v
            tmp *= one_minus_b2
            v += tmp  # v = b2 v + (1 - b2) g^2
            np.sqrt(v, out=tmp)
            tmp += eps
            np.divide(m, tmp, out=tmp)
            tmp *= lr_t
            param -= tmp  # w -= lr_t m / (sqrt(v) + eps)

        self._elementwise(step, param, grad, m, v, self._scratch(param))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


_OPTIMIZERS = {"sgd": SGD, "adam": Adam}


def get(identifier, **kwargs) -> Optimizer:
    """An optimizer from a name ('sgd', 'adam') plus keyword arguments, or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _OPTIMIZERS:
        return _OPTIMIZERS[identifier.lower()](**kwargs)
    raise ValueError(f"unknown optimizer {identifier!r}; valid names: {', '.join(_OPTIMIZERS)}.")


def from_config(config: dict) -> Optimizer:
    config = dict(config)
    return get(config.pop("name"), **config)
