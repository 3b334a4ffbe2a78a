"""A dataset's own test images, saved as PNG and read back by `convlayer predict`, score what the
arrays score; other renderings are prepared the way that dataset was made.

Before, every image went through MNIST's digit preprocessing: Fashion-MNIST PNGs scored ~72%
against ~93% as arrays, the 8x8 digits 55% against 98%.
"""

import numpy as np
import pytest
from PIL import Image

from convlayer import checkpoint, datasets
from convlayer.cli import main
from convlayer.models import MNISTModel
from convlayer.preprocess import ImageError, preprocess

N = 240


@pytest.fixture(scope="module")
def fashion_run(tmp_path_factory):
    """MNISTModel(28, 10) after one quick epoch on 3,000 Fashion-MNIST images (~80% test accuracy)."""
    data = datasets.load("fashion-mnist")
    model = MNISTModel(28, 10, seed=0)
    model.compile("adam", learning_rate=1e-3)
    model.fit(data.x_train[:3000], data.y_train[:3000], epochs=1, batch_size=64, rng=0)
    path = tmp_path_factory.mktemp("fashion") / "best.npz"
    checkpoint.save(path, model, meta={"dataset": "fashion-mnist", "class_names": list(data.class_names),
                                       "input_dim": 28, "preprocess": "fill"})
    return path, data


@pytest.fixture(scope="module")
def digits_data():
    return datasets.load("digits")


def _predicted(out: str, names) -> list[int]:
    index = {name: i for i, name in enumerate(names)}
    lines = sorted(out.strip().splitlines())
    return [index[line.split(": ", 1)[1].split(", ")[0].rsplit(" ", 1)[0]] for line in lines]


def _png_accuracy(tmp_path, ck_path, images, labels, names, capsys, *args):
    folder = tmp_path / "png"
    folder.mkdir()
    for i, image in enumerate(images):  # zero-padded names: the folder's sorted order is the array's
        Image.fromarray(np.round(image * 255).astype(np.uint8)).save(folder / f"{i:05d}.png")
    capsys.readouterr()
    assert main(["predict", str(ck_path), str(folder), *args]) == 0
    out = capsys.readouterr().out
    return float((np.array(_predicted(out, names)) == labels).mean()), out


@pytest.mark.parametrize("dataset", ["fashion-mnist", "digits"])
def test_a_datasets_own_images_as_png_score_like_the_arrays(dataset, fashion_run, digits_run, digits_data, tmp_path,
                                                           capsys):
    ck_path, data = fashion_run if dataset == "fashion-mnist" else (digits_run / "best.npz", digits_data)
    ck = checkpoint.load(ck_path)
    x, y = data.x_test[:N], data.y_test[:N]
    array_accuracy = float((ck.model.predict(x).argmax(axis=1) == y).mean())
    png_accuracy, out = _png_accuracy(tmp_path, ck_path, x, y, ck.class_names(10), capsys)
    assert array_accuracy > 0.6
    assert abs(png_accuracy - array_accuracy) <= 0.005, (png_accuracy, array_accuracy)
    assert out.count("[as-is]") == N


def test_the_old_digit_preprocessing_is_still_there_and_is_wrong_for_fashion(fashion_run, tmp_path, capsys):
    ck_path, data = fashion_run
    x, y = data.x_test[:N], data.y_test[:N]
    names = checkpoint.load(ck_path).class_names(10)
    auto, _ = _png_accuracy(tmp_path, ck_path, x, y, names, capsys)
    (tmp_path / "png").rename(tmp_path / "first")
    digit, out = _png_accuracy(tmp_path, ck_path, x, y, names, capsys, "--preprocess", "mnist-digit")
    assert out.count("[mnist-digit]") == N
    assert digit < auto - 0.1


def test_a_photo_style_rendering_is_prepared_like_fashion_mnist(fashion_run):
    """Black on white and three times the size: the 'fill' style brings it back to the frame."""
    ck_path, data = fashion_run
    ck = checkpoint.load(ck_path)
    x, y = data.x_test[:N], data.y_test[:N]
    big = [1 - np.asarray(Image.fromarray(np.round(g * 255).astype(np.uint8)).resize((84, 84), Image.BICUBIC))
           / 255.0 for g in x]
    accuracy = {}
    for mode in ("auto", "mnist-digit"):
        prepared = [preprocess(g, 28, mode=mode, style=ck.preprocess_style) for g in big]
        assert {p.method for p in prepared} == {"fill" if mode == "auto" else "mnist-digit"}
        accuracy[mode] = float((ck.model.predict(np.stack([p.image for p in prepared])).argmax(1) == y).mean())
    array_accuracy = float((ck.model.predict(x).argmax(axis=1) == y).mean())
    assert accuracy["auto"] > array_accuracy - 0.06  # measured: 78.7% against 80.3%
    assert accuracy["auto"] > accuracy["mnist-digit"] + 0.15  # measured: 50%


def test_digits_style_gives_17_grey_levels_filling_the_frame():
    big = np.zeros((64, 48), np.float32)
    big[8:56, 12:36] = 1.0  # a bar, white on black
    image = preprocess(1 - big, 8, mode="auto", style="digits-8x8")  # black on white: inverted
    assert image.method == "digits-8x8" and image.image.shape == (8, 8)
    assert set(np.unique(image.image * 16)).issubset(set(range(17)))
    assert image.image[:, 2:6].min() == 1.0 and image.image.max() == 1.0


def test_modes():
    gray = np.zeros((28, 28), np.float32)
    gray[10:14, 10:14] = 1
    assert preprocess(gray, 28, mode="none").method == "as-is"
    np.testing.assert_array_equal(preprocess(gray, 28, mode="auto", style="fill").image, gray)
    assert preprocess(gray, 28, mode="dataset", style="fill").method == "fill"
    with pytest.raises(ImageError, match="exactly 8x8"):
        preprocess(gray, 8, mode="none")
    with pytest.raises(ValueError, match="unknown preprocessing 'fancy'"):
        preprocess(gray, 28, mode="fancy")
    dot = np.zeros((280, 280), np.float32)
    dot[140:146, 140:146] = 1
    assert "nearly empty" in preprocess(dot, 28, mode="auto").note
