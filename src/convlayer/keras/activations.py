"""``keras.activations``: convlayer's activations, usable as ``activation=`` and callable on arrays."""

from ..functional.activations import available, get  # noqa: F401
from ..functional.activations import _ACTIVATIONS as _ALL

relu = _ALL["relu"]
sigmoid = _ALL["sigmoid"]
tanh = _ALL["tanh"]
softmax = _ALL["softmax"]
linear = _ALL["linear"]
elu = _ALL["elu"]
selu = _ALL["selu"]
softplus = _ALL["softplus"]
softsign = _ALL["softsign"]
silu = swish = _ALL["silu"]
relu6 = _ALL["relu6"]
exponential = _ALL["exponential"]

__all__ = ["get", "available", "relu", "sigmoid", "tanh", "softmax", "linear", "elu", "selu", "softplus",
           "softsign", "silu", "swish", "relu6", "exponential"]
