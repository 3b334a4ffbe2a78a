"""PyTorch: the equivalent ``nn.Sequential``, its ``state_dict`` as ``.safetensors``, and imports back.

A model becomes a plan: a list of ``torch.nn`` module specs (type and arguments) and their
parameters in PyTorch layouts, computed without importing torch. ``to_torch`` instantiates it;
``export_safetensors`` writes its parameters (keys numbered as ``nn.Sequential`` numbers its
children, parameterless modules included) with the plan and the convlayer architecture in
``__metadata__``. The PyTorch twin takes images as PyTorch does, (N, C, H, W), and its conv
outputs are (N, C, H, W) too; Linear weights are (out, in) with the first Dense after Flatten
reordered from convlayer's (H, W, C) flatten order to PyTorch's (C, H, W).

Import (``.safetensors`` or ``.pt`` read with ``torch.load(weights_only=True)``) matches the
file's tensors in order onto an architecture's plan, checks every shape, and converts back.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .chain import InteropError, Step, model_document, model_from_document, refusal, walk
from .layout import dense_to_linear, flatten_order, hwio_to_torch_weight, linear_to_dense, torch_weight_to_hwio

SUFFIX = ".safetensors"
TORCH_ACTIVATIONS = {"relu": "ReLU", "sigmoid": "Sigmoid", "tanh": "Tanh", "softmax": "Softmax", "elu": "ELU",
                     "selu": "SELU", "softplus": "Softplus", "softsign": "Softsign", "silu": "SiLU",
                     "relu6": "ReLU6"}
PAD_MODULES = {"zeros": "ZeroPad2d", "reflect": "ReflectionPad2d", "replicate": "ReplicationPad2d",
               "circular": "CircularPad2d"}
MAX_FILE_BYTES = 4 << 30


@dataclass
class Param:
    """One tensor of the state_dict and where it lives in convlayer."""

    key: str  # e.g. '0.weight'
    value: np.ndarray  # PyTorch layout
    layer: str
    name: str  # 'kernel' or 'bias'
    kind: str  # 'conv', 'linear' or 'bias'
    order: np.ndarray | None = None  # Linear input order after Flatten


@dataclass
class Plan:
    modules: list[dict] = field(default_factory=list)  # {"type": "Conv2d", "args": {...}}
    params: list[Param] = field(default_factory=list)

    def add(self, module_type: str, **args) -> int:
        self.modules.append({"type": module_type, "args": args})
        return len(self.modules) - 1


def plan(model) -> Plan:
    """The ``nn.Sequential`` twin of ``model`` as data; refuses what PyTorch modules cannot express."""
    steps = walk(model)
    formats = {s.data_format for s in steps if s.data_format}
    if len(formats) > 1:
        raise refusal(steps[0], "a mix of channels_last and channels_first layers", ".safetensors",
                      [".keras", ".onnx"])
    nchw = formats == {"channels_last"} and len(steps[0].input_shape) == 4
    result = Plan()
    pending = None  # Linear input order after a Flatten of NCHW data
    for step in steps:
        layer, kind = step.layer, step.kind
        if kind == "Conv2D":
            _conv(result, step)
        elif kind in ("MaxPooling2D", "AveragePooling2D"):
            _pool(result, step)
        elif kind == "Flatten":
            sample = step.input_shape[1:]
            torch_sample = (sample[2], sample[0], sample[1]) if nchw and len(sample) == 3 else sample
            order = flatten_order(torch_sample, nchw=nchw and len(sample) == 3,
                                  flatten_data_format=layer.data_format)
            pending = None if np.array_equal(order, np.arange(order.size)) else order
            result.add("Flatten")
            nchw = False
        elif kind == "Dense":
            if nchw and len(step.input_shape) > 2:
                raise refusal(step, f"a Dense on {len(step.input_shape)}-D image data", ".safetensors",
                              [".keras", ".onnx"])
            index = result.add("Linear", in_features=int(step.input_shape[-1]), out_features=layer.units,
                               bias=layer.use_bias)
            result.params.append(Param(f"{index}.weight", dense_to_linear(layer.params["kernel"], pending),
                                       layer.name, "kernel", "linear", pending))
            if layer.use_bias:
                result.params.append(Param(f"{index}.bias", layer.params["bias"].copy(), layer.name, "bias",
                                           "bias"))
            pending = None
            _activation(result, step, nchw, pending)
        elif kind == "Dropout":
            result.add("Dropout", p=layer.rate)
        elif kind == "Activation":
            _activation(result, step, nchw, pending)
        else:  # Reshape
            raise refusal(step, "Reshape (PyTorch's twin keeps images in NCHW)", ".safetensors",
                          [".keras", ".onnx"])
    if pending is not None:
        flatten = next(s for s in reversed(steps) if s.kind == "Flatten")
        raise refusal(flatten, "a Flatten of image data that feeds no Dense (its (H, W, C) order has no "
                      "nn.Flatten equivalent)", ".safetensors", [".keras", ".onnx"])
    for param in result.params:
        param.value = np.ascontiguousarray(param.value)
    return result


def _conv(result: Plan, step: Step) -> None:
    layer = step.layer
    (top, bottom), (left, right) = step.pads
    padding = (top, left)
    if (top, left) != (bottom, right):
        result.add(PAD_MODULES[layer.padding_mode], padding=[left, right, top, bottom])
        padding = (0, 0)
    channels = step.input_shape[-1] if layer.data_format == "channels_last" else step.input_shape[1]
    index = result.add("Conv2d", in_channels=int(channels), out_channels=layer.filters,
                       kernel_size=list(layer.kernel_size), stride=list(layer.strides), padding=list(padding),
                       dilation=list(layer.dilation_rate), groups=layer.groups, bias=layer.use_bias,
                       padding_mode=layer.padding_mode)
    result.params.append(Param(f"{index}.weight", hwio_to_torch_weight(layer.params["kernel"]), layer.name,
                               "kernel", "conv"))
    if layer.use_bias:
        result.params.append(Param(f"{index}.bias", layer.params["bias"].copy(), layer.name, "bias", "bias"))
    _activation(result, step, layer.data_format == "channels_last", None)


def _pool(result: Plan, step: Step) -> None:
    layer = step.layer
    (top, bottom), (left, right) = step.pads
    kernel, stride = list(layer.pool_size), list(layer.strides)
    if step.kind == "MaxPooling2D":
        if top or bottom or left or right:
            result.add("ConstantPad2d", padding=[left, right, top, bottom], value=-math.inf)
        result.add("MaxPool2d", kernel_size=kernel, stride=stride)
        return
    if (top, left) != (bottom, right) or top > kernel[0] // 2 or left > kernel[1] // 2:
        raise refusal(step, f"padding='same' here pads {step.pads} (nn.AvgPool2d pads both sides alike, at most "
                      "half the window)", ".safetensors", [".keras", ".onnx"])
    result.add("AvgPool2d", kernel_size=kernel, stride=stride, padding=[top, left], count_include_pad=False)


def _activation(result: Plan, step: Step, nchw: bool, pending) -> None:
    name = step.activation
    if name in (None, "linear"):
        return
    if name not in TORCH_ACTIVATIONS:
        raise refusal(step, f"activation '{name}' (no torch.nn module)", ".safetensors", [".keras", ".onnx"])
    if name == "softmax":
        if pending is not None:
            raise refusal(step, "softmax right after a Flatten of image data", ".safetensors", [".keras", ".onnx"])
        result.add("Softmax", dim=1 if nchw and len(step.output_shape) == 4 else -1)
    else:
        result.add(TORCH_ACTIVATIONS[name])


def to_torch(model):
    """The ``torch.nn.Sequential`` that computes what ``model`` computes, on (N, C, H, W) images.

    Asymmetric padding ('same' with even kernels or strides) is an explicit pad module before the
    convolution. Dropout is a module too, so call ``.eval()`` for inference (done here).

    >>> import torch
    >>> from convlayer.models import MNISTModel
    >>> net = to_torch(MNISTModel(28, 10))
    >>> net(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    """
    import torch

    spec = plan(model)
    return build_torch(spec.modules, {p.key: p.value for p in spec.params}, torch)


def build_torch(modules, state, torch):
    """``nn.Sequential`` from plan module specs and a state dict of NumPy arrays."""
    children = []
    for module in modules:
        args = dict(module["args"])
        for key in ("kernel_size", "stride", "padding", "dilation"):
            if isinstance(args.get(key), list):
                args[key] = tuple(args[key])
        children.append(getattr(torch.nn, module["type"])(**args))
    net = torch.nn.Sequential(*children)
    net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()}, strict=True)
    return net.eval()


def export_safetensors(model, path, meta=None) -> Path:
    """Write the twin's state_dict to ``path`` with the plan and the architecture in ``__metadata__``."""
    from safetensors.numpy import save

    from ..fileio import atomic_write_bytes

    spec = plan(model)
    tensors = {p.key: p.value for p in spec.params}
    metadata = {"format": "pt", "convlayer": json.dumps(model_document(model, meta)),
                "torch_modules": json.dumps(spec.modules), "convlayer_sha256": checksum(tensors.items())}
    data = save(tensors, metadata=metadata)
    atomic_write_bytes(path, lambda f: f.write(data))
    return Path(path)


# ---------------------------------------------------------------------------- import


def checksum(tensors) -> str:
    """sha256 over (name, dtype, shape, bytes) of every tensor, by name: safetensors has no checksum of its own,
    so a damaged byte in a convlayer export is caught instead of loading a silently different weight."""
    digest = hashlib.sha256()
    for name, value in sorted(tensors, key=lambda item: item[0]):
        digest.update(f"{name}|{value.dtype.str}|{value.shape}|".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def _natural_key(name: str):
    """'10.weight' after '9.bias', and a module's weight before its bias (PyTorch's registration order)."""
    module, _, leaf = name.rpartition(".")
    parts = tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", module))
    return parts, {"weight": 0, "bias": 1}.get(leaf, 2), leaf


def _read_safetensors(path: Path):
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
            names = sorted(f.keys(), key=_natural_key)  # the file keeps no order; '10.weight' after '9.bias'
            tensors = [(name, f.get_tensor(name)) for name in names]
    except InteropError:
        raise
    except Exception as exc:  # the Rust reader's SafetensorError, TypeError for unknown dtypes, OSError...
        raise InteropError(f"{path} is not a readable .safetensors file ({type(exc).__name__}: "
                           f"{' '.join(str(exc).split())[:200]}).") from None
    return tensors, metadata


def _read_pt(path: Path):
    import zipfile

    import torch

    if zipfile.is_zipfile(path):  # torch.save's format: refuse a zip bomb before torch inflates it
        try:
            with zipfile.ZipFile(path) as archive:
                claimed = sum(info.file_size for info in archive.infolist())
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise InteropError(f"{path} is a damaged zip archive ({exc}).") from None
        if claimed > max(64 << 20, 64 * path.stat().st_size):
            raise InteropError(f"{path}: its members expand to {claimed:,} bytes, far more than the file's size.")

    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the outcome says all there is
            warnings.simplefilter("ignore")
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError (code refused), RuntimeError (bad zip), EOFError...
        why = re.sub(r"\x1b\[[0-9;]*m", "", " ".join(str(exc).split())).split(". ")[0][:200]
        if type(exc).__name__ == "UnpicklingError":
            why += ": it holds Python objects other than tensors, which convlayer never unpickles"
        raise InteropError(f"{path} is not a PyTorch state_dict that torch.load(weights_only=True) reads "
                           f"({type(exc).__name__}: {why}).") from None
    if isinstance(state, dict) and len(state) == 1 and isinstance(next(iter(state.values())), dict):
        state = next(iter(state.values()))  # {'state_dict': {...}} or {'model_state_dict': {...}}
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise InteropError(f"{path} holds a {type(state).__name__}, not a state_dict (a dict of name -> tensor); "
                           "save model.state_dict().")
    tensors = []
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise InteropError(f"{path}: entry {name!r} is a {type(value).__name__}, not a tensor.")
        if value.dtype in (torch.bfloat16,):
            value = value.float()
        try:
            tensors.append((name, value.detach().cpu().numpy()))
        except (TypeError, RuntimeError) as exc:
            raise InteropError(f"{path}: entry {name!r} cannot become a NumPy array ({exc}).") from None
    return tensors, {}


def read_state_dict(path) -> tuple[list[tuple[str, np.ndarray]], dict]:
    """The file's (name, array) pairs in order, and its metadata (safetensors only)."""
    path = Path(path)
    if not path.is_file():
        raise InteropError(f"{str(path)!r} not found; pass a .safetensors or .pt state_dict file.")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise InteropError(f"{path} is over {MAX_FILE_BYTES >> 30} GB, more than any model convlayer builds.")
    tensors, metadata = (_read_safetensors if path.suffix.lower() == SUFFIX else _read_pt)(path)
    for name, value in tensors:
        if value.dtype.kind != "f":
            raise InteropError(f"{path}: entry {name!r} has dtype {value.dtype}, not floating-point weights "
                               "(buffers such as BatchNorm's num_batches_tracked belong to layers convlayer "
                               "does not have).")
    return tensors, metadata


def _default_model(tensors, path):
    """The lesson's MNISTModel whose parameters have the file's shapes (input_dim from the dense layer)."""
    from ..models import MNISTModel

    shapes = [tuple(v.shape) for _, v in tensors]
    pattern = "conv (32, 1, 5, 5), (32,), conv (64, 32, 5, 5), (64,), linear (1024, 64*k*k), (1024,), (classes, 1024)"
    if len(shapes) != 8 or shapes[:4] != [(32, 1, 5, 5), (32,), (64, 32, 5, 5), (64,)] or len(shapes[4]) != 2 \
            or shapes[4][0] != 1024 or shapes[5] != (1024,) or len(shapes[6]) != 2 or shapes[6][1] != 1024 \
            or shapes[7] != (shapes[6][0],):
        raise InteropError(f"{path} does not have the lesson's MNISTModel parameters ({pattern}), it has "
                           f"{len(shapes)} tensors {shapes[:8]}{'...' if len(shapes) > 8 else ''}; pass "
                           "--like CHECKPOINT (like=) with a convlayer model of the same architecture.")
    side = math.isqrt(shapes[4][1] // 64)
    if side < 1 or 64 * side * side != shapes[4][1] or shapes[6][0] < 2:
        raise InteropError(f"{path}: the dense layer takes {shapes[4][1]} inputs, which is not 64*k*k for "
                           "MNISTModel's pooled k x k images; pass --like CHECKPOINT.")
    return MNISTModel(4 * side, shapes[6][0]), {"input_dim": 4 * side}


def fresh_copy(model):
    """A new model with ``model``'s architecture (its weights are overwritten by the import)."""
    copy = type(model).from_config(model.get_config())
    if copy.input_shape is None and model.input_shape is not None:
        copy.build(model.input_shape)
    return copy


def import_state_dict(path, like=None):
    """A checkpoint: the file's tensors, in order, onto ``like``'s architecture (or the file's own, or MNISTModel).

    Args:
        path: a ``.safetensors`` or ``.pt`` state_dict.
        like: a convlayer model (or ``Checkpoint``) with the architecture the tensors belong to.
    """
    from ..checkpoint import Checkpoint

    path = Path(path)
    tensors, metadata = read_state_dict(path)
    recorded = metadata.get("convlayer_sha256")
    if recorded is not None and recorded != checksum(tensors):
        raise InteropError(f"{path} is damaged: its tensors do not match the checksum convlayer recorded when it "
                           "wrote the file; export it again.")
    meta = {}
    if like is not None:
        from ..models import Sequential

        if isinstance(like, (str, Path)):
            from ..checkpoint import load

            like = load(like)
        if not isinstance(getattr(like, "model", like), Sequential):
            raise InteropError(f"like= must be a convlayer model, a Checkpoint or a checkpoint path, got "
                               f"{type(like).__name__}.")
        model = fresh_copy(getattr(like, "model", like))
        meta = dict(getattr(like, "meta", {}) or {})
    elif "convlayer" in metadata:
        from .chain import parse_json

        document = parse_json(metadata["convlayer"], "the 'convlayer' metadata", path)
        rebuilt = model_from_document(document, sum(int(v.size) for _, v in tensors), path)
        if rebuilt is None:
            raise InteropError(f"{path}: its 'convlayer' metadata is not a convlayer architecture; pass --like.")
        model, meta = rebuilt
    else:
        model, meta = _default_model(tensors, path)
    try:
        spec = plan(model)
    except InteropError as exc:
        raise InteropError(f"the architecture has no PyTorch twin to match {path} onto: {exc}") from None
    if len(tensors) != len(spec.params):
        raise InteropError(f"{path} has {len(tensors)} tensors but the architecture has {len(spec.params)} "
                           f"parameters ({', '.join(f'{p.layer}/{p.name}' for p in spec.params)}); pass --like "
                           "with the model these weights belong to.")
    values = {}
    for (name, value), param in zip(tensors, spec.params):
        if tuple(value.shape) != param.value.shape:
            layout = {"conv": " (OIHW)", "linear": " (out, in)", "bias": ""}[param.kind]
            raise InteropError(f"{path}: tensor {name!r} has shape {tuple(value.shape)} but layer {param.layer!r} "
                               f"{param.name} needs {param.value.shape}{layout}; the weights belong to another "
                               "architecture or input size (pass --like).")
        if not np.isfinite(value).all():
            raise InteropError(f"{path}: tensor {name!r} holds NaN or infinite values.")
        if param.kind == "conv":
            value = torch_weight_to_hwio(value)
        elif param.kind == "linear":
            value = linear_to_dense(value, param.order)
        values[(param.layer, param.name)] = value
    for (layer_name, key), value in values.items():
        model.get_layer(layer_name).params[key][...] = value
    meta = {**meta, "imported_from": path.name}
    return Checkpoint(model, meta=meta)
