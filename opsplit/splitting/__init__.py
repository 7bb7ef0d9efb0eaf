"""Splitting methods: small frozen objects holding hyperparameters only."""

from ._base import SplittingMethod, State
from .forward_backward import ForwardBackward
from .peaceman_rachford import DouglasRachford, PeacemanRachford

__all__ = ["SplittingMethod", "State", "ForwardBackward", "PeacemanRachford", "DouglasRachford"]
