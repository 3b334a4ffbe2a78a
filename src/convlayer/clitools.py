"""What every command module shares: argument types, messages, checkpoint loading, output paths.

``convlayer.cli`` builds the parser and runs a command; each ``*/commands.py`` module adds its
commands through ``register(subparsers)`` and imports only this module from the CLI side, so no
command module reaches into another's private names and nothing imports back up into ``cli``.

A user mistake is raised as ``UsageError`` (or one of the ``ValueError`` subclasses the library
raises, such as ``CheckpointError`` and ``ImageError``) with one line saying what is wrong and what
to do; ``cli.main`` prints it and exits with status 1.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

PROG = "convlayer"


class UsageError(ValueError):
    """A user mistake that argparse cannot see (bad value combinations, missing files)."""


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line and exit 2, without the usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def arg_type(convert, accept, expected: str):
    """An argparse ``type=``: ``convert`` the text, then check ``accept(value)``; one-line errors."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    parse.__name__ = expected.replace(" ", "_")  # argparse names the type in some messages
    return parse


positive_int = arg_type(int, lambda v: v > 0, "a positive integer")
non_negative_int = arg_type(int, lambda v: v >= 0, "a non-negative integer")
fraction = arg_type(float, lambda v: 0 <= v < 1, "a number in [0, 1)")
positive_float = arg_type(float, lambda v: 0 < v < math.inf, "a positive number")
finite_float = arg_type(float, math.isfinite, "a finite number")


def say(*parts) -> None:
    """Print a result line to stdout (flushed: progress bars share the terminal)."""
    print(*parts, flush=True)


def warn(message: str) -> None:
    """One line on stderr that does not stop the command."""
    print(f"{PROG}: warning: {message}", file=sys.stderr, flush=True)


def error_line(command: str | None, message: str) -> str:
    message = " ".join(str(message).split())
    return f"{PROG} {command}: error: {message}" if command else f"{PROG}: error: {message}"


# The optional extras, by the top-level module a command found missing (pyproject's optional-dependencies).
EXTRAS = {"matplotlib": "viz", "starlette": "web", "uvicorn": "web", "multipart": "web", "python_multipart": "web",
          "sklearn": "data", "h5py": "interop", "onnx": "interop", "safetensors": "interop", "mpi4py": "distributed",
          "psutil": "bench"}


def missing_extra_line(command: str | None, exc: ImportError) -> str:
    """The one line for a missing optional package: what is missing and the exact ``pip install``.

    >>> missing_extra_line("show", ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib"))
    "convlayer show: error: this needs matplotlib, which is not installed: pip install 'convlayer[viz]'"
    """
    top = (exc.name or "").split(".")[0]
    if top in EXTRAS:
        return error_line(command, f"this needs {top}, which is not installed: pip install 'convlayer[{EXTRAS[top]}]'")
    if top:
        return error_line(command, f"this needs {top}, which is not installed: pip install {top}")
    return error_line(command, f"{exc} (reinstall convlayer: pip install --force-reinstall convlayer)")


def add_preprocess_option(parser) -> None:
    """``--preprocess auto|dataset|mnist-digit|none``: how images are prepared for the model."""
    parser.add_argument("--preprocess", choices=("auto", "dataset", "mnist-digit", "none"), default="auto",
                        help="auto (default): an image already at the model's size with a dark background is taken "
                             "as it is, anything else prepared like the checkpoint's dataset (Fashion-MNIST: the "
                             "object fills the frame; digits: 8x8, 17 grey levels; MNIST: 20x20 centred by mass); "
                             "dataset: always the dataset's way; mnist-digit: always MNIST's; none: as it is")


def load_checkpoint(path):
    """``checkpoint.load``, imported when needed so that ``convlayer --help`` stays quick."""
    from . import checkpoint

    return checkpoint.load(path)


def output_path(text, *, suffixes=None, what: str = "output file") -> Path:
    """Check an output path before any work: not a folder, no file where a folder must be.

    ``suffixes``: the accepted endings (e.g. ``(".png", ".svg")``), said in the message.
    """
    from .fileio import check_writable

    path = Path(text)
    if suffixes and path.suffix.lower() not in suffixes:
        raise UsageError(f"{what} {str(path)!r} should end in {' or '.join(suffixes)}.")
    check_writable(path)
    return path


def output_dir(text, *, what: str = "output folder") -> Path:
    """Check an output folder before any work: if it exists it is a folder, and no file is in its way."""
    from .fileio import check_writable_dir

    path = Path(text)
    check_writable_dir(path, what=what)
    return path
