r"""Safeguarded type-II Anderson acceleration of a fixed-point splitting method.

The wrapped method's step is a map :math:`T` on its governing variable ``z``
(forward–backward's ``x``, Peaceman–Rachford's and Douglas–Rachford's
``u``); Anderson acceleration extrapolates from the last few evaluations of
the residual :math:`g(z) = T(z) - z`, and a safeguard falls back to the plain
step whenever an extrapolated point does not reduce the residual enough.
Every iteration applies :math:`T` exactly once.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .._backend import device, namespace
from .._validate import check_positive, check_positive_int, check_real
from .._vectors import dtype_of, first_array, is_tuple
from ._base import SplittingMethod, State

__all__ = ["Anderson", "AndersonMemory"]


class _Prepared(NamedTuple):
    inner: Any  # the wrapped method's prepare(problem)
    problem: Any  # for the batch axes of x0


class _Layout(NamedTuple):
    """How a (tuple) governing variable maps to one vector per sample."""

    batch: tuple
    shapes: tuple  # trailing shape of each block
    sizes: tuple  # entries per sample of each block
    tuple_valued: bool


class AndersonMemory(NamedTuple):
    """What :class:`Anderson` carries in :attr:`State.aux`.

    ``base`` is the wrapped method's state after its plain step from the
    last accepted point :math:`z_b` (its ``z`` is :math:`T(z_b)`, its
    ``delta`` :math:`g_b`); ``current`` the state at the point being
    evaluated (``State.z``).  Per sample: ``Y`` and ``F`` hold the last
    differences of ``g`` and of :math:`T(z) = z + g` (tuples of rows, oldest
    first, each pair divided by the larger norm of its ``z`` and ``g``
    differences, kept in ``scales``); ``gram`` the inner products of the
    ``Y`` rows and ``sq_y`` its diagonal; ``sq_s`` the squared norms of the
    scaled ``z`` differences; ``valid`` marks the rows that count;
    ``g_base`` and ``r_base`` the residual at :math:`z_b` and its norm,
    ``r0`` the first residual norm, ``trial`` whether ``State.z`` is an
    extrapolated point under test, ``accelerated`` the number of accepted
    extrapolations.  ``iteration`` counts the steps (the same for every
    sample); ``layout`` maps the governing variable to one vector per
    sample and ``eye`` is the ``memory × memory`` identity.
    """

    current: State
    base: State | None
    f_base: Any
    g_base: Any
    r_base: Any
    r0: Any
    z_prev: Any
    g_prev: Any
    F: tuple
    Y: tuple
    gram: Any
    sq_y: Any
    scales: Any
    sq_s: Any
    valid: Any
    trial: Any
    accelerated: Any
    iteration: int
    layout: _Layout
    eye: Any


@dataclass(frozen=True, init=False)
class Anderson(SplittingMethod):
    r"""Safeguarded type-II Anderson acceleration of a fixed-point method.

    ``method`` defines :math:`T` (one of its steps) and the residual
    :math:`g(z) = T(z) - z` on its governing variable (flattened per sample,
    tuple blocks concatenated).  From the last accepted point :math:`z_b`,
    with the rows of :math:`S` and :math:`Y` the last ``memory`` differences
    of the evaluated points and of their residuals,

    .. math::

        \gamma = \operatorname*{arg\,min}_\gamma\;
            \|g_b - Y^{\mathsf T}\gamma\|^2
            + \eta\,\bigl(\|S\|_F^2 + \|Y\|_F^2\bigr)\,\|\gamma\|^2,
        \qquad
        z_{\mathrm{AA}} = T(z_b) - (S + Y)^{\mathsf T}\gamma,

    with ``η = regularization`` (the scaled regularization of A2DR, solved per
    sample through the ``memory × memory`` normal equations).  The next
    iteration evaluates :math:`T(z_{\mathrm{AA}})`; the safeguard accepts
    :math:`z_{\mathrm{AA}}` as the new :math:`z_b` when

    .. math::

        \|g(z_{\mathrm{AA}})\| \le \min\Bigl(\rho\,\|g_b\|,\;
            D\,\|g_0\|\,\bigl(n_{\mathrm{AA}}/R + 1\bigr)^{-(1 + \varepsilon)}\Bigr)

    (``ρ = safeguard``, ``D = safeguard_bound``, ``ε = safeguard_decay``,
    ``R = safeguard_scale``, :math:`n_{\mathrm{AA}}` the accepted
    extrapolations so far), and otherwise falls back to the plain step:
    the next point is :math:`T(z_b)`, already computed, and the memory
    restarts.  A plain step needs no test (for nonexpansive :math:`T` it does
    not increase :math:`\|g\|`).  So every iteration applies :math:`T` once,
    to the point it then judges (A2DR's accounting); a rejected
    extrapolation costs one iteration.  The memory also restarts every
    ``restart`` iterations and, per sample, when its Gram matrix (columns
    scaled to unit norm) is ill-conditioned: when the newest difference of
    ``g`` and an older one span a plane whose 2 × 2 Gram matrix has
    reciprocal condition number :math:`(1 - |\cos|)/(1 + |\cos|)` below
    ``rcond`` (a pairwise test, free from the stored inner products).

    The reported residual and solution are those of the plain step from
    :math:`z_b`: ``delta`` is :math:`g_b` (the wrapped method's own residual
    there) and ``x`` the wrapped method's solution estimate after that step,
    so the stopping test, error factors and certificates mean what they mean
    for the plain method.  Batched solves keep their own coefficients,
    safeguard and restarts per sample (``xp.where``; nothing is copied to the
    host inside an iteration).

    Parameters
    ----------
    method : SplittingMethod
        The method to accelerate: one whose step is a fixed map on its
        governing variable (:attr:`~opsplit.SplittingMethod.fixed_point`),
        e.g. :class:`~opsplit.DouglasRachford`.
    memory : int
        Number of past differences kept (``m``).
    regularization : float
        ``η > 0``, relative to :math:`\|S\|_F^2 + \|Y\|_F^2`.
    safeguard : float
        ``ρ > 0``: the residual at an extrapolated point must be at most
        ``ρ`` times the residual at the point it extrapolates from.
    safeguard_bound : float
        ``D > 0`` of the global-convergence bound.
    safeguard_decay : float
        ``ε > 0`` of the global-convergence bound.
    safeguard_scale : int
        ``R ≥ 1`` of the global-convergence bound.
    restart : int or None
        Clear the memory every ``restart`` iterations (``None``: only when
        the safeguard rejects or the memory is ill-conditioned).
    rcond : float
        Restart (keeping the newest difference) when the newest difference
        of ``g`` is this close to parallel to an older one (reciprocal
        condition number of their normalized 2 × 2 Gram matrix; 0: never).
    step : float, optional
        Keyword only: replaces ``method``'s step (``Anderson.step`` is always
        the wrapped method's, so ``dataclasses.replace(acc, step=α)`` works;
        it passes the current step, so give ``step=`` too when replacing
        ``method``).

    Notes
    -----
    With ``ρ ≤ 1`` the accepted residuals never increase, and the bound with
    ``D`` makes the accepted extrapolations' residuals summable, so for an
    averaged :math:`T` (Douglas–Rachford; forward–backward within its step
    limit) the accepted points converge as the plain iteration does (the
    argument of Zhang, O'Donoghue and Boyd 2020 for their safeguard).

    The extra work per iteration is a batched ``m × m`` solve and about
    :math:`4m` passes over vectors of the governing variable's size (inner
    products with the stored rows, the extrapolation); for Douglas–Rachford
    also one resolvent of ``B`` at each extrapolated point (its step needs
    :math:`J_{\alpha B}(u)`).  It pays when :math:`T` costs more than that
    (LASSO: a factorized resolvent); a monDEQ layer's cheap batched step on
    NumPy can cost less.

    References
    ----------
    H. F. Walker and P. Ni, "Anderson acceleration for fixed-point
    iterations", SIAM J. Numer. Anal. 49 (2011).
    J. Zhang, B. O'Donoghue and S. Boyd, "Globally convergent type-I Anderson
    acceleration for nonsmooth fixed-point iterations", SIAM J. Optim. 30
    (2020).
    A. Fu, J. Zhang and S. Boyd, "Anderson accelerated Douglas–Rachford
    splitting", SIAM J. Sci. Comput. 42 (2020).

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((20, 40)); b = rng.standard_normal(20)
    >>> f = ops.Subdifferential(ops.prox.LeastSquares(A, b))      # ½‖Ax − b‖²
    >>> g = ops.Subdifferential(ops.prox.L1(0.1 * np.abs(A.T @ b).max()))
    >>> problem = ops.Inclusion(f, g)
    >>> plain = ops.solve(problem, ops.DouglasRachford(step=1.0), np.zeros(40),
    ...                   tol=1e-10, maxiter=5000)
    >>> fast = ops.solve(problem, ops.Anderson(ops.DouglasRachford(step=1.0), memory=5),
    ...                  np.zeros(40), tol=1e-10, maxiter=5000)
    >>> fast.success, fast.iterations < plain.iterations, np.allclose(fast.x, plain.x)
    (True, True, True)
    """

    # the wrapped method's step (see __init__): not part of the configuration
    step: float = field(default=1.0, repr=False, metadata={"derived": True})
    method: SplittingMethod = None  # type: ignore[assignment]
    memory: int = 5
    regularization: float = 1e-8
    safeguard: float = 1.0
    safeguard_bound: float = 1e6
    safeguard_decay: float = 1e-6
    safeguard_scale: int = 100
    restart: int | None = None
    rcond: float = 1e-8

    def __init__(
        self,
        method: SplittingMethod,
        memory: int = 5,
        regularization: float = 1e-8,
        safeguard: float = 1.0,
        safeguard_bound: float = 1e6,
        safeguard_decay: float = 1e-6,
        safeguard_scale: int = 100,
        restart: int | None = None,
        rcond: float = 1e-8,
        *,
        step: float | None = None,
    ):
        if not isinstance(method, SplittingMethod):
            raise TypeError(
                "method must be a SplittingMethod (e.g. ops.DouglasRachford(step=1.0)), "
                f"got {type(method).__name__}"
            )
        if isinstance(method, Anderson):
            raise TypeError("method is already Anderson-accelerated: wrap the plain method")
        if not method.fixed_point:
            raise TypeError(
                f"Anderson accelerates fixed-point methods; {type(method).__name__} carries "
                "memory beyond its governing variable (fixed_point = False)"
            )
        if step is not None:
            step = check_positive(step, "step")
            if step != method.step:
                method = dataclasses.replace(method, step=step)
        if restart is not None:
            restart = check_positive_int(restart, "restart")
        values = {
            "step": method.step,
            "method": method,
            "memory": check_positive_int(memory, "memory"),
            "regularization": check_positive(regularization, "regularization"),
            "safeguard": check_positive(safeguard, "safeguard"),
            "safeguard_bound": check_positive(safeguard_bound, "safeguard_bound"),
            "safeguard_decay": check_positive(safeguard_decay, "safeguard_decay"),
            "safeguard_scale": check_positive_int(safeguard_scale, "safeguard_scale"),
            "restart": restart,
            "rcond": check_real(rcond, "rcond", minimum=0),
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)

    # -- what the wrapped method offers ------------------------------------------

    @property
    def problem_types(self):
        return self.method.problem_types

    @property
    def requires(self):
        return self.method.requires

    @property
    def applies_A(self):
        return self.method.applies_A

    @property
    def step_limit_formula(self):
        return self.method.step_limit_formula

    @property
    def contracts(self):
        return self.method.contracts

    def check_problem(self, problem) -> None:
        self.method.check_problem(problem)

    # -- the iteration -----------------------------------------------------------

    def prepare(self, problem):
        return _Prepared(self.method.prepare(problem), problem)

    def init(self, prepared, x0):
        if not isinstance(prepared, _Prepared):
            raise TypeError("prepared must be this Anderson's prepare(problem), got "
                            f"{type(prepared).__name__}")
        inner = self.method.state_at(prepared.inner, x0)
        layout = _layout(x0, prepared.problem.batch_ndim(x0))
        xp = namespace(first_array(x0))
        dtype, dev = dtype_of(x0), device(first_array(x0))
        n = sum(layout.sizes)
        batch, m = layout.batch, self.memory
        zeros = xp.zeros((*batch, n), dtype=dtype, device=dev)
        ones_b = xp.ones(batch, dtype=dtype, device=dev)
        false_b = xp.zeros(batch, dtype=xp.bool, device=dev)
        memory = AndersonMemory(
            current=inner,
            base=None,
            f_base=zeros,
            g_base=zeros,
            r_base=ones_b,
            r0=ones_b,
            z_prev=zeros,
            g_prev=zeros,
            F=(zeros,) * m,
            Y=(zeros,) * m,
            gram=xp.zeros((*batch, m, m), dtype=dtype, device=dev),
            sq_y=xp.zeros((*batch, m), dtype=dtype, device=dev),
            scales=xp.ones((*batch, m), dtype=dtype, device=dev),
            sq_s=xp.zeros((*batch, m), dtype=dtype, device=dev),
            valid=xp.zeros((*batch, m), dtype=xp.bool, device=dev),
            trial=false_b,
            accelerated=0.0 * ones_b,
            iteration=0,
            layout=layout,
            eye=xp.eye(m, dtype=dtype, device=dev),
        )
        return State(z=x0, x=inner.x, aux=memory)

    def update(self, prepared, state):
        mem: AndersonMemory = state.aux
        layout = mem.layout
        xp = namespace(first_array(state.z))
        stepped = self.method.update(prepared.inner, mem.current)  # the one T per iteration
        z = _flatten(xp, state.z, layout)
        f = _flatten(xp, stepped.z, layout)
        g = f - z
        if stepped.delta is None:
            stepped = stepped._replace(delta=_unflatten(xp, g, layout))
        r = xp.sqrt(xp.vecdot(g, g))
        first = mem.iteration == 0

        # Safeguard: an extrapolated point is accepted only when its residual
        # is small enough; a plain step always is.
        r0 = r if first else mem.r0
        bound = xp.minimum(
            self.safeguard * mem.r_base,
            self.safeguard_bound * r0
            * (mem.accelerated / self.safeguard_scale + 1.0) ** (-(1.0 + self.safeguard_decay)),
        )
        passed = r <= bound  # False for NaN
        accept = xp.logical_not(mem.trial) | passed
        rejected = mem.trial & xp.logical_not(passed)
        accelerated = mem.accelerated + xp.astype(mem.trial & passed, z.dtype)
        base = stepped if first else _select_state(accept, stepped, mem.base)
        f_base = xp.where(accept[..., None], f, mem.f_base)
        g_base = xp.where(accept[..., None], g, mem.g_base)
        r_base = xp.where(accept, r, mem.r_base)

        # Memory: the newest differences enter as the last row, divided by the
        # larger of their norms (so that the normal equations of tiny float32
        # differences do not underflow), the scale kept apart; rows with NaN or
        # Inf never count.  Rows are separate arrays (a push copies nothing),
        # kept as Δy and Δf = Δz + Δy (what the extrapolation combines), and
        # the Gram matrix of the Δy rows is updated by the new row's products.
        F, Y, gram, sq_y = mem.F, mem.Y, mem.gram, mem.sq_y
        scales, sq_s, valid = mem.scales, mem.sq_s, mem.valid
        if not first:
            dz, dg = z - mem.z_prev, g - mem.g_prev
            sq_dz, sq_dg = xp.vecdot(dz, dz), xp.vecdot(dg, dg)
            big = xp.sqrt(xp.maximum(sq_dz, sq_dg))
            fits = xp.isfinite(big) & (big > 0)
            big = xp.where(fits, big, 1.0)
            y_row = xp.where(fits[..., None], dg / big[..., None], 0.0)
            f_row = xp.where(fits[..., None], (dz + dg) / big[..., None], 0.0)
            F, Y = (*F[1:], f_row), (*Y[1:], y_row)
            dots = xp.stack([xp.vecdot(y, y_row) for y in Y], axis=-1)
            gram = xp.concat([xp.concat([gram[..., 1:, 1:], dots[..., :-1, None]], axis=-1),
                              dots[..., None, :]], axis=-2)
            sq_y = _push(xp, sq_y, dots[..., -1])
            scales = _push(xp, scales, big)
            sq_s = _push(xp, sq_s, xp.where(fits, sq_dz / (big * big), 0.0))
            valid = _push(xp, valid, fits)
        # Restarts: after a rejection, periodically, and (in _coefficients) when
        # the memory is ill-conditioned.
        valid = valid & xp.logical_not(rejected)[..., None]
        if self.restart is not None and mem.iteration % self.restart == 0:
            valid = valid & xp.zeros_like(valid)
        rhs = xp.stack([xp.vecdot(y, g_base) for y in Y], axis=-1)
        coef, valid = self._coefficients(xp, gram, sq_y, rhs, scales, sq_s, valid, mem.eye)
        extrapolated = f_base - xp.matmul(coef[..., None, :], xp.stack(F, axis=-2))[..., 0, :]
        trial = accept & xp.any(valid, axis=-1) & xp.all(xp.isfinite(coef), axis=-1)
        z_next = xp.where(trial[..., None], extrapolated, f_base)

        z_out = _unflatten(xp, z_next, layout)
        memory = AndersonMemory(
            current=self.method.state_at(prepared.inner, z_out),
            base=base,
            f_base=f_base,
            g_base=g_base,
            r_base=r_base,
            r0=r0,
            z_prev=z,
            g_prev=g,
            F=F,
            Y=Y,
            gram=gram,
            sq_y=sq_y,
            scales=scales,
            sq_s=sq_s,
            valid=valid,
            trial=trial,
            accelerated=accelerated,
            iteration=mem.iteration + 1,
            layout=layout,
            eye=mem.eye,
        )
        return State(z=z_out, x=base.x, delta=base.delta, w=base.w, aux=memory)

    def _coefficients(self, xp, gram, diag, rhs, scales, sq_s, valid, eye):
        r"""Per-sample coefficients of the stored (scaled) rows, ``c_j γ_j``, and
        ``valid`` after the ill-conditioning restart.

        With the rows stored as :math:`s_j/c_j`, :math:`y_j/c_j`, the normal
        equations are formed relative to the largest valid scale
        :math:`c_{\max}` (weights :math:`w_j = c_j/c_{\max} \le 1`):
        :math:`(W\hat G W + \eta\,\sigma I)\gamma = W \hat Y g / c_{\max}`,
        :math:`\sigma = \sum_j w_j^2(\|\hat s_j\|^2 + \|\hat y_j\|^2)`,
        which is A2DR's scaled problem divided by :math:`c_{\max}^2`.
        """
        m = self.memory
        if self.rcond > 0 and m > 1:
            # Pairwise test of the newest row against each older one, from the
            # stored inner products: the 2 × 2 Gram matrix of the unit rows has
            # eigenvalues 1 ± |cos|.
            cross = gram[..., -1, :-1]
            norms = xp.sqrt(diag[..., :-1] * diag[..., -1:])
            cos = xp.where(norms > 0, xp.abs(cross) / xp.where(norms > 0, norms, 1.0), 0.0)
            pair = valid[..., :-1] & valid[..., -1:]
            ill = xp.any(pair & ((1.0 - cos) < self.rcond * (1.0 + cos)), axis=-1)
            newest = xp.astype(eye[-1, :], xp.bool)
            valid = xp.where(ill[..., None], valid & newest, valid)
        top = xp.max(xp.where(valid, scales, 0.0), axis=-1)
        top = xp.where(top > 0, top, 1.0)
        w = xp.where(valid, scales / top[..., None], 0.0)
        sigma = xp.sum(w * w * (sq_s + diag), axis=-1)
        reg = self.regularization * xp.where(sigma > 0, sigma, 1.0)
        both = valid[..., :, None] & valid[..., None, :]
        normal = (xp.where(both, gram * w[..., :, None] * w[..., None, :], 0.0)
                  + eye * xp.where(valid, reg[..., None], 1.0)[..., None, :])
        rhs = w * rhs / top[..., None]
        gamma = xp.linalg.solve(normal, rhs[..., None])[..., 0]
        return xp.where(valid, gamma * scales, 0.0), valid

    def complete(self, prepared, state):
        mem: AndersonMemory = state.aux
        if mem.base is None:
            return state
        base = self.method.complete(prepared.inner, mem.base)
        return state._replace(x=base.x, aux=mem._replace(base=base))

    def solution(self, state):
        mem = state.aux
        return state.x if mem.base is None else self.method.solution(mem.base)

    def solution_residual(self, prepared, state):
        mem = state.aux
        if mem.base is None:
            return None
        return self.method.solution_residual(prepared.inner, mem.base)

    def needs_solution_residual(self, margin):
        return self.method.needs_solution_residual(margin)

    # -- theory: the plain method's, at its accepted points ----------------------

    def step_limit(self, m, L):
        """The wrapped method's: the safeguard keeps its guarantee."""
        return self.method.step_limit(m, L)

    def optimal_step(self, m, L):
        return self.method.optimal_step(m, L)

    def contraction(self, m, L):
        """The wrapped method's factor: a bound on the accepted residuals'
        decrease for plain steps (extrapolations do at least as well)."""
        return self.method.contraction(m, L)

    def error_factor(self, margin, lipschitz, monotonicity=0.0):
        """The wrapped method's: ``delta`` and ``x`` are those of its plain
        step from the last accepted point."""
        return self.method.error_factor(margin, lipschitz, monotonicity)

    def inclusion_bound(self, problem, state, margin, batch_ndim):
        if state is None or state.aux is None or state.aux.base is None:
            return None
        return self.method.inclusion_bound(problem, state.aux.base, margin, batch_ndim)

    def divergence_hint(self, problem, m, L):
        return self.method.divergence_hint(problem, m, L)

    def stall_hint(self, margin):
        return self.method.stall_hint(margin)


