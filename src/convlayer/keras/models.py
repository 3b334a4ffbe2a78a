"""``keras.Sequential``, ``keras.Model(inputs, outputs)`` and ``keras.models.load_model``.

A Keras model here *is* a convlayer ``Sequential`` (a subclass with the same class name and
config): ``convlayer.checkpoint.save``, ``convlayer.interop.export_model``, the CLI's
``evaluate``/``predict`` on a saved file all treat it as one. What it adds is Keras' calling
conventions: ``compile`` with Keras' names (refusing what it does not know, by name), ``fit``
with a progress bar and Keras' per-epoch lines returning a ``History``, ``evaluate`` returning
``[loss, accuracy]``, ``summary()`` printing Keras' table, ``save('m.keras' | 'm.npz')``.

>>> from convlayer import keras
>>> from convlayer.keras import layers
>>> model = keras.Sequential([keras.Input(shape=(8, 8, 1)), layers.Flatten(), layers.Dense(10, activation="softmax")])
>>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
>>> model.output_shape
(None, 10)
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from .. import models as _models
from .. import optimizers as _engine_optimizers
from ..functional.losses import accuracy as _accuracy
from ..layers.base import unique_name
from ..models.sequential import NonFiniteLossError, check_finite
from . import callbacks as callbacks_mod
from . import layers as layers_mod
from . import losses as losses_mod
from . import metrics as metrics_mod
from . import optimizers as optimizers_mod
from . import utils as _utils
from .tensors import KerasTensor

__all__ = ["Model", "Sequential", "load_model", "save_model"]

# Keras' compile arguments that change nothing here, at their defaults or not.
_COMPILE_NO_OPS = ("run_eagerly", "steps_per_execution", "jit_compile", "auto_scale_loss")


def _verbosity(verbose, who: str) -> int:
    if verbose == "auto":
        return 1
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise ValueError(f"{who}: verbose must be 'auto', 0 (silent), 1 (progress bar) or 2 (one line per epoch), "
                         f"got {verbose!r}.")
    return int(verbose)


def _refuse(who: str, **settings) -> None:
    """Refuse Keras arguments convlayer does not implement when they are set."""
    used = [name for name, value in settings.items() if value is not None]
    if used:
        raise ValueError(f"{who}: convlayer does not support {', '.join(used)}; leave "
                         f"{'it' if len(used) == 1 else 'them'} unset.")


def _positive_int(value, name: str, who: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{who}: {name} must be a positive int, got {value!r}.")
    return int(value)


def _array(value, name: str, who: str) -> np.ndarray:
    if value is None:
        raise ValueError(f"{who}: needs {name} as an array (convlayer does not take datasets or generators).")
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{who}: {name} must be an array, got {type(value).__name__} ({exc}).") from None
    if array.dtype == object:
        raise ValueError(f"{who}: {name} must be a numeric array, got {type(value).__name__}; convlayer takes "
                         "NumPy arrays (not tf.data datasets, generators or ragged lists).")
    return array


def _readable_size(n_bytes: float) -> str:
    """Keras' parameter memory text: 3.16 KB, 12.50 MB (1024-based)."""
    for unit in ("B", "KB", "MB", "GB"):
        if n_bytes < 1024 or unit == "GB":
            return f"{n_bytes:.2f} {unit}"
        n_bytes /= 1024


def _metrics_text(logs: dict) -> str:
    return " - ".join(f"{key}: {value:.4f}" for key, value in logs.items())


def _timing(seconds: float, steps: int) -> str:
    per_step = seconds / max(steps, 1)
    return f"{seconds:.0f}s {per_step * 1000:.0f}ms/step" if per_step < 1 else f"{seconds:.0f}s {per_step:.0f}s/step"


