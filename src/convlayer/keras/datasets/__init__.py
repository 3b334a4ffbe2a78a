"""``keras.datasets``: ``mnist.load_data()`` and ``fashion_mnist.load_data()``.

They return ``((x_train, y_train), (x_test, y_test))`` as uint8 arrays, like Keras, read from
the same places as ``convlayer train`` (``convlayer.datasets.load``): ``$CONVLAYER_DATA_DIR``,
Debian's ``dataset-fashion-mnist``, the cache, else a download checked against the published MD5s.
"""

from __future__ import annotations

import numpy as np

from . import fashion_mnist, mnist

__all__ = ["mnist", "fashion_mnist"]


def load_uint8(name: str):
    """``((x_train, y_train), (x_test, y_test))`` of a convlayer dataset, as Keras' uint8 arrays."""
    from ... import datasets

    data = datasets.load(name)

    def to_bytes(images):  # convlayer holds k / 255 in float32; k comes back exactly
        return np.rint(images * np.float32(255)).astype(np.uint8)  # (N, 28, 28)

    return ((to_bytes(data.x_train), data.y_train.astype(np.uint8)),
            (to_bytes(data.x_test), data.y_test.astype(np.uint8)))
