"""Checkpoints: one ``.npz`` file (read with ``allow_pickle=False``) holding the weights,
the optimizer state and a JSON document (model config, training state, metadata).

Files are written atomically: a temporary file in the same folder, fsync, then rename,
so an interrupted save never leaves a half-written checkpoint under the real name.
"""

from __future__ import annotations

import json
import math
import zipfile
from zlib import error as zlib_error
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import optimizers as optimizers_mod
from .fileio import atomic_write_bytes

FORMAT = "convlayer-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or does not fit the model."""


@dataclass
class Checkpoint:
    model: object
    optimizer: optimizers_mod.Optimizer | None = None
    training_state: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    @property
    def input_dim(self) -> int | None:
        """Side of the square images the model takes (the model's, else the recorded one)."""
        dim = getattr(self.model, "input_dim", None) or self.meta.get("input_dim")
        shape = getattr(self.model, "input_shape", None)
        if not dim and shape and len(shape) == 4 and shape[1] == shape[2] and shape[3] == 1:
            dim = shape[1]  # a square grayscale Sequential saved from Python
        return dim

    @property
    def preprocess_style(self) -> str:
        """How images are prepared for this model: recorded at training, else its dataset's style."""
        from .preprocess import STYLES, style_for

        style = self.meta.get("preprocess")
        return style if style in STYLES else style_for(self.meta.get("dataset"))

    def prepare_image(self, source, mode: str = "auto"):
        """An image file or bytes -> ``Prepared(image, method)`` for this model (see ``convlayer.preprocess``)."""
        from .preprocess import prepare

        dim = self.input_dim
        if not dim:
            raise CheckpointError("the checkpoint does not record its input size (meta 'input_dim'); use one "
                                  "written by `convlayer train` or model.save of a built model.")
        return prepare(source, int(dim), mode=mode, style=self.preprocess_style)

    @property
    def num_classes(self) -> int:
        """The number of outputs of the model (its classes)."""
        return int(self.model.output_shapes()[-1][-1])

    def class_names(self, count: int | None = None) -> list[str]:
        """The recorded class names when there are ``count`` of them, else '0', '1', ..."""
        count = self.num_classes if count is None else count
        names = self.meta.get("class_names")
        return [str(n) for n in names] if names and len(names) == count else [str(i) for i in range(count)]

    def test_data(self, dataset: str | None = None, data_dir=None):
        """The dataset the model was trained on (or ``dataset``), checked against its input size and classes."""
        from . import datasets

        name = dataset or self.meta.get("dataset")
        if not name:
            raise ValueError("the checkpoint does not say which dataset it was trained on; pass --dataset.")
        data = datasets.load(name, data_dir=data_dir)
        dim = self.input_dim or data.input_dim
        classes = self.num_classes
        if (dim, classes) != (data.input_dim, data.num_classes):
            raise ValueError(f"the checkpoint expects {dim}x{dim} images and {classes} classes but {name} has "
                             f"{data.input_dim}x{data.input_dim} and {data.num_classes}; pass the dataset it was "
                             f"trained on (--dataset {self.meta.get('dataset') or '...'}).")
        return data


def save(path, model, *, optimizer=None, training_state=None, meta=None) -> Path:
    """Write ``model`` (and optionally the optimizer and training state) to ``path``."""
    from .models import MODEL_CLASSES

    cls_name = type(model).__name__
    if cls_name not in MODEL_CLASSES:
        raise TypeError(f"checkpoint.save: expects a Sequential or MNISTModel, got {cls_name}.")
    arrays = {}
    for layer in model.layers:
        for key, value in layer.params.items():
            arrays[f"weights/{layer.name}/{key}"] = value
    if optimizer is not None:
        for key, value in optimizer.state_dict().items():
            arrays[f"optimizer/{key}"] = value
    loss = getattr(model, "loss", None)
    document = {
        "format": FORMAT, "version": VERSION,
        "model": {"class_name": cls_name, "config": model.get_config(),
                  **({"loss": loss} if isinstance(loss, str) else {})},
        "optimizer": None if optimizer is None else optimizer.get_config(),
        "training_state": training_state or {},
        "meta": meta or {},
    }
    arrays["__document__"] = np.array(json.dumps(document))
    atomic_write_bytes(path, lambda f: np.savez(f, **arrays))
    return Path(path)


