"""Keras: ``.keras`` files (Keras 3) written with h5py and the standard library, and imports back.

A ``.keras`` file is a zip of exactly ``metadata.json``, ``config.json`` and ``model.weights.h5``.
The weights file follows Keras' own walk (``keras/src/saving/saving_lib.py``): each layer of a
Sequential model (its InputLayer excepted) is a group named after its class, not its name,
``layers/conv2d/vars/0`` (kernel), ``/1`` (bias), then ``layers/conv2d_1/...``; weightless layers
get an empty ``vars`` group, and the model itself an empty top-level ``vars`` group (Keras
3.0-3.5 open it). Configs are minimal, with plain-string dtypes, so Keras 3.0 and later all read
them. Explicit padding becomes a ZeroPadding2D layer before a 'valid' Conv2D.

Import reads ``.keras`` (Keras 3) and full-model ``.h5`` files (Keras 2, or Keras 3's legacy
writer): a Sequential or single-chain Functional model of the layers convlayer has.
"""

from __future__ import annotations

import datetime
import io
import json
import math
import re
import zipfile
from pathlib import Path
from zlib import error as zlib_error

import numpy as np

from .chain import InteropError, Step, model_document, parse_json, prefer_document, refusal, walk

SUFFIX = ".keras"
KERAS_VERSION = "3.0.0"  # what the files claim: configs are kept to what Keras 3.0 reads
SUPPORTED = ("InputLayer", "Conv2D", "MaxPooling2D", "AveragePooling2D", "Dense", "Dropout", "Flatten", "Reshape",
             "Activation", "ZeroPadding2D")
ALIASES = {"MaxPool2D": "MaxPooling2D", "AvgPool2D": "AveragePooling2D", "Convolution2D": "Conv2D"}
MAX_CONFIG_BYTES = 16 << 20
MAX_WEIGHTS_BYTES = 4 << 30


