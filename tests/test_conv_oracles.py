"""Conv2D forward and all three gradients against TensorFlow and PyTorch.

Backward uses llm.c's trick: with ``fakeloss = sum(y * dy)`` the oracle's autodiff
returns exactly the vector-Jacobian products our ``backward(dy)`` computes.
TensorFlow is called with its own padding strings ('SAME'/'VALID'), so it checks our
'same' geometry independently; PyTorch gets an explicit, possibly asymmetric ``F.pad``
built from ``layer.padding_amounts`` and checks everything TensorFlow cannot (stride
with dilation, reflect/replicate/circular padding, channels_first, rank 5).

The oracles are imported at module top on purpose: a missing one fails loudly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pytest
import tensorflow as tf
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from convlayer.functional import conv as conv_mod
from convlayer.functional import winograd
from convlayer.functional.conv import conv2d_backward, conv2d_forward
from convlayer.layers import Conv2D
from reference import assert_close, conv2d_reference

TOL = 1e-5  # float32, relative to the reference's max abs
TORCH_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}
TORCH_ACTIVATIONS = {
    None: lambda t: t, "linear": lambda t: t, "relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
    "elu": F.elu, "selu": F.selu, "softplus": F.softplus, "softsign": F.softsign, "silu": F.silu,
    "swish": F.silu, "relu6": F.relu6, "exponential": torch.exp,
}


# ---------------------------------------------------------------------------- configurations


@dataclass(frozen=True)
class Case:
    hw: tuple[int, int]
    channels: int
    filters: int
    kernel: tuple[int, int]
    strides: tuple[int, int] = (1, 1)
    padding: object = "valid"
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    batch: int = 2
    padding_mode: str = "zeros"
    use_bias: bool = True
    algorithm: str = "auto"

    def layer(self, **overrides) -> Conv2D:
        kwargs = dict(filters=self.filters, kernel_size=self.kernel, strides=self.strides, padding=self.padding,
                      dilation_rate=self.dilation, groups=self.groups, padding_mode=self.padding_mode,
                      use_bias=self.use_bias, algorithm=self.algorithm)
        kwargs.update(overrides)
        return Conv2D(**kwargs)

    @property
    def tf_supported(self) -> bool:
        # TF refuses stride > 1 together with dilation > 1, and only pads with zeros.
        return self.padding_mode == "zeros" and not (max(self.strides) > 1 and max(self.dilation) > 1)

    def __str__(self) -> str:
        pad = self.padding if isinstance(self.padding, str) else "explicit" + str(self.padding).replace(" ", "")
        return (f"in{self.hw[0]}x{self.hw[1]}x{self.channels}-k{self.kernel[0]}x{self.kernel[1]}x{self.filters}"
                f"-s{self.strides[0]}{self.strides[1]}-d{self.dilation[0]}{self.dilation[1]}-{pad}"
                f"-g{self.groups}-n{self.batch}-{self.padding_mode}{'' if self.use_bias else '-nobias'}"
                f"{'' if self.algorithm == 'auto' else '-' + self.algorithm}")


GRID = [
    Case((5, 6), 3, 4, (1, 1)),
    Case((6, 6), 2, 3, (3, 3), padding="same"),
    Case((7, 7), 3, 2, (2, 2), strides=(2, 2), padding="same"),  # even kernel: odd extra at bottom/right
    Case((5, 5), 1, 2, (2, 2), strides=(2, 2), padding="same"),
    Case((5, 5), 1, 2, (2, 2), strides=(2, 2), padding="valid"),  # last row/col ignored
    Case((8, 7), 2, 3, (2, 3), strides=(2, 1), padding="same"),
    Case((9, 8), 2, 4, (5, 4), strides=(3, 2), padding="valid"),
    Case((7, 9), 3, 2, (4, 4), strides=(3, 3), padding="same"),
    Case((7, 7), 1, 2, (7, 7), padding="same"),
    Case((7, 7), 2, 2, (7, 7), padding="valid"),  # a single output pixel
    Case((4, 3), 2, 2, (6, 5), padding="same"),  # kernel larger than the input
    Case((9, 8), 2, 3, (3, 3), dilation=(2, 2), padding="same"),
    Case((10, 7), 2, 3, (3, 2), dilation=(3, 1), padding="valid"),
    Case((8, 8), 2, 3, (2, 2), dilation=(1, 3), padding="same"),
    Case((7, 8), 3, 2, (3, 3), strides=(2, 2), padding=((1, 2), (0, 3))),
    Case((6, 5), 2, 2, (2, 3), dilation=(2, 1), padding=((0, 0), (2, 1))),
    Case((6, 6), 4, 6, (3, 3), padding="same", groups=2),
    Case((7, 6), 3, 3, (3, 2), strides=(2, 1), padding="same", groups=3),  # depthwise
    Case((6, 7), 4, 4, (2, 2), strides=(2, 2), groups=4, use_bias=False),
    Case((5, 7), 16, 8, (3, 3), padding="same"),  # kw * C >= 32: the 'rows' layout
    Case((8, 6), 12, 4, (3, 3), dilation=(2, 1), padding="same"),  # 'rows' with vertical dilation
    Case((7, 9), 24, 6, (2, 3), padding="valid", groups=2),  # 'rows' with groups
    Case((1, 1), 3, 2, (1, 1), batch=1),
    Case((3, 3), 2, 2, (3, 3), batch=1),
    Case((11, 5), 1, 1, (6, 1), strides=(1, 3), padding="same"),
    Case((4, 9), 2, 2, (1, 7), padding="same", batch=1),
    Case((5, 6), 3, 4, (3, 3), padding="same", use_bias=False),
]

TORCH_ONLY = [
    Case((9, 9), 2, 3, (3, 3), strides=(2, 2), dilation=(2, 2), padding="same"),
    Case((10, 8), 2, 2, (2, 3), strides=(3, 2), dilation=(2, 3), padding="valid"),
    Case((11, 9), 2, 4, (3, 2), strides=(2, 1), dilation=(1, 2), padding=((2, 1), (1, 0)), groups=2),
    Case((8, 9), 16, 4, (3, 3), strides=(1, 2), dilation=(2, 2), padding="same"),  # 'rows' + stride + dilation
]
for _mode in ("reflect", "replicate", "circular"):
    TORCH_ONLY += [
        Case((6, 7), 2, 3, (3, 3), padding="same", padding_mode=_mode),
        Case((7, 6), 2, 3, (2, 2), strides=(2, 2), padding="same", padding_mode=_mode),  # pads (0, 1)
        Case((8, 8), 2, 2, (3, 4), padding=((2, 1), (0, 3)), padding_mode=_mode),
        Case((8, 7), 2, 2, (3, 3), dilation=(2, 3), padding="same", padding_mode=_mode),
        Case((6, 7), 16, 4, (3, 3), padding="same", padding_mode=_mode, batch=1),  # 'rows'
        Case((5, 6), 4, 4, (3, 2), strides=(2, 1), padding="same", padding_mode=_mode, groups=2),
    ]



DIRECT_FILTERS = (8, 16, 24, 32)  # every register tile of the direct convolution: 8x1, 4x2, 8x1 thrice, 2x4


def with_algorithms(cases):
    """Each case computed by im2col, again by Winograd where it applies (stride 1, no dilation...), and
    by the direct convolution where it applies (one group), with filters made a multiple of 8."""
    out = []
    for i, case in enumerate(cases):
        out.append(replace(case, algorithm="im2col"))
        if winograd.supports(case.kernel, case.strides, case.dilation, case.groups):
            out.append(replace(case, algorithm="winograd"))
        if case.groups == 1:
            out.append(replace(case, filters=DIRECT_FILTERS[i % len(DIRECT_FILTERS)], algorithm="direct"))
    return out


GRID_ALGORITHMS = with_algorithms(GRID)
TORCH_ALGORITHMS = with_algorithms(GRID + TORCH_ONLY)


# ---------------------------------------------------------------------------- oracles


def tf_conv(x, kernel, bias, dy, *, strides, padding, dilation):
    """TensorFlow (NHWC): y and (dx, dkernel, dbias) of ``sum(y * dy)``. ``padding``: 'valid', 'same' or pairs."""
    x_t, kernel_t = tf.constant(x), tf.constant(kernel)
    sources = [x_t, kernel_t] + ([tf.constant(bias)] if bias is not None else [])
    with tf.GradientTape() as tape:
        tape.watch(sources)
        if isinstance(padding, str):
            x_p, tf_padding = x_t, padding.upper()
        else:  # tf.pad + VALID: TF's CPU gradient kernels refuse explicit padding with dilation
            (top, bottom), (left, right) = padding
            x_p, tf_padding = tf.pad(x_t, [[0, 0], [top, bottom], [left, right], [0, 0]]), "VALID"
        y = tf.nn.conv2d(x_p, kernel_t, strides=[1, *strides, 1], padding=tf_padding, dilations=[1, *dilation, 1])
        if bias is not None:
            y = tf.nn.bias_add(y, sources[2])
        fakeloss = tf.reduce_sum(y * dy)
    grads = [g.numpy() for g in tape.gradient(fakeloss, sources)]
    return y.numpy(), grads[0], grads[1], grads[2] if bias is not None else None


def torch_conv(x_nchw, kernel, bias, dy_nchw, *, strides, pads, dilation, groups, padding_mode="zeros",
               activation=None):
    """PyTorch (NCHW): explicit ``F.pad`` then ``F.conv2d``. Returns y, dx (NCHW), dkernel (HWIO), dbias."""
    x_t = torch.tensor(x_nchw, requires_grad=True)
    weight = torch.tensor(kernel.transpose(3, 2, 0, 1).copy(), requires_grad=True)  # (kh, kw, Cg, F) -> (F, Cg, kh, kw)
    bias_t = torch.tensor(bias, requires_grad=True) if bias is not None else None
    (top, bottom), (left, right) = pads
    x_p = F.pad(x_t, (left, right, top, bottom), mode=TORCH_PAD_MODES[padding_mode])  # F.pad: last axis first
    y = F.conv2d(x_p, weight, bias_t, stride=tuple(strides), dilation=tuple(dilation), groups=groups)
    if activation == "softmax":
        y = torch.softmax(y, dim=1)  # channels
    else:
        y = TORCH_ACTIVATIONS[activation](y)
    fakeloss = (y * torch.tensor(dy_nchw)).sum()
    fakeloss.backward()
    dkernel = weight.grad.numpy().transpose(2, 3, 1, 0)  # (F, Cg, kh, kw) -> (kh, kw, Cg, F)
    return y.detach().numpy(), x_t.grad.numpy(), dkernel, None if bias is None else bias_t.grad.numpy()


def torch_conv_nhwc(x, kernel, bias, dy, **kwargs):
    y, dx, dkernel, dbias = torch_conv(x.transpose(0, 3, 1, 2), kernel, bias, dy.transpose(0, 3, 1, 2), **kwargs)
    return y.transpose(0, 2, 3, 1), dx.transpose(0, 2, 3, 1), dkernel, dbias


# ---------------------------------------------------------------------------- running ours


def make_weights(case: Case, rng, dtype=np.float32):
    kernel_shape = (*case.kernel, case.channels // case.groups, case.filters)
    kernel = rng.standard_normal(kernel_shape).astype(dtype)
    bias = rng.standard_normal(case.filters).astype(dtype) if case.use_bias else None
    return kernel, bias


def run_layer(layer: Conv2D, x, kernel, bias, rng):
    """Our layer: y, then backward of a random dy. Returns y, dy, dx, dkernel, dbias."""
    layer.build(x.shape)
    layer.set_weights([kernel] if bias is None else [kernel, bias])
    y = layer(x)
    dy = rng.standard_normal(y.shape).astype(x.dtype)
    dx = layer.backward(dy)
    grads = layer.get_gradients()
    return y, dy, dx, grads[0], grads[1] if bias is not None else None


def assert_all_close(ours, oracle, what, tol=TOL):
    for name, actual, expected in zip(("y", "dx", "dkernel", "dbias"), ours, oracle):
        if expected is None:
            assert actual is None, f"{what}: {name} should be None"
            continue
        assert_close(actual, expected, tol, f"{what} {name}")


def _ids(cases):
    return [str(c) for c in cases]


# ---------------------------------------------------------------------------- grids


@pytest.mark.parametrize("case", GRID_ALGORITHMS, ids=_ids(GRID_ALGORITHMS))
def test_matches_tensorflow(case, rng):
    assert case.tf_supported
    x = rng.standard_normal((case.batch, *case.hw, case.channels)).astype(np.float32)
    kernel, bias = make_weights(case, rng)
    layer = case.layer()
    y, dy, dx, dkernel, dbias = run_layer(layer, x, kernel, bias, rng)
    padding = layer.padding if isinstance(layer.padding, str) else layer.padding_amounts(x.shape)
    expected = tf_conv(x, kernel, bias, dy, strides=case.strides, padding=padding, dilation=case.dilation)
    assert_all_close((y, dx, dkernel, dbias), expected, f"{case} vs TensorFlow")


@pytest.mark.parametrize("case", TORCH_ALGORITHMS, ids=_ids(TORCH_ALGORITHMS))
def test_matches_torch_and_reference(case, rng):
    x = rng.standard_normal((case.batch, *case.hw, case.channels)).astype(np.float32)
    kernel, bias = make_weights(case, rng)
    layer = case.layer()
    y, dy, dx, dkernel, dbias = run_layer(layer, x, kernel, bias, rng)
    pads = layer.padding_amounts(x.shape)
    expected = torch_conv_nhwc(x, kernel, bias, dy, strides=case.strides, pads=pads, dilation=case.dilation,
                               groups=case.groups, padding_mode=case.padding_mode)
    assert_all_close((y, dx, dkernel, dbias), expected, f"{case} vs PyTorch")
    naive = conv2d_reference(x, kernel, bias, strides=case.strides, padding=pads, dilation=case.dilation,
                             groups=case.groups, padding_mode=case.padding_mode)
    assert_close(y, naive, TOL, f"{case} vs the naive reference")


FORMAT_CASES = [GRID[2], GRID[6], GRID[11], GRID[14], GRID[16], GRID[19], TORCH_ONLY[0], TORCH_ONLY[5],
                TORCH_ONLY[-2]]


@pytest.mark.parametrize("case", FORMAT_CASES, ids=_ids(FORMAT_CASES))
def test_channels_first_matches_torch_directly(case, rng):
    x = rng.standard_normal((case.batch, case.channels, *case.hw)).astype(np.float32)  # NCHW, torch's own layout
    kernel, bias = make_weights(case, rng)
    layer = case.layer(data_format="channels_first")
    y, dy, dx, dkernel, dbias = run_layer(layer, x, kernel, bias, rng)
    assert y.shape == layer.compute_output_shape(x.shape)
    expected = torch_conv(x, kernel, bias, dy, strides=case.strides, pads=layer.padding_amounts(x.shape),
                          dilation=case.dilation, groups=case.groups, padding_mode=case.padding_mode)
    assert_all_close((y, dx, dkernel, dbias), expected, f"{case} channels_first vs PyTorch")


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("case", FORMAT_CASES[:5], ids=_ids(FORMAT_CASES[:5]))
def test_rank5_input_keeps_extra_batch_axis(case, data_format, rng):
    sample = (*case.hw, case.channels) if data_format == "channels_last" else (case.channels, *case.hw)
    x = rng.standard_normal((3, case.batch, *sample)).astype(np.float32)
    kernel, bias = make_weights(case, rng)
    layer = case.layer(data_format=data_format)
    y, dy, dx, dkernel, dbias = run_layer(layer, x, kernel, bias, rng)
    assert y.shape[:2] == (3, case.batch) and y.shape == layer.compute_output_shape(x.shape)
    assert dx.shape == x.shape

    def nchw(a):  # (3, N, ...) -> (3*N, C, H, W)
        a = a.reshape(-1, *a.shape[2:])
        return a.transpose(0, 3, 1, 2) if data_format == "channels_last" else a

    def back(a, like):  # inverse of nchw
        a = a.transpose(0, 2, 3, 1) if data_format == "channels_last" else a
        return a.reshape(like.shape)

    ty, tdx, tdk, tdb = torch_conv(nchw(x), kernel, bias, nchw(dy), strides=case.strides,
                                   pads=layer.padding_amounts(x.shape), dilation=case.dilation,
                                   groups=case.groups, padding_mode=case.padding_mode)
    assert_all_close((y, dx, dkernel, dbias), (back(ty, y), back(tdx, x), tdk, tdb), f"{case} rank 5 {data_format}")


# ---------------------------------------------------------------------------- activations through the layer


KERAS_ACTIVATIONS = [None, "linear", "relu", "sigmoid", "tanh", "elu", "selu", "softplus", "softsign", "silu",
                     "swish", "relu6", "exponential", "softmax"]


def keras_conv(x, kernel, bias, dy, **layer_kwargs):
    """tf.keras.layers.Conv2D with our weights: y and the gradients of ``sum(y * dy)``."""
    keras_layer = tf.keras.layers.Conv2D(**layer_kwargs)
    keras_layer.build(x.shape)
    keras_layer.set_weights([kernel] if bias is None else [kernel, bias])
    x_t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        y = keras_layer(x_t)
        fakeloss = tf.reduce_sum(y * dy)
    dx, *param_grads = tape.gradient(fakeloss, [x_t, *keras_layer.trainable_weights])
    return y.numpy(), dx.numpy(), param_grads[0].numpy(), param_grads[1].numpy() if bias is not None else None


@pytest.mark.parametrize("activation", KERAS_ACTIVATIONS)
def test_activation_gradients_match_keras(activation, rng):
    case = Case((7, 6), 3, 4, (3, 2), strides=(2, 1), padding="same")
    x = (2 * rng.standard_normal((2, *case.hw, case.channels))).astype(np.float32)  # relu6 sees both kinks' sides
    kernel, bias = make_weights(case, rng)
    kernel *= 0.5
    if activation == "exponential":
        kernel *= 0.3  # keep exp() moderate so the relative error stays meaningful
    y, dy, dx, dkernel, dbias = run_layer(case.layer(activation=activation), x, kernel, bias, rng)
    expected = keras_conv(x, kernel, bias, dy, filters=case.filters, kernel_size=case.kernel, strides=case.strides,
                          padding=case.padding, activation=activation)
    assert_all_close((y, dx, dkernel, dbias), expected, f"activation={activation} vs Keras")


@pytest.mark.parametrize("activation", [None, "relu", "softmax"])
def test_channels_first_matches_keras(activation, rng):
    # Keras activates the output as laid out: softmax (axis=-1) runs over the width for channels_first.
    # Filters (5) differ from the output width (4) on purpose: Keras 3.15 on TF/CPU adds a channels_first
    # bias along the width when the two are equal (checked against PyTorch), which would fail this test.
    case = Case((6, 7), 3, 5, (3, 2), strides=(1, 2), padding="same")
    x = rng.standard_normal((2, case.channels, *case.hw)).astype(np.float32)
    kernel, bias = make_weights(case, rng)
    y, dy, dx, dkernel, dbias = run_layer(case.layer(activation=activation, data_format="channels_first"), x,
                                          kernel, bias, rng)
    expected = keras_conv(x, kernel, bias, dy, filters=case.filters, kernel_size=case.kernel, strides=case.strides,
                          padding=case.padding, activation=activation, data_format="channels_first")
    if activation == "softmax":  # a bias is constant along the softmax axis: its gradient is exactly 0
        assert np.abs(dbias).max() < 1e-5 and np.abs(expected[3]).max() < 1e-5
        dbias, expected = None, expected[:3] + (None,)
    assert_all_close((y, dx, dkernel, dbias), expected, f"channels_first activation={activation} vs Keras")


@pytest.mark.parametrize("activation", ["relu", "tanh", "softplus", "softmax"])
def test_activation_gradients_match_torch_with_padding_modes(activation, rng):
    case = Case((6, 7), 3, 4, (3, 3), strides=(2, 1), padding="same", padding_mode="reflect")
    x = rng.standard_normal((2, *case.hw, case.channels)).astype(np.float32)
    kernel, bias = make_weights(case, rng)
    layer = case.layer(activation=activation)
    y, dy, dx, dkernel, dbias = run_layer(layer, x, kernel, bias, rng)
    expected = torch_conv_nhwc(x, kernel, bias, dy, strides=case.strides, pads=layer.padding_amounts(x.shape),
                               dilation=case.dilation, groups=1, padding_mode="reflect", activation=activation)
    assert_all_close((y, dx, dkernel, dbias), expected, f"activation={activation} reflect vs PyTorch")


# ---------------------------------------------------------------------------- internal methods and chunking


METHOD_CASES = [GRID[1], GRID[5], GRID[11], GRID[15], GRID[16], GRID[19], GRID[21], TORCH_ONLY[2], TORCH_ONLY[3],
                TORCH_ONLY[4], TORCH_ONLY[9], TORCH_ONLY[14]]


@pytest.mark.parametrize("case", METHOD_CASES, ids=_ids(METHOD_CASES))
def test_block_sizes_agree(case, rng):
    """Whole batch, one image per block, and one output row per block (row bands) all agree."""
    case = replace(case, batch=3)
    x = rng.standard_normal((case.batch, *case.hw, case.channels)).astype(np.float32)
    kernel, bias = make_weights(case, rng)
    pads = case.layer().padding_amounts(x.shape)
    geometry = dict(strides=case.strides, padding=pads, dilation=case.dilation, groups=case.groups,
                    padding_mode=case.padding_mode, algorithm="im2col")  # Winograd's blocks: test_winograd.py
    y0, _ = conv2d_forward(x, kernel, bias, **geometry, keep_cache=False)
    dy = rng.standard_normal(y0.shape).astype(np.float32)
    expected = torch_conv_nhwc(x, kernel, bias, dy, strides=case.strides, pads=pads, dilation=case.dilation,
                               groups=case.groups, padding_mode=case.padding_mode)
    per_image = y0.shape[1] * y0.shape[2] * (kernel[..., :1].size + 1) * 4
    results = {}
    for max_chunk_bytes in (None, per_image, 1):  # 1 byte: one output row per block
        y, cache = conv2d_forward(x, kernel, bias, **geometry, max_chunk_bytes=max_chunk_bytes)
        blocks = list(conv_mod._blocks(x.shape[0], y.shape[1], per_image // y.shape[1], cache.max_chunk_bytes))
        if max_chunk_bytes == 1:
            assert len(blocks) == x.shape[0] * y.shape[1]
        dx, dkernel, dbias = conv2d_backward(dy, cache)
        label = f"{case} max_chunk_bytes={max_chunk_bytes}"
        assert_all_close((y, dx, dkernel, dbias), expected, label)
        _, dkernel_only, _ = conv2d_backward(dy, cache, need_dx=False)
        np.testing.assert_array_equal(dkernel_only, dkernel)
        results[label] = (y, dx, dkernel)
    first = next(iter(results.values()))
    for label, values in results.items():  # and with each other, tighter than with the oracle
        for a, b in zip(values, first):
            assert_close(a, b, 1e-6, label)


def test_epilogue_runs_on_every_output_block(rng):
    x = rng.standard_normal((3, 9, 8, 2)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 2, 4)).astype(np.float32)
    plain, _ = conv2d_forward(x, kernel, keep_cache=False)
    for max_chunk_bytes in (None, 1):
        fused, _ = conv2d_forward(x, kernel, keep_cache=False, max_chunk_bytes=max_chunk_bytes,
                                  epilogue=lambda block: np.maximum(block, 0, out=block))
        np.testing.assert_array_equal(fused, np.maximum(plain, 0))


# ---------------------------------------------------------------------------- hypothesis


@st.composite
def conv_configs(draw):
    kernel = (draw(st.integers(1, 7)), draw(st.integers(1, 7)))
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    channels = groups * draw(st.integers(1, 3))
    filters = groups * draw(st.integers(1, 3))
    padding_mode = draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate", "circular"]))
    kind = draw(st.sampled_from(["valid", "same", "explicit"]))
    pads = ((draw(st.integers(0, 3)), draw(st.integers(0, 3))), (draw(st.integers(0, 3)), draw(st.integers(0, 3))))
    padding = pads if kind == "explicit" else kind
    hw = []
    for axis in range(2):
        span = (kernel[axis] - 1) * dilation[axis] + 1
        if kind == "valid":
            low = span
        elif kind == "explicit":
            low = max(span - sum(pads[axis]), max(pads[axis]) + 1, 1)
        else:
            low = 1 if padding_mode in ("zeros", "replicate") else span
        hw.append(draw(st.integers(low, low + 5)))
    case = Case(tuple(hw), channels, filters, kernel, strides, padding, dilation, groups,
                batch=draw(st.integers(1, 2)), padding_mode=padding_mode, use_bias=draw(st.booleans()))
    data_format = draw(st.sampled_from(["channels_last", "channels_first"]))
    extra_batch = draw(st.sampled_from([(), (2,)]))
    return case, data_format, extra_batch


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=conv_configs(), seed=st.integers(0, 2**32 - 1))
def test_random_configs_match_oracles(config, seed):
    case, data_format, extra_batch = config
    rng = np.random.default_rng(seed)
    layer = case.layer(data_format=data_format)
    sample = (*case.hw, case.channels) if data_format == "channels_last" else (case.channels, *case.hw)
    shape = (*extra_batch, case.batch, *sample)
    try:
        expected_shape = layer.compute_output_shape(shape)
    except ValueError:  # geometry the layer rightly refuses (reflect wider than the input, ...)
        assume(False)
    x = rng.standard_normal(shape).astype(np.float32)
    kernel, bias = make_weights(case, rng)
    y, dy, dx, dkernel, dbias = run_layer(layer, x, kernel, bias, rng)
    assert y.shape == expected_shape and dx.shape == x.shape

    def nhwc(a):  # (..., N, *sample) -> (M, H, W, C)
        a = a.reshape(-1, *a.shape[-3:])
        return a if data_format == "channels_last" else a.transpose(0, 2, 3, 1)

    def back(a, like):
        a = a if data_format == "channels_last" else a.transpose(0, 3, 1, 2)
        return a.reshape(like.shape)

    pads = layer.padding_amounts(shape)
    ty, tdx, tdk, tdb = torch_conv_nhwc(nhwc(x), kernel, bias, nhwc(dy), strides=case.strides, pads=pads,
                                        dilation=case.dilation, groups=case.groups, padding_mode=case.padding_mode)
    assert_all_close((y, dx, dkernel, dbias), (back(ty, y), back(tdx, x), tdk, tdb), f"{case} vs PyTorch")
    if case.tf_supported:
        padding = layer.padding if isinstance(layer.padding, str) else pads
        fy, fdx, fdk, fdb = tf_conv(nhwc(x), kernel, bias, nhwc(dy), strides=case.strides, padding=padding,
                                    dilation=case.dilation)
        assert_all_close((y, dx, dkernel, dbias), (back(fy, y), back(fdx, x), fdk, fdb), f"{case} vs TensorFlow")


@pytest.mark.parametrize("kernel_hw, strides, dilation", [((5, 5), (1, 1), (1, 1)), ((4, 6), (2, 3), (1, 2)),
                                                          ((3, 2), (1, 2), (3, 1)), ((7, 7), (3, 1), (2, 1))])
def test_all_col2im_strategies_agree(kernel_hw, strides, dilation, rng):
    """Taps, rows-then-columns and the compiled loop (into a block of a bigger array) give the same sums."""
    from convlayer.functional import kernels

    n, c, out_hw = 2, 9, (4, 5)
    hp = (out_hw[0] - 1) * strides[0] + (kernel_hw[0] - 1) * dilation[0] + 2  # one spare row and column
    wp = (out_hw[1] - 1) * strides[1] + (kernel_hw[1] - 1) * dilation[1] + 2
    dcols = rng.standard_normal((n * out_hw[0] * out_hw[1], kernel_hw[0] * kernel_hw[1] * c))
    by_taps, by_passes = np.zeros((n, hp, wp, c)), np.zeros((n, hp, wp, c))
    dwin = dcols.reshape(n, *out_hw, *kernel_hw, c)
    conv_mod._col2im_taps(by_taps, dwin, strides, dilation)
    conv_mod._col2im_rows_then_columns(by_passes, dwin, strides, dilation)
    np.testing.assert_allclose(by_passes, by_taps, rtol=1e-12, atol=1e-12)
    assert np.count_nonzero(by_taps[:, -1]) == 0 and np.count_nonzero(by_taps[:, :, -1]) == 0
    # The compiled loop writes a block at an offset (images 1-2, from row 3, channels 4-12) of a larger array.
    whole = np.zeros((4, hp + 3, wp, c + 6))
    kernels.col2im_add(whole, 1, 3, 4, dcols, n, *kernel_hw, *strides, *dilation, *out_hw)
    np.testing.assert_allclose(whole[1:3, 3:, :, 4:4 + c], by_taps, rtol=1e-12, atol=1e-12)
    whole[1:3, 3:, :, 4:4 + c] = 0
    assert np.count_nonzero(whole) == 0  # nothing outside the block
