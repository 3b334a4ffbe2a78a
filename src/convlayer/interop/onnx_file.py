"""ONNX: a graph built with the ``onnx`` package (opset 13, pinned IR version) that predicts what convlayer does.

The input is named ``input`` and laid out as convlayer takes it (N, H, W, C) for channels_last
models; one Transpose turns it into the NCHW that ONNX's Conv and pooling take, and the data is
transposed back before anything whose result depends on the layout (Flatten, Reshape, Dense,
softmax), so the features are flattened in convlayer's (H, W, C) order. Padding is always
explicit ``pads``, from the amounts ``convlayer.functional.shapes`` computes (never ``auto_pad``),
so a strided 'same' keeps its extra pixel at the bottom/right; reflect and replicate padding
are a Pad node. Weights are stored as float32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .chain import InteropError, Step, model_document, refusal, walk

SUFFIX = ".onnx"
OPSET = 13
IR_VERSION = 7  # the IR version of opset 13 (onnx 1.8); every runtime that runs opset 13 reads it
ONNX_PAD_MODES = {"reflect": "reflect", "replicate": "edge"}
TO_NCHW, TO_NHWC = [0, 3, 1, 2], [0, 2, 3, 1]


class _Graph:
    """Nodes and initializers with fresh names, and the layout of the current tensor."""

    def __init__(self, helper, numpy_helper):
        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.initializers = [], []
        self.count = 0
        self.current = "input"
        self.nchw = False  # True while the tensor is NCHW but convlayer holds it NHWC

    def name(self, base: str) -> str:
        self.count += 1
        return f"{base}_{self.count}"

    def constant(self, base: str, value) -> str:
        name = self.name(base)
        self.initializers.append(self.numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs, base: str, **attrs) -> str:
        output = self.name(base)
        self.nodes.append(self.helper.make_node(op, [self.current, *inputs], [output], name=output, **attrs))
        self.current = output
        return output

    def layout(self, nchw: bool) -> None:
        """Transpose the current tensor so that it is NCHW (True) or as convlayer holds it (False)."""
        if nchw != self.nchw:
            self.node("Transpose", [], "to_nchw" if nchw else "to_nhwc", perm=TO_NCHW if nchw else TO_NHWC)
            self.nchw = nchw


def _activation(graph: _Graph, step: Step, name: str | None) -> None:
    if name in (None, "linear"):
        return
    base = f"{step.layer.name}_{name}"
    simple = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "elu": "Elu", "selu": "Selu",
              "softplus": "Softplus", "softsign": "Softsign", "exponential": "Exp"}
    if name in simple:
        graph.node(simple[name], [], base)
    elif name == "softmax":
        graph.layout(False)  # over convlayer's last axis
        graph.node("Softmax", [], base, axis=-1)
    elif name == "silu":
        x = graph.current
        graph.node("Sigmoid", [], base)
        sig = graph.current
        graph.current = x
        graph.node("Mul", [sig], base)
    elif name == "relu6":
        graph.node("Clip", [graph.constant("zero", np.float32(0)), graph.constant("six", np.float32(6))], base)
    else:
        raise refusal(step, f"activation '{name}'", ".onnx", [".keras"])


def _pads(step: Step) -> list[int]:
    (top, bottom), (left, right) = step.pads
    return [top, left, bottom, right]  # ONNX: all begins, then all ends


def _add(graph: _Graph, step: Step) -> None:
    layer, kind = step.layer, step.kind
    if kind in ("Conv2D", "MaxPooling2D", "AveragePooling2D"):
        graph.layout(layer.data_format == "channels_last")
    if kind == "Conv2D":
        pads = _pads(step)
        if layer.padding_mode != "zeros" and any(pads):
            if layer.padding_mode not in ONNX_PAD_MODES:
                raise refusal(step, f"padding_mode='{layer.padding_mode}' (no ONNX opset {OPSET} Pad mode)", ".onnx",
                              [".safetensors"])
            top, left, bottom, right = pads
            amounts = np.array([0, 0, top, left, 0, 0, bottom, right], np.int64)  # (N, C, H, W) begins, ends
            graph.node("Pad", [graph.constant("pads", amounts)], f"{layer.name}_pad",
                       mode=ONNX_PAD_MODES[layer.padding_mode])
            pads = [0, 0, 0, 0]
        kernel = np.ascontiguousarray(layer.params["kernel"].transpose(3, 2, 0, 1), np.float32)  # HWIO -> OIHW
        inputs = [graph.constant(f"{layer.name}_kernel", kernel)]
        if layer.use_bias:
            inputs.append(graph.constant(f"{layer.name}_bias", layer.params["bias"].astype(np.float32)))
        graph.node("Conv", inputs, layer.name, kernel_shape=list(layer.kernel_size), strides=list(layer.strides),
                   dilations=list(layer.dilation_rate), group=layer.groups, pads=pads)
        _activation(graph, step, step.activation)
    elif kind == "MaxPooling2D":  # padded cells never win: ONNX pads max pooling with -inf
        graph.node("MaxPool", [], layer.name, kernel_shape=list(layer.pool_size), strides=list(layer.strides),
                   pads=_pads(step))
    elif kind == "AveragePooling2D":  # 'same' averages real pixels only, as Keras
        graph.node("AveragePool", [], layer.name, kernel_shape=list(layer.pool_size), strides=list(layer.strides),
                   pads=_pads(step), count_include_pad=0)
    elif kind == "Flatten":
        graph.layout(False)
        if layer.data_format == "channels_first" and len(step.input_shape) > 2:
            rank = len(step.input_shape)
            graph.node("Transpose", [], f"{layer.name}_channels_last", perm=[0, *range(2, rank), 1])
        graph.node("Flatten", [], layer.name, axis=1)
    elif kind == "Reshape":
        graph.layout(False)
        shape = np.array([0, *layer.target_shape], np.int64)  # 0 keeps the batch size
        graph.node("Reshape", [graph.constant(f"{layer.name}_shape", shape)], layer.name)
    elif kind == "Dense":
        graph.layout(False)
        kernel = graph.constant(f"{layer.name}_kernel", layer.params["kernel"].astype(np.float32))  # (in, out)
        bias = [graph.constant(f"{layer.name}_bias", layer.params["bias"].astype(np.float32))] if layer.use_bias \
            else []
        if len(step.input_shape) == 2:
            graph.node("Gemm", [kernel, *bias], layer.name)
        else:
            graph.node("MatMul", [kernel], layer.name)
            if bias:
                graph.node("Add", bias, f"{layer.name}_bias_add")
        _activation(graph, step, step.activation)
    elif kind == "Activation":
        _activation(graph, step, step.activation)
    # Dropout: the identity at inference


def build_onnx(model, meta=None):
    """The ``onnx.ModelProto`` of ``model``, checked with ``onnx.checker.check_model(full_check=True)``."""
    import json

    import onnx
    from onnx import TensorProto, helper, numpy_helper

    steps = walk(model)
    graph = _Graph(helper, numpy_helper)
    for step in steps:
        _add(graph, step)
    graph.layout(False)
    graph.nodes.append(helper.make_node("Identity", [graph.current], ["output"], name="output"))
    dims = lambda shape: ["batch", *shape[1:]]  # noqa: E731
    proto = helper.make_model(
        helper.make_graph(graph.nodes, model.name,
                          [helper.make_tensor_value_info("input", TensorProto.FLOAT, dims(steps[0].input_shape))],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, dims(steps[-1].output_shape))],
                          initializer=graph.initializers),
        opset_imports=[helper.make_opsetid("", OPSET)], producer_name="convlayer", ir_version=IR_VERSION)
    helper.set_model_props(proto, {"convlayer": json.dumps(model_document(model, meta))})
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:  # a bug in this exporter, not a user mistake
        raise InteropError(f"the ONNX graph for {model.name} fails onnx.checker: {str(exc).splitlines()[0]}") from None
    return proto


def export_onnx(model, path, meta=None) -> Path:
    """Write ``model`` as an ``.onnx`` file that onnxruntime runs on (N, H, W, C) float32 input."""
    from ..fileio import atomic_write_bytes

    data = build_onnx(model, meta).SerializeToString()
    atomic_write_bytes(path, lambda f: f.write(data))
    return Path(path)
