"""The compiled loops (numba) and the NumPy code they replace give the same results.

The oracle tests run with the compiled loops on; here each loop is checked against the
NumPy path, so both are proven: col2im through whole convolution backward passes, max
pooling with ties, NaN, padding and overlapping windows.
"""

import numpy as np
import pytest

from convlayer.functional import conv2d_backward, conv2d_forward, kernels
from convlayer.functional.pool import max_pool2d_backward, max_pool2d_forward

assert kernels.AVAILABLE, "numba is part of the test install (convlayer[fast]); the kernels must be tested"


@pytest.fixture
def both():
    """Run a function with the compiled loops off, then on; return both results."""
    before = kernels.enabled()

    def run(fn):
        out = []
        for flag in (False, True):
            kernels.set_enabled(flag)
            out.append(fn())
        return out

    yield run
    kernels.set_enabled(before)


@pytest.mark.parametrize("kernel, strides, padding, dilation, groups", [
    ((3, 3, 16, 8), (2, 2), ((0, 1), (0, 1)), (1, 1), 1),  # the strided benchmark layer, small
    ((5, 5, 8, 6), (1, 1), ((2, 2), (2, 2)), (1, 1), 1),
    ((2, 3, 3, 4), (3, 2), ((1, 0), (2, 1)), (2, 1), 1),
    ((3, 3, 2, 6), (1, 2), ((1, 1), (0, 2)), (1, 2), 3),
])
def test_conv_backward_is_the_same_with_and_without_compiled_loops(both, kernel, strides, padding, dilation, groups):
    rng = np.random.default_rng(0)
    c_in = kernel[2] * groups
    x = rng.standard_normal((5, 11, 10, c_in), dtype=np.float32)
    w = rng.standard_normal(kernel, dtype=np.float32)
    y, cache = conv2d_forward(x, w, None, strides=strides, padding=padding, dilation=dilation, groups=groups,
                              max_chunk_bytes=3000, algorithm="im2col")  # col2im (Winograd: test_winograd.py)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    plain, compiled = both(lambda: conv2d_backward(dy, cache)[0])
    np.testing.assert_allclose(compiled, plain, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel, strides, padding, dilation", [
    ((3, 3, 16, 8), (2, 2), ((0, 1), (0, 1)), (1, 1)),  # the strided benchmark layer, small
    ((5, 5, 8, 6), (1, 1), ((2, 2), (2, 2)), (1, 1)),
    ((2, 3, 3, 4), (3, 2), ((1, 0), (2, 1)), (2, 1)),  # vertical dilation: compiled; (1, 2) would not be
    ((3, 2, 4, 5), (1, 1), ((0, 0), (0, 0)), (1, 1)),  # no padding: the (strided, below) input itself
])
def test_im2col_copy_is_the_same_with_and_without_compiled_loops(both, kernel, strides, padding, dilation):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 11, 10, kernel[2]), dtype=np.float32)
    w = rng.standard_normal(kernel, dtype=np.float32)

    def run(x):
        y, cache = conv2d_forward(x, w, None, strides=strides, padding=padding, dilation=dilation,
                                  max_chunk_bytes=3000, algorithm="im2col")
        dkernel = conv2d_backward(np.ones_like(y), cache, need_dx=False)[1]
        return y, dkernel

    for inputs in (x, np.asfortranarray(x)):  # a non-contiguous input takes NumPy's copy either way
        (y_plain, dk_plain), (y_compiled, dk_compiled) = both(lambda: run(inputs))
        np.testing.assert_array_equal(y_compiled, y_plain)  # the same windows, so the same GEMMs
        np.testing.assert_array_equal(dk_compiled, dk_plain)


def _pool_input(rng, shape):
    x = np.maximum(rng.standard_normal(shape, dtype=np.float32), 0)  # ReLU output: many tied zeros
    x[0, :2, :2, 0] = 0.5  # a window of equal values
    x[1, 0, 0, 1] = np.nan
    return x


