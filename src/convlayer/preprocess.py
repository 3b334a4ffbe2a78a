"""MNIST-style preprocessing of a photo or drawing of one digit/object.

grayscale -> invert a light background -> crop to the ink -> scale to fit a 20x20 box
(aspect kept) -> paste into a 28x28 frame -> shift so the centre of mass is centred.
Sizes scale with ``input_dim`` (a 20/28 box), so 8x8 models get the same treatment.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np


class ImageError(ValueError):
    """An image that cannot be read or holds nothing to classify."""


def _pil():
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:  # pragma: no cover - Pillow is in the cli extra
        raise ImageError("reading images needs Pillow: pip install 'convlayer[cli]'.") from None
    return Image, UnidentifiedImageError


def load_image(source) -> np.ndarray:
    """Read a PNG/JPEG (path or bytes) as a float grayscale array in [0, 1], (H, W)."""
    Image, Unidentified = _pil()
    name = "image bytes" if isinstance(source, (bytes, bytearray)) else str(source)
    try:
        if isinstance(source, (bytes, bytearray)):
            image = Image.open(io.BytesIO(source))
        else:
            if not Path(source).is_file():
                raise ImageError(f"image {name!r} not found.")
            image = Image.open(source)
        if image.width * image.height > 40_000_000:  # known from the header: refuse before decoding
            raise ImageError(f"{name} is too large ({image.width}x{image.height}); use an image under 40 "
                             f"megapixels.")
        image.load()
    except (Unidentified, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        if isinstance(exc, ImageError):
            raise
        raise ImageError(f"cannot read {name} as an image ({exc}); use a PNG or JPEG file.") from None
    if image.mode in ("RGBA", "LA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)  # transparent canvas -> white paper
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def mnist_style(gray: np.ndarray, input_dim: int = 28) -> np.ndarray:
    """(H, W) grayscale in [0, 1] -> (input_dim, input_dim) float32, white ink on black."""
    Image, _ = _pil()
    gray = np.asarray(gray, dtype=np.float32)
    if gray.ndim != 2 or min(gray.shape) == 0:
        raise ImageError(f"expected a 2-D grayscale image, got shape {gray.shape}.")
    # Light background (the border is mostly bright): invert so ink is bright, as in MNIST.
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if np.median(border) > 0.5:
        gray, border = 1.0 - gray, 1.0 - border
    gray = np.clip(gray - np.median(border), 0, 1)  # remove the background level
    if gray.max() <= 0.05:
        raise ImageError("the image is blank: no ink found to classify.")
    ink = gray > 0.1 * gray.max()
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    crop = gray[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    box = max(1, round(input_dim * 20 / 28))
    scale = box / max(crop.shape)
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))  # (w, h)
    resized = np.asarray(Image.fromarray((crop * 255).astype(np.uint8)).resize(size, Image.LANCZOS),
                         dtype=np.float32) / 255.0
    frame = np.zeros((input_dim, input_dim), np.float32)
    top, left = (input_dim - size[1]) // 2, (input_dim - size[0]) // 2
    frame[top:top + size[1], left:left + size[0]] = resized
    total = frame.sum()
    if total > 0:  # centre by mass, as MNIST was made
        ys, xs = np.indices(frame.shape)
        shift_y = int(round((input_dim - 1) / 2 - (ys * frame).sum() / total))
        shift_x = int(round((input_dim - 1) / 2 - (xs * frame).sum() / total))
        frame = _shift(frame, shift_y, shift_x)
    return np.clip(frame, 0, 1)


def _shift(image, dy, dx):
    out = np.zeros_like(image)
    h, w = image.shape
    src = image[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
    out[max(0, dy):max(0, dy) + src.shape[0], max(0, dx):max(0, dx) + src.shape[1]] = src
    return out


def prepare(source, input_dim: int = 28) -> np.ndarray:
    """Path or bytes -> (input_dim, input_dim) float32 network input."""
    return mnist_style(load_image(source), input_dim)
