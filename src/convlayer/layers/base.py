"""The Layer protocol: parameters, gradients, (de)serialization and input checks.

A layer is thin state around pure functions: ``__call__`` checks and caches,
``backward`` turns the cached values into parameter gradients (stored on the layer,
read by an optimizer) and returns the input gradient. No layer updates its own weights.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import math
import re
from collections import defaultdict

import numpy as np

from .. import constraints as constraints_mod
from .. import initializers as initializers_mod
from .. import regularizers as regularizers_mod
from ..functional import activations as act_mod

_name_counters: dict[str, itertools.count] = defaultdict(itertools.count)
_FLOAT_DTYPES = ("float32", "float64")


def _snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower().replace("_2_d", "_2d").replace("2_d", "2d")


def unique_name(base: str) -> str:
    index = next(_name_counters[base])
    return base if index == 0 else f"{base}_{index}"


def resolve_dtype(dtype, owner: str) -> np.dtype:
    if dtype is None:
        return np.dtype("float32")
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{owner}: dtype must be 'float32' or 'float64', got {dtype!r}.") from None
    if resolved.name not in _FLOAT_DTYPES:
        raise TypeError(f"{owner}: dtype must be 'float32' or 'float64', got {dtype!r}.")
    return resolved


def make_rng(seed, owner: str = "") -> np.random.Generator:
    """A Generator from an int seed, a Generator (used as is) or None (fresh entropy)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0):
        return np.random.default_rng(seed)
    where = f"{owner}: " if owner else ""
    raise TypeError(f"{where}seed must be None, a non-negative int or an np.random.Generator, got {seed!r}.")



class WeightBudgetError(ValueError):
    """Building a model would allocate more weights than the file being read holds."""


_WEIGHT_BUDGET: contextvars.ContextVar[list | None] = contextvars.ContextVar("weight_budget", default=None)


@contextlib.contextmanager
def weight_budget(elements: int):
    """Refuse, inside the block, to create more weight elements than ``elements`` in all.

    A model rebuilt from a file's config must not allocate more than the file holds: a
    config saying ``output_size=10**9`` fails here, before any memory is taken.
    """
    token = _WEIGHT_BUDGET.set([int(elements)])
    try:
        yield
    finally:
        _WEIGHT_BUDGET.reset(token)


def _charge_weight_budget(layer, name: str, shape: tuple) -> None:
    budget = _WEIGHT_BUDGET.get()
    if budget is None:
        return
    if any(not isinstance(d, (int, np.integer)) or d < 0 for d in shape):
        raise WeightBudgetError(f"{layer.describe()} would have {name} of shape {shape}, which is not a shape.")
    count = math.prod(int(d) for d in shape)
    if count > budget[0]:
        raise WeightBudgetError(f"{layer.describe()} would have {name} of shape {shape} ({count:,} values), more "
                                f"than the file holds ({budget[0]:,} values left)")
    budget[0] -= count

