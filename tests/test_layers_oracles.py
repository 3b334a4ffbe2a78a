"""MaxPooling2D, AveragePooling2D, Dense, Dropout, Flatten, Reshape, Activation against TensorFlow/PyTorch."""

import numpy as np
import pytest
import tensorflow as tf
import torch

from convlayer.layers import (Activation, AveragePooling2D, Dense, Dropout, Flatten, MaxPooling2D, Reshape)

RTOL = 1e-5


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-12)


def tf_forward_backward(tf_layer, x, dy, training=False):
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = tf_layer(xt, training=training)
        loss = tf.reduce_sum(y * tf.constant(dy))
    grads = tape.gradient(loss, [xt, *tf_layer.trainable_variables])
    return y.numpy(), [g.numpy() for g in grads]


@pytest.mark.parametrize("pool, strides, padding, shape", [
    (2, 2, "valid", (3, 8, 8, 4)),
    (2, 2, "valid", (2, 7, 9, 3)),  # odd sizes: last row/col dropped
    (2, 2, "same", (2, 7, 9, 3)),  # odd sizes: padded bottom/right
    (3, 2, "same", (2, 9, 8, 2)),  # overlapping windows
    ((3, 2), (1, 2), "valid", (1, 6, 7, 2)),
    (3, 3, "same", (2, 10, 11, 3)),
])
@pytest.mark.parametrize("cls, tf_cls", [(MaxPooling2D, tf.keras.layers.MaxPooling2D),
                                         (AveragePooling2D, tf.keras.layers.AveragePooling2D)])
