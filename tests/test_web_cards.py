"""The Filters tab's endpoint, ``GET /api/cards``, in process over Starlette's TestClient."""

import warnings

import numpy as np
import pytest

from convlayer import checkpoint
from convlayer.viz import cards
from convlayer.web.app import create_app

with warnings.catch_warnings():  # Starlette 1.x nudges towards httpx2; httpx is what the test extra installs
    warnings.filterwarnings("ignore", message=".*httpx.*deprecated")
    from starlette.testclient import TestClient


@pytest.fixture(scope="module")
def served(digits_run):
    ck = checkpoint.load(digits_run / "best.npz")
    data = ck.test_data()
    calls = []

    def loader(name):
        calls.append(name)
        return data

    with TestClient(create_app(ck, dataset_loader=loader)) as client:
        yield client, ck, data, calls


def test_overview_matches_show_cards(served):
    client, ck, data, calls = served
    response = client.get("/api/cards?layer=conv2")
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["layer"] == "conv2" and document["layers"] == ["conv1", "conv2"]
    assert document["images"] == len(data.x_test) and len(document["filters"]) == 64
    stats = cards.filter_stats(ck.model, "conv2", data.x_test, data.y_test, 10, filters=[9])
    entry = document["filters"][9]
    assert [t["image"] for t in entry["top"]] == [int(i) for i in stats.top_image[:, 0]]
    np.testing.assert_allclose([t["activation"] for t in entry["top"]], stats.top_activation[:, 0], rtol=1e-5)
    np.testing.assert_allclose(entry["class_mean"], stats.class_mean[:, 0], rtol=1e-5)
    kernel = ck.model.get_layer("conv2").kernel
    channel = entry["kernel_channels"][0]
    np.testing.assert_allclose(entry["kernel"][0], kernel[:, :, channel, 9], atol=1e-4)
    client.get("/api/cards")  # conv1 by default
    assert calls == ["digits"]  # the data set is loaded once


def test_one_card_has_pixels_and_an_optimized_input(served):
    client, ck, data, _ = served
    card = client.get("/api/cards?layer=conv1&filter=4").json()
    entry = card["filter"]
    assert entry["index"] == 4 and len(card["patches"]) == 9
    np.testing.assert_allclose(card["patches"][0], data.x_test[entry["top"][0]["image"]], atol=1e-4)
    before, after = card["optimized_activation"]
    assert after > before
    image = np.array(card["optimized"])
    assert image.shape == (8, 8)
    recomputed = cards.layer_output(ck.model, "conv1", image[None])[0, ..., 4].mean()
    assert recomputed == pytest.approx(after, rel=1e-3)


@pytest.mark.parametrize("query, status, message", [
    ("layer=dense", 422, "no Conv2D layer 'dense'"),
    ("layer=conv1&filter=32", 422, "conv1 has filters 0..31"),
    ("layer=conv1&filter=-1", 422, "filter must be a non-negative integer"),
])
def test_bad_requests(served, query, status, message):
    client = served[0]
    response = client.get(f"/api/cards?{query}")
    assert response.status_code == status and message in response.json()["error"]


def test_no_dataset_is_503(digits_run):
    ck = checkpoint.load(digits_run / "best.npz")

    def loader(name):
        raise FileNotFoundError("no IDX files here")

    with TestClient(create_app(ck, dataset_loader=loader)) as client:
        response = client.get("/api/cards?layer=conv1")
    assert response.status_code == 503 and "no IDX files here" in response.json()["error"]
