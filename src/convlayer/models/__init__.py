"""Models: ``Sequential`` (a list of layers) and the lesson's ``MNISTModel``."""

from .mnist import MNISTModel
from .sequential import Callback, History, Sequential

MODEL_CLASSES = {"Sequential": Sequential, "MNISTModel": MNISTModel}

__all__ = ["Sequential", "MNISTModel", "Callback", "History", "MODEL_CLASSES"]