def test_pooling_matches_tensorflow(cls, tf_cls, pool, strides, padding, shape, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    ours = cls(pool, strides, padding)
    y = ours(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = ours.backward(dy)
    y_ref, (dx_ref,) = tf_forward_backward(tf_cls(pool, strides, padding), x, dy)
    assert y.shape == y_ref.shape == ours.compute_output_shape(shape)
    assert rel_err(y, y_ref) <= RTOL
    assert rel_err(dx, dx_ref) <= RTOL


def test_max_pool_ties_route_to_the_first_maximum_like_tf_and_torch(rng):
    # ReLU outputs make all-zero windows common: the gradient must go to one pixel, not all four.
    x = np.maximum(rng.standard_normal((2, 6, 6, 3)), 0).astype(np.float32)
    x[:, :2, :2] = 0.0
    ours = MaxPooling2D(2)
    y = ours(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = ours.backward(dy)
    _, (dx_tf,) = tf_forward_backward(tf.keras.layers.MaxPooling2D(2), x, dy)
    xt = torch.tensor(x.transpose(0, 3, 1, 2)).requires_grad_()
    torch.nn.functional.max_pool2d(xt, 2).backward(torch.tensor(dy.transpose(0, 3, 1, 2)))
    np.testing.assert_allclose(dx, dx_tf, rtol=1e-6)
    np.testing.assert_allclose(dx, xt.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-6)
    assert np.count_nonzero(dx[:, :2, :2]) == np.count_nonzero(dy[:, 0, 0])


def test_pooling_channels_first_matches_channels_last(rng):
    x = rng.standard_normal((2, 7, 9, 3)).astype(np.float32)
    last, first = MaxPooling2D(3, 2, "same"), MaxPooling2D(3, 2, "same", data_format="channels_first")
    y = last(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_array_equal(first(x.transpose(0, 3, 1, 2)), y.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(first.backward(dy.transpose(0, 3, 1, 2)), last.backward(dy).transpose(0, 3, 1, 2))


@pytest.mark.parametrize("activation", [None, "relu", "sigmoid", "tanh", "softmax", "elu", "selu", "softplus",
                                        "softsign", "silu", "relu6", "exponential"])
def test_dense_matches_tensorflow(activation, rng):
    x = rng.standard_normal((5, 7)).astype(np.float32)
    ours = Dense(4, activation=activation, bias_initializer="random_normal", seed=3)
    y = ours(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = ours.backward(dy)
    dkernel, dbias = ours.get_gradients()
    ref = tf.keras.layers.Dense(4, activation=activation)
    ref.build((None, 7))
    ref.set_weights(ours.get_weights())
    y_ref, (dx_ref, dk_ref, db_ref) = tf_forward_backward(ref, x, dy)
    for a, b in ((y, y_ref), (dx, dx_ref), (dkernel, dk_ref), (dbias, db_ref)):
        assert rel_err(a, b) <= 1e-5


def test_dense_on_rank3_input_matches_tensorflow(rng):
    x = rng.standard_normal((2, 3, 7)).astype(np.float32)
    ours = Dense(5, seed=0)
    y = ours(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = ours.backward(dy)
    ref = tf.keras.layers.Dense(5)
    ref.build((None, 3, 7))
    ref.set_weights(ours.get_weights())
    y_ref, (dx_ref, dk_ref, _) = tf_forward_backward(ref, x, dy)
    assert rel_err(y, y_ref) <= RTOL and rel_err(dx, dx_ref) <= RTOL
    assert rel_err(ours.get_gradients()[0], dk_ref) <= RTOL


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "softmax", "elu", "selu", "softplus", "silu"])
def test_activation_layer_matches_tensorflow(name, rng):
    x = (3 * rng.standard_normal((4, 6))).astype(np.float32)
    ours = Activation(name)
    y = ours(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    y_ref, (dx_ref,) = tf_forward_backward(tf.keras.layers.Activation(name), x, dy)
    assert rel_err(y, y_ref) <= RTOL
    assert rel_err(ours.backward(dy), dx_ref) <= 1e-5


def test_flatten_and_reshape_match_tensorflow(rng):
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    np.testing.assert_array_equal(Flatten()(x), tf.keras.layers.Flatten()(x).numpy())
    np.testing.assert_array_equal(Flatten(data_format="channels_first")(x),
                                  tf.keras.layers.Flatten(data_format="channels_first")(x).numpy())
    np.testing.assert_array_equal(Reshape((4, -1))(x), tf.keras.layers.Reshape((4, -1))(x).numpy())
    flat = Flatten(data_format="channels_first")
    y = flat(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    _, (dx_ref,) = tf_forward_backward(tf.keras.layers.Flatten(data_format="channels_first"), x, dy)
    np.testing.assert_array_equal(flat.backward(dy), dx_ref)
    assert Reshape((5, 12)).compute_output_shape((None, 3, 4, 5)) == (None, 5, 12)


def test_dropout_scales_kept_units_and_is_identity_at_inference(rng):
    x = np.ones((200, 50), np.float32)
    layer = Dropout(0.4, seed=1)
    np.testing.assert_array_equal(layer(x, training=False), x)
    y = layer(x, training=True)
    kept = y != 0
    assert 0.55 < kept.mean() < 0.65
    np.testing.assert_allclose(y[kept], 1 / 0.6, rtol=1e-6)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_allclose(layer.backward(dy), dy * y, rtol=1e-6)  # same mask, same scale
    # Seeded: the same seed drops the same units.
    np.testing.assert_array_equal(Dropout(0.4, seed=1)(x, training=True), y)


def test_layer_errors_are_clear():
    with pytest.raises(ValueError, match="units must be a positive int"):
        Dense(0)
    with pytest.raises(ValueError, match=r"rate must be a number in \[0, 1\)"):
        Dropout(1.0)
    with pytest.raises(ValueError, match="expects 7 input features"):
        layer = Dense(3)
        layer(np.zeros((2, 7)))
        layer(np.zeros((2, 8)))
    with pytest.raises(ValueError, match="output size would be 0"):
        MaxPooling2D(4)(np.zeros((1, 3, 3, 1)))
    with pytest.raises(ValueError, match="cannot reshape"):
        Reshape((7,))(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="padding must be 'valid' or 'same'"):
        MaxPooling2D(2, padding=1)
    with pytest.raises(RuntimeError, match="backward\\(\\) called before a forward"):
        Dense(3).backward(np.zeros((1, 3)))
