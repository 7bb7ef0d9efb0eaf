"""opsplit: monotone operator splitting on NumPy and CuPy arrays."""

from . import diagnostics, operators, plot, prox, splitting
from ._certify import Certificate
from ._result import SolveResult, Status
from ._solve import solve
from .operators import (
    BlockDiagonal,
    BlockLowerTriangular,
    Conv2dFFT,
    Dense,
    Diagonal,
    ForwardOperator,
    Gradient,
    Identity,
    LinearMonotone,
    LinearOperator,
    MonotoneOperator,
    ResolventOperator,
    StructureError,
    from_scipy,
    shifted_inverse,
    to_scipy,
)
from .problems import Inclusion, Problem
from .prox import NormalCone, Subdifferential
from .splitting import DouglasRachford, ForwardBackward, PeacemanRachford, SplittingMethod, State

__version__ = "0.1.0"

__all__ = [
    "operators",
    "diagnostics",
    "plot",
    "prox",
    "splitting",
    "solve",
    "SolveResult",
    "Certificate",
    "Status",
    "Inclusion",
    "Problem",
    "LinearOperator",
    "Identity",
    "Dense",
    "Diagonal",
    "Conv2dFFT",
    "BlockDiagonal",
    "BlockLowerTriangular",
    "from_scipy",
    "to_scipy",
    "shifted_inverse",
    "StructureError",
    "MonotoneOperator",
    "ForwardOperator",
    "ResolventOperator",
    "LinearMonotone",
    "Subdifferential",
    "Gradient",
    "NormalCone",
    "SplittingMethod",
    "State",
    "ForwardBackward",
    "PeacemanRachford",
    "DouglasRachford",
    "__version__",
]
