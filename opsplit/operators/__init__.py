"""Linear operators (with mandatory adjoints) and monotone operators."""

from ._base import LinearOperator, StructureError
from .basic import Dense, Diagonal, Identity
from .monotone import (
    ForwardOperator,
    Gradient,
    LinearMonotone,
    MonotoneOperator,
    NormalCone,
    ResolventOperator,
    Subdifferential,
)
from .shifted import shifted_inverse

__all__ = [
    "LinearOperator",
    "StructureError",
    "Identity",
    "Dense",
    "Diagonal",
    "shifted_inverse",
    "MonotoneOperator",
    "ForwardOperator",
    "ResolventOperator",
    "LinearMonotone",
    "Subdifferential",
    "Gradient",
    "NormalCone",
]
