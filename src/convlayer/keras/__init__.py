"""Keras code as written, on convlayer: ``from convlayer import keras`` in place of ``import keras``.

Enough of Keras 3's guide-style API for typical example programs to run with only their import
lines changed: ``keras.Sequential([keras.Input(shape=...), layers.Conv2D(...), ...])`` (or
``input_shape=`` on the first layer, Keras 2 style, or ``keras.Model(inputs, outputs)`` on a chain
of layers), ``summary()``, ``compile(optimizer, loss, metrics)``, ``fit`` / ``evaluate`` /
``predict``, ``keras.utils.to_categorical``, ``keras.datasets.mnist.load_data()``,
``model.save('m.keras')`` and ``keras.models.load_model``. A model is an ordinary convlayer
``Sequential``; what convlayer does not implement is refused by name. See docs/keras.md.

>>> from convlayer import keras
>>> from convlayer.keras import layers
>>> model = keras.Sequential([keras.Input(shape=(8, 8, 1)), layers.Conv2D(4, 3, activation="relu"),
...                           layers.Flatten(), layers.Dense(10, activation="softmax")])
>>> model.count_params()
1490
"""

from . import activations, callbacks, datasets, layers, losses, metrics, models, optimizers, utils
from .layers import Input, InputLayer
from .models import Model, Sequential, load_model, save_model
from .tensors import KerasTensor, Tensor, TensorShape

saving = models  # keras.saving.load_model
backend = "numpy (convlayer)"

__version__ = "3 (convlayer)"

__all__ = ["Input", "InputLayer", "Model", "Sequential", "load_model", "save_model", "activations", "callbacks",
           "datasets", "layers", "losses", "metrics", "models", "optimizers", "utils", "saving", "KerasTensor",
           "Tensor", "TensorShape"]
