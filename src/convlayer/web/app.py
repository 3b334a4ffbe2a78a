"""The ``convlayer serve`` web app: draw a digit, browse test images, step a convolution.

Routes (everything but the page and its files answers JSON; errors are ``{"error": message}``):

- ``GET /``: the page, ``static/index.html`` from this package.
- ``GET /static/<file>``: the page's JS and CSS, served only from this package's folder.
- ``GET /api/info``: the model, its dataset and the limits the page must respect.
- ``POST /api/predict``: a PNG/JPEG (multipart field ``image``, a raw ``image/*`` body, or JSON
  ``{"image": base64 or data URL}``) -> top 3 classes, the network input, conv feature maps.
- ``GET /api/gallery?index=I`` or ``?seed=S``: the same views for one test image of the
  checkpoint's dataset (loaded on first use; 503 with the reason when it cannot be loaded).
- ``POST /api/trace``: ``{"input", "kernel", "bias", "strides", "padding", "dilation"}`` ->
  ``viz.trace.trace_convolution(...).to_dict()``, the same trace as ``convlayer explain``.
- ``POST /api/predict-cell``: the trace fields plus ``"cell": [row, col]`` and ``"value"`` (the
  learner's guess) -> ``web.predict.judge``: right or not, the expected value, the terms and the
  classic mistakes (``learn.mistakes``) that give that number.
- ``GET /api/cards?layer=L`` (the Filters tab): every filter's kernel, top test patches and class
  means (``web.filters``, ``convlayer show cards``); ``&filter=F``: one card with the patches' pixels
  and an optimized input.
- With ``serve --train`` (``web.train``): ``POST /api/train/start`` (settings), ``/api/train/control``
  (pause, resume, stop, learning_rate), ``/api/train/fork`` (a run's epoch, a new learning rate);
  ``GET /api/train/state``; ``GET /api/train/events?run=R&since=N``: Server-Sent Events.

Nothing in a request names a file: the checkpoint comes from the command line, the
static folder is fixed, and ``StaticFiles`` refuses paths that leave it.
"""

from __future__ import annotations

import base64
import contextlib
import binascii
import io
import json
import threading
from pathlib import Path

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import checkpoint as checkpoint_mod
from ..preprocess import ImageError, check_mode
from ..layers import Conv2D
from ..viz.cards import CardsError
from ..viz.figures import feature_maps, top_indices
from .filters import FilterCards
from .predict import judge
from ..viz.trace import trace_convolution

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_BODY_BYTES = 2 * 1024 * 1024  # a 280x280 canvas PNG is ~10 KB; 2 MB leaves room for photos
MAX_IMAGE_SIDE = 4096  # checked from the header, before Pillow decodes a decompression bomb
TOP_K = 3
# The convolution panel explains small cases; these bounds keep one trace under ~1 MB of JSON.
TRACE_LIMITS = {"input_side": 16, "kernel_side": 7, "channels": 3, "stride": 8, "dilation": 8,
                "magnitude": 1e6}
_GUESS_LIMIT = 1e15  # a predicted cell value; far beyond any cell within TRACE_LIMITS (1e6 * 1e6 * 7 * 7 * 3)
_DECIMALS = 4  # feature maps and inputs are sent rounded: plenty for drawing, a third of the bytes