def snake_case(name: str) -> str:
    """Keras' ``naming.to_snake_case``: 'MaxPooling2D' -> 'max_pooling2d', 'Conv2D' -> 'conv2d'."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _entry(class_name: str, config: dict) -> dict:
    return {"module": "keras.layers", "class_name": class_name, "config": config, "registered_name": None}


# ---------------------------------------------------------------------------- export


def keras_layers(steps: list[Step], names: set) -> list[tuple[dict, list[np.ndarray]]]:
    """(config entry, weights) per Keras layer, the InputLayer excluded; refuses what Keras cannot hold."""
    out = []
    for step in steps:
        layer, kind = step.layer, step.kind
        base = {"name": layer.name, "trainable": layer.trainable, "dtype": layer.dtype.name}
        if kind == "Conv2D":
            padded = any(step.pads[0]) or any(step.pads[1])
            if layer.padding_mode != "zeros" and padded:
                holders = [".onnx", ".safetensors"] if layer.padding_mode in ("reflect", "replicate") \
                    else [".safetensors"]
                raise refusal(step, f"padding_mode='{layer.padding_mode}'", ".keras", holders)
            if max(layer.strides) > 1 and max(layer.dilation_rate) > 1:
                raise refusal(step, f"strides={layer.strides} together with dilation_rate={layer.dilation_rate}",
                              ".keras", [".onnx", ".safetensors"])
            padding = layer.padding if isinstance(layer.padding, str) else "valid"
            if not isinstance(layer.padding, str) and padded:
                pad_name = f"{layer.name}_pad"
                while pad_name in names:
                    pad_name += "_"
                names.add(pad_name)
                out.append((_entry("ZeroPadding2D", {"name": pad_name, "trainable": True,
                                                     "dtype": layer.dtype.name,
                                                     "padding": [list(p) for p in layer.padding],
                                                     "data_format": layer.data_format}), []))
            config = {**base, "filters": layer.filters, "kernel_size": list(layer.kernel_size),
                      "strides": list(layer.strides), "padding": padding, "data_format": layer.data_format,
                      "dilation_rate": list(layer.dilation_rate), "groups": layer.groups,
                      "activation": step.activation, "use_bias": layer.use_bias}
        elif kind in ("MaxPooling2D", "AveragePooling2D"):
            config = {**base, "pool_size": list(layer.pool_size), "strides": list(layer.strides),
                      "padding": layer.padding, "data_format": layer.data_format}
        elif kind == "Dense":
            config = {**base, "units": layer.units, "activation": step.activation, "use_bias": layer.use_bias}
        elif kind == "Dropout":
            config = {**base, "rate": layer.rate}
            if layer.noise_shape is not None:
                config["noise_shape"] = list(layer.noise_shape)
        elif kind == "Flatten":
            config = {**base, "data_format": layer.data_format}
        elif kind == "Reshape":
            config = {**base, "target_shape": list(layer.target_shape)}
        else:  # Activation
            config = {**base, "activation": step.activation}
        out.append((_entry(kind, config), list(layer.params.values())))
    return out


def export_keras(model, path, meta=None) -> Path:
    """Write ``model`` as a Keras 3 ``.keras`` file that ``keras.saving.load_model`` opens."""
    import h5py

    from ..fileio import atomic_writer

    steps = walk(model)
    names = {layer.name for layer in model.layers}
    layers = keras_layers(steps, names)
    input_name = "input_layer"
    while input_name in names:
        input_name += "_"
    batch_shape = [None, *model.input_shape[1:]]
    input_entry = _entry("InputLayer", {"batch_shape": batch_shape, "dtype": model.layers[0].dtype.name,
                                        "sparse": False, "name": input_name})
    config = {"module": "keras", "class_name": "Sequential", "registered_name": None,
              "config": {"name": model.name, "trainable": True, "build_input_shape": batch_shape,
                         "layers": [input_entry] + [entry for entry, _ in layers]}}
    metadata = {"keras_version": KERAS_VERSION,
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
                "convlayer": model_document(model, meta)}
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as weights:
        counts: dict[str, int] = {}
        for entry, arrays in layers:
            base = snake_case(entry["class_name"])
            index = counts.get(base, -1) + 1
            counts[base] = index
            group = weights.create_group(f"layers/{base}{'' if index == 0 else f'_{index}'}/vars")
            group.attrs["name"] = entry["config"]["name"]
            for i, array in enumerate(arrays):
                group.create_dataset(str(i), data=np.ascontiguousarray(array))
        weights.create_group("vars").attrs["name"] = model.name
    with atomic_writer(path) as (out, _):
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("metadata.json", json.dumps(metadata))
            archive.writestr("config.json", json.dumps(config))
            archive.writestr("model.weights.h5", buffer.getvalue(), compress_type=zipfile.ZIP_STORED)
    return Path(path)


# ---------------------------------------------------------------------------- import


def _dtype_name(value, who: str) -> str:
    if isinstance(value, dict):  # Keras 3: {"class_name": "DTypePolicy", "config": {"name": "float32"}}
        value = (value.get("config") or {}).get("name") if isinstance(value.get("config"), dict) else None
    if value is None:
        return "float32"
    if value not in ("float32", "float64"):
        raise InteropError(f"{who} has dtype {value!r}; convlayer computes in 'float32' or 'float64'.")
    return value


def _activation(value, who: str):
    from ..functional import activations as act_mod

    if value is None:
        return "linear"
    if not isinstance(value, str) or value.lower() not in act_mod.available() + ["swish"]:
        shown = value.get("class_name", value) if isinstance(value, dict) else value
        raise InteropError(f"{who} has activation {shown!r}, which convlayer does not have; supported: "
                           f"{', '.join(act_mod.available())}.")
    return value.lower()


def _shape(value, who: str, what: str) -> tuple:
    if not isinstance(value, (list, tuple)) or not value or not all(
            v is None or (isinstance(v, int) and not isinstance(v, bool) and 0 < v < 1 << 31) for v in value):
        raise InteropError(f"{who}: {what} must be a list of positive ints (None for the batch), got "
                           f"{str(value)[:100]}.")
    return tuple(value)


def _layer_args(class_name: str, config: dict, who: str) -> dict:
    """convlayer constructor arguments for one Keras layer config."""
    get = config.get
    args = {"name": get("name"), "dtype": _dtype_name(get("dtype"), who)}
    if class_name == "Conv2D":
        padding = get("padding", "valid")
        if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
            raise InteropError(f"{who} has padding {padding!r}; Conv2D takes 'valid' or 'same'.")
        args.update(filters=get("filters"), kernel_size=get("kernel_size"), strides=get("strides", 1),
                    padding=padding.lower(), data_format=get("data_format"), dilation_rate=get("dilation_rate", 1),
                    groups=get("groups", 1), activation=_activation(get("activation"), who),
                    use_bias=get("use_bias", True))
    elif class_name in ("MaxPooling2D", "AveragePooling2D"):
        args.update(pool_size=get("pool_size", 2), strides=get("strides"), padding=get("padding", "valid"),
                    data_format=get("data_format"))
    elif class_name == "Dense":
        args.update(units=get("units"), activation=_activation(get("activation"), who), use_bias=get("use_bias", True))
    elif class_name == "Dropout":
        args.update(rate=get("rate"), noise_shape=get("noise_shape"))
    elif class_name == "Flatten":
        args.update(data_format=get("data_format"))
    elif class_name == "Reshape":
        args.update(target_shape=get("target_shape"))
    elif class_name == "Activation":
        args.update(activation=_activation(get("activation"), who))
    for key in ("kernel_size", "strides", "dilation_rate", "pool_size", "target_shape", "noise_shape"):
        if isinstance(args.get(key), list):
            args[key] = tuple(args[key])
    return args


def _explicit_padding(value, who: str):
    if isinstance(value, int) and not isinstance(value, bool):
        return ((value, value), (value, value))
    if isinstance(value, (list, tuple)) and len(value) == 2:
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return ((value[0], value[0]), (value[1], value[1]))
        if all(isinstance(p, (list, tuple)) and len(p) == 2 for p in value):
            return tuple(tuple(p) for p in value)
    raise InteropError(f"{who} has padding {str(value)[:80]}; expected an int, (rows, cols) or "
                       "((top, bottom), (left, right)).")


def _model_spec(config, source) -> tuple[list[dict], tuple | None, str, bool]:
    """(layer entries in order, input shape or None, model name, whether an InputLayer is walked)."""
    if not isinstance(config, dict):
        raise InteropError(f"{source}: the model config is not a JSON object.")
    class_name = config.get("class_name")
    body = config.get("config")
    if class_name not in ("Sequential", "Functional", "Model"):
        raise InteropError(f"{source} holds a {class_name!r} model; convlayer imports Sequential models and "
                           "single-chain Functional ones.")
    if isinstance(body, list):  # Keras 1/2.0 Sequential: the config is the layer list
        body = {"layers": body}
    if not isinstance(body, dict) or not isinstance(body.get("layers"), list) or not body["layers"]:
        raise InteropError(f"{source}: the model config has no list of layers.")
    entries = body["layers"]
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict) or \
                not isinstance(entry.get("class_name"), str):
            raise InteropError(f"{source}: a layer entry is not an object with a class_name and a config.")
    for entry in entries:
        kind = ALIASES.get(entry["class_name"], entry["class_name"])
        if kind not in SUPPORTED:
            raise InteropError(f"{source}: {kind} {str(entry['config'].get('name'))[:60]!r} is a layer convlayer "
                               f"does not have; supported: {', '.join(SUPPORTED)}.")
    if class_name != "Sequential":
        _check_chain(entries, body, source)
    shape = body.get("build_input_shape")
    first = entries[0]["config"]
    shape = first.get("batch_shape") or first.get("batch_input_shape") or shape
    if shape is None and isinstance(config.get("build_config"), dict):
        shape = config["build_config"].get("input_shape")
    name = body.get("name") if isinstance(body.get("name"), str) and body.get("name") else "sequential"
    return entries, shape, name, class_name != "Sequential"


def _inbound_names(entry) -> list:
    names = []
    for node in entry.get("inbound_nodes") or []:
        if isinstance(node, dict):  # Keras 3: {"args": [{"config": {"keras_history": [name, 0, 0]}}], ...}
            for arg in node.get("args") or []:
                history = (arg.get("config") or {}).get("keras_history") if isinstance(arg, dict) else None
                names.append(history[0] if isinstance(history, list) and history else arg)
        elif isinstance(node, list):  # Keras 2: [[name, 0, 0, {}], ...]
            names.extend(item[0] if isinstance(item, list) and item else item for item in node)
        else:
            names.append(node)
    return names


def _check_chain(entries, body, source) -> None:
    previous = None
    for entry in entries:
        name = entry.get("name", entry["config"].get("name"))
        inbound = _inbound_names(entry)
        expected = [] if previous is None else [previous]
        if inbound != expected:
            raise InteropError(f"{source}: layer {name!r} takes {inbound or 'no input'} instead of the layer "
                               f"before it ({previous!r}); convlayer imports single-chain models only.")
        previous = name
    outputs = body.get("output_layers")
    out_names = [o[0] for o in outputs if isinstance(o, list) and o] if isinstance(outputs, list) else None
    if isinstance(outputs, list) and outputs and isinstance(outputs[0], str):
        out_names = [outputs[0]]  # a single output written flat: [name, 0, 0]
    if out_names is not None and out_names != [previous]:
        raise InteropError(f"{source}: the model outputs {out_names}, not its last layer {previous!r}; convlayer "
                           "imports single-chain models only.")


def build_model(entries, input_shape, name, weight_elements: int, source):
    """A convlayer Sequential from Keras layer entries, built under a weight budget."""
    from ..layers import LAYER_CLASSES
    from ..layers.base import weight_budget
    from ..models import Sequential

    layers, pending_pad = [], None
    for position, entry in enumerate(entries):
        class_name = ALIASES.get(entry["class_name"], entry["class_name"])
        config = entry["config"]
        who = f"{source}: {class_name} {str(config.get('name'))[:60]!r}"
        if class_name not in SUPPORTED:
            raise InteropError(f"{who} is a layer convlayer does not have; supported: {', '.join(SUPPORTED)}.")
        if class_name == "InputLayer":
            if position:
                raise InteropError(f"{who} is not the first layer.")
            continue
        if pending_pad is not None and class_name != "Conv2D":
            raise InteropError(f"{pending_pad[1]} is followed by {class_name}; convlayer holds explicit padding "
                               "inside a Conv2D only (ZeroPadding2D then Conv2D).")
        if class_name == "ZeroPadding2D":
            pending_pad = (_explicit_padding(config.get("padding", 1), who), who, config.get("data_format"))
            continue
        args = _layer_args(class_name, config, who)
        if pending_pad is not None:
            if args["padding"] != "valid" or (args.get("data_format") or "channels_last") != \
                    (pending_pad[2] or "channels_last"):
                raise InteropError(f"{pending_pad[1]} precedes a Conv2D with padding {args['padding']!r} or another "
                                   "data_format; convlayer merges ZeroPadding2D only into a 'valid' Conv2D.")
            args["padding"] = pending_pad[0]
            pending_pad = None
        try:
            with weight_budget(weight_elements):
                layers.append(LAYER_CLASSES[class_name](**{k: v for k, v in args.items() if v is not None}))
        except InteropError:
            raise
        except (TypeError, ValueError, OverflowError) as exc:
            raise InteropError(f"{who} has a config convlayer cannot build: {' '.join(str(exc).split())[:300]}") \
                from None
    if pending_pad is not None:
        raise InteropError(f"{pending_pad[1]} ends the model; convlayer holds explicit padding inside a Conv2D only.")
    if not layers:
        raise InteropError(f"{source} has no layers besides its input.")
    if input_shape is None:
        raise InteropError(f"{source} does not record its input shape (no InputLayer or batch_input_shape); save "
                           "the model after building it, e.g. with keras.Input(shape=...).")
    shape = (None, *_shape(input_shape, str(source), "the input shape")[1:])
    try:
        with weight_budget(weight_elements):
            model = Sequential(layers, name=name)
            model.build(shape)
    except InteropError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise InteropError(f"{source}: its layers do not fit together for input {shape}: "
                           f"{' '.join(str(exc).split())[:300]}") from None
    return model


def _walk_names(entries, walks_input: bool) -> list[tuple[str, str, dict]]:
    """(Keras class, weights path, entry) for each layer in the order Keras walks them."""
    counts: dict[str, int] = {}
    out = []
    for entry in entries:
        if entry["class_name"] == "InputLayer" and not walks_input:
            continue
        base = snake_case(entry["class_name"])
        index = counts.get(base, -1) + 1
        counts[base] = index
        out.append((entry["class_name"], f"layers/{base}{'' if index == 0 else f'_{index}'}/vars", entry))
    return out


def _weight_lists_keras(h5, entries, walks_input, source) -> list[list]:
    lists = []
    for class_name, path, entry in _walk_names(entries, walks_input):
        group = h5.get(path)
        if group is None and class_name in ("InputLayer", "ZeroPadding2D", "MaxPooling2D", "AveragePooling2D",
                                             "Dropout", "Flatten", "Reshape", "Activation"):
            lists.append([])
            continue
        if group is None or not hasattr(group, "keys"):
            raise InteropError(f"{source}: the weights file has no group {path!r} for layer "
                               f"{entry['config'].get('name')!r}.")
        keys = sorted(group.keys(), key=lambda k: int(k) if k.isdigit() else -1)
        if any(not k.isdigit() for k in keys) or keys != [str(i) for i in range(len(keys))]:
            raise InteropError(f"{source}: {path} holds {keys[:8]}, not the datasets 0, 1, ...")
        lists.append([group[k] for k in keys])
    return lists


def _weight_lists_h5(h5, entries, source) -> list[list]:
    root = h5.get("model_weights")
    if root is None:
        raise InteropError(f"{source} has a model config but no 'model_weights' group; save the whole model "
                           "(model.save), not only its config.")
    lists = []
    for entry in entries:
        name = entry["config"].get("name")
        if entry["class_name"] == "InputLayer":
            continue
        group = root.get(name) if isinstance(name, str) else None
        if group is None:
            lists.append([])
            continue
        names = group.attrs.get("weight_names", [])
        try:
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in np.asarray(names).reshape(-1)]
            lists.append([group[n] for n in names])
        except (KeyError, TypeError, ValueError) as exc:
            raise InteropError(f"{source}: layer {name!r} lists weights its group does not hold ({exc}).") from None
    return lists


def _claimed_elements(datasets) -> int:
    total = 0
    for dataset in datasets:
        shape = getattr(dataset, "shape", None)
        if shape is None:
            raise InteropError("a weight entry is a group, not an array")
        total += math.prod(shape)
    return total


def _copy_weights(model, lists, source) -> None:
    weighted = [layer for layer in model.layers]
    if len(weighted) != len(lists):
        raise InteropError(f"{source}: {len(lists)} layers have weights entries but the model has "
                           f"{len(weighted)} layers.")
    values = []
    for layer, datasets in zip(weighted, lists):
        expected = list(layer.params.items())
        if len(datasets) != len(expected):
            raise InteropError(f"{source}: layer {layer.name!r} has {len(datasets)} weight arrays in the file but "
                               f"needs {len(expected)} ({', '.join(k for k, _ in expected) or 'none'}).")
        for (key, target), dataset in zip(expected, datasets):
            shape, dtype = tuple(dataset.shape), dataset.dtype
            if shape != target.shape or dtype.kind != "f":
                raise InteropError(f"{source}: layer {layer.name!r} {key} is {dtype} {shape} in the file but the "
                                   f"layer needs float {target.shape}.")
            value = np.asarray(dataset[()])
            if not np.isfinite(value).all():
                raise InteropError(f"{source}: layer {layer.name!r} {key} holds NaN or infinite values.")
            values.append((target, value))
    for target, value in values:
        target[...] = value


def _open_h5(data, source):
    import h5py

    try:
        return h5py.File(io.BytesIO(data) if isinstance(data, bytes) else data, "r")
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
        raise InteropError(f"{source} is not a readable HDF5 file ({' '.join(str(exc).split())[:200]}).") from None


def import_keras(path):
    """A checkpoint from a ``.keras`` (Keras 3) or full-model ``.h5`` (Keras 2) file."""
    from ..checkpoint import Checkpoint

    path = Path(path)
    if not path.is_file():
        raise InteropError(f"{str(path)!r} not found; pass a .keras or .h5 file saved by model.save.")
    try:
        if path.suffix.lower() == SUFFIX:
            model, meta = _import_zip(path)
        else:
            model, meta = _import_h5(path)
    except InteropError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError, AttributeError, IndexError, EOFError,
            zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RecursionError, zlib_error) as exc:
        raise InteropError(f"{path} is damaged or not a Keras model file ({type(exc).__name__}: "
                           f"{' '.join(str(exc).split())[:200]}).") from None
    return Checkpoint(model, meta={**meta, "imported_from": path.name})


def _import_zip(path: Path):
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise InteropError(f"{path} is not a .keras file (not a zip archive); save it with Keras 3's "
                           "model.save('model.keras').") from None
    with archive:
        members = {info.filename: info for info in archive.infolist()}
        if "config.json" not in members or "model.weights.h5" not in members:
            found = ", ".join(sorted(members)[:6]) or "nothing"
            raise InteropError(f"{path} is not a Keras 3 model file: it needs config.json and model.weights.h5, it "
                               f"holds {found}.")
        size = path.stat().st_size
        for name, limit in (("config.json", MAX_CONFIG_BYTES), ("metadata.json", MAX_CONFIG_BYTES),
                            ("model.weights.h5", min(MAX_WEIGHTS_BYTES, 64 * size + (1 << 20)))):
            if name in members and members[name].file_size > limit:
                raise InteropError(f"{path}: {name} claims {members[name].file_size:,} bytes, more than a file of "
                                   f"{size:,} bytes can honestly hold.")
        config = parse_json(archive.read("config.json"), "config.json", path)
        metadata = parse_json(archive.read("metadata.json"), "metadata.json", path) \
            if "metadata.json" in members else {}
        weights_bytes = archive.read("model.weights.h5")
    entries, shape, name, walks_input = _model_spec(config, path)
    with _open_h5(weights_bytes, path) as h5:
        lists = _weight_lists_keras(h5, entries, walks_input, path)
        budget = min(_claimed_elements(d for ds in lists for d in ds), len(weights_bytes) // 2)
        model = build_model(entries, shape, name, budget, path)
        _copy_weights(model, _drop_weightless(entries, lists, walks_input), path)
    document = metadata.get("convlayer") if isinstance(metadata, dict) else None
    return prefer_document(model, document, budget, path)


def _drop_weightless(entries, lists, walks_input):
    """The weight lists of the layers convlayer builds (InputLayer and ZeroPadding2D dropped)."""
    kept = [e for e in entries if walks_input or e["class_name"] != "InputLayer"]
    return [ds for entry, ds in zip(kept, lists) if entry["class_name"] not in ("InputLayer", "ZeroPadding2D")]


def _import_h5(path: Path):
    with _open_h5(str(path), path) as h5:
        raw = h5.attrs.get("model_config")
        if raw is None:
            raise InteropError(f"{path} has no model_config: it holds weights only (save_weights); convlayer "
                               "imports full models saved with model.save('model.h5').")
        if isinstance(raw, (bytes, np.bytes_)):
            raw = bytes(raw)
        elif not isinstance(raw, str):
            raise InteropError(f"{path}: model_config is a {type(raw).__name__}, not JSON text.")
        config = parse_json(raw, "model_config", path)
        entries, shape, name, _ = _model_spec(config, path)
        lists = _weight_lists_h5(h5, entries, path)
        budget = min(_claimed_elements(d for ds in lists for d in ds), path.stat().st_size // 2)
        model = build_model(entries, shape, name, budget, path)
        kept = [e for e in entries if e["class_name"] != "InputLayer"]
        _copy_weights(model, [ds for e, ds in zip(kept, lists) if e["class_name"] != "ZeroPadding2D"], path)
    return model, {}