class _Progress:
    """Keras' ``N/N ━━━━ 1s 39ms/step - accuracy: ... - loss: ...`` line; a live tqdm bar while it runs."""

    def __init__(self, steps: int, verbose: int):
        self.steps, self.verbose, self.start = steps, verbose, time.perf_counter()
        self.bar = None
        if verbose == 1:
            from tqdm import tqdm

            self.bar = tqdm(total=steps, file=sys.stdout, leave=False, ascii=" ━", dynamic_ncols=True,
                            bar_format="{n_fmt}/{total_fmt} {bar:20} {elapsed} - {desc}")

    def update(self, logs: dict) -> None:
        if self.bar is not None:
            self.bar.set_description_str(_metrics_text(logs), refresh=False)
            self.bar.update(1)

    def finish(self, logs: dict) -> None:
        if self.bar is not None:
            self.bar.close()
        _print_line(self.steps, time.perf_counter() - self.start, logs, self.verbose)


def _print_line(steps: int, seconds: float, logs: dict, verbose: int) -> None:
    """Keras' end-of-epoch line (verbose 1: with the full bar; 2: without); nothing for verbose 0."""
    if verbose == 1:
        line = f"{steps}/{steps} {'━' * 20} {_timing(seconds, steps)}"
    elif verbose == 2:
        line = f"{steps}/{steps} - {_timing(seconds, steps).replace(' ', ' - ')}"
    else:
        return
    print(line + (f" - {_metrics_text(logs)}" if logs else ""), flush=True)


class _ModelType(type):
    """``keras.Model(inputs, outputs)`` builds a Sequential from the chain of layers between them."""

    def __call__(cls, *args, **kwargs):
        if cls is Model:
            return _functional(*args, **kwargs)
        if not issubclass(cls, Sequential):
            raise TypeError(f"{cls.__name__}: subclassing keras.Model (a model with its own call()) is not "
                            "supported by convlayer; use keras.Sequential([...]) or keras.Model(inputs, outputs) "
                            "on a chain of layers.")
        return super().__call__(*args, **kwargs)


