"""Kept for backward compatibility: the layout helpers live in ``convlayer.interop.layout``."""

from .interop.layout import (TORCH_PAD_MODES, hwio_to_torch_weight, padding_amounts_to_torch,  # noqa: F401
                             same_padding_for_torch, torch_padding, torch_weight_to_hwio)

__all__ = ["TORCH_PAD_MODES", "torch_weight_to_hwio", "hwio_to_torch_weight", "same_padding_for_torch",
           "padding_amounts_to_torch", "torch_padding"]
