"""A plain ``pip install convlayer`` (no extras): the command line works, with the fast paths on.

Each command runs in a child Python in which the optional packages cannot be imported (as if never
installed); what needs an extra says which one, in one line.
"""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from convlayer.datasets import write_idx

# Every optional extra's packages, and the test-only frameworks: none of them is in a plain install.
NOT_INSTALLED = ("matplotlib", "starlette", "uvicorn", "multipart", "python_multipart", "sklearn", "h5py", "onnx",
                 "onnxruntime", "safetensors", "mpi4py", "psutil", "tensorflow", "keras", "torch", "hypothesis",
                 "httpx", "playwright")

CHILD = textwrap.dedent("""
    import importlib.abc, importlib.util, json, sys
    BLOCKED = set(json.loads(sys.argv[1]))

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())
    _find_spec = importlib.util.find_spec
    importlib.util.find_spec = lambda name, package=None: (
        None if name.split(".")[0] in BLOCKED else _find_spec(name, package))
    if sys.argv[2] == "--fast-paths":
        from convlayer.functional import kernels
        import threadpoolctl, tqdm
        print(json.dumps({"numba": kernels.enabled(), "blocked_loaded": sorted(BLOCKED & set(sys.modules))}))
        sys.exit(0)
    from convlayer.cli import main
    code = main(sys.argv[2:])
    leaked = sorted(BLOCKED & {m.split(".")[0] for m in sys.modules})
    if leaked:
        print("LEAKED", leaked, file=sys.stderr)
    sys.exit(code)
""")


def plain(*argv, cwd=None):
    return subprocess.run([sys.executable, "-c", CHILD, json.dumps(NOT_INSTALLED), *map(str, argv)],
                          capture_output=True, text=True, cwd=cwd, timeout=240, stdin=subprocess.DEVNULL,
                          env={"PATH": "/usr/bin:/bin", "CONVLAYER_DATA": "/nonexistent", "HOME": str(cwd or "/tmp")})


def test_the_fast_paths_are_on_without_extras(tmp_path):
    done = plain("--fast-paths", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"numba": True, "blocked_loaded": []}


@pytest.fixture(scope="module")
def idx_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("idx")
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 64), ("t10k", 32)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n, dtype=np.uint8))
    return folder


def test_train_evaluate_predict_and_the_text_commands_need_no_extra(idx_folder, tmp_path):
    run = tmp_path / "run"
    done = plain("train", "--dataset", "mnist", "--data-dir", idx_folder, "--epochs", "1", "--output-dir", run,
                 "--validation-split", "0.25", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "on mnist test set" in done.stdout and "LEAKED" not in done.stderr
    digit = np.zeros((28, 28), np.uint8)
    digit[5:23, 13:16] = 255  # a "1"
    Image.fromarray(digit).save(tmp_path / "digit.png")
    for argv, expect in (
            (["evaluate", run / "best.npz", "--dataset", "mnist", "--data-dir", idx_folder], "accuracy"),
            (["predict", run / "best.npz", tmp_path / "digit.png"], "digit.png"),
            (["summary"], "Total params: 3,274,634"),
            (["datasets"], "digits"),
            (["explain", "--example", "2"], "stride"),
            (["draw", "--example", "1", "--out", tmp_path / "c.gif"], "c.gif"),
            (["explain", "--backward"], "dkernel"),
            (["exercise", "conv2d", "--out", tmp_path / "mine.py"], "convlayer check"),
            (["quiz", "--seed", "1", "--questions", "1"], "Score")):
        done = plain(*argv, cwd=tmp_path)
        assert done.returncode == 0, (argv, done.stderr)
        assert expect in done.stdout, (argv, done.stdout)
        assert "LEAKED" not in done.stderr and "Traceback" not in done.stderr, (argv, done.stderr)
    assert (tmp_path / "c.gif").stat().st_size > 1000
    done = plain("check", tmp_path / "mine.py", cwd=tmp_path)  # (its child process runs unblocked; it needs NumPy only)
    assert done.returncode == 1 and "not written yet" in done.stdout, (done.stdout, done.stderr)


@pytest.mark.parametrize("argv, extra", [
    (["show", "filters", "RUN"], "viz"),
    (["serve", "--port", "8765"], "web"),
    (["export", "RUN", "OUT/m.onnx"], "interop"),
    (["train", "--dataset", "digits", "--epochs", "1", "--output-dir", "OUT/r"], "data"),
])
def test_a_missing_extra_names_the_exact_pip_install(argv, extra, idx_folder, tmp_path):
    from convlayer.models import MNISTModel

    checkpoint = tmp_path / "m.npz"
    MNISTModel(28, 10).save(checkpoint)
    argv = [a.replace("RUN", str(checkpoint)).replace("OUT", str(tmp_path)) for a in argv]
    done = plain(*argv, cwd=tmp_path)
    assert done.returncode == 1, (done.stdout, done.stderr)
    last = done.stderr.strip().splitlines()
    assert len(last) == 1 and f"pip install 'convlayer[{extra}]'" in last[0], done.stderr