@pytest.mark.parametrize("pool, strides, padding", [
    ((2, 2), (2, 2), ((0, 0), (0, 0))),  # the lesson's pooling: windows tile the input
    ((3, 3), (2, 2), ((1, 1), (1, 1))),  # overlapping, padded
    ((2, 3), (3, 2), ((0, 1), (1, 0))),  # gaps between windows
])
def test_max_pooling_is_the_same_with_and_without_compiled_loops(both, pool, strides, padding):
    rng = np.random.default_rng(1)
    x = _pool_input(rng, (3, 9, 10, 4))

    def forward_backward():
        y, cache = max_pool2d_forward(x, pool, strides, padding)
        dy = np.random.default_rng(2).standard_normal(y.shape, dtype=np.float32)
        return y, max_pool2d_backward(dy, cache)

    (y0, dx0), (y1, dx1) = both(forward_backward)
    np.testing.assert_array_equal(y1, y0)  # NaN compares equal here, and must be at the same place
    if strides[0] >= pool[0] and strides[1] >= pool[1]:
        np.testing.assert_array_equal(dx1, dx0)  # each input gets at most one window's gradient
    else:  # overlapping windows sum their gradients, in another order
        np.testing.assert_allclose(dx1, dx0, rtol=1e-6, atol=1e-7)
    assert np.isnan(y1).any()


def test_the_switch_refuses_to_enable_without_numba(monkeypatch):
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    with pytest.raises(RuntimeError, match="need numba"):
        kernels.set_enabled(True)


SPECIAL = np.array([-1.5, 0.0, -0.0, 2.0, np.nan, np.inf, -np.inf, 1e-40, -1e-40], np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_is_numpys_maximum_bit_for_bit(both, dtype, rng):
    from convlayer.functional.activations import relu

    x = np.concatenate([SPECIAL.astype(dtype), rng.standard_normal(1000).astype(dtype)]).reshape(-1, 1, 1)
    expected = np.maximum(x, 0)
    fresh, into_other = both(lambda: relu.forward(x)), both(lambda: relu.forward(x, out=np.empty_like(x)))
    in_place = both(lambda: (lambda a: relu.forward(a, out=a))(x.copy()))
    for result in (*fresh, *into_other, *in_place):
        np.testing.assert_array_equal(result, expected)
        np.testing.assert_array_equal(np.signbit(result), np.signbit(expected))  # -0.0 becomes 0.0, as NumPy


def test_relu_in_place_and_on_views(both, rng):
    from convlayer.functional.activations import relu

    x = rng.standard_normal((6, 5, 4)).astype(np.float32)
    expected = np.maximum(x, 0)

    def in_place():
        a = x.copy()
        assert relu.forward(a, out=a) is a
        return a

    def strided():  # not contiguous: the NumPy path
        a = np.swapaxes(x.copy(), 0, 2)
        return np.swapaxes(relu.forward(a, out=a), 0, 2)

    def overlapping():  # out shifted over x by one value: the NumPy path (it must not read what it wrote)
        buf = np.concatenate([x.ravel(), [0]]).astype(np.float32)
        return relu.forward(buf[1:], out=buf[:-1]).reshape(x.shape)

    for result in (*both(in_place), *both(strided)):
        np.testing.assert_array_equal(result, expected)
    shifted = np.maximum(np.concatenate([x.ravel()[1:], [0]]), 0).reshape(x.shape)
    for result in both(overlapping):
        np.testing.assert_array_equal(result, shifted)


def test_relu_gradient_is_numpys(both, rng):
    from convlayer.functional.activations import relu

    y = np.maximum(np.concatenate([SPECIAL, rng.standard_normal(500).astype(np.float32)]), 0)
    dy = np.concatenate([SPECIAL[::-1], rng.standard_normal(500).astype(np.float32)])
    with np.errstate(invalid="ignore"):  # inf * 0 is NaN, in both paths
        expected = dy * (y > 0)
        results = both(lambda: relu.backward(dy, None, y))
    for result in results:
        np.testing.assert_array_equal(result, expected)
        np.testing.assert_array_equal(np.signbit(result), np.signbit(expected))
