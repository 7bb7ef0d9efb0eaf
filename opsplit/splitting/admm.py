r"""The alternating direction method of multipliers (ADMM), scaled form.

For :math:`\min f(x) + g(z)` s.t. :math:`Ax + Bz = c`
(:class:`~opsplit.Constrained`) and for :math:`0 \in A(x) + B(x)`
(:class:`~opsplit.Inclusion`, the consensus form ``x = z``), where ADMM is
Douglas–Rachford: on the dual problem (Gabay 1983) and, for ``x = z``,
iterate by iterate on the primal one too: with :math:`v = z + u`,
ADMM's ``z`` is Douglas–Rachford's :math:`x = J_{\alpha B}(v)` at the same
step :math:`\alpha = 1/\rho` and relaxation.  The theory hooks are
therefore those of :func:`~opsplit.diagnostics.dr_contraction`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

from .._backend import namespace, to_numpy
from .._validate import check_positive, check_positive_int, check_real
from .._vectors import add, axpy, batch_sq_norms, first_array, lincomb, scale, sub, vmap
from ..operators._base import ScaledOperator
from ..operators.basic import Identity
from ..operators.lanczos import estimate_norm
from ..problems import Composite, Constrained, Inclusion
from ..prox.monotone import Subdifferential
from ._base import SplittingMethod, State, check_constants, resolvent
from ._rachford import dr_contraction

__all__ = ["ADMM"]


class _Block(NamedTuple):
    r"""One subproblem :math:`w^{+} = \arg\min_w h(w) + (\rho/2)\|K w + v\|^2`
    at one ``ρ``: ``solve(w, Kw, v)`` (``w``, ``Kw``: the previous iterate and
    its image, used only when linearized), ``apply(w) = K w``,
    ``adjoint(y) = Kᵀ y``, and ``weight``: :math:`\sqrt{\mu}` of a linearized
    block (its movement :math:`\sqrt{\mu}(w^{+} - w)` enters the residual),
    ``None`` when exact."""

    solve: Callable
    apply: Callable
    adjoint: Callable
    weight: float | None


class _Coupling(NamedTuple):
    """How a variable enters the constraint: ``K = beta·I`` (``K`` is ``None``),
    or a general ``K`` with ``mu`` :math:`\\ge \\|K\\|^2` (linearized)."""

    K: Any
    beta: float | None
    mu: float | None


class _Form(NamedTuple):
    """A problem in ADMM's form, independent of ``ρ``."""

    resolvent_f: Callable  # step -> J_{step ∂f}
    resolvent_g: Callable
    A: _Coupling
    B: _Coupling
    c: Any
    returns_z: bool  # the solution is z (an Inclusion) rather than x


class _Prepared(NamedTuple):
    form: _Form
    rho: float
    blocks: tuple  # (_Block of x, _Block of z) at rho


class _Aux(NamedTuple):
    x: Any
    Ax: Any
    z: Any
    rho: float
    blocks: tuple
    iteration: int


def _identity_multiple(K, default: float) -> float | None:
    """``β`` when ``K`` is ``β·I`` by its type (``default`` for ``None``), else ``None``."""
    if K is None:
        return default
    if isinstance(K, Identity):
        return 1.0
    if isinstance(K, ScaledOperator) and isinstance(K.op, Identity):
        return K.scalar
    return None


def _coupling(K, default, norm, role: str, variable: str) -> _Coupling:
    """``K``'s coupling: a multiple of the identity, else linearized."""
    beta = _identity_multiple(K, default)
    if beta is None:
        return _Coupling(K, None, _norm_squared(K, norm, role, variable))
    if beta == 0.0:
        raise ValueError(f"{role} is zero: the constraint does not involve {variable}")
    return _Coupling(None, beta, None)


def _norm_squared(K, given, role: str, variable: str) -> float:
    """``‖K‖²``: the user's bound, else exact from ``K``'s structure (or its dense
    matrix when small), else a Lanczos estimate (its upper end)."""
    if given is None:
        try:
            given = estimate_norm(K, tol=1e-6, maxiter=100).upper
        except ValueError:  # K holds no array to take a dtype and device from
            raise ValueError(
                f"ADMM linearizes the {variable}-update for this {role} and needs a bound on "
                f"‖{role}‖ ({type(K).__name__} holds no array to estimate it with): pose "
                f"ops.Constrained(..., norm_{role}=ops.diagnostics.opnorm({role}, like=x0))"
            ) from None
    if not given > 0:
        raise ValueError(f"{role} is zero: the constraint does not involve {variable}")
    return float(given) ** 2


