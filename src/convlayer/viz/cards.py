"""What did each filter learn? Filter cards and filter surgery, for ``convlayer show cards|ablation``.

A filter's card (after Zeiler & Fergus 2014 and the feature-visualization tools) holds:

* its kernel (for a layer with several input channels, the channels with the largest weights);
* the test images that excite it most: for each image its strongest position, the 9 strongest
  images kept, each patch being the unit's exact receptive field (``receptive_field``);
* its mean activation per class (the feature map's mean over positions, averaged over a class);
* an input optimized to excite it: gradient ascent on the pixels through the layers' own
  ``backward``, from a seeded start, with a small L2 penalty.

Surgery (``ablation``): the test accuracy with each filter zeroed in turn, or with filters
replaced by classic kernels (``parse_set``: sobel_x, sobel_y, blur, identity or numbers).

The numbers come from plain functions here; ``cards_figure`` and ``ablation_figure`` only draw
them. Everything runs on a copy of the model (``clone_model``): the caller's model and its
checkpoint file are never changed, and the web page's shared model is never touched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import parallel
from ..functional.shapes import effective_kernel_size, resolve_padding

TOP = 9
BATCH = 512  # images per forward pass: conv1 of a 28x28 model holds 512*28*28*32 floats = 51 MB
SPATIAL_LAYERS = ("Conv2D", "MaxPooling2D", "AveragePooling2D")
POINTWISE_LAYERS = ("Activation", "Dropout")  # no change of geometry (Dropout is off at inference)

CLASSIC_KERNELS = {
    "sobel_x": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],  # vertical edges: dark left, bright right
    "sobel_y": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],  # horizontal edges: dark above, bright below
    "blur": [[1 / 16, 2 / 16, 1 / 16], [2 / 16, 4 / 16, 2 / 16], [1 / 16, 2 / 16, 1 / 16]],  # Gaussian 3x3
    "identity": [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
}


class CardsError(ValueError):
    """A layer, filter or kernel the cards and the surgery cannot work with."""


# ---------------------------------------------------------------------------- model plumbing


def conv_layer_names(model) -> list[str]:
    """Names of the model's Conv2D layers, in order."""
    return [layer.name for layer in model.layers if type(layer).__name__ == "Conv2D"]


def conv_layer(model, name: str):
    """The Conv2D layer ``name``; one line listing the Conv2D layers if there is none."""
    names = conv_layer_names(model)
    if name not in names:
        raise CardsError(f"the model has no Conv2D layer {name!r}; its Conv2D layers are "
                         f"{', '.join(names) or 'none'} (pass --layer with one of them).")
    layer = model.get_layer(name)
    if layer.data_format != "channels_last":
        raise CardsError(f"Conv2D {name!r} uses data_format={layer.data_format!r}; filter cards handle "
                         "channels_last models (those convlayer trains).")
    return layer


def _prefix(model, name: str) -> list:
    """The layers from the input up to and including ``name``, checked to keep pixel geometry."""
    conv_layer(model, name)
    layers = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind not in SPATIAL_LAYERS + POINTWISE_LAYERS:
            raise CardsError(f"layer {layer.name!r} ({kind}) comes before {name!r}; filter cards need only "
                             "convolution, pooling and activation layers in front of the filter.")
        layers.append(layer)
        if layer.name == name:
            return layers
    raise AssertionError("unreachable: conv_layer found the layer")


def clone_model(model):
    """A copy of ``model`` with copied weights: changing it never changes ``model``."""
    clone = type(model).from_config(model.get_config())
    if clone.input_shape is None and model.input_shape is not None:
        clone.build(model.input_shape)
    for source, target in zip(model.layers, clone.layers):
        for key, value in source.params.items():
            target.params[key][...] = value
    return clone


def _run(layers, x, *, keep_cache: bool = False) -> np.ndarray:
    with parallel.compute():
        for layer in layers:
            x = layer(x, training=False, keep_cache=keep_cache)
    return x


def layer_output(model, name: str, x) -> np.ndarray:
    """The output of layer ``name`` (activation included) for images ``x``: (N, H, W, filters).

    >>> from convlayer.models import MNISTModel
    >>> layer_output(MNISTModel(8, 10), "conv2", np.zeros((2, 8, 8))).shape
    (2, 4, 4, 64)
    """
    return _run(_prefix(model, name), model.prepare_input(x))


# ---------------------------------------------------------------------------- receptive field


