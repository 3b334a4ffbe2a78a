"""A table of user mistakes: each ends in one line on stderr, a non-zero exit, no traceback, and
nothing written where it should not be."""

import pickle
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from convlayer.cli import main


@pytest.fixture
def files(tmp_path, digits_run):
    from convlayer import datasets

    (tmp_path / "notes.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "folder.gif").mkdir()
    (tmp_path / "empty").mkdir()
    (tmp_path / "model.pkl").write_bytes(pickle.dumps({"w": 1}))
    x = datasets.load("digits").x_test
    for name, image in (("good.png", x[0]), ("good2.png", x[1])):
        Image.fromarray(np.round(image * 255).astype(np.uint8)).save(tmp_path / name)
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "big.png")
    return {"tmp": tmp_path, "ck": str(digits_run / "best.npz")}


CASES = [
    (["draw", "--out", "{tmp}/notes.png/x.gif"], "'{tmp}/notes.png' is a file, not a folder"),
    (["draw", "--out", "{tmp}/folder.gif"], "is a folder"),
    (["draw", "--format", "png", "--out", "{tmp}/notes.png/frames/"], "is a file, not a folder"),
    (["draw", "--size", "64x64", "--out", "{tmp}/big.gif"], "3,845 frames"),
    (["train", "--dataset", "digits", "--epochs", "1", "--output-dir", "{tmp}/notes.png"], "is a file, not a folder"),
    (["show", "curves", "{ck}"], "curves come from the training log"),
    (["show", "curves", "{tmp}/notes.png"], "not a convlayer training log"),
    (["show", "filters", "{ck}", "--out", "{tmp}/notes.png/f.png"], "is a file, not a folder"),
    (["show", "activations", "{ck}", "{tmp}/good.png", "--out", "{tmp}/empty"], "is a folder"),
    (["evaluate", "{tmp}/model.pkl"], "not a convlayer checkpoint"),
    (["evaluate", "{tmp}"], "is a folder"),
    (["predict", "{ck}", "{tmp}/empty"], "holds no images"),
    (["predict", "{ck}", "{tmp}/big.png", "--preprocess", "none"], "exactly 8x8"),
]


@pytest.mark.parametrize("argv, message", CASES, ids=[" ".join(c[0][:2]) + f" {i}" for i, c in enumerate(CASES)])
def test_one_line_non_zero_no_traceback(files, capsys, argv, message):
    fill = {"tmp": str(files["tmp"]), "ck": files["ck"]}
    before = sorted(p.name for p in files["tmp"].rglob("*"))
    code = main([a.format(**fill) for a in argv])
    err = capsys.readouterr().err
    assert code != 0
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert message.format(**fill) in err, err
    assert "allow_pickle" not in err and ".part" not in err
    assert sorted(p.name for p in files["tmp"].rglob("*")) == before  # nothing written, no temp file left


def test_a_bad_image_among_good_ones_is_reported_and_the_rest_classified(files, capsys):
    tmp = files["tmp"]
    code = main(["predict", files["ck"], str(tmp / "good.png"), str(tmp / "notes.png"), str(tmp / "good2.png")])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err.count("\n") == 1 and "notes.png" in captured.err and "cannot read" in captured.err
    lines = captured.out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [str(tmp / "good.png"), str(tmp / "good2.png")]


def test_python_dash_m_convlayer_works():
    result = subprocess.run([sys.executable, "-m", "convlayer", "summary", "--input-dim", "8"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "Total params" in result.stdout
