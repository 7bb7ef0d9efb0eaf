r"""FISTA: accelerated forward–backward, with adaptive restart.

For :math:`0 \in A(x) + B(x)` with :math:`A = \nabla f`, ``f`` convex with an
``L``-Lipschitz gradient, and ``B`` = :math:`\partial g` given by its
resolvent :math:`J_{\alpha B} = \operatorname{prox}_{\alpha g}`, FISTA
(Beck and Teboulle 2009) reaches

.. math::

    F(x_k) - F^\star \le \frac{2\,\|x_0 - x^\star\|^2}{\alpha\,(k+1)^2},
    \qquad F = f + g,\quad 0 < \alpha \le 1/L,

an :math:`O(1/k^2)` bound on the objective, not a contraction of the
iterates: the theory hooks say so (:meth:`FISTA.contraction` raises,
:meth:`FISTA.objective_bound` gives the bound).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

from .._backend import device, namespace
from .._vectors import axpy, batch_inner, batch_norms, first_array, sub, vmap
from ..operators.monotone import ForwardOperator, ResolventOperator
from ..problems import Inclusion
from ..prox.monotone import Subdifferential
from ._base import SplittingMethod, State, check_constants, resolvent
from .forward_backward import fb_element
from .linesearch import backtrack, check_step_rule, smooth_value

__all__ = ["FISTA"]

_RESTARTS = (True, False, "gradient", "function")


class _FISTAMaps(NamedTuple):
    problem: Inclusion
    forward_step: Callable | None  # y ↦ y - α A(y) (fixed step)
    resolvent: Callable | None  # J_{αB} (fixed step)
    objective: Callable | None  # F = f + g (function restart)
    value: Callable | None = None  # f of A = ∇f, for the backtracking test


class FISTAMemory(NamedTuple):
    """What FISTA carries from one step to the next (``State.aux``).

    Attributes
    ----------
    y : array or tuple
        The extrapolated point the next forward–backward step starts from.
    t : array
        Nesterov's :math:`t_k`, one per sample (shape of the batch).
    step : float
        The step of the last iteration (it shrinks under backtracking).
    value : array or None
        :math:`F(x_k)` for the function restart scheme (0-d).
    """

    y: Any
    t: Any
    step: float
    value: Any = None


def _per_sample(coef, x):
    """``coef`` (batch shape) times ``x``, broadcast over each block's core axes."""
    xp = namespace(coef)

    def times(part):
        return xp.reshape(coef, (*coef.shape, *(1,) * (part.ndim - coef.ndim))) * part

    return vmap(times, x)


