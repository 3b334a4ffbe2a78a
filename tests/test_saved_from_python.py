"""A Sequential trained and saved from Python works everywhere: evaluate, predict and training on."""

import numpy as np

from convlayer import datasets
from convlayer.cli import main
from convlayer.layers import Conv2D, Dense, Flatten, MaxPooling2D
from convlayer.models import Sequential


def test_a_model_saved_with_model_save_runs_in_the_cli_and_continues_training(tmp_path, capsys):
    from PIL import Image

    data = datasets.load("digits")
    x, y = data.x_train[:600], data.y_train[:600]  # (N, 8, 8): no channel axis, as load_digits gives them
    model = Sequential([Conv2D(8, 3, padding="same", activation="relu", seed=0), MaxPooling2D(2), Flatten(),
                        Dense(10, activation="softmax", seed=1)])
    model.compile("adam", learning_rate=3e-3)
    model.fit(x[..., None], y, epochs=2, batch_size=32, rng=0)
    path = tmp_path / "mine.npz"
    model.save(path)

    assert main(["evaluate", str(path), "--dataset", "digits", "--json"]) == 0
    import json
    accuracy = json.loads(capsys.readouterr().out)["accuracy"]
    assert accuracy == model.evaluate(data.x_test, data.y_test)["accuracy"] and accuracy > 0.5

    Image.fromarray(np.round(data.x_test[0] * 255).astype(np.uint8)).save(tmp_path / "a.png")
    assert main(["predict", str(path), str(tmp_path / "a.png")]) == 0
    line = capsys.readouterr().out
    assert line.count("%") == 3 and "[as-is]" in line

    again = Sequential.load(path)
    assert again.optimizer is not None and again.optimizer.iterations == model.optimizer.iterations
    again.fit(x, y, epochs=1, batch_size=32, rng=5)
    model.fit(x, y, epochs=1, batch_size=32, rng=5)
    for a, b in zip(again.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