@dataclass(frozen=True)
class ReceptiveField:
    """Which input pixels one output unit of a layer sees, per axis (rows, cols).

    Output unit ``r`` sees input rows ``start + r * jump`` .. ``start + r * jump + size - 1``;
    rows outside 0..H-1 are padding.
    """

    size: tuple[int, int]
    jump: tuple[int, int]
    start: tuple[int, int]

    def box(self, row: int, col: int, image_shape=None) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) of unit (row, col), bottom/right exclusive; clipped to ``image_shape``."""
        top = self.start[0] + row * self.jump[0]
        left = self.start[1] + col * self.jump[1]
        bottom, right = top + self.size[0], left + self.size[1]
        if image_shape is not None:
            top, left = max(top, 0), max(left, 0)
            bottom, right = min(bottom, image_shape[0]), min(right, image_shape[1])
        return top, left, bottom, right


def receptive_field(model, name: str) -> ReceptiveField:
    """The exact receptive field of layer ``name``'s units, from each layer's kernel, stride and padding.

    Composed from the input: a layer with kernel span k, stride s and padding p before grows the
    field by (k - 1) * jump, moves its start by -p * jump and multiplies the jump by s.

    >>> from convlayer.models import MNISTModel
    >>> receptive_field(MNISTModel(28, 10), "conv2")
    ReceptiveField(size=(14, 14), jump=(2, 2), start=(-6, -6))
    """
    shape = tuple(model.input_shape)  # (None, H, W, C)
    size, jump, start = [1, 1], [1, 1], [0, 0]
    for layer in _prefix(model, name):
        kind = type(layer).__name__
        if kind in SPATIAL_LAYERS:
            if kind == "Conv2D":
                kernel, strides, dilation = layer.kernel_size, layer.strides, layer.dilation_rate
                pads = layer.padding_amounts(shape)
            else:
                kernel, strides, dilation = layer.pool_size, layer.strides, (1, 1)
                pads = resolve_padding(layer.padding, shape[1:3], kernel, strides, dilation)
            for axis in range(2):
                size[axis] += (effective_kernel_size(kernel[axis], dilation[axis]) - 1) * jump[axis]
                start[axis] -= pads[axis][0] * jump[axis]
                jump[axis] *= strides[axis]
        shape = layer.compute_output_shape(shape)
    return ReceptiveField(tuple(size), tuple(jump), tuple(start))


# ---------------------------------------------------------------------------- top patches, class means


@dataclass
class FilterStats:
    """One pass over a data set for the filters ``filters`` of a layer.

    ``top_*`` are (k, len(filters)): row i is each filter's i-th strongest image (its strongest
    position), strongest first, ties to the lower image index; unused rows hold image -1.
    ``class_mean`` is (classes, len(filters)), NaN for a class with no image.
    """

    layer: str
    filters: list[int]
    top_activation: np.ndarray
    top_image: np.ndarray
    top_row: np.ndarray
    top_col: np.ndarray
    class_mean: np.ndarray
    field: ReceptiveField
    map_shape: tuple[int, int]


def check_filters(filters, count: int, layer: str) -> list[int]:
    """Filter indices checked against the layer's ``count`` filters (None: all of them)."""
    if filters is None:
        return list(range(count))
    filters = [int(f) for f in filters]
    bad = [f for f in filters if not 0 <= f < count]
    if bad or not filters:
        raise CardsError(f"{layer} has filters 0..{count - 1}; got {bad or 'none'} (pass e.g. --filters 0,5).")
    return list(dict.fromkeys(filters))


