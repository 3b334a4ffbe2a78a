"""Every import format is data, never trusted: truncations, byte flips, damaged JSON, wrong dtypes and shapes,
huge sizes and pickled members end in InteropError (one line) and nothing else; where the format can tell
(.keras has zip CRCs, convlayer's .safetensors a checksum), a file that does load has exactly its weights."""

from __future__ import annotations

import io
import json
import pickle
import re
import struct
import zipfile

import h5py
import numpy as np
import pytest
import torch

from convlayer.interop import InteropError, export_model, import_model, to_torch
from convlayer.layers import Conv2D, Dense, Flatten, MaxPooling2D
from convlayer.models import Sequential

SEED = 20241202


def small_model() -> Sequential:
    model = Sequential([Conv2D(3, 3, padding="same", activation="relu", name="conv", seed=1), MaxPooling2D(name="pool"),
                        Flatten(name="flatten"), Dense(4, name="dense", seed=2)], name="small")
    model.build((None, 6, 6, 1))
    return model


def keras2_h5(path, model, *, config=None, weights=None) -> None:
    """A Keras 2 full-model .h5 as tf.keras 2 wrote it (model_config, model_weights/<layer>/<name>:0)."""
    layers = [{"class_name": "InputLayer", "config": {"batch_input_shape": [None, 6, 6, 1], "dtype": "float32",
                                                      "name": "input_1"}},
              {"class_name": "Conv2D", "config": {"name": "conv", "filters": 3, "kernel_size": [3, 3],
                                                  "strides": [1, 1], "padding": "same", "activation": "relu",
                                                  "use_bias": True, "dtype": "float32"}},
              {"class_name": "MaxPooling2D", "config": {"name": "pool", "pool_size": [2, 2], "strides": [2, 2],
                                                        "padding": "valid"}},
              {"class_name": "Flatten", "config": {"name": "flatten"}},
              {"class_name": "Dense", "config": {"name": "dense", "units": 4, "activation": "linear"}}]
    config = config or {"class_name": "Sequential", "config": {"name": "small", "layers": layers}}
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config)
        f.attrs["keras_version"] = "2.15.0"
        root = f.create_group("model_weights")
        for layer in model.layers:
            group = root.create_group(layer.name)
            names = [f"{layer.name}/{key}:0" for key in layer.params]
            group.attrs["weight_names"] = np.array(names, dtype="S")
            for name, key in zip(names, layer.params):
                value = (weights or {}).get((layer.name, key), layer.params[key])
                group.create_dataset(name, data=value)


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    folder = tmp_path_factory.mktemp("originals")
    model = small_model()
    export_model(model, folder / "m.keras")
    export_model(model, folder / "m.safetensors")
    export_model(model, folder / "m.onnx")
    keras2_h5(folder / "m.h5", model)
    torch.save(to_torch(model).state_dict(), folder / "m.pt")
    return model, folder


def assert_only_interop_error(path, like=None, *, checked=None):
    """Import ``path``: an InteropError of one line, or (for formats that can tell) the original weights."""
    try:
        ck = import_model(path, like=like)
    except InteropError as exc:
        assert "\n" not in str(exc) and str(exc)
        return "refused"
    if checked is not None:
        for a, b in zip(checked.get_weights(), ck.model.get_weights()):
            assert np.array_equal(a, b), f"{path.name} loaded with different weights"
    return "loaded"


def test_the_originals_import(originals):
    model, folder = originals
    x = np.random.default_rng(0).random((2, 6, 6, 1), dtype=np.float32)
    for name in ("m.keras", "m.safetensors", "m.h5", "m.onnx"):
        assert np.array_equal(import_model(folder / name).model.predict(x), model.predict(x)), name
    assert np.allclose(import_model(folder / "m.pt", like=model).model.predict(x), model.predict(x))


