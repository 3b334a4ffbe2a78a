"""Download one file from a list of mirrors, verify its MD5, and write it atomically.

Standard library only (``urllib``), with a timeout on every socket operation. A file
reaches its final name only after its checksum matched; anything else (HTTP error,
timeout, cut connection, wrong checksum) deletes the temp file and tries the next mirror.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import NamedTuple, Sequence

from ..fileio import atomic_writer
from .idx import GZIP_MAGIC

USER_AGENT = "convlayer-datasets (+https://pypi.org/project/convlayer/)"
_CHUNK = 1 << 20


class KnownMD5(NamedTuple):
    """The published checksums of one file."""

    archive: str  # MD5 of the .gz file as the mirrors serve it
    content: str  # MD5 of the uncompressed IDX bytes; accepts a mirror that re-compressed the file


class DownloadFailed(Exception):
    """Every mirror failed for one file; ``failures`` holds one 'url: reason' per mirror."""

    def __init__(self, filename: str, failures: list[str]):
        super().__init__(f"{filename}: " + "; ".join(failures))
        self.filename = filename
        self.failures = failures


class _BadDownload(Exception):
    """The mirror answered, but not with the file we need (cut short, wrong checksum)."""


def mirror_url(base: str, filename: str) -> str:
    """``base`` (with or without a trailing slash) joined with ``filename``."""
    return f"{base.rstrip('/')}/{filename}"


def fetch(filename: str, mirrors: Sequence[str], known: KnownMD5, dest_dir: Path, *, timeout: float) -> str:
    """Download ``filename`` into ``dest_dir`` from the first mirror serving a verified copy.

    Args:
        filename: the file's name on the mirrors and in ``dest_dir``.
        mirrors: base URLs (http or https), tried in order.
        known: the expected MD5s; the download must match ``known.archive``, or its
            uncompressed bytes ``known.content``.
        dest_dir: an existing folder; the file appears there only once verified.
        timeout: seconds allowed for each connect and each read.

    Returns:
        The URL the file came from.

    Raises:
        DownloadFailed: no mirror gave a verified copy; no file or temp file is left behind.
    """
    failures = []
    for base in mirrors:
        url = mirror_url(base, filename)
        try:
            if not url.startswith(("http://", "https://")):
                raise ValueError("not an http(s) URL")
            _fetch_one(url, dest_dir / filename, known, timeout)
            return url
        except _BadDownload as error:
            failures.append(f"{url}: {error}")
        except urllib.error.HTTPError as error:
            failures.append(f"{url}: HTTP {error.code} {error.reason}")
        except urllib.error.URLError as error:
            failures.append(f"{url}: {error.reason}")
        except TimeoutError:
            failures.append(f"{url}: timed out after {timeout:g} s")
        except (http.client.HTTPException, OSError, ValueError) as error:
            failures.append(f"{url}: {type(error).__name__}: {error}")
    raise DownloadFailed(filename, failures)


def _fetch_one(url: str, dest: Path, known: KnownMD5, timeout: float) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response, atomic_writer(dest) as (out, temp):
        digest = hashlib.md5(usedforsecurity=False)
        size = 0
        while chunk := response.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
        out.flush()
        # Raised inside atomic_writer, so the temp file is deleted.
        announced = response.headers.get("Content-Length")
        if announced is not None and announced.isdigit() and size != int(announced):
            # urllib's read(n) reports a connection closed early as a normal end of file.
            raise _BadDownload(f"IncompleteRead: connection closed after {size} of {announced} bytes")
        if digest.hexdigest() != known.archive and _content_md5(temp) != known.content:
            raise _BadDownload(
                f"checksum mismatch: got {size} bytes with MD5 {digest.hexdigest()}, expected {known.archive} "
                f"(or uncompressed content MD5 {known.content})"
            )


def _content_md5(path: Path) -> str | None:
    """MD5 of the file's uncompressed bytes (the file itself when not gzip); None if the gzip is corrupt."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as raw:
        is_gzip = raw.read(2) == GZIP_MAGIC
    try:
        with (gzip.open(path, "rb") if is_gzip else open(path, "rb")) as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
    except (OSError, EOFError, zlib.error):
        return None
    return digest.hexdigest()
