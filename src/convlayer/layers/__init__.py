"""Layers with Keras names and semantics; each is thin state around ``convlayer.functional``."""

from .base import Layer
from .conv import Conv2D

__all__ = ["Layer", "Conv2D"]
