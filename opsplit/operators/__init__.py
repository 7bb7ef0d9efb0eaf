"""Linear operators (with mandatory adjoints), their structure rules and
monotone operators; the operators defined by proximal functions
(``Subdifferential``, ``NormalCone``) live in :mod:`opsplit.prox`."""

from ._base import (
    AdjointOperator,
    LinearOperator,
    ProductOperator,
    ScaledOperator,
    StructureError,
    SumOperator,
    flatten,
    unflatten,
)
from .basic import Dense, Diagonal, Identity
from .block import BlockDiagonal, BlockLowerTriangular
from .conv import Conv2dFFT
from .differences import Difference1D, Gradient2D
from .monotone import (
    ForwardOperator,
    Gradient,
    LinearMonotone,
    MonotoneOperator,
    ResolventOperator,
)
from .scipy_interop import from_scipy, to_scipy
from .shifted import inverse_tolerance, shifted_inverse, shifted_operator
from .sparse import KrylovInverse, Sparse, SparseLU
from .spectral import exact_cocoercivity, exact_margin, exact_norm
from .steps import LinearSteps, precompute

__all__ = [
    "LinearOperator",
    "StructureError",
    "SumOperator",
    "ScaledOperator",
    "ProductOperator",
    "AdjointOperator",
    "Identity",
    "Dense",
    "Diagonal",
    "Conv2dFFT",
    "Difference1D",
    "Gradient2D",
    "BlockDiagonal",
    "BlockLowerTriangular",
    "from_scipy",
    "to_scipy",
    "flatten",
    "unflatten",
    "shifted_inverse",
    "shifted_operator",
    "inverse_tolerance",
    "Sparse",
    "SparseLU",
    "KrylovInverse",
    "exact_margin",
    "exact_cocoercivity",
    "exact_norm",
    "LinearSteps",
    "precompute",
    "MonotoneOperator",
    "ForwardOperator",
    "ResolventOperator",
    "LinearMonotone",
    "Gradient",
]
