r"""The linear algebra of one step size, computed once per parameter update.

A splitting method applied to an affine monotone map :math:`x \mapsto Lx + c`
needs, at its step size :math:`\alpha`, the resolvent
:math:`(I + \alpha L)^{-1}` (Douglas–Rachford), the Cayley map
:math:`2 (I + \alpha L)^{-1} - I` (Peaceman–Rachford) and/or the forward step
:math:`I - \alpha L` (forward–backward).  :func:`precompute` returns those
asked for as one value, :class:`LinearSteps`; :attr:`LinearSteps.H` gives the same for the
adjoint problem (:math:`L^H`, as in a monDEQ's backward pass) with no new
computation, since :math:`(I + \alpha L^H)^{-1} = ((I + \alpha L)^{-1})^H`.
Pass it to :class:`~opsplit.LinearMonotone` as ``precomputed=``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._validate import check_positive
from ._base import AdjointOperator, LinearOperator, check_linear
from .shifted import shifted_inverse, shifted_operator

__all__ = ["LinearSteps", "precompute", "same_operator"]


@dataclass(frozen=True, eq=False)
class LinearSteps:
    r"""What the steps of size ``step`` on ``op`` need, computed once.

    Build it with :func:`precompute`.

    Attributes
    ----------
    op : LinearOperator
        The square operator ``L``.
    step : float
        The step size :math:`\alpha`.
    inverse : LinearOperator or None
        :math:`(I + \alpha L)^{-1}` (``None`` unless built with ``resolvent``
        or ``reflection`` true).
    cayley : LinearOperator or None
        :math:`2 (I + \alpha L)^{-1} - I`, one matrix when the inverse is dense
        (``None`` unless built with ``reflection=True``).
    forward : LinearOperator or None
        :math:`I - \alpha L`, one matrix when ``L`` is dense (``None`` unless
        built with ``forward=True``).
    """

    op: LinearOperator
    step: float
    inverse: LinearOperator | None = None
    cayley: LinearOperator | None = None
    forward: LinearOperator | None = None

    @property
    def H(self) -> LinearSteps:
        r"""The precomputation of the adjoint problem on :math:`L^H`: adjoint
        (transposed) views of the same operators, no new computation."""
        return LinearSteps(
            op=self.op.H,
            step=self.step,
            inverse=_adjoint(self.inverse),
            cayley=_adjoint(self.cayley),
            forward=_adjoint(self.forward),
        )

    def __repr__(self) -> str:
        names = ("inverse", "cayley", "forward")
        parts = [name for name in names if getattr(self, name) is not None]
        return f"<LinearSteps step={self.step} of {self.op!r}: {', '.join(parts) or 'nothing'}>"


def _adjoint(op):
    return None if op is None else op.H


def precompute(
    op: LinearOperator,
    step: float,
    *,
    resolvent: bool = True,
    reflection: bool = False,
    forward: bool = False,
):
    r"""Compute once what the steps of size ``step`` on ``op`` need.

    Each map costs its own work (for a dense ``L``: an inversion, one more
    :math:`n \times n` pass for the Cayley map, one for the forward step),
    so ask only for those the method applies (its
    :attr:`~opsplit.SplittingMethod.applies_A`, e.g.
    ``precompute(L, α, **dict.fromkeys(method.applies_A, True))``).

    Parameters
    ----------
    op : LinearOperator
        A square operator ``L`` with a structure-aware shifted inverse (see
        :func:`~opsplit.operators.shifted_inverse`) when ``resolvent`` is true.
    step : float
        The step size :math:`\alpha > 0`.
    resolvent : bool
        Compute :math:`(I + \alpha L)^{-1}` (one factorization; Douglas–Rachford).
    reflection : bool
        Compute the Cayley map :math:`2 (I + \alpha L)^{-1} - I`
        (Peaceman–Rachford), and the inverse it is built from.
    forward : bool
        Compute the forward step :math:`I - \alpha L` (for forward–backward).

    Returns
    -------
    LinearSteps
        Its attribute ``H`` is the adjoint problem's precomputation, for free.

    Raises
    ------
    ValueError
        When ``step`` is not positive, ``op`` is not square, or
        :math:`I + \alpha L` is singular.
    StructureError
        When ``resolvent`` or ``reflection`` is true and ``op`` has no
        structure-aware inverse.

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> M = np.array([[2.0, 1.0], [-1.0, 2.0]])
    >>> P = ops.operators.precompute(ops.Dense(M), 0.5, reflection=True)
    >>> np.allclose(P.inverse.to_dense(), np.linalg.inv(np.eye(2) + 0.5 * M))
    True
    >>> np.allclose(P.cayley.to_dense(), 2 * P.inverse.to_dense() - np.eye(2))
    True
    >>> ops.operators.precompute(ops.Dense(M), 0.5).cayley is None   # only what is asked
    True
    >>> np.allclose(P.H.inverse.to_dense(), np.linalg.inv(np.eye(2) + 0.5 * M.T))
    True
    >>> F = ops.LinearMonotone(P.op, precomputed=P)
    >>> np.allclose(F.resolvent(0.5)(np.ones(2)), P.inverse @ np.ones(2))
    True
    """
    check_linear(op, square=True)
    step = check_positive(step, "step")
    inverse = cayley = None
    if resolvent or reflection:
        inverse = shifted_inverse(op, 1.0, step)
    if reflection:
        cayley = shifted_operator(inverse, -1.0, 2.0)
    return LinearSteps(
        op=op,
        step=step,
        inverse=inverse,
        cayley=cayley,
        forward=shifted_operator(op, 1.0, -step) if forward else None,
    )


def same_operator(a: LinearOperator, b: LinearOperator) -> bool:
    """True when ``a`` and ``b`` are the same object, or adjoints of the same object."""
    if a is b:
        return True
    return (
        isinstance(a, AdjointOperator) and isinstance(b, AdjointOperator) and a.op is b.op
    )
