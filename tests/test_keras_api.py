"""convlayer.keras runs Keras code as written: the same program text, run with real Keras and with
convlayer (only the import lines differ), reaches comparable accuracy; compile refuses what it does
not know by name; softmax outputs train as probabilities; datasets, to_categorical and files behave
as Keras' do."""

import re
import socket
import textwrap

import keras as real_keras

import numpy as np
import pytest

from convlayer import checkpoint
from convlayer import keras
from convlayer.datasets import sources, write_idx
from convlayer.keras import layers
from convlayer.models import Sequential as EngineSequential

REAL_IMPORTS = "import numpy as np\nimport keras\nfrom keras import layers\n"
CONVLAYER_IMPORTS = "import numpy as np\nfrom convlayer import keras\nfrom convlayer.keras import layers\n"

# Shared data preparation, in the program text itself: 8x8 digits in 16 grey levels.
DIGITS = '''
from sklearn.datasets import load_digits
digits = load_digits()
order = np.random.default_rng(0).permutation(len(digits.target))
images, labels = digits.images[order], digits.target[order]
(x_train, y_train), (x_test, y_test) = (images[:500], labels[:500]), (images[500:800], labels[500:800])
'''

# The Keras "simple MNIST convnet" example, scaled to 8x8 digits.
CONVNET = DIGITS + '''
num_classes = 10
input_shape = (8, 8, 1)
x_train = x_train.astype("float32") / 16
x_test = x_test.astype("float32") / 16
x_train = np.expand_dims(x_train, -1)
x_test = np.expand_dims(x_test, -1)
y_train = keras.utils.to_categorical(y_train, num_classes)
y_test = keras.utils.to_categorical(y_test, num_classes)

keras.utils.set_random_seed(1)
model = keras.Sequential(
    [
        keras.Input(shape=input_shape),
        layers.Conv2D(16, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.25),
        layers.Dense(num_classes, activation="softmax"),
    ]
)
model.summary()
model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
history = model.fit(x_train, y_train, batch_size=32, epochs=12, validation_split=0.1, verbose=0)
score = model.evaluate(x_test, y_test, verbose=0)
'''

# Functional API on a chain, integer labels, loss and optimizer objects, validation_data, a callback.
FUNCTIONAL = DIGITS + '''
x_train = (x_train / 16.0).astype("float32")[..., None]
x_test = (x_test / 16.0).astype("float32")[..., None]
keras.utils.set_random_seed(2)
inputs = keras.Input(shape=(8, 8, 1))
x = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
x = layers.MaxPooling2D(2)(x)
x = layers.Flatten()(x)
x = layers.Dense(32, activation="relu")(x)
outputs = layers.Dense(10)(x)
model = keras.Model(inputs=inputs, outputs=outputs, name="digits_cnn")
model.compile(optimizer=keras.optimizers.Adam(learning_rate=3e-3),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=20)
history = model.fit(x_train, y_train, batch_size=64, epochs=8, validation_data=(x_test, y_test),
                    callbacks=[stop], verbose=0)
score = model.evaluate(x_test, y_test, verbose=0)
probabilities = model.predict(x_test[:5], verbose=0)
'''

# Keras 2 style: input_shape= on the first layer, string optimizer and sparse loss.
KERAS2 = DIGITS + '''
x_train = (x_train / 16.0).reshape(-1, 8, 8, 1)
x_test = (x_test / 16.0).reshape(-1, 8, 8, 1)
keras.utils.set_random_seed(3)
model = keras.Sequential()
model.add(layers.Conv2D(8, (3, 3), activation="relu", input_shape=(8, 8, 1)))
model.add(layers.Flatten())
model.add(layers.Dense(10, activation="softmax"))
model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(x_train, y_train, epochs=25, batch_size=16, verbose=0)
loss, acc = model.evaluate(x_test, y_test, verbose=0)
score = [loss, acc]
'''


def run_program(source, imports):
    namespace = {}
    exec(compile(imports + textwrap.dedent(source), "<keras program>", "exec"), namespace)
    return namespace


