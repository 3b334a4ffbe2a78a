"""Sequential: a model that is a list of layers; backward walks it in reverse."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .. import optimizers as optimizers_mod
from .. import parallel
from ..datasets.dataset import iterate_batches, num_batches
from ..functional.losses import accuracy, categorical_crossentropy, softmax, sparse_categorical_crossentropy
from ..layers import LAYER_CLASSES, Conv2D, Layer

# Images per forward pass in predict/evaluate. Measured on the lesson's model (2 cores, 1,000
# images): 512 runs 1.15x faster than 128, whose dense layer reads its 12.8 MB of weights for
# too few rows; 1,000 is no faster than 512.
PREDICT_BATCH = 512


LOSSES = {"sparse_categorical_crossentropy": sparse_categorical_crossentropy,
          "categorical_crossentropy": categorical_crossentropy}


def _shape_text(shape) -> str:
    return "x".join("?" if d is None else str(d) for d in shape)


@dataclass
class History:
    """Per-epoch metrics of ``fit``: ``history['loss'][epoch]`` like Keras."""

    epochs: list[int] = field(default_factory=list)
    history: dict[str, list[float]] = field(default_factory=dict)

    def append(self, epoch: int, logs: dict) -> None:
        self.epochs.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)


class Callback:
    """Hooks called by ``fit``; override what you need. ``logs`` is a dict of floats."""

    def on_epoch_begin(self, epoch: int, model: "Sequential") -> None: ...

    def on_batch_begin(self, step: int, model: "Sequential") -> None: ...

    def on_batch_end(self, step: int, logs: dict, model: "Sequential") -> None: ...

    def on_epoch_end(self, epoch: int, logs: dict, model: "Sequential") -> None: ...


class NonFiniteLossError(ValueError):
    """The loss or a gradient became NaN or infinite; the weights are left as they were before the step."""


def all_finite(array) -> bool:
    """No NaN or infinity in ``array``: one pass, no temporary (a finite sum has neither).

    >>> all_finite(np.array([1.0, 3e38, 3e38], np.float32)), all_finite(np.array([1.0, np.nan]))
    (True, False)
    """
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(np.sum(array))) or bool(np.isfinite(array).all())  # the sum overflowed: look


def check_finite(array, name: str, who: str) -> None:
    """Refuse NaN or infinite values in float input, naming the array and the first bad index."""
    if array.dtype.kind in "fc" and array.size and not all_finite(array):
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        raise ValueError(f"{who}: {name} holds a non-finite value ({array[index]}) at index {index}; clean or "
                         "drop that sample (np.isfinite(x) finds them all).")


def check_labels(y, num_outputs: int | None, who: str, *, one_hot: bool = False) -> np.ndarray:
    """Integer class indices in [0, num_outputs) (or one-hot rows of width num_outputs), one clear line if not."""
    y = np.asarray(y)
    if one_hot:
        if y.ndim != 2 or (num_outputs is not None and y.shape[1] != num_outputs):
            raise ValueError(f"{who}: one-hot labels must have shape (N, {num_outputs}), got {y.shape}; use "
                             "keras.utils.to_categorical(y, num_classes) or the sparse loss for class indices.")
        check_finite(y, "y", who)
        return y
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"{who}: labels must be class indices of shape (N,), got shape {y.shape}"
                         f"{'; they look one-hot: pass y.argmax(axis=1)' if y.ndim == 2 else ''}.")
    if not len(y):
        return y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.integer):
        if y.dtype.kind == "f" and np.isfinite(y).all() and (y == np.round(y)).all():
            y = y.astype(np.int64)  # 3.0 means class 3, as Keras reads it
        else:
            raise ValueError(f"{who}: labels must be non-negative integers (class indices), got dtype {y.dtype}.")
    low, high = int(y.min()), int(y.max())
    if low < 0 or (num_outputs is not None and high >= num_outputs):
        bad = low if low < 0 else high
        raise ValueError(f"{who}: labels go from {low} to {high} but the model has {num_outputs} outputs "
                         f"(classes 0..{num_outputs - 1}); label {bad} is out of range. Fix the labels or build "
                         "the model with as many outputs as classes.")
    return y.astype(np.int64, copy=False)


def _check_xy(x, y, who, num_outputs=None, *, one_hot=False):
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim < 1 or len(x) != len(y):
        raise ValueError(f"{who}: expects x with a batch axis and labels y with the same number of samples; got "
                         f"x {x.shape} and y {y.shape}.")
    return x, check_labels(y, num_outputs, who, one_hot=one_hot)


def _check_batch_size(batch_size, who):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"{who}: batch_size must be a positive int, got {batch_size!r}.")
    return int(batch_size)


class Sequential:
    """A stack of layers with Keras' fit / evaluate / predict / summary / save / load.

    >>> from convlayer.layers import Dense
    >>> model = Sequential([Dense(4, activation="relu", seed=0), Dense(2, seed=1)])
    >>> model.predict(np.zeros((3, 5))).shape
    (3, 2)
    """

    def __init__(self, layers=(), *, name: str = "sequential"):
        self.name = name
        self.layers: list[Layer] = []
        for layer in layers:
            self.add(layer)
        self.optimizer: optimizers_mod.Optimizer | None = None
        self.loss: str | Callable = "sparse_categorical_crossentropy"
        self.input_shape: tuple | None = None
        self.data_parallel = None  # a convlayer.distributed.DataParallel under MPI, else None

    def add(self, layer: Layer) -> None:
        if not isinstance(layer, Layer):
            raise TypeError(f"{self.name}: expects convlayer layers, got {type(layer).__name__}.")
        if any(existing.name == layer.name for existing in self.layers):
            raise ValueError(f"{self.name}: a layer named {layer.name!r} already exists; layer names must be unique.")
        self.layers.append(layer)

    # ------------------------------------------------------------------ structure

    def build(self, input_shape) -> None:
        """Create every layer's weights for samples of ``input_shape`` (batch axis included, may be None)."""
        shape = tuple(input_shape)
        self.input_shape = shape
        for layer in self.layers:
            layer.ensure_built(shape)
            shape = layer.compute_output_shape(shape)

    def output_shapes(self, input_shape=None) -> list[tuple]:
        shape = tuple(input_shape or self.input_shape)
        shapes = []
        for layer in self.layers:
            shape = layer.compute_output_shape(shape)
            shapes.append(shape)
        return shapes

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers)

    def summary(self) -> str:
        """A table of layers, output shapes and parameter counts (returned, not printed)."""
        if self.input_shape is None:
            raise ValueError(f"{self.name}: build the model (call it or model.build(input_shape)) before summary().")
        rows = [(f"{layer.name} ({type(layer).__name__})", str(shape), f"{layer.count_params():,}")
                for layer, shape in zip(self.layers, self.output_shapes())]
        head = ("Layer (type)", "Output Shape", "Param #")
        widths = [max(len(r[i]) for r in rows + [head]) + 2 for i in range(3)]
        line = "-" * sum(widths)
        fmt = lambda r: "".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
        trainable = sum(layer.count_params() for layer in self.layers if layer.trainable)
        return "\n".join([f'Model: "{self.name}"', line, fmt(head), "=" * sum(widths), *map(fmt, rows), line,
                          f"Total params: {self.count_params():,}", f"Trainable params: {trainable:,}",
                          f"Non-trainable params: {self.count_params() - trainable:,}"])

    # ------------------------------------------------------------------ compute

    def prepare_input(self, x) -> np.ndarray:
        """The array the first layer gets; a built model checks each sample's shape against its own."""
        x = np.asarray(x)
        if self.input_shape is not None and x.ndim >= 1:
            expected = self.input_shape[1:]
            if len(expected) == x.ndim and len(expected) >= 2 and expected[-1] == 1 and \
                    all(e in (None, g) for e, g in zip(expected[:-1], x.shape[1:])):
                x = x[..., None]  # (N, H, W) grayscale images for a model that takes (N, H, W, 1)
            got = x.shape[1:]
            if len(got) != len(expected) or any(e is not None and e != g for e, g in zip(expected, got)):
                raise ValueError(f"{self.name} expects samples of shape {_shape_text(expected)}, got input of "
                                 f"shape {x.shape} (samples of {_shape_text(got)}); resize the input to "
                                 f"{_shape_text(expected)} or build the model for {_shape_text(got)}.")
        return x

    @property
    def output_activation(self) -> str | None:
        """The name of the last layer's activation ('softmax', 'linear', ...), None if it has none."""
        activation = getattr(self.layers[-1], "activation", None) if self.layers else None
        return getattr(activation, "name", None)

    def probabilities(self, x, *, batch_size: int = PREDICT_BATCH) -> np.ndarray:
        """Class probabilities: the outputs of a softmax layer as they are, else softmax of the logits."""
        outputs = self.predict(x, batch_size=batch_size)
        return outputs if self.output_activation == "softmax" else softmax(outputs)

    def __call__(self, x, training: bool = False, *, keep_cache: bool = True) -> np.ndarray:
        x = self.prepare_input(x)
        if self.input_shape is None:
            self.build((None, *np.shape(x)[1:]))
        inference = not training and not keep_cache
        with parallel.compute():  # BLAS on one thread, parts on every core, for all layers
            i = 0
            while i < len(self.layers):
                layer, after = self.layers[i], self.layers[i + 1] if i + 1 < len(self.layers) else None
                if inference and isinstance(layer, Conv2D) and layer.can_pool_in_cache(after):
                    x = layer.pooled(x, after)  # conv, activation and max pooling per block, in cache
                    i += 2
                else:
                    x = layer(x, training=training, keep_cache=keep_cache)
                    i += 1
        return x

    def get_layer(self, name: str) -> Layer:
        """The layer called ``name``, with an error listing the layers there are."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"{self.name} has no layer {name!r}; its layers are "
                         f"{', '.join(layer.name for layer in self.layers)}.")

    def layer_outputs(self, x, names) -> tuple[dict, np.ndarray]:
        """Inference on ``x``, keeping the outputs of the layers called ``names``.

        Returns ({name: output batch}, the model's output), e.g. feature maps and logits.
        """
        for name in names:
            self.get_layer(name)  # unknown names fail before any work
        x = self.prepare_input(x)
        outputs = {}
        with parallel.compute():
            for layer in self.layers:
                x = layer(x, training=False, keep_cache=False)
                if layer.name in names:
                    outputs[layer.name] = x
        return outputs, x

    def backward(self, dy) -> None:
        """Backpropagate d(loss)/d(output) through every layer, storing parameter gradients."""
        with parallel.compute():
            for index in range(len(self.layers) - 1, -1, -1):
                dy = self.layers[index].backward(dy, need_input_grad=index > 0)

    def trainable_variables(self):
        """(key, param, grad) triples for the optimizer; keys are 'layer/param'."""
        return [(f"{layer.name}/{key}", value, layer.grads[key])
                for layer in self.layers if layer.trainable for key, value in layer.params.items()]

    def regularization_loss(self) -> float:
        return float(sum(layer.regularization_loss() for layer in self.layers))

    # ------------------------------------------------------------------ training

    def compile(self, optimizer="adam", *, loss="sparse_categorical_crossentropy", **optimizer_kwargs) -> None:
        """Choose the optimizer (a name or an Optimizer) and the loss.

        ``loss``: ``'sparse_categorical_crossentropy'`` (integer labels) or
        ``'categorical_crossentropy'`` (one-hot rows), or a callable
        ``loss(outputs, y) -> (mean loss, d loss / d outputs)``. The named losses read the outputs
        as logits, unless the last layer's activation is softmax: then as probabilities, and the
        gradient through the softmax is exactly ``(p - target) / N`` (no softmax applied twice).
        """
        if not (callable(loss) or loss in LOSSES):
            raise ValueError(f"{self.name}.compile: unknown loss {loss!r}; use one of {', '.join(LOSSES)} or a "
                             "callable loss(outputs, y) -> (loss, doutputs).")
        self.optimizer = optimizers_mod.get(optimizer, **optimizer_kwargs)
        self.loss = loss

    def compute_loss(self, outputs, y) -> tuple[float, np.ndarray]:
        """(mean loss, d loss / d outputs) of the compiled loss."""
        if callable(self.loss):
            return self.loss(outputs, y)
        from_logits = self.output_activation != "softmax"
        return LOSSES[self.loss](outputs, y, from_logits=from_logits)

    def _labels(self, x, y, who):
        """``y`` checked against the compiled loss and the number of outputs (building the model if needed)."""
        if self.input_shape is None:
            self.build((None, *np.shape(x)[1:]))
        outputs = self.output_shapes()[-1][-1]
        return check_labels(y, outputs, who, one_hot=self.loss == "categorical_crossentropy")

    def train_step(self, x, y) -> tuple[float, float]:
        """One forward/backward/update on a batch; returns (loss, accuracy).

        Raises ``NonFiniteLossError`` before the update, weights untouched, when the loss or a
        gradient is NaN or infinite.
        """
        who = f"{self.name}.train_step"
        if self.optimizer is None:
            raise RuntimeError(f"{self.name}: call compile(optimizer=...) before training.")
        x = self.prepare_input(x)
        check_finite(x, "x", who)
        if not callable(self.loss):
            y = self._labels(x, y, who)
        # NaN and overflow are checked below, once, rather than warned about by every NumPy call.
        with parallel.compute(), np.errstate(over="ignore", invalid="ignore"):
            outputs = self(x, training=True)
            loss, doutputs = self.compute_loss(outputs, y)
            loss += self.regularization_loss()
            if not math.isfinite(loss):
                raise NonFiniteLossError(f"the loss became {loss}")
            self.backward(doutputs)
            if self.data_parallel is not None:  # MPI: average the gradients over the ranks
                self.data_parallel.reduce_gradients(self)
            variables = self.trainable_variables()
            for key, _, grad in variables:
                if not all_finite(grad):
                    raise NonFiniteLossError(f"the gradient of {key} became non-finite")
            self.optimizer.apply(variables)
            for layer in self.layers:
                layer.apply_constraints()
        labels = y.argmax(axis=-1) if np.ndim(y) == 2 else y
        return loss, accuracy(outputs, labels)

    def fit(self, x, y, *, epochs: int = 1, batch_size: int = 32, validation_data=None, rng=None,
            initial_epoch: int = 0, callbacks=(), augment=None) -> History:
        """Train for ``epochs`` (counting from ``initial_epoch``), shuffling with ``rng`` each epoch.

        ``augment(x_batch, rng) -> x_batch`` transforms each training batch (e.g. random shifts).
        """
        who = f"{self.name}.fit"
        if self.optimizer is None:
            raise RuntimeError(f"{self.name}: call compile(optimizer=...) before fit.")
        x, y = _check_xy(self.prepare_input(x), y, who)
        check_finite(x, "x", who)
        if not callable(self.loss):
            y = self._labels(x, y, who)
        if not len(x):
            raise ValueError(f"{who}: needs at least one training sample, got x of shape {x.shape}.")
        batch_size = _check_batch_size(batch_size, who)
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"{who}: epochs must be a non-negative int, got {epochs!r}.")
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        history = History()
        steps_per_epoch = num_batches(len(x), batch_size)
        self.steps_per_epoch = steps_per_epoch  # read by progress bars
        for epoch in range(initial_epoch, epochs):
            for cb in callbacks:
                cb.on_epoch_begin(epoch, self)
            start_time = time.perf_counter()
            seen, loss_sum, correct = 0, 0.0, 0.0
            batches = iterate_batches(x, y, batch_size, shuffle=True, rng=rng)  # draws this epoch's order now
            for step, (x_batch, y_batch) in enumerate(batches):
                for cb in callbacks:
                    cb.on_batch_begin(epoch * steps_per_epoch + step, self)
                if augment is not None:
                    x_batch = augment(x_batch, rng)
                if self.data_parallel is not None:  # MPI: this rank's shard of the global batch
                    x_batch, y_batch = self.data_parallel.shard(x_batch, y_batch)
                try:
                    loss, acc = self.train_step(x_batch, y_batch)
                except NonFiniteLossError as exc:
                    raise NonFiniteLossError(
                        f"training stopped at epoch {epoch + 1}, step {step + 1}: {exc}. The weights are those "
                        "before that step. Try a lower learning rate, check the inputs' scale (e.g. pixels in "
                        "[0, 1]), or clip the gradients.") from None
                seen += len(y_batch)
                loss_sum += loss * len(y_batch)
                correct += acc * len(y_batch)
                elapsed = time.perf_counter() - start_time
                logs = {"loss": loss_sum / seen, "accuracy": correct / seen, "images_per_second": seen / elapsed}
                for cb in callbacks:
                    cb.on_batch_end(step, logs, self)
            logs["seconds"] = time.perf_counter() - start_time
            logs["learning_rate"] = self.optimizer.learning_rate
            if validation_data is not None and len(validation_data[0]):
                val = self.evaluate(*validation_data)
                logs["val_loss"], logs["val_accuracy"] = val["loss"], val["accuracy"]
            history.append(epoch, logs)
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs, self)
        return history

    def predict(self, x, *, batch_size: int = PREDICT_BATCH) -> np.ndarray:
        """Logits for every sample, ``batch_size`` at a time, keeping no caches.

        Memory stays bounded for any number of samples (the lesson's model: about 50 MB of
        activations per 512 images).
        """
        x = self.prepare_input(x)
        batch_size = _check_batch_size(batch_size, f"{self.name}.predict")
        check_finite(x, "x", f"{self.name}.predict")
        with parallel.compute():
            outputs = [self(x[i:i + batch_size], training=False, keep_cache=False)
                       for i in range(0, len(x), batch_size)]
        if not outputs:
            return np.zeros((0, *self.output_shapes((0, *x.shape[1:]))[-1][1:]), np.float32)
        return np.concatenate(outputs)

    def evaluate(self, x, y, *, batch_size: int = PREDICT_BATCH) -> dict:
        """{'loss': mean cross-entropy, 'accuracy': fraction correct}."""
        who = f"{self.name}.evaluate"
        x, y = _check_xy(self.prepare_input(x), y, who)
        if not callable(self.loss):
            y = self._labels(x, y, who)
        outputs = self.predict(x, batch_size=batch_size)
        loss, _ = self.compute_loss(outputs, y)
        return {"loss": loss, "accuracy": accuracy(outputs, y.argmax(axis=-1) if y.ndim == 2 else y)}

    # ------------------------------------------------------------------ weights and config

    def get_weights(self) -> list[np.ndarray]:
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights) -> None:
        weights = list(weights)
        for layer in self.layers:
            n = len(layer.params)
            layer.set_weights(weights[:n])
            weights = weights[n:]

    def get_config(self) -> dict:
        return {"name": self.name, "input_shape": None if self.input_shape is None else list(self.input_shape),
                "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()}
                           for layer in self.layers]}

    @classmethod
    def from_config(cls, config: dict) -> "Sequential":
        layers = []
        for spec in config["layers"]:
            if spec["class_name"] not in LAYER_CLASSES:
                raise ValueError(f"unknown layer class {spec['class_name']!r} in the model config.")
            layers.append(LAYER_CLASSES[spec["class_name"]].from_config(spec["config"]))
        model = cls(layers, name=config.get("name", "sequential"))
        if config.get("input_shape") is not None:
            model.build(tuple(config["input_shape"]))
        return model

    def save(self, path, **kwargs) -> None:
        """Write the model, its compiled optimizer (with its state) and loss to a checkpoint ``.npz``.

        ``Sequential.load(path)`` gives back a model that predicts the same and, when it was
        compiled, continues training exactly where it stopped. Keyword arguments go to
        ``convlayer.checkpoint.save`` (``training_state``, ``meta``).
        """
        from .. import checkpoint
        kwargs.setdefault("optimizer", self.optimizer)
        checkpoint.save(path, self, **kwargs)

    @staticmethod
    def load(path) -> "Sequential":
        """Read a checkpoint written by ``save`` or ``convlayer train``: the model, compiled with its saved
        optimizer state and loss when it has them (else not compiled)."""
        from .. import checkpoint
        ck = checkpoint.load(path)
        ck.model.optimizer = ck.optimizer
        return ck.model