_SECURITY_HEADERS = [
    # The page loads nothing from elsewhere; say so to the browser as well.
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
                                 b"script-src 'self'; connect-src 'self'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class RequestError(Exception):
    """A bad request: answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class _BodyTooLarge(Exception):
    pass


class _LimitsMiddleware:
    """Answer 413 for bodies over ``max_body_bytes`` (declared or streamed) and add security headers."""

    def __init__(self, app, max_body_bytes: int):
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = _error_response(413, f"request body too large: the limit is {self.max_body_bytes} bytes.")
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await _error_response(400, "invalid Content-Length header.")(scope, receive, send)
                return
            if length > self.max_body_bytes:
                await too_large(scope, receive, send)
                return
        received = 0
        started = False

        async def counting_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:  # chunked uploads carry no Content-Length
                    raise _BodyTooLarge
            return message

        async def send_with_headers(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", []), *_SECURITY_HEADERS]}
            await send(message)

        try:
            await self.app(scope, counting_receive, send_with_headers)
        except _BodyTooLarge:
            if started:
                raise
            await too_large(scope, receive, send_with_headers)


def _error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _rounded(array: np.ndarray) -> list:
    # float64 first: float32 values would print as 0.12340000271797180 in JSON.
    return np.round(np.asarray(array, dtype=np.float64), _DECIMALS).tolist()


class _Service:
    """The loaded model and (lazily) its dataset; the work behind each endpoint."""

    def __init__(self, ck: checkpoint_mod.Checkpoint, dataset_loader, preprocess: str = "auto"):
        self.ck = ck
        self.preprocess = check_mode(preprocess)
        self.model = ck.model
        self.meta = dict(ck.meta or {})
        input_dim = ck.input_dim
        if not isinstance(input_dim, int) or input_dim < 1:
            raise ValueError("create_app: the checkpoint gives no input size (model.input_dim or meta['input_dim']); "
                             "save it with meta={'input_dim': ...}.")
        self.input_dim = input_dim
        self.num_classes = ck.num_classes
        self.class_names = (ck.class_names(self.num_classes) if self.num_classes else
                            [str(n) for n in self.meta.get("class_names") or []])
        self.conv_layers = [layer.name for layer in self.model.layers if isinstance(layer, Conv2D)]
        self.dataset_name = self.meta.get("dataset")
        self._dataset_loader = dataset_loader
        self._dataset = None
        self._dataset_error = None
        self._dataset_lock = threading.Lock()
        self._model_lock = threading.Lock()  # layers record their last output shape: one forward at a time

    def info(self) -> dict:
        return {
            "dataset": self.dataset_name, "class_names": self.class_names, "input_dim": self.input_dim,
            "num_classes": self.num_classes, "conv_layers": self.conv_layers,
            "layers": [layer.name for layer in self.model.layers],
            "gallery": ("ready" if self._dataset is not None else
                        "unavailable" if self._dataset_error else "not loaded yet"),
            "gallery_error": self._dataset_error, "trace_limits": TRACE_LIMITS, "top_k": TOP_K,
            "preprocess": {"mode": self.preprocess, "style": self.ck.preprocess_style},
        }

    def analyze(self, image: np.ndarray) -> dict:
        """(d, d) network input -> top classes, probabilities and every Conv2D's output."""
        with self._model_lock:
            outputs, probs = feature_maps(self.model, image, self.conv_layers)
        maps = [(name, outputs[name]) for name in self.conv_layers]  # (H, W, C) after the activation
        top = top_indices(probs, TOP_K)
        return {
            "top": [{"index": int(i), "name": self._name(i), "probability": float(probs[i])} for i in top],
            "probabilities": [float(p) for p in probs],
            "input": _rounded(image),
            "maps": [{"name": name, "shape": list(fmap.shape),
                      "channel_max": _rounded(fmap.max(axis=(0, 1))),
                      "data": _rounded(np.moveaxis(fmap, -1, 0))}  # (C, H, W): one grid cell per channel
                     for name, fmap in maps],
        }

    def _name(self, index) -> str:
        return self.class_names[index] if index < len(self.class_names) else str(index)

    def predict_bytes(self, data: bytes) -> dict:
        _check_image_header(data)
        try:
            prepared = self.ck.prepare_image(data, self.preprocess)  # the same as `convlayer predict`
        except ImageError as exc:
            raise RequestError(422, str(exc)) from None
        return {**self.analyze(prepared.image), "preprocess": prepared.method, "note": prepared.note}

    def dataset(self):
        with self._dataset_lock:
            if self._dataset is None and self._dataset_error is None:
                self._dataset, self._dataset_error = self._load_dataset()
        if self._dataset is None:
            raise RequestError(503, self._dataset_error)
        return self._dataset

    def _load_dataset(self):
        if not self.dataset_name:
            return None, ("gallery unavailable: the checkpoint does not say which dataset it was trained on "
                          "(meta['dataset']). Drawing and the convolution panel still work.")
        try:
            data = self._dataset_loader(self.dataset_name)
        except Exception as exc:  # a missing dataset must not take the page down; report why instead
            message = " ".join(str(exc).split()) or type(exc).__name__
            return None, (f"gallery unavailable: the {self.dataset_name!r} dataset could not be loaded ({message}). "
                          "Restart with --data-dir FOLDER holding its IDX files. Drawing and the convolution "
                          "panel still work.")
        shape = tuple(np.shape(data.x_test))
        if len(shape) != 3 or shape[1:] != (self.input_dim, self.input_dim):
            return None, (f"gallery unavailable: the model takes {self.input_dim}x{self.input_dim} images but the "
                          f"{self.dataset_name!r} test images have shape {shape}.")
        return data, None

    def gallery(self, index, seed) -> dict:
        data = self.dataset()
        count = len(data.x_test)
        if count == 0:
            raise RequestError(503, f"gallery unavailable: the {self.dataset_name!r} test set is empty.")
        if index is None:
            index = int(np.random.default_rng(seed).integers(count))
        elif not 0 <= index < count:
            raise RequestError(422, f"index must be in 0..{count - 1} (the {self.dataset_name!r} test set has "
                                    f"{count} images), got {index}.")
        label = int(data.y_test[index])
        names = list(getattr(data, "class_names", None) or self.class_names)
        result = self.analyze(np.asarray(data.x_test[index], dtype=np.float32))
        result.update({"index": index, "seed": seed, "count": count, "dataset": self.dataset_name,
                       "label": label, "label_name": str(names[label]) if label < len(names) else str(label)})
        return result


def _check_image_header(data: bytes) -> None:
    """Refuse non-images, and images whose header promises more pixels than a drawing needs, before decoding."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Exception as exc:  # Pillow raises many types for garbage
        raise RequestError(422, f"the upload is not an image Pillow can read ({type(exc).__name__}); send a PNG "
                                "or JPEG.") from None
    if max(width, height) > MAX_IMAGE_SIDE:
        raise RequestError(413, f"image is {width}x{height} pixels; the limit is {MAX_IMAGE_SIDE} a side.")


# ---------------------------------------------------------------------------- request parsing


def _json_body(raw: bytes):
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise RequestError(400, f"the request body is not valid JSON ({exc}).") from None


def _decode_base64_image(value) -> bytes:
    if not isinstance(value, str) or not value:
        raise RequestError(400, 'JSON bodies must look like {"image": "<base64 PNG or data: URL>"}.')
    if value.startswith("data:"):
        head, _, value = value.partition(",")
        if ";base64" not in head:
            raise RequestError(400, "the data: URL must be base64-encoded (data:image/png;base64,...).")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(400, "the image field is not valid base64.") from None


async def _image_bytes(request: Request, max_body_bytes: int) -> bytes:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        try:
            async with request.form(max_files=1, max_fields=4, max_part_size=max_body_bytes) as form:
                upload = form.get("image")
                if upload is None or isinstance(upload, str):
                    raise RequestError(400, "the multipart form needs a file field named 'image'.")
                return await upload.read()
        except HTTPException as exc:  # python-multipart parse errors
            raise RequestError(400, f"malformed multipart body ({exc.detail}).") from None
        except (KeyError, ValueError) as exc:  # e.g. no boundary in the Content-Type header
            raise RequestError(400, f"malformed multipart body ({type(exc).__name__}: {exc}).") from None
    body = await request.body()
    if content_type == "application/json":
        document = _json_body(body)
        if not isinstance(document, dict):
            raise RequestError(400, 'JSON bodies must be an object: {"image": "<base64 PNG or data: URL>"}.')
        return _decode_base64_image(document.get("image"))
    if content_type.startswith("image/") or content_type == "application/octet-stream":
        return body
    raise RequestError(415, f"unsupported Content-Type {content_type or '(none)'!r}: send multipart/form-data "
                            "with an 'image' file, an image/png body, or JSON {\"image\": base64}.")


def _query_int(request: Request, name: str):
    text = request.query_params.get(name)
    if text is None or text == "":
        return None
    try:
        value = int(text)
    except ValueError:
        raise RequestError(422, f"{name} must be a non-negative integer, got {text!r}.") from None
    if value < 0 or value >= 2**63:
        raise RequestError(422, f"{name} must be a non-negative integer, got {text!r}.")
    return value


def _number_array(value, name: str, max_side: int) -> np.ndarray:
    """A rectangular (H, W) or (H, W, C) list of numbers within the panel's limits."""
    try:
        array = np.asarray(value)
    except ValueError:  # ragged nested lists
        raise RequestError(422, f"{name} must be a rectangular list of lists of numbers.") from None
    if array.dtype.kind not in "iuf" or array.ndim not in (2, 3):
        raise RequestError(422, f"{name} must be a 2-D list of numbers (rows of columns), or 3-D with channels "
                                f"last; got {json.dumps(value)[:80]}.")
    if array.ndim == 3 and not 1 <= array.shape[2] <= TRACE_LIMITS["channels"]:
        raise RequestError(422, f"{name} may have 1..{TRACE_LIMITS['channels']} channels, got {array.shape[2]}.")
    if not (1 <= min(array.shape[:2]) and max(array.shape[:2]) <= max_side):
        raise RequestError(422, f"{name} must be 1..{max_side} numbers a side here, got {array.shape[:2]}.")
    array = array.astype(np.float64)
    if not np.isfinite(array).all() or np.abs(array).max() > TRACE_LIMITS["magnitude"]:
        raise RequestError(422, f"{name} must hold finite numbers of at most {TRACE_LIMITS['magnitude']:g} in size.")
    return array


def _small_pair(value, name: str, largest: int):
    values = value if isinstance(value, list) else [value, value]
    if len(values) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in values) or \
            not all(1 <= v <= largest for v in values):
        raise RequestError(422, f"{name} must be an integer in 1..{largest} or a pair of them, got {value!r}.")
    return tuple(values)


