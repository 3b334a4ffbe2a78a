"""ONNX exports run by onnxruntime (the lesson's model and the grid, pinned versions, pads); imports of the graphs
convlayer and PyTorch's exporter write, and refusals of the graphs convlayer cannot hold."""

from __future__ import annotations

import re
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from convlayer.interop import InteropError, export_model, import_model
from convlayer.layers import Conv2D, Dense, Flatten
from convlayer.models import MNISTModel, Sequential
from convlayer.interop.onnx_file import IR_VERSION, OPSET
from interop_models import GRID, images, lesson_model, relative_error

TOLERANCE = 1e-5


def run(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def test_lesson_model_runs_in_onnxruntime(tmp_path):
    model = lesson_model()
    path = export_model(model, tmp_path / "lesson.onnx", meta={"dataset": "mnist"})
    x = images((28, 28, 1), n=8)
    assert relative_error(run(path, x), model.predict(x)) < TOLERANCE
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.ir_version == IR_VERSION and [(o.domain, o.version) for o in proto.opset_import] == [("", OPSET)]
    graph = proto.graph
    assert [i.name for i in graph.input] == ["input"] and [o.name for o in graph.output] == ["output"]
    dims = [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 28, 28, 1]
    ops = [node.op_type for node in graph.node]
    assert ops[0] == "Transpose" and graph.node[0].input == ["input"]  # NHWC in, one Transpose to NCHW
    assert ops.index("Flatten") == ops.index("Transpose", 1) + 1  # back to NHWC: convlayer's flatten order
    for node in graph.node:
        names = {a.name for a in node.attribute}
        assert "auto_pad" not in names
        if node.op_type in ("Conv", "MaxPool"):
            assert "pads" in names
    assert '"dataset": "mnist"' in {p.key: p.value for p in proto.metadata_props}["convlayer"]


@pytest.mark.parametrize("case", GRID, ids=lambda c: c.name)
def test_grid_runs_in_onnxruntime_or_is_refused(case, tmp_path):
    model = case.model()
    path = tmp_path / f"{case.name}.onnx"
    if ".onnx" not in case.formats:
        with pytest.raises(InteropError) as info:
            export_model(model, path)
        message = str(info.value)
        assert case.refusal in message and ".onnx" in message and "formats that hold it" in message
        assert not path.exists()
        return
    x = images(case.input_shape, n=3)
    export_model(model, path)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    assert relative_error(run(path, x), model.predict(x)) < TOLERANCE


def test_strided_same_keeps_the_extra_pixel_at_the_bottom_right(tmp_path):
    case = next(c for c in GRID if c.name == "even_kernel_strided_same")
    proto = onnx.load(export_model(case.model(), tmp_path / "m.onnx"))
    conv = next(node for node in proto.graph.node if node.op_type == "Conv")
    pads = next(list(a.ints) for a in conv.attribute if a.name == "pads")
    layer = case.model().layers[0]
    (top, bottom), (left, right) = layer.padding_amounts((1, *case.input_shape))
    assert pads == [top, left, bottom, right] and (bottom, right) != (top, left)


# ---------------------------------------------------------------------------- import


def test_lesson_onnx_imports_back_bit_identical(tmp_path):
    model = lesson_model()
    ck = import_model(export_model(model, tmp_path / "lesson.onnx", meta={"dataset": "mnist"}))
    assert type(ck.model).__name__ == "MNISTModel" and ck.meta["dataset"] == "mnist"
    for a, b in zip(model.get_weights(), ck.model.get_weights()):
        assert np.array_equal(a, b)
    again = import_model(export_model(ck.model, tmp_path / "again.onnx")).model
    for a, b in zip(model.get_weights(), again.get_weights()):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("case", [c for c in GRID if ".onnx" in c.formats], ids=lambda c: c.name)
def test_grid_graphs_import_from_the_graph_alone(case, tmp_path):
    model = case.model()
    path = export_model(model, tmp_path / "m.onnx")
    proto = onnx.load(path)
    del proto.metadata_props[:]  # no convlayer architecture: the graph alone must say it all
    onnx.save(proto, path)
    back = import_model(path).model
    x = images(case.input_shape, n=3)
    assert relative_error(back.predict(x), model.predict(x)) < TOLERANCE
    assert [w.shape for w in back.get_weights()] == [w.shape for w in model.get_weights()]


def test_import_of_a_graph_pytorch_exports(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1, stride=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(4, 6, 2, groups=2), torch.nn.SiLU(), torch.nn.AvgPool2d(1), torch.nn.Flatten(),
        torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Dropout(0.3), torch.nn.Linear(5, 3),
        torch.nn.Softmax(dim=1)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, 1, 9, 9),), tmp_path / "t.onnx", dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "n"}})
    ck = import_model(tmp_path / "t.onnx")
    assert [type(layer).__name__ for layer in ck.model.layers] == [
        "Conv2D", "MaxPooling2D", "Conv2D", "AveragePooling2D", "Flatten", "Dense", "Dense", "Activation"]
    assert ck.model.layers[0].data_format == "channels_first"  # the graph's NCHW input, taken as it is
    x = torch.rand(4, 1, 9, 9)
    with torch.no_grad():
        expected = net(x).numpy()
    assert relative_error(ck.model.predict(x.numpy()), expected) < TOLERANCE


