"""The convlayer command line: the happy paths on small data, and every user mistake as one line."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw

from convlayer import checkpoint
from convlayer.cli import main
from convlayer.datasets import write_idx
from convlayer.models import MNISTModel


def digit_png(path, size=120, light_background=True):
    image = Image.new("L", (size, size), 255 if light_background else 0)
    draw = ImageDraw.Draw(image)
    ink = 0 if light_background else 255
    draw.line([(size * 0.5, size * 0.15), (size * 0.5, size * 0.85)], fill=ink, width=size // 10)  # a "1"
    image.save(path)
    return path


def test_train_reports_test_accuracy_and_writes_the_run(digits_run, capsys):
    assert (digits_run / "best.npz").is_file() and (digits_run / "last.npz").is_file()
    log = (digits_run / "log.csv").read_text().splitlines()
    assert log[0].startswith("epoch,loss,accuracy,val_loss,val_accuracy") and len(log) == 3


def test_train_prints_accuracy(tmp_path, capsys):
    assert main(["train", "--dataset", "digits", "--epochs", "1", "--limit", "300", "--output-dir",
                 str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "Test accuracy:" in out and "digits test set" in out
    assert "To train on MNIST" in out


def test_evaluate_prints_per_class_accuracy_and_confusion_matrix(digits_run, capsys):
    assert main(["evaluate", str(digits_run / "best.npz"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    matrix = np.array(report["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == 359
    assert report["accuracy"] == pytest.approx(np.trace(matrix) / matrix.sum())
    assert report["accuracy"] > 0.5  # two epochs on digits already learn
    assert main(["evaluate", str(digits_run / "best.npz")]) == 0
    text = capsys.readouterr().out
    assert "Per-class accuracy" in text and "Confusion matrix" in text


def test_predict_prints_top_three(digits_run, tmp_path, capsys):
    png = digit_png(tmp_path / "one.png")
    dark = digit_png(tmp_path / "dark.jpg", light_background=False)
    assert main(["predict", str(digits_run / "best.npz"), str(png), str(dark)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    probs = [float(p.rstrip("%")) for p in lines[0].split(": ", 1)[1].replace(",", "").split()[1::2]]
    assert len(probs) == 3 and probs == sorted(probs, reverse=True) and sum(probs) <= 100.01


def test_summary_and_datasets(capsys):
    assert main(["summary"]) == 0
    assert "Total params: 3,274,634" in capsys.readouterr().out
    assert main(["summary", "--input-dim", "8"]) == 0
    assert "(None, 2, 2, 64)" in capsys.readouterr().out
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "digits" in out and "mnist" in out


def test_mnist_from_a_local_idx_folder(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 64), ("t10k", 32)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n, dtype=np.uint8))
    out = tmp_path / "run"
    assert main(["train", "--dataset", "mnist", "--data-dir", str(tmp_path), "--epochs", "1", "--output-dir",
                 str(out), "--quiet", "--validation-split", "0.25"]) == 0
    assert "on mnist test set" in capsys.readouterr().out
    assert checkpoint.load(out / "best.npz").meta["dataset"] == "mnist"


@pytest.mark.parametrize("argv, message", [
    (["train", "--epochs", "0"], "--epochs: expected a positive integer, got '0'"),
    (["train", "--dataset", "cifar"], "invalid choice: 'cifar'"),
    (["train", "--validation-split", "1.5"], "expected a number in [0, 1), got '1.5'"),
    (["train", "--learning-rate", "abc"], "expected a positive number, got 'abc'"),
    (["evaluate"], "the following arguments are required: checkpoint"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_usage_errors_are_one_line_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_user_mistakes_are_one_line_exit_1(digits_run, tmp_path, capsys):
    bad_image = tmp_path / "notes.png"
    bad_image.write_text("not an image")
    other_arch = checkpoint.save(tmp_path / "mnist28.npz", MNISTModel(28, 10), meta={"dataset": "mnist"})
    cases = [
        (["evaluate", str(tmp_path / "missing.npz")], "not found"),
        (["predict", str(digits_run / "best.npz"), str(tmp_path / "nope.png")], "not found"),
        (["predict", str(digits_run / "best.npz"), str(bad_image)], "cannot read"),
        (["evaluate", str(other_arch), "--dataset", "digits"], "the checkpoint expects 28x28 images"),
        (["evaluate", str(bad_image)], "not a convlayer checkpoint"),
        (["train", "--resume", str(digits_run / "best.npz"), "--epochs", "3"], "has no training state"),
    ]
    for argv, message in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert message in err, (argv, err)
        assert err.count("\n") == 1 and "Traceback" not in err


def test_console_script_help_and_no_traceback():
    exe = os.path.join(os.path.dirname(sys.executable), "convlayer")
    for argv in (["--help"], ["train", "--help"], ["evaluate", "--help"], ["predict", "--help"]):
        result = subprocess.run([exe, *argv], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and "usage: convlayer" in result.stdout
    result = subprocess.run([exe, "evaluate", "/nonexistent.npz"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr and result.stderr.count("\n") == 1


def test_threads_option_sets_the_split_and_refuses_zero(digits_run, capsys):
    from convlayer import parallel

    before = parallel.get_num_threads()
    try:
        assert main(["--threads", "1", "evaluate", str(digits_run / "best.npz"), "--json"]) == 0
        assert parallel.get_num_threads() == 1
        assert "accuracy" in capsys.readouterr().out
    finally:
        parallel.set_num_threads(before)
    with pytest.raises(SystemExit):
        main(["--threads", "0", "evaluate", str(digits_run / "best.npz")])
    assert "positive integer" in capsys.readouterr().err


def test_an_image_pillow_calls_a_decompression_bomb_is_a_clear_image_error(tmp_path, monkeypatch):
    """Pillow refuses huge images with its own exception from open(); it must become an ImageError."""
    from convlayer.preprocess import ImageError, load_image

    path = tmp_path / "big.png"
    Image.new("L", (64, 64), 255).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 64*64 > 2 * 100: Pillow raises DecompressionBombError
    with pytest.raises(ImageError, match="cannot read .* as an image"):
        load_image(str(path))
