"""Training runs: the lesson's model on a dataset, with schedules, logs, checkpoints and resume.

``train(TrainConfig(...))`` is what ``convlayer train`` calls. A run directory holds
``last.npz`` (every epoch, with optimizer and RNG state, for ``--resume``), ``best.npz``
(highest validation accuracy) and ``log.csv`` (one row per epoch). A resumed run ends
with exactly the weights of an uninterrupted one with the same seed.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import checkpoint as ckpt
from . import distributed
from .datasets.dataset import check_seed, check_validation_split, num_batches
from .fileio import atomic_write_text, check_writable_dir
from .preprocess import style_for
from . import optimizers as optimizers_mod
from .models import Callback, MNISTModel
from .models.sequential import NonFiniteLossError

SCHEDULES = ("cosine", "constant")
LOG_FIELDS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds",
              "images_per_second")


@dataclass
class TrainConfig:
    dataset: str = "fashion-mnist"
    epochs: int = 12
    batch_size: int = 128
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.9  # SGD only
    schedule: str = "cosine"
    seed: int = 0
    validation_split: float = 1 / 12  # 5,000 of Fashion-MNIST's 60,000
    output_dir: str = "runs/latest"
    data_dir: str | None = None
    limit: int | None = None  # use only the first N training images (quick runs)
    shift: int = 0  # augmentation: shift each training image by up to this many pixels

    def validate(self) -> "TrainConfig":
        def positive_int(name, value, allow_none=False):
            if allow_none and value is None:
                return
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name.replace('_', '-')} must be a positive integer, got {value!r}.")

        positive_int("epochs", self.epochs)
        positive_int("batch_size", self.batch_size)
        positive_int("limit", self.limit, allow_none=True)
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}.")
        if not (isinstance(self.learning_rate, (int, float)) and 0 < self.learning_rate < 10):
            raise ValueError(f"learning-rate must be a number in (0, 10), got {self.learning_rate!r}.")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}.")
        if isinstance(self.shift, bool) or not isinstance(self.shift, int) or self.shift < 0:
            raise ValueError(f"shift must be a non-negative integer, got {self.shift!r}.")
        check_validation_split(self.validation_split)
        check_seed(self.seed)
        return self


@dataclass
class TrainResult:
    config: TrainConfig
    history: list[dict]
    best_epoch: int
    test_accuracy: float
    test_loss: float
    best_path: Path
    last_path: Path
    log_path: Path
    dataset_source: str = ""
    class_names: tuple = field(default_factory=tuple)


def learning_rate_at(step: int, total_steps: int, base: float, schedule: str) -> float:
    """Cosine decay from ``base`` to 0 over ``total_steps``, or constant."""
    if schedule == "constant" or total_steps <= 0:
        return base
    return 0.5 * base * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))


class _Schedule(Callback):
    def __init__(self, total_steps, base, schedule):
        self.total_steps, self.base, self.schedule = total_steps, base, schedule

    def on_batch_begin(self, step, model):
        model.optimizer.learning_rate = learning_rate_at(step, self.total_steps, self.base, self.schedule)


class _Recorder(Callback):
    """Writes log.csv, last.npz and best.npz at the end of every epoch."""

    def __init__(self, run_dir: Path, config: TrainConfig, rng, rows: list[dict], best: dict, meta: dict):
        self.run_dir, self.config, self.rng, self.rows, self.best, self.meta = run_dir, config, rng, rows, best, meta

    def on_epoch_end(self, epoch, logs, model):
        row = {"epoch": epoch + 1, **{k: logs.get(k) for k in LOG_FIELDS if k != "epoch"}}
        self.rows.append(row)
        write_log(self.run_dir / "log.csv", self.rows)
        # Best = highest validation accuracy; ties (common on small validation sets) go to the lower loss.
        score = [logs["val_accuracy"], -logs["val_loss"]] if "val_accuracy" in logs else [-logs["loss"], 0.0]
        if self.best.get("score") is None or score > self.best["score"]:
            self.best.update(score=score, epoch=epoch + 1)
            ckpt.save(self.run_dir / "best.npz", model, meta={**self.meta, "epoch": epoch + 1, **logs})
        state = {"epoch": epoch + 1, "config": asdict(self.config), "history": self.rows,
                 "shuffle_rng": self.rng.bit_generator.state,
                 "layer_rngs": {layer.name: layer.rng.bit_generator.state for layer in model.layers},
                 "best": dict(self.best)}
        ckpt.save(self.run_dir / "last.npz", model, optimizer=model.optimizer, training_state=state,
                  meta={**self.meta, "epoch": epoch + 1, **logs})


def write_log(path: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LOG_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    atomic_write_text(path, buffer.getvalue())


def read_log(path) -> list[dict]:
    """Rows of a log.csv written by ``train`` (numbers parsed; empty cells become None)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training log {str(path)!r} not found; it is written by `convlayer train` "
                                "into the run directory as log.csv.")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error):
        rows = []
    if not rows or "loss" not in rows[0]:
        raise ValueError(f"{path} is not a convlayer training log (expected columns {', '.join(LOG_FIELDS)}).")
    try:
        return [{k: (float(v) if v not in ("", None) else None) for k, v in row.items()} for row in rows]
    except (TypeError, ValueError):
        raise ValueError(f"{path} is a damaged convlayer training log (a cell is not a number).") from None


