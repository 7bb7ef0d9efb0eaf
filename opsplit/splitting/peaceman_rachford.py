"""Peaceman–Rachford splitting."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from ._base import State, reflected_resolvent, resolvents
from ._rachford import RachfordSplitting

__all__ = ["PeacemanRachford"]


class _Reflections(NamedTuple):
    reflect_A: Callable
    reflect_B: Callable
    of_B: Callable
    evaluate_A: Callable | None = None  # for the solution's own residual


@dataclass(frozen=True)
class PeacemanRachford(RachfordSplitting):
    r"""Peaceman–Rachford splitting for :math:`0 \in A(x) + B(x)`.

    The iteration composes the two reflected resolvents
    :math:`R_{\alpha T} = 2 J_{\alpha T} - I` on an auxiliary variable ``u``:

    .. math::

        w = R_{\alpha B}(u) = 2 J_{\alpha B}(u) - u, \qquad
        u^{+} = R_{\alpha A}(w) = 2\,J_{\alpha A}(w) - w ,

    and returns :math:`x = J_{\alpha B}(u)`.  Both reflections are applied in
    one pass where the structure allows: for an affine ``A`` the Cayley matrix
    :math:`2(I + \alpha L)^{-1} - I` is formed once, and ReLU's reflection
    is :math:`|u|`.  It converges for every ``step = α > 0`` when ``A`` (or
    ``B``) is strongly monotone and Lipschitz; its residual is ``‖u⁺ - u‖``,
    which the driver forms when it records one (the step itself does not).
    Without strong monotonicity ``u`` may oscillate while ``x`` converges:
    :func:`opsplit.solve` then also stops on the solution's own residual
    :math:`\|x - J_{\alpha B}(x - \alpha A x)\|` (when ``A`` can be
    evaluated); :class:`DouglasRachford` needs no strong monotonicity.

    Parameters
    ----------
    step : float
        The step size ``α > 0``.

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

    applies_A: ClassVar[tuple[str, ...]] = ("reflection",)

    def prepare(self, problem):
        self.check_problem(problem)
        of_B, reflect_B = resolvents(problem.B, self.step, "B")
        return _Reflections(
            reflected_resolvent(problem.A, self.step, "A"),
            reflect_B,
            of_B,
            self.evaluator(problem),
        )

    def init(self, prepared, x0):
        return State(z=x0, x=prepared.of_B(x0))

    def state_at(self, prepared, z):
        """``u = z`` alone: :meth:`update` needs no ``x`` (Anderson skips a resolvent)."""
        return State(z=z, x=None)

    def update(self, prepared, state):
        # u⁺ = R_A R_B u; x = J_B(u⁺) is only needed when someone looks, so it
        # is left to complete() (the driver calls it at checks and at the end),
        # and u⁺ - u only for the residual, so it is left to the driver.
        return State(z=prepared.reflect_A(prepared.reflect_B(state.z)), x=None)

    def complete(self, prepared, state):
        if state.x is not None:
            return state
        return state._replace(x=prepared.of_B(state.z))