def read_npz(path, *, what: str, hint: str, error=ValueError, max_expansion: int = 64) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file, each header checked before its array is read.

    No member may hold Python objects (pickles are refused, never loaded), claim more bytes than
    its zip entry holds, or expand past ``max_expansion`` times the file's size (a zip bomb).
    Anything else wrong is one ``error`` line: '``path`` is not ``what`` (...); ``hint``.'
    """
    path = Path(path)
    fail = lambda why: error(f"{path} is not {what} ({why}); {hint}.")  # noqa: E731
    arrays = {}
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
            if sum(e.file_size for e in entries) > max(64 << 20, max_expansion * path.stat().st_size):
                raise fail("its members expand to far more than the file's size")
            for entry in entries:
                if not entry.filename.endswith(".npy"):
                    raise fail(f"member {entry.filename!r} is not a NumPy array")
                with archive.open(entry) as member:
                    version = np.lib.format.read_magic(member)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read_header(member)
                    if dtype.hasobject:
                        raise fail("it holds pickled Python objects, which convlayer never loads")
                    if math.prod(shape) * dtype.itemsize > entry.file_size:
                        raise fail(f"member {entry.filename!r} claims shape {shape}, more than it holds")
                with archive.open(entry) as member:
                    arrays[entry.filename[:-4]] = np.lib.format.read_array(member, allow_pickle=False)
    except error:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, KeyError, zlib_error,
            NotImplementedError, RuntimeError, TypeError, SyntaxError) as exc:
        raise fail(f"or it is damaged: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}") from None
    return arrays


def load(path) -> Checkpoint:
    """Read a checkpoint written by ``save`` (or ``convlayer train``).

    The file is data, never trusted: it is read with ``allow_pickle=False``; the model is rebuilt
    from its config under a budget of the weight values the file holds (a config that implies
    more weights than that fails before allocating them); every weight and optimizer slot shape
    is checked against the rebuilt model. Anything malformed raises ``CheckpointError``, one line.
    """
    from .layers.base import weight_budget
    from .models import MODEL_CLASSES

    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{str(path)!r} is a folder; pass the checkpoint file in it "
                              f"(e.g. {str(path / 'best.npz')!r}).")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} not found; pass the .npz file written by `convlayer train` "
                              "(e.g. runs/<name>/best.npz).")
    arrays = read_npz(path, what="a convlayer checkpoint", hint="pass a .npz written by `convlayer train` or "
                      "model.save", error=CheckpointError)
    if "__document__" not in arrays:
        raise CheckpointError(f"{path} is an .npz file but not a convlayer checkpoint (no model document).")
    try:
        document = json.loads(str(arrays.pop("__document__")))
        if not isinstance(document, dict):
            raise TypeError("the document is not a JSON object")
        spec = document["model"]
        if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict):
            raise TypeError("the model entry is not an object with a config object")
        model_cls = MODEL_CLASSES[spec["class_name"]]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} has a damaged model document ({type(exc).__name__}: {exc}).") from None
    if document.get("format") != FORMAT or document.get("version") != VERSION:
        raise CheckpointError(f"{path}: unsupported checkpoint format {document.get('format')!r} "
                              f"version {document.get('version')!r}.")
    weights = {k[len("weights/"):]: v for k, v in arrays.items() if k.startswith("weights/")}
    try:
        with weight_budget(sum(int(v.size) for v in weights.values())):
            model = model_cls.from_config(spec["config"])
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        raise CheckpointError(f"{path} has a model config convlayer cannot build: {exc}") from None
    load_weights(model, weights, path)
    optimizer = None
    if document.get("optimizer"):
        optimizer = _load_optimizer(document["optimizer"], arrays, model, path)
    loss = spec.get("loss")
    if isinstance(loss, str):
        from .models.sequential import LOSSES

        if loss not in LOSSES:
            raise CheckpointError(f"{path} names an unknown loss {loss!r}.")
        model.loss = loss
    state, meta = document.get("training_state", {}), document.get("meta", {})
    if not isinstance(state, dict) or not isinstance(meta, dict):
        raise CheckpointError(f"{path} has a damaged document: training_state and meta must be objects.")
    return Checkpoint(model, optimizer, state, meta)


def _load_optimizer(config, arrays: dict, model, path):
    """The optimizer of the document, its slots checked against the model's parameters."""
    try:
        if not isinstance(config, dict):
            raise TypeError("not an object")
        optimizer = optimizers_mod.from_config(config)
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(f"{path} has a damaged optimizer config ({exc}).") from None
    state = {k[len("optimizer/"):]: v for k, v in arrays.items() if k.startswith("optimizer/")}
    params = {f"{layer.name}/{key}": value for layer in model.layers for key, value in layer.params.items()}
    iterations = state.get("iterations")
    if iterations is None or iterations.shape != () or iterations.dtype.kind not in "iu" or int(iterations) < 0:
        raise CheckpointError(f"{path}: the optimizer state has no valid step count.")
    for full_key, value in state.items():
        if full_key == "iterations":
            continue
        slot, _, key = full_key.partition("/")
        if key not in params:
            raise CheckpointError(f"{path}: optimizer slot {full_key!r} belongs to no parameter of the model.")
        if value.shape != params[key].shape or value.dtype.kind != "f":
            raise CheckpointError(f"{path}: optimizer slot {full_key!r} has shape {value.shape} and dtype "
                                  f"{value.dtype}, but the parameter is {params[key].shape} {params[key].dtype}.")
    optimizer.load_state_dict(state)
    return optimizer


def load_weights(model, weights: dict, source="weights") -> None:
    """Copy ``{'layer/param': array}`` into ``model``, naming the layer and shapes on mismatch."""
    expected = {f"{layer.name}/{key}": value for layer in model.layers for key, value in layer.params.items()}
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{source} does not fit this model: missing {missing or 'nothing'}, "
                              f"unexpected {extra or 'nothing'}.")
    for key, target in expected.items():
        value = weights[key]
        if value.dtype.kind not in "fiu":
            raise CheckpointError(f"{source}: {key} has dtype {value.dtype}, not numbers.")
        if value.shape != target.shape:
            layer, param = key.split("/", 1)
            raise CheckpointError(f"{source}: layer {layer!r} {param} has shape {tuple(value.shape)} in the "
                                  f"checkpoint but {tuple(target.shape)} in the model; it was trained for a "
                                  "different architecture or input size.")
    for key, target in expected.items():
        target[...] = weights[key]
