"""Float64 centered finite differences for dx, dkernel and dbias (cs231n ``gradient_check.py``).

The scalar checked is ``L = sum(layer(x) * dy) + layer.regularization_loss()``, whose
gradients are exactly what ``layer.backward(dy)`` returns and stores.
"""

from __future__ import annotations

import numpy as np
import pytest

from convlayer.layers import Conv2D
from reference import assert_close

TOL = 1e-7
STEP = 1e-5

CONFIGS = {
    "same-even-kernel-stride2": ((2, 5, 5, 2), dict(filters=3, kernel_size=2, strides=2, padding="same")),
    "same-asymmetric-4x3": ((2, 6, 5, 2), dict(filters=2, kernel_size=(4, 3), padding="same")),
    "valid-stride2": ((2, 7, 6, 3), dict(filters=2, kernel_size=3, strides=2)),
    "valid-stride-2x3-kernel-2x4": ((1, 7, 9, 2), dict(filters=3, kernel_size=(2, 4), strides=(2, 3))),
    "dilation2-same-tanh": ((2, 7, 7, 2), dict(filters=2, kernel_size=3, dilation_rate=2, padding="same",
                                                activation="tanh")),
    "stride2-dilation2-same": ((1, 9, 8, 2), dict(filters=2, kernel_size=(3, 2), strides=2, dilation_rate=(2, 3),
                                                  padding="same")),
    "groups2": ((2, 5, 6, 4), dict(filters=4, kernel_size=3, padding="same", groups=2)),
    "depthwise-stride2": ((1, 6, 6, 3), dict(filters=3, kernel_size=2, strides=2, groups=3)),
    "explicit-padding": ((2, 5, 4, 2), dict(filters=2, kernel_size=3, padding=((2, 0), (1, 3)))),
    "reflect-same-stride2": ((2, 6, 7, 2), dict(filters=2, kernel_size=(3, 2), strides=2, padding="same",
                                                padding_mode="reflect")),
    "replicate-explicit": ((1, 5, 6, 2), dict(filters=3, kernel_size=3, padding=((3, 1), (0, 2)),
                                              padding_mode="replicate")),
    "circular-same-dilation": ((1, 6, 6, 2), dict(filters=2, kernel_size=3, dilation_rate=2, padding="same",
                                                  padding_mode="circular")),
    "channels-first": ((2, 3, 6, 5), dict(filters=2, kernel_size=(3, 2), strides=(1, 2), padding="same",
                                          data_format="channels_first", activation="sigmoid")),
    # softmax runs over the width for channels_first (as in Keras); a bias would get an exactly-zero gradient
    "channels-first-softmax": ((1, 2, 5, 4), dict(filters=3, kernel_size=2, padding="same", use_bias=False,
                                                  data_format="channels_first", activation="softmax")),
    "softmax": ((2, 4, 5, 2), dict(filters=3, kernel_size=(2, 3), padding="same", activation="softmax")),
    "rank5": ((2, 2, 5, 5, 2), dict(filters=2, kernel_size=2, strides=2, padding="same")),
    "rank5-channels-first": ((2, 1, 2, 5, 6), dict(filters=2, kernel_size=3, padding="same",
                                                   data_format="channels_first")),
    "rows-layout": ((1, 5, 6, 12), dict(filters=2, kernel_size=3, padding="same", activation="softplus")),
    "no-bias-elu": ((2, 5, 5, 2), dict(filters=2, kernel_size=2, use_bias=False, activation="elu")),
    "regularizers": ((2, 5, 5, 2), dict(filters=2, kernel_size=3, padding="same", kernel_regularizer="l2",
                                        bias_regularizer={"l1": 0.1, "l2": 0.05},
                                        activity_regularizer={"l2": 0.02})),
}


def _loss(layer, x, dy) -> float:
    y = layer(x, keep_cache=False)
    return float(np.sum(y * dy)) + layer.regularization_loss()


def numerical_gradient(f, array: np.ndarray) -> np.ndarray:
    """Centered differences of the scalar ``f()`` w.r.t. every entry of ``array`` (perturbed in place)."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + STEP
        plus = f()
        array[index] = saved - STEP
        minus = f()
        array[index] = saved
        grad[index] = (plus - minus) / (2 * STEP)
    return grad


@pytest.mark.parametrize("name", list(CONFIGS))
def test_gradients_match_finite_differences(name, rng):
    input_shape, kwargs = CONFIGS[name]
    layer = Conv2D(**kwargs, dtype="float64", seed=0)
    x = rng.standard_normal(input_shape)
    layer.build(x.shape)
    if layer.use_bias:
        layer.set_weights([layer.kernel, rng.standard_normal(layer.bias.shape)])  # a non-zero bias (l1 kink at 0)
    y = layer(x)
    assert y.dtype == np.float64
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    grads = dict(zip(layer.params, layer.get_gradients()))

    assert_close(dx, numerical_gradient(lambda: _loss(layer, x, dy), x), TOL, f"{name} dx")
    for key, param in layer.params.items():  # kernel, bias: perturbed in place
        assert_close(grads[key], numerical_gradient(lambda: _loss(layer, x, dy), param), TOL, f"{name} d{key}")
