"""``convlayer exercise``: a starter file for writing your own convolution; never a solution.

Each starter has the function's signature, a docstring that states the contract (shapes, the
kernel layout, TensorFlow's 'same' rule, strides as an int or a pair) and
``raise NotImplementedError`` where the code goes. ``convlayer check FILE`` then runs it.
"""

from __future__ import annotations

from ..clitools import UsageError, output_path, say
from ..fileio import atomic_write_text

_SAME = '''\
    'valid' adds no zeros. 'same' (TensorFlow's rule) adds the fewest zeros that give
    ceil(in / stride) outputs per axis: a total of max((out - 1) * stride + k - in, 0),
    half before and half after; when the total is odd, the extra row goes at the bottom
    and the extra column at the right.'''

STARTERS = {
    "convolve": f'''\
"""My convolution: one channel, one filter. Check it with: convlayer check {{path}}"""

import numpy as np


def convolve(image, kernel, bias=0.0, stride=1, padding="valid"):
    """Slide ``kernel`` over ``image``; each output cell is one dot product plus ``bias``.

    Args:
        image: (H, W) array of numbers.
        kernel: (kh, kw) array, laid on each window as it is (cross-correlation, as in
            every CNN library: not flipped).
        bias: a number, added once to every output cell.
        stride: an int, or a pair (rows, columns): how far the window moves each step.
        padding: 'valid' or 'same'.

    Returns:
        (Ho, Wo) float array: out[i, j] = sum(window * kernel) + bias, where the window
        starts at row i * stride_rows, column j * stride_columns of the (padded) image.
        Without padding Ho = floor((H - kh) / stride_rows) + 1, and the same for Wo.

{_SAME}
    """
    raise NotImplementedError("write convolve")
''',
    "conv2d": f'''\
"""My convolution layer. Check it with: convlayer check {{path}}"""

import numpy as np


def conv2d(x, kernel, bias, strides=(1, 1), padding="valid"):
    """A convolution layer's forward pass on a batch of images.

    Args:
        x: (N, H, W, C) array: N images, H rows, W columns, C channels.
        kernel: (kh, kw, C, F) array (HWIO, Keras' layout): kernel[:, :, c, f] is filter
            f's matrix for input channel c. Not flipped (cross-correlation).
        bias: (F,) array: bias[f] is added once to each cell of output channel f.
        strides: an int, or a pair (rows, columns).
        padding: 'valid' or 'same'.

    Returns:
        (N, Ho, Wo, F) float array: out[n, i, j, f] = the sum over the window's rows,
        columns and all C channels of window * kernel[:, :, :, f], plus bias[f]; the
        window starts at row i * strides[0], column j * strides[1] of the padded image.
        Ho = floor((H + pad_top + pad_bottom - kh) / strides[0]) + 1; Wo alike.

{_SAME}
    """
    raise NotImplementedError("write conv2d")
''',
    "backward": f'''\
"""My convolution layer's gradients. Check them with: convlayer check {{path}}"""

import numpy as np


def conv2d_backward(dy, x, kernel, strides=(1, 1), padding="valid"):
    """Gradients of out = conv2d(x, kernel, bias, strides, padding) given dy = dLoss/dout.

    Args:
        dy: (N, Ho, Wo, F) array, the gradient of the loss with respect to the output.
        x: (N, H, W, C) array, the forward pass's input.
        kernel: (kh, kw, C, F) array (HWIO), not flipped in the forward pass.
        strides: an int, or a pair (rows, columns).
        padding: 'valid' or 'same', as in the forward pass.

    Returns:
        (dx, dkernel, dbias): dx (N, H, W, C) like x, dkernel (kh, kw, C, F) like kernel,
        dbias (F,). Each is a sum over every place its value was used in the forward pass:
        every window position of every image.

{_SAME}
    """
    raise NotImplementedError("write conv2d_backward")
''',
    "model": '''\
"""The lesson's MNIST CNN on convlayer's tf. Write conv1, then: convlayer check {path}"""

from convlayer import tf  # TensorFlow's names, on NumPy: the lesson's code runs as written


class MNISTModel(object):
    # Model Initialization
    def __init__(self, input_dim, output_size):
        self.input_dim = input_dim
        self.output_size = output_size

    # CNN Layers
    def model_layers(self, inputs, is_training):
        reshaped_inputs = tf.reshape(
            inputs, [-1, self.input_dim, self.input_dim, 1])
        # Convolutional Layer #1, named 'conv1': 32 filters of 5x5 on reshaped_inputs,
        # keeping the 28x28 size ('same'), ReLU after it. Write it here as
        #     conv1 = tf.keras.layers.Conv2D(...)(reshaped_inputs)
        # and delete the next line.
        raise NotImplementedError("write conv1")
        # Pooling Layer #1
        pool1 = tf.keras.layers.MaxPooling2D(pool_size=[2, 2], strides=2, name='pool1')(conv1)
        # Convolutional Layer #2 and Pooling Layer #2
        conv2 = tf.keras.layers.Conv2D(
            filters=64,
            kernel_size=[5, 5],
            padding='same',
            activation=tf.nn.relu,
            name='conv2')(pool1)
        pool2 = tf.keras.layers.MaxPooling2D(pool_size=[2, 2], strides=2, name='pool2')(conv2)
        # Dense Layer
        hwc = pool2.shape.as_list()
        flattened = tf.reshape(pool2, [-1, hwc[1] * hwc[2] * hwc[3]])
        dense = tf.keras.layers.Dense(units=1024, activation=tf.nn.relu, name='dense')(flattened)
        dropout = tf.keras.layers.Dropout(rate=0.4)(dense, training=is_training)
        # Logits Layer
        logits = tf.keras.layers.Dense(units=self.output_size, name='logits')(dropout)
        return logits
''',
}


def starter(which: str, path: str) -> str:
    """The starter file's text for ``which`` (convolve, conv2d, backward, model)."""
    return STARTERS[which].format(path=path)


def run(which: str = "convolve", *, out=None, force: bool = False) -> int:
    """The ``exercise`` command: write the starter file (never over an existing one without --force)."""
    if which not in STARTERS:
        raise UsageError(f"no exercise {which!r}; choose one of {', '.join(STARTERS)}.")
    path = output_path(out or f"my_{which}.py", what="--out")
    if path.exists() and not force:
        raise UsageError(f"{path} already exists; pass --force to overwrite it, or --out another file.")
    atomic_write_text(path, starter(which, str(path)))
    function = {"backward": "conv2d_backward", "model": "MNISTModel's conv1"}.get(which, which)
    say(f"Wrote {path}: write {function} where it says NotImplementedError, then run:")
    say(f"  convlayer check {path}")
    return 0
