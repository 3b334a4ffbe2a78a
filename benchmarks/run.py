"""convlayer against PyTorch, TensorFlow and ONNX Runtime on this CPU, each in its own process.

    make bench                       # = env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/run.py
    make bench ARGS=--update-readme  # and rewrite the README's table
    python benchmarks/run.py --quick # a smoke run (seconds of timing; numbers meaningless)

Each contestant (``contestants.py``) runs in a process of its own at the same thread count, so no
framework's thread pool shares the cores with another's (in one process NumPy's SGEMM ran at 303
GFLOP/s with torch and TensorFlow imported, against 400 alone). Only one process works at a time:
rounds are interleaved (A B C, then B C A, ...), and before each timing the contestant runs the same
work untimed for ``--warm`` seconds, so it is timed in steady state, its threads awake and its own
data in cache. Medians over the rounds, ratios from this one run. The GEMM peak is measured in its
own process; peak RSS of training in a fresh process per contestant. Timings are never asserted by
tests: this is a report.
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from contestants import GEMM_N, INFER_BATCH, LAYER_CASES, TRAIN_BATCH  # noqa: E402

CONTESTANTS = ("convlayer", "torch NCHW", "torch channels_last", "tensorflow", "onnxruntime")
OTHERS = CONTESTANTS[1:]
LAYER_WORKLOADS = [f"{name} {mode}" for name in LAYER_CASES for mode in ("forward", "forward+backward")]
MODEL_WORKLOADS = ["train", "infer"]
WORKLOADS = {name: LAYER_WORKLOADS + MODEL_WORKLOADS for name in CONTESTANTS[:4]} | {"onnxruntime": ["infer"]}
TRAIN_MFLOP_PER_IMAGE, INFER_MFLOP_PER_IMAGE = 82.0, 27.8  # the lesson's model, direct convolution FLOPs


class Contestant:
    """A contestant's process: JSON lines in and out (see contestants.py)."""

    def __init__(self, name: str, threads: int, workloads: list[str], log_dir: Path):
        self.name = name
        self.log = open(log_dir / f"{name.replace(' ', '_')}.log", "w")
        env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
        self.proc = subprocess.Popen([sys.executable, str(HERE / "contestants.py"), name, str(threads),
                                      ",".join(workloads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, bufsize=1, env=env)
        ready = self._read()
        self.workloads, self.info = ready["ready"], ready["info"]

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.log.flush()
            tail = Path(self.log.name).read_text()[-3000:]
            raise SystemExit(f"benchmark: contestant {self.name!r} stopped (exit {self.proc.wait()}):\n{tail}")
        return json.loads(line)

    def ask(self, **request) -> dict:
        self.proc.stdin.write(json.dumps(request) + "\n")
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=60)
        self.log.close()


def interleaved(procs: list[Contestant], workload: str, rounds: int, warm_s: float) -> dict[str, float]:
    """Median seconds per contestant; one process works at a time, the order rotates each round."""
    procs = [p for p in procs if workload in p.workloads]
    times = {p.name: [] for p in procs}
    for r in range(rounds):
        for p in procs[r % len(procs):] + procs[:r % len(procs)]:
            times[p.name].append(p.ask(op="time", workload=workload, warm_s=warm_s)["seconds"])
    return {name: statistics.median(ts) for name, ts in times.items()}


def cpu_description() -> dict:
    """Model, family and vector width from /proc/cpuinfo (Linux), else what platform knows."""
    fields = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
        for key in ("model name", "cpu family", "model", "flags"):
            m = re.search(rf"^{key}\s*:\s*(.*)$", text, re.M)
            fields[key] = m.group(1).strip() if m else "?"
    except OSError:
        fields = {"model name": platform.processor() or platform.machine(), "flags": ""}
    flags = set(fields.get("flags", "").split())
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "SSE/other"
    if "avx512f" in flags:
        vector += " (" + ", ".join(sorted(f for f in flags if f.startswith("avx512"))[:6]) + ", ...)"
    return {"model": fields.get("model name", "?"), "family": fields.get("cpu family", "?"),
            "model number": fields.get("model", "?"), "vector": vector, "cores": os.cpu_count()}


def measure(args) -> dict:
    log_dir = Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    layer_workloads = LAYER_WORKLOADS if not args.quick else ["conv1 forward", "strided forward+backward"]
    model_workloads = MODEL_WORKLOADS
    if args.only:
        layer_workloads = [w for w in layer_workloads if w in args.only]
        model_workloads = [w for w in model_workloads if w in args.only]
    contestants = [name for name in CONTESTANTS if set(WORKLOADS[name]) & set(layer_workloads + model_workloads)]
    workloads = {name: [w for w in WORKLOADS[name] if w in layer_workloads + model_workloads] for name in contestants}
    results = {"threads": args.threads, "cpu": cpu_description(), "rounds": args.rounds, "warm_s": args.warm,
               "date": time.strftime("%Y-%m-%d"), "layers": {}, "model": {}, "info": {}}

    gemm = Contestant("gemm", args.threads, ["gemm"], log_dir)  # alone: no other process exists yet
    seconds = interleaved([gemm], "gemm", max(3, args.rounds // 2), args.warm)["gemm"]
    results["gemm_peak_gflops"] = 2 * GEMM_N ** 3 / seconds / 1e9
    results["info"]["gemm"] = gemm.info
    gemm.close()

    procs = []
    try:
        for name in contestants:
            say(f"starting {name} ...")
            procs.append(Contestant(name, args.threads, workloads[name], log_dir))
            results["info"][name] = procs[-1].info
        for workload in layer_workloads:
            results["layers"][workload] = interleaved(procs, workload, args.rounds, args.warm)
            say(workload, {k: f"{v * 1e3:.2f} ms" for k, v in results["layers"][workload].items()})
        for workload in model_workloads:
            results["model"][workload] = interleaved(procs, workload, args.rounds, args.warm)
            say(workload, {k: f"{v * 1e3:.1f} ms" for k, v in results["model"][workload].items()})
    finally:
        for p in procs:
            p.close()

    if not args.skip_memory:
        results["memory"] = {}
        for name in CONTESTANTS[:4]:
            p = Contestant(name, args.threads, ["train"], log_dir)
            results["memory"][name] = p.ask(op="rss", workload="train", steps=1 if args.quick else 5)["peak_mib"]
            p.close()
    return results


def say(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- report


def conv_flops(batch, h, w, c, f, k, s) -> int:
    return 2 * batch * -(-h // s) * -(-w // s) * f * k * k * c


def fmt_ms(t: dict, name: str) -> str:
    return f"{t[name] * 1e3:.2f}" if name in t else "—"


def format_report(r: dict) -> str:
    cpu, info, peak = r["cpu"], r["info"], r["gemm_peak_gflops"]
    versions = {k: v for name in CONTESTANTS for k, v in info.get(name, {}).items()
                if k in ("python", "numpy", "torch", "tensorflow", "onnxruntime")}
    versions = ", ".join(f"{k} {v}" for k, v in versions.items())
    lines = [
        f"CPU: {cpu['model']} (family {cpu['family']}, model {cpu['model number']}), {cpu['cores']} cores, "
        f"{cpu['vector']}. BLAS: {info['gemm'].get('blas', '?')}; numba {'on' if info['convlayer'].get('numba') else 'off'}; "
        f"torch CPU capability {info.get('torch NCHW', {}).get('cpu capability', '?')}; TensorFlow's oneDNN "
        f"{'on' if info.get('tensorflow', {}).get('onednn') else 'off'}. {versions}.",
        "",
        f"Each contestant in its own process, {r['threads']} threads; {r['rounds']} interleaved rounds, medians; "
        f"{r['warm_s']} s of untimed work before each timing. SGEMM peak ({GEMM_N}³, alone): "
        f"{peak:.0f} GFLOP/s. Effective % of that peak: a direct convolution's FLOPs over the time (Winograd "
        "does fewer multiplications, so it can pass 100%).",
        "",
        "Layer (batch 128, 'same'), median ms | convlayer | torch NCHW | torch channels_last | TensorFlow | "
        "convlayer / fastest other | convlayer % of GEMM peak",
        "---|---|---|---|---|---|---",
    ]
    for key, t in r["layers"].items():
        name, mode = key.split(" ", 1)
        flops = conv_flops(*LAYER_CASES[name]) * (3 if "backward" in mode else 1)
        best = min(v for k, v in t.items() if k != "convlayer")
        lines.append(f"{key} | {fmt_ms(t, 'convlayer')} | {fmt_ms(t, 'torch NCHW')} | "
                     f"{fmt_ms(t, 'torch channels_last')} | {fmt_ms(t, 'tensorflow')} | "
                     f"{t['convlayer'] / best:.2f}x time | {flops / t['convlayer'] / 1e9 / peak * 100:.0f}%")
    lines += ["", "Lesson's model, images/s | convlayer | torch NCHW | torch channels_last | TensorFlow | "
              "ONNX Runtime | convlayer / fastest other | convlayer % of GEMM peak", "---|---|---|---|---|---|---|---"]
    for mode, batch, mflop, label in (("train", TRAIN_BATCH, TRAIN_MFLOP_PER_IMAGE, "training step, batch 128 (Adam)"),
                                      ("infer", INFER_BATCH, INFER_MFLOP_PER_IMAGE, "inference, 1000 images")):
        ips = {k: batch / v for k, v in r["model"][mode].items()}
        best = max(v for k, v in ips.items() if k != "convlayer")
        cells = " | ".join(f"{ips[k]:,.0f}" if k in ips else "—" for k in CONTESTANTS)
        lines.append(f"{label} | {cells} | {ips['convlayer'] / best:.2f}x | "
                     f"{ips['convlayer'] * mflop / 1e3 / peak * 100:.0f}%")
    if "memory" in r:
        lines += ["", "Peak RSS while training at batch 128, MiB | " + " | ".join(r["memory"]),
                  "---|" + "---|" * len(r["memory"]),
                  "peak | " + " | ".join(f"{v:.0f}" for v in r["memory"].values())]
    return "\n".join(lines)


def update_readme(report: str, command: str) -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    if start not in text or end not in text:
        raise SystemExit(f"README.md has no {start} ... {end} block to update.")
    block = f"{start}\nMeasured {time.strftime('%Y-%m-%d')} with `{command}`.\n\n{report}\n{end}"
    new = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    tmp = readme.with_suffix(".md.tmp")
    tmp.write_text(new)
    os.replace(tmp, readme)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="threads per contestant (default 2)")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds per workload (default 15)")
    parser.add_argument("--warm", type=float, default=0.2, help="untimed seconds before each timing (default 0.2)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: two layer cases, 2 rounds, no warm-up")
    parser.add_argument("--only", type=lambda text: [w.strip() for w in text.split(",")], metavar="W,W",
                        help="time only these workloads (e.g. 'conv2 forward,infer'; for profiling: the report "
                             "needs every workload)")
    parser.add_argument("--skip-memory", action="store_true", help="skip the peak-RSS processes")
    parser.add_argument("--update-readme", action="store_true", help="rewrite the README's results table")
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument("--log-dir", default=str(ROOT / "build" / "bench-logs"), help="each contestant's stderr")
    args = parser.parse_args(argv)
    if args.threads < 1 or args.rounds < 1 or args.warm < 0:
        parser.error("--threads and --rounds must be positive and --warm not negative")
    if args.quick:
        args.rounds, args.warm = min(args.rounds, 2), 0.0
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if os.environ.get(var):
            say(f"note: {var} is set; the contestants run without it (it selects a slower OpenBLAS kernel).")
    unknown = set(args.only or ()) - set(LAYER_WORKLOADS + MODEL_WORKLOADS)
    if unknown:
        parser.error(f"--only: unknown workload(s) {', '.join(sorted(unknown))}; choose from "
                     f"{', '.join(LAYER_WORKLOADS + MODEL_WORKLOADS)}")
    results = measure(args)
    if args.only:
        print(json.dumps({"layers": results["layers"], "model": results["model"]}, indent=1))
        return 0
    report = format_report(results)
    print(report)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if args.update_readme:
        if args.quick:
            raise SystemExit("benchmark: --update-readme takes a full run, not --quick.")
        update_readme(report, "make bench ARGS=--update-readme")
    return 0


if __name__ == "__main__":
    sys.exit(main())