_TRACE_FIELDS = ("input", "kernel", "bias", "strides", "padding", "dilation", "padding_mode")


def _trace_arguments(document, what: str = "trace", extra: tuple = ()) -> dict:
    """The keyword arguments of ``trace_convolution`` from a JSON request, checked against the panel's limits."""
    if not isinstance(document, dict):
        raise RequestError(400, f"the {what} request must be a JSON object with input, kernel, strides, padding, "
                                f"dilation{''.join(', ' + name for name in extra)}.")
    unknown = sorted(set(document) - set(_TRACE_FIELDS) - set(extra))
    if unknown:
        raise RequestError(422, f"unknown {what} fields {unknown}; expected {', '.join(_TRACE_FIELDS + extra)}.")
    for field in ("input", "kernel"):
        if field not in document:
            raise RequestError(422, f"the {what} request needs {field!r} (a list of rows of numbers).")
    x = _number_array(document["input"], "input", TRACE_LIMITS["input_side"])
    kernel = _number_array(document["kernel"], "kernel", TRACE_LIMITS["kernel_side"])
    bias = document.get("bias", 0.0)
    if isinstance(bias, bool) or not isinstance(bias, (int, float)) or not abs(bias) <= TRACE_LIMITS["magnitude"]:
        raise RequestError(422, f"bias must be a number of at most {TRACE_LIMITS['magnitude']:g} in size, "
                                f"got {bias!r}.")
    padding = document.get("padding", "valid")
    if padding not in ("valid", "same"):
        raise RequestError(422, f"padding must be 'valid' or 'same', got {padding!r}.")
    padding_mode = document.get("padding_mode", "zeros")
    if not isinstance(padding_mode, str):
        raise RequestError(422, f"padding_mode must be a string, got {padding_mode!r}.")
    strides = _small_pair(document.get("strides", 1), "strides", TRACE_LIMITS["stride"])
    dilation = _small_pair(document.get("dilation", 1), "dilation", TRACE_LIMITS["dilation"])
    return {"x": x, "kernel": kernel, "bias": float(bias), "strides": strides, "padding": padding,
            "dilation": dilation, "padding_mode": padding_mode}


