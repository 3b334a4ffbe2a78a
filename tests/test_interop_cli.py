"""`convlayer export` and `convlayer import`: the files they write, and that evaluate, predict, show and serve
work on an imported checkpoint exactly as on the original; bad input is one line on stderr, exit 1."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from convlayer import checkpoint
from convlayer.cli import main


def png(path):
    image = Image.new("L", (64, 64), 255)
    ImageDraw.Draw(image).line(((32, 10), (32, 54)), fill=0, width=7)
    image.save(path)
    return path


@pytest.fixture(scope="module")
def exported(digits_run, tmp_path_factory):
    folder = tmp_path_factory.mktemp("exported")
    for suffix in (".keras", ".onnx", ".safetensors"):
        assert main(["export", str(digits_run / "best.npz"), str(folder / f"digits{suffix}")]) == 0
    return folder


def test_export_writes_each_format_in_one_line(digits_run, tmp_path, capsys):
    assert main(["export", str(digits_run / "best.npz"), str(tmp_path / "m.onnx")]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith(f"Wrote {tmp_path / 'm.onnx'} (") and "onnxruntime" in out[0]


@pytest.mark.parametrize("suffix", [".keras", ".safetensors", ".onnx"])
def test_imported_checkpoint_evaluates_predicts_shows_and_serves_like_the_original(suffix, exported, digits_run,
                                                                                   tmp_path, capsys):
    imported = tmp_path / "imported.npz"
    assert main(["import", str(exported / f"digits{suffix}"), str(imported)]) == 0
    assert "Wrote" in capsys.readouterr().out
    original, back = checkpoint.load(digits_run / "best.npz"), checkpoint.load(imported)
    assert type(back.model).__name__ == "MNISTModel"
    for a, b in zip(original.model.get_weights(), back.model.get_weights()):
        assert np.array_equal(a, b)
    reports = []
    for path in (digits_run / "best.npz", imported):
        assert main(["evaluate", str(path), "--json"]) == 0
        reports.append(json.loads(capsys.readouterr().out))
    assert reports[0]["accuracy"] == reports[1]["accuracy"] and reports[0]["confusion_matrix"] == \
        reports[1]["confusion_matrix"]
    image = png(tmp_path / "one.png")
    lines = []
    for path in (digits_run / "best.npz", imported):
        assert main(["predict", str(path), str(image)]) == 0
        lines.append(capsys.readouterr().out.split(":", 1)[1])
    assert lines[0] == lines[1]
    assert main(["show", "filters", str(imported), "--out", str(tmp_path / "f.png")]) == 0
    assert Image.open(tmp_path / "f.png").size[0] > 100
    from starlette.testclient import TestClient

    from convlayer.web.app import create_app

    answers = [TestClient(create_app(str(p))).post("/api/predict", content=image.read_bytes(),
                                                   headers={"content-type": "image/png"}).json()
               for p in (digits_run / "best.npz", imported)]
    assert len(answers[0]["top"]) == 3 and answers[0]["top"] == answers[1]["top"]


def test_import_with_like(exported, digits_run, tmp_path, capsys):
    out = tmp_path / "like.npz"
    assert main(["import", str(exported / "digits.safetensors"), str(out), "--like", str(digits_run / "last.npz")]) == 0
    capsys.readouterr()
    assert checkpoint.load(out).model.count_params() == checkpoint.load(digits_run / "best.npz").model.count_params()


@pytest.mark.parametrize("args, message", [
    (["export", "{run}/best.npz", "{tmp}/m.txt"], "export file '{tmp}/m.txt' should end in .keras or .onnx or "
                                                  ".safetensors."),
    (["export", "{tmp}/missing.npz", "{tmp}/m.keras"], "checkpoint '{tmp}/missing.npz' not found"),
    (["import", "{tmp}/model.tflite", "{tmp}/o.npz"], "cannot import '{tmp}/model.tflite': it should end "
                                                      "in .keras or .h5 or .safetensors or .pt or .onnx."),
    (["import", "{exported}/digits.keras", "{tmp}/o.keras"], "checkpoint '{tmp}/o.keras' should end in .npz."),
    (["import", "{tmp}/garbage.keras", "{tmp}/o.npz"], "is not a .keras file (not a zip archive)"),
    (["import", "{tmp}/garbage.safetensors", "{tmp}/o.npz"], "is not a readable .safetensors file"),
    (["import", "{exported}/digits.safetensors", "{tmp}/o.npz", "--like", "{tmp}/none.npz"],
     "checkpoint '{tmp}/none.npz' not found"),
    (["import", "{exported}/digits.keras", "{tmp}/o.npz", "--like", "{run}/best.npz"],
     "carries its own architecture"),
])
def test_bad_input_is_one_line_and_exit_1(args, message, exported, digits_run, tmp_path, capsys):
    (tmp_path / "garbage.keras").write_bytes(b"not a zip at all")
    (tmp_path / "garbage.safetensors").write_bytes(b"\xff" * 40)
    fill = lambda s: s.format(run=digits_run, tmp=tmp_path, exported=exported)  # noqa: E731
    assert main([fill(a) for a in args]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in captured.err and fill(message) in err
    assert err.startswith(f"convlayer {args[0]}: error: ")
