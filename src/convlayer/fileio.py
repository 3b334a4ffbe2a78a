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


class OutputPathError(ValueError):
    """An output path that cannot be written: it is a folder, or a file stands where a folder must."""


def _blocking_file(folder: Path) -> Path | None:
    """The first existing non-folder on the way to ``folder`` (``folder`` itself included), if any."""
    for part in [*reversed(folder.parents), folder]:
        if part.exists() and not part.is_dir():
            return part
    return None


def check_writable_dir(folder, *, what: str = "output folder") -> None:
    """Raise ``OutputPathError`` if ``folder`` cannot be a folder (a file is in the way)."""
    folder = Path(folder)
    blocker = _blocking_file(folder)
    if blocker == folder:
        raise OutputPathError(f"{what} {str(folder)!r} is a file, not a folder; choose a folder name.")
    if blocker is not None:
        raise OutputPathError(f"cannot create {what} {str(folder)!r}: {str(blocker)!r} is a file, not a folder.")


def check_writable(path) -> None:
    """Raise ``OutputPathError`` (one line) if ``path`` cannot be written as a file."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{str(path)!r} is a folder; give a file name to write, e.g. {str(path / 'out')!r}.")
    blocker = _blocking_file(path.parent)
    if blocker is not None:
        raise OutputPathError(f"cannot write {str(path)!r}: {str(blocker)!r} is a file, not a folder.")


@contextlib.contextmanager
def atomic_writer(path) -> Iterator[tuple[BinaryIO, Path]]:
    """Yield ``(file, temp_path)`` for a temp file beside ``path``; on success it replaces ``path``.

    Any exception inside the block deletes the temp file and propagates. Missing parent
    folders are created. A path that is a folder, or under a file, raises ``OutputPathError``
    (one line naming the path) before anything is written.
    """
    path = Path(path)
    check_writable(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except PermissionError:
        raise OutputPathError(f"cannot create the folder {str(path.parent)!r}: permission denied.") from None
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.part")
    # os.open with 0o666 (not mkstemp's 0o600) so the final file gets the usual umask permissions.
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except PermissionError:
        raise OutputPathError(f"cannot write {str(path)!r}: permission denied in {str(path.parent)!r}.") from None
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
