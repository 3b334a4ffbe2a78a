"""Datasets for convlayer: MNIST, Fashion-MNIST and scikit-learn's 8x8 digits.

The public surface:

- ``load(name, ...) -> Dataset``: float32 images in [0, 1] shaped ``(N, H, W)``, int64 labels,
  train / validation / test splits, and where the files came from.
- ``available()``: which datasets load offline on this machine (for ``convlayer datasets``).
- ``iterate_batches(x, y, batch_size, shuffle=..., rng=...)``: one epoch of minibatches.
- ``read_idx(path)`` / ``write_idx(path, array)``: the IDX file format, strictly checked.
- ``DatasetError`` and ``IDXError``: both ``ValueError`` subclasses.

Download mirrors and checksums live in ``convlayer.datasets.sources`` (``MNIST_MIRRORS``,
``MNIST_CHECKSUMS``, ...), where tests and private mirrors can override them.

Example:
    >>> import numpy as np
    >>> from convlayer.datasets import load, iterate_batches
    >>> data = load("digits")
    >>> xb, yb = next(iterate_batches(data.x_train, data.y_train, 32, shuffle=True, rng=np.random.default_rng(0)))
    >>> xb.shape, yb.dtype
    ((32, 8, 8), dtype('int64'))
"""

from .dataset import Dataset, DatasetError, iterate_batches
from .idx import IDXError, read_idx, write_idx
from .sources import DATASET_NAMES, available, load

__all__ = [
    "DATASET_NAMES",
    "Dataset",
    "DatasetError",
    "IDXError",
    "available",
    "iterate_batches",
    "load",
    "read_idx",
    "write_idx",
]