def filter_stats(model, name: str, x, labels, num_classes: int, *, filters=None, top: int = TOP,
                 batch_size: int = BATCH) -> FilterStats:
    """Top-``top`` images and mean activation per class of each filter, ``batch_size`` images at a time.

    Memory is bounded by one batch's activations plus (top + batch_size) candidates per filter,
    whatever the number of images.

    Args:
        x: (N, H, W) or (N, H, W, 1) images, as the model takes them. labels: (N,) classes.
    Returns:
        A ``FilterStats``.
    """
    layer = conv_layer(model, name)
    filters = check_filters(filters, layer.filters, name)
    x, labels = np.asarray(x), np.asarray(labels).astype(np.int64)
    if len(x) != len(labels) or not len(x):
        raise CardsError(f"filter cards need images and as many labels; got {len(x)} images and {len(labels)} "
                         "labels.")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise CardsError(f"labels go from {labels.min()} to {labels.max()}, outside 0..{num_classes - 1}.")
    layers, chosen = _prefix(model, name), np.array(filters)
    k = len(filters)
    best_value = np.full((top, k), -np.inf, np.float64)
    best_image = np.full((top, k), -1, np.int64)
    best_pos = np.zeros((top, k), np.int64)
    sums = np.zeros((num_classes, k), np.float64)
    map_shape = None
    for begin in range(0, len(x), batch_size):
        acts = _run(layers, model.prepare_input(x[begin:begin + batch_size]))  # (B, H, W, F)
        if k < layer.filters or filters != sorted(filters):
            acts = acts[..., chosen]  # (B, H, W, k); a copy, so only when a subset is asked for
        batch, height, width, _ = acts.shape
        map_shape = (height, width)
        flat = acts.reshape(batch, height * width, k)  # (B, H*W, k)
        pos = flat.argmax(axis=1)  # (B, k): each image's strongest position, first in row-major order
        value = np.take_along_axis(flat, pos[:, None, :], axis=1)[:, 0, :]  # (B, k)
        image = np.broadcast_to(np.arange(begin, begin + batch)[:, None], (batch, k))
        candidates = (np.concatenate([best_value, value]), np.concatenate([best_image, image]),
                      np.concatenate([best_pos, pos]))
        order = np.argsort(-candidates[0], axis=0, kind="stable")[:top]  # stable: earlier images win ties
        best_value, best_image, best_pos = (np.take_along_axis(c, order, axis=0) for c in candidates)
        np.add.at(sums, labels[begin:begin + batch], flat.mean(axis=1))
        del acts, flat
    counts = np.bincount(labels, minlength=num_classes)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        class_mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    best_image[~np.isfinite(best_value)] = -1
    return FilterStats(name, filters, best_value, best_image, best_pos // map_shape[1], best_pos % map_shape[1],
                       class_mean, receptive_field(model, name), map_shape)


def stats_json(stats: FilterStats, image_shape, *, class_names=None, extra=None) -> dict:
    """``{"layer", "filters": [{"index", "top": [{"image", "row", "col", "activation", "box"}], "class_mean"}]}``.

    ``box`` is the receptive field (top, left, bottom, right) in pixels, clipped to the image,
    bottom/right exclusive. ``extra``: {filter index: dict} merged into each filter's entry.
    """
    entries = []
    for j, index in enumerate(stats.filters):
        top = []
        for i in range(stats.top_image.shape[0]):
            if stats.top_image[i, j] < 0:
                continue
            row, col = int(stats.top_row[i, j]), int(stats.top_col[i, j])
            top.append({"image": int(stats.top_image[i, j]), "row": row, "col": col,
                        "activation": float(stats.top_activation[i, j]),
                        "box": list(stats.field.box(row, col, image_shape))})
        means = [None if not np.isfinite(v) else float(v) for v in stats.class_mean[:, j]]
        entries.append({"index": index, "top": top, "class_mean": means, **(extra or {}).get(index, {})})
    document = {"layer": stats.layer, "receptive_field": {"size": list(stats.field.size),
                                                          "jump": list(stats.field.jump),
                                                          "start": list(stats.field.start)},
                "filters": entries}
    if class_names is not None:
        document["class_names"] = [str(c) for c in class_names]
    return document


# ---------------------------------------------------------------------------- kernels


def kernel_channels(kernel: np.ndarray, index: int, count: int = 3) -> list[int]:
    """The input channels of filter ``index`` with the largest weights (sum of |w|), largest first.

    Args:
        kernel: (kh, kw, in, filters), Keras' HWIO layout.

    >>> k = np.zeros((3, 3, 4, 2)); k[:, :, 2, 1] = 5; k[0, 0, 0, 1] = -1
    >>> kernel_channels(k, 1, 2)
    [2, 0]
    """
    weight = np.abs(np.asarray(kernel)[:, :, :, index]).sum(axis=(0, 1))  # (in,)
    return [int(c) for c in np.argsort(-weight, kind="stable")[:count]]


# ---------------------------------------------------------------------------- optimized input


