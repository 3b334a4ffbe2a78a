"""POST /api/predict-cell, in process: the convolution panel's "predict the next cell" verdicts and refusals.

The wrong values are computed here from the trace's own numbers, the way a learner would get them
(a flipped kernel, zeros on the wrong side, the bias forgotten), never by calling the catalogue.
"""

import warnings

import numpy as np
import pytest

pytest.importorskip("starlette", reason="the web extra is not installed: pip install 'convlayer[web]'")
with warnings.catch_warnings():  # Starlette 1.x nudges towards httpx2; httpx is what the test extra installs
    warnings.filterwarnings("ignore", message=".*httpx.*deprecated")
    from starlette.testclient import TestClient  # noqa: E402

from convlayer import checkpoint  # noqa: E402
from convlayer.models import MNISTModel  # noqa: E402
from convlayer.web.app import create_app  # noqa: E402

INPUT = [[3, 1, 4, 1, 5, 9], [2, 6, 5, 3, 5, 8], [9, 7, 9, 3, 2, 3], [8, 4, 6, 2, 6, 4], [3, 3, 8, 3, 2, 7],
         [9, 5, 0, 2, 8, 8]]
EDGE = [[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]]  # the panel's default kernel: flipping it changes the sign
CASE = {"input": INPUT, "kernel": EDGE, "bias": 0.5, "strides": 1, "padding": "valid"}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    path = tmp_path_factory.mktemp("web") / "tiny.npz"
    checkpoint.save(path, MNISTModel(28, 10, seed=3), meta={"dataset": "mnist", "input_dim": 28})
    return TestClient(create_app(path, dataset_loader=lambda name: None))


def predict(client, cell, value, **changes):
    return client.post("/api/predict-cell", json={**CASE, **changes, "cell": cell, "value": value})


def traced(client, **changes):
    response = client.post("/api/trace", json={**CASE, **changes})
    assert response.status_code == 200, response.text
    return response.json()


def window(trace, row, col):
    step = trace["steps"][row * len(trace["output"][0]) + col]
    return np.asarray(step["window"])[:, :, 0]  # (kh, kw) of the padded input


def test_the_right_value_is_right_with_the_terms_of_its_sum(client):
    trace = traced(client)
    expected = trace["output"][1][2]
    verdict = predict(client, [1, 2], expected).json()
    assert verdict["correct"] is True and verdict["expected"] == expected and verdict["mistakes"] == []
    assert len(verdict["terms"]) == 9 and verdict["hint"].startswith("Right")
    assert sum(t["product"] for t in verdict["terms"]) + verdict["bias"] == pytest.approx(expected)
    assert [(t["row"], t["col"]) for t in verdict["terms"][:3]] == [(1, 2), (1, 3), (1, 4)]
    # The page shows two decimals: a number that rounds to the shown one is right, one that does not is not.
    assert predict(client, [1, 2], expected + 0.004).json()["correct"] is True
    assert predict(client, [1, 2], expected + 0.01).json()["correct"] is False


def test_the_flipped_kernel_value_is_named_with_its_rule(client):
    trace = traced(client)
    flipped = float(np.sum(window(trace, 1, 2) * np.asarray(EDGE)[::-1, ::-1]) + CASE["bias"])
    assert flipped != trace["output"][1][2]
    verdict = predict(client, [1, 2], flipped).json()
    assert verdict["correct"] is False and verdict["expected"] == trace["output"][1][2]
    named = {m["name"]: m for m in verdict["mistakes"]}
    assert "kernel flipped" in named and "bias missing" not in named
    assert "flipped" in named["kernel flipped"]["says"] and "cross-correlation" in named["kernel flipped"]["rule"]
    assert "'kernel flipped'" in verdict["hint"] and f"{trace['output'][1][2]:g}" in verdict["hint"]


def test_the_bias_forgotten_and_same_padding_on_the_wrong_side_are_named(client):
    trace = traced(client)
    forgot_bias = predict(client, [3, 3], trace["output"][3][3] - 0.5).json()
    assert "bias missing" in [m["name"] for m in forgot_bias["mistakes"]]
    # 'same' with a 2x2 kernel adds one zero row and column: at the bottom/right, not the top/left.
    kernel = [[1, 2], [3, -4]]
    same = traced(client, kernel=kernel, padding="same")
    assert same["padding"] == [[0, 1], [0, 1]]
    top_left = np.pad(np.asarray(INPUT, float), ((1, 0), (1, 0)))  # (7, 7): the zeros where they do not go
    value = float(np.sum(top_left[2:4, 0:2] * np.asarray(kernel)) + 0.5)  # output[2, 0]
    verdict = predict(client, [2, 0], value, kernel=kernel, padding="same").json()
    assert verdict["correct"] is False and verdict["expected"] == same["output"][2][0]
    named = {m["name"]: m for m in verdict["mistakes"]}
    assert "odd padding at the top/left" in named and "bottom" in named["odd padding at the top/left"]["rule"]