class Model(_models.Sequential, metaclass=_ModelType):
    """Keras' training API over convlayer's Sequential; ``Model(inputs, outputs)`` for a chain of layers."""

    stop_training = False
    metric_names: tuple = ()
    keras_loss = None  # the losses_mod.Loss given to compile

    # ------------------------------------------------------------------ structure

    @property
    def output_shape(self) -> tuple:
        if self.input_shape is None:
            raise AttributeError(f"{self.name} is not built yet, so its output shape is unknown.")
        return tuple(self.output_shapes()[-1])

    @property
    def metrics_names(self) -> list[str]:
        return ["loss", *self.metric_names]

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False, show_trainable=False,
                layer_range=None) -> None:
        """Print Keras' table of layers, output shapes and parameter counts (returns None, like Keras)."""
        if self.input_shape is None:
            raise ValueError(f"{self.name}: this model has not yet been built. Build it first: start it with "
                             "keras.Input(shape=...), pass input_shape= to the first layer, call model.build("
                             "input_shape) or call it on a batch of data.")
        rows = [(f"{layer.name} ({type(layer).__name__})", str(tuple(shape)), f"{layer.count_params():,}")
                for layer, shape in zip(self.layers, self.output_shapes())]
        head = ("Layer (type)", "Output Shape", "Param #")
        widths = [max([31, 22, 13][i], *(len(r[i]) for r in rows)) + 2 for i in range(3)]

        def cells(row):  # names and shapes left-aligned, counts right-aligned
            left, shape, count = (f" {c:{'<' if i < 2 else '>'}{w - 2}} " for i, (c, w) in enumerate(zip(row, widths)))
            return "│".join((left, shape, count))

        def rule(left, mid, right, fill):
            return left + mid.join(fill * w for w in widths) + right

        lines = [f'Model: "{self.name}"', rule("┏", "┳", "┓", "━"),
                 "┃" + cells(head).replace("│", "┃") + "┃", rule("┡", "╇", "┩", "━")]
        for i, row in enumerate(rows):
            lines.append("│" + cells(row) + "│")
            lines.append(rule("├", "┼", "┤", "─") if i < len(rows) - 1 else rule("└", "┴", "┘", "─"))
        total = self.count_params()
        trainable = sum(layer.count_params() for layer in self.layers if layer.trainable)
        itemsize = self.layers[0].dtype.itemsize if self.layers else 4
        for label, count in (("Total", total), ("Trainable", trainable), ("Non-trainable", total - trainable)):
            lines.append(f" {label} params: {count:,} ({_readable_size(count * itemsize)})")
        (print_fn or print)("\n".join(lines))

    # ------------------------------------------------------------------ compile

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None, weighted_metrics=None,
                run_eagerly=False, steps_per_execution=1, jit_compile="auto", auto_scale_loss=True, **kwargs) -> None:
        """Keras' ``compile``: optimizer ('adam', 'sgd' or an object), loss (a cross-entropy), metrics.

        Arguments Keras does not have are refused by name; ``run_eagerly``, ``jit_compile``,
        ``steps_per_execution`` and ``auto_scale_loss`` change nothing here.
        """
        who = f"{self.name}.compile"
        if kwargs:
            raise ValueError(f"{who}: unknown argument(s) {', '.join(sorted(kwargs))}; compile takes optimizer, "
                             "loss, metrics (and Keras' loss_weights, weighted_metrics, run_eagerly, "
                             "steps_per_execution, jit_compile, auto_scale_loss).")
        _refuse(who, loss_weights=loss_weights, weighted_metrics=weighted_metrics or None)
        try:
            optimizer = optimizers_mod.get(optimizer)
            loss = None if loss is None else losses_mod.get(loss)
        except ValueError as exc:
            raise ValueError(f"{who}: {exc}") from None
        if isinstance(metrics, dict):
            raise ValueError(f"{who}: metrics must be a list like ['accuracy'] (one output), got a dict.")
        if isinstance(metrics, str):
            raise ValueError(f"{who}: metrics must be a list, e.g. metrics=[{metrics!r}].")
        names = []
        for metric in metrics or ():
            try:
                name = metrics_mod.get(metric).name
            except ValueError as exc:
                raise ValueError(f"{who}: {exc}") from None
            if name not in names:
                names.append(name)
        self.optimizer = optimizer
        self.keras_loss = loss
        self.metric_names = tuple(names)
        if loss is not None:
            self.loss = loss.engine_name
            if self.layers:
                self._check_outputs_match_loss(who, warn=True)

    def _check_outputs_match_loss(self, who: str, *, warn: bool = False) -> None:
        """Probabilities need a softmax output; logits read through a softmax are Keras' known slip."""
        loss, activation = self.keras_loss, self.output_activation
        if not loss.from_logits and activation != "softmax":
            cls = type(loss).__name__
            raise ValueError(
                f"{who}: loss {loss.name!r} reads the outputs as probabilities (from_logits=False, Keras' default "
                f"for string losses), but the last layer {self.layers[-1].name!r} has activation "
                f"{activation or 'none'}, so its outputs are logits. Add activation='softmax' to that layer, or "
                f"pass loss=keras.losses.{cls}(from_logits=True).")
        if warn and loss.from_logits and activation == "softmax":
            # Keras does the same: it warns and uses the softmax's input; the gradient here is
            # exactly that one, (p - target) / N.
            warnings.warn(f"{who}: from_logits=True, but the last layer {self.layers[-1].name!r} is a softmax, so "
                          "its outputs are probabilities; they are read as probabilities (as Keras does). Drop "
                          "from_logits=True, or the softmax.", stacklevel=3)

    def _require_compiled(self, who: str) -> None:
        if not self.layers:
            raise ValueError(f"{who}: the model has no layers; add some before training or evaluating.")
        if self.optimizer is None or self.keras_loss is None:
            missing = "compile(optimizer=..., loss=...)" if self.optimizer is None else "a loss in compile(loss=...)"
            raise ValueError(f"{who}: the model needs {missing} before training or evaluating, e.g. "
                             "model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', "
                             "metrics=['accuracy']).")

    # ------------------------------------------------------------------ data

    def _inputs(self, x, who: str) -> np.ndarray:
        x = _array(x, "x", who)
        if x.ndim < 2:
            raise ValueError(f"{who}: x must have a batch axis and at least one feature axis, got shape {x.shape}.")
        if self.input_shape is None:
            self.build((None, *x.shape[1:]))
        x = self.prepare_input(x)
        check_finite(x, "x", who)
        return x

    def _data(self, x, y, who: str) -> tuple[np.ndarray, np.ndarray]:
        x = self._inputs(x, who)
        y = _array(y, "y", who)
        if len(x) != len(y):
            raise ValueError(f"{who}: x and y must hold the same number of samples, got x {x.shape} and "
                             f"y {y.shape}.")
        return x, self._labels(x, y, who)

    def _scores(self, x, y, batch_size: int) -> dict:
        """The compiled loss (with the weight penalties, as Keras reports it) and metrics on (x, y)."""
        outputs = np.asarray(_models.Sequential.predict(self, x, batch_size=batch_size))
        loss, _ = self.compute_loss(outputs, y)
        logs = {name: _accuracy(outputs, y.argmax(axis=-1) if y.ndim == 2 else y) for name in self.metric_names}
        logs["loss"] = float(loss) + self.regularization_loss()
        return logs

    # ------------------------------------------------------------------ training

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
            steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1):
        """Keras' ``fit`` on arrays: returns a ``History`` (``history.history['loss']`` etc.).

        ``validation_split`` holds out the *last* fraction of the samples before shuffling, as
        Keras does; ``validation_data=(x_val, y_val)`` takes precedence. Shuffling draws from
        ``keras.utils.set_random_seed``'s stream when one was set.
        """
        who = f"{self.name}.fit"
        self._require_compiled(who)
        _refuse(who, class_weight=class_weight, sample_weight=sample_weight, steps_per_epoch=steps_per_epoch,
                validation_steps=validation_steps)
        if validation_freq != 1:
            raise ValueError(f"{who}: convlayer validates after every epoch; validation_freq must be 1.")
        verbose = _verbosity(verbose, who)
        batch_size = _positive_int(batch_size, "batch_size", who, 32)
        val_batch = _positive_int(validation_batch_size, "validation_batch_size", who, max(batch_size, 512))
        for name, value in (("epochs", epochs), ("initial_epoch", initial_epoch)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{who}: {name} must be a non-negative int, got {value!r}.")
        x, y = self._data(x, y, who)
        self._check_outputs_match_loss(who)
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3) or (
                    len(validation_data) == 3 and validation_data[2] is not None):
                raise ValueError(f"{who}: validation_data must be a tuple (x_val, y_val).")
            x_val, y_val = self._data(validation_data[0], validation_data[1], f"{who} (validation_data)")
        elif validation_split:
            if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float)) or not (
                    0 < validation_split < 1):
                raise ValueError(f"{who}: validation_split must be a number in [0, 1), got {validation_split!r}.")
            split_at = int(math.floor(len(x) * (1.0 - validation_split)))
            if split_at in (0, len(x)):
                raise ValueError(f"{who}: validation_split={validation_split} of {len(x)} samples leaves "
                                 f"{split_at} for training and {len(x) - split_at} for validation; both need "
                                 "at least one.")
            x, x_val, y, y_val = x[:split_at], x[split_at:], y[:split_at], y[split_at:]
        else:
            x_val = y_val = None
        if not len(x):
            raise ValueError(f"{who}: needs at least one training sample, got x of shape {x.shape}.")

        history = self.history = callbacks_mod.History()  # Keras keeps the last fit's History on the model
        callback_list = [history, *self._callbacks(callbacks, who)]
        steps = math.ceil(len(x) / batch_size)
        for callback in callback_list:
            callback.set_model(self)
            callback.set_params({"verbose": verbose, "epochs": epochs, "steps": steps})
        rng = np.random.default_rng(_utils.next_seed())
        self.stop_training = False
        for callback in callback_list:
            callback.on_train_begin({})
        for epoch in range(int(initial_epoch), int(epochs)):
            for callback in callback_list:
                callback.on_epoch_begin(epoch, {})
            if verbose == 1:
                print(f"Epoch {epoch + 1}/{epochs}", flush=True)
            order = rng.permutation(len(x)) if shuffle else None
            progress = _Progress(steps, verbose)
            seen, loss_sum, correct = 0, 0.0, 0.0
            logs = {}
            for step in range(steps):
                batch = slice(step * batch_size, (step + 1) * batch_size)
                index = batch if order is None else order[batch]
                for callback in callback_list:
                    callback.on_train_batch_begin(step, {})
                try:
                    loss, acc = self.train_step(x[index], y[index])
                except NonFiniteLossError as exc:
                    progress.finish({})
                    raise NonFiniteLossError(
                        f"{who}: training stopped at epoch {epoch + 1}, step {step + 1}: {exc}. The weights are "
                        "those before that step. Try a lower learning rate or check the inputs' scale (e.g. "
                        "pixels in [0, 1]).") from None
                count = len(x[index]) if order is None else len(index)
                seen += count
                loss_sum += loss * count
                correct += acc * count
                logs = {**{name: correct / seen for name in self.metric_names}, "loss": loss_sum / seen}
                progress.update(logs)
                for callback in callback_list:
                    callback.on_train_batch_end(step, dict(logs))
            if x_val is not None and len(x_val):
                logs.update({f"val_{key}": value for key, value in self._scores(x_val, y_val, val_batch).items()})
            progress.finish(logs)
            for callback in callback_list:
                callback.on_epoch_end(epoch, dict(logs))
            if self.stop_training:
                break
        for callback in callback_list:
            callback.on_train_end({})
        return history

    @staticmethod
    def _callbacks(callbacks, who):
        if callbacks is None:
            return []
        if isinstance(callbacks, callbacks_mod.Callback):
            callbacks = [callbacks]
        callbacks = list(callbacks)
        for callback in callbacks:
            if not isinstance(callback, callbacks_mod.Callback):
                raise ValueError(f"{who}: callbacks must be keras.callbacks.Callback objects, got "
                                 f"{type(callback).__name__}.")
        return callbacks

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False):
        """``[loss, *metrics]`` on (x, y) (the loss alone without metrics; a dict with ``return_dict``)."""
        who = f"{self.name}.evaluate"
        self._require_compiled(who)
        _refuse(who, sample_weight=sample_weight, steps=steps, callbacks=callbacks)
        verbose = _verbosity(verbose, who)
        batch_size = _positive_int(batch_size, "batch_size", who, 512)
        x, y = self._data(x, y, who)
        self._check_outputs_match_loss(who)
        if not len(x):
            raise ValueError(f"{who}: needs at least one sample, got x of shape {x.shape}.")
        start = time.perf_counter()
        logs = self._scores(x, y, batch_size)
        ordered = {**{name: logs[name] for name in self.metric_names}, "loss": logs["loss"]}
        _print_line(math.ceil(len(x) / 32), time.perf_counter() - start, ordered, verbose)  # Keras' batches of 32
        if return_dict:
            return ordered
        return [logs["loss"], *(logs[name] for name in self.metric_names)] if self.metric_names else logs["loss"]

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None) -> np.ndarray:
        """The model's outputs for every sample (probabilities for a softmax output), as a NumPy array."""
        who = f"{self.name}.predict"
        _refuse(who, steps=steps, callbacks=callbacks)
        verbose = _verbosity(verbose, who)
        batch_size = _positive_int(batch_size, "batch_size", who, 512)
        x = self._inputs(x, who)
        start = time.perf_counter()
        outputs = np.asarray(_models.Sequential.predict(self, x, batch_size=batch_size))
        _print_line(max(math.ceil(len(x) / 32), 1), time.perf_counter() - start, {}, verbose)
        return outputs

    def predict_on_batch(self, x) -> np.ndarray:
        return self.predict(x, verbose=0)

    # ------------------------------------------------------------------ files

    def _compile_document(self) -> dict | None:
        if self.keras_loss is None or self.optimizer is None:
            return None
        return {"loss": self.keras_loss.name, "from_logits": self.keras_loss.from_logits,
                "metrics": list(self.metric_names), "optimizer": self.optimizer.get_config()}

    def save(self, filepath, overwrite=True, **kwargs) -> None:
        """Write ``.keras`` (a Keras 3 file real Keras opens; no optimizer state) or ``.npz``
        (a convlayer checkpoint with the optimizer state, for ``convlayer evaluate``/``train --resume``).

        ``keras.models.load_model(path)`` reads both back, compiled as saved.
        """
        path = Path(filepath)
        suffix = path.suffix.lower()
        if suffix not in (".keras", ".npz"):
            hint = " (.h5 is read by load_model, not written)" if suffix == ".h5" else ""
            raise ValueError(f"{self.name}.save: cannot write {str(filepath)!r}{hint}; give the file a .keras "
                             "suffix (Keras 3 format) or .npz (convlayer checkpoint).")
        if not overwrite and path.exists():
            raise ValueError(f"{self.name}.save: {str(filepath)!r} exists and overwrite=False; choose another "
                             "name or pass overwrite=True.")
        meta = {**kwargs.pop("meta", {}), "keras_compile": self._compile_document()}
        if suffix == ".keras":
            if kwargs:
                raise ValueError(f"{self.name}.save: unknown argument(s) {', '.join(sorted(kwargs))} for a .keras "
                                 "file.")
            from ..interop import export_model

            export_model(self, path, meta=meta)
        else:
            _models.Sequential.save(self, path, meta=meta, **kwargs)


