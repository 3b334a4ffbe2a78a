"""The web app's JSON API, in process (Starlette's TestClient over httpx): results and refusals."""

import base64
import io
import json
import socket
import types
import warnings

import numpy as np
import pytest

pytest.importorskip("starlette", reason="the web extra is not installed: pip install 'convlayer[web]'")
pytest.importorskip("multipart", reason="the web extra is not installed: pip install 'convlayer[web]'")
from PIL import Image, ImageDraw  # noqa: E402

with warnings.catch_warnings():  # Starlette 1.x nudges towards httpx2; httpx is what the test extra installs
    warnings.filterwarnings("ignore", message=".*httpx.*deprecated")
    from starlette.testclient import TestClient  # noqa: E402

from convlayer import checkpoint, cli  # noqa: E402
from convlayer.functional.losses import softmax  # noqa: E402
from convlayer.models import MNISTModel  # noqa: E402
from convlayer.viz.trace import trace_convolution  # noqa: E402
from convlayer.web import app as web_app  # noqa: E402
from convlayer.web import commands as web_commands  # noqa: E402
from convlayer.web.app import create_app  # noqa: E402

CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]


@pytest.fixture(scope="module")
def checkpoint_path(tmp_path_factory):
    """A tiny random-init MNISTModel(28, 10) checkpoint (the numbers, not the accuracy, are under test)."""
    path = tmp_path_factory.mktemp("web") / "tiny.npz"
    checkpoint.save(path, MNISTModel(28, 10, seed=3),
                    meta={"dataset": "fashion-mnist", "class_names": CLASS_NAMES, "input_dim": 28})
    return path


@pytest.fixture(scope="module")
def loaded(checkpoint_path):
    return checkpoint.load(checkpoint_path)


def fake_dataset(count=12, input_dim=28):
    rng = np.random.default_rng(0)
    x_test = rng.random((count, input_dim, input_dim), dtype=np.float32)  # (N, H, W) in [0, 1]
    return types.SimpleNamespace(x_test=x_test, y_test=np.arange(count, dtype=np.int64) % 10,
                                 class_names=tuple(CLASS_NAMES), input_dim=input_dim, num_classes=10)


class CountingLoader:
    def __init__(self, result=None, error=None):
        self.result, self.error, self.calls = result, error, []

    def __call__(self, name):
        self.calls.append(name)
        if self.error:
            raise self.error
        return self.result


@pytest.fixture(scope="module")
def loader():
    return CountingLoader(fake_dataset())


@pytest.fixture(scope="module")
def client(loaded, loader):
    return TestClient(create_app(loaded, dataset_loader=loader, max_body_bytes=256 * 1024))


