"""2-D max and average pooling (channels_last) as pure functions.

Max pooling routes each output's gradient to the *first* maximum of its window in
row-major order, as TensorFlow and PyTorch do; this matters for ties, which ReLU makes
common (a window of zeros).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import parallel
from . import kernels
from .padding import pad_nhwc
from .shapes import Padding2D, conv_output_size


@dataclass
class PoolCache:
    x_shape: tuple
    pool: tuple[int, int]
    strides: tuple[int, int]
    padding: Padding2D
    out_hw: tuple[int, int]
    winners: tuple | None  # max pooling: (padded input, output) to find each window's winner
    counts: np.ndarray | None  # (Ho, Wo, 1) real pixels per window (average pooling)


def _taps(xp, pool, strides, out_hw):
    """Yield, for every window tap, the (N, Ho, Wo, C) view of the pixels it sees (no copy)."""
    (ph, pw), (sh, sw), (ho, wo) = pool, strides, out_hw
    for i in range(ph):
        for j in range(pw):
            yield xp[:, i:i + (ho - 1) * sh + 1:sh, j:j + (wo - 1) * sw + 1:sw]


def _geometry(x_shape, pool, strides, padding):
    (top, bottom), (left, right) = padding
    out_hw = (conv_output_size(x_shape[1], pool[0], strides[0], 1, (top, bottom)),
              conv_output_size(x_shape[2], pool[1], strides[1], 1, (left, right)))
    assert min(out_hw) > 0, "callers validate the geometry"
    return out_hw


def max_pool2d_forward(x, pool=(2, 2), strides=(2, 2), padding=((0, 0), (0, 0)), *, keep_cache=True):
    """Max over each window; padded pixels never win.

    Args:
        x: (N, H, W, C).
    Returns:
        y (N, Ho, Wo, C) and the cache (None without ``keep_cache``).

    >>> y, _ = max_pool2d_forward(np.arange(16.).reshape(1, 4, 4, 1))
    >>> y[0, :, :, 0]
    array([[ 5.,  7.],
           [13., 15.]])
    """
    out_hw = _geometry(x.shape, pool, strides, padding)
    xp = pad_nhwc(x, padding, fill=-np.inf)
    y = np.empty((x.shape[0], *out_hw, x.shape[3]), x.dtype)
    parallel.run(lambda lo, hi: _max_pool_padded(xp[lo:hi], y[lo:hi], pool, strides), len(x))
    # Backward finds the winners again from (xp, y): no argmax pass when only predicting.
    cache = PoolCache(x.shape, tuple(pool), tuple(strides), padding, out_hw, (xp, y), None) if keep_cache else None
    return y, cache


def _max_pool_padded(xp, y, pool, strides) -> None:
    """y (n, Ho, Wo, C) = the max of each window of the padded xp (n, Hp, Wp, C), on this core."""
    if kernels.enabled():
        kernels.max_pool(xp, y, *pool, *strides)
        return
    taps = _taps(xp, pool, strides, y.shape[1:3])
    np.copyto(y, next(taps))
    for tap in taps:
        np.maximum(y, tap, out=y)


def max_pool2d_into(x, y, pool=(2, 2), strides=(2, 2), padding=((0, 0), (0, 0))) -> None:
    """``max_pool2d_forward`` of x (n, H, W, C) written into y (n, Ho, Wo, C), on the calling core.

    For a block still in cache (``conv.conv2d_forward``'s ``then``).
    """
    _max_pool_padded(pad_nhwc(x, padding, fill=-np.inf), y, pool, strides)


def max_pool2d_backward(dy, cache: PoolCache):
    """Gradient of ``max_pool2d_forward``: dy (N, Ho, Wo, C) -> dx (N, H, W, C).

    Each window's gradient goes to its first maximum in row-major order.
    """
    n, height, width, c = cache.x_shape
    (top, bottom), (left, right) = cache.padding
    xp, y = cache.winners
    disjoint = cache.strides[0] >= cache.pool[0] and cache.strides[1] >= cache.pool[1]
    write_all = disjoint and _covers(xp.shape, cache)  # every padded pixel is written: no zeroing needed
    dxp = (np.empty if write_all else np.zeros)((n, height + top + bottom, width + left + right, c), dy.dtype)
    if kernels.enabled():
        parallel.run(lambda lo, hi: kernels.max_pool_backward(xp[lo:hi], y[lo:hi], dy[lo:hi], dxp[lo:hi],
                                                              *cache.pool, *cache.strides, write_all), n)
    else:
        parallel.run(lambda lo, hi: _route_to_winners(xp[lo:hi], y[lo:hi], dy[lo:hi], dxp[lo:hi], cache, disjoint), n)
    return dxp[:, top:top + height, left:left + width]


def _route_to_winners(xp, y, dy, dxp, cache: PoolCache, disjoint: bool) -> None:
    """Add each window's gradient ``dy`` onto its first maximum in ``dxp`` (images of one part)."""
    unclaimed = None  # windows whose gradient is not routed yet (None: all of them)
    hit = np.empty(y.shape, bool)
    taps = list(zip(_taps(xp, cache.pool, cache.strides, cache.out_hw),
                    _taps(dxp, cache.pool, cache.strides, cache.out_hw)))
    for k, (x_tap, dx_tap) in enumerate(taps):
        if unclaimed is None:
            np.equal(x_tap, y, out=hit)
            unclaimed = ~hit
        elif k == len(taps) - 1:
            hit = unclaimed  # the last tap wins every window no earlier tap claimed
        else:
            np.equal(x_tap, y, out=hit)
            hit &= unclaimed
            unclaimed ^= hit
        if disjoint:
            np.multiply(dy, hit, out=dx_tap)  # windows do not overlap: plain writes
        else:
            dx_tap += dy * hit  # overlapping windows accumulate


def _covers(padded_shape, cache) -> bool:
    """True when the windows tile every padded pixel (so no pixel is left unwritten)."""
    (ph, pw), (sh, sw), (ho, wo) = cache.pool, cache.strides, cache.out_hw
    return sh == ph and sw == pw and ho * sh == padded_shape[1] and wo * sw == padded_shape[2]


def avg_pool2d_forward(x, pool=(2, 2), strides=(2, 2), padding=((0, 0), (0, 0)), *, keep_cache=True):
    """Mean over each window, counting only real pixels (Keras 'same' semantics)."""
    out_hw = _geometry(x.shape, pool, strides, padding)
    xp = pad_nhwc(x, padding)
    ones = pad_nhwc(np.ones((1, *x.shape[1:3], 1), x.dtype), padding)
    total = sum(_taps(xp, pool, strides, out_hw))
    counts = sum(_taps(ones, pool, strides, out_hw))[0]  # (Ho, Wo, 1)
    cache = PoolCache(x.shape, tuple(pool), tuple(strides), padding, out_hw, None, counts) if keep_cache else None
    return (total / counts).astype(x.dtype, copy=False), cache


def avg_pool2d_backward(dy, cache: PoolCache):
    n, height, width, c = cache.x_shape
    (top, bottom), (left, right) = cache.padding
    dxp = np.zeros((n, height + top + bottom, width + left + right, c), dy.dtype)
    share = dy / cache.counts
    for tap in _taps(dxp, cache.pool, cache.strides, cache.out_hw):
        tap += share
    return dxp[:, top:top + height, left:left + width]
