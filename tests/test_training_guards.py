"""Training cannot fail silently: softmax outputs, non-finite data and losses, labels, image sizes.

Each test reproduces what a new user hit (issue: the first hour), then asserts the fix.
"""

import numpy as np
import pytest

from convlayer.layers import Conv2D, Dense, Flatten, MaxPooling2D
from convlayer.models import MNISTModel, Sequential
from convlayer.models.sequential import NonFiniteLossError

load_digits = pytest.importorskip("sklearn.datasets").load_digits  # sklearn is in the [data] extra


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[..., None]  # (1797, 8, 8, 1)
    return x[:1400], data.target[:1400], x[1400:], data.target[1400:]


def _small(last_activation=None, seed=0):
    return Sequential([Conv2D(8, 3, padding="same", activation="relu", seed=seed), MaxPooling2D(2), Flatten(),
                       Dense(10, activation=last_activation, seed=seed + 1)])


def test_a_softmax_output_trains_as_well_as_logits(digits):
    x, y, x_test, y_test = digits
    results = {}
    for activation in (None, "softmax"):
        model = _small(activation)
        model.compile("adam", learning_rate=3e-3)
        history = model.fit(x, y, epochs=4, batch_size=32, rng=0)
        results[activation] = model.evaluate(x_test, y_test)
        assert history.history["loss"][-1] < history.history["loss"][0]
    assert results["softmax"]["accuracy"] > 0.8  # 0.86 here; treated as logits it was far lower
    assert abs(results["softmax"]["accuracy"] - results[None]["accuracy"]) < 0.03
    # Same math: the loss of the probabilities is the loss of the logits.
    assert results["softmax"]["loss"] == pytest.approx(results[None]["loss"], rel=0.5)


def test_softmax_gradient_equals_the_logits_gradient_exactly():
    rng = np.random.default_rng(0)
    x, y = rng.random((16, 8, 8, 1), np.float32), rng.integers(0, 10, 16)
    a, b = _small(None, seed=3), _small("softmax", seed=3)
    for model in (a, b):
        model.compile("sgd", learning_rate=0.1, momentum=0.0)
        model.train_step(x, y)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)


def test_probabilities_are_not_softmaxed_twice():
    model = _small("softmax")
    x = np.random.default_rng(1).random((5, 8, 8, 1), np.float32)
    np.testing.assert_allclose(model.probabilities(x), model.predict(x))
    logits = _small(None)
    np.testing.assert_allclose(logits.probabilities(x).sum(axis=1), 1, rtol=1e-6)


@pytest.mark.parametrize("where", ["fit", "train_step", "predict", "evaluate"])
def test_a_nan_pixel_is_refused_naming_the_array_and_index(digits, where):
    x, y, _, _ = digits
    x = x[:64].copy()
    x[17, 3, 5, 0] = np.nan
    model = _small()
    model.compile("adam")
    before = [w.copy() for w in model.get_weights()]
    call = {"fit": lambda: model.fit(x, y[:64], epochs=1), "train_step": lambda: model.train_step(x, y[:64]),
            "predict": lambda: model.predict(x), "evaluate": lambda: model.evaluate(x, y[:64])}[where]
    with pytest.raises(ValueError, match=r"x holds a non-finite value \(nan\) at index \(17, 3, 5, 0\)"):
        call()
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_diverging_loss_stops_training_and_keeps_the_last_good_weights(digits):
    x, y, _, _ = digits
    model = _small()
    model.compile("sgd", learning_rate=1e30, momentum=0.0)  # the first step overflows the weights
    kept = []

    class Keep:
        def on_epoch_begin(self, epoch, model): ...
        def on_batch_begin(self, step, model): kept[:] = [w.copy() for w in model.get_weights()]
        def on_batch_end(self, step, logs, model): ...
        def on_epoch_end(self, epoch, logs, model): ...

    with pytest.raises(NonFiniteLossError, match=r"training stopped at epoch 1, step \d+: the (loss|gradient).*"
                                                 "lower learning rate"):
        model.fit(x, y, epochs=2, batch_size=32, rng=0, callbacks=[Keep()])
    for a, b in zip(kept, model.get_weights()):
        np.testing.assert_array_equal(a, b)
        assert np.isfinite(b).all()


@pytest.mark.parametrize("call", ["fit", "evaluate", "train_step"])
def test_labels_out_of_range_are_one_clear_error_everywhere(digits, call):
    x, y, _, _ = digits
    model = _small()
    model.compile("adam")
    with pytest.raises(ValueError, match=r"labels go from 5 to 14 but the model has 10 outputs"):
        getattr(model, call)(x[:64], y[:64] + 5)


def test_images_of_the_wrong_size_name_both_sizes():
    model = MNISTModel(8, 10)
    seq = Sequential([Conv2D(4, 3, seed=0), Flatten(), Dense(10, seed=1)])
    seq.build((None, 8, 8, 1))
    with pytest.raises(ValueError, match=r"expects samples of shape 8x8x1, got input of shape \(2, 28, 28, 1\)"):
        seq.predict(np.zeros((2, 28, 28, 1), np.float32))
    with pytest.raises(ValueError, match="8x8 pixels"):
        model.predict(np.zeros((2, 28, 28), np.float32))


def test_grayscale_images_get_the_channel_axis_the_model_needs(digits):
    _, _, x_test, y_test = digits
    model = _small()
    model.build((None, 8, 8, 1))
    np.testing.assert_array_equal(model.predict(x_test[..., 0]), model.predict(x_test))
    assert model.evaluate(x_test[..., 0], y_test)["accuracy"] == model.evaluate(x_test, y_test)["accuracy"]