def drawn_png(size=280, stroke=((140, 40), (140, 240)), width=22) -> bytes:
    """A black '1' on white paper, as the page's canvas sends it."""
    image = Image.new("L", (size, size), 255)
    ImageDraw.Draw(image).line(stroke, fill=0, width=width)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def png_of(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array, np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def forward(model, image):
    """Reference: conv1, conv2 outputs and probabilities from the library, for one (d, d) image."""
    x = model.prepare_input(image[None])  # (1, d, d, 1)
    outputs = {}
    for layer in model.layers:
        x = layer(x, training=False, keep_cache=False)
        outputs[layer.name] = x
    return outputs["conv1"][0], outputs["conv2"][0], softmax(model.predict(image[None]).astype(np.float64))[0]


def assert_views(body, model, image):
    """The shapes and numbers every predict/gallery answer carries."""
    conv1, conv2, probs = forward(model, image)
    assert np.array(body["input"]).shape == (28, 28)
    np.testing.assert_allclose(body["input"], image, atol=1e-4)
    assert [m["name"] for m in body["maps"]] == ["conv1", "conv2"]
    for fmap, expected in zip(body["maps"], (conv1, conv2)):
        assert fmap["shape"] == list(expected.shape)
        data = np.array(fmap["data"])  # (C, H, W)
        assert data.shape == (expected.shape[2], expected.shape[0], expected.shape[1])
        np.testing.assert_allclose(data, np.moveaxis(expected, -1, 0), atol=1e-4)
        np.testing.assert_allclose(fmap["channel_max"], expected.max(axis=(0, 1)), atol=1e-4)
    assert (conv1.shape, conv2.shape) == ((28, 28, 32), (14, 14, 64))
    top = body["top"]
    assert len(top) == 3
    values = [t["probability"] for t in top]
    assert values == sorted(values, reverse=True)
    assert 0 < sum(values) <= 1 + 1e-9
    assert [t["index"] for t in top] == list(np.argsort(-probs, kind="stable")[:3])
    assert [t["name"] for t in top] == [CLASS_NAMES[t["index"]] for t in top]
    np.testing.assert_allclose(body["probabilities"], probs, rtol=1e-6)
    assert sum(body["probabilities"]) == pytest.approx(1.0)


# ---------------------------------------------------------------------------- page and info


def test_page_and_its_files_are_served_from_the_package(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="pad"' in page.text and "/static/app.js" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for name, kind in (("app.js", "javascript"), ("style.css", "text/css")):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200 and kind in response.headers["content-type"]
    for path in web_app.STATIC_DIR.iterdir():  # nothing fetched from the internet at run time
        text = path.read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, path.name


def test_info_describes_model_dataset_and_limits(client):
    info = client.get("/api/info").json()
    assert info["dataset"] == "fashion-mnist" and info["class_names"] == CLASS_NAMES
    assert (info["input_dim"], info["num_classes"], info["conv_layers"]) == (28, 10, ["conv1", "conv2"])
    assert info["trace_limits"]["input_side"] == web_app.TRACE_LIMITS["input_side"]


# ---------------------------------------------------------------------------- predict


def test_predict_drawn_digit_returns_top3_input_and_feature_maps(client, loaded):
    png = drawn_png()
    response = client.post("/api/predict", files={"image": ("drawing.png", png, "image/png")})
    assert response.status_code == 200, response.text
    assert_views(response.json(), loaded.model, loaded.prepare_image(png).image)  # the same preprocessing as `convlayer predict`


def test_predict_accepts_json_base64_data_url_and_raw_png(client):
    png = drawn_png(stroke=((60, 60), (220, 220)))
    multipart = client.post("/api/predict", files={"image": ("d.png", png, "image/png")}).json()
    data_url = "data:image/png;base64," + base64.b64encode(png).decode()
    for response in (client.post("/api/predict", json={"image": data_url}),
                     client.post("/api/predict", json={"image": base64.b64encode(png).decode()}),
                     client.post("/api/predict", content=png, headers={"content-type": "image/png"})):
        assert response.status_code == 200, response.text
        assert response.json() == multipart


def test_predict_rgba_transparent_canvas_is_read_as_white_paper(client):
    rgba = np.zeros((100, 100, 4), np.uint8)  # fully transparent
    rgba[20:80, 45:55] = (0, 0, 0, 255)  # an opaque black bar
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, "PNG")
    response = client.post("/api/predict", files={"image": ("d.png", buffer.getvalue(), "image/png")})
    assert response.status_code == 200
    assert np.array(response.json()["input"]).max() > 0.5  # the ink is bright after MNIST-style inversion


@pytest.mark.parametrize("kwargs, status, words", [
    ({"content": b"not an image at all", "headers": {"content-type": "image/png"}}, 422, "not an image"),
    ({"files": {"image": ("x.png", b"GIF89a garbage", "image/png")}}, 422, "not an image"),
    ({"content": png_of(np.full((50, 50), 255)), "headers": {"content-type": "image/png"}}, 422, "blank"),
    ({"content": b"", "headers": {"content-type": "image/png"}}, 400, "empty"),
    ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
    ({"json": ["image"]}, 400, "must be an object"),
    ({"json": {"picture": "abc"}}, 400, '{"image"'),
    ({"json": {"image": "@@not base64@@"}}, 400, "base64"),
    ({"json": {"image": "data:image/png,rawtext"}}, 400, "base64"),
    ({"files": {"other": ("x.png", b"abc", "image/png")}}, 400, "'image'"),
    ({"data": {"image": "just text"}, "files": {"x": ("x", b"1", "text/plain")}}, 400, "'image'"),
    ({"content": b"--xyz\r\n", "headers": {"content-type": "multipart/form-data"}}, 400, "multipart"),
    ({"content": b"--xyz\r\ngarbage", "headers": {"content-type": "multipart/form-data; boundary=xyz"}}, 400,
     None),
    ({"content": b"hello", "headers": {"content-type": "text/plain"}}, 415, "Content-Type"),
    ({"content": png_of(np.zeros((1, 5000))), "headers": {"content-type": "image/png"}}, 413, "5000x1"),
])
def test_predict_refuses_bad_uploads_with_a_json_message(client, kwargs, status, words):
    response = client.post("/api/predict", **kwargs)
    assert response.status_code in ((400, 422) if words is None else (status,)), response.text
    message = response.json()["error"]
    assert words is None or words in message
    assert client.post("/api/predict", files={"image": ("d.png", drawn_png(), "image/png")}).status_code == 200


def test_oversized_bodies_get_413_declared_or_streamed(client):
    big = b"\0" * (300 * 1024)
    response = client.post("/api/predict", content=big, headers={"content-type": "image/png"})
    assert response.status_code == 413 and "limit" in response.json()["error"]

    def chunks():  # no Content-Length: the middleware counts the bytes as they arrive
        for _ in range(10):
            yield b"\0" * (64 * 1024)
    response = client.post("/api/predict", content=chunks(), headers={"content-type": "image/png"})
    assert response.status_code == 413
    response = client.post("/api/trace", content=b"[" * 300_000, headers={"content-type": "application/json"})
    assert response.status_code == 413
    response = client.post("/api/trace", content=b"{}", headers={"content-type": "application/json",
                                                                  "content-length": "abc"})
    assert response.status_code == 400


# ---------------------------------------------------------------------------- gallery


def test_gallery_by_index_and_by_seed_loads_the_dataset_once(client, loaded, loader):
    data = loader.result
    body = client.get("/api/gallery?index=5").json()
    assert (body["index"], body["label"], body["label_name"], body["count"]) == (5, 5, "Sandal", 12)
    assert_views(body, loaded.model, data.x_test[5])  # test images are already MNIST-style: no preprocessing
    expected = int(np.random.default_rng(7).integers(12))
    first, again = client.get("/api/gallery?seed=7").json(), client.get("/api/gallery?seed=7").json()
    assert first["index"] == again["index"] == expected and first["seed"] == 7
    assert loader.calls == ["fashion-mnist"]
    assert client.get("/api/info").json()["gallery"] == "ready"


@pytest.mark.parametrize("query, words", [
    ("", "index"), ("?index=12", "0..11"), ("?index=-1", "non-negative"), ("?index=abc", "non-negative"),
    ("?seed=1.5", "non-negative"), ("?index=99999999999999999999999", "non-negative"),
])
def test_gallery_bad_params_get_422(client, query, words):
    response = client.get(f"/api/gallery{query}")
    assert response.status_code == 422 and words in response.json()["error"]


def test_gallery_is_lazy_and_reports_an_unavailable_dataset_while_the_rest_works(loaded):
    from convlayer.datasets import DatasetError

    loader = CountingLoader(error=DatasetError("fashion-mnist files not found in /nowhere"))
    client = TestClient(create_app(loaded, dataset_loader=loader))
    assert loader.calls == []  # nothing loaded until the gallery is used
    for _ in range(2):
        response = client.get("/api/gallery?index=0")
        assert response.status_code == 503
        message = response.json()["error"]
        assert "fashion-mnist" in message and "not found in /nowhere" in message and "--data-dir" in message
    assert loader.calls == ["fashion-mnist"]  # the failure is remembered, not retried per click
    assert client.get("/api/info").json()["gallery"] == "unavailable"
    assert client.post("/api/predict", files={"image": ("d.png", drawn_png(), "image/png")}).status_code == 200
    assert client.post("/api/trace", json={"input": [[1, 2], [3, 4]], "kernel": [[1]]}).status_code == 200


def test_gallery_refuses_a_checkpoint_without_dataset_or_a_dataset_of_another_size(loaded):
    bare = checkpoint.Checkpoint(loaded.model, meta={"input_dim": 28})
    response = TestClient(create_app(bare, dataset_loader=CountingLoader(fake_dataset()))).get("/api/gallery?seed=0")
    assert response.status_code == 503 and "meta['dataset']" in response.json()["error"]
    small = CountingLoader(fake_dataset(input_dim=8))
    response = TestClient(create_app(loaded, dataset_loader=small)).get("/api/gallery?seed=0")
    assert response.status_code == 503 and "28x28" in response.json()["error"]


# ---------------------------------------------------------------------------- trace


TRACE_CASES = [
    dict(size=(5, 5), kernel=(3, 3), strides=1, padding="valid", dilation=1),
    dict(size=(5, 5), kernel=(3, 3), strides=1, padding="same", dilation=1),
    dict(size=(6, 6), kernel=(2, 2), strides=2, padding="same", dilation=1),  # even kernel: extra pad bottom/right
    dict(size=(7, 6), kernel=(3, 2), strides=[2, 1], padding="same", dilation=1),
    dict(size=(8, 8), kernel=(3, 3), strides=1, padding="valid", dilation=2),
    dict(size=(9, 7), kernel=(2, 3), strides=3, padding="same", dilation=[2, 1]),
    dict(size=(16, 16), kernel=(7, 7), strides=1, padding="same", dilation=1),
]


@pytest.mark.parametrize("case", TRACE_CASES, ids=lambda c: f"{c['size']}-{c['kernel']}-{c['padding']}")
def test_trace_endpoint_equals_trace_convolution(client, case):
    rng = np.random.default_rng(len(json.dumps(case)))
    x = rng.integers(0, 10, case["size"]).tolist()
    kernel = rng.integers(-2, 3, case["kernel"]).tolist()
    request = {"input": x, "kernel": kernel, "bias": 0.5, "strides": case["strides"], "padding": case["padding"],
               "dilation": case["dilation"]}
    response = client.post("/api/trace", json=request)
    assert response.status_code == 200, response.text
    expected = trace_convolution(x, kernel, 0.5, strides=case["strides"], padding=case["padding"],
                                 dilation=case["dilation"]).to_dict()
    assert response.json() == json.loads(json.dumps(expected))


def test_trace_endpoint_accepts_channels_and_padding_mode(client):
    x = np.arange(2 * 4 * 4).reshape(4, 4, 2).tolist()
    kernel = np.ones((2, 2, 2)).tolist()
    response = client.post("/api/trace", json={"input": x, "kernel": kernel, "padding": "same",
                                               "padding_mode": "reflect"})
    assert response.status_code == 200, response.text
    expected = trace_convolution(x, kernel, padding="same", padding_mode="reflect").to_dict()
    assert response.json() == json.loads(json.dumps(expected))


GOOD = {"input": [[1, 2, 3], [4, 5, 6], [7, 8, 9]], "kernel": [[1, 0], [0, 1]]}


@pytest.mark.parametrize("body, status, words", [
    (b"{oops", 400, "not valid JSON"),
    (b"\xff\xfe", 400, "not valid JSON"),
    (b"[" * 5000 + b"]" * 5000, 400, "not valid JSON"),
    (b"[1, 2]", 400, "JSON object"),
    (json.dumps({"kernel": [[1]]}).encode(), 422, "'input'"),
    (json.dumps({**GOOD, "stride": 2}).encode(), 422, "unknown trace fields ['stride']"),
    (json.dumps({**GOOD, "input": [[1, 2], [3]]}).encode(), 422, "rectangular"),
    (json.dumps({**GOOD, "input": [["1", "2"]]}).encode(), 422, "2-D list of numbers"),
    (json.dumps({**GOOD, "input": [[None]]}).encode(), 422, "2-D list of numbers"),
    (json.dumps({**GOOD, "input": [1, 2, 3]}).encode(), 422, "2-D list of numbers"),
    (json.dumps({**GOOD, "input": "C:/Windows/win.ini"}).encode(), 422, "2-D list of numbers"),
    (json.dumps({**GOOD, "input": [[]]}).encode(), 422, "a side"),
    (json.dumps({**GOOD, "input": np.zeros((17, 3)).tolist()}).encode(), 422, "1..16"),
    (json.dumps({**GOOD, "kernel": np.ones((8, 8)).tolist()}).encode(), 422, "1..7"),
    (json.dumps({**GOOD, "input": np.zeros((3, 3, 4)).tolist()}).encode(), 422, "channels"),
    (json.dumps({**GOOD, "input": [[1e300]]}).encode(), 422, "finite numbers"),
    (b'{"input": [[NaN]], "kernel": [[1]]}', 422, "finite numbers"),
    (json.dumps({**GOOD, "bias": "1"}).encode(), 422, "bias"),
    (json.dumps({**GOOD, "bias": True}).encode(), 422, "bias"),
    (json.dumps({**GOOD, "padding": "full"}).encode(), 422, "'valid' or 'same'"),
    (json.dumps({**GOOD, "padding": [[1, 1], [1, 1]]}).encode(), 422, "'valid' or 'same'"),
    (json.dumps({**GOOD, "padding_mode": "mirror"}).encode(), 422, "padding_mode"),
    (json.dumps({**GOOD, "strides": 0}).encode(), 422, "strides"),
    (json.dumps({**GOOD, "strides": True}).encode(), 422, "strides"),
    (json.dumps({**GOOD, "strides": [1, 2, 3]}).encode(), 422, "strides"),
    (json.dumps({**GOOD, "dilation": 1.5}).encode(), 422, "dilation"),
    (json.dumps({**GOOD, "dilation": 9}).encode(), 422, "dilation"),
    (json.dumps({**GOOD, "kernel": np.ones((5, 5)).tolist()}).encode(), 422, "does not fit"),  # library message
    (json.dumps({**GOOD, "kernel": np.ones((2, 2, 2)).tolist()}).encode(), 422, "one matrix per input channel"),
])
def test_trace_refuses_bad_requests_with_a_json_message(client, body, status, words):
    response = client.post("/api/trace", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert words in response.json()["error"]


def test_trace_needs_json_content_type(client):
    response = client.post("/api/trace", content=json.dumps(GOOD), headers={"content-type": "text/plain"})
    assert response.status_code == 415 and "application/json" in response.json()["error"]


# ---------------------------------------------------------------------------- routes and paths


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/nope", 404), ("GET", "/api/nope", 404), ("POST", "/api/info", 405), ("GET", "/api/predict", 405),
    ("GET", "/api/trace", 405), ("DELETE", "/", 405), ("GET", "/static/", 404), ("GET", "/static/missing.js", 404),
])
def test_unknown_routes_and_methods_answer_json(client, method, path, status):
    response = client.request(method, path)
    assert response.status_code == status and "error" in response.json()


