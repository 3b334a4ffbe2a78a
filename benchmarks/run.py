"""convlayer vs PyTorch vs TensorFlow on this CPU: the layer cases and the lesson's full model.

    make bench                       # = env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/run.py
    python benchmarks/run.py --update-readme

Every framework runs at the same thread count (default 2) in one process; repetitions
are interleaved (A B C A B C ...) so drift hits all alike; medians and ratios are
reported. Peak memory (RSS) of a training run is measured per framework in a fresh
subprocess. Timings are never asserted by tests: this is a report.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_info, threadpool_limits  # noqa: E402

LAYER_CASES = {  # name: (batch, H, W, C, filters, kernel, stride)
    "conv1": (128, 28, 28, 1, 32, 5, 1),
    "conv2": (128, 14, 14, 32, 64, 5, 1),
    "strided": (128, 28, 28, 16, 32, 3, 2),
}
TRAIN_BATCH, INFER_BATCH = 128, 1000
TRAIN_MFLOP_PER_IMAGE, INFER_MFLOP_PER_IMAGE = 82.0, 27.8


def conv_flops(batch, h, w, c, f, k, s):
    ho, wo = -(-h // s), -(-w // s)
    return 2 * batch * ho * wo * f * k * k * c


WARM_S = 0.2  # untimed work before each timing, so every framework is timed in steady state


def interleaved(funcs: dict, repeats: int, warmup: int = 2) -> dict:
    """Median seconds of each callable, running them round-robin.

    Before each timing a framework runs untimed for ``WARM_S``: by then the previous
    framework's OpenMP/OpenBLAS threads have stopped spin-waiting (they spin for up to
    ~200 ms after a call), and the cores and caches are busy with this framework's work,
    as in a training loop. (Pausing instead lets this VM's idle cores slow down: a
    convolution timed right after a 0.25 s pause took 1.5x as long as back to back.)
    """
    for f in funcs.values():
        for _ in range(warmup):
            f()
    times = {name: [] for name in funcs}
    for _ in range(repeats):
        for name, f in funcs.items():
            deadline = time.perf_counter() + WARM_S
            f()
            while time.perf_counter() < deadline:
                f()
            start = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


# ---------------------------------------------------------------------------- frameworks


def setup_frameworks(threads):
    import tensorflow as tf
    import torch

    torch.set_num_threads(threads)
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    return tf, torch


def layer_callables(case, tf, torch):
    from convlayer.layers import Conv2D

    n, h, w, c, f, k, s = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, h, w, c), dtype=np.float32)
    ours = Conv2D(f, k, strides=s, padding="same", seed=0)
    y = ours(x)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    kernel, bias = ours.get_weights()
    (top, bottom), (left, right) = ours.padding_amounts(x.shape)

    def ours_fwd():
        ours(x, keep_cache=False)

    def ours_fb():
        ours(x)
        ours.backward(dy)

    import torch.nn.functional as F

    weight = torch.tensor(kernel.transpose(3, 2, 0, 1).copy(), requires_grad=True)
    tbias = torch.tensor(bias, requires_grad=True)
    x_nchw = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)
    x_cl = x_nchw.detach().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    weight_cl = weight.detach().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    dy_t = torch.tensor(dy.transpose(0, 3, 1, 2).copy())
    dy_cl = dy_t.contiguous(memory_format=torch.channels_last)

    def torch_run(xt, wt, dyt, backward):
        if backward:
            out = F.conv2d(F.pad(xt, (left, right, top, bottom)), wt, tbias, stride=s)
            out.backward(dyt)
        else:
            with torch.no_grad():
                F.conv2d(F.pad(xt, (left, right, top, bottom)), wt, tbias, stride=s)

    tf_layer = tf.keras.layers.Conv2D(f, k, strides=s, padding="same")
    x_tf = tf.constant(x)
    dy_tf = tf.constant(dy)
    tf_layer(x_tf)
    tf_layer.set_weights([kernel, bias])

    @tf.function(jit_compile=False)
    def tf_fwd():
        return tf_layer(x_tf)

    @tf.function(jit_compile=False)
    def tf_fb():
        with tf.GradientTape() as tape:
            tape.watch(x_tf)
            out = tf_layer(x_tf)
            loss = tf.reduce_sum(out * dy_tf)
        # Return the output too: the gradients alone do not depend on it, and TensorFlow's graph
        # optimizer would then drop the forward convolution from the timing.
        return out, tape.gradient(loss, [x_tf, *tf_layer.trainable_variables])

    return {
        "forward": {"convlayer": ours_fwd, "torch NCHW": lambda: torch_run(x_nchw, weight, dy_t, False),
                    "torch channels_last": lambda: torch_run(x_cl, weight_cl, dy_cl, False),
                    "tensorflow": lambda: tf_fwd()},
        "forward+backward": {"convlayer": ours_fb, "torch NCHW": lambda: torch_run(x_nchw, weight, dy_t, True),
                             "torch channels_last": lambda: torch_run(x_cl, weight_cl, dy_cl, True),
                             "tensorflow": lambda: tf_fb()},
    }


def torch_model(torch, channels_last):
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(3136, 1024), nn.ReLU(), nn.Dropout(0.4), nn.Linear(1024, 10))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def tf_model(tf):
    layers = tf.keras.layers
    return tf.keras.Sequential([
        tf.keras.Input((28, 28, 1)),
        layers.Conv2D(32, 5, padding="same", activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(64, 5, padding="same", activation="relu"), layers.MaxPooling2D(2),
        layers.Flatten(), layers.Dense(1024, activation="relu"), layers.Dropout(0.4), layers.Dense(10)])


def model_callables(tf, torch):
    from convlayer.models import MNISTModel

    rng = np.random.default_rng(0)
    x_train = rng.random((TRAIN_BATCH, 28, 28, 1), dtype=np.float32)
    y_train = rng.integers(0, 10, TRAIN_BATCH)
    x_infer = rng.random((INFER_BATCH, 28, 28, 1), dtype=np.float32)

    ours = MNISTModel(28, 10)
    ours.compile("adam")

    funcs_train, funcs_infer = {"convlayer": lambda: ours.train_step(x_train, y_train)}, {
        "convlayer": lambda: ours.predict(x_infer)}  # all 1000 images in one call

    for label, channels_last in (("torch NCHW", False), ("torch channels_last", True)):
        model = torch_model(torch, channels_last)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        xt = torch.tensor(x_train.transpose(0, 3, 1, 2).copy()).contiguous(memory_format=fmt)
        yt = torch.tensor(y_train)
        xi = torch.tensor(x_infer.transpose(0, 3, 1, 2).copy()).contiguous(memory_format=fmt)

        def step(model=model, opt=opt, xt=xt, yt=yt):
            model.train()
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(xt), yt).backward()
            opt.step()

        def infer(model=model, xi=xi):
            model.eval()
            with torch.inference_mode():
                model(xi)

        funcs_train[label], funcs_infer[label] = step, infer

    keras_model = tf_model(tf)
    optimizer = tf.keras.optimizers.Adam(1e-3)
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    xt, yt, xi = tf.constant(x_train), tf.constant(y_train), tf.constant(x_infer)

    @tf.function
    def tf_step():
        with tf.GradientTape() as tape:
            loss = loss_fn(yt, keras_model(xt, training=True))
        grads = tape.gradient(loss, keras_model.trainable_variables)
        optimizer.apply_gradients(zip(grads, keras_model.trainable_variables))

    @tf.function
    def tf_infer():
        return keras_model(xi, training=False)

    funcs_train["tensorflow"], funcs_infer["tensorflow"] = tf_step, tf_infer
    return funcs_train, funcs_infer


def gemm_peak(repeats=7) -> float:
    a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    seconds = interleaved({"gemm": lambda: a @ a}, repeats)["gemm"]
    return 2 * 2048 ** 3 / seconds / 1e9


# ---------------------------------------------------------------------------- memory


MEMORY_SNIPPET = r"""
import os, re, sys, numpy as np
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, {bench_dir!r})
from threadpoolctl import threadpool_limits
threadpool_limits({threads})
import run as bench
which = {which!r}
def rss(field):  # KiB; VmHWM is this process's own peak (ru_maxrss would include the parent's at fork)
    return int(re.search(field + r":\s+(\d+)", open("/proc/self/status").read()).group(1))