class Sequential(Model):
    """``keras.Sequential([keras.Input(shape=...), layers...])``; ``input_shape=`` on the first layer also works."""

    def __init__(self, layers=None, trainable=True, name=None):
        super().__init__((), name=name or unique_name("sequential"))
        if trainable is not True:
            raise ValueError(f"{self.name}: trainable must be True for a whole model; set layer.trainable per layer.")
        self._declared_input: tuple | None = None
        for layer in layers or ():
            self.add(layer)

    def add(self, layer) -> None:
        """Append a layer (``keras.Input`` / ``InputLayer`` first declares the input shape) and build when it can."""
        declared = None
        if isinstance(layer, KerasTensor):
            if layer.layer is not None:
                raise ValueError(f"{self.name}: add layers, not their outputs; got {layer!r}.")
            declared = tuple(layer.shape)
        elif isinstance(layer, layers_mod.InputLayer):
            declared = layer.batch_shape
        if declared is not None:
            if self.layers or self._declared_input is not None:
                raise ValueError(f"{self.name}: keras.Input / InputLayer must come first, before any layer.")
            self._declared_input = declared
            return
        if not self.layers and self._declared_input is None and getattr(layer, "keras_input_shape", None):
            self._declared_input = layer.keras_input_shape
        super().add(layer)
        if self._declared_input is not None:
            self.build(self._declared_input)