@pytest.mark.parametrize("program", [CONVNET, FUNCTIONAL, KERAS2], ids=["convnet", "functional", "keras2"])
def test_a_keras_program_runs_unchanged_and_learns_like_keras(program, capsys):
    ours = run_program(program, CONVLAYER_IMPORTS)
    theirs = run_program(program, REAL_IMPORTS)
    our_loss, our_acc = ours["score"]
    their_loss, their_acc = theirs["score"]
    assert our_acc > 0.75 and their_acc > 0.75, (our_acc, their_acc)  # chance is 0.10
    assert abs(our_acc - their_acc) < 0.08, (our_acc, their_acc)
    assert abs(our_loss - their_loss) < 0.25, (our_loss, their_loss)
    assert set(ours["history"].history) == set(theirs["history"].history)
    assert len(ours["history"].history["loss"]) == len(theirs["history"].history["loss"])
    assert ours["model"].count_params() == theirs["model"].count_params()
    assert isinstance(ours["model"], EngineSequential)  # an ordinary convlayer model
    if "probabilities" in ours:
        assert isinstance(ours["probabilities"], np.ndarray) and ours["probabilities"].shape == (5, 10)
    printed = capsys.readouterr().out
    if program is CONVNET:
        assert printed.count("Total params: 1,610 (6.29 KB)") == 2  # both summaries, same count and size
        # Layer names count per process, in Keras as here: 'conv2d', or 'conv2d_3' after other tests.
        assert re.search(r"│ conv2d(_\d+)? \(Conv2D\)", printed)
    print(f"accuracy: convlayer {ours['score'][1]:.4f}, keras {theirs['score'][1]:.4f}")


def test_keras_files_both_ways(tmp_path):
    """convlayer's .keras opens in real Keras with the same outputs, and real Keras' .keras here."""
    ours = run_program(KERAS2, CONVLAYER_IMPORTS)
    model, x_test = ours["model"], ours["x_test"].astype(np.float32)
    model.save(tmp_path / "ours.keras")
    theirs = real_keras.saving.load_model(tmp_path / "ours.keras")
    np.testing.assert_allclose(theirs.predict(x_test, verbose=0), model.predict(x_test, verbose=0), atol=1e-6)

    back = keras.models.load_model(tmp_path / "ours.keras")
    np.testing.assert_array_equal(back.predict(x_test, verbose=0), model.predict(x_test, verbose=0))
    assert back.evaluate(x_test, ours["y_test"], verbose=0) == pytest.approx(ours["score"], rel=1e-6)  # compiled

    real_model = run_program(FUNCTIONAL, REAL_IMPORTS)["model"]
    real_model.save(tmp_path / "theirs.keras")
    imported = keras.models.load_model(tmp_path / "theirs.keras")  # compiled as Keras saved it
    np.testing.assert_allclose(imported.predict(x_test, verbose=0), real_model.predict(x_test, verbose=0),
                               atol=1e-5)
    assert type(imported.layers[0]) is layers.Conv2D
    assert imported.keras_loss.from_logits and imported.optimizer.learning_rate == pytest.approx(3e-3)
    np.testing.assert_allclose(imported.evaluate(x_test, ours["y_test"], verbose=0),
                               real_model.evaluate(x_test, ours["y_test"], verbose=0), rtol=1e-5)
    real_model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    real_model.save(tmp_path / "rmsprop.keras")
    with pytest.warns(UserWarning, match="loaded uncompiled"):
        assert keras.models.load_model(tmp_path / "rmsprop.keras").optimizer is None


def test_npz_round_trip_keeps_the_optimizer_and_is_an_ordinary_checkpoint(tmp_path, rng):
    x = rng.random((64, 8, 8, 1), dtype=np.float32)
    y = rng.integers(0, 10, 64)
    keras.utils.set_random_seed(4)
    model = keras.Sequential([keras.Input((8, 8, 1)), layers.Conv2D(4, 3, activation="relu"), layers.Flatten(),
                              layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
    model.save(tmp_path / "m.npz")

    engine_view = checkpoint.load(tmp_path / "m.npz")  # what the CLI's evaluate/predict read
    assert type(engine_view.model) is EngineSequential and engine_view.optimizer.iterations == 4
    back = keras.models.load_model(tmp_path / "m.npz")
    assert back.optimizer.iterations == 4 and back.optimizer.learning_rate == 0.01
    assert back.metrics_names == ["loss", "accuracy"]
    np.testing.assert_array_equal(back.predict(x, verbose=0), model.predict(x, verbose=0))
    # Continuing from the file is continuing the run: the same next epoch as the live model.
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
    back.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), back.get_weights()):
        np.testing.assert_array_equal(a, b)

    with pytest.raises(ValueError, match=r"\.h5 is read by load_model, not written"):
        model.save(tmp_path / "m.h5")
    with pytest.raises(ValueError, match="overwrite=False"):
        model.save(tmp_path / "m.npz", overwrite=False)


