"""The models every interop test exports: the lesson's, and a grid of small ones (one setting each).

Each grid entry says which export formats hold it; the others must refuse it before writing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convlayer.layers import (Activation, AveragePooling2D, Conv2D, Dense, Dropout, Flatten, MaxPooling2D,
                              Reshape)
from convlayer.models import MNISTModel, Sequential

ALL = (".keras", ".onnx", ".safetensors")


@dataclass
class Case:
    name: str
    layers: callable
    input_shape: tuple  # one sample, as convlayer takes it
    formats: tuple = ALL
    refusal: str = ""  # part of the message the other formats give

    def model(self) -> Sequential:
        model = Sequential(self.layers(), name=self.name)
        model.build((None, *self.input_shape))
        for i, layer in enumerate(model.layers):  # non-zero biases, so that a dropped bias shows
            if "bias" in layer.params:
                layer.params["bias"][...] = np.linspace(-0.5, 0.5, layer.params["bias"].size)
        return model

    @property
    def channels_first(self) -> bool:
        return any(getattr(layer, "data_format", "") == "channels_first" for layer in self.layers())


def conv(*args, **kwargs):
    return Conv2D(*args, seed=3, **kwargs)


GRID = [
    Case("strided_same", lambda: [conv(3, 3, strides=2, padding="same")], (7, 7, 2)),
    Case("even_kernel_same", lambda: [conv(4, 2, padding="same", activation="relu")], (6, 6, 3)),
    Case("even_kernel_strided_same", lambda: [conv(4, (2, 4), strides=(2, 3), padding="same")], (9, 8, 1)),
    Case("dilation", lambda: [conv(4, 3, dilation_rate=(2, 1), padding="same", activation="tanh")], (8, 8, 2)),
    Case("groups", lambda: [conv(6, 3, groups=2, activation="elu")], (6, 6, 4)),
    Case("channels_first", lambda: [conv(4, 3, strides=2, padding="same", data_format="channels_first",
                                         activation="selu")], (3, 7, 7)),
    Case("channels_first_flatten_dense",
         lambda: [conv(4, 3, data_format="channels_first"), MaxPooling2D(data_format="channels_first"),
                  Flatten(), Dense(5, seed=1)], (2, 8, 8)),
    Case("explicit_padding", lambda: [conv(3, 3, padding=((0, 1), (2, 0)), activation="silu")], (5, 6, 2)),
    Case("flatten_dense_softmax", lambda: [conv(3, 3, activation="relu6"), Flatten(), Dropout(0.3),
                                           Dense(4, activation="softmax", seed=1)], (6, 5, 2)),
    Case("pooling_same", lambda: [MaxPooling2D(3, strides=2, padding="same"), conv(2, 1, activation="softplus"),
                                  AveragePooling2D(3, strides=1, padding="same")], (7, 7, 2)),
    Case("average_pooling_valid", lambda: [AveragePooling2D(2), Activation("sigmoid"), Flatten(),
                                           Dense(3, use_bias=False, seed=2, activation="softsign")], (6, 6, 2)),
    Case("conv_softmax", lambda: [conv(3, 3, padding="same", activation="softmax")], (5, 5, 2)),
    Case("dense_on_features", lambda: [Flatten(), Dense(6, activation="relu", seed=1), Dense(3, seed=2)], (4, 4, 1)),
    Case("average_pooling_same_asymmetric", lambda: [AveragePooling2D(2, padding="same")], (5, 5, 2),
         (".keras", ".onnx"), "nn.AvgPool2d pads both sides alike"),
    Case("reshape", lambda: [Flatten(), Reshape((2, -1)), Dense(3, seed=1)], (4, 4, 1), (".keras", ".onnx"),
         "Reshape"),
    Case("reflect", lambda: [conv(3, 3, padding="same", padding_mode="reflect")], (6, 6, 2),
         (".onnx", ".safetensors"), "padding_mode='reflect'"),
    Case("replicate_strided", lambda: [conv(3, 4, strides=2, padding="same", padding_mode="replicate")], (7, 7, 1),
         (".onnx", ".safetensors"), "padding_mode='replicate'"),
    Case("circular", lambda: [conv(3, 3, padding=1, padding_mode="circular")], (5, 5, 2), (".safetensors",),
         "padding_mode='circular'"),
    Case("strides_with_dilation", lambda: [conv(3, 3, strides=2, dilation_rate=2)], (9, 9, 2),
         (".onnx", ".safetensors"), "strides=(2, 2) together with dilation_rate=(2, 2)"),
    Case("exponential", lambda: [conv(2, 1, activation="exponential")], (3, 3, 1), (".keras", ".onnx"),
         "activation 'exponential'"),
]


def lesson_model() -> MNISTModel:
    """The lesson's MNISTModel(28, 10), random-init (no training needed), non-zero biases."""
    model = MNISTModel(28, 10, seed=7)
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if "bias" in layer.params:
            layer.params["bias"][...] = rng.normal(0, 0.05, layer.params["bias"].shape)
    return model


def images(shape, n=4, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


def relative_error(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))
