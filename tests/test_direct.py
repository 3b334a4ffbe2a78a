"""The direct convolution (functional/direct.py): register tiles, width remainders, blocks, epilogue and then=.

Its oracle tests against TensorFlow and PyTorch are in test_conv_oracles.py (every grid case
again with algorithm='direct'); here it is checked against float64 im2col on what the grid
does not vary: the filters of each register tile, images split into several blocks, output
widths that leave a remainder after the P-pixel tiles, and inference's fused epilogue and then=.
"""

from __future__ import annotations

import numpy as np
import pytest

from convlayer.functional import conv2d_backward, conv2d_forward, direct, kernels
from convlayer.functional.conv import choose_algorithm

pytestmark = pytest.mark.skipif(not kernels.enabled(), reason="the direct convolution needs numba (CONVLAYER_NUMBA=0)")


def reference(x, kernel, bias, **geometry):
    y, _ = conv2d_forward(x.astype(np.float64), kernel.astype(np.float64), bias.astype(np.float64),
                          algorithm="im2col", keep_cache=False, **geometry)
    return y


@pytest.mark.parametrize("filters", [8, 16, 24, 32, 64])
@pytest.mark.parametrize("width", [1, 2, 5, 9])  # remainders after tiles of 2, 4 and 8 pixels
@pytest.mark.parametrize("strides, dilation", [((1, 1), (1, 1)), ((2, 3), (1, 1)), ((1, 1), (2, 3))])
def test_direct_forward_equals_float64_im2col(rng, filters, width, strides, dilation):
    x = rng.standard_normal((3, 7, width + 4, 3)).astype(np.float32)
    kernel = rng.standard_normal((3, 2, 3, filters)).astype(np.float32)
    bias = rng.standard_normal(filters).astype(np.float32)
    geometry = dict(strides=strides, dilation=dilation, padding=((1, 2), (2, 1)))
    expected = reference(x, kernel, bias, **geometry)
    y, cache = conv2d_forward(x, kernel, bias, algorithm="direct", max_chunk_bytes=1, **geometry)  # a block per image
    assert cache.algorithm == "direct" and y.dtype == np.float32
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


def gradients64(x, kernel, bias, dy, need_dx=True, **geometry):
    _, cache = conv2d_forward(x.astype(np.float64), kernel.astype(np.float64), bias.astype(np.float64),
                              algorithm="im2col", **geometry)
    return conv2d_backward(dy.astype(np.float64), cache, need_dx=need_dx)


@pytest.mark.parametrize("channels, filters", [(8, 8), (16, 32), (24, 16), (32, 24), (64, 8), (1, 32), (3, 16)])
@pytest.mark.parametrize("width", [1, 3, 6, 11])  # remainders after tiles of 2, 4 and 8 output pixels
@pytest.mark.parametrize("strides, dilation, padding", [
    ((1, 1), (1, 1), ((1, 1), (1, 1))),
    ((2, 2), (1, 1), ((0, 1), (0, 1))),  # the strided layer's 'same'
    ((2, 3), (2, 1), ((2, 0), (1, 2))),
])
def test_direct_gradients_equal_float64_im2col(rng, channels, filters, width, strides, dilation, padding):
    """Kernel gradient (tiles of 1-8 taps), bias gradient and input gradient (channels in vectors of 8;
    other channel counts compute the input gradient by im2col, and without it the rest directly)."""
    x = rng.standard_normal((3, 6, width + 3, channels)).astype(np.float32)
    kernel = rng.standard_normal((3, 2, channels, filters)).astype(np.float32)
    bias = rng.standard_normal(filters).astype(np.float32)
    geometry = dict(strides=strides, dilation=dilation, padding=padding)
    y, cache = conv2d_forward(x, kernel, bias, algorithm="direct", **geometry)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    for need_dx in (True, False):
        got = conv2d_backward(dy, cache, need_dx=need_dx)
        want = gradients64(x, kernel, bias, dy, need_dx, **geometry)
        assert (got[0] is None) == (not need_dx)
        for g, w in zip(got, want):
            if w is not None:
                assert g.dtype == np.float32 and g.shape == w.shape
                np.testing.assert_allclose(g, w, rtol=0, atol=1e-5 * np.abs(w).max())