def optimize_input(model, name: str, index: int, *, steps: int = 64, step_size: float = 0.05, l2: float = 1e-3,
                   seed: int = 0, value_range=(0.0, 1.0)) -> tuple[np.ndarray, float, float]:
    """An input that excites filter ``index`` of layer ``name``: gradient ascent on the pixels.

    Maximizes ``mean over positions of the filter's map - l2 * mean(x ** 2)``, starting from seeded
    noise around the middle of ``value_range``; each step moves the pixels by ``step_size`` times
    the gradient divided by its RMS, then clips them to ``value_range``. The gradient comes from
    the layers' own ``backward`` (on a copy of the model).

    Returns:
        (image (H, W), the seed's mean activation, the result's mean activation).

    >>> from convlayer.models import MNISTModel
    >>> image, before, after = optimize_input(MNISTModel(8, 10), "conv1", 3, steps=8)
    >>> image.shape, after >= before
    ((8, 8), True)
    """
    layer = conv_layer(model, name)
    check_filters([index], layer.filters, name)
    low, high = float(value_range[0]), float(value_range[1])
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise CardsError(f"value_range must be two finite numbers, low < high; got {value_range!r}.")
    layers = _prefix(clone_model(model), name)
    shape = tuple(model.input_shape[1:])  # (H, W, C)
    rng = np.random.default_rng(seed)
    x = (low + high) / 2 + (high - low) * 0.1 * rng.standard_normal((1, *shape))  # (1, H, W, C)
    x = np.clip(x, low, high).astype(np.float32)

    def activation_and_grad(x):
        y = _run(layers, x, keep_cache=True)  # (1, Ho, Wo, F)
        dy = np.zeros_like(y)
        dy[..., index] = 1.0 / (y.shape[1] * y.shape[2])  # d(mean over positions) / dy
        with parallel.compute():
            for each in reversed(layers):
                dy = each.backward(dy, need_input_grad=True)
        return float(y[..., index].mean()), dy

    first, _ = activation_and_grad(x)
    for _ in range(steps):
        _, grad = activation_and_grad(x)
        grad = grad - 2 * l2 * x / x.size  # the penalty's gradient
        rms = float(np.sqrt(np.mean(grad ** 2)))
        if rms == 0:
            break  # the filter is silent on this input and on its neighbourhood: nothing to climb
        x = np.clip(x + step_size * (high - low) * grad / rms, low, high).astype(np.float32)
    last, _ = activation_and_grad(x)
    return x[0, :, :, 0] if shape[-1] == 1 else x[0], first, last


# ---------------------------------------------------------------------------- surgery


