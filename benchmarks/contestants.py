"""One benchmark contestant per process: builds its workloads, then times them on request.

    python benchmarks/contestants.py NAME THREADS [--quick]

NAME is convlayer, torch NCHW, torch channels_last, tensorflow, onnxruntime or gemm. The
process imports only its own framework, so no other framework's thread pool shares its cores.
It speaks JSON lines with ``run.py``: on stdin {"op": "time", "workload": W, "warm_s": S},
{"op": "rss", "workload": W, "steps": K}, {"op": "info"} or {"op": "quit"}; one JSON line back on
stdout for each. Everything a framework prints goes to stderr.

Workloads: "<case> forward" and "<case> forward+backward" for the layer cases, "train" (one Adam
step at batch 128 on the lesson's model) and "infer" (1000 images), "gemm" (2048^3 SGEMM).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

LAYER_CASES = {  # name: (batch, H, W, C, filters, kernel, stride), all 'same'
    "conv1": (128, 28, 28, 1, 32, 5, 1),
    "conv2": (128, 14, 14, 32, 64, 5, 1),
    "strided": (128, 28, 28, 16, 32, 3, 2),
}
TRAIN_BATCH, INFER_BATCH = 128, 1000
GEMM_N = 2048


def layer_data(case):
    n, h, w, c, f, k, s = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, h, w, c), dtype=np.float32)  # (N, H, W, C)
    kernel = (rng.standard_normal((k, k, c, f)) / np.sqrt(k * k * c)).astype(np.float32)  # (k, k, C, F)
    bias = rng.standard_normal(f).astype(np.float32)
    dy = rng.standard_normal((n, -(-h // s), -(-w // s), f), dtype=np.float32)  # (N, Ho, Wo, F)
    return x, kernel, bias, dy


def model_data():
    rng = np.random.default_rng(0)
    x_train = rng.random((TRAIN_BATCH, 28, 28, 1), dtype=np.float32)
    y_train = rng.integers(0, 10, TRAIN_BATCH)
    x_infer = rng.random((INFER_BATCH, 28, 28, 1), dtype=np.float32)
    return x_train, y_train, x_infer


def wanted_layers(workloads):
    """The layer cases some requested workload times."""
    return {name: case for name, case in LAYER_CASES.items()
            if {f"{name} forward", f"{name} forward+backward"} & set(workloads)}


# ---------------------------------------------------------------------------- builders


def build_convlayer(threads, workloads):
    from threadpoolctl import threadpool_limits

    from convlayer import parallel
    from convlayer.functional import kernels
    from convlayer.layers import Conv2D
    from convlayer.models import MNISTModel

    threadpool_limits(threads)
    parallel.set_num_threads(threads)
    funcs = {}
    for name, case in wanted_layers(workloads).items():
        x, kernel, bias, dy = layer_data(case)
        layer = Conv2D(case[4], case[5], strides=case[6], padding="same")
        layer(x)
        layer.set_weights([kernel, bias])

        def forward(layer=layer, x=x):
            layer(x, keep_cache=False)

        def forward_backward(layer=layer, x=x, dy=dy):
            layer(x)
            layer.backward(dy)

        funcs[f"{name} forward"], funcs[f"{name} forward+backward"] = forward, forward_backward
    x_train, y_train, x_infer = model_data()
    model = MNISTModel(28, 10)
    model.compile("adam")
    funcs["train"] = lambda: model.train_step(x_train, y_train)
    funcs["infer"] = lambda: model.predict(x_infer)
    info = {"numpy": np.__version__, "numba": kernels.enabled(), "blas": blas_kernel()}
    return funcs, info


def torch_model(torch, channels_last):
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(3136, 1024), nn.ReLU(), nn.Dropout(0.4), nn.Linear(1024, 10))
    return model.to(memory_format=torch.channels_last) if channels_last else model


def build_torch(threads, workloads, channels_last):
    import torch
    import torch.nn.functional as F

    from convlayer.functional.shapes import same_padding  # TensorFlow's 'same': the odd zero at the bottom/right

    torch.set_num_threads(threads)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    funcs = {}
    for name, (n, h, w, c, f, k, s) in wanted_layers(workloads).items():
        x, kernel, bias, dy = layer_data((n, h, w, c, f, k, s))
        (top, bottom), (left, right) = same_padding(h, k, s), same_padding(w, k, s)
        xt = torch.tensor(x.transpose(0, 3, 1, 2).copy()).contiguous(memory_format=fmt).requires_grad_(True)
        wt = torch.tensor(kernel.transpose(3, 2, 0, 1).copy()).contiguous(memory_format=fmt).requires_grad_(True)
        bt = torch.tensor(bias, requires_grad=True)
        dyt = torch.tensor(dy.transpose(0, 3, 1, 2).copy()).contiguous(memory_format=fmt)
        pad = (left, right, top, bottom)

        def forward(xt=xt, wt=wt, bt=bt, pad=pad, s=s):
            with torch.no_grad():
                F.conv2d(F.pad(xt, pad), wt, bt, stride=s)

        def forward_backward(xt=xt, wt=wt, bt=bt, dyt=dyt, pad=pad, s=s):
            F.conv2d(F.pad(xt, pad), wt, bt, stride=s).backward(dyt)

        funcs[f"{name} forward"], funcs[f"{name} forward+backward"] = forward, forward_backward
    x_train, y_train, x_infer = model_data()
    model = torch_model(torch, channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    xt = torch.tensor(x_train.transpose(0, 3, 1, 2).copy()).contiguous(memory_format=fmt)
    yt = torch.tensor(y_train)
    xi = torch.tensor(x_infer.transpose(0, 3, 1, 2).copy()).contiguous(memory_format=fmt)

    def train():
        model.train()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(xt), yt).backward()
        opt.step()

    def infer():
        model.eval()
        with torch.inference_mode():
            model(xi)

    funcs["train"], funcs["infer"] = train, infer
    info = {"torch": torch.__version__, "mkldnn": torch.backends.mkldnn.is_available(),
            "cpu capability": torch.backends.cpu.get_cpu_capability()}
    return funcs, info


def tf_model(tf):
    layers = tf.keras.layers
    return tf.keras.Sequential([
        tf.keras.Input((28, 28, 1)),
        layers.Conv2D(32, 5, padding="same", activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(64, 5, padding="same", activation="relu"), layers.MaxPooling2D(2),
        layers.Flatten(), layers.Dense(1024, activation="relu"), layers.Dropout(0.4), layers.Dense(10)])


def build_tensorflow(threads, workloads):
    # oneDNN: TensorFlow's fastest CPU kernels, which it leaves off on some CPUs (an AMD EPYC of family 25)
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    funcs = {}
    for name, (n, h, w, c, f, k, s) in wanted_layers(workloads).items():
        x, kernel, bias, dy = layer_data((n, h, w, c, f, k, s))
        layer = tf.keras.layers.Conv2D(f, k, strides=s, padding="same")
        xt, dyt = tf.constant(x), tf.constant(dy)
        layer(xt)
        layer.set_weights([kernel, bias])

        @tf.function(jit_compile=False)
        def forward(layer=layer, xt=xt):
            return layer(xt)

        @tf.function(jit_compile=False)
        def forward_backward(layer=layer, xt=xt, dyt=dyt):
            with tf.GradientTape() as tape:
                tape.watch(xt)
                out = layer(xt)
                loss = tf.reduce_sum(out * dyt)
            # The output is returned too: otherwise the graph optimizer may drop the forward convolution.
            return out, tape.gradient(loss, [xt, *layer.trainable_variables])

        funcs[f"{name} forward"], funcs[f"{name} forward+backward"] = forward, forward_backward
    x_train, y_train, x_infer = model_data()
    model = tf_model(tf)
    optimizer = tf.keras.optimizers.Adam(1e-3)
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    xt, yt, xi = tf.constant(x_train), tf.constant(y_train), tf.constant(x_infer)

    @tf.function
    def train():
        with tf.GradientTape() as tape:
            loss = loss_fn(yt, model(xt, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))

    @tf.function
    def infer():
        return model(xi, training=False)

    funcs["train"], funcs["infer"] = train, infer
    return funcs, {"tensorflow": tf.__version__, "onednn": os.environ["TF_ENABLE_ONEDNN_OPTS"] != "0"}


def build_onnxruntime(threads, workloads):
    """The lesson's model exported by convlayer to ONNX, run by ONNX Runtime (inference only)."""
    import onnxruntime as ort

    from convlayer.interop import export_model
    from convlayer.models import MNISTModel

    model = MNISTModel(28, 10)
    model.build((None, 28, 28, 1))
    with tempfile.TemporaryDirectory() as tmp:
        path = export_model(model, os.path.join(tmp, "mnist.onnx"))
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x_infer = model_data()[2]
    return {"infer": lambda: session.run(None, {name: x_infer})}, {"onnxruntime": ort.__version__}