class Layer:
    """Base class. Subclasses define ``build``, ``forward``, ``backward_impl`` and shapes."""

    def __init__(self, *, name: str | None = None, dtype=None, trainable: bool = True,
                 activity_regularizer=None, seed=None):
        cls = type(self).__name__
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"{cls}: name must be a non-empty string, got {name!r}.")
        self.name = name or unique_name(_snake_case(cls))
        self.dtype = resolve_dtype(dtype, self.describe())
        if not isinstance(trainable, bool):
            raise TypeError(f"{self.describe()}: trainable must be True or False, got {trainable!r}.")
        self.trainable = trainable
        self.activity_regularizer = regularizers_mod.get(activity_regularizer, owner=self.describe(),
                                                         what="activity_regularizer")
        self.seed = seed
        self.rng = make_rng(seed, self.describe())
        self.built = False
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray | None] = {}
        self.regularizers: dict[str, object] = {}
        self.constraints: dict[str, object] = {}
        self._cache = None
        self._output_shape = None
        self._activity_loss = 0.0  # activity penalty of the last call
        self._activity_output = None

    # ------------------------------------------------------------------ naming / errors

    def describe(self) -> str:
        name = getattr(self, "name", None)
        return f"{type(self).__name__} {name!r}" if name else type(self).__name__

    def error(self, message: str, kind=ValueError):
        return kind(f"{self.describe()} {message}")

    # ------------------------------------------------------------------ parameters

    def add_weight(self, name: str, shape, initializer, regularizer=None, constraint=None) -> np.ndarray:
        _charge_weight_budget(self, name, tuple(shape))
        value = np.ascontiguousarray(initializer(tuple(shape), self.dtype, self.rng), dtype=self.dtype)
        if value.shape != tuple(shape):
            raise self.error(f"initializer for {name!r} returned shape {value.shape}, expected {tuple(shape)}.")
        self.params[name] = value
        self.grads[name] = None
        if regularizer is not None:
            self.regularizers[name] = regularizer
        if constraint is not None:
            self.constraints[name] = constraint
        return value

    def get_weights(self) -> list[np.ndarray]:
        """Copies of the parameters, in Keras order (e.g. kernel, bias)."""
        return [w.copy() for w in self.params.values()]

    def set_weights(self, weights) -> None:
        """Replace the parameters; shapes must match ``get_weights()``."""
        if not self.built:
            raise self.error("has no weights yet: call it on an input (or build(input_shape)) before set_weights.")
        weights = list(weights)
        if len(weights) != len(self.params):
            raise self.error(f"expects {len(self.params)} weight arrays ({', '.join(self.params)}), "
                             f"got {len(weights)}.")
        checked = []
        for (key, current), new in zip(self.params.items(), weights):
            new = np.asarray(new)
            if new.shape != current.shape:
                raise self.error(f"expects {key} of shape {current.shape}, got {new.shape}.")
            if not np.issubdtype(new.dtype, np.number) or np.iscomplexobj(new):
                raise self.error(f"expects a real numeric {key}, got dtype {new.dtype}.", TypeError)
            checked.append((key, new))
        for key, new in checked:
            self.params[key][...] = new  # in place: optimizers and caches keep their references

    def get_gradients(self) -> list[np.ndarray]:
        """Parameter gradients of the last ``backward``, same order and shapes as ``get_weights``."""
        if not self.built or any(g is None for g in self.grads.values()):
            raise self.error("has no gradients yet: call backward(dy) after a forward call.")
        return [g.copy() for g in self.grads.values()]

    def count_params(self) -> int:
        return int(sum(w.size for w in self.params.values()))

    def regularization_loss(self) -> float:
        """Penalties of the weight regularizers plus the last activity penalty."""
        total = sum(reg(self.params[key]) for key, reg in self.regularizers.items())
        return float(total + self._activity_loss)

    def apply_constraints(self) -> None:
        for key, constraint in self.constraints.items():
            self.params[key][...] = constraint(self.params[key])

    def _store_grad(self, key: str, grad: np.ndarray) -> None:
        if key in self.regularizers:
            grad = grad + self.regularizers[key].gradient(self.params[key])
        self.grads[key] = grad.astype(self.dtype, copy=False)

    # ------------------------------------------------------------------ calling

    def cast_input(self, x) -> np.ndarray:
        """Keras-style autocast: ints, bools and other floats become the layer dtype."""
        if isinstance(x, np.ndarray):
            array = x
        else:
            try:
                array = np.asarray(x)
            except (TypeError, ValueError) as exc:
                raise self.error(f"expects a numeric array, got {type(x).__name__}: {exc}", TypeError) from None
        if np.iscomplexobj(array):
            raise self.error(f"expects real numbers, got complex dtype {array.dtype}; pass np.real(x) or abs(x).",
                             TypeError)
        if array.dtype.kind not in "biuf":
            raise self.error(f"expects a numeric array, got dtype {array.dtype}; convert it with "
                             f"np.asarray(x, dtype='{self.dtype.name}').", TypeError)
        return np.asarray(array, dtype=self.dtype)

    def __call__(self, x, training: bool = False, *, keep_cache: bool = True):
        x = self.cast_input(x)
        if not self.built:
            self.build(x.shape)
            self.built = True
        y = self.forward(x, training=training, keep_cache=keep_cache)
        self._activity_loss = 0.0
        if self.activity_regularizer is not None:
            batch = y.shape[0] if y.ndim else 1
            self._activity_loss = self.activity_regularizer(y) / max(batch, 1)
            if keep_cache:
                self._activity_output = y
        self._output_shape = y.shape
        return y

    def backward(self, dy, *, need_input_grad: bool = True):
        """Gradient w.r.t. the input of the last call; stores parameter gradients."""
        if self._output_shape is None or self._cache is None:
            raise self.error("backward() called before a forward call that kept its cache; call the layer on "
                             "an input first (with keep_cache=True).", RuntimeError)
        dy = np.asarray(dy)
        if dy.shape != self._output_shape:
            raise self.error(f"backward expects dy of the output's shape {self._output_shape}, got {dy.shape}.")
        dy = dy.astype(self.dtype, copy=False)
        if self.activity_regularizer is not None:
            batch = dy.shape[0] if dy.ndim else 1
            dy = dy + self.activity_regularizer.gradient(self._activity_output) / max(batch, 1)
        return self.backward_impl(dy, need_input_grad=need_input_grad)

    # ------------------------------------------------------------------ to implement

    def build(self, input_shape) -> None:
        pass

    def ensure_built(self, input_shape) -> None:
        """Build from a shape (None batch allowed) without calling the layer."""
        if not self.built:
            self.build(tuple(input_shape))
            self.built = True

    def forward(self, x, *, training: bool, keep_cache: bool):
        raise NotImplementedError

    def backward_impl(self, dy, *, need_input_grad: bool):
        raise NotImplementedError

    def compute_output_shape(self, input_shape):
        raise NotImplementedError

    # ------------------------------------------------------------------ config

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "dtype": self.dtype.name,
            "trainable": self.trainable,
            "activity_regularizer": regularizers_mod.serialize(self.activity_regularizer),
        }

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} built={self.built}>"


