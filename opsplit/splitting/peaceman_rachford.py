"""Peaceman–Rachford and Douglas–Rachford splitting."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from .._vectors import add, reflect, scale, sub
from ..operators.monotone import ResolventOperator
from ._base import SplittingMethod, State, check_positive, require

__all__ = ["PeacemanRachford", "DouglasRachford"]


class _Resolvents(NamedTuple):
    of_A: Callable
    of_B: Callable


class _Reflections(NamedTuple):
    reflect_A: Callable
    reflect_B: Callable
    of_B: Callable


def _prepare_resolvents(method, problem):
    name = type(method).__name__
    require(problem.A, ResolventOperator, "A", name)
    require(problem.B, ResolventOperator, "B", name)
    return _Resolvents(problem.A.resolvent(method.step), problem.B.resolvent(method.step))


@dataclass(frozen=True)
class PeacemanRachford(SplittingMethod):
    r"""Peaceman–Rachford splitting for :math:`0 \in A(x) + B(x)`.

    The iteration composes the two reflected resolvents
    :math:`R_{\alpha T} = 2 J_{\alpha T} - I` on an auxiliary variable ``u``:

    .. math::

        w = R_{\alpha B}(u) = 2 J_{\alpha B}(u) - u, \qquad
        u^{+} = R_{\alpha A}(w) = 2\,J_{\alpha A}(w) - w ,

    and returns :math:`x = J_{\alpha B}(u)`.  Both reflections are applied in
    one pass where the structure allows: for an affine ``A`` the Cayley matrix
    :math:`2(I + \alpha L)^{-1} - I` is formed once, and ReLU's reflection
    is :math:`|u|`.  It converges for every
    ``step = α > 0`` when ``A`` (or ``B``) is strongly monotone and
    Lipschitz; its residual is ``‖u⁺ - u‖``.

    References
    ----------
    P.-L. Lions and B. Mercier, "Splitting algorithms for the sum of two
    nonlinear operators", SIAM J. Numer. Anal. 16 (1979).
    E. Winston and J. Z. Kolter, "Monotone operator equilibrium networks",
    NeurIPS 2020, Algorithm 2.

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> F = ops.LinearMonotone(ops.Dense(np.eye(2)), np.array([-1.0, 1.0]))
    >>> G = ops.Subdifferential(ops.prox.NonNegative())
    >>> res = ops.solve(ops.Inclusion(F, G), ops.PeacemanRachford(step=1.0), np.zeros(2), tol=1e-12)
    >>> res.x, res.iterations <= 3
    (array([1., 0.]), True)
    """

    def prepare(self, problem):
        _prepare_resolvents(self, problem)  # capability checks
        return _Reflections(
            problem.A.reflected_resolvent(self.step),
            problem.B.reflected_resolvent(self.step),
            problem.B.resolvent(self.step),
        )

    def init(self, prepared, x0):
        return State(z=x0, x=prepared.of_B(x0))

    def update(self, prepared, state):
        # u⁺ = R_A R_B u; x = J_B(u⁺) is only needed when someone looks, so it
        # is left to complete() (the driver calls it at checks and at the end).
        u = state.z
        u_new = prepared.reflect_A(prepared.reflect_B(u))
        return State(z=u_new, x=None, delta=sub(u_new, u))

    def complete(self, prepared, state):
        if state.x is not None:
            return state
        return state._replace(x=prepared.of_B(state.z))

    def error_factor(self, margin, lipschitz, monotonicity=0.0):
        r"""``c`` with :math:`\|x^{+} - x^*\| \le c\,\|u^{+} - u\|` for the returned
        :math:`x^{+} = J_{\alpha B}(u^{+})`
        (:func:`~opsplit.diagnostics.rachford_error_factor` with relaxation 2,
        derived in :mod:`opsplit.diagnostics.certificates`)."""
        from ..diagnostics.certificates import rachford_error_factor

        if not margin or margin <= 0 or lipschitz is None:
            return None
        return rachford_error_factor(self.step, margin, lipschitz, monotonicity or 0.0, 2.0)


@dataclass(frozen=True)
class DouglasRachford(SplittingMethod):
    r"""Douglas–Rachford splitting with relaxation for :math:`0 \in A(x) + B(x)`.

    .. math::

        x = J_{\alpha B}(u), \qquad
        u^{+} = u + \lambda\,\bigl(J_{\alpha A}(2x - u) - x\bigr),

    with ``α = step`` and ``λ = relaxation ∈ (0, 2]``.  ``λ = 1`` is the
    classical method (an average of the identity and the Peaceman–Rachford
    map, so it converges for any maximally monotone ``A``, ``B``); ``λ = 2``
    gives the Peaceman–Rachford iterates.

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
        object.__setattr__(self, "relaxation", check_positive(self.relaxation, "relaxation"))
        if self.relaxation > 2:
            raise ValueError(f"relaxation must be in (0, 2], got {self.relaxation}")

    def prepare(self, problem):
        return _prepare_resolvents(self, problem)

    def init(self, prepared, x0):
        return State(z=x0, x=prepared.of_B(x0))

    def update(self, prepared, state):
        u, x = state.z, state.x
        delta = sub(prepared.of_A(reflect(x, u)), x)
        if self.relaxation != 1.0:
            delta = scale(self.relaxation, delta)
        u_new = add(u, delta)
        return State(z=u_new, x=prepared.of_B(u_new), delta=delta)

    def error_factor(self, margin, lipschitz, monotonicity=0.0):
        r"""``c`` with :math:`\|x^{+} - x^*\| \le c\,\|u^{+} - u\|` for the returned
        :math:`x^{+} = J_{\alpha B}(u^{+})`
        (:func:`~opsplit.diagnostics.rachford_error_factor`, derived in
        :mod:`opsplit.diagnostics.certificates`)."""
        from ..diagnostics.certificates import rachford_error_factor

        if not margin or margin <= 0 or lipschitz is None:
            return None
        return rachford_error_factor(
            self.step, margin, lipschitz, monotonicity or 0.0, self.relaxation
        )
