"""Training you watch: one background process on convlayer's engine, streamed to the page.

``Trainer`` (in the server) starts ``convlayer.training.train`` in a spawned child process and
collects what the child reports on a queue: a ``progress`` event every few steps (loss, accuracy,
learning rate), a ``snapshot`` event per epoch (conv1's filters, the feature maps of one fixed
test image, the epoch's validation accuracy; the checkpoint is kept for "fork from here"), and
an end event (``done``, ``stopped`` or ``error``). The page reads them as Server-Sent Events.

Commands go the other way on a second queue: pause, resume, a new learning rate, stop. A fork
restarts from an epoch's snapshot (its weights, optimizer and random state, so that it goes on
exactly as the original did) with one setting changed, as a new run beside the first.

One training at a time. The child is a daemon and also stops by itself when its parent is gone,
so stopping the server (or killing it) leaves no process behind; the page stops its training
when it closes.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import queue
import shutil
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

DATASETS = ("digits", "fashion-mnist", "mnist")
LIMITS = {"epochs": (1, 100), "batch_size": (1, 1024), "every": (1, 10_000), "seed": (0, 2 ** 31 - 1),
          "limit": (1, 10 ** 7)}
_DECIMALS = 4


class TrainSettingError(ValueError):
    """A training setting the page sent that cannot be used (a 400 with the message)."""


@dataclass
class Settings:
    dataset: str = "digits"
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    seed: int = 0
    limit: int | None = None
    every: int = 5  # steps between progress events

    @classmethod
    def parse(cls, document) -> "Settings":
        if not isinstance(document, dict):
            raise TrainSettingError("expected a JSON object of settings.")
        unknown = sorted(set(document) - set(cls.__dataclass_fields__))
        if unknown:
            raise TrainSettingError(f"unknown setting {', '.join(map(repr, unknown))}; the settings are "
                                    f"{', '.join(cls.__dataclass_fields__)}.")
        settings = cls(**document)
        if settings.dataset not in DATASETS:
            raise TrainSettingError(f"dataset must be one of {', '.join(DATASETS)}, got {settings.dataset!r}.")
        for name, (low, high) in LIMITS.items():
            value = getattr(settings, name)
            if name == "limit" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise TrainSettingError(f"{name} must be an integer in {low}..{high}, got {value!r}.")
        _check_rate(settings.learning_rate)
        return settings


def _check_rate(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 < value <= 1:
        raise TrainSettingError(f"learning_rate must be a number in (0, 1], got {value!r}.")
    return float(value)


# ---------------------------------------------------------------------------- the child process


class _Stop(Exception):
    pass


def _rounded(array) -> list:
    return np.round(np.asarray(array, np.float64), _DECIMALS).tolist()


def _child(settings: dict, run_dir: str, resume: str | None, events, commands, parent: int) -> None:
    """Runs in the spawned process: train, reporting to ``events``, obeying ``commands``."""
    from .. import datasets
    from ..models import Callback
    from ..training import TrainConfig, train

    settings = Settings(**settings)
    run_dir = Path(run_dir)
    try:
        data = datasets.load(settings.dataset, validation_split=1 / 12, seed=settings.seed)
        probe = data.x_test[:1]  # the fixed image whose feature maps the page shows

        class Stream(Callback):
            def __init__(self):
                self.rate, self.paused, self.step, self.epoch = settings.learning_rate, False, 0, 0

            def _obey(self) -> None:
                """Apply every pending command; while paused, wait for the next one."""
                while True:
                    try:
                        action, value = commands.get(block=self.paused, timeout=0.5)
                    except queue.Empty:
                        if os.getppid() != parent:  # the server is gone: so is this training
                            raise _Stop from None
                        if self.paused:
                            continue
                        return
                    if action == "stop":
                        raise _Stop
                    if action in ("pause", "resume"):
                        self.paused = action == "pause"
                        events.put({"type": "paused" if self.paused else "resumed", "step": self.step})
                    elif action == "learning_rate":
                        self.rate = value
                        events.put({"type": "learning_rate", "step": self.step, "value": value})

            def on_epoch_begin(self, epoch, model):
                self.epoch = epoch

            def on_batch_begin(self, step, model):
                self.step = step
                self._obey()
                model.optimizer.learning_rate = self.rate  # a constant schedule, changed only from the page

            def on_batch_end(self, step, logs, model):
                if (self.step + 1) % settings.every == 0:
                    events.put({"type": "progress", "step": self.step + 1, "epoch": self.epoch + 1,
                                "loss": float(logs["loss"]), "accuracy": float(logs["accuracy"]),
                                "learning_rate": float(model.optimizer.learning_rate)})

            def on_epoch_end(self, epoch, logs, model):
                outputs, _ = model.layer_outputs(probe, ["conv1"])
                kernel = model.get_layer("conv1").params["kernel"]  # (kh, kw, 1, 32)
                events.put({"type": "snapshot", "epoch": epoch + 1, "step": self.step + 1,
                            "loss": float(logs["loss"]), "accuracy": float(logs["accuracy"]),
                            "val_loss": logs.get("val_loss"), "val_accuracy": logs.get("val_accuracy"),
                            "filters": _rounded(np.moveaxis(kernel[:, :, 0, :], -1, 0)),  # (32, kh, kw)
                            "maps": _rounded(np.moveaxis(outputs["conv1"][0], -1, 0))})  # (32, H, W)

        stream = Stream()
        config = TrainConfig(dataset=settings.dataset, epochs=settings.epochs, batch_size=settings.batch_size,
                             learning_rate=settings.learning_rate, seed=settings.seed, output_dir=str(run_dir),
                             limit=settings.limit, schedule="constant")

        class Snapshots(Callback):  # last.npz is written after every other callback: copy it next time
            def on_epoch_begin(self, epoch, model):
                _keep_snapshot(run_dir)

        result = train(config, resume=resume, callbacks=[Snapshots(), stream], dataset=data)
        _keep_snapshot(run_dir)
        events.put({"type": "done", "test_accuracy": result.test_accuracy, "best_epoch": result.best_epoch})
    except _Stop:
        _keep_snapshot(run_dir)
        events.put({"type": "stopped"})
    except Exception as exc:  # noqa: BLE001 - reported to the page, one line
        events.put({"type": "error", "message": " ".join(str(exc).split()) or type(exc).__name__})


def _keep_snapshot(run_dir: Path) -> None:
    from .. import checkpoint

    last = run_dir / "last.npz"
    if last.is_file():
        epoch = int(checkpoint.load(last).training_state["epoch"])
        target = run_dir / f"epoch_{epoch:03d}.npz"
        if not target.exists():
            shutil.copyfile(last, target)


# ---------------------------------------------------------------------------- the server side


@dataclass
class Run:
    id: int
    settings: Settings
    folder: Path
    parent: tuple[int, int] | None = None  # (run, epoch) it was forked from
    status: str = "starting"
    events: list = field(default_factory=list)

    def summary(self) -> dict:
        snapshots = sorted(int(p.stem.split("_")[1]) for p in self.folder.glob("epoch_*.npz"))
        return {"id": self.id, "settings": asdict(self.settings), "parent": self.parent, "status": self.status,
                "events": len(self.events), "snapshots": snapshots}


class Trainer:
    """One training process at a time, its events kept per run for the page to stream."""

    def __init__(self, folder=None):
        self.folder = Path(folder or tempfile.mkdtemp(prefix="convlayer-train-"))
        self._owns_folder = folder is None
        self.runs: dict[int, Run] = {}
        self._context = mp.get_context("spawn")
        self._process = None
        self._commands = None
        self._lock = threading.Condition()
        self._listeners = 0
        self.grace_seconds = 10.0  # a page that reloads reconnects well within this

    def listening(self, change: int) -> None:
        """Count the pages streaming events; when the last one closes, stop the training after a grace time."""
        with self._lock:
            self._listeners += change
            if self._listeners == 0 and self.running:
                timer = threading.Timer(self.grace_seconds, self._stop_if_unwatched)
                timer.daemon = True
                timer.start()

    def _stop_if_unwatched(self) -> None:
        with self._lock:
            if self._listeners == 0 and self.running:
                self._commands.put(("stop", None))

    # -- starting

    def start(self, document) -> dict:
        return self._launch(Settings.parse(document))

    def fork(self, document) -> dict:
        if not isinstance(document, dict):
            raise TrainSettingError("expected {\"run\": id, \"epoch\": N, \"learning_rate\": x}.")
        run = self._run(document.get("run"))
        epoch = document.get("epoch")
        snapshot = run.folder / f"epoch_{epoch:03d}.npz" if isinstance(epoch, int) else None
        if snapshot is None or not snapshot.is_file():
            raise TrainSettingError(f"run {run.id} has no snapshot of epoch {epoch!r}; it has "
                                    f"{run.summary()['snapshots'] or 'none yet'}.")
        changes = {k: v for k, v in document.items() if k not in ("run", "epoch")}
        if set(changes) - {"learning_rate", "epochs"}:
            raise TrainSettingError("a fork changes learning_rate (and may run more epochs); nothing else.")
        settings = Settings.parse({**asdict(run.settings), **changes})
        if settings.epochs <= epoch:
            raise TrainSettingError(f"the fork starts after epoch {epoch}; give epochs > {epoch}.")
        return self._launch(settings, resume=snapshot, parent=(run.id, epoch))

    def _launch(self, settings: Settings, resume: Path | None = None, parent=None) -> dict:
        with self._lock:
            if self.running:
                raise TrainBusyError("a training is already running; stop it first (one at a time).")
            run = Run(len(self.runs) + 1, settings, self.folder / f"run_{len(self.runs) + 1}", parent)
            run.folder.mkdir(parents=True)
            start_from = None
            if resume is not None:  # the fork continues in its own folder, from a copy of the snapshot
                start_from = run.folder / "last.npz"
                shutil.copyfile(resume, start_from)
                shutil.copyfile(resume.parent / "log.csv", run.folder / "log.csv")
            events, self._commands = self._context.Queue(), self._context.Queue()
            self._process = self._context.Process(
                target=_child, args=(asdict(settings), str(run.folder), None if start_from is None else str(start_from),
                                     events, self._commands, os.getpid()), daemon=True, name=f"convlayer-train-{run.id}")
            self._process.start()
            run.status = "running"
            self.runs[run.id] = run
            threading.Thread(target=self._collect, args=(run, events, self._process), daemon=True).start()
            return run.summary()

    def _collect(self, run: Run, events, process) -> None:
        """Move the child's events into ``run.events`` until it ends (or dies)."""
        while True:
            try:
                event = events.get(timeout=0.5)
            except queue.Empty:
                if process.is_alive():
                    continue
                event = {"type": "error", "message": f"the training process ended unexpectedly "
                                                      f"(exit code {process.exitcode})."}
            with self._lock:
                run.events.append(event)
                if event["type"] in ("done", "stopped", "error"):
                    run.status = event["type"]
                elif event["type"] in ("paused", "resumed"):
                    run.status = "paused" if event["type"] == "paused" else "running"
                self._lock.notify_all()
            if event["type"] in ("done", "stopped", "error"):
                process.join(timeout=10)
                return

    # -- control

    @property
    def running(self) -> bool:
        """A run is going (or paused): its process lives and has not reported its end."""
        current = self.runs.get(len(self.runs))
        return current is not None and current.status in ("starting", "running", "paused") and \
            self._process is not None and self._process.is_alive()

    def control(self, document) -> dict:
        if not isinstance(document, dict) or document.get("action") not in ("pause", "resume", "stop",
                                                                              "learning_rate"):
            raise TrainSettingError("action must be one of pause, resume, stop, learning_rate.")
        if not self.running:
            raise TrainBusyError("no training is running.")
        action = document["action"]
        value = _check_rate(document.get("value")) if action == "learning_rate" else None
        self._commands.put((action, value))
        return {"ok": True, "action": action}

    def _run(self, run_id) -> Run:
        if isinstance(run_id, bool) or not isinstance(run_id, int) or run_id not in self.runs:
            raise TrainSettingError(f"no run {run_id!r}; the runs are {sorted(self.runs) or 'none yet'}.")
        return self.runs[run_id]

    def events(self, run_id, since: int, timeout: float):
        """(events after index ``since``, finished) for run ``run_id``, waiting up to ``timeout`` for new ones."""
        run = self._run(run_id)
        with self._lock:
            if len(run.events) <= since and run.status not in ("done", "stopped", "error"):
                self._lock.wait(timeout)
            return run.events[since:], run.status in ("done", "stopped", "error")

    def state(self) -> dict:
        with self._lock:
            return {"running": self.running, "runs": [run.summary() for run in self.runs.values()],
                    "datasets": list(DATASETS), "defaults": asdict(Settings()), "limits": LIMITS}

    def close(self) -> None:
        """Stop the training (if any) and remove the snapshots this trainer made."""
        if self._process is not None and self._process.is_alive():
            self._commands.put(("stop", None))
            self._process.join(timeout=5)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(timeout=5)
        if self._owns_folder:
            shutil.rmtree(self.folder, ignore_errors=True)


class TrainBusyError(RuntimeError):
    """A training is already running (or none is, for a command): a 409."""
