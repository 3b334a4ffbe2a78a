"""The thread-parallel paths equal the single-threaded (pure NumPy) ones, and BLAS settings are restored."""

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from convlayer import parallel
from convlayer.functional import conv2d_backward, conv2d_forward
from convlayer.functional.dense import dense_backward, dense_forward
from convlayer.functional.pool import max_pool2d_backward, max_pool2d_forward
from convlayer.models import MNISTModel


@pytest.fixture
def threads():
    """Set the thread count for one test; restore it afterwards."""
    before = parallel.get_num_threads()
    yield parallel.set_num_threads
    parallel.set_num_threads(before)


def blas_threads():
    """Thread counts of NumPy's BLAS (the one convlayer's GEMMs call)."""
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas" and "numpy" in i["filepath"]]


@pytest.mark.parametrize("n, parts", [(0, 2), (1, 2), (5, 2), (7, 3), (4, 8)])
def test_split_covers_the_range_in_order(n, parts):
    ranges = parallel.split(n, parts)
    assert [i for lo, hi in ranges for i in range(lo, hi)] == list(range(n))
    assert all(hi > lo for lo, hi in ranges) or n == 0
    sizes = [hi - lo for lo, hi in ranges]
    assert max(sizes) - min(sizes) <= 1


def test_run_returns_results_in_order_and_respects_min_size(threads):
    threads(2)
    assert parallel.run(lambda lo, hi: (lo, hi), 10) == [(0, 5), (5, 10)]
    assert parallel.run(lambda lo, hi: (lo, hi), 10, min_size=6) == [(0, 10)]


def test_run_propagates_a_part_error_after_all_parts_finish(threads):
    threads(2)
    done = []

    def part(lo, hi):
        if lo > 0:
            raise ValueError("second part failed")
        done.append(lo)

    with pytest.raises(ValueError, match="second part failed"):
        parallel.run(part, 4)
    assert done == [0]


def test_compute_holds_blas_to_one_thread_and_restores_it(threads):
    threads(2)
    before = blas_threads()
    assert before, "NumPy's BLAS not found by threadpoolctl"
    with parallel.compute():
        with parallel.compute():  # nested: still one thread
            assert blas_threads() == [1] * len(before)
        assert blas_threads() == [1] * len(before)
    assert blas_threads() == before


def test_set_num_threads_rejects_bad_values():
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="positive int"):
            parallel.set_num_threads(bad)


def _conv_case(rng, n=6):
    x = rng.standard_normal((n, 9, 8, 4), dtype=np.float32)
    kernel = rng.standard_normal((3, 2, 4, 5), dtype=np.float32)
    bias = rng.standard_normal(5, dtype=np.float32)
    return x, kernel, bias


@pytest.mark.parametrize("n", [1, 2, 7])
def test_conv_parts_equal_the_single_threaded_path(threads, n):
    rng = np.random.default_rng(0)
    x, kernel, bias = _conv_case(rng, n)
    kwargs = dict(strides=(2, 1), padding=((1, 2), (0, 1)), max_chunk_bytes=2000)
    results = []
    for count in (1, 2, 3):
        threads(count)
        y, cache = conv2d_forward(x, kernel, bias, **kwargs)
        dy = np.random.default_rng(1).standard_normal(y.shape, dtype=np.float32)
        results.append((y, *conv2d_backward(dy, cache)))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_dense_and_pool_parts_equal_the_single_threaded_path(threads):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 30), dtype=np.float32)
    kernel = rng.standard_normal((30, 7), dtype=np.float32)
    bias = rng.standard_normal(7, dtype=np.float32)
    dy = rng.standard_normal((64, 7), dtype=np.float32)
    img = rng.standard_normal((9, 6, 6, 3), dtype=np.float32)
    dp = rng.standard_normal((9, 3, 3, 3), dtype=np.float32)
    results = []
    for count in (1, 2):
        threads(count)
        y = dense_forward(x, kernel, bias)
        py, cache = max_pool2d_forward(img)
        results.append((y, *dense_backward(dy, x, kernel), py, max_pool2d_backward(dp, cache)))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_training_without_threadpoolctl_matches_the_threaded_path(threads, monkeypatch):
    """The pure NumPy path (no threadpoolctl installed) trains to the same weights.

    SGD, not Adam: Adam turns float32 rounding differences in near-zero gradients into
    whole learning-rate steps, while SGD keeps them as small as they are.
    """
    rng = np.random.default_rng(0)
    x = rng.random((16, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 16)
    weights = []
    for pure in (False, True):
        if pure:
            monkeypatch.setattr(parallel, "ThreadpoolController", None)
            assert parallel.get_num_threads() == 1
        else:
            threads(2)
        model = MNISTModel(28, 10, seed=0)
        model.compile("sgd", learning_rate=0.05)
        for _ in range(2):
            model.train_step(x, y)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_repeated_calls_reuse_memory_instead_of_page_faulting():
    """Once warm, training steps and predictions touch no fresh pages (glibc keeps freed memory)."""
    import resource

    from convlayer import memory

    assert memory.keep_freed_memory()
    rng = np.random.default_rng(0)
    x = rng.random((128, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 128)
    model = MNISTModel(28, 10, seed=0)
    model.compile("adam")

    def work():  # different array sizes in turn, as in training with validation
        model.train_step(x, y)
        model.predict(x[:100])

    for _ in range(3):
        work()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(4):
        work()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert faults < 100, f"{faults} page faults in 4 warm rounds"  # 500-800 per step without it


@pytest.mark.parametrize("name", ["adam", "sgd"])
def test_optimizer_chunks_and_parts_equal_one_whole_update(threads, monkeypatch, name):
    """A parameter bigger than a chunk, split over cores and chunks, updates exactly as in one piece."""
    from convlayer import optimizers

    rng = np.random.default_rng(0)
    param0 = rng.standard_normal((700, 1000), dtype=np.float32)  # 700k values: several chunks
    grads = [rng.standard_normal(param0.shape, dtype=np.float32) for _ in range(3)]
    results = []
    for count, chunk in ((1, 1 << 30), (2, optimizers.CHUNK), (3, 12345)):
        threads(count)
        monkeypatch.setattr(optimizers, "CHUNK", chunk)
        opt = optimizers.get(name, momentum=0.9) if name == "sgd" else optimizers.get(name)
        param = param0.copy()
        for grad in grads:
            opt.apply([("w", param, grad)])
        results.append(param)
    assert not np.array_equal(results[0], param0)
    for other in results[1:]:
        np.testing.assert_array_equal(results[0], other)  # element-wise math: bit-identical


def test_a_forked_child_gets_a_working_pool(threads):
    """After fork the parent's pool threads do not exist in the child; work must still run there."""
    import multiprocessing

    threads(2)
    parallel.run(lambda lo, hi: None, 4)  # the parent's pool exists now
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        assert pool.apply_async(_parts_in_child).get(timeout=60) == [(0, 2), (2, 4)]


def _parts_in_child():
    return parallel.run(lambda lo, hi: (lo, hi), 4)


def test_a_slow_worker_part_is_waited_for(threads):
    import time

    threads(2)

    def part(lo, hi):
        if lo > 0:
            time.sleep(0.05)  # the caller's part ends long before
        return hi - lo

    assert parallel.run(part, 10) == [5, 5]