def test_softmax_outputs_train_as_probabilities_exactly_like_logits():
    """A softmax layer with Keras' default from_logits=False follows the same path as logits with
    from_logits=True: the gradient is (p - y) / N either way, so the weights stay equal."""
    data = run_program(DIGITS, CONVLAYER_IMPORTS)
    x = (data["x_train"] / 16).astype(np.float32)[..., None]
    y = keras.utils.to_categorical(data["y_train"], 10)

    def train(activation, loss):
        keras.utils.set_random_seed(5)
        model = keras.Sequential([keras.Input((8, 8, 1)), layers.Conv2D(8, 3, activation="relu"), layers.Flatten(),
                                  layers.Dense(10, activation=activation)])
        model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
        history = model.fit(x, y, batch_size=32, epochs=10, verbose=0)
        return model, history

    probs_model, probs_history = train("softmax", "categorical_crossentropy")
    logits_model, _ = train(None, keras.losses.CategoricalCrossentropy(from_logits=True))
    for a, b in zip(probs_model.get_weights(), logits_model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert probs_history.history["accuracy"][-1] > 0.9
    x_test = (data["x_test"] / 16).astype(np.float32)[..., None]
    assert probs_model.evaluate(x_test, data["y_test"][:, None] == np.arange(10), verbose=0)[1] > 0.88
    np.testing.assert_allclose(probs_model.predict(x_test, verbose=0).sum(axis=1), 1, rtol=1e-5)


def small_model(last_activation="softmax"):
    return keras.Sequential([keras.Input((4,)), layers.Dense(3, activation=last_activation)])


@pytest.mark.parametrize("kwargs, message", [
    ({"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "metric": ["accuracy"]},
     "unknown argument(s) metric; compile takes optimizer, loss, metrics"),
    ({"optimizer": "rmsprop", "loss": "sparse_categorical_crossentropy"}, "convlayer implements 'adam' and 'sgd'"),
    ({"loss": "sparse_categorical_crossentropy"}, "unknown optimizer 'rmsprop'"),  # Keras' default optimizer
    ({"optimizer": "adam", "loss": "mse"}, "unknown loss 'mse'"),
    ({"optimizer": "adam", "loss": lambda y_true, y_pred: 0.0}, "custom loss functions"),
    ({"optimizer": "adam", "loss": "categorical_crossentropy", "metrics": ["mae"]}, "unknown metric 'mae'"),
    ({"optimizer": "adam", "loss": "categorical_crossentropy", "metrics": "accuracy"}, "metrics=['accuracy']"),
    ({"optimizer": "adam", "loss": "categorical_crossentropy", "loss_weights": [1.0]},
     "does not support loss_weights"),
    ({"optimizer": "adam", "loss": "nonsense"}, "unknown loss 'nonsense'"),
])
def test_compile_refuses_what_it_does_not_know_by_name(kwargs, message):
    with pytest.raises(ValueError) as error:
        small_model().compile(**kwargs)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_probabilities_loss_on_logits_is_refused_and_the_reverse_warned():
    with pytest.raises(ValueError, match=r"last layer 'dense_\d+' has activation linear.*activation='softmax'.*"
                                         r"SparseCategoricalCrossentropy\(from_logits=True\)"):
        small_model(None).compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.warns(UserWarning, match="from_logits=True, but the last layer"):
        small_model().compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))