def _functional(inputs=None, outputs=None, name=None, **kwargs) -> Sequential:
    """``keras.Model(inputs, outputs)`` for a single chain of layers, as a ``Sequential``."""
    who = "keras.Model"
    if kwargs:
        raise ValueError(f"{who}: unknown argument(s) {', '.join(sorted(kwargs))}; pass inputs, outputs, name.")
    if isinstance(inputs, (list, tuple)) and len(inputs) == 1:
        inputs = inputs[0]
    if isinstance(outputs, (list, tuple)) and len(outputs) == 1:
        outputs = outputs[0]
    if not isinstance(inputs, KerasTensor) or not isinstance(outputs, KerasTensor):
        raise ValueError(f"{who}: expects inputs=keras.Input(...) and outputs, the result of calling layers on it "
                         "(one input, one output); models with several inputs or outputs are not supported.")
    chain, tensor = [], outputs
    while tensor.layer is not None:
        chain.append(tensor.layer)
        tensor = tensor.parent
    if tensor is not inputs:
        raise ValueError(f"{who}: outputs were not computed from these inputs; pass the keras.Input the layers "
                         "were called on.")
    model = Sequential(name=name or unique_name("functional"))
    model.add(inputs)
    for layer in reversed(chain):
        model.add(layer)
    return model


