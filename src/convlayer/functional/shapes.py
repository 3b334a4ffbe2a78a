"""The one source of truth for convolution and pooling geometry.

Every layer, the explainer, the web panel and the docs call these functions;
no other module re-derives an output size or a 'same' padding.
"""

from __future__ import annotations

import numbers
from typing import Sequence

Padding2D = tuple[tuple[int, int], tuple[int, int]]  # ((top, bottom), (left, right))

PADDING_NAMES = ("valid", "same")
DATA_FORMATS = ("channels_last", "channels_first")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def normalize_tuple(value, n: int, name: str, *, owner: str = "", minimum: int = 1) -> tuple[int, ...]:
    """Turn an int or a length-``n`` sequence of ints into an ``n``-tuple, validating it.

    >>> normalize_tuple(2, 2, "strides")
    (2, 2)
    """
    where = f"{owner}: " if owner else ""
    if _is_int(value):
        values = (int(value),) * n
    elif isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(
                f"{where}{name} must have {n} elements (one per spatial axis), got {value!r} "
                f"with {len(value)}. Pass an int to use the same value on every axis."
            )
        if not all(_is_int(v) for v in value):
            raise TypeError(f"{where}{name} must contain only ints, got {value!r}.")
        values = tuple(int(v) for v in value)
    else:
        raise TypeError(f"{where}{name} must be an int or a tuple of {n} ints, got {value!r}.")
    if any(v < minimum for v in values):
        raise ValueError(f"{where}{name} must be >= {minimum} on every axis, got {value!r}.")
    return values


def effective_kernel_size(kernel: int, dilation: int) -> int:
    """Span of a dilated kernel: ``(k - 1) * d + 1`` input pixels."""
    return (kernel - 1) * dilation + 1


def same_output_size(in_size: int, stride: int) -> int:
    """'same' keeps ``ceil(in / stride)`` outputs."""
    return -(-in_size // stride)


def same_padding(in_size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's 'same' rule: the minimum zeros so ``out = ceil(in / stride)``.

    The total is split evenly; an odd extra row/column goes to the bottom/right.

    >>> same_padding(5, 2, 2)   # 2x2 kernel, stride 2 on 5 pixels: one extra at the end
    (0, 1)
    """
    out = same_output_size(in_size, stride)
    total = max((out - 1) * stride + effective_kernel_size(kernel, dilation) - in_size, 0)
    return total // 2, total - total // 2


def conv_output_size(in_size: int | None, kernel: int, stride: int, dilation: int, pad: tuple[int, int]) -> int | None:
    """``floor((in + pad_before + pad_after - ((k - 1) * d + 1)) / stride) + 1``; None stays None."""
    if in_size is None:
        return None
    span = in_size + pad[0] + pad[1] - effective_kernel_size(kernel, dilation)
    return span // stride + 1 if span >= 0 else 0


def normalize_padding(padding, *, owner: str = "", allow_explicit: bool = True):
    """Return 'valid', 'same', or explicit ((top, bottom), (left, right)) padding."""
    where = f"{owner}: " if owner else ""
    if isinstance(padding, str):
        lowered = padding.lower()
        if lowered not in PADDING_NAMES:
            extra = ", an int, (pad_h, pad_w) or ((top, bottom), (left, right))" if allow_explicit else ""
            raise ValueError(f"{where}padding must be one of 'valid', 'same'{extra}; got {padding!r}.")
        return lowered
    if not allow_explicit:
        raise ValueError(f"{where}padding must be 'valid' or 'same', got {padding!r}.")
    bad = ValueError(
        f"{where}explicit padding must be an int, (pad_h, pad_w) or ((top, bottom), (left, right)) "
        f"of non-negative ints; got {padding!r}."
    )
    if isinstance(padding, bool):
        raise bad
    if isinstance(padding, int):
        pairs = ((padding, padding), (padding, padding))
    else:
        try:
            items = list(padding)
        except TypeError:
            raise bad from None
        if len(items) != 2:
            raise bad
        if all(isinstance(v, int) and not isinstance(v, bool) for v in items):
            pairs = ((items[0], items[0]), (items[1], items[1]))
        else:
            try:
                pairs = tuple(tuple(int(v) for v in pair) for pair in items)
            except (TypeError, ValueError):
                raise bad from None
            if any(len(pair) != 2 for pair in pairs):
                raise bad
    if any(not isinstance(v, int) or v < 0 for pair in pairs for v in pair):
        raise bad
    return (tuple(pairs[0]), tuple(pairs[1]))


def resolve_padding(padding, spatial: Sequence[int | None], kernel: Sequence[int],
                    strides: Sequence[int], dilation: Sequence[int]) -> Padding2D | None:
    """Padding amounts ((top, bottom), (left, right)) for a normalized ``padding``.

    Returns None when 'same' padding depends on a spatial size that is unknown (None).
    """
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "same":
        if any(s is None for s in spatial):
            return None
        return tuple(same_padding(s, k, st, d) for s, k, st, d in zip(spatial, kernel, strides, dilation))
    return padding


def conv_output_spatial(padding, spatial: Sequence[int | None], kernel: Sequence[int],
                        strides: Sequence[int], dilation: Sequence[int]) -> tuple[int | None, ...]:
    """Output (rows, cols) of a convolution or pooling window; None dims stay None."""
    if padding == "same":
        return tuple(None if s is None else same_output_size(s, st) for s, st in zip(spatial, strides))
    pads = resolve_padding(padding, spatial, kernel, strides, dilation)
    return tuple(conv_output_size(s, k, st, d, p)
                 for s, k, st, d, p in zip(spatial, kernel, strides, dilation, pads))


def output_size_formula(in_size: int, kernel: int, stride: int, dilation: int, pad: tuple[int, int]) -> str:
    """The output-size formula with the numbers filled in, for explanations."""
    span = effective_kernel_size(kernel, dilation)
    out = conv_output_size(in_size, kernel, stride, dilation, pad)
    kpart = f"{span}" if dilation == 1 else f"(({kernel} - 1) * {dilation} + 1)"
    return f"floor(({in_size} + {pad[0]} + {pad[1]} - {kpart}) / {stride}) + 1 = {out}"
