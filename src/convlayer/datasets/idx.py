"""The IDX file format of MNIST and Fashion-MNIST: a strict reader and an atomic writer.

An IDX file is a 4-byte magic number ``0x00 0x00 <type> <ndim>``, then ``ndim``
big-endian uint32 dimensions, then exactly ``prod(dims)`` big-endian elements
(format: http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT"). Files may be
gzip-compressed; compression is detected from the first bytes, never from the name,
because downloads and renamed copies often lie about their suffix.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from ..fileio import atomic_writer

__all__ = ["IDXError", "read_idx", "write_idx"]

GZIP_MAGIC = b"\x1f\x8b"

# type code -> big-endian dtype, and back; the six element types the format defines.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),  # unsigned byte
    0x09: np.dtype(">i1"),  # signed byte
    0x0B: np.dtype(">i2"),  # short
    0x0C: np.dtype(">i4"),  # int
    0x0D: np.dtype(">f4"),  # float
    0x0E: np.dtype(">f8"),  # double
}
IDX_TYPE_NAMES = {0x08: "ubyte", 0x09: "byte", 0x0B: "short", 0x0C: "int", 0x0D: "float", 0x0E: "double"}
_TYPE_CODES = {dtype.newbyteorder("="): code for code, dtype in IDX_DTYPES.items()}
_KNOWN_TYPES = ", ".join(f"0x{code:02X} {name}" for code, name in IDX_TYPE_NAMES.items())

# First bytes of files people mistake for IDX data, to say what the file really is.
_OTHER_FORMATS = (
    (b"PK\x03\x04", "a ZIP archive; unzip it first"),
    (b"BZh", "a bzip2 file; decompress it first (bunzip2)"),
    (b"\xfd7zXZ\x00", "an xz file; decompress it first (unxz)"),
    (b"\x93NUMPY", "a NumPy .npy file, not IDX"),
    (b"<", "text or HTML (an error page saved by a failed download?)"),
)


class IDXError(ValueError):
    """An IDX file is malformed: wrong magic, unknown type, truncated, trailing bytes, ..."""


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into a native-endian array.

    Every byte is checked: the magic number, the element type, the dimensions and
    the exact data length, so a truncated download or a file with trailing garbage
    fails loudly instead of yielding a silently shifted array.

    Args:
        path: the file. gzip is recognised by its magic bytes ``1f 8b``, whatever the name.

    Returns:
        An array with the file's dimensions and element type (uint8, int8, int16,
        int32, float32 or float64), native byte order, writable.

    Raises:
        IDXError: the file is not a well-formed IDX file; the one-line message names
            the file and the problem.
        FileNotFoundError: there is no such file.

    Example:
        >>> import tempfile, numpy as np
        >>> path = write_idx(tempfile.mkdtemp() + "/labels-idx1-ubyte.gz", np.array([3, 1, 4], np.uint8))
        >>> read_idx(path)
        array([3, 1, 4], dtype=uint8)
    """
    array = parse_idx(read_idx_bytes(path), path)
    # frombuffer views are read-only; astype also converts big-endian to native order.
    return array.astype(array.dtype.newbyteorder("="), copy=True)


def read_idx_bytes(path: str | os.PathLike) -> bytes:
    """The file's IDX bytes: its contents, gunzipped when it starts with the gzip magic."""
    data = Path(path).read_bytes()
    if data[:2] == GZIP_MAGIC:
        return _gunzip(data, path)
    return data


