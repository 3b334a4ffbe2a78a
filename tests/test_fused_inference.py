"""Inference pools each conv block while it is in cache (Conv2D.pooled): the same numbers as the two calls."""

import numpy as np
import pytest

from convlayer.functional import kernels
from convlayer.layers import Conv2D, MaxPooling2D
from convlayer.models import Sequential


@pytest.fixture(params=[True, False], ids=["compiled", "numpy"])
def compiled(request):
    before = kernels.enabled()
    kernels.set_enabled(request.param)
    yield request.param
    kernels.set_enabled(before)


@pytest.mark.parametrize("channels, kernel, strides, conv_padding, pool, pool_strides, pool_padding, size", [
    (1, 5, 1, "same", 2, 2, "valid", (28, 28)),   # conv1: im2col, tap-major windows
    (32, 5, 1, "same", 2, 2, "valid", (14, 14)),  # conv2: Winograd when compiled
    (3, 3, 2, "valid", 3, 2, "same", (13, 11)),   # strided conv, overlapping 'same' pooling, odd sizes
    (4, (2, 3), 1, "same", (2, 3), (1, 2), "valid", (9, 10)),
])
def test_conv_then_max_pool_in_cache_equals_the_two_calls(compiled, channels, kernel, strides, conv_padding, pool,
                                                           pool_strides, pool_padding, size):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((37, *size, channels)).astype(np.float32)
    conv = Conv2D(8, kernel, strides=strides, padding=conv_padding, activation="relu", seed=1)
    pooling = MaxPooling2D(pool, pool_strides, padding=pool_padding)
    expected = pooling(conv(x, keep_cache=False), keep_cache=False)
    assert conv.can_pool_in_cache(pooling)
    got = conv.pooled(x, pooling)
    np.testing.assert_array_equal(got, expected)


def test_big_images_are_pooled_whole_and_a_model_predicts_the_same(compiled):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 300, 250, 2)).astype(np.float32)  # one image's windows: 5.7 MB, over a block
    model = Sequential([Conv2D(16, 3, padding="same", activation="relu", seed=0), MaxPooling2D(2),
                        Conv2D(8, 3, activation="tanh", seed=1), MaxPooling2D(2)])
    model.build((None, 300, 250, 2))
    layer_by_layer = x
    for layer in model.layers:
        layer_by_layer = layer(layer_by_layer, keep_cache=False)
    # Unfused, such an image goes through im2col in bands of rows; whole, its GEMMs have other shapes, and
    # BLAS may round differently (a few float32 ulps).
    np.testing.assert_allclose(model.predict(x), layer_by_layer, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model(x, keep_cache=False), layer_by_layer, rtol=1e-5, atol=1e-5)


def test_only_what_it_can_compute_is_fused():
    conv = Conv2D(4, 3, activation="softmax")  # needs the whole output: not in place
    conv.build((None, 8, 8, 1))
    pool = MaxPooling2D(2)
    pool.build((None, 6, 6, 4))
    assert not conv.can_pool_in_cache(pool)
    relu = Conv2D(4, 3, activation="relu", data_format="channels_first")
    relu.build((None, 1, 8, 8))
    assert not relu.can_pool_in_cache(MaxPooling2D(2, data_format="channels_first"))
    assert not Conv2D(4, 3).can_pool_in_cache(None)
