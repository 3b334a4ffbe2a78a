"""Every caller mistake raises a clear ValueError/TypeError that names the value and the fix."""

from __future__ import annotations

import re

import numpy as np
import pytest

from convlayer.layers import Conv2D

VALID_ACTIVATIONS = "elu, exponential, linear, relu, relu6, selu, sigmoid, silu, softmax, softplus, softsign, tanh"
VALID_INITIALIZERS = ("glorot_normal, glorot_uniform, he_normal, he_uniform, lecun_normal, lecun_uniform, ones, "
                      "random_normal, random_uniform, truncated_normal, zeros")


def conv(**kwargs) -> Conv2D:
    return Conv2D(**{"filters": 2, "kernel_size": 3, "name": "c", **kwargs})


def built(input_shape=(1, 6, 6, 1), **kwargs) -> Conv2D:
    layer = conv(**kwargs)
    layer(np.zeros(input_shape))
    return layer


# ---------------------------------------------------------------------------- input rank, channels, dtype


@pytest.mark.parametrize("shape", [(5, 5), (5, 5, 1), (28, 28, 1)])
def test_wrong_rank(shape):
    with pytest.raises(ValueError, match=re.escape(
            f"Conv2D 'c' expects input of rank 4 or more (batch..., rows, cols, channels; "
            f"data_format='channels_last'), got shape {shape}. Add the missing axes, e.g. x.reshape(-1, rows, cols, 1)")):
        conv()(np.zeros(shape))


def test_wrong_rank_channels_first_names_its_layout():
    with pytest.raises(ValueError, match=r"rank 4 or more \(batch\.\.\., channels, rows, cols; "
                                         r"data_format='channels_first'\)"):
        conv(data_format="channels_first").compute_output_shape((3, 28, 28))


def test_channel_count_differs_from_built_kernel():
    layer = built((1, 6, 6, 1))
    with pytest.raises(ValueError, match=re.escape(
            "Conv2D 'c' expects 1 input channel (last axis, data_format='channels_last'), "
            "got input of shape (1, 6, 6, 3).")) as info:
        layer(np.zeros((1, 6, 6, 3)))
    assert "looks like" not in str(info.value)  # no misleading hint


def test_channel_count_hint_for_channels_first_data():
    layer = built((8, 28, 28, 1))
    with pytest.raises(ValueError, match=re.escape(
            "Conv2D 'c' expects 1 input channel (last axis, data_format='channels_last'), got input of shape "
            "(8, 1, 28, 28). It looks like channels_first data; pass data_format='channels_first'")):
        layer(np.zeros((8, 1, 28, 28)))


def test_channel_count_hint_for_channels_last_data():
    layer = built((2, 3, 8, 8), data_format="channels_first")
    with pytest.raises(ValueError, match=re.escape(
            "expects 3 input channels (axis -3, data_format='channels_first'), got input of shape (2, 8, 8, 3). "
            "It looks like channels_last data; pass data_format='channels_last'")):
        layer(np.zeros((2, 8, 8, 3)))


def test_channel_count_checked_by_compute_output_shape_too():
    layer = built((1, 6, 6, 1))
    with pytest.raises(ValueError, match="expects 1 input channel"):
        layer.compute_output_shape((None, 6, 6, 2))


def test_unknown_or_zero_channels():
    with pytest.raises(ValueError, match=r"needs a known, positive channel count; got input shape \(1, 5, 5, 0\)"):
        conv()(np.zeros((1, 5, 5, 0)))


@pytest.mark.parametrize("x, message", [
    (np.zeros((1, 5, 5, 1), complex), r"expects real numbers, got complex dtype complex128; pass np\.real\(x\)"),
    (np.full((1, 5, 5, 1), "a"), r"expects a numeric array, got dtype <U1; convert it with "
                                 r"np\.asarray\(x, dtype='float32'\)"),
    (np.zeros((1, 5, 5, 1), object), r"expects a numeric array, got dtype object"),
    ([[[["a"]]]], r"expects a numeric array, got dtype <U1"),
    (None, r"expects a numeric array, got dtype object"),
    ([[[[1.0]], [[1.0, 2.0]]]], r"expects a numeric array, got list: setting an array element with a sequence"),
])
def test_non_real_inputs_are_type_errors(x, message):
    with pytest.raises(TypeError, match=r"Conv2D 'c' " + message):
        conv()(x)


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint8, np.bool_, np.float16, np.float64])
def test_integer_bool_and_other_float_inputs_are_cast(dtype, rng):
    x = (rng.random((2, 6, 6, 1)) * 4).astype(dtype)
    layer = conv(seed=0)
    y = layer(x)
    assert y.dtype == np.float32  # the layer's dtype, as Keras autocasts
    np.testing.assert_array_equal(y, layer(x.astype(np.float32)))
    dx = layer.backward(np.ones_like(y))
    assert dx.dtype == np.float32 and dx.shape == x.shape


