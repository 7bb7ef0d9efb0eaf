"""Splitting methods: small frozen objects holding hyperparameters only."""

from ._base import SplittingMethod, State
from .forward_backward import ForwardBackward
from .peaceman_rachford import DouglasRachford, PeacemanRachford
from .registry import (
    METHODS,
    method_config,
    method_from_config,
    method_from_name,
    method_name,
)

__all__ = ["SplittingMethod", "State", "ForwardBackward", "PeacemanRachford", "DouglasRachford",
    "METHODS",
    "method_name",
    "method_config",
    "method_from_config",
    "method_from_name",
]
