"""A convlayer model as a chain of steps with known shapes: what every exporter walks.

Each step is one layer with its input and output shapes (batch axis None) and, for
convolution and pooling, the padding amounts that ``convlayer.functional.shapes`` computes
for that input: exporters write these numbers and never re-derive them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..functional.shapes import Padding2D

FORMATS = {".keras": "Keras 3", ".onnx": "ONNX", ".safetensors": "PyTorch state_dict"}
SPATIAL = ("Conv2D", "MaxPooling2D", "AveragePooling2D")


class InteropError(ValueError):
    """A model a format cannot hold, or a file convlayer cannot import; the message is one line."""


@dataclass
class Step:
    layer: object
    kind: str  # the layer's class name
    input_shape: tuple  # (None, ...) as convlayer holds it
    output_shape: tuple
    pads: Padding2D | None = None  # ((top, bottom), (left, right)) of Conv2D and pooling

    @property
    def data_format(self) -> str | None:
        return getattr(self.layer, "data_format", None) if self.kind in SPATIAL else None

    @property
    def activation(self) -> str | None:
        activation = getattr(self.layer, "activation", None)
        return getattr(activation, "name", None)


def refusal(step: Step, setting: str, fmt: str, holders) -> InteropError:
    """One line: the layer, the setting, the format that cannot hold it and those that can."""
    others = ", ".join(holders) if holders else "none of the formats (keep the .npz checkpoint)"
    return InteropError(f"{step.layer.describe()}: {setting} cannot be written to {fmt} ({FORMATS[fmt]}); "
                        f"formats that hold it: {others}.")


def walk(model) -> list[Step]:
    """The model's steps; refuses a model that is not a built convlayer Sequential/MNISTModel."""
    from ..layers import LAYER_CLASSES
    from ..models import Sequential

    if not isinstance(model, Sequential):
        raise InteropError(f"export expects a convlayer Sequential or MNISTModel, got {type(model).__name__}.")
    if model.input_shape is None:
        raise InteropError(f"{model.name} is not built, so its input shape is unknown; call "
                           "model.build((None, rows, cols, channels)) or run it on a batch before exporting.")
    if not model.layers:
        raise InteropError(f"{model.name} has no layers; there is nothing to export.")
    shape = (None, *model.input_shape[1:])
    if any(d is None for d in shape[1:]):
        raise InteropError(f"{model.name} was built for input shape {shape}; export needs every axis but the "
                           "batch known (build it for the image size it takes).")
    steps = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind not in LAYER_CLASSES:
            raise InteropError(f"{layer.describe()}: layer class {kind} cannot be exported; supported: "
                               f"{', '.join(LAYER_CLASSES)}.")
        out = tuple(layer.compute_output_shape(shape))
        pads = None
        if kind == "Conv2D":
            pads = layer.padding_amounts(shape)
        elif kind in SPATIAL:
            from ..functional.shapes import resolve_padding

            spatial = shape[1:3] if layer.data_format == "channels_last" else shape[2:4]  # (rows, cols)
            pads = resolve_padding(layer.padding, spatial, layer.pool_size, layer.strides, (1, 1))
        steps.append(Step(layer, kind, shape, out, pads))
        shape = out
    return steps


def model_document(model, meta=None) -> dict:
    """The convlayer architecture and metadata that travel inside exported files."""
    from .. import __version__

    return {"format": "convlayer-model", "version": 1, "convlayer_version": __version__,
            "model": {"class_name": type(model).__name__, "config": model.get_config()},
            "input_shape": list(model.input_shape), "meta": dict(meta or {})}


def model_from_document(document, weight_elements: int, source) -> tuple[object, dict] | None:
    """(model, meta) rebuilt from ``model_document`` output under a weight budget; None if it is not one."""
    from ..layers.base import weight_budget
    from ..models import MODEL_CLASSES

    if not isinstance(document, dict) or document.get("format") != "convlayer-model":
        return None
    try:
        spec = document["model"]
        cls = MODEL_CLASSES[spec["class_name"]]
        if not isinstance(spec["config"], dict):
            raise TypeError("the config is not an object")
        with weight_budget(weight_elements):
            model = cls.from_config(spec["config"])
            if model.input_shape is None:
                model.build(tuple(document["input_shape"]))
    except Exception as exc:  # the file's config is data: whatever it makes a constructor raise is its fault
        raise InteropError(f"{source} carries a convlayer architecture convlayer cannot build: "
                           f"{' '.join(str(exc).split())[:300]}") from None
    meta = document.get("meta")
    return model, meta if isinstance(meta, dict) else {}


def prefer_document(model, document, budget: int, source) -> tuple[object, dict]:
    """convlayer's own architecture (e.g. MNISTModel) and meta, when the file carries them and they fit.

    The document is taken only if its model has the imported model's parameters, layer for layer,
    and predicts the same on a probe batch; otherwise the file's own graph or config wins.
    """
    import numpy as np

    try:
        rebuilt = model_from_document(document, budget, source)
    except InteropError:
        return model, {}
    if rebuilt is None:
        return model, {}
    twin, meta = rebuilt
    shapes = lambda m: [(type(layer).__name__, [v.shape for v in layer.params.values()])  # noqa: E731
                        for layer in m.layers if layer.params]
    if shapes(twin) != shapes(model) or tuple(twin.input_shape[1:]) != tuple(model.input_shape[1:]):
        return model, {}
    weighted = lambda m: [layer for layer in m.layers if layer.params]  # noqa: E731
    for a, b in zip(weighted(model), weighted(twin)):
        for key, value in a.params.items():
            b.params[key][...] = value
    probe = np.random.default_rng(0).random((2, *model.input_shape[1:]), dtype=np.float32)
    want = model.predict(probe)
    if not np.allclose(twin.predict(probe), want, rtol=1e-5, atol=1e-6 * float(np.abs(want).max())):
        return model, {}
    return twin, meta


def parse_json(text, what: str, source) -> object:
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InteropError(f"{source}: {what} is not valid JSON ({type(exc).__name__}: "
                           f"{' '.join(str(exc).split())[:200]}).") from None


def suffix_of(path, allowed, action: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in allowed:
        raise InteropError(f"cannot {action} {str(path)!r}: the format comes from the file's suffix, which must "
                           f"be one of {', '.join(allowed)}.")
    return suffix