def _form(problem) -> _Form:
    if isinstance(problem, Inclusion):
        A_op, B_op = problem.A, problem.B
        return _Form(lambda s: resolvent(A_op, s, "A"), lambda s: resolvent(B_op, s, "B"),
                     _Coupling(None, 1.0, None), _Coupling(None, -1.0, None), None,
                     returns_z=True)
    if isinstance(problem, Composite):  # min f(x) + g(Kx): A = K, B = -I, c = 0
        A = _coupling(problem.K, 1.0, None, "A", "x")
        B = _coupling(None, -1.0, None, "B", "z")
        c = None
    else:
        A = _coupling(problem.A, 1.0, problem.norm_A, "A", "x")
        B = _coupling(problem.B, -1.0, problem.norm_B, "B", "z")
        c = problem.c
    return _Form(Subdifferential(problem.f).resolvent, Subdifferential(problem.g).resolvent,
                 A, B, c, returns_z=False)


def _block(resolvent_of, coupling: _Coupling, rho: float) -> _Block:
    """The subproblem map of ``h`` (through ``resolvent_of``) at ``ρ``.

    Exact for :math:`K = \\beta I`:
    :math:`w^{+} = J_{\\partial h/(\\rho\\beta^2)}(-v/\\beta)`; linearized otherwise:
    :math:`w^{+} = J_{\\partial h/(\\rho\\mu)}(w - K^T(Kw + v)/\\mu)`.
    """
    K, beta = coupling.K, coupling.beta
    if beta is not None:  # K = βI: -Kᵀv/ν = -v/β
        J = resolvent_of(1.0 / (rho * beta * beta))
        if beta == 1.0:
            return _Block(lambda w, Kw, v: J(scale(-1.0, v)), _same, _same, None)
        if beta == -1.0:
            return _Block(lambda w, Kw, v: J(v), _negated, _negated, None)
        return _Block(lambda w, Kw, v: J(scale(-1.0 / beta, v)),
                      lambda w: scale(beta, w), lambda w: scale(beta, w), None)
    mu = coupling.mu
    J, step = resolvent_of(1.0 / (rho * mu)), 1.0 / mu

    def solve(w, Kw, v):
        return J(axpy(-step, K.rmatvec(add(Kw, v)), w))

    return _Block(solve, K.matvec, K.rmatvec, math.sqrt(mu))


def _same(w):
    return w


def _negated(w):
    return scale(-1.0, w)


def _blocks(form: _Form, rho: float) -> tuple:
    return _block(form.resolvent_f, form.A, rho), _block(form.resolvent_g, form.B, rho)


def _rebuilt(form: _Form, rho: float) -> tuple:
    """The maps for a new ``ρ`` chosen by residual balancing."""
    try:
        return _blocks(form, rho)
    except ValueError as exc:  # e.g. an operator precomputed for one step only
        raise ValueError(
            f"residual balancing moved ρ to {rho:.4g} (step {1.0 / rho:.4g}), where the "
            f"subproblem maps cannot be rebuilt: {exc}; use ADMM(balance=False) here"
        ) from exc