def _as_keras(model) -> Sequential:
    """A convlayer Sequential/MNISTModel read from a file, as a Keras Sequential holding the same layers."""
    keras_model = Sequential(name=model.name)
    for layer in model.layers:
        keras_class = getattr(layers_mod, type(layer).__name__)
        # The Keras classes add no state to the engine's: switching the class keeps every weight
        # and setting as it is, without a copy.
        layer.__class__ = keras_class
        keras_model.layers.append(layer)
    keras_model.input_shape = model.input_shape
    keras_model._declared_input = model.input_shape
    return keras_model


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True) -> Sequential:
    """Read a ``.keras`` file (Keras 3, convlayer's or real Keras'), a Keras 2 ``.h5`` or a convlayer ``.npz``.

    The model comes back compiled when the file records how: files written by ``model.save``
    as saved; checkpoints of ``convlayer train`` with their loss, accuracy and Adam (its state
    from ``last.npz``, a fresh one for ``best.npz``, which keeps none).
    """
    if custom_objects:
        raise ValueError("load_model: custom_objects are not supported; convlayer builds only its own layers.")
    path = Path(filepath)
    suffix = path.suffix.lower()
    if suffix in (".keras", ".h5"):
        from ..interop import import_model

        ck = import_model(path)
    elif suffix == ".npz":
        from .. import checkpoint

        ck = checkpoint.load(path)
    else:
        raise ValueError(f"load_model: cannot read {str(filepath)!r}; pass a .keras, .h5 or .npz file.")
    model = _as_keras(ck.model)
    document = ck.meta.get("keras_compile")
    if compile:
        if suffix == ".keras" and not isinstance(document, dict):
            _compile_as_keras_saved(model, path)
        elif isinstance(document, dict) and document.get("loss"):
            try:
                loss = losses_mod.get(document["loss"])
                loss.from_logits = bool(document.get("from_logits", False))
                optimizer = ck.optimizer or _engine_optimizers.from_config(document["optimizer"])
                model.compile(optimizer=optimizer, loss=loss, metrics=list(document.get("metrics", [])))
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                raise ValueError(f"load_model: {filepath} records a compile setting convlayer cannot use ({exc}); "
                                 "pass compile=False and compile the model yourself.") from None
        elif suffix == ".npz" and isinstance(getattr(ck.model, "loss", None), str):  # `convlayer train`
            loss = losses_mod.get(ck.model.loss)
            loss.from_logits = model.output_activation != "softmax"
            # best.npz keeps no optimizer: a fresh Adam, as `convlayer train` starts with
            model.compile(optimizer=ck.optimizer or optimizers_mod.Adam(), loss=loss, metrics=["accuracy"])
    return model


