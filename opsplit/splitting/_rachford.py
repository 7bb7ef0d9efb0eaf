r"""The theory Peaceman–Rachford and Douglas–Rachford share.

Peaceman–Rachford is Douglas–Rachford with relaxation :math:`\lambda = 2`,
so one base class carries the theory of both, parametrized by
:attr:`RachfordSplitting.relaxation`:

.. math::

    c_{PR} = \sqrt{1 - \frac{4\alpha m}{(1 + \alpha L)^2}}, \qquad
    c_{DR} = \bigl|1 - \tfrac{\lambda}{2}\bigr| + \tfrac{\lambda}{2}\, c_{PR},

for the operator whose reflected resolvent contracts (``m``-strongly
monotone, ``L``-Lipschitz), smallest at :math:`\alpha = 1/L`; no step limit.
The error factors and computed bounds are derived in
:mod:`opsplit.diagnostics.certificates`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._backend import namespace
from .._validate import check_real
from .._vectors import axpy, batch_norms, first_array, lincomb, sub
from ..operators.monotone import ForwardOperator
from ._base import (
    SplittingMethod,
    check_constants,
    check_error_constants,
    resolvent,
)
from .forward_backward import fb_element

__all__ = ["RachfordSplitting", "pr_contraction", "dr_contraction", "rachford_error_factor"]


def check_relaxation(relaxation) -> float:
    """``relaxation`` as a float, raising unless it is a real number in ``(0, 2]``."""
    value = check_real(relaxation, "relaxation")
    if not 0 < value <= 2:
        raise ValueError(f"relaxation must be in (0, 2], got {relaxation}")
    return value


def pr_contraction(m: float, L: float, step: float) -> float:
    r"""Contraction factor :math:`\sqrt{1 - 4\alpha m/(1 + \alpha L)^2}` of Peaceman–Rachford.

    For ``A`` ``m``-strongly monotone and ``L``-Lipschitz, with
    :math:`y = J_{\alpha A} x` so that :math:`x = y + \alpha A y` and
    :math:`R_{\alpha A} x = y - \alpha A y`, differences satisfy
    :math:`\|\Delta R\|^2 = \|\Delta x\|^2 - 4\alpha\langle \Delta y, \Delta A y\rangle
    \le \|\Delta x\|^2 - 4\alpha m \|\Delta y\|^2` and
    :math:`\|\Delta x\| \le (1 + \alpha L)\|\Delta y\|`; the reflected
    resolvent of the other (monotone) operator is nonexpansive.  ``m`` and
    ``L`` are those of the operator whose reflected resolvent contracts.

    Parameters
    ----------
    m : float
        Strong monotonicity of the contracting operator.
    L : float
        Its Lipschitz constant.
    step : float
        The step ``α``.

    Returns
    -------
    float

    Examples
    --------
    >>> from opsplit.diagnostics import pr_contraction
    >>> round(pr_contraction(1.0, 2.0, 0.5), 6)    # α = 1/L is optimal: sqrt(1 - m/L)
    0.707107
    """
    check_constants(m, L, step)
    return math.sqrt(max(0.0, 1.0 - 4.0 * step * m / (1.0 + step * L) ** 2))


def dr_contraction(m: float, L: float, step: float, relaxation: float = 1.0) -> float:
    r"""Contraction factor of Douglas–Rachford with relaxation ``λ``:
    :math:`|1 - \lambda/2| + (\lambda/2)\,c_{PR}`.

    The map is :math:`(1 - \lambda/2) I + (\lambda/2) R_{\alpha A} R_{\alpha B}`;
    ``λ = 1`` gives :math:`(1 + c_{PR})/2`, ``λ = 2`` gives Peaceman–Rachford.

    Parameters
    ----------
    m : float
        Strong monotonicity of the contracting operator.
    L : float
        Its Lipschitz constant.
    step : float
        The step ``α``.
    relaxation : float
        ``λ ∈ (0, 2]``.

    Returns
    -------
    float

    Examples
    --------
    >>> from opsplit.diagnostics import dr_contraction, pr_contraction
    >>> c = pr_contraction(1.0, 2.0, 0.5)
    >>> dr_contraction(1.0, 2.0, 0.5) == (1 + c) / 2
    True
    """
    relaxation = check_relaxation(relaxation)
    c = pr_contraction(m, L, step)
    return abs(1.0 - relaxation / 2.0) + relaxation / 2.0 * c


def rachford_error_factor(
    step: float, margin: float, lipschitz: float, monotonicity: float = 0.0,
    relaxation: float = 2.0,
):
    r"""``c`` with :math:`\|x^{+} - x^*\| \le c\,\|u^{+} - u\|` after a Peaceman–Rachford
    (``relaxation = 2``) or Douglas–Rachford step, returning :math:`x^{+} = J_{\alpha B}u^{+}`.

    The smaller of :math:`1 + (1 + \alpha L)/(\lambda\alpha m)` and, when
    :math:`m_A > 0`, :math:`c/(1 - c)` with ``c = dr_contraction(m_A, L, α, λ)``.

    Parameters
    ----------
    step : float
        ``α``.
    margin : float
        ``m > 0``, strong monotonicity of ``A + B``.
    lipschitz : float
        ``L``, Lipschitz constant of ``A``.
    monotonicity : float
        :math:`m_A \ge 0`, strong monotonicity of ``A`` alone (0 if unknown).
    relaxation : float
        ``λ ∈ (0, 2]``.

    Returns
    -------
    float

    Examples
    --------
    >>> from opsplit.diagnostics import rachford_error_factor
    >>> round(rachford_error_factor(1.0, 1.0, 1.0), 6)      # 1 + 2/2
    2.0
    >>> round(rachford_error_factor(1.0, 1.0, 1.0, monotonicity=1.0), 6)  # c = 0
    0.0
    """
    check_error_constants(step, margin, lipschitz, monotonicity)
    relaxation = check_relaxation(relaxation)
    factor = 1.0 + (1.0 + step * lipschitz) / (relaxation * step * margin)
    if monotonicity > 0 and lipschitz >= monotonicity:
        c = dr_contraction(monotonicity, lipschitz, step, relaxation)
        if c < 1.0:
            factor = min(factor, c / (1.0 - c))
    return factor


@dataclass(frozen=True)
class RachfordSplitting(SplittingMethod):
    """Theory shared by Peaceman–Rachford (``relaxation`` 2) and Douglas–Rachford.

    Both take the resolvents of ``A`` and ``B`` (``requires``), return
    :math:`x = J_{\\alpha B}(u)` and converge for every step.
    """

    @property
    def relaxation(self) -> float:  # DouglasRachford overrides it with a field
        return 2.0

    def resolvents(self, problem):
        """``(J_{αA}, J_{αB})`` after the capability check."""
        self.check_problem(problem)
        return resolvent(problem.A, self.step, "A"), resolvent(problem.B, self.step, "B")

    def solution_residual(self, prepared, state):
        r""":math:`x - J_{\alpha B}(x - \alpha A x)` at :math:`x = J_{\alpha B}(u)`:
        zero exactly at a solution (needs ``A`` to be evaluable)."""
        if prepared.evaluate_A is None or state.x is None:
            return None
        x = state.x
        return sub(x, prepared.of_B(axpy(-self.step, prepared.evaluate_A(x), x)))

    @staticmethod
    def evaluator(problem):
        """``A``'s evaluation when ``A`` offers one (for :meth:`solution_residual`)."""
        return problem.A.evaluate if isinstance(problem.A, ForwardOperator) else None

    # -- theory ------------------------------------------------------------------------

    def optimal_step(self, m, L):
        """:math:`1/L`, giving :math:`c_{PR} = \\sqrt{1 - m/L}`."""
        check_constants(m, L)
        return 1.0 / L

    def contraction(self, m, L):
        """:func:`dr_contraction` at this step and relaxation."""
        return dr_contraction(m, L, self.step, self.relaxation)

    def error_factor(self, margin, lipschitz, monotonicity=0.0):
        r"""``c`` with :math:`\|x^{+} - x^*\| \le c\,\|u^{+} - u\|` for the returned
        :math:`x^{+} = J_{\alpha B}(u^{+})`
        (:func:`~opsplit.diagnostics.rachford_error_factor`)."""
        if not margin or margin <= 0 or lipschitz is None:
            return None
        return rachford_error_factor(
            self.step, margin, lipschitz, monotonicity or 0.0, self.relaxation
        )

    def inclusion_bound(self, problem, state, margin, batch_ndim):
        r"""The smaller of :math:`\|A x^{+} + (u^{+} - x^{+})/\alpha\|/m` and
        :math:`\|x^{+} - \hat x\| + \|\hat g\|/m` after one forward–backward step
        :math:`\hat x` from :math:`x^{+}` (needs ``A`` to be evaluable)."""
        A = problem.A
        if not isinstance(A, ForwardOperator) or state is None or state.delta is None:
            return None
        if not margin > 0:
            return None
        step, x_new = self.step, state.x
        xp = namespace(first_array(x_new))
        A_xn = A.evaluate(x_new)
        direct = batch_norms(axpy(1.0 / step, sub(state.z, x_new), A_xn), batch_ndim) / margin
        x_hat = problem.B.resolvent(step)(lincomb(1.0, x_new, -step, A_xn))
        g_hat = fb_element(A_xn, A.evaluate(x_hat), x_new, x_hat, step)
        natural = (batch_norms(sub(x_new, x_hat), batch_ndim)
                   + batch_norms(g_hat, batch_ndim) / margin)
        return xp.minimum(direct, natural)

    def needs_solution_residual(self, margin):
        """Peaceman–Rachford's ``u`` may oscillate for ever while ``x`` converges
        unless ``A + B`` is strongly monotone (``relaxation < 2`` averages it out)."""
        return self.relaxation >= 2 and not (margin is not None and margin > 0)

    def stall_hint(self, margin):
        if self.relaxation >= 2 and not (margin is not None and margin > 0):
            return (
                "Peaceman-Rachford needs A or B strongly monotone (no positive margin is "
                "known here), else u may oscillate without converging; Douglas-Rachford "
                "(relaxation < 2) converges whenever a zero exists"
            )
        return ""

    def divergence_hint(self, problem, m, L):
        return (
            f"{type(self).__name__} is nonexpansive for maximally monotone A and B and "
            "cannot diverge then: A or B is not monotone (check them with "
            "ops.diagnostics.check_monotone)"
        )
