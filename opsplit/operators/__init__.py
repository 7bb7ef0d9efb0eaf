"""Linear operators (with mandatory adjoints) and monotone operators."""

from ._base import LinearOperator, StructureError, flatten, unflatten
from .basic import Dense, Diagonal, Identity
from .block import BlockDiagonal, BlockLowerTriangular
from .conv import Conv2dFFT
from .monotone import (
    ForwardOperator,
    Gradient,
    LinearMonotone,
    MonotoneOperator,
    NormalCone,
    ResolventOperator,
    Subdifferential,
)
from .scipy_interop import from_scipy, to_scipy
from .shifted import shifted_inverse

__all__ = [
    "LinearOperator",
    "StructureError",
    "Identity",
    "Dense",
    "Diagonal",
    "Conv2dFFT",
    "BlockDiagonal",
    "BlockLowerTriangular",
    "from_scipy",
    "to_scipy",
    "flatten",
    "unflatten",
    "shifted_inverse",
    "MonotoneOperator",
    "ForwardOperator",
    "ResolventOperator",
    "LinearMonotone",
    "Subdifferential",
    "Gradient",
    "NormalCone",
]
