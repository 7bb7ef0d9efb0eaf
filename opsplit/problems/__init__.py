"""Problem statements: what is to be solved, independent of how.

They sit below the methods (which name the problem types they solve) and
above the operators and proximal functions they are built from.
"""

from ._base import Problem
from .composite import Composite
from .constrained import Constrained
from .fixed_point import FixedPoint
from .inclusion import Inclusion

__all__ = ["Problem", "Inclusion", "FixedPoint", "Composite", "Constrained"]