rng = np.random.default_rng(0)
x = rng.random((128, 28, 28, 1), dtype=np.float32); y = rng.integers(0, 10, 128)
if which == "convlayer":
    from convlayer.models import MNISTModel
    m = MNISTModel(28, 10); m.compile("adam")
    base = rss("VmRSS")
    for _ in range(5): m.train_step(x, y)
elif which.startswith("torch"):
    import torch
    torch.set_num_threads({threads})
    m = bench.torch_model(torch, which.endswith("channels_last"))
    opt = torch.optim.Adam(m.parameters())
    fmt = torch.channels_last if which.endswith("channels_last") else torch.contiguous_format
    xt = torch.tensor(x.transpose(0, 3, 1, 2).copy()).contiguous(memory_format=fmt); yt = torch.tensor(y)
    base = rss("VmRSS")
    for _ in range(5):
        opt.zero_grad(); torch.nn.functional.cross_entropy(m(xt), yt).backward(); opt.step()
else:
    import tensorflow as tf
    m = bench.tf_model(tf); opt = tf.keras.optimizers.Adam()
    lf = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    xt, yt = tf.constant(x), tf.constant(y)
    @tf.function
    def step():
        with tf.GradientTape() as t: l = lf(yt, m(xt, training=True))
        g = t.gradient(l, m.trainable_variables); opt.apply_gradients(zip(g, m.trainable_variables))
    base = rss("VmRSS")
    for _ in range(5): step()