def test_the_rest_of_the_keras_surface_refuses_by_name(rng):
    with pytest.raises(ValueError, match="does not implement amsgrad"):
        keras.optimizers.Adam(amsgrad=True)
    with pytest.raises(ValueError, match="does not implement weight_decay"):
        keras.optimizers.SGD(weight_decay=1e-4)
    with pytest.raises(ValueError, match="label_smoothing is not supported"):
        keras.losses.CategoricalCrossentropy(label_smoothing=0.1)
    with pytest.raises(TypeError, match="Conv2D: got an unexpected keyword argument 'filter'; it takes filters"):
        layers.Conv2D(filter=3, kernel_size=3)
    with pytest.raises(AttributeError, match="has no 'BatchNormalization'; the layers convlayer implements"):
        layers.BatchNormalization  # noqa: B018
    with pytest.raises(AttributeError, match="convlayer implements Adam and SGD"):
        keras.optimizers.RMSprop  # noqa: B018
    model = small_model()
    x, y = rng.random((8, 4), dtype=np.float32), rng.integers(0, 3, 8)
    with pytest.raises(ValueError, match=r"needs compile\(optimizer=..., loss=...\) before training"):
        model.fit(x, y)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    with pytest.raises(ValueError, match="does not support sample_weight"):
        model.fit(x, y, sample_weight=np.ones(8))
    with pytest.raises(ValueError, match="label 5 is out of range"):
        model.fit(x, y + 3, verbose=0)
    with pytest.raises(ValueError, match=r"non-finite value \(nan\) at index \(2, 1\)"):
        model.fit(np.where(np.arange(32).reshape(8, 4) == 9, np.nan, x), y, verbose=0)
    with pytest.raises(ValueError, match="validation_split=0.9 of 8 samples leaves 0 for training and 8"):
        model.fit(x, y, validation_split=0.9, verbose=0)
    with pytest.raises(ValueError, match="not yet been built"):
        keras.Sequential([layers.Dense(2)]).summary()
    with pytest.raises(ValueError, match="outputs were not computed from these inputs"):
        keras.Model(keras.Input((4,)), layers.Dense(2)(keras.Input((4,))))
    with pytest.raises(TypeError, match="subclassing keras.Model"):
        type("Mine", (keras.Model,), {})()
    with pytest.raises(ValueError, match=r"placeholder that cannot be filled \(KeyError: 'val_acc'\)"):
        model.fit(x, y, verbose=0, callbacks=[keras.callbacks.ModelCheckpoint("m-{val_acc}.keras")])


def test_fit_prints_keras_lines_and_callbacks_see_keras_hooks(rng, capsys, tmp_path):
    x, y = rng.random((40, 4), dtype=np.float32), rng.integers(0, 3, 40)
    model = small_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    seen = []
    history = model.fit(x, y, batch_size=8, epochs=2, validation_split=0.25, callbacks=[
        keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append((epoch, sorted(logs)))),
        keras.callbacks.ModelCheckpoint(str(tmp_path / "e{epoch}.keras"))])
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out
    assert "4/4 ━━━━━━━━━━━━━━━━━━━━" in out  # 30 training samples in batches of 8
    assert " - accuracy: " in out and " - val_loss: " in out
    assert seen == [(epoch, ["accuracy", "loss", "val_accuracy", "val_loss"]) for epoch in (0, 1)]
    assert history.epoch == [0, 1] and len(history.history["val_loss"]) == 2
    assert (tmp_path / "e2.keras").is_file()
    model.fit(x, y, epochs=1, verbose=2)
    assert capsys.readouterr().out.startswith("2/2 - ")  # no bar, no "Epoch" line, as Keras' verbose=2
    model.fit(x, y, epochs=1, verbose=0)
    assert model.evaluate(x, y, verbose=0, return_dict=True).keys() == {"accuracy", "loss"}
    assert capsys.readouterr().out == ""

    stopper = keras.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=10.0)
    assert len(model.fit(x, y, epochs=50, verbose=0, callbacks=[stopper]).history["loss"]) == 2