@dataclass(frozen=True)
class FISTA(SplittingMethod):
    r"""FISTA (accelerated forward–backward) for :math:`0 \in A(x) + B(x)`,
    with adaptive restart.

    ``A`` must be the gradient of a convex function with an ``L``-Lipschitz
    gradient (:class:`~opsplit.Gradient`, a symmetric positive semidefinite
    :class:`~opsplit.LinearMonotone`, the subdifferential of a smooth
    function), evaluated directly; ``B`` is used through its resolvent.
    From :math:`y_1 = x_0`, :math:`t_1 = 1`, each step is

    .. math::

        x_k &= J_{\alpha B}\bigl(y_k - \alpha A(y_k)\bigr), \\
        \hat t_k &= \begin{cases} 1 & \text{restart} \\ t_k & \text{else}\end{cases},
        \qquad t_{k+1} = \tfrac12\bigl(1 + \sqrt{1 + 4\hat t_k^2}\bigr), \\
        y_{k+1} &= x_k + \frac{\hat t_k - 1}{t_{k+1}}\,(x_k - x_{k-1}),

    with :math:`\alpha` = ``step``.  The governing variable is :math:`x_k`
    and the stopping residual the gradient-mapping residual
    :math:`\text{delta} = x_k - y_k` (``State.delta``;
    :math:`\|\text{delta}\|/\alpha` is the norm of the gradient mapping), which
    vanishes exactly when :math:`y_k` is a solution, and then
    :math:`x_k = y_k`.

    Adaptive restart (O'Donoghue and Candès 2015) resets the momentum
    (:math:`\hat t_k = 1`, so :math:`y_{k+1} = x_k`) per sample:

    - ``restart=True`` (or ``"gradient"``, the default): when
      :math:`\langle y_k - x_k,\; x_k - x_{k-1}\rangle > 0`, i.e. the
      momentum points uphill for the gradient mapping.  Needs nothing beyond
      the iteration; in a batch each sample restarts on its own
      (``xp.where`` on a mask, no host synchronization).
    - ``restart="function"``: when :math:`F(x_k) > F(x_{k-1})`,
      :math:`F = f + g`.  Available when both ``A`` and ``B`` are
      :class:`~opsplit.Subdifferential` of functions with values (``A`` the
      subdifferential of a smooth function that can be evaluated, e.g. a
      least-squares loss); a ``TypeError`` says so otherwise.  Function
      values sum over a batch, so it needs an unbatched ``x0``.
    - ``restart=False``: plain FISTA, with the :math:`O(1/k^2)` bound of
      :meth:`objective_bound`.

    Restart keeps FISTA's worst case and recovers linear convergence on
    strongly convex problems without knowing the strong convexity.

    Parameters
    ----------
    step : float
        The step :math:`\alpha`, at most :math:`1/L` (a ``RuntimeWarning``
        names the bound when ``A`` declares ``lipschitz`` and the step exceeds
        it); the initial trial step under backtracking.
    restart : bool or {"gradient", "function"}
        The restart scheme (see above).
    step_rule : {"fixed", "backtracking"}
        ``"backtracking"`` chooses :math:`\alpha_k \le \text{step}` by Beck
        and Teboulle's backtracking when ``L`` is unknown
        (:mod:`opsplit.splitting.linesearch`: the one documented inner loop,
        at most 30 halvings, one host synchronization per trial, the step
        shared by a batch).

    References
    ----------
    A. Beck and M. Teboulle, "A fast iterative shrinkage-thresholding
    algorithm for linear inverse problems", SIAM J. Imaging Sci. 2 (2009),
    183–202.
    B. O'Donoghue and E. Candès, "Adaptive restart for accelerated gradient
    schemes", Found. Comput. Math. 15 (2015), 715–732.

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> H = np.array([[2.0, 0.5], [0.5, 1.0]])          # f(x) = ½xᵀHx - bᵀx
    >>> f = ops.LinearMonotone(ops.Dense(H), np.array([-1.0, 1.0]), lipschitz=2.21)
    >>> g = ops.Subdifferential(ops.prox.NonNegative())
    >>> res = ops.solve(ops.Inclusion(f, g), ops.FISTA(step=1 / 2.21), np.zeros(2), tol=1e-12)
    >>> np.round(res.x, 6), res.success
    (array([0.5, 0. ]), True)
    """

    requires: ClassVar[tuple[type, type]] = (ForwardOperator, ResolventOperator)
    applies_A: ClassVar[tuple[str, ...]] = ("forward",)
    step_limit_formula: ClassVar[str | None] = "1/L"
    contracts: ClassVar[bool] = False
    fixed_point: ClassVar[bool] = False  # momentum and t_k live beyond z

    restart: bool | str = True
    step_rule: str = "fixed"

    def __post_init__(self):
        super().__post_init__()
        if not any(self.restart is r or (isinstance(r, str) and self.restart == r)
                   for r in _RESTARTS):
            raise ValueError(
                f"restart must be True, False, 'gradient' or 'function', got {self.restart!r}")
        check_step_rule(self.step_rule, ("fixed", "backtracking"))

    @property
    def _scheme(self) -> str | None:
        return {True: "gradient", False: None}.get(self.restart, self.restart)

    # -- the iteration ---------------------------------------------------------------

    def prepare(self, problem):
        self.check_problem(problem)
        A, B = problem.A, problem.B
        fixed = self.step_rule == "fixed"
        if fixed and A.lipschitz is not None and self.step > 1.0 / A.lipschitz * (1 + 1e-12):
            warnings.warn(
                f"FISTA step {self.step:.4g} exceeds 1/L = {1.0 / A.lipschitz:.4g} "
                f"(L = {A.lipschitz:.4g} declared by A): the O(1/k²) bound does not hold "
                "and the iteration may diverge (use step_rule='backtracking' when unsure)",
                RuntimeWarning, stacklevel=2)
        objective = None
        if self._scheme == "function":
            if not (isinstance(A, Subdifferential) and isinstance(B, Subdifferential)):
                raise TypeError(
                    "restart='function' needs the objective f + g: A and B must be "
                    "ops.Subdifferential of functions with values (got "
                    f"{type(A).__name__} and {type(B).__name__}); use restart=True "
                    "(the gradient scheme) instead")
            f, g = A.function, B.function

            def objective(x):
                return f.value(x) + g.value(x)

        if fixed:
            return _FISTAMaps(problem, A.forward_step(self.step),
                              resolvent(B, self.step, "B"), objective)
        return _FISTAMaps(problem, None, None, objective, smooth_value(problem))

    def init(self, prepared, x0):
        batch_ndim = prepared.problem.batch_ndim(x0)
        first = first_array(x0)
        xp = namespace(first)
        value = None
        if prepared.objective is not None:
            if batch_ndim:
                raise ValueError(
                    "restart='function' needs one objective value per sample, and function "
                    f"values sum over the batch: x0 has {batch_ndim} batch axes; solve one "
                    "sample at a time or use restart=True")
            value = prepared.objective(x0)
        t = xp.ones(tuple(first.shape[:batch_ndim]), dtype=first.dtype, device=device(first))
        return State(z=x0, x=x0, aux=FISTAMemory(y=x0, t=t, step=self.step, value=value))

    def update(self, prepared, state):
        x, memory = state.x, state.aux
        y, t = memory.y, memory.t
        xp = namespace(t)
        if prepared.forward_step is not None:
            step = self.step
            w = prepared.forward_step(y)
            x_new = prepared.resolvent(w)
        else:
            A = prepared.problem.A
            x_new, w, _, step = backtrack(prepared.problem, y, A.evaluate(y), memory.step,
                                          t.ndim, prepared.value)
        delta = sub(x_new, y)
        value = None
        if prepared.objective is not None:
            value = prepared.objective(x_new)
            restart = value > memory.value
        elif self.restart:
            # ⟨y - x⁺, x⁺ - x⟩ > 0: the momentum points uphill.
            restart = batch_inner(delta, sub(x_new, x), t.ndim) < 0
        if self.restart:
            t = xp.where(restart, xp.ones_like(t), t)
        t_next = 0.5 * (1.0 + xp.sqrt(1.0 + 4.0 * t * t))
        y_next = axpy(1.0, _per_sample((t - 1.0) / t_next, sub(x_new, x)), x_new)
        return State(z=x_new, x=x_new, delta=delta, w=w,
                     aux=FISTAMemory(y=y_next, t=t_next, step=step, value=value))

    # -- theory ------------------------------------------------------------------------

    def step_limit(self, m, L):
        """:math:`1/L`: the largest step of the :math:`O(1/k^2)` bound (``L`` the
        Lipschitz constant of :math:`\\nabla f`; ``m`` plays no role)."""
        check_constants(m, L)
        return 1.0 / L

    def optimal_step(self, m, L):
        """:math:`1/L`, the step minimizing the constant of :meth:`objective_bound`."""
        check_constants(m, L)
        return 1.0 / L

    def contraction(self, m, L):
        """``None``: FISTA is not a contraction method (:attr:`contracts` is
        ``False``).

        Its guarantee is on the objective, :math:`F(x_k) - F^\\star =
        O(1/k^2)` (:meth:`objective_bound`), and its iterates need not
        approach :math:`x^\\star` monotonically; with restart it converges
        linearly on strongly convex problems, at a rate no factor of this
        kind states."""
        check_constants(m, L)
        return None

    def objective_bound(self, iteration: int, distance: float) -> float:
        r"""Beck and Teboulle's bound :math:`2 d^2/(\alpha (k+1)^2)` on
        :math:`F(x_k) - F^\star` after ``iteration`` = ``k`` steps of plain
        FISTA at a step :math:`\alpha \le 1/L`, for ``distance`` =
        :math:`d = \|x_0 - x^\star\|`.

        Examples
        --------
        >>> import opsplit as ops
        >>> ops.FISTA(step=0.5, restart=False).objective_bound(3, 1.0)
        0.25
        """
        if not isinstance(iteration, int) or iteration < 1:
            raise ValueError(f"iteration must be an integer >= 1, got {iteration!r}")
        if not (isinstance(distance, (int, float)) and math.isfinite(distance)
                and distance >= 0):
            raise ValueError(f"distance must be a finite number >= 0, got {distance!r}")
        return 2.0 * distance**2 / (self.step * (iteration + 1) ** 2)

    def inclusion_bound(self, problem, state, margin, batch_ndim):
        r""":math:`\|g\|/m` with the computed
        :math:`g = (y - x^{+})/\alpha - (A y - A x^{+}) \in (A + B)(x^{+})` of
        the last forward–backward step (:func:`~opsplit.splitting.forward_backward.fb_element`
        at :math:`y = x^{+} - \text{delta}`, the step taken)."""
        if state is None or state.delta is None or not margin > 0:
            return None
        A, x_new = problem.A, state.x
        y = sub(x_new, state.delta)
        g = fb_element(A.evaluate(y), A.evaluate(x_new), y, x_new, state.aux.step)
        return batch_norms(g, batch_ndim) / margin

    def divergence_hint(self, problem, m, L):
        if L is not None and L > 0 and self.step > 1.0 / L:
            return (f"the step {self.step:.4g} is above FISTA's limit 1/L = {1.0 / L:.4g} "
                    "(or use step_rule='backtracking')")
        return ("FISTA needs A = ∇f of a convex f with an L-Lipschitz gradient and "
                "step <= 1/L: check that A is symmetric (a gradient), or use "
                "step_rule='backtracking'")
