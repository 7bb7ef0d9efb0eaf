"""Splitting methods: small frozen objects holding hyperparameters and their theory.

One module per method (``forward_backward``, ``peaceman_rachford``,
``douglas_rachford``; the theory the last two share is in ``_rachford``),
and one table of names, :data:`METHODS` (``registry``).
"""

from ._base import SplittingMethod, State
from ._rachford import RachfordSplitting, dr_contraction, pr_contraction, rachford_error_factor
from .douglas_rachford import DouglasRachford
from .forward_backward import ForwardBackward, fb_contraction, fb_error_factor
from .peaceman_rachford import PeacemanRachford
from .registry import (
    METHODS,
    method_config,
    method_from_config,
    method_from_name,
    method_name,
)

__all__ = [
    "SplittingMethod",
    "State",
    "RachfordSplitting",
    "ForwardBackward",
    "PeacemanRachford",
    "DouglasRachford",
    "METHODS",
    "method_name",
    "method_config",
    "method_from_config",
    "method_from_name",
    "fb_contraction",
    "pr_contraction",
    "dr_contraction",
    "fb_error_factor",
    "rachford_error_factor",
]
