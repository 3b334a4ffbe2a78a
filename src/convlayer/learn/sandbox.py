"""Run a learner's file in a child process: import it by path, call its functions, write what came back.

The parent (``check``) writes ``request.json`` and ``inputs.npz`` into a temporary folder and runs
``python -m convlayer.learn.sandbox FOLDER`` with a time limit. The child writes, as it goes:

- ``import.json``: the file's import failed (a syntax error, an exception at import);
- ``defined.json``: which of the wanted names the file defines, their signatures, near-miss names;
- ``progress.txt``: the id of the call running now (so a timeout can say which one hung);
- ``out_<id>.json`` and ``out_<id>.npz``: each call's result (what kind of value, its arrays) or its
  exception, with a traceback of the learner's own frames only.

Results are written one call at a time, so a loop that never ends still leaves the earlier ones.
Nothing here compares answers: that is ``check``'s job, in the parent.
"""

from __future__ import annotations

import difflib
import importlib.util
import inspect
import json
import os
import sys
import traceback
from pathlib import Path

import numpy as np

# What each exercise's function is called with (positionally) and its contract's signature.
SIGNATURES = {
    "convolve": ("image", "kernel", "bias=0.0", "stride=1", "padding='valid'"),
    "conv2d": ("x", "kernel", "bias", "strides=(1, 1)", "padding='valid'"),
    "conv2d_backward": ("dy", "x", "kernel", "strides=(1, 1)", "padding='valid'"),
    "MNISTModel": ("input_dim", "output_size"),
}
REQUIRED = {"convolve": 2, "conv2d": 3, "conv2d_backward": 3, "MNISTModel": 2}  # arguments without defaults


def expected_signature(name: str) -> str:
    return f"{name}({', '.join(SIGNATURES[name])})"


# ---------------------------------------------------------------------------- the learner's traceback


def learner_traceback(exc: BaseException, path: str, shown_as: str) -> tuple[str, int | None]:
    """The traceback of ``exc`` cut to the frames in the learner's file, and the line of the last one."""
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__) if _same_file(frame.filename, path)]
    for frame in frames:
        frame.filename = shown_as
    lines = ["Traceback (your code):\n", *traceback.format_list(frames)] if frames else []
    if isinstance(exc, SyntaxError) and exc.filename and _same_file(exc.filename, path):
        exc.filename = shown_as
    lines += traceback.format_exception_only(type(exc), exc)
    line = frames[-1].lineno if frames else getattr(exc, "lineno", None)
    return "".join(lines).rstrip("\n"), line


