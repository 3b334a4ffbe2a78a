"""Shared test setup. TensorFlow is configured before any test module imports it."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow leaves oneDNN off on some CPUs (seen on an AMD EPYC of family 25), and its own
# kernels then refuse dilated convolutions' gradients: the oracle needs oneDNN.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh, seeded generator per test: failures reproduce exactly."""
    return np.random.default_rng(20240531)


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """The suite's one small trained model: `convlayer train` on scikit-learn's 8x8 digits.

    A run folder with best.npz, last.npz and log.csv (MNISTModel(8, 10), 2 epochs, about 90%
    test accuracy). Tests that need a trained checkpoint share it; none may modify it.
    """
    from convlayer.cli import main

    out = tmp_path_factory.mktemp("digits-run")
    code = main(["train", "--dataset", "digits", "--epochs", "2", "--batch-size", "64", "--output-dir", str(out),
                 "--quiet", "--seed", "1"])
    assert code == 0
    return out