@pytest.mark.parametrize("mode", ["zeros", "reflect"])
def test_direct_fused_epilogue_and_blocks_handed_on(rng, mode):
    x = rng.standard_normal((10, 9, 8, 1)).astype(np.float32)
    kernel = rng.standard_normal((5, 5, 1, 32)).astype(np.float32)
    bias = rng.standard_normal(32).astype(np.float32)
    geometry = dict(padding=((2, 2), (2, 2)), padding_mode=mode)
    expected = np.maximum(reference(x, kernel, bias, **geometry), 0)
    relu = lambda block: np.maximum(block, 0, out=block)  # noqa: E731
    y, _ = conv2d_forward(x, kernel, bias, algorithm="direct", keep_cache=False, epilogue=relu, **geometry)
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-5 * np.abs(expected).max())
    seen = np.full_like(y, np.nan)

    def then(block, n0):
        seen[n0:n0 + len(block)] = block

    out, _ = conv2d_forward(x, kernel, bias, algorithm="direct", keep_cache=False, epilogue=relu, then=then,
                            max_chunk_bytes=3 * 9 * 8 * 32 * 4, **geometry)  # blocks of 3 images
    assert out is None
    np.testing.assert_array_equal(seen, y)


@pytest.mark.parametrize("kernel_shape, groups, dtype, why", [
    ((3, 3, 4, 12), 1, np.float32, "got 12 filters"),
    ((3, 3, 4, 16), 2, np.float32, "got groups=2"),
    ((3, 3, 4, 16), 1, np.float64, "got float64"),
])
def test_direct_refuses_what_it_cannot_compute(kernel_shape, groups, dtype, why):
    with pytest.raises(ValueError, match=f"algorithm='direct' needs numba, float32, groups=1 and a multiple of 8 "
                                         f"filters; {why}. Use algorithm='auto' or 'im2col'."):
        choose_algorithm("direct", kernel_shape, (1, 1), (1, 1), groups, None, dtype)


def test_direct_is_refused_without_numba():
    kernels.set_enabled(False)
    try:
        with pytest.raises(ValueError, match="numba is off"):
            choose_algorithm("direct", (3, 3, 4, 16), (1, 1), (1, 1), 1)
        assert choose_algorithm("auto", (5, 5, 1, 32), (1, 1), (1, 1), 1) == "im2col"
    finally:
        kernels.set_enabled(True)


def test_register_tiles_hold_eight_vectors():
    for filters in (8, 16, 24, 32, 48, 64, 96):
        pixels, groups = direct.register_tile(filters)
        assert pixels * groups == 8 and filters % (direct.LANES * groups) == 0


def test_direct_gradients_are_the_same_bits_for_any_thread_count_and_call(rng):
    """Cores take blocks as they come, yet the kernel gradient's sums are added in a fixed order."""
    from convlayer import parallel

    x = rng.standard_normal((37, 9, 9, 16)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 16, 32)).astype(np.float32)
    y, cache = conv2d_forward(x, kernel, np.zeros(32, np.float32), strides=(2, 2), padding=((0, 1), (0, 1)),
                              algorithm="direct")
    dy = rng.standard_normal(y.shape).astype(np.float32)
    before = parallel.get_num_threads()
    try:
        runs = []
        for threads in (1, 2, 2, 3):
            parallel.set_num_threads(threads)
            runs.append(conv2d_backward(dy, cache))
    finally:
        parallel.set_num_threads(before)
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            np.testing.assert_array_equal(a, b)


def test_direct_backward_applies_the_epilogues_backward_block_by_block(rng):
    """ReLU fused into forward: backward gets dy and the ReLU's backward, and applies it per block."""
    x = rng.standard_normal((9, 8, 8, 8)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 8, 16)).astype(np.float32)
    relu = lambda block: np.maximum(block, 0, out=block)  # noqa: E731
    geometry = dict(padding=((1, 1), (1, 1)))
    outs = {}
    for algorithm in ("direct", "im2col"):
        y, cache = conv2d_forward(x, kernel, np.zeros(16, np.float32), algorithm=algorithm, epilogue=relu, **geometry)
        dy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
        outs[algorithm] = conv2d_backward(dy, cache, epilogue_grad=lambda d, index, y=y: d * (y[index] > 0))
    for got, want in zip(outs["direct"], outs["im2col"]):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())
