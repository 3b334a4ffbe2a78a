"""Layout conversions between convlayer (Keras) and PyTorch/ONNX: kernels, ``F.pad`` tuples, flatten order.

convlayer (like Keras) stores a Conv2D kernel as HWIO ``(kh, kw, C // groups, F)``;
PyTorch stores OIHW ``(F, C // groups, kh, kw)``. Both compute cross-correlation, so
converting a kernel is a transpose and nothing else (no flip).

PyTorch's ``padding='same'`` agrees with TensorFlow at stride 1 (the odd extra goes to the
bottom/right in both) but refuses strides > 1, where TensorFlow's total padding also
depends on the input size. ``same_padding_for_torch`` returns the explicit ``F.pad`` tuple
that matches TensorFlow for every stride and dilation.

A Dense layer after Flatten needs one more conversion: convlayer flattens (H, W, C) images
(channels_last) while PyTorch flattens (C, H, W); ``flatten_order`` says which PyTorch feature
each convlayer feature is, and ``dense_to_linear`` / ``linear_to_dense`` permute the rows.

This module never imports torch: it accepts tensors through ``.detach().cpu().numpy()``
and returns NumPy arrays and plain tuples.
"""

from __future__ import annotations

import numpy as np

from ..functional.shapes import Padding2D, normalize_tuple, same_padding

__all__ = [
    "TORCH_PAD_MODES", "torch_weight_to_hwio", "hwio_to_torch_weight", "same_padding_for_torch",
    "padding_amounts_to_torch", "torch_padding", "flatten_order", "dense_to_linear", "linear_to_dense",
]

# convlayer padding_mode -> torch.nn.functional.pad mode
TORCH_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}


def _as_real_array(value, name: str) -> np.ndarray:
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch.Tensor, without importing torch
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array or a torch tensor, got {type(value).__name__}: {exc}") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}.")
    return array


def _as_kernel4(value, name: str, layout: str) -> np.ndarray:
    array = _as_real_array(value, name)
    if array.ndim != 4:
        raise ValueError(f"{name} must be a 4-D {layout} kernel, got shape {array.shape}.")
    return array


def torch_weight_to_hwio(weight) -> np.ndarray:
    """PyTorch ``Conv2d.weight`` (OIHW) -> a convlayer/Keras kernel (HWIO).

    Args:
        weight: (F, C // groups, kh, kw) NumPy array or torch tensor.

    Returns:
        (kh, kw, C // groups, F) contiguous NumPy array, same dtype.

    >>> torch_weight_to_hwio(np.zeros((8, 3, 5, 4))).shape
    (5, 4, 3, 8)
    """
    weight = _as_kernel4(weight, "weight", "OIHW (filters, in_channels // groups, kh, kw)")
    return np.ascontiguousarray(weight.transpose(2, 3, 1, 0))  # (F, Cg, kh, kw) -> (kh, kw, Cg, F)


def hwio_to_torch_weight(kernel) -> np.ndarray:
    """A convlayer/Keras kernel (HWIO) -> PyTorch ``Conv2d.weight`` layout (OIHW).

    Args:
        kernel: (kh, kw, C // groups, F) NumPy array (e.g. ``layer.kernel``).

    Returns:
        (F, C // groups, kh, kw) contiguous NumPy array; wrap it with ``torch.from_numpy``.

    >>> hwio_to_torch_weight(np.zeros((5, 4, 3, 8))).shape
    (8, 3, 5, 4)
    """
    kernel = _as_kernel4(kernel, "kernel", "HWIO (kh, kw, in_channels // groups, filters)")
    return np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))  # (kh, kw, Cg, F) -> (F, Cg, kh, kw)


def padding_amounts_to_torch(padding: Padding2D) -> tuple[int, int, int, int]:
    """((top, bottom), (left, right)), as ``Conv2D.padding_amounts`` returns, -> ``F.pad``'s order.

    ``F.pad`` lists the last axis first: (left, right, top, bottom).

    >>> padding_amounts_to_torch(((0, 1), (2, 3)))
    (2, 3, 0, 1)
    """
    bad = ValueError(f"padding must be ((top, bottom), (left, right)) of non-negative ints, got {padding!r}.")
    try:
        (top, bottom), (left, right) = padding
    except (TypeError, ValueError):
        raise bad from None
    values = (left, right, top, bottom)
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0 for v in values):
        raise bad
    return tuple(int(v) for v in values)


