r"""Forward–backward splitting and its theory.

With ``A`` ``m``-strongly monotone and ``L``-Lipschitz the forward step
:math:`I - \alpha A` is a :math:`c_{FB}`-contraction,

.. math::

    c_{FB} = \sqrt{1 - 2\alpha m + \alpha^2 L^2} < 1
    \iff 0 < \alpha < 2m/L^2,

smallest at :math:`\alpha = m/L^2`, and so is the whole step
:math:`J_{\alpha B}(I - \alpha A)` (the resolvent is nonexpansive).  The
a-posteriori error factor and the computed inclusion bound are derived in
:mod:`opsplit.diagnostics.certificates`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from .._vectors import batch_norms, scale, sub
from ..operators.monotone import ForwardOperator, ResolventOperator
from ..problems import Inclusion
from ._base import (
    SplittingMethod,
    State,
    check_constants,
    check_error_constants,
    resolvent,
)
from .linesearch import adaptive_step, backtrack, check_step_rule, smooth_value

__all__ = ["ForwardBackward", "fb_contraction", "fb_error_factor", "fb_element"]


def fb_contraction(m: float, L: float, step: float) -> float:
    r"""Contraction factor :math:`\sqrt{1 - 2\alpha m + \alpha^2 L^2}` of forward–backward.

    It bounds the Lipschitz constant of :math:`I - \alpha A` (``A``
    ``m``-strongly monotone, ``L``-Lipschitz) and so of the whole step
    :math:`J_{\alpha B}(I - \alpha A)`; it is below 1 iff ``step < 2m/L²``.

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
    float

    Examples
    --------
    >>> from opsplit.diagnostics import fb_contraction
    >>> round(fb_contraction(1.0, 2.0, 0.25), 6)
    0.866025
    """
    check_constants(m, L, step)
    return math.sqrt(max(0.0, 1.0 - 2.0 * step * m + (step * L) ** 2))


def fb_error_factor(step: float, margin: float, lipschitz: float, monotonicity: float = 0.0):
    r"""``c`` with :math:`\|x^{+} - x^*\| \le c\,\|x^{+} - x\|` after a forward–backward step.

    :math:`c = \sqrt{1 - 2\alpha m_A + \alpha^2 L^2}/(\alpha m)`, at most
    :math:`(1/\alpha + L)/m`; see :mod:`opsplit.diagnostics.certificates`
    for the derivation.

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

    Returns
    -------
    float

    Examples
    --------
    >>> from opsplit.diagnostics import fb_error_factor
    >>> fb_error_factor(0.5, 1.0, 2.0) <= (1 / 0.5 + 2.0) / 1.0
    True
    """
    check_error_constants(step, margin, lipschitz, monotonicity)
    lip = math.sqrt(max(0.0, 1.0 - 2.0 * step * monotonicity + (step * lipschitz) ** 2))
    return lip / (step * margin)


def fb_element(A_x, A_xn, x, x_new, step):
    """``g = (x - x⁺)/α - (A x - A x⁺) ∈ (A + B)(x⁺)`` for ``x⁺ = J_{αB}(x - αAx)``."""
    return sub(scale(1.0 / step, sub(x, x_new)), sub(A_x, A_xn))


class _FBMaps(NamedTuple):
    forward_step: Callable | None  # x ↦ x - α A(x) (fixed step)
    resolvent: Callable | None  # J_{αB} (fixed step)
    problem: Inclusion | None = None  # the steps change (backtracking, adaptive)
    value: Callable | None = None  # f of A = ∇f, for the backtracking test


class FBMemory(NamedTuple):
    """What forward–backward carries with a varying step (``State.aux``).

    Attributes
    ----------
    Ax : array or tuple
        :math:`A(x_k)`, reused by the next step.
    step : float
        :math:`\alpha_k`, the step that produced :math:`x_k`.
    x_prev : array or tuple or None
        :math:`x_{k-1}` (adaptive rule; ``None`` before the first step).
    Ax_prev : array or tuple or None
        :math:`A(x_{k-1})` (adaptive rule).
    step_prev : float
        :math:`\alpha_{k-1}` (adaptive rule).
    """

    Ax: object
    step: float
    x_prev: object = None
    Ax_prev: object = None
    step_prev: float = 0.0


@dataclass(frozen=True)
class ForwardBackward(SplittingMethod):
    r"""Forward–backward splitting for :math:`0 \in A(x) + B(x)`.

    Each step is an explicit (forward) step on ``A`` followed by an implicit
    (backward) step on ``B``:

    .. math::

        x^{+} = J_{\alpha B}\bigl(x - \alpha\, A(x)\bigr),
        \qquad \alpha = \text{step}.

    With ``A`` ``m``-strongly monotone and ``L``-Lipschitz it converges
    linearly for ``0 < step < 2m/L²``; with ``A`` ``β``-cocoercive, for
    ``step < 2β``.  Outside those ranges it may diverge, which
    :func:`opsplit.solve` reports.

    When ``L`` is unknown and ``A = ∇f`` is the gradient of a convex
    function, ``step_rule`` chooses the step :math:`\alpha_k` at each
    iteration (:mod:`opsplit.splitting.linesearch`):

    - ``"backtracking"``: Beck and Teboulle's backtracking from ``step``
      (halve until :math:`2\alpha_k\langle A x^{+} - A x, x^{+} - x\rangle
      \le \|x^{+} - x\|^2`; at most 30 halvings, the step only shrinks;
      the one documented inner loop of a method, with one host
      synchronization per trial);
    - ``"adaptive"``: the adaPGM step of Latafat, Themelis, Stella and
      Patrinos (2024) (the proximal version of Malitsky and Mishchenko's
      adaptive gradient descent), from ``step`` as the first step: no line
      search, no extra evaluation of ``A``, one host transfer of the step
      per iteration.

    The step is then shared by a batch (resolvents take one step), and the
    residual is :math:`x^{+} - x` at the step taken, as for a fixed step
    :math:`\alpha_k` (both rules keep :math:`\alpha_k` above a fixed
    multiple of :math:`\min(\text{step}, 1/L)`, so it does not vanish
    merely because the step does).  The contraction bound and the error
    factor assume the fixed ``step`` and are not offered then.

    Parameters
    ----------
    step : float
        The step size ``α > 0`` (the first trial step for the other rules).
    step_rule : {"fixed", "backtracking", "adaptive"}
        How the step is chosen (see above).

    References
    ----------
    P. L. Combettes and V. R. Wajs, "Signal recovery by proximal
    forward-backward splitting", Multiscale Model. Simul. 4 (2005).
    E. Winston and J. Z. Kolter, "Monotone operator equilibrium networks",
    NeurIPS 2020, Algorithm 1.
    A. Beck and M. Teboulle, "A fast iterative shrinkage-thresholding
    algorithm for linear inverse problems", SIAM J. Imaging Sci. 2 (2009).
    P. Latafat, A. Themelis, L. Stella and P. Patrinos, "Adaptive proximal
    algorithms for convex optimization under local Lipschitz continuity of
    the gradient", Math. Program. (2024), arXiv:2301.04431, Algorithm 2.1.

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> F = ops.LinearMonotone(ops.Dense(np.eye(2)), np.array([-1.0, 1.0]))
    >>> G = ops.Subdifferential(ops.prox.NonNegative())
    >>> res = ops.solve(ops.Inclusion(F, G), ops.ForwardBackward(step=0.5), np.zeros(2), tol=1e-12)
    >>> res.x, res.success
    (array([1., 0.]), True)
    """

    requires: ClassVar[tuple[type, type]] = (ForwardOperator, ResolventOperator)
    applies_A: ClassVar[tuple[str, ...]] = ("forward",)
    step_limit_formula: ClassVar[str | None] = "2m/L²"

    step_rule: str = "fixed"

    def __post_init__(self):
        super().__post_init__()
        check_step_rule(self.step_rule)

    def prepare(self, problem):
        self.check_problem(problem)
        if self.step_rule != "fixed":
            return _FBMaps(None, None, problem, smooth_value(problem))
        return _FBMaps(problem.A.forward_step(self.step), resolvent(problem.B, self.step, "B"))

    def init(self, prepared, x0):
        if prepared.problem is None:
            return State(z=x0, x=x0)
        Ax = prepared.problem.A.evaluate(x0)
        return State(z=x0, x=x0, aux=FBMemory(Ax=Ax, step=self.step, step_prev=self.step))

    def update(self, prepared, state):
        if prepared.problem is not None:
            return self._update_varying(prepared, state)
        x = state.x
        # The forward step stays in the state: a resolvent (a projection) may map
        # an infinite A(x) back to finite values, and the driver must see it.
        # x⁺ - x serves only the residual: the driver forms it when it records one.
        w = prepared.forward_step(x)
        x_new = prepared.resolvent(w)
        return State(z=x_new, x=x_new, w=w)

    def _update_varying(self, prepared, state):
        """One step with the step chosen by ``step_rule`` (backtracking or adaptive)."""
        x, memory, problem = state.x, state.aux, prepared.problem
        batch_ndim = problem.batch_ndim(x)
        if self.step_rule == "backtracking":
            x_new, w, Ax_new, step = backtrack(problem, x, memory.Ax, memory.step, batch_ndim,
                                               prepared.value)
            if Ax_new is None:
                Ax_new = problem.A.evaluate(x_new)
        else:
            step = memory.step
            if memory.x_prev is not None:
                step = adaptive_step(x, memory.x_prev, memory.Ax, memory.Ax_prev, memory.step,
                                     memory.step_prev, batch_ndim)
            w = sub(x, scale(step, memory.Ax))
            x_new = resolvent(problem.B, step, "B")(w)
            Ax_new = problem.A.evaluate(x_new)
        memory = FBMemory(Ax=Ax_new, step=step, x_prev=x, Ax_prev=memory.Ax,
                          step_prev=memory.step)
        return State(z=x_new, x=x_new, w=w, aux=memory)

    @property
    def fixed_point(self) -> bool:
        """A fixed map of ``x`` only with a fixed step (the other rules carry
        their step and past iterates in ``State.aux``)."""
        return self.step_rule == "fixed"

    def last_step(self, state) -> float:
        """The step that produced ``state`` (``step`` unless ``step_rule`` varies it)."""
        return state.aux.step if isinstance(state.aux, FBMemory) else self.step

    # -- theory ------------------------------------------------------------------------

    def step_limit(self, m, L):
        """:math:`2m/L^2`: the bound contracts exactly below it."""
        check_constants(m, L)
        return 2.0 * m / L**2

    def optimal_step(self, m, L):
        """:math:`m/L^2`, giving the factor :math:`\\sqrt{1 - m^2/L^2}`."""
        check_constants(m, L)
        if m == 0:
            raise ValueError("forward-backward has no contraction bound with m = 0")
        return m / L**2

    def contraction(self, m, L):
        """:func:`fb_contraction` at this step; ``None`` when ``step_rule``
        varies the step (no factor holds for a step not known in advance)."""
        if self.step_rule != "fixed":
            check_constants(m, L)
            return None
        return fb_contraction(m, L, self.step)

    def error_factor(self, margin, lipschitz, monotonicity=0.0):
        r"""``c`` with :math:`\|x^{+} - x^*\| \le c\,\|x^{+} - x\|`:
        :math:`\sqrt{1 - 2\alpha m_A + \alpha^2 L^2}/(\alpha m)`
        (:func:`~opsplit.diagnostics.fb_error_factor`), with ``m = margin`` of
        ``A + B``, ``L = lipschitz`` and :math:`m_A` = ``monotonicity`` of ``A``."""
        if not margin or margin <= 0 or lipschitz is None or self.step_rule != "fixed":
            return None
        return fb_error_factor(self.step, margin, lipschitz, monotonicity or 0.0)

    def inclusion_bound(self, problem, state, margin, batch_ndim):
        r""":math:`\|g\|/m` with the computed :math:`g \in (A + B)(x^{+})` of
        :func:`fb_element` (two evaluations of ``A``)."""
        if state is None or state.delta is None or not margin > 0:
            return None
        A, x_new, step = problem.A, state.x, self.last_step(state)
        x = sub(x_new, state.delta)
        g = fb_element(A.evaluate(x), A.evaluate(x_new), x, x_new, step)
        return batch_norms(g, batch_ndim) / margin

    def divergence_hint(self, problem, m, L):
        if m is not None and L is not None and m > 0 and L >= m:
            limit = self.step_limit(m, L)
            if self.step >= limit:
                return (f"the step {self.step:.4g} is above forward-backward's limit "
                        f"2m/L² = {limit:.4g} (m = {m:.4g}, L = {L:.4g})")
            return (f"the step {self.step:.4g} is below forward-backward's limit "
                    f"2m/L² = {limit:.4g}: check the stated m = {m:.4g} and L = {L:.4g}")
        return ("the step size may be above forward-backward's safe range 2m/L² "
                "(declare m and L on A to have it checked)")
