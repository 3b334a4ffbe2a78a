"""The lesson's CNN: ``MNISTModel(input_dim, output_size)`` with ``model_layers(inputs, is_training)``."""

from __future__ import annotations

import numpy as np

from ..layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from .sequential import Sequential


class MNISTModel(Sequential):
    """conv1 -> pool -> conv2 -> pool -> dense 1024 -> dropout 0.4 -> logits.

    The input is reshaped to ``[-1, input_dim, input_dim, 1]`` exactly as the lesson does,
    so flat vectors (N, input_dim**2) and images (N, input_dim, input_dim) both work.

    >>> model = MNISTModel(28, 10)
    >>> model.count_params()
    3274634
    >>> model.model_layers(np.zeros((2, 784), np.float32), is_training=False).shape
    (2, 10)
    """

    def __init__(self, input_dim: int = 28, output_size: int = 10, *, seed: int = 0, dtype="float32",
                 name: str = "mnist_model"):
        for arg, value, least in (("input_dim", input_dim, 4), ("output_size", output_size, 2)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
                raise ValueError(f"MNISTModel: {arg} must be an int >= {least}, got {value!r}.")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"MNISTModel: seed must be a non-negative int, got {seed!r}.")
        self.input_dim, self.output_size, self.seed = int(input_dim), int(output_size), int(seed)
        seeds = [int(s) for s in np.random.SeedSequence(self.seed).generate_state(5)]
        super().__init__([
            Conv2D(filters=32, kernel_size=[5, 5], padding="same", activation="relu", name="conv1", seed=seeds[0],
                   dtype=dtype),
            MaxPooling2D(pool_size=[2, 2], strides=2, name="pool1", dtype=dtype),
            Conv2D(filters=64, kernel_size=[5, 5], padding="same", activation="relu", name="conv2", seed=seeds[1],
                   dtype=dtype),
            MaxPooling2D(pool_size=[2, 2], strides=2, name="pool2", dtype=dtype),
            Flatten(name="flatten", dtype=dtype),
            Dense(1024, activation="relu", name="dense", seed=seeds[2], dtype=dtype),
            Dropout(0.4, name="dropout", seed=seeds[3], dtype=dtype),
            Dense(self.output_size, name="logits", seed=seeds[4], dtype=dtype),
        ], name=name)
        self.build((None, self.input_dim, self.input_dim, 1))

    def prepare_input(self, x) -> np.ndarray:
        """``tf.reshape(inputs, [-1, input_dim, input_dim, 1])`` with a clear error."""
        x = np.asarray(x)
        pixels = self.input_dim * self.input_dim
        if x.size % pixels or x.ndim == 0:
            raise ValueError(f"MNISTModel expects images of {self.input_dim}x{self.input_dim} pixels "
                             f"({pixels} values each), got an input of shape {x.shape}; resize the images or "
                             f"build MNISTModel(input_dim=...) to match.")
        return x.reshape(-1, self.input_dim, self.input_dim, 1)  # (N, d, d, 1)

    def model_layers(self, inputs, is_training: bool) -> np.ndarray:
        """Logits (N, output_size); dropout is active only when ``is_training``."""
        return self(inputs, training=is_training)

    def get_config(self) -> dict:
        return {"name": self.name, "input_dim": self.input_dim, "output_size": self.output_size, "seed": self.seed,
                "dtype": self.layers[0].dtype.name}

    @classmethod
    def from_config(cls, config: dict) -> "MNISTModel":
        return cls(config["input_dim"], config["output_size"], seed=config.get("seed", 0),
                   dtype=config.get("dtype", "float32"), name=config.get("name", "mnist_model"))