def parse_kernel(text: str, kernel_size, who: str = "--set") -> np.ndarray:
    """A classic kernel's name or numbers ('1,0,-1;2,0,-2;1,0,-1') as a (kh, kw) array, a smaller one
    centred in zeros of ``kernel_size``.

    >>> parse_kernel("sobel_x", (5, 5))[1:4, 1:4]
    array([[-1.,  0.,  1.],
           [-2.,  0.,  2.],
           [-1.,  0.,  1.]])
    """
    text = text.strip()
    names = ", ".join(CLASSIC_KERNELS)
    if text.lower() in CLASSIC_KERNELS:
        small = np.array(CLASSIC_KERNELS[text.lower()], np.float64)
    else:
        try:
            rows = [[float(v) for v in row.replace(",", " ").split()] for row in text.split(";")]
        except ValueError:
            raise CardsError(f"{who}: {text!r} is neither a kernel name ({names}) nor numbers like "
                             "'1,0,-1;2,0,-2;1,0,-1' (rows separated by ';').") from None
        if not rows or not rows[0] or any(len(r) != len(rows[0]) for r in rows):
            raise CardsError(f"{who}: the kernel {text!r} needs rows of equal length separated by ';', e.g. "
                             "'1,0,-1;2,0,-2;1,0,-1'.")
        small = np.array(rows, np.float64)
        if not np.isfinite(small).all():
            raise CardsError(f"{who}: the kernel {text!r} holds a non-finite number.")
    kh, kw = kernel_size
    sh, sw = small.shape
    if sh > kh or sw > kw or (kh - sh) % 2 or (kw - sw) % 2:
        raise CardsError(f"{who}: a {sh}x{sw} kernel does not fit centred in the layer's {kh}x{kw} kernel; give "
                         f"{kh}x{kw} numbers or a size smaller by an even number.")
    full = np.zeros((kh, kw))
    full[(kh - sh) // 2:(kh - sh) // 2 + sh, (kw - sw) // 2:(kw - sw) // 2 + sw] = small
    return full


def parse_set(items, layer) -> dict[int, np.ndarray]:
    """``['5=sobel_x', '2=1,0,-1;...']`` -> {filter: (kh, kw, in) kernel}, the same matrix on each input channel."""
    replacements = {}
    for item in items:
        index_text, sep, kernel_text = item.partition("=")
        if not sep or not index_text.strip() or not kernel_text.strip():
            raise CardsError(f"--set {item!r}: expected FILTER=KERNEL, e.g. --set 5=sobel_x.")
        try:
            index = int(index_text)
        except ValueError:
            raise CardsError(f"--set {item!r}: the filter must be a number 0..{layer.filters - 1}, got "
                             f"{index_text.strip()!r}.") from None
        check_filters([index], layer.filters, layer.name)
        if index in replacements:
            raise CardsError(f"--set names filter {index} twice; give each filter one kernel.")
        matrix = parse_kernel(kernel_text, layer.kernel_size, f"--set {item!r}")
        replacements[index] = np.repeat(matrix[:, :, None], layer.kernel.shape[2], axis=2)  # (kh, kw, in)
    return replacements


@dataclass
class Ablation:
    """Test accuracy of the model, with each filter zeroed (``zeroed[f]``) and with the replacements."""

    layer: str
    baseline: float
    zeroed: dict
    replaced: float | None
    predictions: np.ndarray  # (N,) of the unchanged model
    replaced_predictions: np.ndarray | None


def ablation(model, name: str, x, labels, *, filters=None, replacements=None, zero_each: bool = True,
             batch_size: int = BATCH) -> Ablation:
    """Accuracy with each filter of layer ``name`` zeroed in turn (kernel and bias), and with ``replacements``
    ({filter: (kh, kw, in) kernel}, bias 0) applied together. Works on a copy of the model.

    The layers before ``name`` run once per batch; only ``name`` and the layers after it run again
    for each change.
    """
    layer = conv_layer(model, name)
    chosen = check_filters(filters, layer.filters, name) if zero_each else []
    x, labels = np.asarray(x), np.asarray(labels)
    if len(x) != len(labels) or not len(x):
        raise CardsError(f"ablation needs images and as many labels; got {len(x)} images and {len(labels)}.")
    work = clone_model(model)
    position = [each.name for each in work.layers].index(name)
    before, after = work.layers[:position], work.layers[position:]
    target = work.layers[position]
    kernel, bias = target.params["kernel"], target.params.get("bias")
    correct = {f: 0 for f in chosen}
    predictions, replaced_predictions = [], []
    for begin in range(0, len(x), batch_size):
        h = _run(before, work.prepare_input(x[begin:begin + batch_size]))
        y = labels[begin:begin + batch_size]
        predictions.append(_run(after, h).argmax(axis=-1))
        for f in chosen:
            saved = kernel[..., f].copy(), None if bias is None else bias[f].copy()
            kernel[..., f] = 0
            if bias is not None:
                bias[f] = 0
            try:
                correct[f] += int((_run(after, h).argmax(axis=-1) == y).sum())
            finally:
                kernel[..., f] = saved[0]
                if bias is not None:
                    bias[f] = saved[1]
        if replacements:
            saved_kernel, saved_bias = kernel.copy(), None if bias is None else bias.copy()
            try:
                for f, matrix in replacements.items():
                    kernel[..., f] = matrix
                    if bias is not None:
                        bias[f] = 0
                replaced_predictions.append(_run(after, h).argmax(axis=-1))
            finally:
                kernel[...] = saved_kernel
                if bias is not None:
                    bias[...] = saved_bias
    predictions = np.concatenate(predictions)
    replaced = np.concatenate(replaced_predictions) if replacements else None
    return Ablation(name, float((predictions == labels).mean()), {f: c / len(x) for f, c in correct.items()},
                    None if replaced is None else float((replaced == labels).mean()), predictions, replaced)


# ---------------------------------------------------------------------------- figures


def _montage(images, columns: int, gap: int = 1):
    """(N, h, w) images in a grid with ``gap`` pixels of NaN between; returns (montage, tile offsets)."""
    n, h, w = images.shape
    rows = -(-n // columns)
    montage = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap), np.nan)
    offsets = []
    for i in range(n):
        top, left = (i // columns) * (h + gap), (i % columns) * (w + gap)
        montage[top:top + h, left:left + w] = images[i]
        offsets.append((top, left))
    return montage, offsets


def cards_figure(document: dict, images: np.ndarray, kernel: np.ndarray, optimized: dict, *, title: str = "",
                 columns: int = 8):
    """A grid of filter cards from ``stats_json``'s document.

    Args:
        document: ``stats_json(...)`` (with class_names). images: (N, H, W) test images.
        kernel: (kh, kw, in, filters) of the layer. optimized: {filter index: (H, W) image}.
    Returns:
        A ``Figure`` of about 2.6 x 2.9 inches per card.
    """
    from matplotlib.patches import Rectangle

    from .figures import new_figure

    entries = document["filters"]
    names = document.get("class_names") or [str(i) for i in range(len(entries[0]["class_mean"]))]
    columns = min(columns, len(entries), 4 if len(entries) <= 12 else columns)  # a few cards: 4 a row
    rows = -(-len(entries) // columns)
    fig = new_figure(2.6 * columns, 2.9 * rows + 0.8)
    grid = fig.add_gridspec(rows * 2, columns * 2, left=0.02, right=0.99, top=1 - 0.8 / (2.9 * rows + 0.8),
                            bottom=0.02, wspace=0.35, hspace=0.45)
    limit = float(np.abs(kernel).max()) or 1.0
    size = document["receptive_field"]["size"]
    fig.suptitle(f"{title}: what each filter of {document['layer']} learned (receptive field {size[0]}x{size[1]} "
                 "pixels; red kernel weights positive, blue negative)", fontsize=11)
    low, high = float(np.nanmin(images)), float(np.nanmax(images))
    for n, entry in enumerate(entries):
        r, c = divmod(n, columns)
        f = entry["index"]
        ax = fig.add_subplot(grid[2 * r, 2 * c])
        channels = kernel_channels(kernel, f, 3)
        montage, _ = _montage(np.moveaxis(kernel[:, :, channels, f], -1, 0), len(channels))
        ax.imshow(montage, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
        label = "kernel" if kernel.shape[2] == 1 else f"kernel, inputs {', '.join(map(str, channels))}"
        ax.set_title(f"filter {f}\n{label}", fontsize=7, pad=2, loc="left")
        ax.set_axis_off()
        ax = fig.add_subplot(grid[2 * r, 2 * c + 1])
        if f in optimized:
            ax.imshow(optimized[f], cmap="gray", interpolation="nearest", vmin=low, vmax=high)
        ax.set_title("optimized input", fontsize=7, pad=2)
        ax.set_axis_off()
        ax = fig.add_subplot(grid[2 * r + 1, 2 * c])
        top = entry["top"]
        if top:
            tiles = images[[t["image"] for t in top]]  # (k, H, W)
            montage, offsets = _montage(tiles, 3)
            ax.imshow(montage, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
            for t, (oy, ox) in zip(top, offsets):
                y0, x0, y1, x1 = t["box"]
                ax.add_patch(Rectangle((ox + x0 - 0.5, oy + y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                                       edgecolor="#ff3300", linewidth=0.8))
                ax.text(ox + 0.3, oy + 0.3, f"#{t['image']}\n{t['activation']:.2f}", fontsize=3.6,
                        color="yellow", va="top", ha="left")
        ax.set_title("top test patches", fontsize=7, pad=2)
        ax.set_axis_off()
        ax = fig.add_subplot(grid[2 * r + 1, 2 * c + 1])
        means = np.array([np.nan if v is None else v for v in entry["class_mean"]])
        ax.barh(range(len(means)), np.nan_to_num(means), color="#3b75af")
        ax.set_yticks(range(len(means)), [str(x)[:9] for x in names], fontsize=4.5)
        ax.invert_yaxis()
        ax.tick_params(axis="x", labelsize=4.5, length=2, pad=1)
        ax.tick_params(axis="y", length=0, pad=1)
        ax.set_title("mean per class", fontsize=7, pad=2)
    return fig


def ablation_figure(result: Ablation, *, title: str = ""):
    """Accuracy with each filter zeroed, lowest first, against the unchanged model's line."""
    from .figures import new_figure

    order = sorted(result.zeroed, key=lambda f: (result.zeroed[f], f))
    values = [result.zeroed[f] * 100 for f in order]
    fig = new_figure(max(6.0, 0.22 * len(order) + 1.5), 4.2)
    ax = fig.subplots()
    ax.bar(range(len(order)), values, color="#3b75af")
    ax.axhline(result.baseline * 100, color="#d62728", linewidth=1, label=f"no filter zeroed: "
                                                                         f"{result.baseline * 100:.2f}%")
    ax.set_xticks(range(len(order)), [str(f) for f in order], fontsize=7)
    ax.set_xlabel(f"filter of {result.layer} zeroed (kernel and bias), most harmful first")
    ax.set_ylabel("test accuracy (%)")
    low = min(values + [result.baseline * 100])
    ax.set_ylim(max(0.0, low - 2), min(100.0, max(values + [result.baseline * 100]) + 1))
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title, fontsize=10)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.9, bottom=0.14)
    return fig
