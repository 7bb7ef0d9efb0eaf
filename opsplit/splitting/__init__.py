"""Splitting methods: small frozen objects holding hyperparameters and their theory.

One module per method (``forward_backward``, ``peaceman_rachford``,
``douglas_rachford``; the theory the last two share is in ``_rachford``),
and one table of names, :data:`METHODS` (``registry``).
"""

from ._base import SplittingMethod, State
from ._primal_dual import PrimalDualSplitting
from ._rachford import RachfordSplitting, dr_contraction, pr_contraction, rachford_error_factor
from .admm import ADMM
from .anderson import Anderson
from .chambolle_pock import ChambollePock
from .condat_vu import CondatVu
from .davis_yin import DavisYin, cocoercivity
from .douglas_rachford import DouglasRachford
from .fista import FISTA
from .forward_backward import ForwardBackward, fb_contraction, fb_error_factor
from .krasnoselskii_mann import KrasnoselskiiMann
from .peaceman_rachford import PeacemanRachford
from .registry import (
    METHODS,
    WRAPPERS,
    inclusion_methods,
    method_config,
    method_from_config,
    method_from_name,
    method_name,
)
from .tseng import Tseng, tseng_contraction
from .working_set import WorkingSet

__all__ = [
    "SplittingMethod",
    "State",
    "RachfordSplitting",
    "ForwardBackward",
    "PeacemanRachford",
    "DouglasRachford",
    "DavisYin",
    "PrimalDualSplitting",
    "ChambollePock",
    "CondatVu",
    "Tseng",
    "KrasnoselskiiMann",
    "tseng_contraction",
    "cocoercivity",
    "FISTA",
    "ADMM",
    "METHODS",
    "inclusion_methods",
    "WRAPPERS",
    "Anderson",
    "WorkingSet",
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
