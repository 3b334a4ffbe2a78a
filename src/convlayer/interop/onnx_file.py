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

import math
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


# ---------------------------------------------------------------------------- import

MAX_FILE_BYTES = 2 << 30  # protobuf's own limit for one message
ACTIVATION_OPS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Elu": "elu", "Selu": "selu",
                  "Softplus": "softplus", "Softsign": "softsign", "Exp": "exponential"}
SUPPORTED_OPS = ("Transpose", "Conv", "Pad", "MaxPool", "AveragePool", "Flatten", "Reshape", "Gemm", "MatMul", "Add",
                 "Dropout", "Identity", "Softmax", "Clip", "Mul", *ACTIVATION_OPS)


class _Reader:
    """The graph as a single chain: each node takes the previous one's output, the rest are constants."""

    def __init__(self, proto, source):
        from onnx import numpy_helper

        self.source, self.numpy_helper = source, numpy_helper
        self.graph = proto.graph
        self.opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
        self.constants = {t.name: t for t in self.graph.initializer}
        self.arrays: dict[str, np.ndarray] = {}
        for node in self.graph.node:
            if node.op_type == "Constant":
                value = next((a.t for a in node.attribute if a.name == "value"), None)
                if value is None or len(node.output) != 1:
                    raise InteropError(f"{source}: Constant node {node.name!r} has no tensor 'value'.")
                self.constants[node.output[0]] = value
        self.nodes = [n for n in self.graph.node if n.op_type != "Constant"]
        self.position = 0

    def fail(self, node, why: str) -> InteropError:
        return InteropError(f"{self.source}: node {node.name or node.op_type!r} ({node.op_type}) {why}")

    def array(self, name: str, node) -> np.ndarray:
        """An initializer or Constant as an array, its claimed size checked against the bytes it holds."""
        from onnx import TensorProto

        if name in self.arrays:
            return self.arrays[name]
        tensor = self.constants.get(name)
        if tensor is None:
            raise self.fail(node, f"takes {name!r}, which is neither the previous node's output nor a constant; "
                                  "convlayer imports single-chain graphs only.")
        if tensor.data_location == TensorProto.EXTERNAL or tensor.external_data:
            raise self.fail(node, f"keeps {name!r} in an external file, which convlayer never opens; save the "
                                  "model with its weights inside (onnx.save(..., save_as_external_data=False)).")
        if any(d < 0 for d in tensor.dims):
            raise self.fail(node, f"claims shape {list(tensor.dims)} for {name!r}.")
        count = math.prod(tensor.dims)
        sizes = {TensorProto.FLOAT: 4, TensorProto.DOUBLE: 8, TensorProto.FLOAT16: 2, TensorProto.INT64: 8,
                 TensorProto.INT32: 4}
        if tensor.data_type not in sizes:
            raise self.fail(node, f"stores {name!r} as ONNX type {tensor.data_type}, not float or int numbers.")
        held = len(tensor.raw_data) // sizes[tensor.data_type] if tensor.HasField("raw_data") else \
            max(len(tensor.float_data), len(tensor.double_data), len(tensor.int64_data), len(tensor.int32_data))
        if held != count:
            raise self.fail(node, f"claims shape {list(tensor.dims)} for {name!r} ({count:,} values) but holds "
                                  f"{held:,}.")
        array = self.numpy_helper.to_array(tensor)
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise self.fail(node, f"holds NaN or infinite values in {name!r}.")
        self.arrays[name] = array
        return array

    def attrs(self, node) -> dict:
        from onnx import helper

        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def scalar(self, name: str, node) -> float:
        value = self.array(name, node)
        if value.size != 1:
            raise self.fail(node, f"takes {name!r} of shape {value.shape} where one number belongs.")
        return float(value.reshape(-1)[0])

    def peek(self):
        return self.nodes[self.position] if self.position < len(self.nodes) else None


