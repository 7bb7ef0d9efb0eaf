r"""Tseng's forward–backward–forward splitting and its theory.

For ``A`` monotone and ``L``-Lipschitz and ``B`` maximally monotone, with
:math:`y = J_{\alpha B}(x - \alpha A x)` and
:math:`x^{+} = y - \alpha(A y - A x)`, any zero :math:`x^*` satisfies

.. math::

    \|x^{+} - x^*\|^2 \le \|x - x^*\|^2 - (1 - \alpha^2 L^2)\|x - y\|^2
    - 2\alpha m\,\|y - x^*\|^2

(monotonicity of ``B`` at ``y`` and :math:`x^*`, ``m``-strong monotonicity of
``A``, and :math:`\|Ay - Ax\| \le L\|y - x\|`), so the iterates are Fejér
monotone and converge for :math:`\alpha < 1/L` — cocoercivity is not
needed, which is what skew (saddle-point) operators lack.  With ``m > 0``,
since :math:`\|x - x^*\|^2 \le 2(\|x - y\|^2 + \|y - x^*\|^2)`, it contracts
with factor

.. math::

    c = \sqrt{1 - \tfrac12 \min(1 - \alpha^2 L^2,\ 2\alpha m)},

smallest where :math:`1 - \alpha^2 L^2 = 2\alpha m`, at
:math:`\alpha = (\sqrt{m^2 + L^2} - m)/L^2`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from .._vectors import add, sub
from ..operators.monotone import ForwardOperator, ResolventOperator
from ..operators.spectral import operator_lipschitz
from ._base import SplittingMethod, State, check_constants, resolvent
from .forward_backward import ForwardBackward

__all__ = ["Tseng", "tseng_contraction"]


def tseng_contraction(m: float, L: float, step: float) -> float | None:
    r"""Contraction factor :math:`\sqrt{1 - \min(1 - \alpha^2 L^2, 2\alpha m)/2}` of
    Tseng's method, or ``None`` when ``step ≥ 1/L`` (no bound).

    Parameters
    ----------
    m : float
        Strong monotonicity of ``A``.
    L : float
        Lipschitz constant of ``A``.
    step : float
        The step ``α``.

    Returns
    -------
    float or None

    Examples
    --------
    >>> from opsplit.splitting.tseng import tseng_contraction
    >>> round(tseng_contraction(1.0, 2.0, 0.25), 6)    # min(3/4, 1/2) = 1/2
    0.866025
    >>> tseng_contraction(1.0, 2.0, 0.5) is None
    True
    """
    check_constants(m, L, step)
    if step * L >= 1.0:
        return None
    return math.sqrt(1.0 - 0.5 * min(1.0 - (step * L) ** 2, 2.0 * step * m))


class _TsengMaps(NamedTuple):
    forward_step: Callable  # x ↦ x - α A(x)
    resolvent: Callable


@dataclass(frozen=True)
class Tseng(SplittingMethod):
    r"""Tseng's forward–backward–forward splitting for :math:`0 \in A(x) + B(x)`.

    ``A`` is monotone and ``L``-Lipschitz but need not be cocoercive (a skew
    saddle-point operator :math:`(x, y) \mapsto (K y, -K^{T} x)`, on which
    forward–backward diverges); ``B`` is used through its resolvent.  With
    ``α = step``:

    .. math::

        w = x - \alpha A(x), \qquad y = J_{\alpha B}(w), \qquad
        x^{+} = y - \alpha\bigl(A(y) - A(x)\bigr)
              = (y - \alpha A(y)) + (x - w),

    two evaluations of ``A`` (two applications of the forward step
    :math:`I - \alpha A`, precomputed for an affine ``A``) and one resolvent
    per iteration.  It converges for :math:`0 < \alpha < 1/L` (linearly when
    ``A`` is strongly monotone, see :func:`tseng_contraction`); ``prepare``
    warns (``RuntimeWarning``) when the step is not below ``1/L`` for the
    Lipschitz constant ``A`` declares or its exact norm.

    The solution estimate is ``y`` (it lies in the domain of ``B``, e.g.
    satisfies the constraints, where :math:`x^{+}` need not), and the
    residual is the natural residual :math:`\|y - x\|`, zero exactly at a
    solution (``delta = y - x``, not :math:`x^{+} - x`): ``y`` is a
    forward–backward step from ``x``, so :math:`(x - y)/\alpha - (Ax - Ay) \in
    (A + B)(y)` gives the same error bounds as forward–backward.

    Parameters
    ----------
    step : float
        The step size ``α > 0``.

    References
    ----------
    P. Tseng, "A modified forward-backward splitting method for maximal
    monotone mappings", SIAM J. Control Optim. 38 (2000), 431–446.

    Examples
    --------
    The bilinear saddle point :math:`\min_x \max_y\, y(x - 1)` (``A`` skew,
    ``L = 1``), where forward–backward diverges:

    >>> import numpy as np, opsplit as ops
    >>> K = np.array([[0.0, 1.0], [-1.0, 0.0]])
    >>> A = ops.LinearMonotone(ops.Dense(K), np.array([0.0, 1.0]))
    >>> B = ops.Subdifferential(ops.prox.Zero())
    >>> res = ops.solve(ops.Inclusion(A, B), ops.Tseng(step=0.5), np.zeros(2), tol=1e-10)
    >>> np.allclose(res.x, [1.0, 0.0]), res.success
    (True, True)
    """

    requires: ClassVar[tuple[type, ...]] = (ForwardOperator, ResolventOperator)
    applies_A: ClassVar[tuple[str, ...]] = ("forward",)
    step_limit_formula: ClassVar[str | None] = "1/L"

    def prepare(self, problem):
        self.check_problem(problem)
        L = operator_lipschitz(problem.A)
        if L is not None and self.step * L >= 1.0:
            warnings.warn(
                f"step {self.step:.4g} is not below Tseng's limit 1/L = "
                f"{1.0 / L:.4g} (L = {L:.4g}, the Lipschitz "
                "constant of A): the iteration may not converge",
                RuntimeWarning, stacklevel=3,
            )
        return _TsengMaps(problem.A.forward_step(self.step), resolvent(problem.B, self.step, "B"))

    def init(self, prepared, x0):
        return State(z=x0, x=x0)

    def update(self, prepared, state):
        x = state.z
        w = prepared.forward_step(x)
        y = prepared.resolvent(w)
        x_new = add(prepared.forward_step(y), sub(x, w))
        # w stays in the state: the resolvent may map an infinite A(x) back to finite values.
        return State(z=x_new, x=y, delta=sub(y, x), w=w)

    # -- theory ------------------------------------------------------------------------

    def step_limit(self, m, L):
        """:math:`1/L` for ``A`` ``L``-Lipschitz (``m`` is not needed)."""
        check_constants(m, L)
        return 1.0 / L

    def optimal_step(self, m, L):
        """:math:`(\\sqrt{m^2 + L^2} - m)/L^2`, minimizing :func:`tseng_contraction`
        (``None`` when ``m = 0``: no contraction bound)."""
        check_constants(m, L)
        if m == 0:
            return None
        return (math.sqrt(m * m + L * L) - m) / L**2

    def contraction(self, m, L):
        """:func:`tseng_contraction` at this step."""
        return tseng_contraction(m, L, self.step)

    def error_factor(self, margin, lipschitz, monotonicity=0.0):
        r"""``c`` with :math:`\|y - x^*\| \le c\,\|y - x\|`: forward–backward's
        (:meth:`ForwardBackward.error_factor <opsplit.ForwardBackward.error_factor>`),
        ``y`` being a forward–backward step from ``x``."""
        return ForwardBackward(step=self.step).error_factor(margin, lipschitz, monotonicity)

    def inclusion_bound(self, problem, state, margin, batch_ndim):
        r""":math:`\|g\|/m` with :math:`g = (x - y)/\alpha - (Ax - Ay) \in (A + B)(y)`,
        as for forward–backward."""
        return ForwardBackward(step=self.step).inclusion_bound(problem, state, margin,
                                                               batch_ndim)

    def divergence_hint(self, problem, m, L):
        if L is not None and L > 0:
            side = "not below" if self.step * L >= 1 else "below"
            return (f"the step {self.step:.4g} is {side} Tseng's limit 1/L = {1 / L:.4g} "
                    "(L = the Lipschitz constant of A); check that A and B are monotone "
                    "(ops.diagnostics.check_monotone) and A's Lipschitz constant")
        return ("Tseng's method converges for step < 1/L with A monotone and L-Lipschitz: "
                "declare A's Lipschitz constant to have the step checked")
