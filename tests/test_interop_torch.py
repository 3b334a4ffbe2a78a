"""PyTorch interop against real torch: to_torch and .safetensors exports predicting like convlayer, state_dicts
that PyTorch builds and trains here imported back (.safetensors and .pt), round trips and refusals."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file as load_numpy
from safetensors.torch import load_file, save_file

from convlayer import checkpoint
from convlayer.interop import InteropError, export_model, import_model, to_torch
from convlayer.layers import Conv2D, Dense, Flatten, MaxPooling2D
from convlayer.models import MNISTModel, Sequential
from interop_models import GRID, images, lesson_model, relative_error

TOLERANCE = 1e-5


def nchw(case_or_model, x):
    """What the PyTorch twin takes: NCHW images for channels_last models with spatial layers."""
    layers = case_or_model.layers() if callable(getattr(case_or_model, "layers", None)) else case_or_model.layers
    spatial = [layer for layer in layers if hasattr(layer, "data_format") and type(layer).__name__ != "Flatten"]
    return spatial and spatial[0].data_format == "channels_last" and x.ndim == 4


def torch_predict(net, x, transposed):
    with torch.no_grad():
        y = net(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2) if transposed else x))).numpy()
    return y.transpose(0, 2, 3, 1) if transposed and y.ndim == 4 else y


def lesson_in_torch(input_dim=28, classes=10):
    """The lesson's CNN as a PyTorch user writes it."""
    side = input_dim // 4
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 32, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(64 * side * side, 1024), torch.nn.ReLU(), torch.nn.Dropout(0.4),
        torch.nn.Linear(1024, classes))


def test_lesson_safetensors_loads_into_a_hand_written_pytorch_model(tmp_path):
    model = lesson_model()
    path = export_model(model, tmp_path / "lesson.safetensors", meta={"dataset": "mnist"})
    state = load_file(path)
    assert sorted(state, key=lambda k: (int(k.split(".")[0]), k)) == [
        "0.bias", "0.weight", "3.bias", "3.weight", "7.bias", "7.weight", "10.bias", "10.weight"]
    assert tuple(state["0.weight"].shape) == (32, 1, 5, 5) and tuple(state["7.weight"].shape) == (1024, 3136)
    net = lesson_in_torch().eval()
    net.load_state_dict(state, strict=True)
    x = images((28, 28, 1), n=8)
    assert relative_error(torch_predict(net, x, True), model.predict(x)) < TOLERANCE
    assert relative_error(torch_predict(to_torch(model), x, True), model.predict(x)) < TOLERANCE


@pytest.mark.parametrize("case", GRID, ids=lambda c: c.name)
def test_grid_in_pytorch_or_refused(case, tmp_path):
    model = case.model()
    path = tmp_path / f"{case.name}.safetensors"
    if ".safetensors" not in case.formats:
        with pytest.raises(InteropError) as info:
            export_model(model, path)
        message = str(info.value)
        assert case.refusal in message and ".safetensors" in message and "formats that hold it" in message
        assert not path.exists()
        with pytest.raises(InteropError):
            to_torch(model)
        return
    x = images(case.input_shape, n=3)
    net = to_torch(model)
    transposed = nchw(case, x)
    assert relative_error(torch_predict(net, x, transposed), model.predict(x)) < TOLERANCE
    export_model(model, path)
    fresh = to_torch(case.model())
    for parameter in fresh.parameters():
        torch.nn.init.zeros_(parameter)
    fresh.load_state_dict(load_file(path), strict=True)  # the file is exactly the twin's state_dict
    assert relative_error(torch_predict(fresh, x, transposed), model.predict(x)) < TOLERANCE
    back = import_model(path).model
    for a, b in zip(model.get_weights(), back.get_weights()):
        assert a.dtype == b.dtype and np.array_equal(a, b)