def _pool_padding(reader, node, pads, spatial, kernel, strides):
    from ..functional.shapes import same_padding

    (top, left, bottom, right) = pads
    if not any(pads):
        return "valid"
    same = [same_padding(s, k, st) for s, k, st in zip(spatial, kernel, strides)]
    if [(top, bottom), (left, right)] == same:
        return "same"
    raise reader.fail(node, f"pads {list(pads)}, which are neither 'valid' nor 'same' for a {spatial[0]}x{spatial[1]} "
                            "input; convlayer's pooling layers take only those two.")


def import_onnx(path):
    """A checkpoint from an ``.onnx`` graph that is a single chain of the operators convlayer exports.

    Graphs convlayer writes come back exactly (their architecture and meta travel in
    metadata_props); graphs from other exporters (``torch.onnx.export`` of an ``nn.Sequential``
    of Conv2d, pooling, Flatten, Linear and activations) become channels_first models that take
    the graph's input as it is.
    """
    import onnx

    from ..checkpoint import Checkpoint
    from .chain import parse_json, prefer_document

    path = Path(path)
    if not path.is_file():
        raise InteropError(f"{str(path)!r} not found; pass an .onnx file.")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise InteropError(f"{path} is over 2 GB, more than one ONNX file holds.")
    try:
        proto = onnx.load_model(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise InteropError(f"{path} is not a readable ONNX model ({type(exc).__name__}: "
                           f"{' '.join(str(exc).split())[:200]}).") from None
    try:
        model = _model_from_graph(_Reader(proto, path))
    except InteropError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError) as exc:
        raise InteropError(f"{path}: a graph convlayer cannot rebuild ({type(exc).__name__}: "
                           f"{' '.join(str(exc).split())[:200]}).") from None
    props = {p.key: p.value for p in proto.metadata_props}
    meta = {}
    if "convlayer" in props:
        document = parse_json(props["convlayer"], "the 'convlayer' metadata", path)
        model, meta = prefer_document(model, document, model.count_params(), path)
    return Checkpoint(model, meta={**meta, "imported_from": path.name})


