"""Keras interop against real Keras 3 (TensorFlow backend): exports opened by keras.saving.load_model,
imports of models Keras builds and trains here, round trips and refusals."""

from __future__ import annotations

import json
import os
import re
import zipfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from convlayer import checkpoint  # noqa: E402
from convlayer.interop import InteropError, export_model, import_model  # noqa: E402
from interop_models import GRID, images, lesson_model, relative_error  # noqa: E402

TOLERANCE = 1e-5


def keras_predict(path, x):
    return keras.saving.load_model(path).predict(x, verbose=0, batch_size=len(x))


def test_lesson_model_opens_in_keras_and_predicts_the_same(tmp_path):
    model = lesson_model()
    path = export_model(model, tmp_path / "lesson.keras", meta={"dataset": "mnist"})
    x = images((28, 28, 1), n=8)
    assert relative_error(keras_predict(path, x), model.predict(x)) < TOLERANCE
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
        config = json.loads(archive.read("config.json"))
        archive.extract("model.weights.h5", tmp_path)
    layers = config["config"]["layers"]
    assert [entry["class_name"] for entry in layers] == ["InputLayer", "Conv2D", "MaxPooling2D", "Conv2D",
                                                         "MaxPooling2D", "Flatten", "Dense", "Dropout", "Dense"]
    assert layers[0]["config"]["batch_shape"] == [None, 28, 28, 1]
    assert all(entry["config"]["dtype"] == "float32" for entry in layers)  # plain strings, as Keras 3.0 reads
    assert "quantization_config" not in json.dumps(config)
    with h5py.File(tmp_path / "model.weights.h5") as weights:
        assert weights["layers/conv2d/vars/0"].shape == (5, 5, 1, 32)
        assert weights["layers/conv2d_1/vars/0"].shape == (5, 5, 32, 64)
        assert weights["layers/dense_1/vars/1"].shape == (10,)
        assert len(weights["layers/max_pooling2d_1/vars"]) == 0 and len(weights["layers/dropout/vars"]) == 0
        assert len(weights["vars"]) == 0  # the model's own (empty) group, which Keras 3.0-3.5 open


@pytest.mark.parametrize("case", GRID, ids=lambda c: c.name)
def test_grid_opens_in_keras_or_is_refused(case, tmp_path):
    model = case.model()
    path = tmp_path / f"{case.name}.keras"
    if ".keras" not in case.formats:
        with pytest.raises(InteropError) as info:
            export_model(model, path)
        message = str(info.value)
        assert case.refusal in message and ".keras" in message and "formats that hold it" in message
        assert "\n" not in message and not path.exists()
        return
    x = images(case.input_shape, n=3)
    export_model(model, path)
    assert relative_error(keras_predict(path, x), model.predict(x)) < TOLERANCE
    back = import_model(path).model
    for a, b in zip(model.get_weights(), back.get_weights()):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert np.array_equal(back.predict(x), model.predict(x))


def test_export_then_import_is_bit_identical_and_keeps_the_class(tmp_path):
    model = lesson_model()
    meta = {"dataset": "digits", "class_names": list("0123456789")}
    ck = import_model(export_model(model, tmp_path / "a.keras", meta=meta))
    assert type(ck.model).__name__ == "MNISTModel" and ck.model.input_dim == 28
    assert ck.meta["dataset"] == "digits" and ck.meta["class_names"][3] == "3"
    for a, b in zip(model.get_weights(), ck.model.get_weights()):
        assert np.array_equal(a, b)
    again = import_model(export_model(ck.model, tmp_path / "b.keras")).model
    for a, b in zip(model.get_weights(), again.get_weights()):
        assert np.array_equal(a, b)


def _trained_keras_sequential():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(6, 2, strides=2, padding="same", activation="tanh"),
        keras.layers.AveragePooling2D(pool_size=1),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 8, 8, 1), dtype=np.float32), rng.integers(0, 10, 64)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    return model


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_import_of_a_model_keras_builds_and_trains(suffix, tmp_path):
    kmodel = _trained_keras_sequential()
    path = tmp_path / f"trained{suffix}"
    kmodel.save(path)
    x = images((8, 8, 1), n=6, seed=3)
    ck = import_model(path)
    assert [type(layer).__name__ for layer in ck.model.layers] == [
        "Conv2D", "MaxPooling2D", "Conv2D", "AveragePooling2D", "Flatten", "Dropout", "Dense"]
    assert relative_error(ck.model.predict(x), kmodel.predict(x, verbose=0)) < TOLERANCE
    for a, b in zip(kmodel.get_weights(), ck.model.get_weights()):
        assert np.array_equal(a, b)
    saved = checkpoint.save(tmp_path / "imported.npz", ck.model, meta=ck.meta)
    assert np.array_equal(checkpoint.load(saved).model.predict(x), ck.model.predict(x))
    # import then export gives back the same weights
    back = keras.saving.load_model(export_model(ck.model, tmp_path / "again.keras"))
    for a, b in zip(kmodel.get_weights(), back.get_weights()):
        assert np.array_equal(a, b)


