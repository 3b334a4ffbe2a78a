"""The Train tab's API: a real background training process, streamed as Server-Sent Events.

Small runs on scikit-learn's digits (512 images, batches of 64: 8 steps an epoch).
"""

import json
import time

import numpy as np
import pytest
from starlette.testclient import TestClient

from convlayer import checkpoint
from convlayer.models import MNISTModel
from convlayer.web.app import create_app
from convlayer.web.train import Trainer

pytestmark = pytest.mark.timeout(180)
SMALL = {"dataset": "digits", "epochs": 2, "batch_size": 64, "limit": 512, "every": 2, "seed": 3}


@pytest.fixture
def trained():
    ck = checkpoint.Checkpoint(MNISTModel(8, 10), meta={"dataset": "digits", "input_dim": 8})
    trainer = Trainer()
    with TestClient(create_app(ck, trainer=trainer)) as client:
        yield client, trainer
    assert not trainer.running and not trainer.folder.exists()  # shutdown stopped it and cleaned up


def _events(client, run, since=0):
    out = []
    with client.stream("GET", f"/api/train/events?run={run}&since={since}") as stream:
        for line in stream.iter_lines():
            if line.startswith("data:") and line[5:].strip() != "{}":
                out.append(json.loads(line[5:]))
    return out


def _curve(events):
    return [(e["step"], e["loss"]) for e in events if e["type"] == "progress"]


def test_a_run_streams_progress_snapshots_and_the_end_and_the_same_seed_gives_the_same_run(trained):
    client, trainer = trained
    assert client.post("/api/train/start", json=SMALL).status_code == 200
    first = _events(client, 1)
    kinds = [e["type"] for e in first]
    assert kinds.count("progress") == 8 and kinds.count("snapshot") == 2 and kinds[-1] == "done"
    snapshot = next(e for e in first if e["type"] == "snapshot")
    assert np.array(snapshot["filters"]).shape == (32, 5, 5) and np.array(snapshot["maps"]).shape == (32, 8, 8)
    assert client.get("/api/train/state").json()["runs"][0]["snapshots"] == [1, 2]
    # The snapshot's filters are the checkpoint's conv1 kernel of that epoch.
    kernel = checkpoint.load(trainer.folder / "run_1" / "epoch_001.npz").model.get_layer("conv1").params["kernel"]
    np.testing.assert_allclose(np.moveaxis(kernel[:, :, 0, :], -1, 0), snapshot["filters"], atol=1e-4)
    assert client.post("/api/train/start", json=SMALL).status_code == 200
    assert _curve(_events(client, 2)) == _curve(first)


def test_pause_resume_learning_rate_and_stop(trained):
    client, trainer = trained
    client.post("/api/train/start", json={**SMALL, "epochs": 50, "every": 1})
    assert client.post("/api/train/start", json=SMALL).status_code == 409  # one training at a time
    while not any(e["type"] == "progress" for e in trainer.runs[1].events):
        time.sleep(0.05)
    assert client.post("/api/train/control", json={"action": "pause"}).json()["ok"]
    while trainer.runs[1].status != "paused":
        time.sleep(0.05)
    count = len(trainer.runs[1].events)
    time.sleep(1.0)
    assert len(trainer.runs[1].events) == count  # nothing moves while paused
    client.post("/api/train/control", json={"action": "learning_rate", "value": 0.01})
    client.post("/api/train/control", json={"action": "resume"})
    while not any(e["type"] == "progress" and e["learning_rate"] == 0.01 for e in trainer.runs[1].events):
        time.sleep(0.05)
    client.post("/api/train/control", json={"action": "stop"})
    events = _events(client, 1)
    assert events[-1]["type"] == "stopped" and not trainer.running
    assert client.post("/api/train/control", json={"action": "stop"}).status_code == 409


def test_fork_from_a_snapshot_goes_on_like_the_original_until_its_change(trained):
    client, _ = trained
    client.post("/api/train/start", json={**SMALL, "epochs": 3})
    original = _events(client, 1)
    same = client.post("/api/train/fork", json={"run": 1, "epoch": 1, "learning_rate": SMALL.get("learning_rate",
                                                                                                     1e-3)})
    assert same.status_code == 200 and same.json()["parent"] == [1, 1]
    assert _curve(_events(client, 2)) == [p for p in _curve(original) if p[0] > 8]  # bit for bit after epoch 1
    client.post("/api/train/fork", json={"run": 1, "epoch": 1, "learning_rate": 0.02})
    changed = _events(client, 3)
    assert {e["learning_rate"] for e in changed if e["type"] == "progress"} == {0.02}
    assert _curve(changed) != [p for p in _curve(original) if p[0] > 8]


@pytest.mark.parametrize("path, body, status, message", [
    ("/api/train/start", {"epochs": 0}, 400, "epochs must be an integer in 1..100"),
    ("/api/train/start", {"dataset": "cifar"}, 400, "dataset must be one of"),
    ("/api/train/start", {"learning_rate": "fast"}, 400, "learning_rate must be a number"),
    ("/api/train/start", {"colour": 1}, 400, "unknown setting 'colour'"),
    ("/api/train/start", [1, 2], 400, "expected a JSON object"),
    ("/api/train/control", {"action": "jump"}, 400, "action must be one of"),
    ("/api/train/control", {"action": "pause"}, 409, "no training is running"),
    ("/api/train/fork", {"run": 7, "epoch": 1}, 400, "no run 7"),
])
def test_bad_settings_are_4xx_with_a_message(trained, path, body, status, message):
    client, _ = trained
    response = client.post(path, json=body)
    assert response.status_code == status and message in response.json()["error"]


def test_a_closed_page_stops_its_training(trained):
    client, trainer = trained
    trainer.grace_seconds = 0.5
    client.post("/api/train/start", json={**SMALL, "epochs": 50})
    with client.stream("GET", "/api/train/events?run=1") as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                break  # the page goes away after its first event
    deadline = time.monotonic() + 30
    while trainer.running and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not trainer.running and trainer.runs[1].status == "stopped"
