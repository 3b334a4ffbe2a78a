"""Figures of a trained model, for ``convlayer show``: conv1's filters, feature maps,
training curves, the confusion matrix and a gallery of mistakes.

The numbers are computed by plain functions (``feature_maps``, ``top_predictions``,
``mistakes``); the ``*_figure`` functions only draw them on a ``matplotlib.figure.Figure``
(no pyplot, so no global state and no window); ``save_png`` writes a figure atomically.
matplotlib is the optional 'viz' extra.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

DPI = 100


def new_figure(width: float, height: float):
    """A bare ``Figure`` (inches); raises ImportError with the install hint without matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("figures need matplotlib: pip install 'convlayer[viz]'") from None
    return Figure(figsize=(width, height), dpi=DPI)


def save_png(figure, path) -> Path:
    """Render ``figure`` to PNG at its own size (``figsize * DPI`` pixels) and write it atomically."""
    from ..fileio import atomic_write_bytes

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    data = buffer.getvalue()
    atomic_write_bytes(path, lambda f: f.write(data))
    return Path(path)


# ---------------------------------------------------------------------------- numbers


def feature_maps(model, image: np.ndarray, names=("conv1", "conv2")) -> tuple[dict, np.ndarray]:
    """Run one image through the model layer by layer.

    Args:
        model: an ``MNISTModel`` (or any Sequential whose layers include ``names``).
        image: (d, d) network input, as from ``preprocess.prepare``.
    Returns:
        ({name: (H, W, filters) activations}, (classes,) softmax probabilities).

    >>> from convlayer.models import MNISTModel
    >>> maps, probs = feature_maps(MNISTModel(8, 10), np.zeros((8, 8), np.float32))
    >>> maps["conv1"].shape, maps["conv2"].shape, probs.shape
    ((8, 8, 32), (4, 4, 64), (10,))
    """
    from ..functional.losses import softmax

    outputs, logits = model.layer_outputs(np.asarray(image)[None], names)  # image -> batch of one
    probs = logits if getattr(model, "output_activation", None) == "softmax" else softmax(logits)
    return {name: output[0] for name, output in outputs.items()}, probs[0]


def top_predictions(probs: np.ndarray, class_names, k: int = 3) -> list[tuple[str, float]]:
    """The ``k`` most likely classes as (name, probability), most likely first.

    >>> top_predictions(np.array([0.1, 0.7, 0.2]), ["a", "b", "c"], k=2)
    [('b', 0.7), ('c', 0.2)]
    """
    return [(str(class_names[i]), float(probs[i])) for i in top_indices(probs, k)]


