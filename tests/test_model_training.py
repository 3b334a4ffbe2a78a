"""Loss, optimizers, MNISTModel, the tf shim, checkpoints, resume and parity with TensorFlow."""

import numpy as np
import pytest
import tensorflow as tf

from convlayer import checkpoint
from convlayer.datasets import Dataset
from convlayer.functional.losses import sparse_categorical_crossentropy
from convlayer.layers import Conv2D, Dense, MaxPooling2D
from convlayer.models import Callback, MNISTModel, Sequential
from convlayer.optimizers import SGD, Adam
from convlayer.training import TrainConfig, train


def test_loss_value_and_gradient_match_tensorflow(rng):
    logits = (5 * rng.standard_normal((16, 10))).astype(np.float32)
    logits[0, 3] = 80.0  # large logits stay finite (stable log-softmax)
    labels = rng.integers(0, 10, 16)
    loss, dlogits = sparse_categorical_crossentropy(logits, labels)
    lt = tf.constant(logits)
    with tf.GradientTape() as tape:
        tape.watch(lt)
        ref = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(labels, lt, from_logits=True))
    np.testing.assert_allclose(loss, ref.numpy(), rtol=1e-6)
    np.testing.assert_allclose(dlogits, tape.gradient(ref, lt).numpy(), rtol=1e-5, atol=1e-8)
    assert np.isfinite(loss)


@pytest.mark.parametrize("ours, theirs", [
    (lambda: SGD(0.1), lambda: tf.keras.optimizers.SGD(0.1)),
    (lambda: SGD(0.05, momentum=0.9), lambda: tf.keras.optimizers.SGD(0.05, momentum=0.9)),
    (lambda: SGD(0.05, momentum=0.9, nesterov=True), lambda: tf.keras.optimizers.SGD(0.05, momentum=0.9,
                                                                                     nesterov=True)),
    (lambda: Adam(), lambda: tf.keras.optimizers.Adam()),
    (lambda: Adam(0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-5),
     lambda: tf.keras.optimizers.Adam(0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-5)),
])
def test_optimizers_match_keras_over_several_steps(ours, theirs, rng):
    w0 = rng.standard_normal((4, 3)).astype(np.float32)
    grads = [rng.standard_normal((4, 3)).astype(np.float32) for _ in range(6)]
    opt, ref = ours(), theirs()
    w = w0.copy()
    var = tf.Variable(w0)
    for g in grads:
        opt.apply([("w", w, g)])
        ref.apply_gradients([(tf.constant(g), var)])
    np.testing.assert_allclose(w, var.numpy(), rtol=1e-5, atol=1e-7)


def test_adam_defaults_are_keras_defaults():
    opt = Adam()
    assert (opt.learning_rate, opt.beta_1, opt.beta_2, opt.epsilon) == (1e-3, 0.9, 0.999, 1e-7)
    with pytest.raises(ValueError, match="learning_rate must be a finite number"):
        Adam(-1)


def test_mnist_model_shapes_parameters_and_dropout_mode():
    model = MNISTModel(28, 10)
    assert model.count_params() == 3_274_634
    assert [l.name for l in model.layers][:4] == ["conv1", "pool1", "conv2", "pool2"]
    conv1 = model.layers[0]
    assert (conv1.filters, conv1.kernel_size, conv1.padding, conv1.activation.name) == (32, (5, 5), "same", "relu")
    x = np.random.default_rng(0).random((3, 784), dtype=np.float32)
    logits = model.model_layers(x, is_training=False)
    assert logits.shape == (3, 10) and logits.dtype == np.float32
    np.testing.assert_array_equal(logits, model.model_layers(x.reshape(3, 28, 28), is_training=False))
    assert not np.array_equal(model.model_layers(x, is_training=True), logits)  # dropout active
    weights_before = [w.copy() for w in model.get_weights()]
    model.model_layers(x, is_training=True)
    assert all(np.array_equal(a, b) for a, b in zip(weights_before, model.get_weights()))  # built once, reused
    assert MNISTModel(8, 10).model_layers(np.zeros((2, 64)), is_training=False).shape == (2, 10)
    with pytest.raises(ValueError, match="expects images of 28x28 pixels"):
        model.model_layers(np.zeros((2, 100)), is_training=False)
    assert "Total params: 3,274,634" in model.summary()


LESSON_CODE = '''
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
            activation='relu',
            name='conv1')(reshaped_inputs)
        return conv1
'''


