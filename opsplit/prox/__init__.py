"""Proximal functions, their calculus, and activations as proximal operators."""

from ._base import ProxFunction
from .functions import L1, NonNegative, Zero

__all__ = ["ProxFunction", "NonNegative", "Zero", "L1"]