def top_indices(probs: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest values, largest first; ties go to the lower index.

    >>> top_indices(np.array([0.4, 0.2, 0.4]), 2)
    array([0, 2])
    """
    return np.argsort(-np.asarray(probs), kind="stable")[:k]


def mistakes(labels: np.ndarray, probs: np.ndarray, count: int = 25) -> np.ndarray:
    """Indices of misclassified samples, most confident wrong answers first (at most ``count``).

    >>> mistakes(np.array([0, 1, 1]), np.array([[.9, .1], [.6, .4], [.8, .2]]))
    array([2, 1])
    """
    predictions = probs.argmax(axis=1)
    wrong = np.flatnonzero(predictions != labels)
    confidence = probs[wrong, predictions[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")][:count]


# ---------------------------------------------------------------------------- figures


def _grid_shape(count: int, columns: int) -> tuple[int, int]:
    columns = min(columns, count)
    return -(-count // columns), columns


def _image_grid(figure_or_sub, images, columns, cmap, vmin, vmax, titles=None, title_size=7):
    """Draw (N, h, w) images in a grid of axes without ticks; returns the last image artist."""
    rows, cols = _grid_shape(len(images), columns)
    axes = figure_or_sub.subplots(rows, cols, squeeze=False)
    artist = None
    for index, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if index >= len(images):
            continue
        artist = ax.imshow(images[index], cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        if titles is not None:
            ax.set_title(titles[index], fontsize=title_size, pad=2)
    return artist


def filters_figure(kernel: np.ndarray, *, title: str = "conv1 filters"):
    """conv1's kernels as a grid of small images on one symmetric colour scale (blue < 0 < red).

    Args:
        kernel: (kh, kw, 1, filters), Keras' HWIO layout; only input channel 0 is drawn.
    Returns:
        A 9 x 5.4 inch ``Figure`` (900 x 540 pixels at ``DPI``).
    """
    kernel = np.asarray(kernel)
    if kernel.ndim != 4:
        raise ValueError(f"filters_figure expects an HWIO kernel (kh, kw, in, filters), got shape {kernel.shape}.")
    images = np.moveaxis(kernel[:, :, 0, :], -1, 0)  # (filters, kh, kw)
    limit = float(np.abs(images).max()) or 1.0
    fig = new_figure(9, 5.4)
    fig.suptitle(f"{title}: {images.shape[0]} kernels of {images.shape[1]}x{images.shape[2]} "
                 "(red positive, blue negative weights)", fontsize=11)
    artist = _image_grid(fig, images, 8, "RdBu_r", -limit, limit, titles=[str(i) for i in range(len(images))])
    fig.subplots_adjust(left=0.02, right=0.88, top=0.88, bottom=0.03, wspace=0.15, hspace=0.3)
    colorbar_axes = fig.add_axes([0.91, 0.1, 0.02, 0.75])
    fig.colorbar(artist, cax=colorbar_axes)
    return fig


def activations_figure(image: np.ndarray, maps: dict, predictions: list[tuple[str, float]], *, title: str = ""):
    """The network input, each conv layer's feature maps and the top predictions.

    Args:
        image: (d, d) network input.
        maps: {layer name: (H, W, filters)} from ``feature_maps``.
        predictions: [(class name, probability)] from ``top_predictions``.
    Returns:
        A 10 inch wide ``Figure`` (1000 pixels); its height grows with the number of maps.
    """
    columns = 16
    rows = [_grid_shape(m.shape[-1], columns)[0] for m in maps.values()]
    heights = [2.4] + [0.64 * r + 0.4 for r in rows]
    fig = new_figure(10, sum(heights))
    subs = np.atleast_1d(fig.subfigures(len(heights), 1, height_ratios=heights))
    top = subs[0].subplots(1, 2, gridspec_kw={"width_ratios": [1, 2.2]})
    top[0].imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    top[0].set_title(f"input after preprocessing ({image.shape[0]}x{image.shape[1]})", fontsize=9)
    top[0].set_axis_off()
    names = [name for name, _ in predictions][::-1]
    values = [p for _, p in predictions][::-1]
    bars = top[1].barh(range(len(values)), values, color=["#9fc5e8"] * (len(values) - 1) + ["#2e6db4"])
    top[1].set_yticks(range(len(names)), names)
    top[1].set_xlim(0, 1)
    top[1].bar_label(bars, labels=[f"{v * 100:.1f}%" for v in values], padding=3, fontsize=9)
    top[1].set_title(f"top {len(values)} predictions", fontsize=9)
    subs[0].subplots_adjust(left=0.05, right=0.95, top=0.8, bottom=0.12, wspace=0.25)
    if title:
        subs[0].suptitle(title, fontsize=11)
    for sub, height, (name, fmap) in zip(subs[1:], heights[1:], maps.items()):
        images = np.moveaxis(fmap, -1, 0)  # (filters, H, W)
        sub.suptitle(f"{name}: {images.shape[0]} feature maps of {images.shape[1]}x{images.shape[2]} "
                     "(after ReLU; dark = 0)", fontsize=9)
        _image_grid(sub, images, columns, "viridis", 0, float(images.max()) or 1.0)
        sub.subplots_adjust(left=0.01, right=0.99, top=1 - 0.32 / height, bottom=0.02, wspace=0.08, hspace=0.08)
    return fig


def curves_figure(rows: list[dict], *, title: str = "training"):
    """Loss and accuracy per epoch, train and validation, from ``training.read_log`` rows.

    Returns:
        A 10 x 4 inch ``Figure`` (1000 x 400 pixels).
    """
    if not rows:
        raise ValueError("the training log has no epochs yet; train for at least one epoch first.")
    fig = new_figure(10, 4)
    from matplotlib.ticker import MaxNLocator

    axes = fig.subplots(1, 2)
    epochs = [row["epoch"] for row in rows]
    for ax, key, label in ((axes[0], "loss", "loss (cross-entropy)"), (axes[1], "accuracy", "accuracy")):
        for prefix, name, style in (("", "train", "-o"), ("val_", "validation", "--s")):
            points = [(e, row.get(prefix + key)) for e, row in zip(epochs, rows) if row.get(prefix + key) is not None]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, style, markersize=3, label=name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.subplots_adjust(left=0.07, right=0.98, top=0.86, bottom=0.13, wspace=0.2)
    return fig


def confusion_figure(matrix: np.ndarray, class_names, *, title: str = "confusion matrix"):
    """Counts per (true, predicted) class, coloured by each row's share; diagonal = correct.

    Returns:
        A 7.5 x 6.5 inch ``Figure`` (750 x 650 pixels).
    """
    matrix = np.asarray(matrix)
    n = matrix.shape[0]
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)  # (n, n) row-normalized
    fig = new_figure(7.5, 6.5)
    ax = fig.subplots()
    artist = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    names = [str(c) for c in class_names]
    ax.set_xticks(range(n), names, rotation=45 if max(map(len, names)) > 2 else 0, ha="right"
                  if max(map(len, names)) > 2 else "center", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if shares[i, j] > 0.5 else "black")
    accuracy = matrix.trace() / max(matrix.sum(), 1)
    ax.set_title(f"{title} - accuracy {accuracy * 100:.2f}% on {matrix.sum()} images", fontsize=10)
    fig.subplots_adjust(left=0.12, right=0.84, top=0.93, bottom=0.15)
    fig.colorbar(artist, cax=fig.add_axes([0.87, 0.15, 0.025, 0.78]), label="share of the true class")
    return fig


def mistakes_figure(images: np.ndarray, labels, predictions, confidences, class_names, *, title: str = "mistakes",
                    columns: int = 8):
    """A gallery of misclassified images titled 'true -> predicted (confidence)'.

    Args:
        images: (N, d, d) in [0, 1]; N may be 0 (the figure then says so).
    Returns:
        A ``Figure`` 1.25 inches per column wide (10 inches for 8 columns) and 1.7 inches per row;
        each title takes two lines, so that long class names do not run into their neighbours'.
    """
    count = len(images)
    rows, cols = _grid_shape(max(count, 1), columns)
    row_inches = 1.7
    fig = new_figure(1.25 * columns, row_inches * rows + 0.6)
    if count == 0:
        fig.text(0.5, 0.5, "no misclassified images", ha="center", va="center", fontsize=14)
    else:
        titles = [f"{class_names[t]}\n-> {class_names[p]} ({c * 100:.0f}%)"
                  for t, p, c in zip(labels, predictions, confidences)]
        _image_grid(fig, images, columns, "gray", 0, 1, titles=titles, title_size=8)
        fig.subplots_adjust(left=0.01, right=0.99, top=1 - 0.75 / (row_inches * rows + 0.6), bottom=0.02,
                            hspace=0.55, wspace=0.1)
    fig.suptitle(f"{title}: true -> predicted (confidence)", fontsize=11)
    return fig
