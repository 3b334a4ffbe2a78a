"""Take a model elsewhere and bring one in: Keras ``.keras``/``.h5``, ONNX, PyTorch state_dicts.

``export_model(model, "m.keras" | "m.onnx" | "m.safetensors")`` writes a file its own ecosystem
opens (Keras' ``load_model``, onnxruntime, ``torch``'s ``load_state_dict``); ``import_model(path)``
reads one back as a ``convlayer.checkpoint.Checkpoint``; ``to_torch(model)`` is the equivalent
``torch.nn.Sequential``. Layout conversions live in ``convlayer.interop.layout``. Every file is
data, never trusted: anything malformed or unsupported raises ``InteropError`` with one line.
See docs/interop.md.
"""

from __future__ import annotations

import json
from pathlib import Path

from .chain import InteropError

EXPORT_SUFFIXES = (".keras", ".onnx", ".safetensors")
IMPORT_SUFFIXES = (".keras", ".h5", ".safetensors", ".pt", ".onnx")

__all__ = ["InteropError", "export_model", "import_model", "to_torch", "EXPORT_SUFFIXES", "IMPORT_SUFFIXES"]


def _missing(package: str, exc: ImportError) -> InteropError:
    return InteropError(f"this needs the {package!r} package ({exc}); install it with "
                        "pip install 'convlayer[interop]'.")


def export_model(model, path, *, meta=None) -> Path:
    """Write ``model`` to ``path`` in the format its suffix names (.keras, .onnx, .safetensors).

    What the format cannot express is refused before anything is written, naming the layer, the
    setting and the formats that can hold it.

    Args:
        model: a built convlayer ``Sequential`` or ``MNISTModel``.
        path: the file to write (atomically).
        meta: a JSON-serializable dict stored in the file (dataset, class names...).

    Returns:
        ``Path(path)``.

    >>> import tempfile, os
    >>> from convlayer.models import MNISTModel
    >>> out = export_model(MNISTModel(8, 10), os.path.join(tempfile.mkdtemp(), "m.keras"))
    >>> out.suffix
    '.keras'
    """
    from ..fileio import check_writable
    from .chain import suffix_of

    suffix = suffix_of(path, EXPORT_SUFFIXES, "export to")
    if meta is not None and not isinstance(meta, dict):
        raise InteropError(f"meta must be a dict, got {type(meta).__name__}.")
    try:
        json.dumps(meta)
    except (TypeError, ValueError) as exc:
        raise InteropError(f"meta must hold JSON values (str, numbers, lists, dicts): {exc}.") from None
    check_writable(path)
    try:
        if suffix == ".keras":
            from .keras_file import export_keras as write
        elif suffix == ".onnx":
            from .onnx_file import export_onnx as write
        else:
            from .torch_file import export_safetensors as write
    except ImportError as exc:
        raise _missing({".keras": "h5py", ".onnx": "onnx"}.get(suffix, "safetensors"), exc) from None
    try:
        return write(model, path, meta)
    except ImportError as exc:
        raise _missing({".keras": "h5py", ".onnx": "onnx"}.get(suffix, "safetensors"), exc) from None


def import_model(path, *, like=None):
    """Read a model file (.keras, .h5, .safetensors, .pt, .onnx) as a ``convlayer.checkpoint.Checkpoint``.

    Args:
        path: a Keras 3 ``.keras`` file, a Keras 2 full-model ``.h5``, or a PyTorch state_dict
            (``.safetensors``, or ``.pt`` read with ``torch.load(weights_only=True)``), or an ONNX
            graph that is a single chain of the operators convlayer exports.
        like: for state_dicts, the architecture the tensors belong to: a convlayer model, a
            ``Checkpoint`` or a checkpoint path (default: the architecture a convlayer export records, else the lesson's
            MNISTModel for the file's input size). Keras files carry their own architecture.

    Returns:
        ``Checkpoint(model, meta=...)``; write it with ``convlayer.checkpoint.save``.
    """
    from .chain import suffix_of

    suffix = suffix_of(path, IMPORT_SUFFIXES, "import")
    if like is not None and suffix in (".keras", ".h5"):
        raise InteropError(f"{Path(path).name} carries its own architecture; like= applies to PyTorch "
                           "state_dicts (.safetensors, .pt) only.")
    try:
        if suffix in (".keras", ".h5"):
            from .keras_file import import_keras

            return import_keras(path)
        if suffix == ".onnx":
            if like is not None:
                raise InteropError(f"{Path(path).name} carries its own architecture; like= applies to PyTorch "
                                   "state_dicts (.safetensors, .pt) only.")
            from .onnx_file import import_onnx

            return import_onnx(path)
        from .torch_file import import_state_dict

        return import_state_dict(path, like=like)
    except ImportError as exc:
        package = {".keras": "h5py", ".h5": "h5py", ".pt": "torch", ".onnx": "onnx"}.get(suffix, "safetensors")
        raise _missing(package, exc) from None


def to_torch(model):
    """The ``torch.nn.Sequential`` equivalent to ``model``, in eval mode, taking (N, C, H, W) images.

    Its ``state_dict()`` is what ``export_model(model, 'm.safetensors')`` writes.
    """
    from .torch_file import to_torch as build

    try:
        return build(model)
    except ImportError as exc:
        raise InteropError(f"to_torch needs PyTorch ({exc}); install it with pip install torch.") from None