def _same_file(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


# ---------------------------------------------------------------------------- values back to the parent


def describe_value(value, key: str, arrays: dict) -> dict:
    """What kind of value came back; arrays go into ``arrays`` under ``key``."""
    if value is None:
        return {"kind": "none"}
    try:
        array = np.asarray(value)
    except Exception:  # noqa: BLE001 - whatever the learner returned
        return {"kind": "object", "type": type(value).__name__}
    if array.dtype.kind not in "biuf":
        return {"kind": "object", "type": type(value).__name__, "dtype": str(array.dtype)}
    arrays[key] = array
    return {"kind": "array", "type": type(value).__name__, "dtype": str(array.dtype), "shape": list(array.shape)}


def _argument(spec, inputs):
    if "array" in spec:
        return inputs[spec["array"]].copy()  # a fresh copy: the learner may write into it
    if "tuple" in spec:
        return tuple(spec["tuple"])
    return spec["value"]


def _write_json(folder: Path, name: str, data) -> None:
    temp = folder / f".{name}.part"
    temp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(temp, folder / name)


# ---------------------------------------------------------------------------- the run


def _signature_problem(name, obj) -> dict | None:
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return None
    parameters = list(signature.parameters.values())
    if inspect.isclass(obj):
        parameters = parameters[1:]  # self
        signature = signature.replace(parameters=parameters)
    count, required = len(SIGNATURES[name]), REQUIRED[name]
    for n in (count, required):
        try:
            signature.bind(*range(n))
        except TypeError:
            return {"yours": f"{name}{signature}", "expected": expected_signature(name), "arguments": n}
    return None


def _call(folder, learner, call, inputs, path, shown_as):
    arrays: dict = {}
    _write_json(folder, "progress.json", {"id": call["id"]})
    fn = getattr(learner, call["function"])
    args = [_argument(spec, inputs) for spec in call["args"]]
    try:
        value = fn(*args)
    except BaseException as exc:  # noqa: BLE001 - the learner's exception, SystemExit included
        text, line = learner_traceback(exc, path, shown_as)
        result = {"status": "error", "exception": type(exc).__name__, "message": str(exc), "traceback": text,
                  "line": line}
    else:
        if call.get("parts") and isinstance(value, (tuple, list)) and not isinstance(value, np.ndarray):
            result = {"status": "ok", "kind": "tuple", "type": type(value).__name__,
                      "parts": [describe_value(v, f"part{i}", arrays) for i, v in enumerate(value)]}
        else:
            result = {"status": "ok", **describe_value(value, "value", arrays)}
    if arrays:
        np.savez(folder / f"out_{call['id']}.npz", **arrays)
    _write_json(folder, f"out_{call['id']}.json", result)


def _check_model(folder, learner, spec, path, shown_as):
    """Build the learner's MNISTModel on a small batch and record every Conv2D it calls."""
    module_tf = getattr(learner, "tf", None)
    tf_name = getattr(module_tf, "__name__", None)
    result: dict = {"tf": tf_name}
    from ..keras import layers as keras_layers

    seen = []
    original = keras_layers.Conv2D.__call__

    def recording(layer, inputs, *args, **kwargs):
        output = original(layer, inputs, *args, **kwargs)
        seen.append({"name": layer.name, "filters": layer.filters, "kernel_size": list(layer.kernel_size),
                     "strides": list(layer.strides), "padding": layer.padding if isinstance(layer.padding, str)
                     else str(layer.padding), "activation": layer.activation.name,
                     "input_shape": list(np.shape(inputs)), "output_shape": list(np.shape(output))})
        return output

    keras_layers.Conv2D.__call__ = recording
    _write_json(folder, "progress.json", {"id": "model"})
    inputs = np.random.default_rng(0).random((spec["batch"], spec["input_dim"] ** 2), dtype=np.float32)
    try:
        model = learner.MNISTModel(spec["input_dim"], spec["output_size"])
        logits = model.model_layers(inputs, is_training=False)
    except BaseException as exc:  # noqa: BLE001
        text, line = learner_traceback(exc, path, shown_as)
        result.update(status="error", exception=type(exc).__name__, message=str(exc), traceback=text, line=line)
    else:
        result.update(status="ok", logits=describe_value(logits, "logits", {}))
    finally:
        keras_layers.Conv2D.__call__ = original
    result["convs"] = seen
    _write_json(folder, "out_model.json", result)


def main(folder) -> int:
    folder = Path(folder)
    request = json.loads((folder / "request.json").read_text(encoding="utf-8"))
    path, shown_as = request["file"], request["shown_as"]
    sys.path.insert(0, str(Path(path).parent))  # the learner may import files beside theirs
    sys.argv = [path]
    try:
        spec = importlib.util.spec_from_file_location("learner", path)
        learner = importlib.util.module_from_spec(spec)
        sys.modules["learner"] = learner
        spec.loader.exec_module(learner)
    except BaseException as exc:  # noqa: BLE001 - a syntax error, or anything their module does at import
        text, line = learner_traceback(exc, path, shown_as)
        _write_json(folder, "import.json", {"exception": type(exc).__name__, "message": str(exc), "traceback": text,
                                            "line": line})
        return 0
    names = [name for name in vars(learner) if not name.startswith("_")]
    defined = {}
    for name in request["wanted"]:
        obj = getattr(learner, name, None)
        if obj is None or not callable(obj):
            near = difflib.get_close_matches(name, names, n=1, cutoff=0.7) or \
                [n for n in names if n.lower() == name.lower()]
            defined[name] = {"defined": False, "near": near[0] if near else None}
        else:
            defined[name] = {"defined": True, "signature": _signature_problem(name, obj)}
    _write_json(folder, "defined.json", {"names": defined, "module_names": names})
    inputs = dict(np.load(folder / "inputs.npz", allow_pickle=False))
    for call in request["calls"]:
        entry = defined.get(call["function"], {})
        if entry.get("defined") and not entry.get("signature"):
            _call(folder, learner, call, inputs, path, shown_as)
    model = request.get("model")
    entry = defined.get("MNISTModel", {})
    if model and entry.get("defined") and not entry.get("signature"):
        _check_model(folder, learner, model, path, shown_as)
    _write_json(folder, "done.json", {})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
