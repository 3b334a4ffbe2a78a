"""Checkpoints are data, never trusted: every malformed file ends in one CheckpointError.

Crafted files (a config that is a string, a wrong optimizer slot, sizes that would allocate
gigabytes, pickled members) and a seeded fuzz (truncations, byte flips) over a real checkpoint.
"""

import io
import json
import pickle
import tracemalloc
import zipfile

import numpy as np
import pytest

from convlayer import checkpoint
from convlayer.checkpoint import CheckpointError
from convlayer.layers import Dense, Flatten
from convlayer.models import MNISTModel, Sequential


@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    """A compiled Sequential that took one Adam step: weights, optimizer slots and a document."""
    model = Sequential([Flatten(), Dense(6, activation="relu", seed=0), Dense(3, seed=1)])
    model.compile("adam", learning_rate=1e-2)
    x = np.random.default_rng(0).random((8, 4, 4, 1), np.float32)
    model.train_step(x, np.arange(8) % 3)
    path = tmp_path_factory.mktemp("ck") / "small.npz"
    model.save(path)
    return path


def _members(path):
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def _write(path, members):
    np.savez(path, **members)
    return path


def _document(members):
    return json.loads(str(members["__document__"]))


def test_save_keeps_the_optimizer_and_training_continues_exactly(small_file, tmp_path):
    x = np.random.default_rng(1).random((8, 4, 4, 1), np.float32)
    y = np.arange(8) % 3
    a, b = Sequential.load(small_file), Sequential.load(small_file)
    assert a.optimizer is not None and a.optimizer.iterations == 1
    a.train_step(x, y)
    b.save(tmp_path / "again.npz")
    c = Sequential.load(tmp_path / "again.npz")
    c.train_step(x, y)
    for wa, wc in zip(a.get_weights(), c.get_weights()):
        np.testing.assert_array_equal(wa, wc)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(model="a string"), "damaged model document"),
    (lambda d: d["model"].update(config="a string"), "damaged model document"),
    (lambda d: d["model"].update(class_name="Nope"), "damaged model document"),
    (lambda d: d["model"]["config"]["layers"][1]["config"].update(units=200_000), "cannot build"),
    (lambda d: d["model"]["config"]["layers"][1]["config"].update(units=10 ** 9), "cannot build"),
    (lambda d: d["model"]["config"]["layers"][1]["config"].update(units="six"), "cannot build"),
    (lambda d: d.update(optimizer="adam"), "damaged optimizer config"),
    (lambda d: d["optimizer"].update(name="nope"), "damaged optimizer config"),
    (lambda d: d.update(meta=[1, 2]), "meta must be objects"),
    (lambda d: d.update(version=99), "unsupported checkpoint format"),
])
def test_a_damaged_document_is_one_checkpoint_error(small_file, tmp_path, change, message):
    members = _members(small_file)
    document = _document(members)
    change(document)
    members["__document__"] = np.array(json.dumps(document))
    with pytest.raises(CheckpointError, match=message):
        checkpoint.load(_write(tmp_path / "bad.npz", members))


def test_a_huge_config_fails_before_allocating(small_file, tmp_path):
    members = _members(small_file)
    document = _document(members)
    document["model"] = {"class_name": "MNISTModel", "config": {"input_dim": 28, "output_size": 200_000}}
    members["__document__"] = np.array(json.dumps(document))
    path = _write(tmp_path / "huge.npz", members)
    tracemalloc.start()
    with pytest.raises(CheckpointError, match="more than the file holds"):
        checkpoint.load(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20 * 2 ** 20  # the model would take 3.2 GB


@pytest.mark.parametrize("key, value, message", [
    ("optimizer/m/dense/kernel", np.zeros((3, 3), np.float32), "optimizer slot"),
    ("optimizer/m/nothing/kernel", np.zeros((3,), np.float32), "belongs to no parameter"),
    ("optimizer/iterations", np.zeros((2,), np.int64), "step count"),
    ("weights/dense/kernel", np.zeros((16, 7), np.float32), "shape"),
    ("weights/dense/kernel", np.array([["a"] * 6] * 16), "not numbers"),
])
def test_wrong_arrays_are_refused(small_file, tmp_path, key, value, message):
    members = _members(small_file)
    name = next(k for k in members if k.startswith(key.rsplit("/", 2)[0]) and k.endswith(key.rsplit("/", 1)[1])) \
        if "nothing" not in key and "iterations" not in key else key
    if "dense/kernel" in key and "optimizer" in key:
        name = next(k for k in members if k.startswith("optimizer/m/") and k.endswith("/kernel"))
    if key.startswith("weights/"):
        name = next(k for k in members if k.startswith("weights/dense") and k.endswith("/kernel"))
    members[name] = value
    with pytest.raises(CheckpointError, match=message):
        checkpoint.load(_write(tmp_path / "bad.npz", members))


def test_pickles_and_other_files_are_not_checkpoints_and_no_unpickling_is_advised(tmp_path):
    evil = tmp_path / "evil.npz"
    with zipfile.ZipFile(evil, "w") as archive:
        buffer = io.BytesIO()
        np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        archive.writestr("__document__.npy", buffer.getvalue())
    (tmp_path / "model.pkl").write_bytes(pickle.dumps({"weights": [1, 2]}))
    np.save(tmp_path / "array.npy", np.zeros(3))
    (tmp_path / "text.npz").write_text("hello")
    for name in ("evil.npz", "model.pkl", "array.npy", "text.npz"):
        with pytest.raises(CheckpointError, match="not a convlayer checkpoint") as info:
            checkpoint.load(tmp_path / name)
        assert "allow_pickle" not in str(info.value) and "pickle.load" not in str(info.value)
    with pytest.raises(CheckpointError, match="is a folder"):
        checkpoint.load(tmp_path)


def test_fuzzed_files_raise_only_checkpoint_errors_or_load_the_same_weights(small_file, tmp_path):
    data = small_file.read_bytes()
    original = Sequential.load(small_file).get_weights()
    rng = np.random.default_rng(7)
    cases = [data[:n] for n in rng.integers(0, len(data), 40)]
    for _ in range(80):
        flipped = bytearray(data)
        for position in rng.integers(0, len(data), rng.integers(1, 4)):
            flipped[position] ^= 1 << int(rng.integers(0, 8))
        cases.append(bytes(flipped))
    loaded = 0
    for i, case in enumerate(cases):
        path = tmp_path / f"fuzz{i}.npz"
        path.write_bytes(case)
        try:
            ck = checkpoint.load(path)
        except CheckpointError as exc:
            assert "\n" not in str(exc)
            continue
        loaded += 1
        for a, b in zip(ck.model.get_weights(), original):  # a flip that np.load accepts must be a no-op
            np.testing.assert_array_equal(a, b)
    assert loaded < len(cases)


def test_mnist_model_checkpoint_still_loads(tmp_path):
    model = MNISTModel(8, 10, seed=3)
    checkpoint.save(tmp_path / "m.npz", model)
    back = checkpoint.load(tmp_path / "m.npz").model
    for a, b in zip(model.get_weights(), back.get_weights()):
        np.testing.assert_array_equal(a, b)
