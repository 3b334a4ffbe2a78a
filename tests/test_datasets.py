"""Dataset loading: local folders, the cache, downloads from a real loopback HTTP server, digits,
Debian's Fashion-MNIST, validation splits and minibatches.

No test touches the internet: an autouse fixture points every mirror at a closed local port
and the cache at a temporary folder.
"""

import dataclasses
import gzip
import hashlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from convlayer.datasets import (
    DATASET_NAMES,
    Dataset,
    DatasetError,
    IDXError,
    available,
    iterate_batches,
    load,
    sources,
    write_idx,
)
from convlayer.datasets.download import KnownMD5

STEMS = sources.IDX_FILES
N_TRAIN, N_TEST = 20, 10


# --- fixtures and helpers ---------------------------------------------------------------------------------


@pytest.fixture
def dead_url():
    """A loopback URL nobody listens on: connecting fails at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path, dead_url):
    """No real cache, no real data folder, no internet: mirrors point at a closed local port."""
    for var in (sources.DATA_DIR_ENV, *sources.MIRROR_ENV.values(), "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(sources.CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(sources, "MNIST_MIRRORS", (dead_url,))
    monkeypatch.setattr(sources, "FASHION_MNIST_MIRRORS", (dead_url,))
    monkeypatch.setattr(sources, "DOWNLOAD_TIMEOUT_S", 5.0)


def tiny_release(seed=0):
    """Arrays for the four files: 20 train / 10 test 28x28 images; pixel [0, 0] tags each image's index."""
    rng = np.random.default_rng(seed)
    x_train = rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8)
    x_test = rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8)
    x_train[:, 0, 0] = np.arange(N_TRAIN)
    x_test[:, 0, 0] = 100 + np.arange(N_TEST)
    x_train[0, 1, 1], x_train[1, 1, 1] = 0, 255  # both ends of the pixel range
    return {
        "train-images-idx3-ubyte": x_train,
        "train-labels-idx1-ubyte": (np.arange(N_TRAIN) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": x_test,
        "t10k-labels-idx1-ubyte": (np.arange(N_TEST)[::-1] % 10).astype(np.uint8),
    }


def write_folder(folder: Path, arrays, *, gz: bool) -> Path:
    for stem, array in arrays.items():
        write_idx(folder / (f"{stem}.gz" if gz else stem), array)
    return folder


def gz_files(arrays) -> dict[str, bytes]:
    """The four '<stem>.gz' files as bytes, as a mirror serves them."""
    out = {}
    for stem, array in arrays.items():
        header = bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
        out[f"{stem}.gz"] = gzip.compress(header + array.tobytes(), mtime=0)
    return out


def checksums_for(files: dict[str, bytes]) -> dict[str, KnownMD5]:
    md5 = lambda data: hashlib.md5(data).hexdigest()  # noqa: E731
    return {name[:-3]: KnownMD5(md5(data), md5(gzip.decompress(data))) for name, data in files.items()}


def assert_matches_release(data: Dataset, arrays):
    np.testing.assert_array_equal(data.x_train, arrays["train-images-idx3-ubyte"] / np.float32(255))
    np.testing.assert_array_equal(data.y_train, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(data.x_test, arrays["t10k-images-idx3-ubyte"] / np.float32(255))
    np.testing.assert_array_equal(data.y_test, arrays["t10k-labels-idx1-ubyte"])
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert data.x_train.min() == 0.0 and data.x_train.max() == 1.0
    assert data.x_val.shape == (0, 28, 28) and data.y_val.shape == (0,)
    assert data.input_dim == 28 and data.num_classes == 10


def files_under(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.server.requests.append(self.path)
        body = self.server.routes.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path.startswith("/cut/"):  # announce the full size, send half, hang up
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def server():
    """A real HTTP server on 127.0.0.1 (ephemeral port); tests fill ``server.routes``."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.routes, httpd.requests = {}, []
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def serve(server, prefix: str, files: dict[str, bytes]) -> str:
    for name, data in files.items():
        server.routes[f"/{prefix}/{name}"] = data
    return f"{server.url}/{prefix}/"


# --- names -----------------------------------------------------------------------------------------------


def test_unknown_name_lists_valid_names():
    with pytest.raises(DatasetError, match=r"Unknown dataset 'cifar10'; valid names: 'mnist', 'fashion-mnist'.*'digits'"):
        load("cifar10")
    with pytest.raises(DatasetError, match="Did you mean 'mnist'"):
        load("minst")
    assert DATASET_NAMES == ("mnist", "fashion-mnist", "digits")


# --- MNIST from a local folder ---------------------------------------------------------------------------


def test_mnist_from_data_dir_argument(tmp_path):
    arrays = tiny_release()
    folder = write_folder(tmp_path / "idx", arrays, gz=True)
    data = load("mnist", data_dir=folder)
    assert_matches_release(data, arrays)
    assert data.name == "mnist" and data.class_names == tuple("0123456789")
    assert str(folder) in data.source and "data_dir argument" in data.source
    assert "not the official release" in data.source


def test_mnist_from_env_var_with_raw_files_in_a_subfolder(tmp_path, monkeypatch):
    arrays = tiny_release(seed=1)
    write_folder(tmp_path / "data" / "mnist", arrays, gz=False)
    monkeypatch.setenv("CONVLAYER_DATA_DIR", str(tmp_path / "data"))
    data = load("mnist")
    assert_matches_release(data, arrays)
    assert str(tmp_path / "data" / "mnist") in data.source and "CONVLAYER_DATA_DIR" in data.source


def test_data_dir_argument_without_the_files_is_an_error(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", tiny_release()["train-images-idx3-ubyte"])
    with pytest.raises(DatasetError) as excinfo:
        load("mnist", data_dir=tmp_path)
    text = str(excinfo.value)
    assert "missing train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte" in text
    assert "--data-dir" in text and "\n" not in text
    with pytest.raises(DatasetError, match="is not a folder"):
        load("mnist", data_dir=tmp_path / "nowhere")


def test_images_labels_count_mismatch_names_both_files(tmp_path):
    arrays = tiny_release()
    arrays["train-labels-idx1-ubyte"] = arrays["train-labels-idx1-ubyte"][:-3]
    folder = write_folder(tmp_path, arrays, gz=True)
    with pytest.raises(IDXError) as excinfo:
        load("mnist", data_dir=folder)
    text = str(excinfo.value)
    assert f"{folder / 'train-images-idx3-ubyte.gz'} holds 20 images" in text
    assert f"{folder / 'train-labels-idx1-ubyte.gz'} holds 17 labels" in text
    assert "\n" not in text


def test_corrupt_file_in_data_dir_raises_idx_error_naming_it(tmp_path):
    folder = write_folder(tmp_path, tiny_release(), gz=False)
    path = folder / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(IDXError, match=rf"^{path}: truncated: .*100 missing"):
        load("mnist", data_dir=folder)


@pytest.mark.parametrize(
    "stem, array, message",
    [
        ("train-images-idx3-ubyte", np.zeros((20, 27, 27), np.uint8), r"N x 28 x 28, got uint8 with dimensions 20 x 27 x 27"),
        ("train-images-idx3-ubyte", np.zeros((20, 28, 28), np.float32), r"unsigned bytes.*got float32"),
        ("train-labels-idx1-ubyte", np.full(20, 10, np.uint8), r"label 10 is out of range; MNIST labels are 0..9"),
        ("t10k-labels-idx1-ubyte", np.zeros((10, 1), np.uint8), r"labels, unsigned bytes with one dimension"),
    ],
    ids=["image_size", "image_type", "label_range", "label_shape"],
)
def test_files_that_are_not_mnist_shaped_are_rejected(tmp_path, stem, array, message):
    arrays = tiny_release()
    arrays[stem] = array
    folder = tmp_path / "idx"
    for name, values in arrays.items():
        write_idx(folder / name, values)
    with pytest.raises(IDXError, match=message) as excinfo:
        load("mnist", data_dir=folder)
    assert str(excinfo.value).startswith(str(folder / stem))


def test_official_files_are_recognised_and_the_other_dataset_refused(tmp_path, monkeypatch):
    arrays = tiny_release()
    folder = write_folder(tmp_path, arrays, gz=True)
    table = checksums_for(gz_files(arrays))
    monkeypatch.setattr(sources, "MNIST_CHECKSUMS", table)
    assert "official files, MD5-verified" in load("mnist", data_dir=folder).source
    # The same files claimed as Fashion-MNIST: identical file names, so refuse instead of mislabelling.
    monkeypatch.setattr(sources, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "no-debian")
    with pytest.raises(DatasetError, match=r"are the official MNIST files, not Fashion-MNIST; load 'mnist' instead"):
        load("fashion-mnist", data_dir=folder)


# --- downloads from a real local HTTP server -------------------------------------------------------------


def test_download_writes_the_cache_and_the_next_load_needs_no_server(tmp_path, server, monkeypatch, dead_url):
    arrays = tiny_release()
    files = gz_files(arrays)
    monkeypatch.setattr(sources, "MNIST_CHECKSUMS", checksums_for(files))
    monkeypatch.setattr(sources, "MNIST_MIRRORS", (serve(server, "good", files),))

    data = load("mnist")
    assert_matches_release(data, arrays)
    assert data.source == f"downloaded from {server.url}/good/ into cache {tmp_path / 'cache' / 'mnist'}"
    cache = tmp_path / "cache" / "mnist"
    assert files_under(cache) == sorted(files)  # the four .gz files, no temp files
    for name, content in files.items():
        assert (cache / name).read_bytes() == content
    assert len(server.requests) == 4

    monkeypatch.setattr(sources, "MNIST_MIRRORS", (dead_url,))
    again = load("mnist")
    assert again.source == f"cache {cache}"
    assert_matches_release(again, arrays)
    assert len(server.requests) == 4


def test_checksum_mismatch_falls_back_to_the_next_mirror(tmp_path, server, monkeypatch):
    arrays = tiny_release()
    files = gz_files(arrays)
    impostor = gz_files({stem: array ^ 1 for stem, array in arrays.items()})  # well-formed, wrong content
    bad, good = serve(server, "bad", impostor), serve(server, "good", files)
    monkeypatch.setattr(sources, "MNIST_CHECKSUMS", checksums_for(files))
    monkeypatch.setattr(sources, "MNIST_MIRRORS", (bad, good))

    data = load("mnist")
    assert_matches_release(data, arrays)
    assert f"downloaded from {good}" in data.source and bad not in data.source
    assert sorted(server.requests) == sorted([f"/bad/{n}" for n in files] + [f"/good/{n}" for n in files])
    assert files_under(tmp_path / "cache") == sorted(files)


def test_recompressed_mirror_is_accepted_by_content_checksum(server, monkeypatch):
    arrays = tiny_release()
    files = gz_files(arrays)
    recompressed = {name: gzip.compress(gzip.decompress(data), compresslevel=1, mtime=12345) for name, data in files.items()}
    assert recompressed != files
    monkeypatch.setattr(sources, "MNIST_CHECKSUMS", checksums_for(files))
    monkeypatch.setattr(sources, "MNIST_MIRRORS", (serve(server, "recompressed", recompressed),))
    assert_matches_release(load("mnist"), arrays)


def test_all_mirrors_failing_gives_the_offline_message_and_leaves_no_partial_file(tmp_path, server, monkeypatch, dead_url):
    files = gz_files(tiny_release())
    monkeypatch.setattr(sources, "MNIST_CHECKSUMS", checksums_for(files))
    cut = serve(server, "cut", files)  # sends half of each file, then hangs up
    monkeypatch.setattr(sources, "MNIST_MIRRORS", (cut, f"{server.url}/missing/", dead_url))

    with pytest.raises(DatasetError) as excinfo:
        load("mnist")
    text = str(excinfo.value)
    assert "\n" not in text
    assert text.startswith("MNIST is not on this machine and could not be downloaded")
    assert f"{cut}train-images-idx3-ubyte.gz: IncompleteRead" in text
    assert f"{server.url}/missing/train-images-idx3-ubyte.gz: HTTP 404" in text
    assert f"{dead_url}train-images-idx3-ubyte.gz: " in text
    for name in files:
        assert name in text
    assert "--data-dir FOLDER" in text and "CONVLAYER_DATA_DIR=FOLDER" in text
    assert "'digits' (bundled with scikit-learn)" in text
    assert files_under(tmp_path / "cache") == []  # no partial or temp file


def test_mirror_env_var_overrides_the_module_tuple(server, monkeypatch, dead_url):
    arrays = tiny_release()
    files = gz_files(arrays)
    monkeypatch.setattr(sources, "MNIST_CHECKSUMS", checksums_for(files))
    monkeypatch.setenv("CONVLAYER_MNIST_MIRROR", f"{dead_url}, {serve(server, 'env', files)}")
    assert_matches_release(load("mnist"), arrays)
    assert all(path.startswith("/env/") for path in server.requests)


def test_download_false_does_not_touch_the_network(server, monkeypatch, tmp_path):
    monkeypatch.setattr(sources, "MNIST_MIRRORS", (serve(server, "good", gz_files(tiny_release())),))
    with pytest.raises(DatasetError, match=r"MNIST is not on this machine and download=False \(cache .* lacks"):
        load("mnist", download=False)
    assert server.requests == []


def test_explicit_cache_dir_argument(tmp_path, server, monkeypatch):
    arrays = tiny_release()
    files = gz_files(arrays)
    monkeypatch.setattr(sources, "MNIST_CHECKSUMS", checksums_for(files))
    monkeypatch.setattr(sources, "MNIST_MIRRORS", (serve(server, "good", files),))
    load("mnist", cache_dir=tmp_path / "elsewhere")
    assert files_under(tmp_path / "elsewhere" / "mnist") == sorted(files)
    assert files_under(tmp_path / "cache") == []


def test_fashion_mnist_without_debian_downloads_through_the_same_path(tmp_path, server, monkeypatch):
    arrays = tiny_release(seed=5)
    files = gz_files(arrays)
    monkeypatch.setattr(sources, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "not-installed")
    monkeypatch.setattr(sources, "FASHION_MNIST_CHECKSUMS", checksums_for(files))
    monkeypatch.setenv("CONVLAYER_FASHION_MNIST_MIRROR", serve(server, "fashion", files))

    data = load("fashion_mnist")
    assert_matches_release(data, arrays)
    assert data.name == "fashion-mnist"
    assert data.class_names[:2] == ("T-shirt/top", "Trouser") and data.class_names[-1] == "Ankle boot"
    assert files_under(tmp_path / "cache" / "fashion-mnist") == sorted(files)
    assert files_under(tmp_path / "cache" / "mnist") == []


def test_fashion_mnist_data_dir_argument_beats_debian(tmp_path):
    arrays = tiny_release(seed=6)
    folder = write_folder(tmp_path / "fm", arrays, gz=True)
    data = load("Fashion-MNIST", data_dir=folder)
    assert_matches_release(data, arrays)
    assert "data_dir argument" in data.source


DEBIAN_FILES = [sources.DEBIAN_FASHION_MNIST_DIR / f"{stem}.gz" for stem in STEMS]


@pytest.mark.skipif(
    not all(path.is_file() for path in DEBIAN_FILES),
    reason="Debian's dataset-fashion-mnist is not installed (apt install dataset-fashion-mnist)",
)
def test_fashion_mnist_from_debian_package():
    data = load("fashion-mnist", validation_split=0.1, seed=0)
    assert data.source == f"Debian package dataset-fashion-mnist ({sources.DEBIAN_FASHION_MNIST_DIR})"
    assert data.x_train.shape == (54000, 28, 28) and data.x_val.shape == (6000, 28, 28)
    assert data.x_test.shape == (10000, 28, 28)
    assert data.x_train.dtype == np.float32 and 0.0 <= data.x_train.min() and data.x_train.max() == 1.0
    assert np.bincount(data.y_val).tolist() == [600] * 10  # stratified
    assert np.bincount(data.y_test).tolist() == [1000] * 10
    assert data.class_names == sources.FASHION_MNIST_CLASS_NAMES and data.num_classes == 10


# --- digits ---------------------------------------------------------------------------------------------


def test_digits_shapes_range_and_fixed_stratified_test_set():
    pytest.importorskip("sklearn")
    data = load("digits")
    assert data.x_train.shape == (1797 - 359, 8, 8) and data.x_test.shape == (359, 8, 8)  # 20% of 1797
    assert data.input_dim == 8 and data.num_classes == 10 and data.class_names == tuple("0123456789")
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert data.x_train.min() == 0.0 and data.x_train.max() == 1.0
    assert np.all(np.isin(data.x_train * 16, np.arange(17)))  # 0..16 counts scaled by 1/16 exactly
    per_class = np.bincount(data.y_test, minlength=10)
    assert per_class.sum() == 359 and per_class.min() >= 35 and per_class.max() <= 37
    assert "scikit-learn" in data.source

    again = load("digits", validation_split=0.2, seed=7)
    np.testing.assert_array_equal(again.x_test, data.x_test)  # the test set does not move with the seed
    np.testing.assert_array_equal(again.y_test, data.y_test)


def test_digits_is_deterministic_for_a_seed():
    pytest.importorskip("sklearn")
    a, b = load("digits", validation_split=0.1, seed=3), load("digits", validation_split=0.1, seed=3)
    for field in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    c = load("digits", validation_split=0.1, seed=4)
    assert not np.array_equal(a.y_val, c.y_val) or not np.array_equal(a.x_val, c.x_val)


# --- validation split ------------------------------------------------------------------------------------


def test_validation_split_sizes_membership_and_seed(tmp_path):
    folder = write_folder(tmp_path, tiny_release(), gz=False)
    data = load("mnist", data_dir=folder, validation_split=0.25, seed=0)
    assert data.x_train.shape == (15, 28, 28) and data.x_val.shape == (5, 28, 28)
    tags = lambda x: np.rint(x[:, 0, 0] * 255).astype(int).tolist()  # noqa: E731
    assert sorted(tags(data.x_train) + tags(data.x_val)) == list(range(N_TRAIN))  # a partition
    np.testing.assert_array_equal(data.y_val, np.array(tags(data.x_val)) % 10)  # labels travel with images
    assert data.x_test.shape == (N_TEST, 28, 28)  # the test set is never split

    same = load("mnist", data_dir=folder, validation_split=0.25, seed=0)
    np.testing.assert_array_equal(same.x_val, data.x_val)
    splits = {tuple(tags(load("mnist", data_dir=folder, validation_split=0.25, seed=s).x_val)) for s in range(5)}
    assert len(splits) > 1


def test_tiny_validation_split_holds_out_at_least_one_sample(tmp_path):
    folder = write_folder(tmp_path, tiny_release(), gz=False)
    assert load("mnist", data_dir=folder, validation_split=0.01).x_val.shape == (1, 28, 28)


@pytest.mark.parametrize(
    "value, error, message",
    [
        (1.0, ValueError, r"validation_split must be in \[0, 1\), got 1.0"),
        (-0.1, ValueError, r"got -0.1"),
        (float("nan"), ValueError, r"got nan"),
        ("0.1", TypeError, r"must be a number in \[0, 1\), got '0.1' \(str\)"),
        (True, TypeError, r"got True \(bool\)"),
    ],
)
def test_invalid_validation_split_is_rejected(value, error, message):
    with pytest.raises(error, match=message):
        load("digits", validation_split=value)


@pytest.mark.parametrize("seed, error", [(-1, ValueError), (1.5, TypeError), (None, TypeError)])
def test_invalid_seed_is_rejected(seed, error):
    with pytest.raises(error, match="seed"):
        load("digits", seed=seed)


# --- available -------------------------------------------------------------------------------------------


def test_available_reports_without_downloading(tmp_path, server, monkeypatch):
    monkeypatch.setattr(sources, "MNIST_MIRRORS", (serve(server, "good", gz_files(tiny_release())),))
    monkeypatch.setattr(sources, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "not-installed")
    rows = {row["name"]: row for row in available()}
    assert list(rows) == ["mnist", "fashion-mnist", "digits"]
    assert all(set(row) == {"name", "available", "source", "note"} for row in rows.values())
    assert rows["mnist"]["available"] is False
    assert f"downloads 11 MB into {tmp_path / 'cache' / 'mnist'}" in rows["mnist"]["note"]
    assert rows["mnist"]["source"] == f"download from {server.url}/good/"
    assert rows["fashion-mnist"]["available"] is False
    assert rows["digits"]["available"] is True
    assert server.requests == []

    write_folder(tmp_path / "data" / "mnist", tiny_release(), gz=True)
    monkeypatch.setenv("CONVLAYER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(sources, "DEBIAN_FASHION_MNIST_DIR", write_folder(tmp_path / "deb", tiny_release(), gz=True))
    rows = {row["name"]: row for row in available()}
    assert rows["mnist"]["available"] is True and str(tmp_path / "data" / "mnist") in rows["mnist"]["source"]
    assert rows["fashion-mnist"]["available"] is True and "Debian" in rows["fashion-mnist"]["source"]
    assert server.requests == []


# --- Dataset ---------------------------------------------------------------------------------------------


def test_dataset_is_frozen_with_a_short_repr(tmp_path):
    data = load("mnist", data_dir=write_folder(tmp_path, tiny_release(), gz=True))
    with pytest.raises(dataclasses.FrozenInstanceError):
        data.name = "other"
    assert repr(data).startswith("Dataset(name='mnist', train=(20, 28, 28), val=(0, 28, 28), test=(10, 28, 28)")
    with pytest.raises(ValueError, match=r"y_train must be int64 of shape \(20,\)"):
        dataclasses.replace(data, y_train=data.y_train[:5])


# --- iterate_batches -------------------------------------------------------------------------------------


def test_shuffled_batches_cover_every_sample_exactly_once_per_epoch():
    x = np.arange(103, dtype=np.float32).reshape(103, 1, 1)
    y = np.arange(103)
    rng = np.random.default_rng(0)
    epochs = []
    for _ in range(3):
        batches = list(iterate_batches(x, y, 10, shuffle=True, rng=rng))
        assert [len(yb) for _, yb in batches] == [10] * 10 + [3]
        order = np.concatenate([yb for _, yb in batches])
        assert sorted(order.tolist()) == list(range(103))
        for xb, yb in batches:
            np.testing.assert_array_equal(xb[:, 0, 0], yb)  # pairs stay together
        epochs.append(order)
    assert not np.array_equal(epochs[0], epochs[1])  # a new order each epoch
    replay = np.concatenate([yb for _, yb in iterate_batches(x, y, 10, shuffle=True, rng=np.random.default_rng(0))])
    np.testing.assert_array_equal(replay, epochs[0])  # same seed, same order


def test_unshuffled_batches_and_drop_last():
    x, y = np.zeros((5, 2, 2), np.float32), np.arange(5)
    assert [yb.tolist() for _, yb in iterate_batches(x, y, 2, shuffle=False)] == [[0, 1], [2, 3], [4]]
    assert [yb.tolist() for _, yb in iterate_batches(x, y, 2, shuffle=False, drop_last=True)] == [[0, 1], [2, 3]]
    assert list(iterate_batches(x[:0], y[:0], 4, shuffle=True, rng=np.random.default_rng(0))) == []


def test_iterate_batches_checks_arguments_at_call_time():
    x, y = np.zeros((4, 2, 2)), np.arange(4)
    with pytest.raises(TypeError, match=r"shuffle=True\) needs rng=np.random.Generator"):
        iterate_batches(x, y, 2, shuffle=True, rng=None)
    with pytest.raises(TypeError, match="needs rng"):
        iterate_batches(x, y, 2, shuffle=True, rng=np.random.RandomState(0))
    with pytest.raises(ValueError, match=r"same number of samples.*\(4, 2, 2\).*\(3,\)"):
        iterate_batches(x, y[:3], 2, shuffle=False)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        iterate_batches(x, y, 0, shuffle=False)