def test_a_wrong_value_no_mistake_gives_says_so(client):
    verdict = predict(client, [0, 0], 1234.5).json()
    assert (verdict["correct"], verdict["diagnosed"], verdict["mistakes"]) == (False, True, [])
    assert verdict["hint"].startswith("No classic mistake gives 1234.5")


@pytest.mark.parametrize("changes, reason", [
    ({"dilation": 2}, "dilation (2, 2)"), ({"padding": "same", "padding_mode": "reflect"}, "padding_mode 'reflect'")])
def test_settings_outside_the_catalogue_get_no_diagnosis_rather_than_a_guess(client, changes, reason):
    trace = traced(client, **changes)
    flipped = float(np.sum(window(trace, 1, 1) * np.asarray(EDGE)[::-1, ::-1]) + CASE["bias"])
    assert flipped != trace["output"][1][1]
    verdict = predict(client, [1, 1], flipped, **changes).json()
    assert (verdict["correct"], verdict["diagnosed"], verdict["mistakes"]) == (False, False, [])
    assert verdict["expected"] == trace["output"][1][1]
    assert verdict["hint"].startswith(f"No diagnosis for this setting ({reason}")


def test_a_wide_kernel_that_no_longer_fits_when_transposed_still_gets_a_verdict(client):
    changes = {"input": [row[:5] for row in INPUT[:3]], "kernel": [[1, 2, 3, 4, 5], [0, 1, 0, 1, 0]]}
    verdict = predict(client, [0, 0], 7, **changes)
    assert verdict.status_code == 200, verdict.text
    expected = traced(client, **changes)["output"][0][0]
    assert (verdict.json()["correct"], verdict.json()["expected"]) == (False, expected)
    # the mistakes that still exist for it are still named: here the flipped kernel
    window, kernel = np.asarray(changes["input"])[0:2, 0:5], np.asarray(changes["kernel"])
    flipped = predict(client, [0, 0], float(np.sum(window * kernel[::-1, ::-1]) + 0.5), **changes).json()
    assert "kernel flipped" in [m["name"] for m in flipped["mistakes"]]


@pytest.mark.parametrize("body, status, words", [
    ({**CASE, "value": 3}, 422, "needs 'cell'"),
    ({**CASE, "cell": [0, 0]}, 422, "needs 'value'"),
    ({**CASE, "cell": [4, 0], "value": 3}, 422, "inside the 4x4 output (row 0..3, column 0..3), got [4, 0]"),
    ({**CASE, "cell": [0, -1], "value": 3}, 422, "inside the 4x4 output"),
    ({**CASE, "cell": 5, "value": 3}, 422, "cell must be [row, column]"),
    ({**CASE, "cell": [True, 0], "value": 3}, 422, "cell must be [row, column]"),
    ({**CASE, "cell": [0, 0.5], "value": 3}, 422, "cell must be [row, column]"),
    ({**CASE, "cell": [0, 0], "value": "12"}, 422, 'value must be a finite number (the one predicted for the cell) '
                                                   'of at most 1e+15 in size, got "12"'),
    ({**CASE, "cell": [0, 0], "value": True}, 422, "value must be a finite number"),
    ({**CASE, "cell": [0, 0], "value": 1e300}, 422, "value must be a finite number"),
    ({**CASE, "cell": [0, 0], "value": 3, "guess": 3}, 422, "unknown predict-cell fields ['guess']"),
    ({**CASE, "cell": [0, 0], "value": 3, "kernel": [[1] * 7] * 7}, 422, "does not fit"),
    ({**CASE, "cell": [0, 0], "value": 3, "padding": "full"}, 422, "padding must be 'valid' or 'same'"),
    ([1, 2], 400, "must be a JSON object"),
])
def test_bad_requests_are_refused_with_a_message_that_says_what_to_send(client, body, status, words):
    response = client.post("/api/predict-cell", json=body)
    assert response.status_code == status and words in response.json()["error"], response.text


def test_bodies_that_are_not_json_are_refused(client):
    response = client.post("/api/predict-cell", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]
    nan = client.post("/api/predict-cell", content=b'{"input": [[1]], "kernel": [[1]], "cell": [0, 0], "value": NaN}',
                      headers={"content-type": "application/json"})
    assert nan.status_code == 422 and "finite number" in nan.json()["error"]
    response = client.post("/api/predict-cell", content=b"cell=0,0", headers={"content-type": "text/plain"})
    assert response.status_code == 415 and "application/json" in response.json()["error"]
    assert client.get("/api/predict-cell").status_code == 405