def test_import_of_a_single_chain_functional_model(tmp_path):
    keras.utils.set_random_seed(1)
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.ZeroPadding2D(((1, 0), (0, 2)))(inputs)
    x = keras.layers.Conv2D(4, 3, groups=2, dilation_rate=2, activation="elu")(x)
    x = keras.layers.Activation("silu")(x)
    x = keras.layers.Reshape((-1, 4))(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(3, use_bias=False)(x)
    kmodel = keras.Model(inputs, outputs)
    kmodel.save(tmp_path / "f.keras")
    x = images((6, 6, 2), n=5)
    ck = import_model(tmp_path / "f.keras")
    assert ck.model.layers[0].padding == ((1, 0), (0, 2))
    assert relative_error(ck.model.predict(x), kmodel.predict(x, verbose=0)) < TOLERANCE


def test_import_of_channels_first_conv(tmp_path):
    keras.utils.set_random_seed(2)
    kmodel = keras.Sequential([keras.Input((3, 7, 7)),
                               keras.layers.Conv2D(4, 3, strides=2, padding="same", data_format="channels_first"),
                               keras.layers.Flatten(), keras.layers.Dense(2)])
    kmodel.save(tmp_path / "cf.keras")
    x = images((3, 7, 7), n=3)
    assert relative_error(import_model(tmp_path / "cf.keras").model.predict(x), kmodel.predict(x, verbose=0)) \
        < TOLERANCE


@pytest.mark.parametrize("build, message", [
    (lambda: keras.Sequential([keras.Input((4, 4, 1)), keras.layers.BatchNormalization()]),
     "BatchNormalization 'batch_normalization' is a layer convlayer does not have; supported: InputLayer, Conv2D"),
    (lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="gelu")]),
     "has activation 'gelu', which convlayer does not have; supported:"),
    (lambda: keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 3, dtype="float16")]),
     "has dtype 'float16'; convlayer computes in 'float32' or 'float64'."),
])
def test_unsupported_keras_models_are_refused_naming_the_layer(build, message, tmp_path):
    keras.backend.clear_session()  # layer names start from their first index again
    build().save(tmp_path / "m.keras")
    with pytest.raises(InteropError, match=re.escape(message)):
        import_model(tmp_path / "m.keras")


def test_functional_models_that_are_not_one_chain_are_refused(tmp_path):
    inputs = keras.Input((4,))
    a = keras.layers.Dense(3, name="a")(inputs)
    b = keras.layers.Dense(3, name="b")(inputs)
    keras.Model(inputs, keras.layers.Add(name="sum")([a, b])).save(tmp_path / "branch.keras")
    with pytest.raises(InteropError, match=r"Add 'sum' is a layer convlayer does not have; supported: InputLayer"):
        import_model(tmp_path / "branch.keras")
    inputs = keras.Input((4,))
    a = keras.layers.Dense(3, name="a")(inputs)
    b = keras.layers.Dense(2, name="b")(a)
    keras.Model(inputs, [a, b]).save(tmp_path / "two_outputs.keras")
    with pytest.raises(InteropError, match=re.escape("the model outputs ['a', 'b'], not its last layer 'b'; "
                                                     "convlayer imports single-chain models only")):
        import_model(tmp_path / "two_outputs.keras")
    inputs = keras.Input((4,))
    a = keras.layers.Dense(3, name="a")(inputs)
    b = keras.layers.Dense(3, name="b")(inputs)  # b skips a: a feeds nothing that is kept
    keras.Model(inputs, [a, b]).save(tmp_path / "skip.keras")
    with pytest.raises(InteropError, match=r"layer 'b' takes \['input_layer.*'\] instead of the layer before it "
                                           r"\('a'\); convlayer imports single-chain models only"):
        import_model(tmp_path / "skip.keras")


def test_weights_only_h5_is_refused(tmp_path):
    kmodel = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    kmodel.save_weights(tmp_path / "w.weights.h5")
    (tmp_path / "w.weights.h5").rename(tmp_path / "w.h5")
    with pytest.raises(InteropError, match="has no model_config: it holds weights only"):
        import_model(tmp_path / "w.h5")
