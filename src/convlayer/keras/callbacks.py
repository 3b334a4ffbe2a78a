"""``keras.callbacks``: ``Callback``, ``History``, ``EarlyStopping``, ``LambdaCallback``, ``ModelCheckpoint``.

Hooks are Keras' (``on_epoch_end(epoch, logs)``, ``self.model``); ``self.model.stop_training =
True`` ends ``fit`` after the epoch.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["Callback", "History", "EarlyStopping", "LambdaCallback", "ModelCheckpoint"]


class Callback:
    """Base class: override the hooks you need; ``self.model`` is set by ``fit``."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params) -> None:
        self.params = params

    def on_train_begin(self, logs=None): ...

    def on_train_end(self, logs=None): ...

    def on_epoch_begin(self, epoch, logs=None): ...

    def on_epoch_end(self, epoch, logs=None): ...

    def on_train_batch_begin(self, batch, logs=None): ...

    def on_train_batch_end(self, batch, logs=None): ...


class History(Callback):
    """What ``fit`` returns: ``history.history['loss'][epoch]``, ``history.epoch``."""

    def __init__(self):
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


def _mode_better(monitor: str, mode: str, who: str):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{who}: mode must be 'auto', 'min' or 'max', got {mode!r}.")
    if mode == "auto":
        mode = "max" if "acc" in monitor else "min"
    return (lambda a, b: a > b) if mode == "max" else (lambda a, b: a < b), mode


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs."""

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor, self.min_delta, self.patience = monitor, abs(min_delta), int(patience)
        self.better, self.mode = _mode_better(monitor, mode, "EarlyStopping")
        self.baseline, self.restore_best_weights = baseline, restore_best_weights
        self.start_from_epoch = int(start_from_epoch)
        self.stopped_epoch = 0

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best_weights = 0, 0, None
        self.best = self.baseline if self.baseline is not None else (-math.inf if self.mode == "max" else math.inf)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs:
            raise ValueError(f"EarlyStopping: monitor {self.monitor!r} is not among the logs "
                             f"({', '.join(logs)}); validation metrics need validation_split or validation_data.")
        if epoch < self.start_from_epoch:
            return
        value = logs[self.monitor]
        shifted = value - self.min_delta if self.mode == "max" else value + self.min_delta
        if self.better(shifted, self.best):
            self.best, self.wait = value, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.restore_best_weights and self.best_weights is not None:
                self.model.set_weights(self.best_weights)


class LambdaCallback(Callback):
    """Callbacks from functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None):
        super().__init__()
        for hook, fn in (("on_epoch_begin", on_epoch_begin), ("on_epoch_end", on_epoch_end),
                         ("on_train_begin", on_train_begin), ("on_train_end", on_train_end),
                         ("on_train_batch_begin", on_train_batch_begin), ("on_train_batch_end", on_train_batch_end)):
            if fn is not None:
                setattr(self, hook, fn)


class ModelCheckpoint(Callback):
    """Save the model after each epoch (``save_best_only``: when ``monitor`` improved) with ``model.save``.

    ``filepath`` may hold ``{epoch}`` and log names (``"m-{epoch:02d}-{val_loss:.2f}.keras"``).
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch"):
        super().__init__()
        if save_weights_only:
            raise ValueError("ModelCheckpoint: save_weights_only is not supported; convlayer saves whole models "
                             "(.keras or .npz).")
        if save_freq != "epoch":
            raise ValueError(f"ModelCheckpoint: save_freq must be 'epoch', got {save_freq!r}.")
        self.filepath, self.monitor, self.save_best_only = str(filepath), monitor, save_best_only
        self.better, self.mode = _mode_better(monitor, mode, "ModelCheckpoint")
        self.best = -np.inf if self.mode == "max" else np.inf

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            if self.monitor not in logs:
                raise ValueError(f"ModelCheckpoint: monitor {self.monitor!r} is not among the logs "
                                 f"({', '.join(logs)}).")
            if not self.better(logs[self.monitor], self.best):
                return
            self.best = logs[self.monitor]
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"ModelCheckpoint: filepath {self.filepath!r} has a placeholder that cannot be filled "
                             f"({type(exc).__name__}: {exc}); use {{epoch}} and the log names "
                             f"({', '.join(logs)}).") from None
        self.model.save(path)
