"""Winograd convolution: its matrices, its choice, and its results against im2col and the oracles.

The oracle grids in test_conv_oracles.py run every case Winograd applies to through it as
well (against TensorFlow, PyTorch and the naive loops); here: the exact algebra, the
lesson's shapes at full size, the compiled and NumPy transforms, and the errors.
"""

import doctest
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from convlayer.functional import conv2d_backward, conv2d_forward, kernels, winograd
from convlayer.functional.conv import WINOGRAD_MAX_IMAGE_BYTES, WINOGRAD_MIN_CHANNELS, choose_algorithm
from convlayer.layers import Conv2D
from reference import assert_close, conv2d_reference

SIZES = [(m, r) for m in range(1, winograd.MAX_TILE) for r in range(1, winograd.MAX_TILE)
         if 2 <= m + r - 1 <= winograd.MAX_TILE]


@pytest.fixture(params=[True, False], ids=["compiled", "numpy"])
def transforms(request):
    """Run the test with the compiled transforms, then with the NumPy ones."""
    before = kernels.enabled()
    kernels.set_enabled(request.param)
    yield request.param
    kernels.set_enabled(before)


# ---------------------------------------------------------------------------- the matrices


@pytest.mark.parametrize("m, r", SIZES)
def test_matrices_compute_the_correlation(m, r, rng):
    at, g, bt = winograd.transform_matrices(m, r)
    assert at.shape == (m, m + r - 1) and g.shape == (m + r - 1, r) and bt.shape == (m + r - 1, m + r - 1)
    for _ in range(3):
        d, w = rng.standard_normal(m + r - 1), rng.standard_normal(r)
        direct = np.array([w @ d[i:i + r] for i in range(m)])
        np.testing.assert_allclose(at @ ((g @ w) * (bt @ d)), direct, rtol=1e-12, atol=1e-12)