class KernelLayer(Layer):
    """A layer with a kernel, an optional bias and an activation (Dense, Conv2D).

    Holds the arguments they share (Keras names and defaults) and their (de)serialization.
    """

    def _set_kernel_args(self, activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                         bias_regularizer, kernel_constraint, bias_constraint) -> None:
        who = self.describe()
        self.activation = act_mod.get(activation, owner=who)
        if not isinstance(use_bias, bool):
            raise TypeError(f"{who}: use_bias must be True or False, got {use_bias!r}.")
        self.use_bias = use_bias
        self.kernel_initializer = initializers_mod.get(kernel_initializer, owner=who, what="kernel_initializer")
        self.bias_initializer = initializers_mod.get(bias_initializer, owner=who, what="bias_initializer")
        self.kernel_regularizer = regularizers_mod.get(kernel_regularizer, owner=who, what="kernel_regularizer")
        self.bias_regularizer = regularizers_mod.get(bias_regularizer, owner=who, what="bias_regularizer")
        self.kernel_constraint = constraints_mod.get(kernel_constraint, owner=who, what="kernel_constraint")
        self.bias_constraint = constraints_mod.get(bias_constraint, owner=who, what="bias_constraint")

    def _add_kernel_and_bias(self, kernel_shape, units) -> None:
        self.add_weight("kernel", kernel_shape, self.kernel_initializer, self.kernel_regularizer,
                        self.kernel_constraint)
        if self.use_bias:
            self.add_weight("bias", (units,), self.bias_initializer, self.bias_regularizer, self.bias_constraint)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            activation=self.activation.name,
            use_bias=self.use_bias,
            kernel_initializer=initializers_mod.serialize(self.kernel_initializer),
            bias_initializer=initializers_mod.serialize(self.bias_initializer),
            kernel_regularizer=regularizers_mod.serialize(self.kernel_regularizer),
            bias_regularizer=regularizers_mod.serialize(self.bias_regularizer),
            kernel_constraint=constraints_mod.serialize(self.kernel_constraint),
            bias_constraint=constraints_mod.serialize(self.bias_constraint),
            seed=self.seed if isinstance(self.seed, int) else None,
        )
        return config

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        for key in ("kernel_initializer", "bias_initializer"):
            if config.get(key) is not None:
                config[key] = initializers_mod.deserialize(config[key])
            else:
                config.pop(key, None)
        return cls(**config)
