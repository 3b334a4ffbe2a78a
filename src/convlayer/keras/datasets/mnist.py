"""``keras.datasets.mnist``."""

from __future__ import annotations


def load_data(path="mnist.npz"):
    """MNIST as ``((x_train, y_train), (x_test, y_test))``: uint8 images (60000, 28, 28) / (10000, 28, 28),
    uint8 labels; from convlayer's sources (``$CONVLAYER_DATA_DIR``, the cache, a verified download)."""
    if path != "mnist.npz":
        raise ValueError(f"mnist.load_data: convlayer reads the four IDX files, not {path!r}; put them in a folder "
                         "and set $CONVLAYER_DATA_DIR to it.")
    from . import load_uint8

    return load_uint8("mnist")
