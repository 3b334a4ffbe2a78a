"""``keras.optimizers``: ``Adam`` and ``SGD`` with Keras' signatures, on convlayer's optimizers.

Keras' arguments convlayer does not implement (``amsgrad``, ``weight_decay``, gradient clipping,
EMA, ...) are refused by name when set, rather than silently ignored.

>>> Adam(learning_rate=1e-3).get_config()["name"]
'adam'
"""

from __future__ import annotations

from .. import optimizers as _engine

__all__ = ["Adam", "SGD", "Optimizer", "get"]

Optimizer = _engine.Optimizer

# Keras 3 arguments of every optimizer, with the default that means "off".
_UNSUPPORTED_DEFAULTS = {"weight_decay": None, "clipnorm": None, "clipvalue": None, "global_clipnorm": None,
                         "use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
                         "loss_scale_factor": None, "gradient_accumulation_steps": None}


def _refuse_unsupported(who: str, kwargs: dict) -> None:
    unknown = sorted(set(kwargs) - set(_UNSUPPORTED_DEFAULTS))
    if unknown:
        raise ValueError(f"{who}: unknown argument(s) {', '.join(unknown)}.")
    used = [key for key, value in kwargs.items() if value != _UNSUPPORTED_DEFAULTS[key]]
    if used:
        raise ValueError(f"{who}: convlayer does not implement {', '.join(used)}; leave "
                         f"{'it' if len(used) == 1 else 'them'} at the default.")


class Adam(_engine.Adam):
    """``keras.optimizers.Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7)``."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, *, name="adam",
                 **kwargs):
        if amsgrad:
            raise ValueError("Adam: convlayer does not implement amsgrad=True; leave it at the default.")
        _refuse_unsupported("Adam", kwargs)
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)


class SGD(_engine.SGD):
    """``keras.optimizers.SGD(learning_rate=0.01, momentum=0.0, nesterov=False)``."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, *, name="SGD", **kwargs):
        _refuse_unsupported("SGD", kwargs)
        super().__init__(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov)


_BY_NAME = {"adam": Adam, "sgd": SGD}


def get(identifier) -> Optimizer:
    """An optimizer from a name ('adam', 'sgd') or an optimizer object, for ``compile``."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(f"unknown optimizer {identifier!r}: convlayer implements 'adam' and 'sgd' (or pass "
                     "keras.optimizers.Adam(learning_rate=...) / SGD(...)); RMSprop, AdamW and others are not "
                     "available.")


def __getattr__(name):
    raise AttributeError(f"convlayer.keras.optimizers has no {name!r}; convlayer implements Adam and SGD.")