def random_shift(images: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Shift each image (N, H, W) by its own random (dy, dx) in [-max_shift, max_shift], filling with 0.

    >>> random_shift(np.ones((2, 4, 4), np.float32), 1, np.random.default_rng(0)).shape
    (2, 4, 4)
    """
    n, height, width = images.shape
    padded = np.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift)))  # (N, H+2s, W+2s)
    offsets = rng.integers(0, 2 * max_shift + 1, size=(2, n))  # top-left corner of each crop
    rows = offsets[0][:, None] + np.arange(height)  # (N, H)
    cols = offsets[1][:, None] + np.arange(width)  # (N, W)
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]  # (N, H, W)


def build_optimizer(config: TrainConfig):
    if config.optimizer == "sgd":
        return optimizers_mod.SGD(config.learning_rate, momentum=config.momentum)
    return optimizers_mod.Adam(config.learning_rate)


def train(config: TrainConfig, *, resume: str | Path | None = None, callbacks=(), dataset=None) -> TrainResult:
    """Train ``MNISTModel`` as ``config`` says; returns metrics and the checkpoint paths."""
    from . import datasets

    world = distributed.world()  # None without MPI (a single process)
    if resume is not None:
        state_ckpt = ckpt.load(resume) if world is None else distributed.load_checkpoint(world, resume)
        state = state_ckpt.training_state
        if not state or "config" not in state:
            raise ckpt.CheckpointError(f"{resume} has no training state; resume from a last.npz written by "
                                       "`convlayer train`.")
        saved = TrainConfig(**state["config"])
        saved.epochs = config.epochs
        saved.output_dir = str(Path(resume).parent)  # a resumed run continues in its own folder
        config = saved
    config.validate()
    data = dataset or datasets.load(config.dataset, data_dir=config.data_dir, validation_split=config.validation_split,
                                    seed=config.seed)
    x_train, y_train = data.x_train, data.y_train
    if config.limit:
        x_train, y_train = x_train[:config.limit], y_train[:config.limit]
    run_dir = Path(config.output_dir)
    check_writable_dir(run_dir, what="--output-dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    meta = {"dataset": data.name, "class_names": list(data.class_names), "input_dim": data.input_dim,
            "preprocess": style_for(data.name)}

    rng = np.random.default_rng(config.seed)
    rows: list[dict] = []
    best: dict = {"score": None, "epoch": None}
    initial_epoch = 0
    if resume is not None:
        model, optimizer = state_ckpt.model, state_ckpt.optimizer
        if model.input_dim != data.input_dim or model.output_size != data.num_classes:
            raise ckpt.CheckpointError(f"{resume} was trained on {model.input_dim}x{model.input_dim} images with "
                                       f"{model.output_size} classes, not {data.name}.")
        rng.bit_generator.state = state["shuffle_rng"]
        for layer in model.layers:
            layer.rng.bit_generator.state = state["layer_rngs"][layer.name]
        rows = list(state["history"])
        best = dict(state["best"])
        initial_epoch = int(state["epoch"])
    else:
        model = MNISTModel(data.input_dim, data.num_classes, seed=config.seed)
        optimizer = build_optimizer(config)
    model.optimizer = optimizer
    parallel = None
    if world is not None:  # MPI: rank 0's weights on every rank, a shard of every batch each, one writer
        if resume is None:
            distributed.broadcast_model(world, model, optimizer)
        parallel = model.data_parallel = distributed.DataParallel(world, model, config.seed)

    steps_per_epoch = num_batches(len(x_train), config.batch_size)
    schedule = _Schedule(config.epochs * steps_per_epoch, config.learning_rate, config.schedule)
    recorder = _Recorder(run_dir, config, rng, rows, best, meta)
    validation = (data.x_val, data.y_val) if len(data.x_val) else None
    fit_callbacks = [schedule, *callbacks, recorder]
    if parallel is not None:  # validation on shards, global metrics, drift check; rank 0 records
        fit_callbacks = [schedule, distributed.EpochSync(parallel, validation), *callbacks,
                         *([recorder] if world.is_root else [])]
        validation = None
    try:
        model.fit(x_train, y_train, epochs=config.epochs, batch_size=config.batch_size, validation_data=validation,
                  rng=rng, initial_epoch=initial_epoch, callbacks=fit_callbacks,
                  augment=(lambda xb, r: random_shift(xb, config.shift, r)) if config.shift else None)
    except NonFiniteLossError as exc:
        saved = f" The last completed epoch is in {run_dir / 'last.npz'}." if (run_dir / "last.npz").is_file() else ""
        raise NonFiniteLossError(f"{exc}{saved}") from None

    if world is None:
        best_model = ckpt.load(run_dir / "best.npz").model
        test = best_model.evaluate(data.x_test, data.y_test)
    else:  # rank 0's best weights everywhere, the test set on shards
        rows, best = world.comm.bcast((rows, best), root=0)
        test = distributed.evaluate_best(world, model, run_dir / "best.npz", data.x_test, data.y_test)
    return TrainResult(config, rows, int(best["epoch"]), test["accuracy"], test["loss"], run_dir / "best.npz",
                       run_dir / "last.npz", run_dir / "log.csv", data.source, tuple(data.class_names))


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) counts: row = true class, column = predicted class."""
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix
