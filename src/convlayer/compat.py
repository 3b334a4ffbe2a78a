"""PyTorch interop: kernel layouts and the ``F.pad`` tuple that reproduces TensorFlow 'same'.

convlayer (like Keras) stores a Conv2D kernel as HWIO ``(kh, kw, C // groups, F)``;
PyTorch stores OIHW ``(F, C // groups, kh, kw)``. Both compute cross-correlation, so
converting a kernel is a transpose and nothing else (no flip).

PyTorch's ``padding='same'`` agrees with TensorFlow at stride 1 (the odd extra goes to the
bottom/right in both) but refuses strides > 1, where TensorFlow's total padding also
depends on the input size. ``same_padding_for_torch`` returns the explicit ``F.pad`` tuple
that matches TensorFlow for every stride and dilation.

This module never imports torch: it accepts tensors through ``.detach().cpu().numpy()``
and returns NumPy arrays and plain tuples.
"""

from __future__ import annotations

import numpy as np

from .functional.shapes import Padding2D, normalize_tuple, same_padding

__all__ = [
    "TORCH_PAD_MODES", "torch_weight_to_hwio", "hwio_to_torch_weight", "same_padding_for_torch",
    "padding_amounts_to_torch", "torch_padding",
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
