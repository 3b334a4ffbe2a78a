"""``convlayer show ...``: figures of a tiny model trained for a few steps on scikit-learn's 8x8 digits."""

from types import SimpleNamespace

import numpy as np
import pytest

from convlayer import checkpoint
from convlayer.cli import main
from convlayer.models import MNISTModel
from convlayer.training import write_log
from convlayer.viz import commands, figures

pytest.importorskip("matplotlib")
Image = pytest.importorskip("PIL.Image")
load_digits = pytest.importorskip("sklearn.datasets").load_digits

CLASS_NAMES = [str(i) for i in range(10)]


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)  # (1797, 8, 8) in [0, 1]
    return x, data.target.astype(np.int64)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, digits):
    """best.npz and log.csv of MNISTModel(8, 10) after a few Adam steps."""
    x, y = digits
    model = MNISTModel(8, 10, seed=0)
    model.compile("adam", learning_rate=2e-3)
    history = model.fit(x[:320], y[:320], epochs=2, batch_size=64, validation_data=(x[1500:1600], y[1500:1600]),
                        rng=0)
    folder = tmp_path_factory.mktemp("run")
    checkpoint.save(folder / "best.npz", model, meta={"dataset": "digits", "class_names": CLASS_NAMES, "input_dim": 8})
    rows = [{"epoch": epoch + 1, **{k: v[i] for k, v in history.history.items()}}
            for i, epoch in enumerate(history.epochs)]
    write_log(folder / "log.csv", rows)
    return folder


@pytest.fixture
def test_set(monkeypatch, digits):
    """Replace the dataset loader: 120 digits images as the 'test set'."""
    x, y = digits
    data = SimpleNamespace(name="digits", x_test=x[1600:1720], y_test=y[1600:1720], class_names=tuple(CLASS_NAMES),
                           input_dim=8, num_classes=10)
    calls = []

    def fake_load(ck, dataset=None, data_dir=None):
        calls.append((ck.meta["dataset"], dataset, data_dir))
        return data

    monkeypatch.setattr(commands, "load_test_data", fake_load)
    return calls


def _assert_png(path, size):
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == size
        pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    assert pixels.std() > 15, f"{path} looks blank"
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20


def _run(args, capsys):
    assert main(args) == 0, capsys.readouterr().err
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    return out[0]


def test_show_filters(run_dir, capsys):
    path = _run(["show", "filters", str(run_dir / "best.npz")], capsys)
    assert path == str(run_dir / "best_filters.png")
    _assert_png(path, (900, 540))


def test_show_activations(run_dir, digits, tmp_path, capsys):
    x, _ = digits
    image = tmp_path / "seven.png"
    Image.fromarray((255 - x[7] * 255).astype(np.uint8)).resize((64, 64), Image.NEAREST).save(image)  # dark on light
    out = tmp_path / "maps.png"
    assert _run(["show", "activations", str(run_dir / "best.npz"), str(image), "--out", str(out)], capsys) == str(out)
    height = round((2.4 + (0.64 * 2 + 0.4) + (0.64 * 4 + 0.4)) * figures.DPI)  # conv1: 2 rows of 16, conv2: 4 rows
    _assert_png(out, (1000, height))


def test_feature_maps_and_top_predictions(run_dir):
    model = checkpoint.load(run_dir / "best.npz").model
    image = np.zeros((8, 8), np.float32)
    image[2:6, 3:5] = 1
    maps, probs = figures.feature_maps(model, image)
    assert maps["conv1"].shape == (8, 8, 32) and maps["conv2"].shape == (4, 4, 64)
    assert (maps["conv1"] >= 0).all()  # after ReLU
    np.testing.assert_allclose(probs.sum(), 1, rtol=1e-5)
    logits = model.predict(image[None])[0].astype(np.float64)  # (10,)
    np.testing.assert_allclose(probs, np.exp(logits) / np.exp(logits).sum(), rtol=1e-4)
    top = figures.top_predictions(probs, CLASS_NAMES)
    assert len(top) == 3 and top[0][1] >= top[1][1] >= top[2][1]
    with pytest.raises(ValueError, match="no layer 'conv9'"):
        figures.feature_maps(model, image, names=("conv9",))


def test_show_curves_from_dir_and_file(run_dir, tmp_path, capsys):
    assert _run(["show", "curves", str(run_dir)], capsys) == str(run_dir / "curves.png")
    out = tmp_path / "c.png"
    assert _run(["show", "curves", str(run_dir / "log.csv"), "--out", str(out)], capsys) == str(out)
    _assert_png(out, (1000, 400))


def test_show_confusion(run_dir, test_set, capsys):
    path = _run(["show", "confusion", str(run_dir / "best.npz"), "--data-dir", "somewhere"], capsys)
    assert path == str(run_dir / "best_confusion.png")
    assert test_set == [("digits", None, "somewhere")]
    _assert_png(path, (750, 650))


def test_show_mistakes(run_dir, test_set, tmp_path, capsys):
    out = tmp_path / "m.png"
    assert _run(["show", "mistakes", str(run_dir / "best.npz"), "--count", "8", "--out", str(out)], capsys) == str(out)
    _assert_png(out, (1000, round((1.7 * 1 + 0.6) * figures.DPI)))  # two-line titles


def test_mistakes_order():
    labels = np.array([0, 1, 2, 1])
    probs = np.array([[0.9, 0.05, 0.05], [0.5, 0.3, 0.2], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1]])
    assert figures.mistakes(labels, probs).tolist() == [2, 1]
    assert figures.mistakes(labels, probs, count=1).tolist() == [2]


def test_mistakes_figure_without_mistakes():
    fig = figures.mistakes_figure(np.zeros((0, 8, 8)), [], [], [], CLASS_NAMES)
    assert [round(v) for v in fig.get_size_inches() * figures.DPI] == [1000, 230]


def test_show_confusion_with_the_real_digits_dataset(run_dir, capsys):
    datasets = pytest.importorskip("convlayer.datasets")
    if not hasattr(datasets, "load"):
        pytest.skip("convlayer.datasets.load is not there yet")
    path = _run(["show", "confusion", str(run_dir / "best.npz"), "--limit", "50"], capsys)
    _assert_png(path, (750, 650))


@pytest.mark.parametrize("args, message", [
    (["filters", "missing.npz"], "not found"),
    (["curves", "no/such/run"], "not found"),
    (["activations", "{ckpt}", "missing.png"], "not found"),
    (["mistakes", "{log}"], "not a convlayer checkpoint"),
])
def test_show_errors_are_one_line(args, message, run_dir, capsys):
    args = [a.format(ckpt=run_dir / "best.npz", log=run_dir / "log.csv") for a in args]
    code = main(["show", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith("convlayer show: error:")
    assert message in err[0]


def test_load_test_data_checks_the_model(run_dir, monkeypatch):
    datasets = pytest.importorskip("convlayer.datasets")
    ck = checkpoint.load(run_dir / "best.npz")
    fake = SimpleNamespace(input_dim=28, num_classes=10)
    monkeypatch.setattr(datasets, "load", lambda name, data_dir=None: fake, raising=False)
    with pytest.raises(ValueError, match="expects 8x8 images and 10 classes but mnist has 28x28"):
        commands.load_test_data(ck, "mnist")
    ck.meta.pop("dataset")
    with pytest.raises(ValueError, match="pass --dataset"):
        commands.load_test_data(ck)


def test_show_needs_matplotlib(monkeypatch, run_dir, capsys):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    assert main(["show", "filters", str(run_dir / "best.npz")]) == 1
    assert "pip install 'convlayer[viz]'" in capsys.readouterr().err
