"""The generated Winograd transforms: their code, their results, and where they are compiled."""

import numpy as np
import pytest

from convlayer.functional import codegen, conv2d_backward, conv2d_forward, kernels, transforms, winograd
from reference import assert_close, conv2d_reference


def _run(x, kernel, bias, loops, monkeypatch, **kwargs):
    """Forward and backward with the transforms of ``loops`` ('generated', 'kernels' or None)."""
    monkeypatch.setattr(winograd, "loops_for", lambda n: loops)
    y, cache = conv2d_forward(x, kernel, bias, algorithm="winograd", **kwargs)
    dy = np.cos(np.arange(y.size)).reshape(y.shape).astype(x.dtype)
    return (y, *conv2d_backward(dy, cache))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("hw, kernel_hw, padding", [
    ((14, 14), (5, 5), ((2, 2), (2, 2))),  # the lesson's conv2: F(4x4, 5x5)
    ((7, 9), (3, 3), ((1, 1), (1, 1))),  # F(6, 3) across, tiles overhang both edges
    ((11, 10), (5, 3), ((2, 2), (1, 1))),  # different tiles down and across
    ((6, 5), (2, 4), ((0, 1), (1, 2))),  # even kernels: unpaired rows and columns
])
def test_generated_transforms_equal_the_general_loops_and_einsum(hw, kernel_hw, padding, dtype, rng, monkeypatch):
    x = rng.standard_normal((3, *hw, 6)).astype(dtype)
    kernel = rng.standard_normal((*kernel_hw, 6, 5)).astype(dtype)
    bias = rng.standard_normal(5).astype(dtype)
    results = {loops: _run(x, kernel, bias, loops, monkeypatch, padding=padding, max_chunk_bytes=5000)
               for loops in ("generated", "kernels", None)}
    tol = 3e-5 if dtype == np.float32 else 1e-12  # float32: Winograd rounds, each order its own way
    for name, generated, general, einsum in zip(("y", "dx", "dkernel", "dbias"), *results.values()):
        assert generated.dtype == dtype
        assert_close(generated, general, tol, name)
        assert_close(generated, einsum, tol, name)
    # and the convolution itself, exactly, in float64
    assert_close(results["generated"][0], conv2d_reference(x, kernel, bias, padding=padding), tol, "y vs loops")


def test_big_batches_take_the_generated_loops_and_small_ones_the_general(monkeypatch):
    if not kernels.enabled():
        pytest.skip("numba is switched off: both take NumPy's einsum")  # pragma: no cover
    assert winograd.loops_for(winograd.GENERATED_MIN_IMAGES) == "generated"
    assert winograd.loops_for(winograd.GENERATED_MIN_IMAGES - 1) == "kernels"
    kernels.set_enabled(False)
    try:
        assert winograd.loops_for(1000) is None
    finally:
        kernels.set_enabled(True)


def test_input_rows_share_their_even_and_odd_parts():
    """B^T of F(4, 5): 8 loads, 8 stores, 26 products and 6 sums for 44 nonzeros (pairs at +-1, +-2, +-1/2)."""
    _, _, bt = winograd.transform_matrices(4, 5)
    body = transforms.loop_body(bt, repr)
    loads = [line for line in body if "= src[" in line]
    stores = [line for line in body if line.startswith("dst[")]
    terms = sum(line.split("=", 1)[1].count("x") for line in body if not line.startswith("x"))
    assert len(loads) == 8 and len(stores) == 8
    shared = [line for line in stores if line.count("e") and line.count("o")]
    assert terms == 26 and len(shared) == 6 and np.count_nonzero(bt) == 44


def test_output_columns_share_their_sums_and_differences():
    """A^T of F(4, 5): each output row takes x_p + x_-p or x_p - x_-p, computed once per pair of points."""
    at, _, _ = winograd.transform_matrices(4, 5)
    body = transforms.loop_body(at, repr)
    assert sum(line.startswith(("p", "n")) for line in body) == 6  # three pairs, sum and difference each
    outputs = [line.split("=", 1)[1] for line in body if line.startswith("dst[")]
    assert len(outputs) == 4 and all(out.count("x") <= 2 for out in outputs)  # x0 and x7 only, never a pair member


def test_the_generated_code_equals_its_matrix_for_any_matrix(rng):
    """Run ``module_source`` on random matrices with zeros, ones, pairs and overhangs, against ``mat @ src``."""
    mat_h = np.array([[1.0, 0.5, 0.25], [1.0, -0.5, 0.25], [0.0, 0.0, -1.0], [2.0, 0.0, 0.0]])  # a pair, a 1, a -1
    mat_w = rng.integers(-2, 3, (4, 5)).astype(np.float64)
    mat_w[mat_w.sum(axis=1) == 0, 0] = 3.0  # rows are never all zero
    namespace: dict = {}
    exec(transforms.module_source("transform", mat_h, mat_w, np.float64, cache=False), namespace)
    tiles = namespace["tiles"]
    # one "image" of 3 rows, each 5 runs of 2 values; along: (3 rows, 4 outputs); down: (4, 4) tiles
    src = rng.standard_normal(3 * 5 * 2)
    s_al = (np.arange(3)[:, None] * 5 + np.arange(5)) * 2
    d_al = (np.arange(3)[:, None] * 4 + np.arange(4)) * 2
    s_dn = (np.arange(3) * 4 + np.arange(4)[:, None]) * 2  # group j: scratch rows k of output column j
    d_dn = (np.arange(4) * 4 + np.arange(4)[:, None]) * 2  # out (i, j)
    scratch, out = np.zeros(3 * 4 * 2), np.zeros(4 * 4 * 2)
    tiles(src, s_al, d_al, scratch, s_dn, out, d_dn, 1, 0, 0, 2)
    d = src.reshape(3, 5, 2)
    expected = np.einsum("ik,klq,jl->ijq", mat_h, d, mat_w)
    np.testing.assert_allclose(out.reshape(4, 4, 2), expected, rtol=1e-12, atol=1e-12)


def test_generated_modules_are_cached_on_disk_and_built_in_memory_without_one(tmp_path, monkeypatch, rng):
    at, _, bt = winograd.transform_matrices(3, 3)
    monkeypatch.setenv("CONVLAYER_CACHE_DIR", str(tmp_path / "kernels"))
    assert codegen.cache_dir() == tmp_path / "kernels"
    source = transforms.module_source("transform", bt, bt, np.float32, cache=True)
    namespace = codegen.load_module(source, "winograd_test_module")
    assert (tmp_path / "kernels" / "winograd_test_module.py").read_text() == source
    assert callable(namespace["tiles"])
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("CONVLAYER_CACHE_DIR", str(blocker / "kernels"))  # cannot be made: compiled in memory
    assert codegen.cache_dir() is None
    namespace = codegen.load_module(source, "winograd_test_module_2")
    assert callable(namespace["tiles"])
    assert not list(tmp_path.glob("**/winograd_test_module_2.py"))
