"""Properties of Conv2D: shapes, linearity, 1x1 kernels, config round trips, float64,
initializers, regularizers and constraints (against Keras), and the PyTorch interop helpers."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import tensorflow as tf
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import convlayer.interop.layout as compat
from convlayer import initializers
from convlayer.interop.layout import (hwio_to_torch_weight, padding_amounts_to_torch, same_padding_for_torch,
                                      torch_padding, torch_weight_to_hwio)
from convlayer.functional.shapes import same_padding
from convlayer.layers import Conv2D
from reference import assert_close

keras = tf.keras
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------- shapes


@st.composite
def layer_and_shape(draw):
    kernel = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = draw(st.sampled_from(["valid", "same", ((1, 0), (2, 1)), 1]))
    data_format = draw(st.sampled_from(["channels_last", "channels_first"]))
    channels = draw(st.integers(1, 3))
    hw = []
    for axis in range(2):
        span = (kernel[axis] - 1) * dilation[axis] + 1
        hw.append(draw(st.integers(span if padding == "valid" else 1, span + 6)) if padding != "same"
                  else draw(st.integers(1, 9)))
    if padding not in ("valid", "same"):  # explicit: the padded input must still hold one window
        pads = ((1, 0), (2, 1)) if padding != 1 else ((1, 1), (1, 1))
        hw = [max(h, (k - 1) * d + 1 - sum(p)) for h, k, d, p in zip(hw, kernel, dilation, pads)]
    sample = (*hw, channels) if data_format == "channels_last" else (channels, *hw)
    batch = draw(st.sampled_from([(1,), (2,), (2, 3)]))
    layer = Conv2D(draw(st.integers(1, 4)), kernel, strides=strides, padding=padding, dilation_rate=dilation,
                   data_format=data_format)
    return layer, (*batch, *sample)


@FAST
@given(layer_and_shape())
def test_output_shape_equals_compute_output_shape(config):
    layer, shape = config
    y = layer(np.zeros(shape, np.float32))
    assert y.shape == layer.compute_output_shape(shape)
    unknown_batch = (None,) * (len(shape) - 3) + shape[-3:]
    assert layer.compute_output_shape(unknown_batch) == (None,) * (len(shape) - 3) + y.shape[-3:]
    if layer.padding == "same":  # 'same' keeps ceil(in / stride), whatever the kernel
        spatial = shape[-3:-1] if layer.data_format == "channels_last" else shape[-2:]
        out = y.shape[-3:-1] if layer.data_format == "channels_last" else y.shape[-2:]
        assert out == tuple(-(-s // st_) for s, st_ in zip(spatial, layer.strides))


def test_compute_output_shape_keeps_unknown_spatial_dims():
    layer = Conv2D(4, 3, strides=2, padding="same")
    assert layer.compute_output_shape((None, None, 9, 1)) == (None, None, 5, 4)
    assert Conv2D(4, 3).compute_output_shape((None, 10, None, 2)) == (None, 8, None, 4)


# ---------------------------------------------------------------------------- linear algebra


@FAST
@given(a=st.floats(-3, 3), b=st.floats(-3, 3), seed=st.integers(0, 2**32 - 1),
       geometry=st.sampled_from([dict(kernel_size=3, padding="same"),
                                 dict(kernel_size=(2, 3), strides=2, padding="same", padding_mode="reflect"),
                                 dict(kernel_size=2, dilation_rate=2, groups=2),
                                 dict(kernel_size=(1, 4), strides=(3, 1), padding=((2, 0), (1, 1)))]))
def test_linear_in_the_kernel(a, b, seed, geometry):
    rng = np.random.default_rng(seed)
    layer = Conv2D(4, use_bias=False, dtype="float64", **geometry)
    x = rng.standard_normal((2, 7, 6, 2))
    layer.build(x.shape)
    k1, k2 = rng.standard_normal((2, *layer.kernel.shape))

    def conv_with(kernel):
        layer.set_weights([kernel])
        return layer(x)

    combined = conv_with(a * k1 + b * k2)
    separate = a * conv_with(k1) + b * conv_with(k2)
    np.testing.assert_allclose(combined, separate, rtol=1e-12, atol=1e-12 * (1 + np.abs(separate).max()))


@pytest.mark.parametrize("strides", [1, 2])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_1x1_kernel_is_a_per_pixel_matrix_product(strides, data_format, rng):
    layer = Conv2D(5, 1, strides=strides, data_format=data_format, dtype="float64", activation=None, seed=1)
    x_nhwc = rng.standard_normal((2, 5, 6, 3))
    x = x_nhwc if data_format == "channels_last" else x_nhwc.transpose(0, 3, 1, 2)
    layer.build(x.shape)
    layer.set_weights([rng.standard_normal((1, 1, 3, 5)), rng.standard_normal(5)])
    expected = x_nhwc[:, ::strides, ::strides] @ layer.kernel[0, 0] + layer.bias  # (N, Ho, Wo, C) @ (C, F)
    y = layer(x)
    y_nhwc = y if data_format == "channels_last" else y.transpose(0, 2, 3, 1)
    np.testing.assert_allclose(y_nhwc, expected, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------- config, dtype


def _rich_layer(**overrides) -> Conv2D:
    kwargs = dict(filters=6, kernel_size=(3, 2), strides=(2, 1), padding=((1, 0), (2, 1)),
                  data_format="channels_first", dilation_rate=(1, 2), groups=2, activation="tanh", use_bias=True,
                  kernel_initializer=initializers.VarianceScaling(2.0, "fan_out", "uniform"),
                  bias_initializer="ones", kernel_regularizer="l2", bias_regularizer={"l1": 0.1, "l2": 0.0},
                  activity_regularizer="l1", kernel_constraint="max_norm", bias_constraint="non_neg",
                  padding_mode="reflect", name="roundtrip", dtype="float64", trainable=False, seed=7)
    kwargs.update(overrides)
    return Conv2D(**kwargs)


@pytest.mark.parametrize("overrides", [{}, dict(padding="same", data_format="channels_last", groups=1,
                                                 kernel_initializer="he_normal", use_bias=False, dtype=None,
                                                 activation="relu", padding_mode="zeros", trainable=True)])
def test_config_round_trip(overrides, rng):
    layer = _rich_layer(**overrides)
    config = layer.get_config()
    clone = Conv2D.from_config(json.loads(json.dumps(config)))  # survives JSON, as a saved model would
    assert clone.get_config() == config
    channels_first = layer.data_format == "channels_first"
    x = rng.standard_normal((2, 4, 7, 8) if channels_first else (2, 7, 8, 4))
    layer(x)
    clone.build(x.shape)
    for a, b in zip(layer.get_weights(), clone.get_weights()):  # same seed: same initial weights
        np.testing.assert_array_equal(a, b)
    clone.set_weights([rng.standard_normal(w.shape) for w in layer.get_weights()])
    layer_weights = clone.get_weights()
    layer.set_weights(layer_weights)
    np.testing.assert_array_equal(layer(x), clone(x))
    assert clone.regularization_loss() == layer.regularization_loss()


def test_float64_end_to_end(rng):
    layer = Conv2D(3, (3, 2), strides=2, padding="same", activation="tanh", dtype="float64", seed=0)
    x = rng.standard_normal((2, 7, 6, 2)).astype(np.float32)  # float32 in, float64 layer: cast up
    y = layer(x)
    assert y.dtype == np.float64 and all(w.dtype == np.float64 for w in layer.get_weights())
    dx = layer.backward(np.ones_like(y))
    assert dx.dtype == np.float64 and all(g.dtype == np.float64 for g in layer.get_gradients())
    # float64 all the way: matches float64 PyTorch to ~1e-13, far beyond float32's reach
    pads = padding_amounts_to_torch(layer.padding_amounts(x.shape))
    x_t = torch.tensor(x.astype(np.float64).transpose(0, 3, 1, 2))
    y_t = torch.tanh(F.conv2d(F.pad(x_t, pads), torch.tensor(hwio_to_torch_weight(layer.kernel)),
                              torch.tensor(layer.bias), stride=2))
    assert_close(y, y_t.numpy().transpose(0, 2, 3, 1), 1e-13, "float64 forward")


def test_backward_without_input_gradient(rng):
    layer = Conv2D(3, 3, padding="same", seed=0)
    x = rng.standard_normal((2, 6, 6, 2))
    dy = rng.standard_normal(layer.compute_output_shape(x.shape))
    layer(x)
    layer.backward(dy)
    full = layer.get_gradients()
    layer(x)
    assert layer.backward(dy, need_input_grad=False) is None
    for a, b in zip(full, layer.get_gradients()):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------- initializers


def test_seeded_layers_are_reproducible():
    def kernel(seed):
        layer = Conv2D(8, 3, seed=seed)
        layer.build((None, 9, 9, 4))
        return layer.kernel

    np.testing.assert_array_equal(kernel(3), kernel(3))
    assert not np.array_equal(kernel(3), kernel(4))
    first = Conv2D(8, 3, seed=np.random.default_rng(5))
    second = Conv2D(8, 3, seed=np.random.default_rng(5))
    first.build((1, 5, 5, 2))
    second.build((1, 5, 5, 2))
    np.testing.assert_array_equal(first.kernel, second.kernel)
    np.testing.assert_array_equal(first.bias, np.zeros(8, np.float32))  # Keras' default bias_initializer


KERNEL_SHAPE = (5, 5, 16, 32)  # fan_in 400, fan_out 800


@pytest.mark.parametrize("name", ["glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform",
                                  "lecun_normal", "random_normal", "random_uniform", "truncated_normal"])
def test_initializer_statistics_match_keras(name):
    layer = Conv2D(32, 5, kernel_initializer=name, seed=0)
    layer.build((None, 12, 12, 16))
    ours = layer.kernel.astype(np.float64)
    theirs = keras.initializers.get(name)(KERNEL_SHAPE, dtype="float32").numpy().astype(np.float64)
    assert ours.shape == theirs.shape == KERNEL_SHAPE
    assert abs(ours.mean()) < 0.05 * theirs.std()
    assert ours.std() == pytest.approx(theirs.std(), rel=0.05)
    if name != "random_normal":  # all others are bounded (uniform, or normal truncated at 2 sigma)
        assert np.abs(ours).max() == pytest.approx(np.abs(theirs).max(), rel=0.05)


def test_glorot_uniform_and_he_normal_follow_the_keras_formulas():
    fan_in, fan_out = 5 * 5 * 16, 5 * 5 * 32
    glorot = Conv2D(32, 5, seed=1)  # glorot_uniform is the default
    glorot.build((None, 12, 12, 16))
    limit = np.sqrt(6 / (fan_in + fan_out))  # Keras GlorotUniform: U(-limit, limit)
    assert np.abs(glorot.kernel).max() <= limit
    assert np.abs(glorot.kernel).max() > 0.99 * limit
    assert glorot.kernel.std() == pytest.approx(limit / np.sqrt(3), rel=0.03)
    he = Conv2D(32, 5, kernel_initializer="he_normal", seed=1)
    he.build((None, 12, 12, 16))
    # Keras HeNormal: truncated normal (at 2 sigma) whose *truncated* std is sqrt(2 / fan_in)
    assert he.kernel.std() == pytest.approx(np.sqrt(2 / fan_in), rel=0.03)
    assert np.abs(he.kernel).max() <= 2 * np.sqrt(2 / fan_in) / 0.87962566103423978 + 1e-6


# ---------------------------------------------------------------------------- regularizers


def _keras_twin(layer: Conv2D, x, **kwargs):
    twin = keras.layers.Conv2D(layer.filters, layer.kernel_size, strides=layer.strides, padding=layer.padding,
                               **kwargs)
    twin.build(x.shape)
    twin.set_weights(layer.get_weights())
    return twin


def test_l2_kernel_regularizer_adds_2_l2_w_to_dkernel(rng):
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    plain = Conv2D(4, 3, seed=0)
    regular = Conv2D(4, 3, seed=0, kernel_regularizer={"l2": 0.3})
    dy = rng.standard_normal(plain.compute_output_shape(x.shape)).astype(np.float32)
    for layer in (plain, regular):
        layer(x)
        layer.backward(dy)
    (dk_plain, db_plain), (dk_reg, db_reg) = plain.get_gradients(), regular.get_gradients()
    np.testing.assert_allclose(dk_reg, dk_plain + 2 * 0.3 * regular.kernel, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(db_reg, db_plain)  # no bias regularizer
    assert regular.regularization_loss() == pytest.approx(0.3 * float(np.sum(regular.kernel.astype(np.float64) ** 2)),
                                                          rel=1e-6)


def test_regularization_losses_and_gradients_match_keras(rng):
    x = rng.standard_normal((3, 7, 6, 2)).astype(np.float32)
    layer = Conv2D(4, (3, 2), strides=(2, 1), padding="same", seed=0, kernel_regularizer="l2",
                   bias_regularizer={"l1": 0.2, "l2": 0.1}, activity_regularizer={"l1": 0.01},
                   bias_initializer="random_normal")
    layer.build(x.shape)
    twin = _keras_twin(layer, x, kernel_regularizer=keras.regularizers.L2(0.01),
                       bias_regularizer=keras.regularizers.L1L2(l1=0.2, l2=0.1),
                       activity_regularizer=keras.regularizers.L1(0.01))
    y = layer(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    with tf.GradientTape() as tape:
        y_keras = twin(x)
        losses = twin.losses  # kernel, bias and (batch-averaged) activity penalties, as Keras adds them
        fakeloss = tf.reduce_sum(y_keras * dy) + tf.add_n(losses)
    assert len(losses) == 3
    assert layer.regularization_loss() == pytest.approx(float(tf.add_n(losses)), rel=1e-5)
    layer.backward(dy)
    for ours, theirs in zip(layer.get_gradients(), tape.gradient(fakeloss, twin.trainable_weights)):
        assert_close(ours, theirs.numpy(), 1e-5, "gradient with regularizers")


# ---------------------------------------------------------------------------- constraints


# Norm constraints take one norm per filter (axes [0, 1, 2]), the setting Keras' docs give for Conv2D
# kernels. Keras' default is axis=0 (the kernel's rows); axis=[0, 1, 2] constrains whole filters.
@pytest.mark.parametrize("ours, keras_constraint", [
    ("max_norm", keras.constraints.MaxNorm(max_value=2)),
    ({"name": "max_norm", "axis": [0, 1, 2]}, keras.constraints.MaxNorm(max_value=2, axis=[0, 1, 2])),
    ("non_neg", keras.constraints.NonNeg()),
    ("unit_norm", keras.constraints.UnitNorm()),
    ({"name": "unit_norm", "axis": [0, 1, 2]}, keras.constraints.UnitNorm(axis=[0, 1, 2])),
    ("min_max_norm", keras.constraints.MinMaxNorm(0.0, 1.0, rate=1.0)),
    ({"name": "max_norm", "max_value": 0.5, "axis": [0, 1, 2]},
     keras.constraints.MaxNorm(max_value=0.5, axis=[0, 1, 2])),
    ({"name": "min_max_norm", "min_value": 0.5, "max_value": 1.5, "rate": 0.5, "axis": [0, 1, 2]},
     keras.constraints.MinMaxNorm(0.5, 1.5, rate=0.5, axis=[0, 1, 2])),
])
def test_constraints_match_keras(ours, keras_constraint, rng):
    layer = Conv2D(6, 3, kernel_constraint=ours, seed=0)
    layer.build((None, 8, 8, 2))
    scales = np.array([0.01, 0.2, 0.5, 1.0, 3.0, 10.0], np.float32)  # filter norms below and above the limits
    kernel = rng.standard_normal(layer.kernel.shape).astype(np.float32) * scales
    layer.set_weights([kernel, layer.bias])
    layer.apply_constraints()
    expected = keras_constraint(tf.constant(kernel)).numpy()
    np.testing.assert_allclose(layer.kernel, expected, rtol=1e-5, atol=1e-7)
    assert layer.kernel.dtype == np.float32


# ---------------------------------------------------------------------------- PyTorch interop helpers


def test_weight_layout_round_trip(rng):
    kernel = rng.standard_normal((5, 4, 3, 8)).astype(np.float32)  # HWIO
    weight = hwio_to_torch_weight(kernel)
    assert weight.shape == (8, 3, 5, 4) and weight.flags.c_contiguous
    np.testing.assert_array_equal(torch_weight_to_hwio(weight), kernel)
    module = torch.nn.Conv2d(3, 8, (5, 4))
    np.testing.assert_array_equal(hwio_to_torch_weight(torch_weight_to_hwio(module.weight)),
                                  module.weight.detach().numpy())


@pytest.mark.parametrize("groups, strides, dilation", [(1, 1, 1), (1, 2, 1), (2, (2, 1), (1, 2))])
def test_torch_module_weights_give_the_same_outputs(groups, strides, dilation, rng):
    torch.manual_seed(0)
    module = torch.nn.Conv2d(4, 6, (3, 2), stride=strides, dilation=dilation, groups=groups)
    layer = Conv2D(6, (3, 2), strides=strides, dilation_rate=dilation, groups=groups,
                   data_format="channels_first")
    x = rng.standard_normal((2, 4, 8, 9)).astype(np.float32)
    layer.build(x.shape)
    layer.set_weights([torch_weight_to_hwio(module.weight), module.bias.detach().numpy()])
    with torch.no_grad():
        expected = module(torch.tensor(x)).numpy()
    assert_close(layer(x), expected, 1e-5, "torch.nn.Conv2d weights")


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths:UserWarning")
@FAST
@given(hw=st.tuples(st.integers(1, 12), st.integers(1, 12)), kernel=st.tuples(st.integers(1, 6), st.integers(1, 6)),
       strides=st.tuples(st.integers(1, 3), st.integers(1, 3)), dilation=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       seed=st.integers(0, 2**32 - 1))
def test_same_padding_for_torch_reproduces_our_same(hw, kernel, strides, dilation, seed):
    rng = np.random.default_rng(seed)
    layer = Conv2D(3, kernel, strides=strides, dilation_rate=dilation, padding="same", data_format="channels_first")
    x = rng.standard_normal((2, 2, *hw)).astype(np.float32)
    y = layer(x)
    pads = same_padding_for_torch(hw, kernel, strides, dilation)
    assert pads == padding_amounts_to_torch(layer.padding_amounts(x.shape))
    assert torch_padding(layer, x.shape) == (pads, "constant")
    y_t = F.conv2d(F.pad(torch.tensor(x), pads), torch.tensor(hwio_to_torch_weight(layer.kernel)),
                   torch.tensor(layer.bias), stride=strides, dilation=dilation)
    assert_close(y, y_t.numpy(), 1e-5, "same_padding_for_torch")
    if strides == (1, 1):  # PyTorch's own 'same' agrees at stride 1, even kernels included
        y_same = F.conv2d(torch.tensor(x), torch.tensor(hwio_to_torch_weight(layer.kernel)), torch.tensor(layer.bias),
                          dilation=dilation, padding="same")
        assert_close(y, y_same.numpy(), 1e-5, "torch padding='same'")


def test_same_padding_for_torch_uses_the_one_same_rule(monkeypatch):
    calls = []

    def spy(*args):
        calls.append(args)
        return same_padding(*args)

    monkeypatch.setattr(compat, "same_padding", spy)
    assert same_padding_for_torch((5, 7), (2, 3), strides=(2, 1), dilation_rate=(1, 2)) == (2, 2, 0, 1)
    assert calls == [(5, 2, 2, 1), (7, 3, 1, 2)]


def test_torch_padding_for_padding_modes():
    layer = Conv2D(2, (2, 3), strides=2, padding="same", padding_mode="reflect")
    assert torch_padding(layer, (1, 5, 6, 1)) == ((0, 1, 0, 1), "reflect")
    assert torch_padding(Conv2D(2, 3, padding=((1, 2), (3, 4)), padding_mode="circular"),
                         (1, 9, 9, 1)) == ((3, 4, 1, 2), "circular")
    assert torch_padding(Conv2D(2, 3, padding_mode="replicate"), (1, 9, 9, 1)) == ((0, 0, 0, 0), "replicate")


@pytest.mark.parametrize("call, error, message", [
    (lambda: same_padding_for_torch((5,), 3), ValueError, "input_hw must have 2 elements"),
    (lambda: same_padding_for_torch((5, 0), 3), ValueError, "input_hw must be >= 1 on every axis, got (5, 0)."),
    (lambda: same_padding_for_torch((5, 5), 0), ValueError, "kernel_size must be >= 1 on every axis, got 0."),
    (lambda: same_padding_for_torch((5, 5), 3, strides="2"), TypeError, "strides must be an int or a tuple of 2"),
    (lambda: same_padding_for_torch((5, 5), 3, dilation_rate=(1, 2, 3)), ValueError,
     "dilation_rate must have 2 elements"),
    (lambda: hwio_to_torch_weight(np.zeros((3, 3, 1))), ValueError,
     "kernel must be a 4-D HWIO (kh, kw, in_channels // groups, filters) kernel, got shape (3, 3, 1)."),
    (lambda: torch_weight_to_hwio(np.zeros((8, 3, 5))), ValueError, "weight must be a 4-D OIHW"),
    (lambda: torch_weight_to_hwio(np.zeros((1, 1, 1, 1), complex)), TypeError,
     "weight must hold real numbers, got dtype complex128."),
    (lambda: hwio_to_torch_weight("kernel"), TypeError, "kernel must hold real numbers, got dtype <U6."),
    (lambda: padding_amounts_to_torch(((0, 1), (2,))), ValueError,
     "padding must be ((top, bottom), (left, right)) of non-negative ints, got ((0, 1), (2,))."),
    (lambda: padding_amounts_to_torch(((0, -1), (2, 2))), ValueError, "of non-negative ints, got ((0, -1), (2, 2))."),
    (lambda: torch_padding(torch.nn.Conv2d(1, 1, 3), (1, 5, 5, 1)), TypeError,
     "torch_padding expects a convlayer Conv2D layer, got Conv2d."),
    (lambda: torch_padding(Conv2D(1, 3, padding="same"), (1, None, 5, 1)), ValueError,
     "torch_padding needs known rows and cols for padding='same', got input shape (1, None, 5, 1)."),
])
def test_compat_errors(call, error, message):
    with pytest.raises(error, match=re.escape(message)):
        call()


@pytest.mark.parametrize("groups", [1, 2])
def test_an_empty_batch_gives_empty_outputs_and_gradients(groups):
    from convlayer.layers import Conv2D

    layer = Conv2D(4, 3, padding="same", groups=groups, seed=0)
    y = layer(np.zeros((0, 5, 5, 2), np.float32))
    assert y.shape == (0, 5, 5, 4)
    assert layer.backward(np.zeros(y.shape, np.float32)).shape == (0, 5, 5, 2)
    dkernel, dbias = layer.get_gradients()
    assert not dkernel.any() and not dbias.any()
