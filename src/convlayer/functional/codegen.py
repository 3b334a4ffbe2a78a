"""Compiled code written as Python source at run time: where it is kept, and how it is loaded.

Winograd's transforms (``transforms``) and the direct convolution (``direct``) generate one
small module per shape of the work. Each is written to a file in the user's cache, so numba's
on-disk cache keeps its compiled code between runs; where nothing can be written, the module is
built in memory and compiled on every run.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from pathlib import Path


def cache_dir() -> Path | None:
    """Where the generated modules go: $CONVLAYER_CACHE_DIR, else the user's cache; None if not writable."""
    root = os.environ.get("CONVLAYER_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "convlayer", "kernels")
    path = Path(root)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, delete=True)
        probe.close()
    except OSError:
        return None
    return path


def load_module(source: str, name: str):
    """The module of ``source``: imported from the cache directory (numba caches it there) or built in memory."""
    directory = cache_dir()
    if directory is None:
        namespace: dict = {}
        exec(compile(source.replace("cache=True", "cache=False"), f"<{name}>", "exec"), namespace)
        return namespace
    path = directory / f"{name}.py"
    if not path.exists() or path.read_text() != source:
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            handle.write(source)
        os.replace(tmp, path)  # atomic: a concurrent run reads the old file or this one
    spec = importlib.util.spec_from_file_location(f"convlayer_kernels.{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return vars(module)
