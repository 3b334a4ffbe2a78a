"""The benchmark runs end to end: every contestant in its own process, a full report. No speed asserted."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_benchmark_times_every_contestant_in_its_own_process(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--skip-memory",
                           "--json", str(out), "--log-dir", str(tmp_path / "logs")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    r = json.loads(out.read_text())
    everyone = {"convlayer", "torch NCHW", "torch channels_last", "tensorflow"}
    for times in [*r["layers"].values(), r["model"]["train"]]:
        assert set(times) == everyone and all(t > 0 for t in times.values())
    assert set(r["model"]["infer"]) == everyone | {"onnxruntime"}
    assert r["gemm_peak_gflops"] > 1 and r["info"]["convlayer"]["numba"] is True
    assert r["cpu"]["model"] and r["cpu"]["vector"]
    # one process per contestant: each log is its own, and the report names the CPU and the BLAS kernel
    assert len(list((tmp_path / "logs").glob("*.log"))) == 6
    assert done.stdout.startswith("CPU: ") and "BLAS: " in done.stdout and "ONNX Runtime" in done.stdout
