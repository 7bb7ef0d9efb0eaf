"""The monotone inclusion 0 ∈ A(x) + B(x) (+ C(x))."""

from __future__ import annotations

from dataclasses import dataclass

from ..operators.basic import _as_shape
from ..operators.monotone import MonotoneOperator
from ._base import Problem

__all__ = ["Inclusion"]


@dataclass(frozen=True)
class Inclusion(Problem):
    r"""Find :math:`x` with :math:`0 \in A(x) + B(x)`, or :math:`0 \in A(x) + B(x) + C(x)`.

    Forward–backward evaluates ``A`` and takes the resolvent of ``B``;
    Peaceman–Rachford and Douglas–Rachford take both resolvents and return
    :math:`x = J_{\alpha B}(u)`; three-operator methods (Davis–Yin) take the
    resolvents of ``A`` and ``B`` and evaluate a cocoercive ``C``.

    Parameters
    ----------
    A : MonotoneOperator
        A maximally monotone operator (evaluated by forward–backward).
    B : MonotoneOperator
        A maximally monotone operator (through its resolvent).
    C : MonotoneOperator, optional
        A third operator, for three-operator methods (evaluated directly).
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
    C: MonotoneOperator | None = None
    margin: float | None = None

    def __post_init__(self):
        for name in ("A", "B") + (("C",) if self.C is not None else ()):
            op = getattr(self, name)
            if not isinstance(op, MonotoneOperator):
                raise TypeError(f"{name} must be a MonotoneOperator, got {type(op).__name__}")
        if self.margin is not None and not self.margin >= 0:
            raise ValueError(f"margin must be >= 0, got {self.margin}")
        declared = [(name, _as_shape(op.core_shape)) for name, op in zip("ABC", self.operators)
                    if op.core_shape is not None]
        for name, shape in declared[1:]:
            if shape != declared[0][1]:
                raise ValueError(
                    f"{name} acts on core shape {shape} but {declared[0][0]} on "
                    f"{declared[0][1]}: the operators must act on the same vectors"
                )

    @property
    def operators(self):
        return (self.A, self.B) if self.C is None else (self.A, self.B, self.C)

    def core_shape(self):
        """Trailing shape of one sample, when an operator declares it."""
        for op in self.operators:
            if op.core_shape is not None:
                return op.core_shape
        return None

    def validate(self, x, name="x0") -> None:
        for op in self.operators:
            op.validate(x, name)
