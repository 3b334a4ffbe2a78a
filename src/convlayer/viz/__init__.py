"""Seeing convolutions: step-by-step traces, text explanations, pictures and figures of a model.

- ``trace_convolution(x, kernel, ...) -> ConvTrace``: every window, product and sum of one filter.
- ``render_trace(trace) -> str``: that trace explained as text (``convlayer explain``).
- ``viz.draw``: frames, GIF and SVG of the kernel sliding over the input (``convlayer draw``).
- ``viz.figures``: filters, feature maps, curves, confusion matrix, mistakes (``convlayer show``;
  needs matplotlib, the 'viz' extra).
"""

from .explain import EXAMPLES, render_trace
from .trace import ConvTrace, trace_convolution

__all__ = ["EXAMPLES", "ConvTrace", "render_trace", "trace_convolution"]
