"""Douglas–Rachford splitting."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from .._vectors import add, reflect, scale, sub
from ._base import State
from ._rachford import RachfordSplitting, check_relaxation

__all__ = ["DouglasRachford"]


class _Resolvents(NamedTuple):
    of_A: Callable
    of_B: Callable
    evaluate_A: Callable | None = None  # for the solution's own residual


@dataclass(frozen=True)
class DouglasRachford(RachfordSplitting):
    r"""Douglas–Rachford splitting with relaxation for :math:`0 \in A(x) + B(x)`.

    .. math::

        x = J_{\alpha B}(u), \qquad
        u^{+} = u + \lambda\,\bigl(J_{\alpha A}(2x - u) - x\bigr),

    with ``α = step`` and ``λ = relaxation ∈ (0, 2]``.  ``λ = 1`` is the
    classical method (an average of the identity and the Peaceman–Rachford
    map, so it converges for any maximally monotone ``A``, ``B`` when a zero
    exists); ``λ = 2`` gives the Peaceman–Rachford iterates.

    Parameters
    ----------
    step : float
        The step size ``α > 0``.
    relaxation : float
        ``λ ∈ (0, 2]``.

    References
    ----------
    J. Douglas and H. H. Rachford, "On the numerical solution of heat
    conduction problems in two and three space variables", Trans. AMS 82
    (1956); J. Eckstein and D. P. Bertsekas, Math. Program. 55 (1992).

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> F = ops.LinearMonotone(ops.Dense(np.eye(2)), np.array([-1.0, 1.0]))
    >>> G = ops.Subdifferential(ops.prox.NonNegative())
    >>> res = ops.solve(ops.Inclusion(F, G), ops.DouglasRachford(step=1.0), np.zeros(2), tol=1e-12)
    >>> np.allclose(res.x, [1.0, 0.0])
    True
    """

    relaxation: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "relaxation", check_relaxation(self.relaxation))

    def prepare(self, problem):
        return _Resolvents(*self.resolvents(problem), self.evaluator(problem))

    def init(self, prepared, x0):
        return State(z=x0, x=prepared.of_B(x0))

    def update(self, prepared, state):
        u, x = state.z, state.x
        delta = sub(prepared.of_A(reflect(x, u)), x)
        if self.relaxation != 1.0:
            delta = scale(self.relaxation, delta)
        u_new = add(u, delta)
        return State(z=u_new, x=prepared.of_B(u_new), delta=delta)