def test_the_lessons_code_runs_with_only_its_import_changed():
    namespace = {}
    exec("from convlayer import tf\n" + LESSON_CODE, namespace)
    lesson_model = namespace["MNISTModel"](28, 10)
    x = np.random.default_rng(1).random((4, 784), dtype=np.float32)
    conv1 = lesson_model.model_layers(x, is_training=True)
    assert conv1.shape == (4, 28, 28, 32)
    assert conv1.min() >= 0  # relu
    from convlayer import tf as shim
    layer = shim.keras.layers.Conv2D(filters=32, kernel_size=[5, 5], padding="same", activation=shim.nn.relu)
    assert layer(shim.reshape(x, [-1, 28, 28, 1])).shape == (4, 28, 28, 32)


def keras_twin(model: MNISTModel, dtype="float32"):
    layers = tf.keras.layers
    twin = tf.keras.Sequential([
        tf.keras.Input((28, 28, 1), dtype=dtype),
        layers.Conv2D(32, 5, padding="same", activation="relu", dtype=dtype), layers.MaxPooling2D(2, 2, dtype=dtype),
        layers.Conv2D(64, 5, padding="same", activation="relu", dtype=dtype), layers.MaxPooling2D(2, 2, dtype=dtype),
        layers.Flatten(dtype=dtype), layers.Dense(1024, activation="relu", dtype=dtype), layers.Dense(10, dtype=dtype)])
    twin.set_weights(model.get_weights())
    return twin


def adam_losses_side_by_side(dtype, steps):
    # Learnable data (noisy class prototypes), the same batches for both frameworks.
    rng = np.random.default_rng(7)
    y = rng.integers(0, 10, (steps, 16))
    protos = rng.random((10, 28, 28, 1))
    x = np.clip(protos[y] + 0.3 * rng.standard_normal((steps, 16, 28, 28, 1)), 0, 1).astype(dtype)
    model = MNISTModel(28, 10, seed=3, dtype=dtype)
    model.layers[6].rate = 0.0  # dropout off, as in the twin
    model.compile("adam")
    twin = keras_twin(model, dtype)
    opt = tf.keras.optimizers.Adam()
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype=dtype)

    @tf.function
    def tf_step(xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, twin(xb, training=True))
        opt.apply_gradients(zip(tape.gradient(loss, twin.trainable_variables), twin.trainable_variables))
        return loss

    ours = [model.train_step(xb, yb)[0] for xb, yb in zip(x, y)]
    theirs = [float(tf_step(tf.constant(xb), tf.constant(yb))) for xb, yb in zip(x, y)]
    return np.array(ours), np.array(theirs)


def test_fifty_adam_steps_agree_with_tensorflow():
    # float64 on both sides: identical math shows as agreement far below 1e-4 after 50 steps.
    ours, theirs = adam_losses_side_by_side("float64", 50)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4)
    assert ours[-1] < 0.5 * ours[0]  # and it learns


def test_first_adam_steps_agree_with_tensorflow_in_float32():
    # In float32, Adam turns the sign of near-zero gradients (where summation order decides)
    # into whole learning-rate steps, so two correct implementations drift apart after ~8
    # steps (a 1e-6 nudge to our own weights drifts as far); the first steps must agree.
    ours, theirs = adam_losses_side_by_side("float32", 6)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)