# ---------------------------------------------------------------------------- geometry


@pytest.mark.parametrize("kwargs, shape, message", [
    (dict(kernel_size=7), (1, 5, 5, 1), "the kernel (span 7x7 with dilation (1, 1)) is larger than the padded input "
                                        "(5x5 from 5x5), so the output size would be 0."),
    (dict(kernel_size=3, dilation_rate=3), (1, 5, 5, 1), "the kernel (span 7x7 with dilation (3, 3)) is larger "
                                                         "than the padded input (5x5 from 5x5)"),
    (dict(kernel_size=(2, 6), padding=((0, 0), (1, 0))), (1, 5, 4, 1), "(span 2x6 with dilation (1, 1)) is larger "
                                                                       "than the padded input (5x5 from 5x4)"),
])
def test_kernel_larger_than_padded_input(kwargs, shape, message):
    with pytest.raises(ValueError, match=re.escape(message) + ".*Use padding='same'"):
        conv(**kwargs)(np.zeros(shape))
    with pytest.raises(ValueError, match="output size would be 0"):
        conv(**kwargs).compute_output_shape((None, *shape[1:]))


def test_same_padding_accepts_a_kernel_larger_than_the_input():
    assert conv(kernel_size=7, padding="same")(np.zeros((1, 5, 5, 1))).shape == (1, 5, 5, 2)


def test_empty_spatial_axis():
    with pytest.raises(ValueError, match=r"got an empty spatial axis in input shape \(1, 0, 3, 1\)"):
        conv(padding="same")(np.zeros((1, 0, 3, 1)))


@pytest.mark.parametrize("padding_mode, kwargs, shape, limit", [
    ("reflect", dict(kernel_size=7, padding="same"), (1, 3, 3, 1), 2),
    ("reflect", dict(kernel_size=1, padding=3), (1, 3, 3, 1), 2),
    ("reflect", dict(kernel_size=1, padding=((0, 0), (4, 0))), (1, 3, 4, 1), 3),
    ("circular", dict(kernel_size=1, padding=4), (1, 3, 3, 1), 3),
])
def test_reflect_or_circular_padding_larger_than_the_input(padding_mode, kwargs, shape, limit):
    with pytest.raises(ValueError, match=rf"padding_mode='{padding_mode}' needs each pad <= {limit} for an axis of "
                                         rf"size {limit + (padding_mode == 'reflect')}.*Use 'zeros' or 'replicate'"):
        conv(padding_mode=padding_mode, **kwargs)(np.zeros(shape))


def test_reflect_padding_up_to_the_limit_works():
    assert conv(kernel_size=1, padding=2, padding_mode="reflect")(np.zeros((1, 3, 3, 1))).shape == (1, 7, 7, 2)
    assert conv(kernel_size=1, padding=3, padding_mode="circular")(np.zeros((1, 3, 3, 1))).shape == (1, 9, 9, 2)


# ---------------------------------------------------------------------------- constructor arguments


@pytest.mark.parametrize("filters", [0, -1])
def test_filters_not_positive(filters):
    with pytest.raises(ValueError, match=rf"Conv2D 'c': filters must be a positive int \(the number of output "
                                         rf"channels\), got filters={filters}\."):
        conv(filters=filters)


@pytest.mark.parametrize("filters", [2.0, None, "8", True])
def test_filters_not_an_int(filters):
    with pytest.raises(TypeError, match=rf"filters must be a positive int, got {re.escape(repr(filters))}\."):
        conv(filters=filters)


@pytest.mark.parametrize("name", ["kernel_size", "strides", "dilation_rate"])
@pytest.mark.parametrize("value", [0, -2, (3, 0), [1, -1]])
def test_window_arguments_below_one(name, value):
    with pytest.raises(ValueError, match=rf"Conv2D 'c': {name} must be >= 1 on every axis, got "
                                         rf"{re.escape(repr(value))}\."):
        conv(**{name: value})


@pytest.mark.parametrize("name", ["kernel_size", "strides", "dilation_rate"])
@pytest.mark.parametrize("value", [(3,), (1, 1, 1), []])
def test_window_arguments_wrong_length(name, value):
    with pytest.raises(ValueError, match=rf"{name} must have 2 elements \(one per spatial axis\), got "
                                         rf"{re.escape(repr(value))} with {len(value)}\. Pass an int"):
        conv(**{name: value})


