"""ONNX exports run by onnxruntime: the lesson's model and the grid, the graph's pinned versions and pads."""

from __future__ import annotations

import onnx
import onnxruntime as ort
import pytest

from convlayer.interop import InteropError, export_model
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
