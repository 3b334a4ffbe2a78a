"""Checkpoints: one ``.npz`` file (read with ``allow_pickle=False``) holding the weights,
the optimizer state and a JSON document (model config, training state, metadata).

Files are written atomically: a temporary file in the same folder, fsync, then rename,
so an interrupted save never leaves a half-written checkpoint under the real name.
"""

from __future__ import annotations

import json
import zipfile
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
        return getattr(self.model, "input_dim", None) or self.meta.get("input_dim")

    def class_names(self, count: int) -> list[str]:
        """The recorded class names when there are ``count`` of them, else '0', '1', ..."""
        names = self.meta.get("class_names")
        return [str(n) for n in names] if names and len(names) == count else [str(i) for i in range(count)]

    def test_data(self, dataset: str | None = None, data_dir=None):
        """The dataset the model was trained on (or ``dataset``), checked against its input size and classes."""
        from . import datasets

        name = dataset or self.meta.get("dataset")
        if not name:
            raise ValueError("the checkpoint does not say which dataset it was trained on; pass --dataset.")
        data = datasets.load(name, data_dir=data_dir)
        dim = getattr(self.model, "input_dim", data.input_dim)
        classes = getattr(self.model, "output_size", data.num_classes)
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
    document = {
        "format": FORMAT, "version": VERSION,
        "model": {"class_name": cls_name, "config": model.get_config()},
        "optimizer": None if optimizer is None else optimizer.get_config(),
        "training_state": training_state or {},
        "meta": meta or {},
    }
    arrays["__document__"] = np.array(json.dumps(document))
    atomic_write_bytes(path, lambda f: np.savez(f, **arrays))
    return Path(path)


def load(path) -> Checkpoint:
    """Read a checkpoint; every weight's shape is checked against the rebuilt model."""
    from .models import MODEL_CLASSES

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} not found; pass the .npz file written by `convlayer train` "
                              "(e.g. runs/<name>/best.npz).")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise CheckpointError(f"{path} is not a readable convlayer checkpoint ({exc}).") from None
    if "__document__" not in arrays:
        raise CheckpointError(f"{path} is an .npz file but not a convlayer checkpoint (no model document).")
    try:
        document = json.loads(str(arrays.pop("__document__")))
        spec = document["model"]
        model_cls = MODEL_CLASSES[spec["class_name"]]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path} has a damaged model document ({exc!r}).") from None
    if document.get("format") != FORMAT or document.get("version") != VERSION:
        raise CheckpointError(f"{path}: unsupported checkpoint format {document.get('format')!r} "
                              f"version {document.get('version')!r}.")
    model = model_cls.from_config(spec["config"])
    load_weights(model, {k[len("weights/"):]: v for k, v in arrays.items() if k.startswith("weights/")}, path)
    optimizer = None
    if document.get("optimizer"):
        optimizer = optimizers_mod.from_config(document["optimizer"])
        optimizer.load_state_dict({k[len("optimizer/"):]: v for k, v in arrays.items() if k.startswith("optimizer/")})
    return Checkpoint(model, optimizer, document.get("training_state", {}), document.get("meta", {}))


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
        if value.shape != target.shape:
            layer, param = key.split("/", 1)
            raise CheckpointError(f"{source}: layer {layer!r} {param} has shape {tuple(value.shape)} in the "
                                  f"checkpoint but {tuple(target.shape)} in the model; it was trained for a "
                                  "different architecture or input size.")
    for key, target in expected.items():
        target[...] = weights[key]