def _compile_as_keras_saved(model, path: Path) -> None:
    """Compile ``model`` as the ``compile_config`` of a ``.keras`` file written by Keras says.

    A setting convlayer cannot honour leaves the model uncompiled, with a warning saying why
    (Keras does the same when compiling a loaded model fails).
    """
    import json
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            entry = archive.getinfo("config.json")
            if entry.file_size > 64 << 20:
                return
            config = json.loads(archive.read(entry)).get("compile_config")
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, AttributeError, RecursionError):
        return
    if not isinstance(config, dict):
        return
    try:
        optimizer, loss = config.get("optimizer"), config.get("loss")
        if isinstance(optimizer, dict):
            settings = dict(optimizer.get("config") or {})
            settings.pop("name", None)
            optimizer = {"Adam": optimizers_mod.Adam, "SGD": optimizers_mod.SGD}[optimizer.get("class_name")](
                **settings)
        if isinstance(loss, dict):
            settings = dict(loss.get("config") or {})
            settings.pop("name", None)
            loss = {"SparseCategoricalCrossentropy": losses_mod.SparseCategoricalCrossentropy,
                    "CategoricalCrossentropy": losses_mod.CategoricalCrossentropy}[loss.get("class_name")](**settings)
        metrics = [m for m in config.get("metrics") or () if isinstance(m, str)]
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    except (ValueError, TypeError, KeyError) as exc:
        model.optimizer, model.keras_loss = None, None
        warnings.warn(f"load_model: {path.name} was compiled with a setting convlayer does not implement ({exc}); "
                      "the model is loaded uncompiled: call model.compile(...) before fit or evaluate.",
                      stacklevel=3)


def save_model(model, filepath, overwrite=True, **kwargs) -> None:
    """``keras.models.save_model(model, path)``: the same as ``model.save(path)``."""
    if not isinstance(model, Model):
        raise ValueError(f"save_model: expects a keras model, got {type(model).__name__}.")
    model.save(filepath, overwrite=overwrite, **kwargs)