def parse_idx(data: bytes, path: str | os.PathLike = "<bytes>") -> np.ndarray:
    """Check uncompressed IDX bytes and return a read-only big-endian view of the elements.

    ``path`` only names the source in error messages.
    """
    if not data:
        _fail(path, "is empty (0 bytes); an IDX file starts with the 4-byte magic number 0x00 0x00 <type> <ndim>")
    if len(data) < 4:
        _fail(path, f"header too short: {len(data)} bytes, but the magic number alone takes 4")
    if data[:2] != b"\x00\x00":
        hint = next((f"; the file looks like {what}" for magic, what in _OTHER_FORMATS if data.startswith(magic)), "")
        _fail(
            path,
            f"bad magic number 0x{data[:4].hex().upper()}: an IDX file starts with 0x00 0x00 <type> <ndim>{hint}",
        )
    type_code, ndim = data[2], data[3]
    if type_code not in IDX_DTYPES:
        _fail(
            path,
            f"unknown element type code 0x{type_code:02X} in magic number 0x{data[:4].hex().upper()}; "
            f"IDX types are {_KNOWN_TYPES}",
        )
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        _fail(
            path,
            f"header too short: the magic number announces {ndim} dimensions, which need a {header_size}-byte "
            f"header, but the file has only {len(data)} bytes",
        )
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[type_code]
    expected = math.prod(shape) * dtype.itemsize
    found = len(data) - header_size
    described = f"dimensions {'x'.join(map(str, shape)) or '()'} of {IDX_TYPE_NAMES[type_code]}"
    if found < expected:
        _fail(
            path,
            f"truncated: {described} need {expected} data bytes after the {header_size}-byte header, "
            f"found {found} ({expected - found} missing)",
        )
    if found > expected:
        _fail(
            path,
            f"{found - expected} trailing bytes after the {expected} data bytes that {described} need "
            "(corrupt, or not the file the header describes)",
        )
    return np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)


def write_idx(path: str | os.PathLike, array) -> Path:
    """Write ``array`` as an IDX file, atomically; gzip-compressed when the name ends in ``.gz``.

    The data go to a temporary file in the same folder, which then replaces ``path``
    in one ``os.replace``: a reader never sees a half-written file, and a crash leaves
    the old file (or none) in place. Missing parent folders are created.

    Args:
        path: destination; a ``.gz`` suffix selects gzip (deterministic: no timestamp).
        array: array-like of dtype uint8, int8, int16, int32, float32 or float64, any
            number of dimensions up to 255, each below 2**32.

    Returns:
        ``path`` as a ``Path``.

    Example:
        >>> import tempfile, numpy as np
        >>> images = np.zeros((2, 28, 28), np.uint8)
        >>> read_idx(write_idx(tempfile.mkdtemp() + "/images-idx3-ubyte", images)).shape
        (2, 28, 28)
    """
    path = Path(path)
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _TYPE_CODES:
        raise TypeError(
            f"write_idx({str(path)!r}): IDX has no element type for dtype {array.dtype}; it stores "
            "uint8, int8, int16, int32, float32 or float64. Convert first, e.g. array.astype(np.int32) "
            "for integer labels that fit in 32 bits, or array.astype(np.uint8) for 0..255 pixels."
        )
    if array.ndim > 255:
        raise ValueError(f"write_idx({str(path)!r}): IDX stores at most 255 dimensions, got {array.ndim}.")
    if any(d >= 2**32 for d in array.shape):
        raise ValueError(f"write_idx({str(path)!r}): every IDX dimension must be below 2**32, got {array.shape}.")
    code = _TYPE_CODES[native]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    data = header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    if path.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=6, mtime=0)
    with atomic_writer(path) as (out, _):
        out.write(data)
    return path


def _gunzip(data: bytes, path) -> bytes:
    """Decompress every gzip member of ``data``, with an IDXError naming what is wrong."""
    chunks = []
    rest = data
    while rest:
        decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # 16+: gzip header and CRC/size trailer
        try:
            chunks.append(decompressor.decompress(rest))
        except zlib.error as error:
            _fail(path, f"corrupt gzip data ({error}); delete the file and download it again")
        if not decompressor.eof:
            _fail(path, "truncated gzip stream (the file ends before the end-of-stream marker); download it again")
        rest = decompressor.unused_data
        if rest and rest[:2] != GZIP_MAGIC:
            if rest.strip(b"\x00"):  # gzip tools ignore zero padding after the last member, so do we
                _fail(path, f"{len(rest)} trailing bytes after the gzip stream that are not gzip data")
            break
    return b"".join(chunks)


def _fail(path, problem: str):
    raise IDXError(f"{os.fspath(path)}: {problem}.")