def test_f2x3_is_the_papers():
    """Lavin & Gray print F(2, 3); ours is the same up to the sign of the point at infinity (which cancels)."""
    at, g, bt = (mat.copy() for mat in winograd.transform_matrices(2, 3))
    np.testing.assert_array_equal(g, [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
    at[:, -1] *= -1
    bt[-1] *= -1
    np.testing.assert_array_equal(at, [[1, 1, 1, 0], [0, 1, -1, -1]])
    np.testing.assert_array_equal(bt, [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]])


def test_matrices_are_read_only():
    with pytest.raises(ValueError, match="read-only"):
        winograd.transform_matrices(4, 5)[2][0, 0] = 1


@pytest.mark.parametrize("m, r", [(0, 3), (2, 0), (4, 6), (1, 1)])
def test_matrices_refuse_sizes_without_an_algorithm(m, r):
    with pytest.raises(ValueError, match=r"F\(.*needs m, r >= 1"):
        winograd.transform_matrices(m, r)


@pytest.mark.parametrize("out_size, r", [(14, 5), (28, 5), (1, 3), (7, 7), (10, 1), (9, 2)])
def test_tile_size_minimizes_the_gemm_work(out_size, r):
    m = winograd.tile_size(out_size, r)
    work = lambda m: -(-out_size // m) * (m + r - 1)  # noqa: E731
    assert m + r - 1 <= winograd.MAX_TILE
    assert all(work(m) <= work(other) for other in range(1, winograd.MAX_TILE - r + 2) if other + r - 1 >= 2)


# ---------------------------------------------------------------------------- choosing it


def test_auto_takes_winograd_for_the_lessons_second_layer_and_direct_for_thin_layers():
    compiled = kernels.enabled()
    assert choose_algorithm("auto", (5, 5, 32, 64), (1, 1), (1, 1), 1) == ("winograd" if compiled else "im2col")
    thin = "direct" if compiled else "im2col"
    assert choose_algorithm("auto", (5, 5, 1, 32), (1, 1), (1, 1), 1) == thin  # conv1: one input channel
    assert choose_algorithm("auto", (3, 3, 16, 32), (2, 2), (1, 1), 1) == thin  # the strided layer
    assert choose_algorithm("auto", (5, 5, WINOGRAD_MIN_CHANNELS - 1, 8), (1, 1), (1, 1), 1) == thin
    assert choose_algorithm("auto", (3, 3, 16, 12), (2, 2), (1, 1), 1) == "im2col"  # filters not a multiple of 8
    assert choose_algorithm("auto", (3, 3, 16, 32), (2, 2), (1, 1), 2) == "im2col"  # groups
    assert choose_algorithm("auto", (5, 5, 16, 32), (2, 2), (1, 1), 1) == "im2col"  # 400 taps: GEMM wins
    assert choose_algorithm("auto", (5, 5, 1, 32), (1, 1), (1, 1), 1, None, np.float64) == "im2col"
    assert choose_algorithm("im2col", (5, 5, 32, 64), (1, 1), (1, 1), 1) == "im2col"


def test_auto_keeps_big_images_on_im2col():
    """Winograd holds a whole image's tiles at once; im2col bounds its memory by row bands."""
    kernel_shape = (3, 3, 64, 64)
    assert choose_algorithm("auto", kernel_shape, (1, 1), (1, 1), 1, (56, 56)) == ("winograd" if kernels.enabled()
                                                                                  else "im2col")
    assert choose_algorithm("auto", kernel_shape, (1, 1), (1, 1), 1, (512, 512)) == "im2col"
    assert winograd.tiling((512, 512), (3, 3)).bytes_per_image(64, 64, 4) > WINOGRAD_MAX_IMAGE_BYTES
    assert choose_algorithm("winograd", kernel_shape, (1, 1), (1, 1), 1, (512, 512)) == "winograd"  # if asked


def test_auto_keeps_im2col_without_the_compiled_transforms(transforms):
    expected = "winograd" if transforms else "im2col"  # NumPy's transforms measured slower than im2col
    assert choose_algorithm("auto", (5, 5, 32, 64), (1, 1), (1, 1), 1) == expected


@pytest.mark.parametrize("kernel_shape, strides, dilation, groups", [
    ((3, 3, 4, 4), (2, 1), (1, 1), 1),
    ((3, 3, 4, 4), (1, 1), (2, 2), 1),
    ((3, 3, 2, 4), (1, 1), (1, 1), 2),
    ((8, 3, 4, 4), (1, 1), (1, 1), 1),
    ((1, 1, 4, 4), (1, 1), (1, 1), 1),
])
def test_winograd_refuses_what_it_cannot_compute(kernel_shape, strides, dilation, groups):
    with pytest.raises(ValueError, match="algorithm='winograd' needs strides"):
        choose_algorithm("winograd", kernel_shape, strides, dilation, groups)


def test_unknown_algorithm_is_refused():
    x, k = np.zeros((1, 5, 5, 2)), np.zeros((3, 3, 2, 2))
    with pytest.raises(ValueError, match="algorithm must be one of"):
        conv2d_forward(x, k, algorithm="fft")
    with pytest.raises(ValueError, match="conv.*algorithm must be one of 'auto', 'im2col', 'winograd', 'direct'; got 'fast'"):
        Conv2D(4, 3, algorithm="fast", name="conv")
    with pytest.raises(ValueError, match="algorithm='winograd' needs strides 1.*Use algorithm='auto' or 'im2col'"):
        Conv2D(4, 3, strides=2, algorithm="winograd")


def test_layer_config_keeps_the_algorithm():
    layer = Conv2D(4, 3, algorithm="im2col", name="c")
    assert layer.get_config()["algorithm"] == "im2col"
    assert Conv2D.from_config(layer.get_config()).algorithm == "im2col"


# ---------------------------------------------------------------------------- results


def _forward_backward(x, kernel, bias, algorithm, dy=None, **kwargs):
    y, cache = conv2d_forward(x, kernel, bias, algorithm=algorithm, **kwargs)
    assert cache.algorithm == algorithm
    dy = np.cos(np.arange(y.size)).reshape(y.shape).astype(x.dtype) if dy is None else dy
    return (y, *conv2d_backward(dy, cache))


GEOMETRY = [(hw, k, pad) for hw, k, pad in itertools.product(
    [(14, 14), (7, 9), (1, 6), (3, 2)],  # tiles overhang the edges; single rows; kernel wider than the image
    [(5, 5), (3, 3), (2, 4), (7, 1), (1, 3), (6, 6)],
    [((2, 2), (2, 2)), ((0, 0), (0, 0)), ((1, 3), (0, 2)), ((7, 0), (1, 1))],  # 7 > kh - 1: dz is cropped
) if hw[0] + sum(pad[0]) >= k[0] and hw[1] + sum(pad[1]) >= k[1]]  # (else no output: refused by the geometry checks)


@pytest.mark.parametrize("hw, kernel_hw, padding", GEOMETRY)
def test_float64_winograd_equals_im2col(hw, kernel_hw, padding, transforms, rng):
    x = rng.standard_normal((3, *hw, 5))
    kernel, bias = rng.standard_normal((*kernel_hw, 5, 4)), rng.standard_normal(4)
    ours = _forward_backward(x, kernel, bias, "winograd", padding=padding, max_chunk_bytes=4000)
    im2col = _forward_backward(x, kernel, bias, "im2col", padding=padding)
    for name, a, b in zip(("y", "dx", "dkernel", "dbias"), ours, im2col):
        assert_close(a, b, 1e-12, name)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_modes_fold_the_border_gradient_back(mode, transforms, rng):
    x = rng.standard_normal((2, 6, 7, 3))
    kernel = rng.standard_normal((3, 4, 3, 2))
    padding = ((2, 1), (1, 2))
    ours = _forward_backward(x, kernel, None, "winograd", padding=padding, padding_mode=mode)
    im2col = _forward_backward(x, kernel, None, "im2col", padding=padding, padding_mode=mode)
    for name, a, b in zip(("y", "dx", "dkernel"), ours, im2col):
        assert_close(a, b, 1e-12, name)
    assert ours[3] is None


def test_compiled_and_numpy_transforms_agree(rng):
    x = rng.standard_normal((5, 11, 10, 9)).astype(np.float32)
    kernel = rng.standard_normal((5, 3, 9, 6)).astype(np.float32)
    results = []
    for flag in (False, True):
        kernels.set_enabled(flag)
        try:
            results.append(_forward_backward(x, kernel, None, "winograd", padding=((2, 2), (1, 1)),
                                             max_chunk_bytes=3000))
        finally:
            kernels.set_enabled(True)
    for name, a, b in zip(("y", "dx", "dkernel"), *results):
        assert_close(a, b, 1e-5, name)  # both round like Winograd, in different orders


def test_the_lessons_conv2_in_float32_matches_torch(rng):
    """Full size: 14x14x32 -> 64 filters of 5x5, 'same', fused ReLU, as in the model; float32 error <= 1e-5."""
    x = np.maximum(rng.standard_normal((16, 14, 14, 32)), 0).astype(np.float32)
    kernel = (rng.standard_normal((5, 5, 32, 64)) * 0.05).astype(np.float32)
    bias = (rng.standard_normal(64) * 0.1).astype(np.float32)
    dy = rng.standard_normal((16, 14, 14, 64)).astype(np.float32)
    relu = lambda block: np.maximum(block, 0, out=block)  # noqa: E731
    y, cache = conv2d_forward(x, kernel, bias, padding=((2, 2), (2, 2)), epilogue=relu, algorithm="winograd")
    dx, dkernel, dbias = conv2d_backward(dy, cache, epilogue_grad=lambda d, index: d * (y[index] > 0))

    x_t = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)
    w_t = torch.tensor(kernel.transpose(3, 2, 0, 1).copy(), requires_grad=True)
    b_t = torch.tensor(bias, requires_grad=True)
    y_t = torch.relu(F.conv2d(x_t, w_t, b_t, padding=2))
    (y_t * torch.tensor(dy.transpose(0, 3, 1, 2).copy())).sum().backward()
    assert_close(y, y_t.detach().numpy().transpose(0, 2, 3, 1), 1e-5, "y")
    assert_close(dx, x_t.grad.numpy().transpose(0, 2, 3, 1), 1e-5, "dx")
    assert_close(dkernel, w_t.grad.numpy().transpose(2, 3, 1, 0), 1e-5, "dkernel")
    assert_close(dbias, b_t.grad.numpy(), 1e-5, "dbias")
    assert_close(y[:2], np.maximum(conv2d_reference(x[:2], kernel, bias, padding=((2, 2), (2, 2))), 0), 1e-5,
                 "y vs the naive loops")


def test_layer_with_relu_gives_the_same_gradients_either_way(rng):
    x = rng.standard_normal((4, 9, 8, 8))
    layers = [Conv2D(6, 3, padding="same", activation="relu", algorithm=a, dtype="float64", seed=1)
              for a in ("im2col", "winograd")]
    dy = rng.standard_normal((4, 9, 8, 6))
    outputs = []
    for layer in layers:
        y = layer(x)
        dx = layer.backward(dy)
        outputs.append((y, dx, *layer.get_gradients()))
    for name, a, b in zip(("y", "dx", "dkernel", "dbias"), *outputs):
        assert_close(a, b, 1e-12, name)


def test_empty_batch(transforms):
    x, kernel = np.zeros((0, 6, 6, 8)), np.ones((3, 3, 8, 2))
    y, dx, dkernel, dbias = _forward_backward(x, kernel, np.zeros(2), "winograd", padding=((1, 1), (1, 1)))
    assert y.shape == (0, 6, 6, 2) and dx.shape == x.shape
    np.testing.assert_array_equal(dkernel, 0)
    np.testing.assert_array_equal(dbias, 0)


def test_inference_does_not_pad_the_whole_batch_at_once(rng, monkeypatch):
    """keep_cache=False pads block by block: no array as big as the padded input is made."""
    x = rng.standard_normal((64, 14, 14, 8)).astype(np.float32)
    kernel = rng.standard_normal((5, 5, 8, 8)).astype(np.float32)
    sizes = []
    real_empty = np.empty

    def recording_empty(shape, *args, **kwargs):
        out = real_empty(shape, *args, **kwargs)
        sizes.append(out.nbytes)
        return out

    monkeypatch.setattr(winograd.np, "empty", recording_empty)
    y, cache = conv2d_forward(x, kernel, None, padding=((2, 2), (2, 2)), keep_cache=False, algorithm="winograd",
                              max_chunk_bytes=1 << 16)
    assert cache is None
    padded_bytes = 64 * 18 * 18 * 8 * 4
    output = (y.nbytes, y.nbytes + y.shape[-1] * y.itemsize)  # y, and y with the F values where overhangs go
    assert max(s for s in sizes if s not in output) < padded_bytes / 8


def test_block_sizes_and_need_dx_do_not_change_the_gradients(rng):
    """One image per block or many; with or without dx: the same kernel and bias gradients."""
    x = rng.standard_normal((5, 9, 8, 8))
    kernel, bias = rng.standard_normal((3, 5, 8, 3)), rng.standard_normal(3)
    dy = rng.standard_normal((5, 9, 8, 3))
    results = []
    for max_chunk_bytes in (None, 1):
        y, cache = conv2d_forward(x, kernel, bias, padding=((1, 1), (2, 2)), algorithm="winograd",
                                  max_chunk_bytes=max_chunk_bytes)
        full = conv2d_backward(dy, cache)
        no_dx = conv2d_backward(dy, cache, need_dx=False)
        assert no_dx[0] is None
        np.testing.assert_array_equal(no_dx[1], full[1])
        np.testing.assert_array_equal(no_dx[2], full[2])
        results.append((y, *full))
    for name, a, b in zip(("y", "dx", "dkernel", "dbias"), *results):
        assert_close(a, b, 1e-12, name)


def test_the_learn_page_example_runs():
    """docs/learn.md works F(2, 3) through by hand; its printed numbers must stay true."""
    page = Path(__file__).resolve().parents[1] / "docs" / "learn.md"
    result = doctest.testfile(str(page), module_relative=False)
    assert result.attempted >= 5 and result.failed == 0