def _graph(nodes, initializers, input_shape, output="y"):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, input_shape)],
                              [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
                              initializer=initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=7)


def _weight(name, shape):
    return numpy_helper.from_array(np.ones(shape, np.float32), name)


@pytest.mark.parametrize("nodes, initializers, message", [
    ([helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"])], [],
     "(BatchNormalization) is an operator convlayer does not import; supported: Transpose, Conv"),
    ([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Add", ["x", "r"], ["y"])], [],
     "appears where convlayer has no layer for it"),
    ([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Relu", ["x"], ["y"])], [],
     "takes ['x'] instead of the previous output 'r'; convlayer imports single-chain graphs only."),
    ([helper.make_node("Conv", ["x", "w"], ["y"], auto_pad="SAME_UPPER")], [_weight("w", (2, 1, 3, 3))],
     "uses auto_pad=b'SAME_UPPER'; convlayer reads explicit pads."),
    ([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], pads=[1, 0, 0, 0])], [],
     "pads [1, 0, 0, 0], which are neither 'valid' nor 'same' for a 6x6 input"),
    ([helper.make_node("Transpose", ["x"], ["y"], perm=[0, 1, 3, 2])], [], "permutes axes [0, 1, 3, 2]"),
    ([helper.make_node("Conv", ["x", "w"], ["y"])], [_weight("w", (2, 3, 3, 3))],
     "has a weight for 3 input channels but gets 1."),
    ([helper.make_node("Elu", ["x"], ["y"], alpha=0.5)], [], "has alpha=0.5; convlayer's elu has the defaults only."),
    ([helper.make_node("Relu", ["x"], ["r"])], [], "the graph's output 'y' is not the end of its chain."),
])
def test_graphs_convlayer_cannot_hold_are_refused(nodes, initializers, message, tmp_path):
    onnx.save(_graph(nodes, initializers, ["n", 1, 6, 6]), tmp_path / "g.onnx")
    with pytest.raises(InteropError, match=re.escape(message)):
        import_model(tmp_path / "g.onnx")


def test_external_data_is_never_opened(tmp_path):
    weight = _weight("w", (2, 1, 3, 3))
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    entry = weight.external_data.add()
    entry.key, entry.value = "location", "/etc/passwd"
    proto = _graph([helper.make_node("Conv", ["x", "w"], ["y"])], [weight], ["n", 1, 6, 6])
    (tmp_path / "g.onnx").write_bytes(proto.SerializeToString())
    with pytest.raises(InteropError, match="in an external file, which convlayer never opens"):
        import_model(tmp_path / "g.onnx")


# ---------------------------------------------------------------------------- what no export takes


def _built(layers, shape):
    model = Sequential(layers)
    model.build((None, *shape))
    return model


@pytest.mark.parametrize("model, path, message", [
    (lambda: Sequential([Dense(2)]), "m.onnx", "is not built, so its input shape is unknown; call model.build("),
    (lambda: "model", "m.onnx", "export expects a convlayer Sequential or MNISTModel, got str."),
    (lambda: MNISTModel(8, 10), "m.tflite", "m.tflite': the format comes from the file's suffix, which must be one "
                                            "of .keras, .onnx, .safetensors."),
    (lambda: _built([Conv2D(2, 3, data_format="channels_first"), Conv2D(2, 1)], (4, 6, 6)), "m.safetensors",
     "a mix of channels_last and channels_first layers cannot be written to .safetensors (PyTorch state_dict); "
     "formats that hold it: .keras, .onnx."),
    (lambda: _built([Conv2D(2, 3), Dense(3, name="on_maps")], (6, 6, 1)), "m.safetensors",
     "Dense 'on_maps': a Dense on 4-D image data cannot be written to .safetensors"),
    (lambda: _built([Conv2D(2, 3), Flatten()], (6, 6, 1)), "m.safetensors",
     "a Flatten of image data that feeds no Dense"),
])
def test_export_refusals(model, path, message, tmp_path):
    with pytest.raises(InteropError, match=re.escape(message)):
        export_model(model(), tmp_path / path)
    assert not (tmp_path / path).exists()


def test_meta_must_be_json(tmp_path):
    with pytest.raises(InteropError, match="meta must be a dict, got list."):
        export_model(MNISTModel(8, 10), tmp_path / "m.onnx", meta=[1])
    with pytest.raises(InteropError, match="meta must hold JSON values"):
        export_model(MNISTModel(8, 10), tmp_path / "m.onnx", meta={"x": object()})