@pytest.mark.parametrize("path", [
    "/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py", "/static/%2e%2e%2f%2e%2e%2fcheckpoint.py",
    "/static/..%5capp.py", "/static//etc/passwd", "/static/%2fetc%2fpasswd", "/static/....//app.py",
    "/static/app.js%00.py", "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/../../etc/passwd",
])
def test_static_path_traversal_does_not_escape_the_package_folder(client, path):
    response = client.get(path)
    assert response.status_code in (400, 404), (path, response.status_code)
    assert "create_app" not in response.text and "root:" not in response.text


# ---------------------------------------------------------------------------- create_app and the command


def test_create_app_from_path_and_its_argument_errors(checkpoint_path, tmp_path):
    client = TestClient(create_app(str(checkpoint_path), dataset_loader=CountingLoader(fake_dataset())))
    assert client.get("/api/info").json()["input_dim"] == 28
    with pytest.raises(checkpoint.CheckpointError, match="not found"):
        create_app(tmp_path / "missing.npz")
    with pytest.raises(TypeError, match="checkpoint path"):
        create_app(42)
    with pytest.raises(ValueError, match="max_body_bytes"):
        create_app(checkpoint_path, max_body_bytes=0)


def test_serve_command_defaults_to_localhost_and_starts_uvicorn(checkpoint_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kwargs: calls.append((app, kwargs)))
    args = cli.build_parser().parse_args(["serve", str(checkpoint_path), "--port", str(_free_port())])
    assert args.host == "127.0.0.1"
    assert cli.main(["serve", str(checkpoint_path), "--port", str(args.port)]) == 0
    (app, kwargs), = calls
    assert kwargs["host"] == "127.0.0.1" and kwargs["port"] == args.port
    out, err = capsys.readouterr()
    assert f"http://127.0.0.1:{args.port}/" in out and "warning" not in err
    assert TestClient(app).get("/api/info").status_code == 200


