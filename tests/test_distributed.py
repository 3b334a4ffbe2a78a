"""Data-parallel training and batch prediction on MPI: real `mpirun -n 2` jobs (Open MPI, mpi4py).

Each job runs under a timeout. The jobs that are not the `convlayer` command run this file as a
script (``python tests/test_distributed.py MODE ...``, see the bottom).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from convlayer import checkpoint as ckpt
from convlayer.cli import main
from convlayer.training import read_log

HERE = Path(__file__).resolve()
# Open MPI refuses root and, in containers, cross-memory attach without these: the launcher's settings.
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_btl_vader_single_copy_mechanism": "none", "OMPI_MCA_rmaps_base_oversubscribe": "1"}
CONVLAYER = str(Path(sys.executable).with_name("convlayer"))
BATCHES = (64, 64, 33, 64, 1)  # global batches: even shards, uneven ones (16/17), one smaller than P


def mpirun(*command, timeout=60, ranks=2):
    env = {**os.environ, **MPI_ENV}
    env.pop("OMPI_COMM_WORLD_SIZE", None)
    return subprocess.run(["mpirun", "-n", str(ranks), *command], capture_output=True, text=True, timeout=timeout,
                          env=env)


def step_model():
    """MNISTModel(8, 10) with dropout off and Adam: every step is deterministic.

    Adam's default epsilon (1e-7) turns a gradient component near 0 into a step of about
    +-learning_rate whose sign the last bits decide: float32 sums taken in another order (two
    shards, other threads) then part ways by ~1e-2 within five steps, in any data-parallel
    engine. With epsilon 1e-3 the step stays proportional to the gradient, so the comparison
    measures the reduction, not that amplification.
    """
    from convlayer.models import MNISTModel

    model = MNISTModel(8, 10, seed=3)
    model.get_layer("dropout").rate = 0.0
    model.compile("adam", learning_rate=3e-3, epsilon=1e-3)
    return model


def step_data():
    from convlayer import datasets

    data = datasets.load("digits")
    return data.x_train[:sum(BATCHES)], data.y_train[:sum(BATCHES)]


def global_batches(x, y):
    start = 0
    for size in BATCHES:
        yield x[start:start + size], y[start:start + size]
        start += size


def test_two_ranks_with_half_batches_take_the_steps_of_one_process_with_full_batches(tmp_path):
    out = tmp_path / "two.npz"
    job = mpirun(sys.executable, str(HERE), "steps", str(out))
    assert job.returncode == 0, job.stderr[-3000:]
    assert f"replicas bitwise identical after {len(BATCHES)} steps" in job.stdout
    model = step_model()
    initial = model.get_weights()
    x, y = step_data()
    for xb, yb in global_batches(x, y):
        model.train_step(xb, yb)
    with np.load(out) as saved:
        two = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    for one_rank, two_ranks, before in zip(model.get_weights(), two, initial):
        # Relative to each array's scale: float32 sums in another order differ in the last bits.
        difference, scale = np.abs(two_ranks - one_rank).max(), np.abs(one_rank).max()
        assert difference <= 1e-5 * scale
        assert np.abs(one_rank - before).max() > 100 * difference  # the steps moved every weight array


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mpi-run") / "run"
    job = mpirun(CONVLAYER, "train", "--dataset", "digits", "--epochs", "2", "--batch-size", "64", "--seed", "1",
                 "--output-dir", str(out), timeout=120)
    assert job.returncode == 0, job.stderr[-3000:]
    return out, job


def test_mpirun_train_writes_one_log_and_one_checkpoint_and_learns_like_one_process(two_rank_run, digits_run):
    out, job = two_rank_run
    assert sorted(p.name for p in out.iterdir()) == ["best.npz", "last.npz", "log.csv"]  # no temp files left
    assert job.stdout.count("Data-parallel over 2 MPI processes, 1 thread each") == 1
    assert job.stdout.count("Test accuracy:") == 1  # rank 0 alone prints
    rows = read_log(out / "log.csv")
    assert [row["epoch"] for row in rows] == [1, 2]
    assert rows[1]["loss"] < rows[0]["loss"]
    from convlayer import datasets

    test = datasets.load("digits")
    two = ckpt.load(out / "best.npz").model.evaluate(test.x_test, test.y_test)["accuracy"]
    one = ckpt.load(digits_run / "best.npz").model.evaluate(test.x_test, test.y_test)["accuracy"]
    printed = float(job.stdout.split("Test accuracy: ")[1].split("%")[0]) / 100
    assert printed == pytest.approx(two, abs=1e-4)  # the sharded test accuracy is the whole test set's
    assert two > 0.7 and abs(two - one) < 0.08, (two, one)
    state = ckpt.load(out / "last.npz")
    assert state.training_state["epoch"] == 2 and state.optimizer.iterations == 2 * 21  # 1,347 images / 64


def test_a_two_rank_checkpoint_resumes_in_one_process(two_rank_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(two_rank_run[0], run)
    assert main(["train", "--resume", str(run / "last.npz"), "--epochs", "3", "--quiet"]) == 0
    rows = read_log(run / "log.csv")
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    assert rows[:2] == read_log(two_rank_run[0] / "log.csv")[:2]
    assert ckpt.load(run / "last.npz").optimizer.iterations == 3 * 21


def test_a_one_process_checkpoint_resumes_on_two_ranks(digits_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    job = mpirun(CONVLAYER, "train", "--resume", str(run / "last.npz"), "--epochs", "3", "--quiet", timeout=120)
    assert job.returncode == 0, job.stderr[-3000:]
    rows = read_log(run / "log.csv")
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    assert rows[:2] == read_log(digits_run / "log.csv")[:2]
    assert rows[2]["val_accuracy"] >= 0.5
    assert ckpt.load(run / "last.npz").optimizer.iterations == 3 * 21


def test_mpirun_predict_gathers_one_csv_in_input_order(digits_run, tmp_path):
    from PIL import Image

    from convlayer import datasets

    test = datasets.load("digits")
    files = []
    for i in range(7):
        path = tmp_path / f"digit_{i}.png"
        pixels = np.asarray(test.x_test[i]).reshape(8, 8)
        Image.fromarray(np.round(pixels / pixels.max() * 255).astype(np.uint8)).save(path)
        files.append(str(path))
    order = [files[i] for i in (5, 0, 6, 2, 1, 4, 3)]  # not sorted: the CSV must follow this order
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    assert main(["predict", str(digits_run / "best.npz"), *order, "--out", str(one)]) == 0
    job = mpirun(CONVLAYER, "predict", str(digits_run / "best.npz"), *order, "--out", str(two))
    assert job.returncode == 0, job.stderr[-3000:]
    assert job.stdout.count("Wrote 7 predictions") == 1
    lines_one, lines_two = one.read_text().splitlines(), two.read_text().splitlines()
    assert lines_two[0] == "file,class,probability,top3"
    assert [line.split(",")[0] for line in lines_two[1:]] == order
    for a, b in zip(lines_one[1:], lines_two[1:]):
        (file_a, class_a, p_a, _), (file_b, class_b, p_b, _) = a.split(","), b.split(",")
        assert (file_a, class_a) == (file_b, class_b) and float(p_a) == pytest.approx(float(p_b), abs=1e-5)
    assert sum(line.split(",")[1] == str(test.class_names[test.y_test[i]])
               for i, line in zip((5, 0, 6, 2, 1, 4, 3), lines_two[1:])) >= 5


def test_an_exception_on_one_rank_ends_the_job_with_its_message():
    job = mpirun(sys.executable, str(HERE), "raise", timeout=40)
    assert job.returncode != 0
    assert "[rank 1/2] RuntimeError: rank 1 failed on purpose" in job.stderr


def test_an_error_line_on_one_rank_ends_the_job_while_the_other_waits():
    job = mpirun(sys.executable, str(HERE), "error-line", timeout=40)
    assert job.returncode != 0
    assert "rank 1 gave up" in job.stderr


def test_without_mpi_there_is_no_world(monkeypatch):
    from convlayer import distributed

    for name in distributed._SIZE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(distributed, "_checked", False)
    monkeypatch.setattr(distributed, "_world", None)
    assert distributed.world() is None and distributed.is_root()
    assert "mpi4py.MPI" not in sys.modules or os.environ.get("OMPI_COMM_WORLD_SIZE")


# ---------------------------------------------------------------------------- run by mpirun


def _steps(out):
    from convlayer import distributed

    w = distributed.world()
    model = step_model()
    distributed.broadcast_model(w, model, model.optimizer)
    model.data_parallel = distributed.DataParallel(w, model, seed=0)
    x, y = step_data()
    for step, (xb, yb) in enumerate(global_batches(x, y), 1):
        model.train_step(*model.data_parallel.shard(xb, yb))
        flat = np.concatenate([value.ravel() for value in model.get_weights()])
        every = np.empty((w.size, flat.size), flat.dtype)
        w.comm.Allgather(flat, every)
        if not (every == every[0]).all():
            raise AssertionError(f"the replicas differ after step {step}")
    if w.is_root:
        np.savez(out, *model.get_weights())
        print(f"replicas bitwise identical after {len(BATCHES)} steps")
    return 0


def _raise():
    from convlayer import distributed

    w = distributed.world()

    def work():
        if w.rank == 1:
            raise RuntimeError("rank 1 failed on purpose")
        w.sum([1.0])  # rank 0 waits here for ever, but for MPI_Abort
        return 0

    return distributed.run_or_abort(w, work)


def _error_line():
    from convlayer import distributed

    w = distributed.world()
    distributed.FAILURE_GRACE_SECONDS = 1.0

    def work():
        if w.rank == 1:
            print("rank 1 gave up", file=sys.stderr)
            return 1
        w.sum([1.0])
        return 0

    return distributed.run_or_abort(w, work)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "steps":
        sys.exit(_steps(sys.argv[2]))
    sys.exit({"raise": _raise, "error-line": _error_line}[mode]())