@pytest.mark.parametrize("name", ["m.keras", "m.safetensors", "m.h5", "m.pt", "m.onnx"])
def test_truncations_and_byte_flips(name, originals, tmp_path):
    model, folder = originals
    data = (folder / name).read_bytes()
    rng = np.random.default_rng(SEED)
    like = model if name == "m.pt" else None
    checked = model if name in ("m.keras", "m.safetensors") else None
    cuts = sorted({0, 1, 7, 8, 9, 64, len(data) // 3, len(data) // 2, len(data) - 100, len(data) - 1})
    outcomes = []
    for i, cut in enumerate(cuts):
        path = tmp_path / f"cut{i}{name[1:]}"
        path.write_bytes(data[:cut])
        outcomes.append(assert_only_interop_error(path, like, checked=checked))
    assert set(outcomes) == {"refused"}
    for i, position in enumerate(rng.integers(0, len(data), 40)):
        damaged = bytearray(data)
        damaged[position] ^= int(rng.integers(1, 256))
        path = tmp_path / f"flip{i}{name[1:]}"
        path.write_bytes(bytes(damaged))
        assert_only_interop_error(path, like, checked=checked)


def _rezip(source, target, replace):
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.infolist():
            data = replace.get(item.filename, old.read(item.filename))
            if data is not None:
                new.writestr(item.filename, data)
        for extra, data in replace.items():
            if extra not in old.namelist() and data is not None:
                new.writestr(extra, data)


def _keras_config(folder):
    with zipfile.ZipFile(folder / "m.keras") as archive:
        return json.loads(archive.read("config.json"))


def _weights_h5(folder, edit) -> bytes:
    """The original model.weights.h5 with conv2d's kernel replaced by ``edit(group)``."""
    with zipfile.ZipFile(folder / "m.keras") as archive:
        buffer = io.BytesIO(archive.read("model.weights.h5"))
    with h5py.File(buffer, "a") as f:
        del f["layers/conv2d/vars/0"]
        edit(f["layers/conv2d/vars"])
    return buffer.getvalue()


def _config_with(folder, index, **changes):
    config = _keras_config(folder)
    config["config"]["layers"][index]["config"].update(changes)
    return json.dumps(config)


KERAS_DAMAGE = {
    "config not json": {"config.json": b"{"},
    "config a list": {"config.json": b"[]"},
    "config body a string": {"config.json": json.dumps({"class_name": "Sequential", "config": "x"}).encode()},
    "deep json": {"config.json": b"[" * 100_000 + b"]" * 100_000},
    "metadata not json": {"metadata.json": b"\xff\xfe"},
    "no weights": {"model.weights.h5": None},
    "no config": {"config.json": None},
    "weights a pickle": {"model.weights.h5": pickle.dumps({"layers": [1, 2, 3]})},
    "sharded weights": {"model.weights.h5": None, "model.weights.json": b"{}"},
}


@pytest.mark.parametrize("damage", list(KERAS_DAMAGE) + ["filters a string", "kernel huge", "units huge",
                                                        "input huge", "strides negative", "activation object",
                                                        "layer unknown", "name a number", "kernel int",
                                                        "kernel wrong shape", "kernel claims a huge shape",
                                                        "kernel NaN",
                                                        "vars a dataset", "convlayer doc huge"])
def test_damaged_keras_files(damage, originals, tmp_path):
    model, folder = originals
    path = tmp_path / "d.keras"
    replace = KERAS_DAMAGE.get(damage) or {
        "filters a string": {"config.json": _config_with(folder, 1, filters="three")},
        "kernel huge": {"config.json": _config_with(folder, 1, kernel_size=[30000, 30000])},
        "units huge": {"config.json": _config_with(folder, 4, units=10**9)},
        "input huge": {"config.json": _config_with(folder, 0, batch_shape=[None, 10**6, 10**6, 1])},
        "strides negative": {"config.json": _config_with(folder, 1, strides=[-1, 1])},
        "activation object": {"config.json": _config_with(folder, 1, activation={"class_name": "LeakyReLU"})},
        "layer unknown": {"config.json": json.dumps({**_keras_config(folder), "class_name": "Sequential"}).replace(
            '"MaxPooling2D"', '"SpatialDropout2D"')},
        "name a number": {"config.json": _config_with(folder, 1, name=7)},
        "kernel int": {"model.weights.h5": _weights_h5(folder, lambda g: g.create_dataset(
            "0", data=np.zeros((3, 3, 1, 3), np.int32)))},
        "kernel wrong shape": {"model.weights.h5": _weights_h5(folder, lambda g: g.create_dataset(
            "0", data=np.zeros((3, 3, 3, 1), np.float32)))},
        "kernel claims a huge shape": {"model.weights.h5": _weights_h5(folder, lambda g: g.create_dataset(
            "0", shape=(10**5, 10**5, 10, 10), dtype="f4", chunks=(1, 1, 10, 10), compression="gzip"))},
        "kernel NaN": {"model.weights.h5": _weights_h5(folder, lambda g: g.create_dataset(
            "0", data=np.full((3, 3, 1, 3), np.nan, np.float32)))},
        "vars a dataset": {"model.weights.h5": _weights_h5(folder, lambda g: (
            g.parent.__delitem__("vars"), g.file.create_dataset("layers/conv2d/vars", data=np.zeros(3))))},
        "convlayer doc huge": {"metadata.json": json.dumps({"convlayer": {
            "format": "convlayer-model", "model": {"class_name": "MNISTModel", "config": {"input_dim": 28,
                                                                                          "output_size": 10**9}},
            "input_shape": [None, 28, 28, 1]}}).encode()},
    }[damage]
    _rezip(folder / "m.keras", path, replace)
    outcome = assert_only_interop_error(path, checked=model)
    if damage == "convlayer doc huge":  # a bad convlayer document is ignored: Keras' own config still holds
        return
    assert outcome == "refused"
    if damage in EXPECTED:
        with pytest.raises(InteropError, match=re.escape(EXPECTED[damage])):
            import_model(path)


EXPECTED = {
    "deep json": "config.json is not valid JSON (RecursionError",
    "weights a pickle": "is not a readable HDF5 file",
    "sharded weights": "it needs config.json and model.weights.h5, it holds config.json, metadata.json, "
                       "model.weights.json",
    "kernel huge": "Conv2D 'conv' would have kernel of shape (30000, 30000, 1, 3) (2,700,000,000 values), more "
                   "than the file holds",
    "units huge": "Dense 'dense' would have kernel of shape (27, 1000000000)",
    "input huge": "Dense 'dense' would have kernel of shape (750000000000, 4)",
    "layer unknown": "SpatialDropout2D 'pool' is a layer convlayer does not have; supported: InputLayer, Conv2D",
    "kernel int": "layer 'conv' kernel is int32 (3, 3, 1, 3) in the file but the layer needs float (3, 3, 1, 3).",
    "kernel claims a huge shape": "kernel is float32 (100000, 100000, 10, 10) in the file but the layer needs",
    "kernel NaN": "layer 'conv' kernel holds NaN or infinite values.",
}


def _safetensors_bytes(header: dict, payload: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + payload


@pytest.mark.parametrize("header, payload", [
    ({"0.weight": {"dtype": "F32", "shape": [10**6, 10**6], "data_offsets": [0, 16]}}, b"\0" * 16),
    ({"0.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 10**12]}}, b"\0" * 16),
    ({"0.weight": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]}}, b"\0" * 16),
    ({"0.weight": {"dtype": "NOPE", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8),
    ({"0.weight": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, b"\0" * 8),
    ({"__metadata__": {"convlayer": "{not json"}, "0.weight": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}},
     b"\0" * 8),
    ({"__metadata__": {"convlayer": json.dumps({"format": "convlayer-model", "model": {
        "class_name": "Sequential", "config": {"layers": [{"class_name": "Dense", "config": {"units": 10**9}}]}},
        "input_shape": [None, 10**6]})}, "0.weight": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}},
     b"\0" * 8),
    ({"__metadata__": {"convlayer": json.dumps({"format": "convlayer-model", "model": "x"})},
      "0.weight": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8),
    ({}, b""),
])
def test_damaged_safetensors(header, payload, tmp_path):
    path = tmp_path / "d.safetensors"
    path.write_bytes(_safetensors_bytes(header, payload))
    assert assert_only_interop_error(path) == "refused"
    (tmp_path / "huge_header.safetensors").write_bytes(struct.pack("<Q", 2**62) + b"{}")
    assert assert_only_interop_error(tmp_path / "huge_header.safetensors") == "refused"


def test_a_checksum_catches_a_changed_weight(originals, tmp_path):
    from safetensors.numpy import load_file, save_file
    from safetensors import safe_open

    _, folder = originals
    tensors = load_file(folder / "m.safetensors")
    with safe_open(str(folder / "m.safetensors"), framework="numpy") as f:
        metadata = f.metadata()
    tensors["0.weight"][0, 0, 0, 0] += 1
    save_file(tensors, tmp_path / "changed.safetensors", metadata=metadata)
    with pytest.raises(InteropError, match="do not match the checksum convlayer recorded"):
        import_model(tmp_path / "changed.safetensors")


class Sneaky:
    def __reduce__(self):
        return (exec, ("raise SystemExit('code ran')",))


@pytest.mark.parametrize("content", [
    lambda: {"0.weight": Sneaky()},
    lambda: [torch.zeros(2)],
    lambda: {"0.weight": torch.zeros(2, dtype=torch.int64)},
    lambda: {"0.weight": torch.zeros(3, 1, 3, 3, dtype=torch.complex64)},
    lambda: {3: torch.zeros(2)},
    lambda: {"0.weight": torch.zeros(1, 1, 1, 1).expand(10**4, 10**4, 1, 1)},
])
def test_damaged_pt(content, originals, tmp_path):
    model, _ = originals
    path = tmp_path / "d.pt"
    torch.save(content(), path)
    assert assert_only_interop_error(path, like=model) == "refused"
    path.write_bytes(pickle.dumps({"0.weight": np.zeros(2)}))  # a plain (legacy) pickle of NumPy arrays
    assert assert_only_interop_error(path, like=model) == "refused"


@pytest.mark.parametrize("damage", ["no config", "config not json", "config a number", "weights missing",
                                    "kernel wrong shape", "kernel int", "units huge", "config functional branch"])
def test_damaged_keras2_h5(damage, originals, tmp_path):
    model, folder = originals
    path = tmp_path / "d.h5"
    if damage == "kernel wrong shape":
        keras2_h5(path, model, weights={("conv", "kernel"): np.zeros((3, 3, 3, 1), np.float32)})
    elif damage == "kernel int":
        keras2_h5(path, model, weights={("conv", "kernel"): np.zeros((3, 3, 1, 3), np.int32)})
    elif damage == "units huge":
        keras2_h5(path, model, config={"class_name": "Sequential", "config": {"layers": [
            {"class_name": "Dense", "config": {"name": "dense", "units": 10**9, "batch_input_shape": [None, 10**5]}}]}})
    elif damage == "config functional branch":
        keras2_h5(path, model, config={"class_name": "Functional", "config": {"layers": [
            {"class_name": "InputLayer", "name": "in", "config": {"name": "in", "batch_input_shape": [None, 4]},
             "inbound_nodes": []},
            {"class_name": "Dense", "name": "a", "config": {"name": "a", "units": 2},
             "inbound_nodes": [[["x", 0, 0, {}]]]},
        ]}})
    else:
        keras2_h5(path, model)
        with h5py.File(path, "a") as f:
            if damage == "no config":
                del f.attrs["model_config"]
            elif damage == "config not json":
                f.attrs["model_config"] = "{{"
            elif damage == "config a number":
                f.attrs["model_config"] = 3
            else:
                del f["model_weights/conv"]
    assert assert_only_interop_error(path) == "refused"


def _onnx_with(folder, edit):
    import onnx

    proto = onnx.load(folder / "m.onnx")
    edit(proto)
    return proto.SerializeToString()


@pytest.mark.parametrize("damage", ["initializer claims a huge shape", "initializer negative dims",
                                    "input unknown size", "initializer strings", "two inputs", "kernel NaN", "convlayer doc damaged"])
def test_damaged_onnx(damage, originals, tmp_path):
    from onnx import TensorProto, helper

    model, folder = originals

    def edit(proto):
        graph = proto.graph
        kernel = next(t for t in graph.initializer if t.dims and len(t.dims) == 4)
        if damage == "initializer claims a huge shape":
            kernel.dims[:] = [10**6, 10**6, 3, 3]
        elif damage == "initializer negative dims":
            kernel.dims[0] = -3
        elif damage == "input unknown size":
            graph.input[0].type.tensor_type.shape.dim[1].dim_param = "h"
        elif damage == "initializer strings":
            kernel.data_type = TensorProto.STRING
        elif damage == "two inputs":
            graph.input.append(helper.make_tensor_value_info("other", TensorProto.FLOAT, [1]))
        elif damage == "kernel NaN":
            kernel.raw_data = np.full(tuple(kernel.dims), np.nan, np.float32).tobytes()
        else:
            proto.metadata_props[0].value = "{broken"

    path = tmp_path / "d.onnx"
    path.write_bytes(_onnx_with(folder, edit))
    assert assert_only_interop_error(path) == "refused"


def test_a_pt_zip_bomb_is_refused_before_torch_inflates_it(originals, tmp_path):
    model, _ = originals
    path = tmp_path / "bomb.pt"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", b"\0" * (80 << 20))
    with pytest.raises(InteropError, match="its members expand to 83,886,080 bytes, far more than the file's size"):
        import_model(path, like=model)


def test_like_must_be_a_model(tmp_path, originals):
    _, folder = originals
    with pytest.raises(InteropError, match="like= must be a convlayer model, a Checkpoint or a checkpoint path, got "
                                           "int."):
        import_model(folder / "m.pt", like=3)