def test_to_categorical_matches_keras():
    for labels, classes in (([0, 2, 1], None), (np.array([[1], [3]]), 5), (np.array([[0, 1], [2, 0]]), 3)):
        np.testing.assert_array_equal(keras.utils.to_categorical(labels, classes),
                                      real_keras.utils.to_categorical(labels, classes))
    assert keras.utils.to_categorical([1, 0], 2).dtype == np.float32
    with pytest.raises(ValueError, match="label 3 is out of range for num_classes=3"):
        keras.utils.to_categorical([0, 3], 3)
    with pytest.raises(ValueError, match="integer class indices"):
        keras.utils.to_categorical([0.5, 1])


@pytest.fixture
def tiny_idx_dir(tmp_path, monkeypatch):
    """A $CONVLAYER_DATA_DIR with tiny MNIST and Fashion-MNIST releases; no cache, Debian copy or internet."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/"
    monkeypatch.setattr(sources, "MNIST_MIRRORS", (dead,))
    monkeypatch.setattr(sources, "FASHION_MNIST_MIRRORS", (dead,))
    monkeypatch.setattr(sources, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "no-debian")
    monkeypatch.setenv(sources.CACHE_DIR_ENV, str(tmp_path / "cache"))
    arrays = {}
    for offset, name in ((0, "mnist"), (1, "fashion-mnist")):
        gen = np.random.default_rng(offset)
        release = {"train-images-idx3-ubyte": gen.integers(0, 256, (12, 28, 28), dtype=np.uint8),
                   "train-labels-idx1-ubyte": gen.integers(0, 10, 12).astype(np.uint8),
                   "t10k-images-idx3-ubyte": gen.integers(0, 256, (5, 28, 28), dtype=np.uint8),
                   "t10k-labels-idx1-ubyte": gen.integers(0, 10, 5).astype(np.uint8)}
        release["train-images-idx3-ubyte"][0, :2, 0] = (0, 255)
        (tmp_path / "data" / name).mkdir(parents=True)
        for stem, array in release.items():
            write_idx(tmp_path / "data" / name / stem, array)
        arrays[name] = release
    monkeypatch.setenv(sources.DATA_DIR_ENV, str(tmp_path / "data"))
    return arrays


def test_load_data_returns_keras_uint8_arrays_from_convlayers_sources(tiny_idx_dir):
    for module, name in ((keras.datasets.mnist, "mnist"), (keras.datasets.fashion_mnist, "fashion-mnist")):
        (x_train, y_train), (x_test, y_test) = module.load_data()
        release = tiny_idx_dir[name]
        for got, stem in ((x_train, "train-images-idx3-ubyte"), (y_train, "train-labels-idx1-ubyte"),
                          (x_test, "t10k-images-idx3-ubyte"), (y_test, "t10k-labels-idx1-ubyte")):
            assert got.dtype == np.uint8 and got.shape == release[stem].shape
            np.testing.assert_array_equal(got, release[stem])  # every byte back exactly
    with pytest.raises(ValueError, match="set \\$CONVLAYER_DATA_DIR"):
        keras.datasets.mnist.load_data(path="elsewhere.npz")


def test_import_spellings_reach_the_same_classes():
    import convlayer.tf.keras.layers as tf_keras_layers
    from convlayer import tf
    from convlayer.keras import layers as keras_layers
    from convlayer.tf import keras as tf_keras
    from convlayer.tf.keras import layers as tf_layers

    assert tf_keras is keras and tf.keras is keras
    assert tf_layers is keras_layers is tf_keras_layers
    assert tf.keras.layers.Conv2D is layers.Conv2D and keras.saving.load_model is keras.models.load_model


def test_a_checkpoint_of_convlayer_train_loads_compiled_and_evaluates_as_the_cli_does(digits_run):
    from convlayer import datasets

    model = keras.models.load_model(digits_run / "best.npz")
    data = datasets.load("digits")
    loss, acc = model.evaluate(data.x_test, data.y_test, verbose=0)  # (N, 8, 8) images get their channel axis
    engine = checkpoint.load(digits_run / "best.npz").model.evaluate(data.x_test, data.y_test)
    assert acc == pytest.approx(engine["accuracy"]) and loss == pytest.approx(engine["loss"], rel=1e-5)
    assert acc > 0.5 and model.metrics_names == ["loss", "accuracy"]
    assert keras.models.load_model(digits_run / "last.npz").optimizer.iterations > 0  # resumable
