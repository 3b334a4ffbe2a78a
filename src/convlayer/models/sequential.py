"""Sequential: a model that is a list of layers; backward walks it in reverse."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .. import optimizers as optimizers_mod
from .. import parallel
from ..datasets.dataset import iterate_batches, num_batches
from ..functional.losses import accuracy, sparse_categorical_crossentropy
from ..layers import LAYER_CLASSES, Layer

# Images per forward pass in predict/evaluate. Measured on the lesson's model (2 cores, 1,000
# images): 512 runs 1.15x faster than 128, whose dense layer reads its 12.8 MB of weights for
# too few rows; 1,000 is no faster than 512.
PREDICT_BATCH = 512


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


def _check_xy(x, y, who):
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim < 1 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"{who}: expects x with a batch axis and labels y of shape (N,) with the same N; got "
                         f"x {x.shape} and y {y.shape}.")
    if len(y) and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0):
        raise ValueError(f"{who}: labels must be non-negative integers (class indices), got dtype {y.dtype}"
                         f"{'' if not np.issubdtype(y.dtype, np.integer) else f' with min {y.min()}'}.")
    return x, y.astype(np.int64, copy=False)


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
        self.input_shape: tuple | None = None

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
        return np.asarray(x)

    def __call__(self, x, training: bool = False, *, keep_cache: bool = True) -> np.ndarray:
        x = self.prepare_input(x)
        if self.input_shape is None:
            self.build((None, *np.shape(x)[1:]))
        with parallel.compute():  # BLAS on one thread, parts on every core, for all layers
            for layer in self.layers:
                x = layer(x, training=training, keep_cache=keep_cache)
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

    def compile(self, optimizer="adam", **optimizer_kwargs) -> None:
        """Choose the optimizer; the loss is sparse categorical cross-entropy from logits."""
        self.optimizer = optimizers_mod.get(optimizer, **optimizer_kwargs)

    def train_step(self, x, y) -> tuple[float, float]:
        """One forward/backward/update on a batch; returns (loss, accuracy)."""
        if self.optimizer is None:
            raise RuntimeError(f"{self.name}: call compile(optimizer=...) before training.")
        with parallel.compute():  # one BLAS setting for the whole step
            logits = self(x, training=True)
            loss, dlogits = sparse_categorical_crossentropy(logits, y)
            self.backward(dlogits)
            self.optimizer.apply(self.trainable_variables())
            for layer in self.layers:
                layer.apply_constraints()
        return loss + self.regularization_loss(), accuracy(logits, y)

    def fit(self, x, y, *, epochs: int = 1, batch_size: int = 32, validation_data=None, rng=None,
            initial_epoch: int = 0, callbacks=(), augment=None) -> History:
        """Train for ``epochs`` (counting from ``initial_epoch``), shuffling with ``rng`` each epoch.

        ``augment(x_batch, rng) -> x_batch`` transforms each training batch (e.g. random shifts).
        """
        who = f"{self.name}.fit"
        x, y = _check_xy(x, y, who)
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
                loss, acc = self.train_step(x_batch, y_batch)
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
        with parallel.compute():
            outputs = [self(x[i:i + batch_size], training=False, keep_cache=False)
                       for i in range(0, len(x), batch_size)]
        if not outputs:
            return np.zeros((0, *self.output_shapes((0, *x.shape[1:]))[-1][1:]), np.float32)
        return np.concatenate(outputs)

    def evaluate(self, x, y, *, batch_size: int = PREDICT_BATCH) -> dict:
        """{'loss': mean cross-entropy, 'accuracy': fraction correct}."""
        x, y = _check_xy(self.prepare_input(x), y, f"{self.name}.evaluate")
        logits = self.predict(x, batch_size=batch_size)
        if logits.shape[-1] <= (y.max() if len(y) else 0):
            raise ValueError(f"{self.name}.evaluate: labels go up to {y.max()} but the model has only "
                             f"{logits.shape[-1]} outputs.")
        loss, _ = sparse_categorical_crossentropy(logits, y)
        return {"loss": loss, "accuracy": accuracy(logits, y)}

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
        from .. import checkpoint
        checkpoint.save(path, self, **kwargs)

    @staticmethod
    def load(path):
        from .. import checkpoint
        return checkpoint.load(path).model