@dataclass(frozen=True)
class ADMM(SplittingMethod):
    r"""ADMM in scaled form, with over-relaxation and optional residual balancing.

    For :math:`\min f(x) + g(z)` s.t. :math:`Ax + Bz = c`
    (:class:`~opsplit.Constrained`), with :math:`\rho = 1/\text{step}`, the
    scaled dual ``u = y/ρ`` and ``λ = relaxation`` (Boyd et al. 2011, §3.1.1
    and §3.4.3):

    .. math::

        x^{+} &= \arg\min_x\; f(x) + \tfrac{\rho}{2}\|A x + B z - c + u\|^2, \\
        h &= \lambda A x^{+} - (1 - \lambda)(B z - c), \\
        z^{+} &= \arg\min_z\; g(z) + \tfrac{\rho}{2}\|h + B z - c + u\|^2, \\
        u^{+} &= u + h + B z^{+} - c .

    Subproblems: when ``A`` is a multiple :math:`\beta I` of the identity
    (omitted, :class:`~opsplit.Identity`, or a scalar times it) the x-update
    is exactly a prox, :math:`x^{+} = \operatorname{prox}_{f/(\rho\beta^2)}
    (-(Bz - c + u)/\beta)`, computed by ``Subdifferential(f).resolvent``
    once per ``ρ`` (a factorizing prox such as least squares factorizes in
    :meth:`prepare`, not per iteration).  Otherwise it is the *linearized*
    step (Parikh and Boyd 2014, §4.4.2) with :math:`\mu \ge \|A\|^2`
    (``norm_A`` of the problem, or exact from ``A``'s structure):

    .. math::

        x^{+} = \operatorname{prox}_{f/(\rho\mu)}\bigl(x - \tfrac{1}{\mu}
        A^T(A x + B z - c + u)\bigr),

    a semi-proximal ADMM (Fazel, Pong, Sun and Tseng 2013), convergent for
    every :math:`\mu \ge \|A\|^2`, and exact when :math:`A^T A = \mu I`
    (a scaled isometry, such as the stacked identities of consensus ADMM,
    Boyd §7.1: the step is then the prox at :math:`-A^T(Bz - c + u)/\mu`).
    The z-update is treated the same way (exact for :math:`B = \beta I`,
    default :math:`-I`).  ``μ`` is ``norm_A²`` when the problem gives
    ``norm_A``, else exact from ``A``'s structure (or its dense matrix when
    small), else the upper end of a Lanczos estimate, computed once in
    :meth:`prepare`.

    On an :class:`~opsplit.Inclusion` :math:`0 \in A(x) + B(x)` it runs the
    consensus form (``A = I``, ``B = -I``, ``c = 0``) with the resolvents
    :math:`J_{\alpha A}`, :math:`J_{\alpha B}` in place of the proxes of
    ``f`` and ``g``, and returns ``z``: this is Douglas–Rachford with
    :math:`v = z + u`, ``z`` its :math:`x = J_{\alpha B}(v)`, at the same
    step and relaxation (Gabay 1983; Eckstein and Bertsekas 1992).  On a
    :class:`~opsplit.Constrained` problem it returns ``x``.

    The start: ``x0`` is ``x``, then a half iteration with ``u = 0`` gives
    :math:`z^0` (the z-update) and :math:`u^0 = A x^0 + B z^0 - c`.

    Stopping: ADMM is a fixed-point iteration on :math:`(u, Bz)` (the
    state's governing variable ``z``; ``x`` follows from it), and its
    residual is the change of that variable,

    .. math::

        \delta = \bigl(u^{+} - u,\; B(z^{+} - z)\bigr)
        \quad(\text{with } u^{+} - u = r^{+} = Ax^{+} + Bz^{+} - c
        \text{ when } \lambda = 1),

    with :math:`B(z^{+} - z)` replaced by :math:`\sqrt{\nu}(z^{+} - z)`
    (``ν`` the constant of ``B``) for a linearized z-update, and
    :math:`\sqrt{\mu}(x^{+} - x)` appended for a linearized x-update (whose
    previous ``x`` and ``z`` are part of the fixed point too).
    :math:`\|\delta\|` vanishes iff both of Boyd's residuals do: ``r`` and
    :math:`s = \rho A^T B(z^{+} - z)` (:math:`\|s\| \le \rho\|A\|\,\|B(z^{+}
    - z)\|`); its square is the decrease of Boyd's Lyapunov function
    :math:`\rho\|u - u^*\|^2 + \rho\|B(z - z^*)\|^2` per iteration.
    :func:`~opsplit.solve`'s ``tol`` applies per sample to

    .. math::

        \frac{\|\delta\|}{\|(u, Bz)\|} \quad(\texttt{relative=True}),
        \qquad \|\delta\| \quad(\texttt{relative=False}),

    both parts living in the constraint space (``u`` is the dual scaled by
    ``1/ρ``).  The scale is :math:`\|(u, Bz)\|` rather than :math:`\|z\|`,
    which may vanish at the solution (``z = 0`` in
    :math:`\min \|x\|_1` s.t. :math:`Mx - z = b`, ``z = 0``).  Boyd's test :math:`\|r\| \le
    \sqrt{p}\,\epsilon_{abs} + \epsilon_{rel}\max(\|Ax\|, \|Bz\|, \|c\|)`,
    :math:`\|s\| \le \sqrt{n}\,\epsilon_{abs} + \epsilon_{rel}\|\rho A^T u\|`
    needs two tolerances and two scales and does not fit the driver's single
    residual: the relative test plays the role of :math:`\epsilon_{rel}`,
    the absolute one that of :math:`\epsilon_{abs}`.

    Residual balancing (``balance=True``, Boyd §3.4.1): every
    ``balance_every`` iterations up to iteration ``balance_until`` (after
    which ``ρ`` stays fixed, so that the convergence theory applies), with
    :math:`\|r\|` and :math:`\|s\|` summed over the batch,

    .. math::

        \rho^{+} = \tau\rho \text{ if } \|r\| > \mu_b\|s\|, \quad
        \rho^{+} = \rho/\tau \text{ if } \|s\| > \mu_b\|r\|, \quad
        u^{+} \leftarrow u^{+} \rho/\rho^{+},

    with ``μ_b = balance_mu``, ``τ = balance_tau``.  A new ``ρ`` rebuilds
    both subproblem maps, so a factorizing prox (least squares)
    refactorizes at each change: ``balance_every`` bounds how often that
    can happen (every iteration only if you ask for it), and each decision
    copies two numbers to the host (one synchronization every
    ``balance_every`` iterations on a GPU).  ``ρ`` is shared by the samples
    of a batch: opsplit's proximal maps take one step per call, so
    per-sample ``ρ`` would need per-sample proxes (and factorizations).

    Parameters
    ----------
    step : float
        ``α = 1/ρ > 0``; every step converges (f, g closed convex proper
        and a saddle point of the Lagrangian exists).
    relaxation : float
        ``λ ∈ (0, 2)``; 1 is plain ADMM, 1.5–1.8 often faster.
    balance : bool
        Adapt ``ρ`` by residual balancing.
    balance_every : int
        Iterations between two balancing decisions.
    balance_mu : float
        ``μ_b > 1``: the residual ratio that triggers a change.
    balance_tau : float
        ``τ > 1``: the factor by which ``ρ`` changes.
    balance_until : int
        Last iteration at which ``ρ`` may change.

    References
    ----------
    S. Boyd, N. Parikh, E. Chu, B. Peleato and J. Eckstein, "Distributed
    optimization and statistical learning via the alternating direction
    method of multipliers", Found. Trends Mach. Learn. 3 (2011), §3.
    D. Gabay, "Applications of the method of multipliers to variational
    inequalities", in Augmented Lagrangian Methods, North-Holland (1983).
    N. Parikh and S. Boyd, "Proximal algorithms", Found. Trends Optim. 1
    (2014), §4.4.
    M. Fazel, T. K. Pong, D. Sun and P. Tseng, "Hankel matrix rank
    minimization with applications to system identification and
    realization", SIAM J. Matrix Anal. Appl. 34 (2013), Appendix B.

    Examples
    --------
    Total-variation denoising, :math:`\min \tfrac12\|x - y\|^2 + 0.1\|Dx\|_1`
    (``A = D``, ``B = -I``):

    >>> import numpy as np, opsplit as ops
    >>> y = np.array([0.0, 0.1, 2.0, 2.1])
    >>> D = ops.Dense(np.diff(np.eye(4), axis=0))
    >>> f = ops.prox.Translated(ops.prox.SquaredL2(), y)
    >>> prob = ops.Constrained(f, ops.prox.L1(0.1), A=D)
    >>> res = ops.solve(prob, ops.ADMM(step=1.0), np.zeros(4), tol=1e-10, maxiter=5000)
    >>> np.round(res.x, 6)
    array([0.1, 0.1, 2. , 2. ])
    """

    problem_types: ClassVar[tuple[type, ...]] = (Inclusion, Constrained, Composite)

    relaxation: float = 1.0
    balance: bool = False
    balance_every: int = 10
    balance_mu: float = 10.0
    balance_tau: float = 2.0
    balance_until: int = 1000

    def __post_init__(self):
        super().__post_init__()
        relaxation = check_real(self.relaxation, "relaxation")
        if not 0 < relaxation < 2:
            raise ValueError(f"relaxation must be in (0, 2) for ADMM, got {relaxation}")
        object.__setattr__(self, "relaxation", relaxation)
        if not isinstance(self.balance, bool):
            raise TypeError(f"balance must be True or False, got {self.balance!r}")
        object.__setattr__(self, "balance_every",
                           check_positive_int(self.balance_every, "balance_every"))
        object.__setattr__(self, "balance_until",
                           check_positive_int(self.balance_until, "balance_until"))
        for name in ("balance_mu", "balance_tau"):
            value = check_positive(getattr(self, name), name)
            if not value > 1:
                raise ValueError(f"{name} must be > 1, got {value}")
            object.__setattr__(self, name, value)

    # -- the iteration ---------------------------------------------------------------

    def check_problem(self, problem) -> None:
        super().check_problem(problem)
        if isinstance(problem, Composite) and problem.has_smooth:
            raise TypeError(
                "ADMM takes no smooth term h: move it into f (ADMM applies f's prox) or use "
                "ops.CondatVu"
            )

    def prepare(self, problem):
        self.check_problem(problem)
        form = _form(problem)
        rho = 1.0 / self.step
        return _Prepared(form, rho, _blocks(form, rho))

    def init(self, prepared, x0):
        form, (X, Z) = prepared.form, prepared.blocks
        Ax = X.apply(x0)
        v = self._minus_c(form, Ax)  # A x0 - c, and u = 0
        if Z.weight is None:
            z = Z.solve(None, None, v)
        else:  # linearized from z = 0
            zero = vmap(_zeros_like, Z.adjoint(v))
            z = Z.solve(zero, vmap(_zeros_like, v), v)
        Bz = Z.apply(z)
        u = add(v, Bz)
        aux = _Aux(x0, Ax, z, prepared.rho, prepared.blocks, 0)
        return State(z=(u, Bz), x=z if form.returns_z else x0, aux=aux)

    def update(self, prepared, state):
        form, a = prepared.form, state.aux
        (u, Bz), (X, Z) = state.z, a.blocks
        Bz_c = self._minus_c(form, Bz)  # B z - c
        x = X.solve(a.x, a.Ax, add(Bz_c, u))
        Ax = X.apply(x)
        lam = self.relaxation
        h = Ax if lam == 1.0 else lincomb(lam, Ax, lam - 1.0, Bz_c)
        h_c = self._minus_c(form, h)
        z = Z.solve(a.z, Bz, add(h_c, u))
        Bz_new = Z.apply(z)
        du = add(h_c, Bz_new)  # u⁺ - u
        u_new = add(u, du)
        delta = (du, sub(Bz_new, Bz) if Z.weight is None else scale(Z.weight, sub(z, a.z)))
        if X.weight is not None:
            delta = (*delta, scale(X.weight, sub(x, a.x)))
        rho, blocks, iteration = a.rho, a.blocks, a.iteration + 1
        if (self.balance and iteration % self.balance_every == 0
                and iteration <= self.balance_until):
            new_rho = self._balanced(form, X, rho, Ax, Bz_new, Bz)
            if new_rho != rho:
                u_new = scale(rho / new_rho, u_new)
                rho, blocks = new_rho, _rebuilt(form, new_rho)
        aux = _Aux(x, Ax, z, rho, blocks, iteration)
        return State(z=(u_new, Bz_new), x=z if form.returns_z else x, delta=delta, aux=aux)

    @staticmethod
    def _minus_c(form, v):
        return v if form.c is None else sub(v, form.c)

    def _balanced(self, form, X, rho, Ax, Bz, Bz_old) -> float:
        """Boyd's residual balancing: the new ``ρ`` from ``‖r‖`` and ``‖s‖``
        (one host transfer)."""
        r = add(self._minus_c(form, Ax), Bz)
        s = X.adjoint(sub(Bz, Bz_old))  # s/ρ = Aᵀ B (z⁺ - z)
        xp = namespace(first_array(r))
        norms = xp.stack([batch_sq_norms(r, 0), batch_sq_norms(s, 0)])
        r_norm, s_norm = (float(v) for v in to_numpy(xp.sqrt(norms)))
        s_norm *= rho
        if r_norm > self.balance_mu * s_norm:
            return rho * self.balance_tau
        if s_norm > self.balance_mu * r_norm:
            return rho / self.balance_tau
        return rho

    def rho(self, state) -> float:
        """The penalty ``ρ`` in force at ``state`` (``1/step`` unless balanced)."""
        return state.aux.rho

    def dual(self, state):
        """The (unscaled) dual variable :math:`y = \\rho u` of the constraint at ``state``."""
        return scale(state.aux.rho, state.z[0])

    # -- theory ------------------------------------------------------------------------

    def optimal_step(self, m, L):
        """:math:`1/L`, as for Douglas–Rachford (the consensus form)."""
        check_constants(m, L)
        return 1.0 / L

    def contraction(self, m, L):
        """:func:`~opsplit.diagnostics.dr_contraction` at this step and
        relaxation: ADMM in consensus form is Douglas–Rachford, contracting
        when one operator is ``m``-strongly monotone (``f`` or ``g``
        ``m``-strongly convex) and ``L``-Lipschitz; 1 when ``m = 0``."""
        return dr_contraction(m, L, self.step, self.relaxation)

    def divergence_hint(self, problem, m, L):
        return (
            "ADMM converges for every step when f and g are closed, convex and proper and "
            "the Lagrangian has a saddle point; a linearized update also needs norm_A "
            "(norm_B) >= ‖A‖ (‖B‖): check the problem (and the declared norms)"
        )


def _zeros_like(a):
    return namespace(a).zeros_like(a)
