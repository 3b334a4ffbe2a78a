"""Atomic file writes: a temp file beside the target, fsync, then one ``os.replace``.

A reader never sees a half-written file, and a crash leaves the old file (or none).
Every file convlayer writes (checkpoints, logs, IDX files, downloads, pictures) goes through here.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import BinaryIO, Iterator


@contextlib.contextmanager
def atomic_writer(path) -> Iterator[tuple[BinaryIO, Path]]:
    """Yield ``(file, temp_path)`` for a temp file beside ``path``; on success it replaces ``path``.

    Any exception inside the block deletes the temp file and propagates. Missing parent
    folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.part")
    # os.open with 0o666 (not mkstemp's 0o600) so the final file gets the usual umask permissions.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out, temp
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def atomic_write_bytes(path, write) -> None:
    """Call ``write(file)`` on a temp file next to ``path``, then rename it into place."""
    with atomic_writer(path) as (out, _):
        write(out)


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, lambda f: f.write(text.encode("utf-8")))