def tiny_dataset(n_train=96, n_test=40, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    y_train, y_test = rng.integers(0, 3, n_train), rng.integers(0, 3, n_test)
    protos = rng.random((3, dim, dim)).astype(np.float32)

    def images(labels):
        return np.clip(protos[labels] + 0.2 * rng.standard_normal((len(labels), dim, dim)), 0, 1).astype(np.float32)

    x_train, x_test = images(y_train), images(y_test)
    return Dataset("tiny", x_train[:80], y_train[:80], x_train[80:], y_train[80:], x_test, y_test,
                   ("a", "b", "c"), dim, 3, "generated in the test")


def test_checkpoint_round_trip_is_bit_identical(tmp_path, rng):
    model = MNISTModel(8, 3, seed=1)
    model.compile("adam")
    x = rng.random((8, 8, 8), dtype=np.float32)
    model.train_step(x, rng.integers(0, 3, 8))
    path = checkpoint.save(tmp_path / "m.npz", model, optimizer=model.optimizer, meta={"dataset": "tiny"})
    loaded = checkpoint.load(path)
    np.testing.assert_array_equal(loaded.model.predict(x), model.predict(x))
    assert loaded.optimizer.iterations == 1 and loaded.meta["dataset"] == "tiny"
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # atomic write leaves no temp file
    with np.load(path, allow_pickle=False) as data:  # no pickle needed to read it
        assert "weights/conv1/kernel" in data.files


def test_checkpoint_of_another_architecture_names_the_layer_and_shapes(tmp_path):
    path = checkpoint.save(tmp_path / "m.npz", MNISTModel(8, 3))
    small = MNISTModel(8, 3)
    big = MNISTModel(28, 10)
    weights = {f"{l.name}/{k}": v for l in small.layers for k, v in l.params.items()}
    with pytest.raises(checkpoint.CheckpointError, match=r"layer 'dense' kernel has shape \(256, 1024\) in the "
                                                         r"checkpoint but \(3136, 1024\)"):
        checkpoint.load_weights(big, weights, path)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(checkpoint.CheckpointError, match="not a convlayer checkpoint"):
        checkpoint.load(tmp_path / "bad.npz")


def test_resumed_training_ends_with_the_same_weights(tmp_path):
    data = tiny_dataset()
    base = dict(dataset="tiny", batch_size=16, seed=5, validation_split=0.0)
    full = train(TrainConfig(epochs=3, output_dir=str(tmp_path / "full"), **base), dataset=data)

    class Interrupt(Callback):  # kill the run at the start of epoch 2, after epoch 1 was saved
        def on_epoch_begin(self, epoch, model):
            if epoch == 1:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(epochs=3, output_dir=str(tmp_path / "part"), **base), dataset=data, callbacks=[Interrupt()])
    resumed = train(TrainConfig(epochs=3), resume=tmp_path / "part" / "last.npz", dataset=data)
    a = checkpoint.load(full.last_path).model.get_weights()
    b = checkpoint.load(resumed.last_path).model.get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert len(resumed.history) == 3
    assert (tmp_path / "part" / "log.csv").read_text().count("\n") == 4  # header + 3 epochs


def test_sequential_fit_learns_and_reports_history(rng):
    data = tiny_dataset(dim=8)
    model = Sequential([Conv2D(4, 3, padding="same", activation="relu", seed=0), MaxPooling2D(2),
                        __import__("convlayer.layers", fromlist=["Flatten"]).Flatten(), Dense(3, seed=1)])
    model.compile("adam", learning_rate=0.01)
    history = model.fit(data.x_train[..., None], data.y_train, epochs=5, batch_size=16,
                        validation_data=(data.x_val[..., None], data.y_val), rng=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.evaluate(data.x_test[..., None], data.y_test)["accuracy"] > 0.6
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        model.fit(data.x_train[..., None], data.y_train, batch_size=0)
    with pytest.raises(ValueError, match="same number of samples"):
        model.fit(data.x_train[..., None], data.y_train[:3])


def test_memory_stays_bounded_for_large_batches():
    import tracemalloc

    from convlayer.functional.conv import conv2d_forward

    rng = np.random.default_rng(0)
    x = rng.random((512, 14, 14, 32), dtype=np.float32)  # conv2's input, 512 images (12.8 MB)
    kernel = rng.random((5, 5, 32, 64), dtype=np.float32)
    tracemalloc.start()
    y, _ = conv2d_forward(x, kernel, np.zeros(64, np.float32), padding=((2, 2), (2, 2)), keep_cache=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    full_im2col = 512 * 14 * 14 * 5 * 5 * 32 * 4  # 321 MB if built in one piece
    assert peak < y.nbytes + x.nbytes + 16 * 2**20 < full_im2col / 4

    model = MNISTModel(28, 10)
    images = rng.random((3000, 28, 28), dtype=np.float32)
    tracemalloc.start()
    logits = model.predict(images)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert logits.shape == (3000, 10)
    assert peak < 80 * 2**20  # activations of one 128-image batch, not of 3,000 images


def test_random_shift_moves_each_image_by_at_most_the_shift():
    from convlayer.training import random_shift

    x = np.zeros((60, 6, 6), np.float32)
    x[:, 2:4, 2:4] = 1.0  # a 2x2 blob in the middle
    shifted = random_shift(x, 1, np.random.default_rng(0))
    assert shifted.shape == x.shape and shifted.dtype == x.dtype
    np.testing.assert_array_equal(shifted.sum(axis=(1, 2)), 4.0)  # nothing falls off the frame
    rows = np.argmax(shifted.any(axis=2), axis=1)  # top row of each blob
    cols = np.argmax(shifted.any(axis=1), axis=1)
    assert set(rows) == {1, 2, 3} and set(cols) == {1, 2, 3}  # every offset in [-1, 1] occurs
    np.testing.assert_array_equal(random_shift(x, 1, np.random.default_rng(0)), shifted)  # seeded