def _model_from_graph(reader: _Reader):
    from ..layers import Activation, AveragePooling2D, Conv2D, Dense, Dropout, Flatten, MaxPooling2D, Reshape
    from ..layers.base import weight_budget
    from ..models import Sequential

    source, graph = reader.source, reader.graph
    inputs = [i for i in graph.input if i.name not in reader.constants]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise InteropError(f"{source} has {len(inputs)} inputs and {len(graph.output)} outputs; convlayer imports "
                           "graphs with one of each.")
    dims = inputs[0].type.tensor_type.shape.dim
    shape = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    if len(shape) < 2 or any(d is None or not 0 < d < 1 << 20 for d in shape[1:]):
        raise InteropError(f"{source}: input {inputs[0].name!r} has shape {shape}; convlayer needs every axis but the "
                           "batch fixed.")
    current, spatial_shape = inputs[0].name, tuple(shape)  # spatial_shape: the ONNX tensor's shape (batch first)
    nchw = False  # True while the ONNX tensor is NCHW but convlayer holds it NHWC
    layers, specs = [], []  # specs: (layer, {param: array})
    pending_pad = None
    flatten_moves_channels = False

    def take(node, n_outputs=1):
        if not node.input or node.input[0] != current:
            raise reader.fail(node, f"takes {list(node.input)[:1]} instead of the previous output {current!r}; "
                                    "convlayer imports single-chain graphs only.")
        if len([o for o in node.output if o]) > n_outputs and node.op_type not in ("Dropout",):
            raise reader.fail(node, "has several outputs.")
        return node.output[0]

    def activation_after() -> tuple[str | None, str]:
        """The element-wise activation that follows (fused into Conv2D/Dense) and the chain's output after it."""
        node = reader.peek()
        if node is None or not node.input or node.input[0] != current:
            return None, current
        after = reader.nodes[reader.position + 1] if reader.position + 1 < len(reader.nodes) else None
        if node.op_type == "Sigmoid" and after is not None and after.op_type == "Mul" and \
                sorted(after.input) == sorted([current, node.output[0]]):
            reader.position += 2  # x * sigmoid(x)
            return "silu", after.output[0]
        name = ACTIVATION_OPS.get(node.op_type)
        if name:
            _check_activation_attrs(reader, node)
        elif node.op_type == "Clip" and _clip_bounds(reader, node) == (0.0, 6.0):
            name = "relu6"
        if name is None:
            return None, current
        reader.position += 1
        return name, node.output[0]

    while reader.peek() is not None:
        node = reader.peek()
        reader.position += 1
        op = node.op_type
        if op not in SUPPORTED_OPS:
            raise reader.fail(node, f"is an operator convlayer does not import; supported: {', '.join(SUPPORTED_OPS)}.")
        a = reader.attrs(node)
        if op == "Transpose":
            perm = list(a.get("perm", []))
            following = reader.peek()
            if perm == TO_NCHW and not nchw and len(spatial_shape) == 4:
                nchw = True
            elif perm == TO_NHWC and nchw:
                nchw = False
            elif perm == TO_NHWC and following is not None and following.op_type == "Flatten":
                flatten_moves_channels = True  # convlayer's Flatten(data_format='channels_first')
            else:
                raise reader.fail(node, f"permutes axes {perm}, which no convlayer layer does.")
            current = take(node)
            spatial_shape = tuple(spatial_shape[i] for i in perm)
            continue
        if op in ("Identity", "Dropout"):
            if op == "Dropout":
                ratio = a.get("ratio", 0.5)
                if len(node.input) > 1 and node.input[1]:
                    ratio = reader.scalar(node.input[1], node)
                layers.append(Dropout(min(max(float(ratio), 0.0), 0.99)))
            current = take(node)
            continue
        if op == "Pad":
            mode = a.get("mode", b"constant")
            mode = mode.decode() if isinstance(mode, bytes) else mode
            pads = [int(v) for v in (reader.array(node.input[1], node) if len(node.input) > 1 else a.get("pads", []))]
            if len(node.input) > 2 and node.input[2] and reader.scalar(node.input[2], node) != 0:
                raise reader.fail(node, "pads with a constant other than 0.")
            if len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)) or min(pads) < 0:
                raise reader.fail(node, f"pads {pads}; convlayer pads only the two spatial axes, by >= 0.")
            padding_mode = {"constant": "zeros", "reflect": "reflect", "edge": "replicate"}.get(mode)
            if padding_mode is None or reader.peek() is None or reader.peek().op_type != "Conv":
                raise reader.fail(node, f"(mode {mode!r}) is not followed by a Conv; convlayer pads inside Conv2D.")
            pending_pad = (((pads[2], pads[6]), (pads[3], pads[7])), padding_mode)
            current = take(node)
            spatial_shape = (spatial_shape[0], *(s + pads[i] + pads[i + 4] for i, s in enumerate(spatial_shape)
                                                 if i))
            continue
        data_format = "channels_last" if nchw else "channels_first"
        if op == "Conv":
            if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID", "NOTSET", "VALID"):
                raise reader.fail(node, f"uses auto_pad={a['auto_pad']!r}; convlayer reads explicit pads.")
            if len(spatial_shape) != 4:
                raise reader.fail(node, f"gets a rank-{len(spatial_shape)} tensor; convlayer's Conv2D is 2-D.")
            weight = reader.array(node.input[1], node)
            if weight.ndim != 4:
                raise reader.fail(node, f"has a weight of shape {weight.shape}, not OIHW.")
            bias = reader.array(node.input[2], node) if len(node.input) > 2 and node.input[2] else None
            top, left, bottom, right = list(a.get("pads", [0, 0, 0, 0]))
            padding, mode = ((top, bottom), (left, right)), "zeros"
            in_hw = spatial_shape[2:]
            if pending_pad is not None:
                if any(padding[0] + padding[1]):
                    raise reader.fail(node, "pads again after a Pad node.")
                padding, mode = pending_pad
                in_hw = tuple(s - sum(p) for s, p in zip(in_hw, padding))
                pending_pad = None
            groups = int(a.get("group", 1))
            filters, channels = weight.shape[0], weight.shape[1] * groups
            if channels != spatial_shape[1]:
                raise reader.fail(node, f"has a weight for {channels} input channels but gets {spatial_shape[1]}.")
            output = take(node)
            current = output
            act, current = activation_after()
            with weight_budget(weight.size + (0 if bias is None else bias.size)):
                layer = Conv2D(filters, tuple(weight.shape[2:]), strides=tuple(a.get("strides", [1, 1])),
                               padding="valid" if not any(padding[0] + padding[1]) else padding, padding_mode=mode,
                               data_format=data_format, dilation_rate=tuple(a.get("dilations", [1, 1])),
                               groups=groups, activation=act, use_bias=bias is not None)
            layers.append(layer)
            specs.append((layer, {"kernel": weight.transpose(2, 3, 1, 0), "bias": bias}))
            out = _nchw_out(layer, (channels, *in_hw))
            spatial_shape = (spatial_shape[0], *out)
            continue
        if op in ("MaxPool", "AveragePool"):
            if len(spatial_shape) != 4:
                raise reader.fail(node, f"gets a rank-{len(spatial_shape)} tensor; convlayer pools 2-D images.")
            if a.get("ceil_mode", 0) or any(d != 1 for d in a.get("dilations", [1, 1])) or \
                    a.get("storage_order", 0) or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                raise reader.fail(node, "uses ceil_mode, dilations, storage_order or auto_pad, which convlayer's "
                                        "pooling does not have.")
            kernel, strides = tuple(a["kernel_shape"]), tuple(a.get("strides", [1, 1]))
            padding = _pool_padding(reader, node, list(a.get("pads", [0, 0, 0, 0])), spatial_shape[2:], kernel,
                                    strides)
            if op == "AveragePool" and padding == "same" and not a.get("count_include_pad", 0) == 0:
                raise reader.fail(node, "averages padding zeros (count_include_pad=1); convlayer averages real "
                                        "pixels only.")
            cls = MaxPooling2D if op == "MaxPool" else AveragePooling2D
            layer = cls(kernel, strides=strides, padding=padding, data_format=data_format)
            layers.append(layer)
            current = take(node)
            spatial_shape = (spatial_shape[0], *_nchw_out(layer, spatial_shape[1:]))
            continue
        if op in ACTIVATION_OPS or op == "Clip":
            name = ACTIVATION_OPS.get(op)
            if op == "Clip":
                if _clip_bounds(reader, node) != (0.0, 6.0):
                    raise reader.fail(node, "clips to bounds other than (0, 6) (relu6).")
                name = "relu6"
            else:
                _check_activation_attrs(reader, node)
            source_name, current = current, take(node)
            following = reader.peek()
            if op == "Sigmoid" and following is not None and following.op_type == "Mul" and \
                    sorted(following.input) == sorted([source_name, current]):
                reader.position += 1  # x * sigmoid(x): silu
                name, current = "silu", following.output[0]
            layers.append(Activation(name))
            continue
        if nchw:
            raise reader.fail(node, "works on NCHW data that convlayer holds as NHWC; transpose back first "
                                    "(Transpose perm [0, 2, 3, 1]).")
        if op == "Flatten":
            if a.get("axis", 1) != 1:
                raise reader.fail(node, f"flattens from axis {a.get('axis')}; convlayer's Flatten keeps axis 0.")
            layers.append(Flatten(data_format="channels_first" if flatten_moves_channels else None))
            flatten_moves_channels = False
            current = take(node)
            spatial_shape = (spatial_shape[0], math.prod(spatial_shape[1:]))
            continue
        if op == "Reshape":
            target = [int(v) for v in reader.array(node.input[1], node)]
            if len(target) < 2 or target[0] not in (0, -1) or any(v in (0,) or v < -1 for v in target[1:]) or \
                    (target[0] == -1 and -1 in target[1:]):
                raise reader.fail(node, f"reshapes to {target}; convlayer's Reshape keeps the batch axis first.")
            layer = Reshape(tuple(target[1:]))
            layers.append(layer)
            current = take(node)
            spatial_shape = (spatial_shape[0], *layer.compute_output_shape((1, *spatial_shape[1:]))[1:])
            continue
        if op in ("Gemm", "MatMul"):
            weight = reader.array(node.input[1], node)
            if op == "Gemm":
                if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
                    raise reader.fail(node, "uses transA, alpha or beta, which a Dense layer does not have.")
                kernel = weight.T if a.get("transB", 0) else weight
                bias = reader.array(node.input[2], node) if len(node.input) > 2 and node.input[2] else None
            else:
                kernel, bias = weight, None
            if kernel.ndim != 2 or kernel.shape[0] != spatial_shape[-1]:
                raise reader.fail(node, f"has a weight of shape {weight.shape} for inputs of shape "
                                        f"{list(spatial_shape)}.")
            current = take(node)
            following = reader.peek()
            if op == "MatMul" and following is not None and following.op_type == "Add" and following.input and \
                    following.input[0] == current:
                bias = reader.array(following.input[1], following)
                current = take(following)
                reader.position += 1
            if bias is not None:
                bias = bias.reshape(-1)
                if bias.shape != (kernel.shape[1],):
                    raise reader.fail(node, f"has a bias of {bias.size} values for {kernel.shape[1]} units.")
            act, current = activation_after()
            with weight_budget(kernel.size + (0 if bias is None else bias.size)):
                layer = Dense(kernel.shape[1], activation=act, use_bias=bias is not None)
            layers.append(layer)
            specs.append((layer, {"kernel": kernel, "bias": bias}))
            spatial_shape = (*spatial_shape[:-1], kernel.shape[1])
            continue
        if op == "Softmax":
            axis = a.get("axis", -1 if (reader.opset or 13) >= 13 else 1)
            if axis not in (-1, len(spatial_shape) - 1) or ((reader.opset or 13) < 13 and len(spatial_shape) != 2):
                raise reader.fail(node, f"takes the softmax over axis {axis}; convlayer's is over the last axis.")
            layers.append(Activation("softmax"))
            current = take(node)
            continue
        raise reader.fail(node, "appears where convlayer has no layer for it (Add after MatMul, Mul after Sigmoid).")
    if nchw:
        raise InteropError(f"{source}: the graph ends with NCHW data that convlayer would hold as NHWC; end it with "
                           "Transpose perm [0, 2, 3, 1] as convlayer's own exports do.")
    if current != graph.output[0].name:
        raise InteropError(f"{source}: the graph's output {graph.output[0].name!r} is not the end of its chain.")
    if pending_pad is not None:
        raise InteropError(f"{source}: the graph ends with a Pad.")
    if not layers:
        raise InteropError(f"{source} has no layers convlayer can build.")
    model = Sequential(layers, name=graph.name if graph.name.isidentifier() else "onnx_model")
    model.build((None, *shape[1:]))
    for layer, params in specs:
        for key, value in params.items():
            if value is None:
                continue
            target = layer.params[key]
            if value.shape != target.shape:
                raise InteropError(f"{source}: {layer.describe()} {key} has shape {value.shape}, the layer needs "
                                   f"{target.shape}.")
            target[...] = value
    return model