def _train(net, x, y, steps=5):
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05)
    net.train()
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()
    return net.eval()


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_import_of_a_lesson_model_pytorch_trained(suffix, tmp_path):
    torch.manual_seed(0)
    x = torch.rand(32, 1, 8, 8)
    net = _train(lesson_in_torch(8, 10), x, torch.randint(0, 10, (32,)))
    path = tmp_path / f"trained{suffix}"
    if suffix == ".pt":
        torch.save(net.state_dict(), path)
    else:
        save_file(net.state_dict(), path)
    ck = import_model(path)  # no --like: the lesson's MNISTModel for the file's input size
    assert type(ck.model).__name__ == "MNISTModel" and ck.model.input_dim == 8 and ck.model.output_size == 10
    images_nhwc = x.numpy().transpose(0, 2, 3, 1)
    with torch.no_grad():
        expected = net(x).numpy()
    assert relative_error(ck.model.predict(images_nhwc), expected) < TOLERANCE
    saved = checkpoint.save(tmp_path / "imported.npz", ck.model, meta=ck.meta)
    assert np.array_equal(checkpoint.load(saved).model.predict(images_nhwc), ck.model.predict(images_nhwc))
    # import then export gives back the same tensors
    again = load_numpy(export_model(ck.model, tmp_path / "again.safetensors"))
    for key, value in net.state_dict().items():
        assert np.array_equal(again[key], value.numpy())


def test_import_onto_another_architecture_with_like(tmp_path):
    like = Sequential([Conv2D(4, 3, strides=2, padding="same", activation="relu", name="c"),
                       MaxPooling2D(name="p"), Flatten(name="f"), Dense(3, name="d")], name="small")
    like.build((None, 9, 9, 2))
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.ZeroPad2d((1, 1, 1, 1)), torch.nn.Conv2d(2, 4, 3, stride=2),
                              torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(16, 3))
    x = torch.rand(16, 2, 9, 9)
    _train(net, x, torch.randint(0, 3, (16,)))
    torch.save(net.state_dict(), tmp_path / "small.pt")
    ck = import_model(tmp_path / "small.pt", like=like)
    with torch.no_grad():
        expected = net(x).numpy()
    assert relative_error(ck.model.predict(x.numpy().transpose(0, 2, 3, 1)), expected) < TOLERANCE
    assert ck.model is not like and not np.array_equal(like.layers[0].kernel, ck.model.layers[0].kernel)


def test_safetensors_round_trip_is_bit_identical(tmp_path):
    model = lesson_model()
    ck = import_model(export_model(model, tmp_path / "a.safetensors", meta={"dataset": "digits"}))
    assert type(ck.model).__name__ == "MNISTModel" and ck.meta["dataset"] == "digits"
    for a, b in zip(model.get_weights(), ck.model.get_weights()):
        assert np.array_equal(a, b)


def test_state_dict_mismatches_are_refused_naming_the_tensor(tmp_path):
    net = lesson_in_torch(8, 10)
    state = net.state_dict()
    save_file(state, tmp_path / "ok.safetensors")
    wrong = MNISTModel(12, 10)
    with pytest.raises(InteropError, match=re.escape("tensor '7.weight' has shape (1024, 256) but layer 'dense' "
                                                     "kernel needs (1024, 576) (out, in)")):
        import_model(tmp_path / "ok.safetensors", like=wrong)
    save_file({k: v for k, v in state.items() if k != "10.bias"}, tmp_path / "short.safetensors")
    with pytest.raises(InteropError, match="does not have the lesson's MNISTModel parameters"):
        import_model(tmp_path / "short.safetensors")
    with pytest.raises(InteropError, match=r"has 7 tensors but the architecture has 8 parameters \(conv1/kernel"):
        import_model(tmp_path / "short.safetensors", like=MNISTModel(8, 10))
    bn = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    torch.save(bn.state_dict(), tmp_path / "bn.pt")
    with pytest.raises(InteropError, match="entry '1.num_batches_tracked' has dtype int64, not floating-point"):
        import_model(tmp_path / "bn.pt")


class Sneaky:
    def __reduce__(self):
        return (print, ("code ran",))


def test_a_pickle_with_code_is_refused_not_run(tmp_path, capsys):
    torch.save({"0.weight": torch.zeros(2), "extra": Sneaky()}, tmp_path / "evil.pt")
    with pytest.raises(InteropError, match=r"is not a PyTorch state_dict that torch.load\(weights_only=True\) reads"):
        import_model(tmp_path / "evil.pt")
    assert "code ran" not in capsys.readouterr().out


def test_keras_like_is_refused_for_files_with_their_own_architecture(tmp_path):
    with pytest.raises(InteropError, match="carries its own architecture"):
        import_model(tmp_path / "m.keras", like=MNISTModel(8, 10))