def build_gemm(threads, workloads):
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    a = np.random.default_rng(0).random((GEMM_N, GEMM_N), dtype=np.float32)
    return {"gemm": lambda: a @ a}, {"numpy": np.__version__, "blas": blas_kernel()}


BUILDERS = {
    "convlayer": build_convlayer,
    "torch NCHW": lambda threads, workloads: build_torch(threads, workloads, False),
    "torch channels_last": lambda threads, workloads: build_torch(threads, workloads, True),
    "tensorflow": build_tensorflow,
    "onnxruntime": build_onnxruntime,
    "gemm": build_gemm,
}


def blas_kernel() -> str:
    from threadpoolctl import threadpool_info

    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return ", ".join(f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')})" for i in blas) or "?"


def rss_kib(field: str) -> int:
    """This process's resident memory now ("VmRSS") or its peak ("VmHWM"), KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


# ---------------------------------------------------------------------------- the loop


def serve(name: str, threads: int, workloads: list[str]) -> None:
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # frameworks' prints must not reach the protocol
    base_rss = rss_kib("VmRSS")
    funcs, info = BUILDERS[name](threads, set(workloads))
    funcs = {w: f for w, f in funcs.items() if w in workloads}
    build_rss = rss_kib("VmRSS")
    for f in funcs.values():  # compile, trace, JIT, allocate: never timed
        f()
        f()
    out.write(json.dumps({"ready": sorted(funcs), "info": {**info, "python": platform.python_version()}}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "time":
            f = funcs[request["workload"]]
            deadline = time.perf_counter() + request["warm_s"]
            f()  # steady state: this process's threads are awake and its caches hold its own data
            while time.perf_counter() < deadline:
                f()
            start = time.perf_counter()
            f()
            out.write(json.dumps({"seconds": time.perf_counter() - start}) + "\n")
        elif request["op"] == "rss":
            for _ in range(request["steps"]):
                funcs[request["workload"]]()
            out.write(json.dumps({"peak_mib": rss_kib("VmHWM") / 1024, "before_mib": base_rss / 1024,
                                  "built_mib": build_rss / 1024}) + "\n")
        elif request["op"] == "quit":
            break


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), sys.argv[3].split(","))