@pytest.mark.parametrize("name", ["kernel_size", "strides", "dilation_rate"])
@pytest.mark.parametrize("value, message", [
    (2.5, "must be an int or a tuple of 2 ints, got 2.5."),
    ("3", "must be an int or a tuple of 2 ints, got '3'."),
    ((2, 1.5), "must contain only ints, got (2, 1.5)."),
])
def test_window_arguments_wrong_type(name, value, message):
    with pytest.raises(TypeError, match=re.escape(f"{name} {message}")):
        conv(**{name: value})


@pytest.mark.parametrize("padding", ["full", "SAMEE", "causal"])
def test_unknown_padding_name_lists_valid_ones(padding):
    with pytest.raises(ValueError, match=re.escape(
            f"padding must be one of 'valid', 'same', an int, (pad_h, pad_w) or ((top, bottom), (left, right)); "
            f"got {padding!r}.")):
        conv(padding=padding)


@pytest.mark.parametrize("padding", [-1, (1, 2, 3), ((1, 2), (3,)), ((1, -2), (0, 0)), True, 1.5])
def test_bad_explicit_padding(padding):
    with pytest.raises(ValueError, match=re.escape(
            "explicit padding must be an int, (pad_h, pad_w) or ((top, bottom), (left, right)) of non-negative "
            f"ints; got {padding!r}.")):
        conv(padding=padding)


@pytest.mark.parametrize("padding_mode", ["mirror", "constant", None, 0])
def test_unknown_padding_mode_lists_valid_ones(padding_mode):
    with pytest.raises(ValueError, match=re.escape(
            f"padding_mode must be one of 'zeros', 'reflect', 'replicate', 'circular'; got {padding_mode!r}.")):
        conv(padding_mode=padding_mode)


def test_unknown_data_format():
    with pytest.raises(ValueError, match=r"data_format must be 'channels_last' or 'channels_first', got 'NHWC'\."):
        conv(data_format="NHWC")


@pytest.mark.parametrize("activation", ["relux", "ReLU6x", "gelu_fancy"])
def test_unknown_activation_lists_valid_names(activation):
    with pytest.raises(ValueError, match=re.escape(f"unknown activation {activation!r}; valid names: "
                                                   f"{VALID_ACTIVATIONS}.")):
        conv(activation=activation)


def test_undifferentiable_callable_activation():
    with pytest.raises(TypeError, match=r"is a callable convlayer cannot differentiate; use a name \(elu, "):
        conv(activation=lambda t: t * 2)


@pytest.mark.parametrize("what", ["kernel_initializer", "bias_initializer"])
def test_unknown_initializer_lists_valid_names(what):
    with pytest.raises(ValueError, match=re.escape(f"unknown {what} 'glorot'; valid names: {VALID_INITIALIZERS}.")):
        conv(**{what: "glorot"})


@pytest.mark.parametrize("what", ["kernel_regularizer", "bias_regularizer", "activity_regularizer"])
def test_unknown_regularizer_lists_valid_names(what):
    with pytest.raises(ValueError, match=re.escape(f"unknown {what} 'l3'; valid names: l1, l2, l1_l2.")):
        conv(**{what: "l3"})


@pytest.mark.parametrize("what", ["kernel_constraint", "bias_constraint"])
def test_unknown_constraint_lists_valid_names(what):
    with pytest.raises(ValueError, match=re.escape(
            f"unknown {what} 'maxnorm'; valid names: max_norm, non_neg, unit_norm, min_max_norm.")):
        conv(**{what: "maxnorm"})


@pytest.mark.parametrize("dtype", ["int32", "float16", "complex64"])
def test_unsupported_layer_dtype(dtype):
    with pytest.raises(TypeError, match=rf"Conv2D 'c': dtype must be 'float32' or 'float64', got '{dtype}'\."):
        conv(dtype=dtype)


@pytest.mark.parametrize("seed", [-1, 1.5, "0"])
def test_bad_seed(seed):
    with pytest.raises(TypeError, match=rf"Conv2D 'c': seed must be None, a non-negative int or an "
                                        rf"np\.random\.Generator, got {re.escape(repr(seed))}\."):
        conv(seed=seed)


def test_use_bias_must_be_bool():
    with pytest.raises(TypeError, match=r"use_bias must be True or False, got 1\."):
        conv(use_bias=1)


# ---------------------------------------------------------------------------- groups


