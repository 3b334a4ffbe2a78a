"""The IDX reader and writer: round trips, byte-exact layout, and every malformed-file error."""

import gzip
import os
import struct

import numpy as np
import pytest

from convlayer.datasets import IDXError, read_idx, write_idx

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


@pytest.fixture
def rng() -> np.random.Generator:
    # Local, so this file does not depend on a shared conftest.py.
    return np.random.default_rng(1998)


def _sample(dtype, shape, rng):
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    if info is not None:
        values = rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
    else:
        values = rng.standard_normal(shape).astype(dtype) * 1e3
    return values


@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", [(7,), (3, 28, 28), (2, 3, 4, 5), (0, 28, 28), ()], ids=str)
def test_round_trip_every_element_type(tmp_path, rng, dtype, shape, compressed):
    array = _sample(dtype, shape, rng)
    path = write_idx(tmp_path / ("data.idx.gz" if compressed else "data.idx"), array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == compressed
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    assert back.shape == shape
    np.testing.assert_array_equal(back, array)
    assert back.flags.writeable


def test_extreme_float_values_survive(tmp_path):
    array = np.array([0.0, -0.0, np.inf, -np.inf, np.finfo(np.float64).tiny, np.finfo(np.float64).max])
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "f.idx", array)), array)
    assert np.isnan(read_idx(write_idx(tmp_path / "nan.idx", np.array([np.nan], np.float32)))[0])


def test_bytes_on_disk_are_big_endian_idx(tmp_path):
    # Hand-written expectation: magic 00 00 0B(short) 02(ndim), dims 1 and 2, then 1 and -2 big-endian.
    path = write_idx(tmp_path / "short.idx", np.array([[1, -2]], dtype=np.int16))
    assert path.read_bytes() == bytes.fromhex("00000B02" "00000001" "00000002" "0001" "FFFE")


def test_reads_mnist_style_header_written_by_hand(tmp_path):
    labels = bytes([7, 2, 1])
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(struct.pack(">BBBBI", 0, 0, 0x08, 1, 3) + labels)
    np.testing.assert_array_equal(read_idx(path), [7, 2, 1])


def test_compression_detected_from_magic_bytes_not_name(tmp_path, rng):
    array = rng.integers(0, 256, (4, 5), dtype=np.uint8)
    raw = write_idx(tmp_path / "a.idx", array).read_bytes()
    misnamed_gz = tmp_path / "really-gzip.idx"
    misnamed_gz.write_bytes(gzip.compress(raw))
    misnamed_raw = tmp_path / "really-raw.gz"
    misnamed_raw.write_bytes(raw)
    np.testing.assert_array_equal(read_idx(misnamed_gz), array)
    np.testing.assert_array_equal(read_idx(misnamed_raw), array)


def test_multi_member_gzip_and_zero_padding_are_accepted(tmp_path, rng):
    array = rng.integers(0, 256, 100, dtype=np.uint8)
    raw = write_idx(tmp_path / "a.idx", array).read_bytes()
    path = tmp_path / "b.gz"
    path.write_bytes(gzip.compress(raw[:50]) + gzip.compress(raw[50:]) + b"\x00" * 8)
    np.testing.assert_array_equal(read_idx(path), array)


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path, monkeypatch):
    path = write_idx(tmp_path / "sub" / "x.idx", np.arange(3, dtype=np.uint8))  # creates the folder
    write_idx(path, np.arange(5, dtype=np.uint8))  # overwrite
    assert read_idx(path).tolist() == [0, 1, 2, 3, 4]

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_idx(path, np.arange(9, dtype=np.uint8))
    monkeypatch.undo()
    assert read_idx(path).tolist() == [0, 1, 2, 3, 4]  # the old file is intact
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.idx"]


@pytest.mark.parametrize(
    "array, fix",
    [(np.arange(3, dtype=np.int64), r"astype\(np.int32\)"), (np.array([True]), r"astype\(np.uint8\)")],
)
def test_write_rejects_types_idx_cannot_store(tmp_path, array, fix):
    with pytest.raises(TypeError, match=f"no element type for dtype {array.dtype}.*{fix}"):
        write_idx(tmp_path / "x.idx", array)
    assert list(tmp_path.iterdir()) == []


# --- malformed files: each raises IDXError with one line naming the file and the problem -----------------

HEADER_U8_2x3 = bytes.fromhex("00000802" "00000002" "00000003")


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


BAD_FILES = {
    "empty": (b"", r"is empty \(0 bytes\)"),
    "header_too_short": (b"\x00\x00", r"header too short: 2 bytes, but the magic number alone takes 4"),
    "dims_missing": (bytes.fromhex("00000803" "0000000A"), r"header too short: .*announces 3 dimensions.*16-byte"),
    "bad_magic": (bytes.fromhex("01020802") + bytes(8), r"bad magic number 0x01020802"),
    "zip_not_idx": (b"PK\x03\x04" + bytes(20), r"bad magic number 0x504B0304.*ZIP archive; unzip it first"),
    "html_error_page": (b"<html>404 Not Found</html>", r"bad magic.*HTML"),
    "unknown_type": (bytes.fromhex("00000702" "00000001" "00000001") + b"\x00", r"unknown element type code 0x07"),
    "truncated": (HEADER_U8_2x3 + bytes(5), r"truncated: dimensions 2x3 of ubyte need 6 data bytes.*found 5 \(1 missing\)"),
    "trailing": (HEADER_U8_2x3 + bytes(6) + b"junk", r"4 trailing bytes after the 6 data bytes"),
    "truncated_short": (bytes.fromhex("00000B01" "00000002") + bytes(3), r"dimensions 2 of short need 4 data bytes"),
    "gz_truncated": (_gz(HEADER_U8_2x3 + bytes(6))[:-10], r"truncated gzip stream"),
    "gz_corrupt": (_gz(HEADER_U8_2x3 + bytes(6))[:-8] + b"\xde\xad\xbe\xef" + _gz(b"")[-4:], r"corrupt gzip data"),
    "gz_trailing_garbage": (_gz(HEADER_U8_2x3 + bytes(6)) + b"garbage", r"7 trailing bytes after the gzip stream"),
    "gz_of_truncated_idx": (_gz(HEADER_U8_2x3 + bytes(2)), r"truncated: .*4 missing"),
}


@pytest.mark.parametrize("content, message", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_malformed_file_raises_one_line_idx_error(tmp_path, content, message):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(content)
    with pytest.raises(IDXError, match=message) as excinfo:
        read_idx(path)
    text = str(excinfo.value)
    assert text.startswith(f"{path}: ")
    assert "\n" not in text
    assert isinstance(excinfo.value, ValueError)


def test_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope-idx1-ubyte")