# -- per-sample vectors ---------------------------------------------------------------


def _layout(x0, batch_ndim: int) -> _Layout:
    parts = x0 if is_tuple(x0) else (x0,)
    batch = tuple(parts[0].shape[:batch_ndim])
    shapes = tuple(tuple(p.shape[batch_ndim:]) for p in parts)
    return _Layout(batch, shapes, tuple(math.prod(s) for s in shapes), is_tuple(x0))


def _flatten(xp, z, layout: _Layout):
    """One vector per sample, shape ``(*batch, n)``."""
    parts = z if layout.tuple_valued else (z,)
    flat = [xp.reshape(p, (*layout.batch, size)) for p, size in zip(parts, layout.sizes)]
    return flat[0] if len(flat) == 1 else xp.concat(flat, axis=-1)


def _unflatten(xp, v, layout: _Layout):
    if not layout.tuple_valued:
        return xp.reshape(v, (*layout.batch, *layout.shapes[0]))
    parts, start = [], 0
    for shape, size in zip(layout.shapes, layout.sizes):
        parts.append(xp.reshape(v[..., start:start + size], (*layout.batch, *shape)))
        start += size
    return tuple(parts) if layout.tuple_valued else parts[0]


def _push(xp, values, new):
    """Drop the oldest entry (first on the last axis), append ``new``."""
    return xp.concat([values[..., 1:], new[..., None]], axis=-1)


def _where(mask, a, b):
    """``a`` where the per-sample ``mask`` holds, else ``b`` (arrays, tuples;
    ``None`` when either is)."""
    if a is None or b is None:
        return None
    if isinstance(a, tuple):
        return tuple(_where(mask, p, q) for p, q in zip(a, b))
    xp = namespace(a)
    return xp.where(xp.reshape(mask, (*mask.shape, *(1,) * (a.ndim - mask.ndim))), a, b)


def _select_state(mask, new: State, old: State) -> State:
    z = _where(mask, new.z, old.z)
    same = new.x is new.z and old.x is old.z  # forward-backward: x is z
    return State(
        z=z,
        x=z if same else _where(mask, new.x, old.x),
        delta=_where(mask, new.delta, old.delta),
        w=_where(mask, new.w, old.w),
        aux=new.aux,
    )