def same_padding_for_torch(input_hw, kernel_size, strides=1, dilation_rate=1) -> tuple[int, int, int, int]:
    """The ``F.pad`` tuple (left, right, top, bottom) that makes PyTorch match TensorFlow 'same'.

    Pad with it, then call ``F.conv2d(..., padding=0)`` with the same stride and dilation.
    The amounts come from ``convlayer.functional.shapes.same_padding``, the one 'same' rule.

    Args:
        input_hw: (rows, cols) of the input.
        kernel_size, strides, dilation_rate: int or (vertical, horizontal), all >= 1.

    Returns:
        (left, right, top, bottom) non-negative ints.

    >>> same_padding_for_torch((5, 5), 2, strides=2)   # the odd extra goes right and bottom
    (0, 1, 0, 1)
    >>> same_padding_for_torch((28, 28), 5)
    (2, 2, 2, 2)
    """
    owner = "same_padding_for_torch"
    rows, cols = normalize_tuple(input_hw, 2, "input_hw", owner=owner)
    kernel_size = normalize_tuple(kernel_size, 2, "kernel_size", owner=owner)
    strides = normalize_tuple(strides, 2, "strides", owner=owner)
    dilation_rate = normalize_tuple(dilation_rate, 2, "dilation_rate", owner=owner)
    top, bottom = same_padding(rows, kernel_size[0], strides[0], dilation_rate[0])
    left, right = same_padding(cols, kernel_size[1], strides[1], dilation_rate[1])
    return left, right, top, bottom


def torch_padding(layer, input_shape) -> tuple[tuple[int, int, int, int], str]:
    """The ``F.pad`` tuple and mode that reproduce a Conv2D layer's padding for ``input_shape``.

    Works for every ``padding`` ('valid', 'same', explicit) and ``padding_mode``.

    Returns:
        ((left, right, top, bottom), mode) with mode one of ``TORCH_PAD_MODES``' values.

    >>> from convlayer.layers import Conv2D
    >>> torch_padding(Conv2D(1, 2, strides=2, padding="same"), (1, 5, 5, 1))
    ((0, 1, 0, 1), 'constant')
    """
    if not hasattr(layer, "padding_amounts") or not hasattr(layer, "padding_mode"):
        raise TypeError(f"torch_padding expects a convlayer Conv2D layer, got {type(layer).__name__}.")
    amounts = layer.padding_amounts(input_shape)
    if amounts is None:
        raise ValueError(f"torch_padding needs known rows and cols for padding='same', got input shape "
                         f"{tuple(input_shape)}.")
    return padding_amounts_to_torch(amounts), TORCH_PAD_MODES[layer.padding_mode]


def flatten_order(torch_shape, *, nchw: bool = True, flatten_data_format: str = "channels_last") -> np.ndarray:
    """For each feature convlayer's ``Flatten`` emits, its index in PyTorch's ``nn.Flatten``.

    Args:
        torch_shape: one sample's shape as PyTorch holds it, e.g. (C, H, W).
        nchw: True when convlayer holds that sample as (H, W, C) (a channels_last model, whose
            PyTorch twin runs in NCHW); False when both hold it the same way.
        flatten_data_format: the Flatten layer's ``data_format`` (Keras moves axis 1 last for
            'channels_first', whatever the tensor holds).

    Returns:
        (prod(torch_shape),) int64 permutation: ``convlayer_features = torch_features[:, order]``.

    >>> flatten_order((2, 1, 2)).tolist()   # (H, W, C) order of a (C=2, H=1, W=2) image
    [0, 2, 1, 3]
    """
    shape = tuple(int(v) for v in torch_shape)
    index = np.arange(int(np.prod(shape))).reshape(shape)  # torch positions
    if nchw:
        if len(shape) != 3:
            raise ValueError(f"nchw=True needs a (C, H, W) sample shape, got {shape}.")
        index = index.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C) as convlayer holds it
    if flatten_data_format == "channels_first" and index.ndim > 1:
        index = np.moveaxis(index, 0, -1)
    return index.reshape(-1)


def dense_to_linear(kernel, order=None) -> np.ndarray:
    """A Dense kernel (in, out) -> ``nn.Linear.weight`` (out, in), its inputs reordered by ``order``.

    >>> dense_to_linear(np.arange(6.0).reshape(3, 2), order=np.array([2, 0, 1])).tolist()
    [[2.0, 4.0, 0.0], [3.0, 5.0, 1.0]]
    """
    kernel = _as_real_array(kernel, "kernel")
    if kernel.ndim != 2:
        raise ValueError(f"kernel must be a 2-D Dense kernel (in, out), got shape {kernel.shape}.")
    weight = np.empty(kernel.shape[::-1], kernel.dtype)  # (out, in)
    if order is None:
        weight[...] = kernel.T
    else:
        weight[:, np.asarray(order)] = kernel.T  # torch input order[j] is convlayer input j
    return weight


def linear_to_dense(weight, order=None) -> np.ndarray:
    """``nn.Linear.weight`` (out, in) -> a Dense kernel (in, out); the inverse of ``dense_to_linear``.

    >>> w = dense_to_linear(np.arange(6.0).reshape(3, 2), order=np.array([2, 0, 1]))
    >>> linear_to_dense(w, order=np.array([2, 0, 1])).tolist()
    [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    """
    weight = _as_real_array(weight, "weight")
    if weight.ndim != 2:
        raise ValueError(f"weight must be a 2-D Linear weight (out, in), got shape {weight.shape}.")
    columns = weight if order is None else weight[:, np.asarray(order)]  # (out, in) in convlayer order
    return np.ascontiguousarray(columns.T)
