"""What every problem statement provides to the driver, the methods and the certificates."""

from __future__ import annotations

from abc import ABC, abstractmethod

__all__ = ["Problem"]


class Problem(ABC):
    """A problem statement: what is to be solved, independent of how.

    The driver :func:`opsplit.solve` asks a problem only for what it needs to
    run any method on it: input checks (:meth:`validate`), the number of
    batch axes of an iterate (:meth:`batch_ndim`) and, for the uniqueness
    certificate, the strong-monotonicity margin of the inclusion it stands
    for (:meth:`strong_monotonicity`, :attr:`operators`, :attr:`margin`).
    Methods name the problem types they solve (``problem_types``).
    """

    #: A strong-monotonicity margin of the whole inclusion supplied by the user.
    margin: float | None = None

    @property
    def operators(self) -> tuple:
        """The monotone operators whose sum the solution zeroes, for the
        certificates (empty when the problem is not posed that way)."""
        return ()

    @abstractmethod
    def core_shape(self):
        """Trailing shape of one sample (a tuple of shapes for block vectors),
        or ``None`` when unknown."""

    @abstractmethod
    def validate(self, x, name: str = "x0") -> None:
        """Raise ``ValueError``/``TypeError`` naming ``name`` unless ``x`` fits."""

    def lift(self, x0):
        """The starting point of the iteration for the user's ``x0`` (already
        validated): ``x0`` itself by default; a problem posed on a larger space
        maps it there (:class:`opsplit.distributed.Consensus` copies it to
        every shard)."""
        return x0

    def result(self, x):
        """The solution returned to the user for the method's solution ``x``
        (on the space the iteration runs in): ``x`` itself by default."""
        return x

    def report(self) -> str:
        """What the result's message should add about the solve (``""``: nothing),
        e.g. a worker lost and recovered during a distributed solve."""
        return ""

    def batch_ndim(self, x) -> int:
        """Number of leading batch axes of ``x`` (0 when unknown)."""
        core = self.core_shape()
        if core is None:
            return 0
        if isinstance(x, tuple):
            return x[0].ndim - len(core[0])
        return x.ndim - len(core)

    def strong_monotonicity(self):
        """The margin of the inclusion: user-supplied, else the sum of the
        operators' declared constants, else ``None``."""
        if self.margin is not None:
            return self.margin
        ms = [op.strong_monotonicity for op in self.operators]
        if all(m is None for m in ms):
            return None
        return sum(m for m in ms if m is not None)