def _traced(arguments: dict):
    try:
        return trace_convolution(**arguments)
    except (ValueError, TypeError) as exc:  # the library's own message: kernel too big, channel mismatch, ...
        raise RequestError(422, str(exc)) from None


def _trace(document) -> dict:
    return _traced(_trace_arguments(document)).to_dict()


def _predict_cell(document) -> dict:
    """``{trace fields, "cell": [row, col], "value": number}`` -> ``web.predict.judge``'s verdict."""
    arguments = _trace_arguments(document, "predict-cell", ("cell", "value"))
    for field in ("cell", "value"):
        if field not in document:
            raise RequestError(422, f"the predict-cell request needs {field!r}: the output cell [row, column] and "
                                    "the number typed for it.")
    value = document["value"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not abs(value) <= _GUESS_LIMIT:
        raise RequestError(422, f"value must be a finite number (the one predicted for the cell) of at most "
                                f"{_GUESS_LIMIT:g} in size, got {json.dumps(value)[:40]}.")
    trace = _traced(arguments)
    rows, cols = trace.output.shape
    cell = document["cell"]
    if not (isinstance(cell, list) and len(cell) == 2 and
            all(isinstance(v, int) and not isinstance(v, bool) for v in cell) and
            0 <= cell[0] < rows and 0 <= cell[1] < cols):
        raise RequestError(422, f"cell must be [row, column] inside the {rows}x{cols} output (row 0..{rows - 1}, "
                                f"column 0..{cols - 1}), got {json.dumps(cell)[:40]}.")
    return judge(trace, cell[0], cell[1], float(value))


# ---------------------------------------------------------------------------- the app


def create_app(checkpoint, *, dataset_loader=None, data_dir=None, max_body_bytes: int = MAX_BODY_BYTES,
               preprocess: str = "auto", trainer=None) -> Starlette:
    """The web app for one checkpoint.

    Args:
        checkpoint: a path to a ``.npz`` checkpoint, or a loaded ``checkpoint.Checkpoint``.
        dataset_loader: ``name -> Dataset`` for the gallery, called once on first use;
            default ``datasets.load(name, data_dir=data_dir)``.
        data_dir: the folder the default loader reads the dataset's IDX files from.
        max_body_bytes: larger request bodies get 413.
        preprocess: how uploaded images are prepared (``convlayer.preprocess.MODES``).
        trainer: a ``web.train.Trainer`` for the Train tab (``convlayer serve --train``); the app
            closes it (stopping its training) when it shuts down.
    Returns:
        A Starlette app; run it with ``uvicorn.run(app, host="127.0.0.1", port=8000)``.

    >>> from starlette.testclient import TestClient
    >>> app = create_app("runs/fashion-mnist/best.npz")  # doctest: +SKIP
    >>> TestClient(app).get("/api/info").json()["input_dim"]  # doctest: +SKIP
    28
    """
    if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int) or max_body_bytes < 1:
        raise ValueError(f"create_app: max_body_bytes must be a positive int, got {max_body_bytes!r}.")
    if isinstance(checkpoint, checkpoint_mod.Checkpoint):
        ck = checkpoint
    elif isinstance(checkpoint, (str, Path)):
        ck = checkpoint_mod.load(checkpoint)
    else:
        raise TypeError(f"create_app: expects a checkpoint path or a checkpoint.Checkpoint, got "
                        f"{type(checkpoint).__name__}.")
    if dataset_loader is None:
        def dataset_loader(name):
            from .. import datasets

            return datasets.load(name, data_dir=data_dir)
    service = _Service(ck, dataset_loader, preprocess)
    filter_cards = FilterCards(ck.model, service.class_names, service.dataset)

    async def index(request: Request):
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    async def info(request: Request):
        return JSONResponse({**service.info(), "train": trainer is not None})

    async def predict(request: Request):
        data = await _image_bytes(request, max_body_bytes)
        if not data:
            raise RequestError(400, "the image is empty (0 bytes).")
        return JSONResponse(await run_in_threadpool(service.predict_bytes, data))

    async def gallery(request: Request):
        index, seed = _query_int(request, "index"), _query_int(request, "seed")
        if index is None and seed is None:
            raise RequestError(422, "pass ?index=I (0-based test image) or ?seed=S (a random test image).")
        return JSONResponse(await run_in_threadpool(service.gallery, index, seed))

    async def trace(request: Request):
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            raise RequestError(415, "send the trace request as application/json.")
        document = _json_body(await request.body())
        return JSONResponse(await run_in_threadpool(_trace, document))

    async def predict_cell(request: Request):
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            raise RequestError(415, "send the predict-cell request as application/json.")
        document = _json_body(await request.body())
        return JSONResponse(await run_in_threadpool(_predict_cell, document))

    async def cards(request: Request):
        layer = request.query_params.get("layer") or (service.conv_layers or ["conv1"])[0]
        index = _query_int(request, "filter")
        try:
            if index is None:
                return JSONResponse(await run_in_threadpool(filter_cards.overview, layer))
            return JSONResponse(await run_in_threadpool(filter_cards.card, layer, index))
        except CardsError as exc:  # an unknown layer or filter
            raise RequestError(422, str(exc)) from None

    async def request_error(request: Request, exc: RequestError):
        return _error_response(exc.status, exc.message)

    async def http_error(request: Request, exc: HTTPException):
        messages = {404: f"not found: {request.url.path}", 405: f"method {request.method} not allowed here"}
        return _error_response(exc.status_code, messages.get(exc.status_code, str(exc.detail)))

    async def server_error(request: Request, exc: Exception):
        return _error_response(500, f"internal error ({type(exc).__name__}); the server is still running.")

    routes = [] if trainer is None else _train_routes(trainer)
    routes += [
        Route("/", index, methods=["GET"]),
        Route("/api/info", info, methods=["GET"]),
        Route("/api/predict", predict, methods=["POST"]),
        Route("/api/gallery", gallery, methods=["GET"]),
        Route("/api/trace", trace, methods=["POST"]),
        Route("/api/predict-cell", predict_cell, methods=["POST"]),
        Route("/api/cards", cards, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        if trainer is not None:
            await run_in_threadpool(trainer.close)

    app = Starlette(routes=routes, middleware=[Middleware(_LimitsMiddleware, max_body_bytes=max_body_bytes)],
                    exception_handlers={RequestError: request_error, HTTPException: http_error,
                                        Exception: server_error}, lifespan=lifespan)
    app.state.service = service
    app.state.trainer = trainer
    return app


def _train_routes(trainer) -> list:
    """The Train tab's API: start, control, fork, state, and the events of a run as Server-Sent Events."""
    from .train import TrainBusyError, TrainSettingError

    async def call(fn, request):
        document = _json_body(await request.body())
        try:
            return JSONResponse(await run_in_threadpool(fn, document))
        except TrainSettingError as exc:
            raise RequestError(400, str(exc)) from None
        except TypeError as exc:  # a setting of the wrong type reaching the dataclass
            raise RequestError(400, f"bad settings ({exc}).") from None
        except TrainBusyError as exc:
            raise RequestError(409, str(exc)) from None

    async def start(request: Request):
        return await call(trainer.start, request)

    async def fork(request: Request):
        return await call(trainer.fork, request)

    async def control(request: Request):
        return await call(trainer.control, request)

    async def state(request: Request):
        return JSONResponse(trainer.state())

    async def events(request: Request):
        run_id, since = _query_int(request, "run"), _query_int(request, "since") or 0
        try:
            trainer.events(run_id, since, 0)
        except TrainSettingError as exc:
            raise RequestError(404, str(exc)) from None

        async def stream():
            nonlocal since
            trainer.listening(+1)
            try:
                yield "retry: 2000\n\n"
                while not await request.is_disconnected():
                    new, finished = await run_in_threadpool(trainer.events, run_id, since, 1.0)
                    for event in new:
                        yield f"id: {since}\ndata: {json.dumps(event)}\n\n"
                        since += 1
                    if finished and not new:
                        yield "event: end\ndata: {}\n\n"
                        return
                    if not new:
                        yield ": waiting\n\n"  # a comment: lets a closed page be noticed
            finally:
                trainer.listening(-1)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"cache-control": "no-store", "x-accel-buffering": "no"})

    return [Route("/api/train/start", start, methods=["POST"]), Route("/api/train/fork", fork, methods=["POST"]),
            Route("/api/train/control", control, methods=["POST"]), Route("/api/train/state", state, methods=["GET"]),
            Route("/api/train/events", events, methods=["GET"])]
