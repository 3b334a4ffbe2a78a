"""Shared test setup. TensorFlow's C++ logging is quieted before any test module imports it."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh, seeded generator per test: failures reproduce exactly."""
    return np.random.default_rng(20240531)
