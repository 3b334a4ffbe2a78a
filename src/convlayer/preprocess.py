"""Turn a photo or drawing of one digit/object into the input a model was trained on.

Each dataset was made its own way, and an image must be prepared the same way (its *style*):

* ``mnist-digit`` (MNIST): grayscale -> invert a light background -> crop to the ink -> scale
  to fit a 20x20 box (aspect kept) -> paste into a 28x28 frame -> shift so the centre of mass
  is centred. Sizes scale with ``input_dim`` (a 20/28 box).
* ``fill`` (Fashion-MNIST): the object fills the frame: crop to it, scale its longer side to
  ``input_dim``, centre it; no centring by mass.
* ``digits-8x8`` (scikit-learn's digits): the digit fills the whole 8x8 frame (scaled like
  ``fill``, area-averaged), in 17 grey levels (counts 0..16 of 4x4 blocks, divided by 16).

All three are bright ink on a dark background. ``mode`` picks what happens to an image:
``auto`` takes an image that is already ``input_dim`` square and dark-backgrounded as it is
(a dataset's own image round-trips exactly) and gives anything else the dataset's style;
``dataset`` always applies the style; ``mnist-digit`` always the MNIST one; ``none`` only
reads the grey levels of an image that must already be the model's size.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import NamedTuple

import numpy as np

MODES = ("auto", "dataset", "mnist-digit", "none")
STYLES = ("mnist-digit", "fill", "digits-8x8")
DATASET_STYLES = {"mnist": "mnist-digit", "fashion-mnist": "fill", "digits": "digits-8x8"}


def style_for(dataset: str | None) -> str:
    """The preprocessing style of a dataset's images ('mnist-digit' when it is not known)."""
    return DATASET_STYLES.get(dataset or "", "mnist-digit")


class ImageError(ValueError):
    """An image that cannot be read or holds nothing to classify."""


def _pil():
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:  # pragma: no cover - Pillow is in the cli extra
        raise ImageError("reading images needs Pillow: pip install pillow.") from None
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


def _border(gray: np.ndarray) -> np.ndarray:
    return np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])


def _ink(gray: np.ndarray) -> np.ndarray:
    """Bright ink on black: invert a light background, remove the background level, crop to the ink."""
    gray = np.asarray(gray, dtype=np.float32)
    if gray.ndim != 2 or min(gray.shape) == 0:
        raise ImageError(f"expected a 2-D grayscale image, got shape {gray.shape}.")
    border = _border(gray)
    if np.median(border) > 0.5:  # light background (the border is mostly bright): invert
        gray, border = 1.0 - gray, 1.0 - border
    gray = np.clip(gray - np.median(border), 0, 1)
    if gray.max() <= 0.05:
        raise ImageError("the image is blank: no ink found to classify.")
    ink = gray > 0.1 * gray.max()
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    return gray[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def _fit(crop: np.ndarray, box: int, input_dim: int, resample) -> np.ndarray:
    """Scale ``crop``'s longer side to ``box`` (aspect kept) and centre it in an input_dim frame."""
    Image, _ = _pil()
    scale = box / max(crop.shape)
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))  # (w, h)
    resized = np.asarray(Image.fromarray(crop.astype(np.float32), mode="F").resize(size, resample),
                         dtype=np.float32)
    frame = np.zeros((input_dim, input_dim), np.float32)
    top, left = (input_dim - size[1]) // 2, (input_dim - size[0]) // 2
    frame[top:top + size[1], left:left + size[0]] = resized
    return np.clip(frame, 0, 1)


def fill_style(gray: np.ndarray, input_dim: int = 28) -> np.ndarray:
    """Fashion-MNIST's way: (H, W) in [0, 1] -> the object filling an (input_dim, input_dim) frame."""
    Image, _ = _pil()
    return _fit(_ink(gray), input_dim, input_dim, Image.LANCZOS)


def digits_style(gray: np.ndarray, input_dim: int = 8) -> np.ndarray:
    """scikit-learn digits' way: the digit fills the frame, area-averaged, in 17 grey levels (k / 16)."""
    Image, _ = _pil()
    frame = _fit(_ink(gray), input_dim, input_dim, Image.BOX)
    frame /= max(float(frame.max()), 1e-6)  # the strokes of a scanned digit are fully on
    return np.round(frame * 16) / 16


def mnist_style(gray: np.ndarray, input_dim: int = 28) -> np.ndarray:
    """(H, W) grayscale in [0, 1] -> (input_dim, input_dim) float32, white ink on black."""
    Image, _ = _pil()
    frame = _fit(_ink(gray), max(1, round(input_dim * 20 / 28)), input_dim, Image.LANCZOS)
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


STYLE_FUNCTIONS = {"mnist-digit": mnist_style, "fill": fill_style, "digits-8x8": digits_style}


class Prepared(NamedTuple):
    image: np.ndarray  # (input_dim, input_dim) float32 in [0, 1], bright ink on black
    method: str        # what was done: 'as-is', 'mnist-digit', 'fill' or 'digits-8x8'
    note: str | None = None  # a reason to doubt the prediction (a nearly empty drawing)


def _sparse_note(gray: np.ndarray) -> str | None:
    """Say so when the ink is a dot: scaled up to fill the frame, it still classifies as something."""
    ink = _ink(gray)
    side = max(gray.shape)
    if max(ink.shape) < 0.15 * side and side >= 16:
        return (f"the drawing is nearly empty (its ink spans {ink.shape[1]}x{ink.shape[0]} of {gray.shape[1]}x"
                f"{gray.shape[0]} pixels): the prediction means little; draw larger")
    return None


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown preprocessing {mode!r}; use one of {', '.join(MODES)}.")
    return mode


def preprocess(gray: np.ndarray, input_dim: int = 28, *, mode: str = "auto", style: str = "mnist-digit") -> Prepared:
    """(H, W) grayscale in [0, 1] -> the model's input, by ``mode`` and the dataset's ``style``."""
    check_mode(mode)
    if style not in STYLES:
        raise ValueError(f"unknown preprocessing style {style!r}; use one of {', '.join(STYLES)}.")
    gray = np.asarray(gray, dtype=np.float32)
    fits = gray.shape == (input_dim, input_dim)
    if mode == "none":
        if not fits:
            raise ImageError(f"--preprocess none takes images of exactly {input_dim}x{input_dim} pixels, got "
                             f"{gray.shape[1]}x{gray.shape[0]}; use --preprocess auto to resize it.")
        return Prepared(gray, "as-is")
    if mode == "auto" and fits and np.median(_border(gray)) <= 0.5:
        return Prepared(gray, "as-is")  # already a dataset image: bright on dark, the model's size
    used = "mnist-digit" if mode == "mnist-digit" else style
    return Prepared(STYLE_FUNCTIONS[used](gray, input_dim), used, _sparse_note(gray))


def prepare(source, input_dim: int = 28, *, mode: str = "auto", style: str = "mnist-digit") -> Prepared:
    """Path or bytes -> ``Prepared(image (input_dim, input_dim) float32, method)``."""
    return preprocess(load_image(source), input_dim, mode=mode, style=style)
