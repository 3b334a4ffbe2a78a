"""The lesson's worked examples, with every expected number computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from convlayer.functional.shapes import conv_output_size, same_padding
from convlayer.layers import Conv2D


def conv_with(kernel_2d, bias, x_2d, **kwargs) -> tuple[Conv2D, np.ndarray]:
    """One-channel, one-filter Conv2D with the given weights, applied to one 2-D image."""
    kernel_2d = np.asarray(kernel_2d, dtype=np.float32)
    layer = Conv2D(1, kernel_2d.shape, **kwargs)
    x = np.asarray(x_2d, dtype=np.float32)[None, :, :, None]  # (1, H, W, 1)
    layer.build(x.shape)
    layer.set_weights([kernel_2d[:, :, None, None], np.array([bias], dtype=np.float32)])
    return layer, layer(x)[0, :, :, 0]


def test_3x3_kernel_is_a_dot_product_plus_bias():
    x = [[1, 2, 0],
         [0, 1, 3],
         [4, 1, 2]]
    kernel = [[1, 0, -1],
              [2, 1, 0],
              [0, -1, 3]]
    # row 0: 1*1 + 2*0 + 0*(-1) = 1;  row 1: 0*2 + 1*1 + 3*0 = 1;  row 2: 4*0 + 1*(-1) + 2*3 = 5
    # 1 + 1 + 5 = 7, plus the bias 0.5
    _, y = conv_with(kernel, 0.5, x)
    assert y.shape == (1, 1)
    assert y[0, 0] == 7.5
    # 'same' keeps 3x3, and its centre pixel sees exactly the same window
    _, y_same = conv_with(kernel, 0.5, x, padding="same")
    assert y_same.shape == (3, 3)
    assert y_same[1, 1] == 7.5
    # no flip: this is cross-correlation, like TensorFlow and PyTorch (a flipped kernel would give 6.5)
    assert y_same[1, 1] != 0.5 + np.sum(np.asarray(x) * np.flip(kernel))


def test_stride_2_on_5x5_with_3x3_kernel_valid():
    x = np.arange(25).reshape(5, 5)  # x[r, c] = 5r + c
    kernel = [[1, 0, 0],
              [0, 0, 0],
              [0, 0, 2]]  # output = x[r, c] + 2 * x[r + 2, c + 2] for window corner (r, c)
    assert conv_output_size(5, 3, 2, 1, (0, 0)) == 2  # floor((5 - 3) / 2) + 1
    layer, y = conv_with(kernel, 0.0, x, strides=2)
    # corners (0,0), (0,2), (2,0), (2,2):
    #   0 + 2*12 = 24,   2 + 2*14 = 30,   10 + 2*22 = 54,   12 + 2*24 = 60
    np.testing.assert_array_equal(y, [[24, 30], [54, 60]])
    assert layer.padding_amounts((1, 5, 5, 1)) == ((0, 0), (0, 0))


def test_2x2_kernel_stride_2_on_5x5_valid_ignores_last_row_and_column():
    x = np.arange(25).reshape(5, 5).astype(np.float32)
    ones = np.ones((2, 2))
    # window (r, c): x[r,c] + x[r,c+1] + x[r+1,c] + x[r+1,c+1]
    #   (0,0): 0+1+5+6 = 12   (0,2): 2+3+7+8 = 20   (2,0): 10+11+15+16 = 52   (2,2): 12+13+17+18 = 60
    layer, y = conv_with(ones, 0.0, x, strides=2, padding="valid")
    np.testing.assert_array_equal(y, [[12, 20], [52, 60]])
    assert layer.compute_output_shape((None, 5, 5, 1)) == (None, 2, 2, 1)
    changed = x.copy()
    changed[4, :] = 1000  # the last row and column are never read
    changed[:, 4] = -1000
    _, y_changed = conv_with(ones, 0.0, changed, strides=2, padding="valid")
    np.testing.assert_array_equal(y_changed, y)


def test_2x2_kernel_stride_2_on_5x5_same_pads_one_row_bottom_one_column_right():
    x = np.arange(25).reshape(5, 5)
    # out = ceil(5 / 2) = 3; total padding = (3 - 1) * 2 + 2 - 5 = 1, and the odd one goes to the end
    assert same_padding(5, 2, 2) == (0, 1)
    layer, y = conv_with(np.ones((2, 2)), 0.0, x, strides=2, padding="same")
    assert layer.padding_amounts((1, 5, 5, 1)) == ((0, 1), (0, 1))
    # the last column / row windows read one real column / row and one zero:
    #   (0,4): 4+9 = 13   (2,4): 14+19 = 33   (4,0): 20+21 = 41   (4,2): 22+23 = 45   (4,4): 24
    np.testing.assert_array_equal(y, [[12, 20, 13],
                                      [52, 60, 33],
                                      [41, 45, 24]])


@pytest.mark.parametrize("batch", [1, 3])
def test_lesson_conv1_layer(batch, rng):
    conv1 = Conv2D(filters=32, kernel_size=[5, 5], padding="same", activation="relu", name="conv1", seed=0)
    assert conv1.compute_output_shape((None, 28, 28, 1)) == (None, 28, 28, 32)
    images = rng.random((batch, 28, 28, 1)).astype(np.float32)
    y = conv1(images)
    assert y.shape == (batch, 28, 28, 32)
    assert y.dtype == np.float32
    assert conv1.name == "conv1"
    assert conv1.kernel.shape == (5, 5, 1, 32) and conv1.bias.shape == (32,)
    assert conv1.count_params() == 5 * 5 * 1 * 32 + 32  # 832
    assert conv1.padding_amounts(images.shape) == ((2, 2), (2, 2))  # (5 - 1) / 2 on every side
    assert (y >= 0).all() and (y > 0).any()  # relu
    # pixel (10, 12) of filter 7 by hand: the 5x5 window centred there, times the kernel, plus the bias, relu'd
    window = images[0, 8:13, 10:15, 0]
    expected = max(float(np.sum(window * conv1.kernel[:, :, 0, 7]) + conv1.bias[7]), 0.0)
    assert y[0, 10, 12, 7] == pytest.approx(expected, rel=1e-5, abs=1e-6)
