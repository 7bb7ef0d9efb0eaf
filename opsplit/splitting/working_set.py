r"""Working-set (active-set) acceleration for sparse least-squares problems.

For :math:`\min_x \tfrac12\|Ax - b\|^2 + g(x)` with a separable ``g`` that
favours zeros (LASSO, elastic net), most coordinates of the solution vanish.
:class:`WorkingSet` solves the problem restricted to a small set ``W`` of
coordinates (the others held at zero) with an accelerated splitting method on
the small Gram matrix :math:`A_W^TA_W`, checks the optimality of the full
problem, and grows ``W`` by the worst violators, as BLITZ (Johnson and
Guestrin 2015), celer (Massias, Gramfort and Salmon 2018) and skglm do.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import numpy as np

from .._backend import device, namespace, to_numpy
from .._validate import check_positive, check_positive_int
from .._vectors import is_tuple
from ..operators import Dense
from ..operators.monotone import ForwardOperator, LinearMonotone, ResolventOperator
from ..problems import Inclusion
from ..prox.monotone import SmoothSubdifferential, Subdifferential
from ..prox.smooth import LeastSquares
from ._base import SplittingMethod, State, check_constants
from .fista import FISTA

__all__ = ["WorkingSet", "WorkingSetMemory"]


class _Prepared(NamedTuple):
    problem: Inclusion
    A: Any  # the dense m × n matrix of the least-squares term
    b: Any
    B: Subdifferential  # ∂g, separable


class WorkingSetMemory(NamedTuple):
    """What :class:`WorkingSet` carries in :attr:`State.aux`.

    Attributes
    ----------
    columns : numpy.ndarray
        The working set ``W`` (coordinate indices in the order they joined, on
        the host).
    method : SplittingMethod or None
        The inner method of this round, at the step :math:`\\alpha_W`.
    prepared : object
        Its ``prepare`` of the restricted problem.
    inner : State or None
        Its state on the restricted problem (``None`` when ``W`` is empty).
    step : float
        :math:`\\alpha_W` = relative step / :math:`L_W`.
    target : float
        The restricted residual that ends this round with a full check.
    steps : int
        Inner steps taken since the round (or the last full check) began.
    checks : int
        Full optimality checks so far (one full gradient each).
    A_W : array or None
        :math:`A_W`, the columns of ``W``.
    gram : array or None
        :math:`A_W^TA_W`.
    c : array or None
        :math:`A_W^Tb`.
    last : float
        The restricted residual measured last in this round.
    """

    columns: Any
    method: Any
    prepared: Any
    inner: Any
    step: float
    target: float
    steps: int
    checks: int
    A_W: Any = None
    gram: Any = None
    c: Any = None
    last: float = math.inf


@dataclass(frozen=True, init=False)
class WorkingSet(SplittingMethod):
    r"""Working-set acceleration of a forward–backward-type method for
    :math:`0 \in \nabla f(x) + \partial g(x)`, :math:`f = \tfrac12\|Ax-b\|^2`.

    The problem must be ``ops.Inclusion(ops.Subdifferential(f),
    ops.Subdifferential(g))`` with ``f`` an :class:`~opsplit.prox.LeastSquares`
    of a dense ``A`` (``m × n``, one right-hand side ``b``) and ``g``
    separable with :math:`0 \in \operatorname{dom} g` (:class:`~opsplit.prox.L1`,
    :class:`~opsplit.prox.ElasticNet`, :class:`~opsplit.prox.NonNegative`):
    coordinates outside the working set ``W`` are held at zero.

    **Rounds.**  For the current ``W`` (``k`` coordinates) the restricted
    problem is :math:`0 \in G_W x_W - c_W + \partial g(x_W)`, with
    :math:`G_W = A_W^TA_W`, :math:`c_W = A_W^Tb`,
    :math:`L_W = \lambda_{\max}(G_W)` (exact, ``eigvalsh`` of the small
    matrix), and the wrapped ``method`` runs on it at the step
    :math:`\alpha_W = s/L_W` (``s`` = ``method.step``, a *relative* step:
    FISTA's bound is :math:`s \le 1`, forward–backward's :math:`s < 2`).
    One :meth:`update` is one inner step (``k²`` flops instead of ``2mn``).
    Every ``check`` inner steps the restricted prox-gradient residual
    :math:`r_W = x_W - \operatorname{prox}_{\alpha_W g}(x_W - \alpha_W(G_Wx_W - c_W))`
    is measured; once :math:`\|r_W\| \le \text{target}` (or when it stops
    decreasing from one measurement to the next: rounding, a stalled inner
    method) a full check computes,
    at :math:`x` (:math:`x_W` scattered, zeros elsewhere),

    .. math::

        \text{delta} = x - \operatorname{prox}_{\alpha_W g}\bigl(x - \alpha_W A^T(Ax - b)\bigr),

    the full prox-gradient residual, which vanishes exactly at a solution of
    the full problem.  Coordinates ``j ∉ W`` with :math:`\text{delta}_j \ne 0`
    violate optimality (for the LASSO: :math:`|A_j^T(Ax-b)| > \lambda`); the
    ``max(size, |supp x|)`` largest of them join ``W`` (``W`` only grows, so
    at worst it becomes every coordinate, plain ``method``), and the next
    target is ``ratio``·‖delta‖.

    **Stopping residual.**  ``State.x`` and ``State.z`` are the point of the
    last full check and ``State.delta`` its full residual: the driver sees
    only full residuals and stops only at a point whose full optimality it
    measured, never on a small restricted residual while a coordinate
    outside ``W`` violates optimality.  As :math:`\alpha_W \ge s/L`
    (:math:`L_W \le L = \|A\|^2`), :math:`\|\text{delta}\|` is at least
    forward–backward's residual at the step :math:`s/L`.  Between full
    checks the residual the driver records does not move; with NumPy
    ``check_every=1`` lets it stop right after the check that converges.

    **Host decisions.**  ``W``'s size sets the shapes of the inner problem,
    so the method decides on the host: one transfer of a scalar every
    ``check`` inner steps, and of the ``n`` entries of ``|delta|`` (to pick
    the violators) once per full check.  Hence also unbatched ``x0`` only: a
    batch would need a working set per sample, and a ``ValueError`` names
    ``x0`` when it has batch axes.

    Parameters
    ----------
    method : SplittingMethod, optional
        The inner method, with its step relative to :math:`1/L_W`:
        :class:`~opsplit.ForwardBackward`, :class:`~opsplit.FISTA` (with the
        gradient restart; the function restart needs ``Subdifferential``
        operators, which the restricted problem does not use) or
        :class:`~opsplit.Anderson` of forward–backward.  Default
        ``ops.FISTA(step=1.0)``.  A relative step above the inner method's
        bound (:meth:`step_limit`) warns (``RuntimeWarning``); a diverging run
        ends with status ``DIVERGED``.
    size : int
        The least number of coordinates added per round (and the size of the
        first working set beyond the support of ``x0``).
    check : int
        Inner steps between two measurements of the restricted residual.
    ratio : float
        In ``(0, 1)``: each round solves the restricted problem until its
        residual is ``ratio`` times the full residual at the round's start.

    References
    ----------
    T. B. Johnson and C. Guestrin, "BLITZ: a principled meta-algorithm for
    scaling sparse optimization", ICML 2015.
    M. Massias, A. Gramfort and J. Salmon, "Celer: a fast solver for the Lasso
    with dual extrapolation", ICML 2018.
    Q. Bertrand et al., "Beyond L1: faster and better sparse models with
    skglm", NeurIPS 2022.

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((20, 50)); b = A[:, :3] @ np.array([1.0, -2.0, 3.0])
    >>> lam = 0.1 * np.abs(A.T @ b).max()
    >>> problem = ops.Inclusion(ops.Subdifferential(ops.prox.LeastSquares(A, b)),
    ...                         ops.Subdifferential(ops.prox.L1(lam)))
    >>> res = ops.solve(problem, ops.WorkingSet(ops.FISTA(step=1.0)), np.zeros(50),
    ...                 tol=1e-10, check_every=1)
    >>> res.success, np.flatnonzero(res.x)[:3]
    (True, array([0, 1, 2]))
    """

    requires: ClassVar[tuple[type, type]] = (ForwardOperator, ResolventOperator)
    applies_A: ClassVar[tuple[str, ...]] = ("forward",)
    step_limit_formula: ClassVar[str | None] = None
    contracts: ClassVar[bool] = False
    fixed_point: ClassVar[bool] = False  # the working set lives beyond z

    # the inner method's relative step: not part of the configuration
    step: float = field(default=1.0, repr=False, metadata={"derived": True})
    method: SplittingMethod = None  # type: ignore[assignment]
    size: int = 10
    check: int = 5
    ratio: float = 0.01

    def __init__(self, method: SplittingMethod | None = None, size: int = 10,
                 check: int = 5, ratio: float = 0.01):
        if method is None:
            method = FISTA(step=1.0)
        if not isinstance(method, SplittingMethod):
            raise TypeError("method must be a SplittingMethod (e.g. ops.FISTA(step=1.0)), "
                            f"got {type(method).__name__}")
        if isinstance(method, WorkingSet):
            raise TypeError("method is already a WorkingSet: wrap the plain method")
        if tuple(method.requires) != (ForwardOperator, ResolventOperator):
            raise TypeError(
                f"method must evaluate ∇f and apply the prox of g (forward–backward, FISTA, "
                f"Anderson of forward–backward); {type(method).__name__} does not")
        ratio = check_positive(ratio, "ratio")
        if not ratio < 1:
            raise ValueError(f"ratio must be in (0, 1), got {ratio}")
        values = {"step": method.step, "method": method,
                  "size": check_positive_int(size, "size"),
                  "check": check_positive_int(check, "check"), "ratio": ratio}
        for name, value in values.items():
            object.__setattr__(self, name, value)

    # -- the iteration ---------------------------------------------------------------

    def check_problem(self, problem) -> None:
        super().check_problem(problem)
        A, B = problem.A, problem.B
        if not (isinstance(A, SmoothSubdifferential) and isinstance(A.function, LeastSquares)):
            raise TypeError("WorkingSet needs A = ops.Subdifferential(ops.prox.LeastSquares(A, "
                            f"b)), got {type(A).__name__}")
        if not isinstance(A.function.A, Dense):
            raise TypeError("WorkingSet needs the least-squares matrix dense (ops.Dense or an "
                            f"array), got {type(A.function.A).__name__}")
        if A.function.b.ndim != 1:
            raise ValueError(f"WorkingSet needs one right-hand side b, got b of shape "
                             f"{tuple(A.function.b.shape)}")
        if not (isinstance(B, Subdifferential) and B.function.separable):
            what = type(B.function).__name__ if isinstance(B, Subdifferential) else type(B).__name__
            raise TypeError("WorkingSet needs B = ops.Subdifferential(g) of a separable g "
                            f"(L1, ElasticNet, NonNegative), got {what}")

    def prepare(self, problem):
        self.check_problem(problem)
        limit = self.step_limit(1.0, 1.0)
        if self.step > limit * (1 + 1e-12):
            warnings.warn(
                f"WorkingSet's relative step {self.step:.4g} (the inner step is "
                f"step/L_W) is not below the inner method's bound {limit:.4g}/L_W: the "
                "restricted iterations may diverge", RuntimeWarning, stacklevel=2)
        f = problem.A.function
        return _Prepared(problem, f.A.matrix, f.b, problem.B)

    def init(self, prepared, x0):
        if is_tuple(x0) or x0.ndim != 1 or x0.shape[0] != prepared.A.shape[1]:
            shape = tuple(x0[0].shape) if is_tuple(x0) else tuple(x0.shape)
            raise ValueError(
                f"WorkingSet needs an unbatched x0 of shape ({prepared.A.shape[1]},), got "
                f"{shape}: the working set decides shapes on the host, one set per solve")
        A, b = prepared.A, prepared.b
        xp = namespace(A)
        support = np.flatnonzero(to_numpy(x0) != 0)
        residual = xp.matmul(A, x0) - b if support.size else -b
        gradient = xp.matmul(residual, A)
        # The first check's step s/ρ, with the Rayleigh quotient ρ = ‖Ag‖²/‖g‖² <= L.
        image = xp.matmul(A, gradient)
        sq_g, sq_image = (float(to_numpy(xp.vecdot(v, v))) for v in (gradient, image))
        step0 = self.step * sq_g / sq_image if sq_image > 0 else self.step
        memory = WorkingSetMemory(support.astype(np.int64), None, None, None, step0,
                                  math.inf, 0, 0)
        return self._full_check(prepared, x0, gradient, memory)

    def update(self, prepared, state):
        mem: WorkingSetMemory = state.aux
        if mem.inner is None:  # W empty: x = 0 satisfied the full check
            return state
        inner = mem.method.update(mem.prepared, mem.inner)
        steps = mem.steps + 1
        mem = mem._replace(inner=inner, steps=steps)
        if steps % self.check:
            return state._replace(aux=mem)
        inner = mem.method.complete(mem.prepared, inner)
        x_W = mem.method.solution(inner)
        xp = namespace(x_W)
        r = x_W - prepared.B.resolvent(mem.step)(x_W - mem.step * (mem.gram @ x_W - mem.c))
        norm = float(to_numpy(xp.linalg.vector_norm(r)))
        if norm > mem.target and norm < mem.last:
            return state._replace(aux=mem._replace(inner=inner, last=norm))
        x = _scatter(x_W, mem.columns, prepared.A.shape[1])
        # Aᵀ(Ax - b) with Ax = A_W x_W: one pass over A.
        gradient = xp.matmul(xp.matmul(mem.A_W, x_W) - prepared.b, prepared.A)
        return self._full_check(prepared, x, gradient, mem._replace(inner=inner))

    def _full_check(self, prepared, x, gradient, mem: WorkingSetMemory) -> State:
        """The full residual at ``x`` (``gradient`` = ∇f(x)), the violators
        appended to ``W``, and the round that follows."""
        step = mem.step
        delta = x - prepared.B.resolvent(step)(x - step * gradient)
        magnitude = np.abs(to_numpy(delta))
        norm = float(np.sqrt(np.sum(magnitude * magnitude)))
        outside = np.ones(magnitude.shape[0], dtype=bool)
        columns = mem.columns
        outside[columns] = False
        violators = np.flatnonzero(outside & (magnitude > 0))
        support = int(np.count_nonzero(to_numpy(x)))
        if violators.size:
            count = min(violators.size, max(self.size, support))
            worst = violators[np.argsort(-magnitude[violators], kind="stable")[:count]]
            columns = np.concatenate([columns, worst])  # W in the order it grew
        target = max(self.ratio * norm, 16 * float(np.finfo(to_numpy(delta).dtype).eps)
                     * float(np.sqrt(np.sum(to_numpy(x) ** 2))))
        mem = mem._replace(target=target, steps=0, checks=mem.checks + 1, last=math.inf)
        if columns.size and (mem.inner is None or columns.size > mem.columns.size):
            mem = self._round(prepared, x, columns, mem)
        return State(z=x, x=x, delta=delta, aux=mem)

    def _round(self, prepared, x, columns, mem: WorkingSetMemory) -> WorkingSetMemory:
        """The restricted problem on ``columns`` (the previous ``W`` followed
        by the new coordinates), its inner method and state, warm-started from
        ``x``; :math:`A_W`, :math:`G_W` and :math:`c_W` are extended by the new
        columns' blocks."""
        A, b = prepared.A, prepared.b
        xp = namespace(A)
        index = xp.asarray(columns, device=device(A))
        old = 0 if mem.A_W is None else mem.columns.size
        A_new = xp.take(A, index[old:], axis=1)
        block = xp.matmul(xp.matrix_transpose(A_new), A_new)
        c_new = xp.matmul(b, A_new)
        if old:
            cross = xp.matmul(xp.matrix_transpose(mem.A_W), A_new)
            gram = xp.concat([xp.concat([mem.gram, cross], axis=1),
                              xp.concat([xp.matrix_transpose(cross), block], axis=1)], axis=0)
            A_W = xp.concat([mem.A_W, A_new], axis=1)
            c = xp.concat([mem.c, c_new])
        else:
            gram, A_W, c = block, A_new, c_new
        lipschitz = float(np.max(np.linalg.eigvalsh(to_numpy(gram).astype(np.float64))))
        if not lipschitz > 0:  # only zero columns: any step, the prox alone decides
            lipschitz = 1.0
        step = self.step / lipschitz
        method = dataclasses.replace(self.method, step=step)
        smooth = LinearMonotone(Dense(gram), -c, lipschitz=lipschitz, cocoercivity=1 / lipschitz)
        inner_problem = Inclusion(smooth, prepared.B)
        inner_prepared = method.prepare(inner_problem)
        inner = method.init(inner_prepared, xp.take(x, index))
        return mem._replace(columns=columns, method=method, prepared=inner_prepared,
                            inner=inner, step=step, A_W=A_W, gram=gram, c=c)

    def solution(self, state):
        return state.x

    # -- theory ------------------------------------------------------------------------

    def step_limit(self, m, L):
        """The inner method's limit on the relative step, in units of
        :math:`1/L_W`: its limit for a gradient with :math:`m = L = 1` (2 for
        forward–backward, 1 for FISTA), whatever ``m`` and ``L``."""
        check_constants(m, L)
        return self.method.step_limit(1.0, 1.0)

    def optimal_step(self, m, L):
        """1: :math:`\\alpha_W = 1/L_W`, the step of FISTA's bound."""
        check_constants(m, L)
        return 1.0

    def divergence_hint(self, problem, m, L):
        return self.method.divergence_hint(problem, None, None)


def _scatter(x_W, columns, n):
    """The ``n``-vector with ``x_W`` at ``columns`` and zeros elsewhere, by one
    gather (the array API has no scatter): position ``k`` holds a zero."""
    xp = namespace(x_W)
    where = np.full(n, columns.size, dtype=np.int64)
    where[columns] = np.arange(columns.size)
    padded = xp.concat([x_W, xp.zeros(1, dtype=x_W.dtype, device=device(x_W))])
    return xp.take(padded, xp.asarray(where, device=device(x_W)))
