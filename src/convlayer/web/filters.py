"""The Filters tab's numbers: ``viz.cards`` for the served checkpoint, as JSON for ``GET /api/cards``.

One pass over the test set per layer (top patches and class means of every filter), done on first
use and kept; a filter's optimized input is computed when its card is first opened and kept too.
Everything runs on a copy of the model, so the page's other requests never wait for it or see it.
"""

from __future__ import annotations

import threading

import numpy as np

from ..viz import cards

_DECIMALS = 4


def _rounded(array) -> list:
    return np.round(np.asarray(array, dtype=np.float64), _DECIMALS).tolist()


class FilterCards:
    """Cards of a model's Conv2D layers over a data set given by ``dataset()`` (called when first needed)."""

    def __init__(self, model, class_names, dataset):
        self._source = model
        self._model = None
        self.class_names = list(class_names)
        self.layers = cards.conv_layer_names(model)
        self._dataset = dataset
        self._stats: dict = {}
        self._optimized: dict = {}
        self._lock = threading.Lock()  # one pass at a time; later requests reuse its result

    def _data(self):
        data = self._dataset()
        return np.asarray(data.x_test, np.float32), np.asarray(data.y_test)

    def _layer_stats(self, layer: str):
        cards.conv_layer(self._source, layer)  # an unknown layer fails before the data set is loaded
        with self._lock:
            if self._model is None:
                self._model = cards.clone_model(self._source)
            if layer not in self._stats:
                x, y = self._data()
                stats = cards.filter_stats(self._model, layer, x, y, len(self.class_names))
                self._stats[layer] = (stats, cards.stats_json(stats, x.shape[1:3], class_names=self.class_names))
            return self._stats[layer]

    def overview(self, layer: str) -> dict:
        """Every filter of ``layer``: kernel (its strongest input channels), top patches, class means."""
        stats, document = self._layer_stats(layer)
        kernel = self._model.get_layer(layer).kernel  # (kh, kw, in, filters)
        filters = []
        for entry in document["filters"]:
            channels = cards.kernel_channels(kernel, entry["index"], 3)
            filters.append({**entry, "kernel_channels": channels,
                            "kernel": _rounded(np.moveaxis(kernel[:, :, channels, entry["index"]], -1, 0))})
        return {**document, "filters": filters, "layers": self.layers, "images": int(len(self._data()[0])),
                "kernel_limit": float(np.abs(kernel).max())}

    def card(self, layer: str, index: int) -> dict:
        """One filter's card with its top patches' pixels and its optimized input."""
        overview = self.overview(layer)
        cards.check_filters([index], len(overview["filters"]), layer)
        entry = overview["filters"][index]
        x, _ = self._data()
        key = (layer, index)
        with self._lock:
            if key not in self._optimized:
                low, high = float(x.min()), float(x.max())
                self._optimized[key] = cards.optimize_input(self._model, layer, index,
                                                            value_range=(low, high) if high > low else (0.0, 1.0))
        image, before, after = self._optimized[key]
        return {"layer": layer, "class_names": self.class_names, "receptive_field": overview["receptive_field"],
                "kernel_limit": overview["kernel_limit"], "filter": entry,
                "patches": [_rounded(x[t["image"]]) for t in entry["top"]],
                "optimized": _rounded(image), "optimized_activation": [before, after],
                "value_range": [float(x.min()), float(x.max())]}
