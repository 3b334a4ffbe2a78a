"""Layers with Keras names and semantics; each is thin state around ``convlayer.functional``."""

from .base import Layer
from .conv import Conv2D
from .core import Activation, Dense, Dropout, Flatten, Reshape
from .pooling import AveragePooling2D, AvgPool2D, MaxPool2D, MaxPooling2D

Convolution2D = Conv2D

__all__ = ["Layer", "Conv2D", "Convolution2D", "Dense", "Dropout", "Flatten", "Reshape", "Activation",
           "MaxPooling2D", "MaxPool2D", "AveragePooling2D", "AvgPool2D"]

LAYER_CLASSES = {cls.__name__: cls for cls in (Conv2D, Dense, Dropout, Flatten, Reshape, Activation, MaxPooling2D,
                                               AveragePooling2D)}