def test_serve_warns_when_binding_beyond_localhost(checkpoint_path, monkeypatch, capsys):
    monkeypatch.setattr("uvicorn.run", lambda app, **kwargs: None)
    assert cli.main(["serve", str(checkpoint_path), "--host", "0.0.0.0", "--port", str(_free_port())]) == 0
    assert "warning: listening on 0.0.0.0" in capsys.readouterr().err


def test_serve_user_errors_are_one_line(checkpoint_path, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("uvicorn.run", lambda app, **kwargs: pytest.fail("must not start"))
    assert cli.main(["serve", str(tmp_path / "missing.npz")]) == 1
    assert "not found" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert cli.main(["serve", str(checkpoint_path), "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and len(err.strip().splitlines()) == 1
    for bad in ("0", "70000", "http"):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["serve", str(checkpoint_path), "--port", bad])
        assert exit_info.value.code == 2
    assert web_commands.LOOPBACK_HOSTS[0] == "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unexpected_failure_is_a_json_500_and_the_server_keeps_serving(loaded, monkeypatch):
    app = create_app(loaded, dataset_loader=CountingLoader(fake_dataset()))
    client = TestClient(app, raise_server_exceptions=False)
    monkeypatch.setattr(app.state.service, "analyze", lambda image: 1 / 0)
    response = client.post("/api/predict", files={"image": ("d.png", drawn_png(), "image/png")})
    assert response.status_code == 500 and "ZeroDivisionError" in response.json()["error"]
    monkeypatch.undo()
    assert client.post("/api/predict", files={"image": ("d.png", drawn_png(), "image/png")}).status_code == 200
