"""Proximal functions, their calculus, and activations as proximal operators."""

from ._base import ProxFunction
from .functions import NonNegative, Zero, L1

__all__ = ["ProxFunction", "NonNegative", "Zero", "L1"]
