"""``keras.datasets.fashion_mnist``."""

from __future__ import annotations


def load_data():
    """Fashion-MNIST as ``((x_train, y_train), (x_test, y_test))``: uint8 images (60000, 28, 28) /
    (10000, 28, 28), uint8 labels; from convlayer's sources (Debian's package, ``$CONVLAYER_DATA_DIR``,
    the cache, a verified download)."""
    from . import load_uint8

    return load_uint8("fashion-mnist")