def _nchw_out(layer, chw) -> tuple:
    """(C, H, W) after ``layer`` for an NCHW (C, H, W) sample, whatever layout the layer takes."""
    channels, rows, cols = chw
    if layer.data_format == "channels_first":
        return tuple(layer.compute_output_shape((1, channels, rows, cols))[1:])
    _, rows, cols, channels = layer.compute_output_shape((1, rows, cols, channels))
    return channels, rows, cols


def _check_activation_attrs(reader, node) -> None:
    a = reader.attrs(node)
    expected = {"Elu": {"alpha": 1.0}, "Selu": {"alpha": 1.67326319217681884765625,
                                                  "gamma": 1.05070102214813232421875}}.get(node.op_type, {})
    for key, value in a.items():
        if key not in expected or not math.isclose(value, expected[key], rel_tol=1e-6):
            raise reader.fail(node, f"has {key}={value}; convlayer's {node.op_type.lower()} has the defaults only.")


def _clip_bounds(reader, node):
    a = reader.attrs(node)
    low = a.get("min", -math.inf) if len(node.input) < 2 or not node.input[1] else reader.scalar(node.input[1], node)
    high = a.get("max", math.inf) if len(node.input) < 3 or not node.input[2] else reader.scalar(node.input[2], node)
    return float(low), float(high)
