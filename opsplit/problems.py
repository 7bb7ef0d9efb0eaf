"""Problem statements: what is to be solved, independent of how."""

from __future__ import annotations

from dataclasses import dataclass

from .operators.monotone import MonotoneOperator

__all__ = ["Inclusion"]


@dataclass(frozen=True)
class Inclusion:
    r"""Find :math:`x` with :math:`0 \in A(x) + B(x)`.

    Forward–backward evaluates ``A`` and takes the resolvent of ``B``;
    Peaceman–Rachford and Douglas–Rachford take both resolvents and return
    :math:`x = J_{\alpha B}(u)`.

    Parameters
    ----------
    A : MonotoneOperator
        A maximally monotone operator (evaluated by forward–backward).
    B : MonotoneOperator
        A maximally monotone operator (through its resolvent).
    margin : float, optional
        A strong-monotonicity constant of ``A + B`` known to the user; when
        absent it is taken from the operators' declared constants.

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> F = ops.LinearMonotone(ops.Dense(np.eye(2)), np.array([-1.0, 1.0]))
    >>> prob = ops.Inclusion(F, ops.Subdifferential(ops.prox.NonNegative()))
    >>> prob.batch_ndim(np.zeros((5, 2)))
    1
    """

    A: MonotoneOperator
    B: MonotoneOperator
    margin: float | None = None

    def __post_init__(self):
        for name in ("A", "B"):
            op = getattr(self, name)
            if not isinstance(op, MonotoneOperator):
                raise TypeError(f"{name} must be a MonotoneOperator, got {type(op).__name__}")
        if self.margin is not None and not self.margin >= 0:
            raise ValueError(f"margin must be >= 0, got {self.margin}")

    @property
    def operators(self):
        return (self.A, self.B)

    def core_shape(self):
        """Trailing shape of one sample, when an operator declares it."""
        for op in self.operators:
            if op.core_shape is not None:
                return op.core_shape
        return None

    def batch_ndim(self, x) -> int:
        """Number of leading batch axes of ``x`` (0 when unknown)."""
        core = self.core_shape()
        if core is None:
            return 0
        if isinstance(x, tuple):
            return x[0].ndim - len(core[0])
        return x.ndim - len(core)

    def validate(self, x, name="x0") -> None:
        for op in self.operators:
            op.validate(x, name)

    def strong_monotonicity(self):
        """The margin ``m`` of ``A + B``: user-supplied, else the sum of the
        operators' declared constants, else ``None``."""
        if self.margin is not None:
            return self.margin
        ms = [op.strong_monotonicity for op in self.operators]
        if all(m is None for m in ms):
            return None
        return sum(m for m in ms if m is not None)
