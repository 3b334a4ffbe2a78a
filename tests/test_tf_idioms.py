"""The lesson's network written in TensorFlow's tutorial style runs on convlayer.tf unchanged but for
its import line, and gives TensorFlow's logits from the same weights."""

import numpy as np
import pytest
import tensorflow as real_tf

from convlayer import tf

# The whole lesson model as TensorFlow's MNIST tutorial writes it; `initial(name)` supplies the
# same starting weights to both frameworks (any callable initializer would do).
LESSON_MODEL = '''
class MNISTModel(object):
    # Model Initialization
    def __init__(self, input_dim, output_size):
        self.input_dim = input_dim
        self.output_size = output_size

    # CNN Layers
    def model_layers(self, inputs, is_training):
        reshaped_inputs = tf.reshape(
            inputs, [-1, self.input_dim, self.input_dim, 1])
        # Convolutional Layer #1
        conv1 = tf.keras.layers.Conv2D(
            filters=32,
            kernel_size=[5, 5],
            padding='same',
            activation=tf.nn.relu,
            kernel_initializer=initial('conv1/kernel'),
            bias_initializer=initial('conv1/bias'),
            name='conv1')(reshaped_inputs)
        # Pooling Layer #1
        pool1 = tf.keras.layers.MaxPooling2D(pool_size=[2, 2], strides=2, name='pool1')(conv1)
        # Convolutional Layer #2 and Pooling Layer #2
        conv2 = tf.keras.layers.Conv2D(
            filters=64,
            kernel_size=[5, 5],
            padding='same',
            activation=tf.nn.relu,
            kernel_initializer=initial('conv2/kernel'),
            bias_initializer=initial('conv2/bias'),
            name='conv2')(pool1)
        pool2 = tf.keras.layers.MaxPooling2D(pool_size=[2, 2], strides=2, name='pool2')(conv2)
        # Dense Layer
        hwc = pool2.shape.as_list()
        flattened = tf.reshape(pool2, [-1, hwc[1] * hwc[2] * hwc[3]])
        dense = tf.keras.layers.Dense(units=1024, activation=tf.nn.relu,
                                      kernel_initializer=initial('dense/kernel'),
                                      bias_initializer=initial('dense/bias'), name='dense')(flattened)
        dropout = tf.keras.layers.Dropout(rate=0.4)(dense, training=is_training)
        # Logits Layer
        logits = tf.keras.layers.Dense(units=self.output_size,
                                       kernel_initializer=initial('logits/kernel'),
                                       bias_initializer=initial('logits/bias'), name='logits')(dropout)
        return logits

    def predictions(self, logits):
        return {
            "classes": tf.argmax(input=logits, axis=1),
            "probabilities": tf.nn.softmax(logits, name="softmax_tensor"),
            "batch": tf.shape(logits)[0],
        }
'''


def shared_initializers(seed):
    """``initial(name)``: an initializer that draws each named weight once and gives both frameworks that array."""
    rng, drawn = np.random.default_rng(seed), {}

    def initial(name):
        def init(shape, dtype=None, *_):
            if name not in drawn:
                shape = tuple(int(d) for d in shape)
                fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 100
                drawn[name] = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
            return drawn[name]
        return init

    return initial


def run(tf_module, inputs, *, is_training=False, seed=0):
    namespace = {"tf": tf_module, "initial": shared_initializers(seed)}
    exec(LESSON_MODEL, namespace)
    model = namespace["MNISTModel"](28, 10)
    logits = model.model_layers(inputs, is_training=is_training)
    return logits, model.predictions(logits)


def test_the_tutorial_style_model_gives_tensorflows_logits(rng):
    images = rng.random((6, 784), dtype=np.float32)
    logits, predictions = run(tf, images)
    their_logits, their_predictions = run(real_tf, images)
    assert logits.shape.as_list() == their_logits.shape.as_list() == [6, 10]
    np.testing.assert_allclose(logits, their_logits.numpy(), rtol=1e-5, atol=1e-5 * np.abs(logits).max())
    np.testing.assert_array_equal(predictions["classes"], their_predictions["classes"].numpy())
    np.testing.assert_allclose(predictions["probabilities"], their_predictions["probabilities"].numpy(), atol=1e-6)
    assert predictions["batch"] == their_predictions["batch"].numpy() == 6
    assert predictions["classes"].dtype == np.int64 and predictions["probabilities"].shape.as_list() == [6, 10]


def test_dropout_follows_is_training(rng):
    images = rng.random((4, 28, 28), dtype=np.float32)
    eval_logits, _ = run(tf, images, is_training=False)
    again, _ = run(tf, images, is_training=False)
    train_logits, _ = run(tf, images, is_training=True)
    np.testing.assert_array_equal(eval_logits, again)
    assert not np.allclose(train_logits, eval_logits)


def test_tensors_are_numpy_arrays_with_tensorflows_shape():
    x = tf.reshape(np.arange(24, dtype=np.float32), [-1, 2, 3, 4])
    assert x.shape.as_list() == [1, 2, 3, 4] and x.shape == (1, 2, 3, 4) and x.shape.rank == 4
    assert x.shape.num_elements() == 24
    assert type(x.sum()) is np.float32 and float(np.mean(x)) == 11.5  # reductions give plain scalars
    assert (x + 1).shape.as_list() == [1, 2, 3, 4]  # NumPy arithmetic keeps the shape's as_list()
    assert type(np.asarray(x)) is np.ndarray and type(x.numpy()) is np.ndarray
    assert tf.shape(x).tolist() == [1, 2, 3, 4] and tf.shape(x).dtype == np.int32
    np.testing.assert_array_equal(tf.argmax(np.array([[1, 5], [7, 2]])), [1, 0])  # axis 0 by default, as TF
    np.testing.assert_allclose(tf.nn.softmax(np.array([1000.0, 1000.0])), [0.5, 0.5])  # stable
    with pytest.raises(ValueError, match=r"cannot reshape an array of shape \(1, 2, 3, 4\) \(24 values\) "
                                         r"into \[-1, 5\]"):
        tf.reshape(x, [-1, 5])


def test_the_tf_names_match_tensorflows_on_the_same_values(rng):
    x = rng.standard_normal((3, 5)).astype(np.float32)
    labels = np.array([0, 4, 2])
    for ours, theirs in ((tf.nn.softmax(x), real_tf.nn.softmax(x)), (tf.nn.log_softmax(x), real_tf.nn.log_softmax(x)),
                         (tf.argmax(x, axis=1), real_tf.argmax(x, axis=1)), (tf.reduce_mean(x, axis=0),
                                                                            real_tf.reduce_mean(x, axis=0)),
                         (tf.one_hot(labels, 5), real_tf.one_hot(labels, 5)),
                         (tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=x),
                          real_tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=x))):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-6, atol=1e-6)
        assert ours.shape.as_list() == theirs.shape.as_list()
