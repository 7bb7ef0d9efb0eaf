r"""Davis–Yin three-operator splitting and the cocoercivity it needs.

Davis–Yin solves :math:`0 \in A(x) + B(x) + C(x)` with the resolvents of
``A`` and ``B`` and evaluations of a ``β``-cocoercive ``C``
(:math:`\langle Cx - Cy, x - y\rangle \ge \beta\|Cx - Cy\|^2`).  Its map
is averaged, and the iteration converges whenever a zero exists, for

.. math::

    0 < \alpha < 2\beta, \qquad 0 < \lambda < 2 - \frac{\alpha}{2\beta}

(Davis & Yin 2017, §2: the map is :math:`2\beta/(4\beta - \alpha)`-averaged).  ``C = 0`` is
Douglas–Rachford; ``A = 0`` is forward–backward on ``C + B``.

Where ``β`` comes from (:func:`cocoercivity`): the operator's declared
constant (:class:`~opsplit.Gradient` with ``lipschitz=L`` declares ``1/L``
by Baillon–Haddad); for an affine :class:`~opsplit.LinearMonotone` the exact
constant of its linear part when it is small or diagonal; else ``m/L²`` from
declared strong monotonicity ``m`` and Lipschitz constant ``L``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from .._vectors import add, axpy, batch_norms, reflect, scale, sub
from ..operators.monotone import ForwardOperator, LinearMonotone, ResolventOperator
from ..operators.spectral import exact_cocoercivity
from ._base import SplittingMethod, State, check_constants, resolvent
from ._rachford import check_relaxation

__all__ = ["DavisYin", "cocoercivity"]

def cocoercivity(op) -> float | None:
    r"""The cocoercivity constant ``β`` of a forward operator ``op``, or ``None``.

    In this order: the constant ``op`` declares (``op.cocoercivity``); for a
    :class:`~opsplit.LinearMonotone`, the exact constant of its linear part
    (:func:`~opsplit.operators.exact_cocoercivity`); ``m/L²`` from declared
    strong monotonicity ``m > 0`` and Lipschitz constant ``L``
    (:math:`\langle \Delta C, \Delta x\rangle \ge m\|\Delta x\|^2 \ge (m/L^2)\|\Delta C\|^2`).

    Parameters
    ----------
    op : ForwardOperator

    Returns
    -------
    float or None
        ``β``; ``0.0`` (or less) when ``op`` is known not to be cocoercive.

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> from opsplit.splitting.davis_yin import cocoercivity
    >>> cocoercivity(ops.Gradient(lambda x: 2.0 * x, lipschitz=2.0))
    0.5
    """
    if op.cocoercivity is not None:
        return float(op.cocoercivity)
    if isinstance(op, LinearMonotone):
        found = exact_cocoercivity(op.op)
        if found is not None:
            return found
    m, L = op.strong_monotonicity, op.lipschitz
    if m is not None and L is not None and m > 0 and L > 0:
        return m / L**2
    return None


class _Maps(NamedTuple):
    of_A: Callable
    of_B: Callable
    evaluate_C: Callable


@dataclass(frozen=True)
class DavisYin(SplittingMethod):
    r"""Davis–Yin three-operator splitting for :math:`0 \in A(x) + B(x) + C(x)`.

    Pose the problem as ``ops.Inclusion(A, B, C)``: ``A`` and ``B`` through
    their resolvents, ``C`` (``β``-cocoercive, e.g. the gradient of a convex
    function with ``1/β``-Lipschitz gradient) evaluated directly.  With
    ``α = step`` and ``λ = relaxation``, on the governing variable ``z``:

    .. math::

        x_B = J_{\alpha B}(z), \qquad
        x_A = J_{\alpha A}\bigl(2 x_B - z - \alpha\, C(x_B)\bigr), \qquad
        z^{+} = z + \lambda\,(x_A - x_B),

    and the solution estimate is :math:`x = x_B`.  It converges when a zero
    exists for :math:`0 < \alpha < 2\beta` and
    :math:`0 < \lambda < 2 - \alpha/(2\beta)` (for ``λ = 1``: any
    ``α < 2β``).  ``prepare`` warns (``RuntimeWarning``) outside that range
    when ``β`` is known (see :func:`cocoercivity`) and raises ``ValueError``
    when ``C`` is known not to be cocoercive (a linear ``C`` with a nonzero
    skew part, such as a saddle-point operator: use :class:`~opsplit.Tseng`,
    or give it to ``A`` or ``B`` through its resolvent).  The residual is
    :math:`\|z^{+} - z\| = \lambda\|x_A - x_B\|`.

    ``C = 0`` gives the Douglas–Rachford iterates exactly; ``A = 0`` gives
    forward–backward on ``C + B`` (:math:`x_B^{+} = J_{\alpha B}(x_B -
    \alpha C x_B)` when ``λ = 1``).

    Parameters
    ----------
    step : float
        The step size ``α > 0``.
    relaxation : float
        ``λ ∈ (0, 2]``.

    References
    ----------
    D. Davis and W. Yin, "A three-operator splitting scheme and its
    optimization applications", Set-Valued Var. Anal. 25 (2017), 829–858.

    Examples
    --------
    Nonnegative least squares with an ℓ₁ term, :math:`\min \tfrac12\|x - b\|^2
    + \|x\|_1` over :math:`x \ge 0`:

    >>> import numpy as np, opsplit as ops
    >>> b = np.array([3.0, 0.5, -2.0])
    >>> A = ops.Subdifferential(ops.prox.L1(1.0))
    >>> B = ops.Subdifferential(ops.prox.NonNegative())
    >>> C = ops.Gradient(lambda x: x - b, lipschitz=1.0)      # 1-cocoercive
    >>> res = ops.solve(ops.Inclusion(A, B, C), ops.DavisYin(step=1.0), np.zeros(3), tol=1e-12)
    >>> np.allclose(res.x, [2.0, 0.0, 0.0]), res.success
    (True, True)
    """

    requires: ClassVar[tuple[type, ...]] = (ResolventOperator, ResolventOperator, ForwardOperator)
    step_limit_formula: ClassVar[str | None] = "2m/L²"
    contracts: ClassVar[bool] = False  # no contraction factor is implemented

    relaxation: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "relaxation", check_relaxation(self.relaxation))

    def prepare(self, problem):
        self.check_problem(problem)
        self._check_step(cocoercivity(problem.C))
        return _Maps(resolvent(problem.A, self.step, "A"), resolvent(problem.B, self.step, "B"),
                     problem.C.evaluate)

    def _check_step(self, beta: float | None) -> None:
        """Raise ``ValueError`` when ``C`` is known not to be cocoercive
        (``beta <= 0``); warn when ``step`` or ``relaxation`` is outside the
        proven range for ``beta``; nothing when ``beta`` is ``None``."""
        if beta is None or math.isinf(beta) and beta > 0:
            return
        if not beta > 0:
            why = ("it is not even monotone" if beta == -math.inf else
                   f"β = {beta:.4g}; e.g. a nonzero skew part of a linear C, which "
                   "⟨Cx, x⟩ does not see")
            raise ValueError(
                f"C is not cocoercive ({why}): Davis-Yin evaluates C and needs "
                "⟨Cx - Cy, x - y⟩ ≥ β‖Cx - Cy‖² with β > 0; give a monotone Lipschitz "
                "operator to A or B through its resolvent, or use ops.Tseng"
            )
        if self.step >= 2.0 * beta:
            warnings.warn(
                f"step {self.step:.4g} is not below Davis-Yin's limit 2β = {2.0 * beta:.4g} "
                f"(β = {beta:.4g}, the cocoercivity of C): the iteration may diverge",
                RuntimeWarning, stacklevel=4,
            )
        elif self.relaxation >= 2.0 - self.step / (2.0 * beta):
            bound = 2.0 - self.step / (2.0 * beta)
            warnings.warn(
                f"relaxation {self.relaxation:.4g} is not below Davis-Yin's limit "
                f"2 - α/(2β) = {bound:.4g} (α = {self.step:.4g}, β = {beta:.4g}): the "
                "iteration may not converge",
                RuntimeWarning, stacklevel=4,
            )

    def init(self, prepared, x0):
        return State(z=x0, x=prepared.of_B(x0))

    def update(self, prepared, state):
        z, x = state.z, state.x  # x = J_αB(z)
        # 2x - z - αC(x); kept in the state: J_αA may map an infinite C(x) back to
        # finite values, and the driver must see it.
        w = axpy(-self.step, prepared.evaluate_C(x), reflect(x, z))
        delta = sub(prepared.of_A(w), x)
        if self.relaxation != 1.0:
            delta = scale(self.relaxation, delta)
        z_new = add(z, delta)
        return State(z=z_new, x=prepared.of_B(z_new), delta=delta, w=w)

    # -- theory ------------------------------------------------------------------------

    def step_limit(self, m, L):
        """:math:`2m/L^2`: the limit :math:`2\\beta` for a ``C`` known only to be
        ``m``-strongly monotone and ``L``-Lipschitz (so :math:`m/L^2`-cocoercive;
        a gradient of an ``L``-smooth convex function is :math:`1/L`-cocoercive:
        see :func:`cocoercivity`)."""
        check_constants(m, L)
        return 2.0 * m / L**2

    def inclusion_bound(self, problem, state, margin, batch_ndim):
        r""":math:`\|g\|/m` with the computed element
        :math:`g = A x + (z - x)/\alpha + C x \in (A + B + C)(x)` at
        :math:`x = J_{\alpha B}(z)` (needs ``A`` to be evaluable; ``m`` is the
        margin of ``A + B + C``)."""
        A = problem.A
        if not isinstance(A, ForwardOperator) or state is None or not margin > 0:
            return None
        x = state.x
        g = add(add(A.evaluate(x), scale(1.0 / self.step, sub(state.z, x))),
                problem.C.evaluate(x))
        return batch_norms(g, batch_ndim) / margin

    def divergence_hint(self, problem, m, L):
        beta = cocoercivity(problem.C) if problem.C is not None else None
        if beta is not None and 0 < beta < math.inf:
            side = "above" if self.step >= 2 * beta else "below"
            return (f"the step {self.step:.4g} is {side} Davis-Yin's limit 2β = {2 * beta:.4g} "
                    "(β = the cocoercivity of C); check that A and B are monotone and C's "
                    "constants (ops.diagnostics.check_cocoercive)")
        return ("Davis-Yin converges for step < 2β with C β-cocoercive: declare C's "
                "cocoercivity (or Lipschitz constant, for a gradient) to have the step checked")