peak = rss("VmHWM")
print(peak / 1024, (peak - base) / 1024)
"""


def peak_rss(which: str, threads: int) -> tuple[float, float]:
    """(peak RSS MiB, growth during 5 training steps MiB) in a fresh process."""
    code = MEMORY_SNIPPET.format(bench_dir=str(Path(__file__).parent), threads=threads, which=which)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    peak, growth = map(float, out.stdout.split()[-2:])
    return peak, growth


# ---------------------------------------------------------------------------- report


def blas_kernel() -> str:
    info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return ", ".join(f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')})" for i in info) or "?"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15, help="interleaved repetitions per case")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--update-readme", action="store_true", help="rewrite the README's results table")
    parser.add_argument("--json", help="also write raw results to this file")
    args = parser.parse_args(argv)

    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if os.environ.get(var):
            print(f"warning: {var} is set and slows NumPy's BLAS; run `make bench` (it unsets both).",
                  file=sys.stderr)
    threadpool_limits(args.threads)
    tf, torch = setup_frameworks(args.threads)
    peak = gemm_peak()
    results = {"layers": {}, "model": {}, "gemm_peak_gflops": peak, "blas": blas_kernel(), "threads": args.threads,
               "cpu": platform.processor() or platform.machine(), "versions": {
                   "numpy": np.__version__, "torch": torch.__version__, "tensorflow": tf.__version__}}

    for name, case in LAYER_CASES.items():
        funcs = layer_callables(case, tf, torch)
        for mode, callables in funcs.items():
            results["layers"][f"{name} {mode}"] = interleaved(callables, args.repeats)
            print(name, mode, {k: f"{v * 1e3:.1f} ms" for k, v in results["layers"][f"{name} {mode}"].items()},
                  file=sys.stderr)
    train, infer = model_callables(tf, torch)
    results["model"]["train"] = interleaved(train, args.repeats)
    results["model"]["infer"] = interleaved(infer, max(5, args.repeats // 2))
    if not args.skip_memory:
        results["memory"] = {w: peak_rss(w, args.threads)
                             for w in ("convlayer", "torch NCHW", "torch channels_last", "tensorflow")}
    report = format_report(results)
    print(report)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if args.update_readme:
        update_readme(report)


def format_report(r) -> str:
    lines = [f"BLAS: {r['blas']}; {r['threads']} threads each; sgemm peak measured in this run: "
             f"{r['gemm_peak_gflops']:.0f} GFLOP/s; numpy {r['versions']['numpy']}, torch {r['versions']['torch']}, "
             f"tensorflow {r['versions']['tensorflow']}. Effective % of GEMM peak: a direct convolution's "
             f"FLOPs over the time, against that peak; Winograd does fewer multiplications, so it can pass 100%.",
             "",
             "Layer (batch 128), median ms | convlayer | torch NCHW | torch channels_last | TensorFlow | "
             "convlayer / fastest other | convlayer effective % of GEMM peak",
             "---|---|---|---|---|---|---"]
    for key, t in r["layers"].items():
        name, mode = key.split(" ", 1)
        flops = conv_flops(*LAYER_CASES[name]) * (3 if "backward" in mode else 1)
        others = min(v for k, v in t.items() if k != "convlayer")
        lines.append(f"{name} {mode} | {t['convlayer'] * 1e3:.1f} | {t['torch NCHW'] * 1e3:.1f} | "
                     f"{t['torch channels_last'] * 1e3:.1f} | {t['tensorflow'] * 1e3:.1f} | "
                     f"{t['convlayer'] / others:.2f}x time | "
                     f"{flops / t['convlayer'] / 1e9 / r['gemm_peak_gflops'] * 100:.0f}%")
    lines += ["", "Lesson's model, images/s | convlayer | torch NCHW | torch channels_last | TensorFlow | "
              "convlayer / fastest other | convlayer effective % of GEMM peak", "---|---|---|---|---|---|---"]
    for mode, batch, mflop in (("train", TRAIN_BATCH, TRAIN_MFLOP_PER_IMAGE), ("infer", INFER_BATCH,
                                                                               INFER_MFLOP_PER_IMAGE)):
        t = r["model"][mode]
        ips = {k: batch / v for k, v in t.items()}
        best_other = max(v for k, v in ips.items() if k != "convlayer")
        label = "training step, batch 128 (Adam)" if mode == "train" else "inference, batch 1000"
        lines.append(f"{label} | {ips['convlayer']:,.0f} | {ips['torch NCHW']:,.0f} | "
                     f"{ips['torch channels_last']:,.0f} | {ips['tensorflow']:,.0f} | "
                     f"{ips['convlayer'] / best_other:.2f}x | "
                     f"{ips['convlayer'] * mflop / 1e3 / r['gemm_peak_gflops'] * 100:.0f}%")
    if "memory" in r:
        lines += ["", "Peak RSS training at batch 128, MiB (growth during 5 steps) | " +
                  " | ".join(r["memory"]), "---|" + "---|" * len(r["memory"]),
                  "peak | " + " | ".join(f"{p:.0f} ({g:.0f})" for p, g in r["memory"].values())]
    return "\n".join(lines)


def update_readme(report: str) -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    if start not in text or end not in text:
        raise SystemExit(f"README.md has no {start} ... {end} block to update.")
    stamp = time.strftime("%Y-%m-%d")
    block = f"{start}\nMeasured {stamp} with `make bench` on this machine ({os.cpu_count()} cores).\n\n{report}\n{end}"
    new = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    tmp = readme.with_suffix(".md.tmp")
    tmp.write_text(new)
    os.replace(tmp, readme)


if __name__ == "__main__":
    main()