def test_groups_not_dividing_filters():
    with pytest.raises(ValueError, match=r"Conv2D 'c': filters=3 must be divisible by groups=2; choose groups among "
                                         r"the divisors of 3\."):
        conv(filters=3, groups=2)


def test_groups_not_dividing_channels():
    layer = conv(filters=4, groups=2)
    with pytest.raises(ValueError, match=r"Conv2D 'c': input channels \(3\) must be divisible by groups=2\."):
        layer(np.zeros((1, 5, 5, 3)))


@pytest.mark.parametrize("groups", [0, -2, 1.0, True])
def test_groups_not_a_positive_int(groups):
    with pytest.raises(ValueError, match=rf"groups must be a positive int, got {re.escape(repr(groups))}\."):
        conv(groups=groups)


# ---------------------------------------------------------------------------- weights and backward


def test_set_weights_before_build():
    with pytest.raises(ValueError, match=re.escape("Conv2D 'c' has no weights yet: call it on an input (or "
                                                   "build(input_shape)) before set_weights.")):
        conv().set_weights([np.zeros((3, 3, 1, 2)), np.zeros(2)])


@pytest.mark.parametrize("weights, message", [
    ([np.zeros((3, 3, 2, 2)), np.zeros(2)], "expects kernel of shape (3, 3, 1, 2), got (3, 3, 2, 2)."),
    ([np.zeros((2, 3, 3, 1)), np.zeros(2)], "expects kernel of shape (3, 3, 1, 2), got (2, 3, 3, 1)."),
    ([np.zeros((3, 3, 1, 2)), np.zeros(3)], "expects bias of shape (2,), got (3,)."),
    ([np.zeros((3, 3, 1, 2)), np.zeros((1, 2))], "expects bias of shape (2,), got (1, 2)."),
    ([np.zeros((3, 3, 1, 2))], "expects 2 weight arrays (kernel, bias), got 1."),
    ([np.zeros((3, 3, 1, 2)), np.zeros(2), np.zeros(2)], "expects 2 weight arrays (kernel, bias), got 3."),
])
def test_set_weights_wrong_shapes(weights, message):
    layer = built()
    before = layer.get_weights()
    with pytest.raises(ValueError, match=re.escape("Conv2D 'c' " + message)):
        layer.set_weights(weights)
    for old, new in zip(before, layer.get_weights()):  # nothing was half-assigned
        np.testing.assert_array_equal(old, new)


def test_set_weights_without_bias_expects_one_array():
    layer = built(use_bias=False)
    with pytest.raises(ValueError, match=re.escape("expects 1 weight arrays (kernel), got 2.")):
        layer.set_weights([np.zeros((3, 3, 1, 2)), np.zeros(2)])


def test_set_weights_complex_is_a_type_error():
    with pytest.raises(TypeError, match=r"expects a real numeric kernel, got dtype complex128\."):
        built().set_weights([np.zeros((3, 3, 1, 2), complex), np.zeros(2)])


def test_backward_before_forward():
    message = re.escape("Conv2D 'c' backward() called before a forward call that kept its cache; call the layer on "
                        "an input first (with keep_cache=True).")
    with pytest.raises(RuntimeError, match=message):
        conv().backward(np.zeros((1, 4, 4, 2)))
    layer = conv()
    layer.build((1, 6, 6, 1))
    with pytest.raises(RuntimeError, match=message):
        layer.backward(np.zeros((1, 4, 4, 2)))
    layer(np.zeros((1, 6, 6, 1)), keep_cache=False)  # inference calls keep nothing to differentiate
    with pytest.raises(RuntimeError, match=message):
        layer.backward(np.zeros((1, 4, 4, 2)))


@pytest.mark.parametrize("dy_shape", [(1, 4, 4, 3), (1, 6, 6, 2), (4, 4, 2), (2, 4, 4, 2)])
def test_backward_with_dy_of_wrong_shape(dy_shape):
    layer = built((1, 6, 6, 1))
    with pytest.raises(ValueError, match=re.escape(f"Conv2D 'c' backward expects dy of the output's shape "
                                                   f"(1, 4, 4, 2), got {dy_shape}.")):
        layer.backward(np.zeros(dy_shape))


def test_gradients_before_backward():
    message = r"Conv2D 'c' has no gradients yet: call backward\(dy\) after a forward call\."
    with pytest.raises(ValueError, match=message):
        conv().get_gradients()
    with pytest.raises(ValueError, match=message):
        built().get_gradients()


# ---------------------------------------------------------------------------- functional API


