r"""What Chambolle–Pock and Condat–Vũ share: the iteration, the steps, the residual.

Both solve :math:`\min_x f(x) + g(Kx) + h(x)` (:class:`~opsplit.Composite`)
through its saddle-point form
:math:`\min_x \max_y f(x) + h(x) + \langle Kx, y\rangle - g^*(y)`, by

.. math::

    \tilde x &= \operatorname{prox}_{\tau f}\bigl(x - \tau(\nabla h(x) + K^{T} y)\bigr),\\
    \tilde y &= \operatorname{prox}_{\sigma g^*}\bigl(y + \sigma K(2\tilde x - x)\bigr),\\
    (x^{+}, y^{+}) &= (x, y) + \rho\,\bigl((\tilde x, \tilde y) - (x, y)\bigr),

(Condat 2013, Algorithm 3.1; Chambolle–Pock is the case :math:`h = 0`).  It is
a relaxed proximal-point iteration in the metric

.. math::

    P = \begin{pmatrix} I/\tau & -K^{T} \\ -K & I/\sigma \end{pmatrix},

positive definite iff :math:`\tau\sigma\|K\|^2 < 1`, and converges when
:math:`1/\tau - \sigma\|K\|^2 > L_h/2` and
:math:`0 < \rho < \delta = 2 - \frac{L_h}{2}\,(1/\tau - \sigma\|K\|^2)^{-1}`.

The residual is the primal–dual residual of Chambolle and Pock (2011, eq. (39)),

.. math::

    p = \frac{x - \tilde x}{\tau} - K^{T}(y - \tilde y) - (\nabla h(x) - \nabla h(\tilde x))
      \in \partial f(\tilde x) + \nabla h(\tilde x) + K^{T}\tilde y,\qquad
    d = \frac{y - \tilde y}{\sigma} - K(x - \tilde x) \in \partial g^*(\tilde y) - K\tilde x:

:math:`(p, d)` is an element of the optimality operator at
:math:`(\tilde x, \tilde y)`, zero exactly at a saddle point.  The state's
``delta`` is :math:`(\tau p, \sigma d)` (units of the iterates), so the
driver's residual :math:`\|\delta\| / \|(x, y)\|` bounds the violation of
the optimality conditions.  :math:`K x`, :math:`K^{T} y` and
:math:`\nabla h(x)` are carried from one iteration to the next: one
application of ``K``, one of :math:`K^{T}` and one gradient per iteration.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

from .._backend import namespace
from .._validate import check_positive, check_real
from ..operators.lanczos import NormEstimate, estimate_norm
from ..problems import Composite
from ._base import SplittingMethod, State

__all__ = ["PrimalDualSplitting", "PrimalDualMaps", "PrimalDualSetup", "PrimalDualAux", "Steps"]

#: Fraction of the largest admissible primal step taken by default.
SAFETY = 0.99


class Steps(NamedTuple):
    """The primal step ``tau`` and the dual step ``sigma``."""

    tau: float
    sigma: float


class PrimalDualSetup(NamedTuple):
    """The steps and the proximal maps for them (precomputation done once)."""

    steps: Steps
    norm: NormEstimate  # ‖K‖ the steps were sized with
    prox_f: Callable  # x ↦ prox_{τ f}(x)
    prox_gstar: Callable  # v ↦ prox_{σ g*}(v)


class PrimalDualMaps(NamedTuple):
    """What :meth:`PrimalDualSplitting.prepare` returns."""

    problem: Composite
    lipschitz: float | None  # L_h (0 without h)
    setup: PrimalDualSetup | None  # None: K holds no array, ‖K‖ is estimated in init


class PrimalDualAux(NamedTuple):
    """What a primal–dual state carries besides ``z = (x, y)``."""

    setup: PrimalDualSetup
    Kx: Any  # K x
    KTy: Any  # Kᵀ y
    grad: Any  # ∇h(x), or None without h


def norm_of(K, like=None) -> NormEstimate:
    """``‖K‖`` for the step sizes: exact where the structure gives it, else a
    Lanczos estimate (``like``: an array giving library, dtype and device when
    ``K`` holds none)."""
    if K is None:
        return NormEstimate(1.0, 0.0, "identity", True)
    return estimate_norm(K, like, tol=1e-6, maxiter=100)


@dataclass(frozen=True)
class PrimalDualSplitting(SplittingMethod):
    r"""The primal–dual iteration of :mod:`opsplit.splitting._primal_dual`.

    Subclasses set ``smooth_allowed``; everything else is shared.
    """

    problem_types: ClassVar[tuple[type, ...]] = (Composite,)
    requires: ClassVar[tuple[type, ...]] = ()
    step_limit_formula: ClassVar[str | None] = "τσ‖K‖² < 1"
    #: Whether the method takes the smooth term ``h`` (Condat–Vũ) or not (Chambolle–Pock).
    smooth_allowed: ClassVar[bool] = False

    #: The primal step τ (``None``: sized from ‖K‖ and L_h).
    step: float | None = None
    #: The dual step σ (``None``: sized from ‖K‖ and L_h).
    dual_step: float | None = None
    relaxation: float = 1.0

    def __post_init__(self):
        for name in ("step", "dual_step"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, check_positive(value, name))
        rho = check_real(self.relaxation, "relaxation")
        if not 0 < rho < 2:
            raise ValueError(f"relaxation must be in (0, 2), got {self.relaxation}")
        object.__setattr__(self, "relaxation", rho)

    # -- setup -------------------------------------------------------------------------

    def check_problem(self, problem) -> None:
        super().check_problem(problem)
        if problem.has_smooth and not self.smooth_allowed:
            raise TypeError(
                f"{type(self).__name__} has no smooth term: use ops.CondatVu for a Composite "
                "with smooth=..., or move h into f"
            )

    def prepare(self, problem):
        """``‖K‖``, the steps and the proximal maps (a factorization in ``f``'s or
        ``g``'s prox happens here, once), unless ``K`` holds no array: then
        :meth:`init` estimates ``‖K‖`` in ``x0``'s library and builds them."""
        self.check_problem(problem)
        lipschitz = problem.smooth_lipschitz
        if lipschitz is None and (self.step is None or self.dual_step is None):
            raise ValueError(
                f"{type(self).__name__} needs the Lipschitz constant of the smooth term's "
                "gradient to choose its steps: declare it (lipschitz=L) or give both "
                "step (the primal step) and dual_step"
            )
        try:
            norm = norm_of(problem.K)
        except ValueError:  # K holds no array: estimated in init, in x0's library
            return PrimalDualMaps(problem, lipschitz, None)
        return PrimalDualMaps(problem, lipschitz, self.setup(problem, norm, lipschitz))

    def setup(self, problem, norm: NormEstimate, lipschitz) -> PrimalDualSetup:
        """The steps for ``‖K‖ ≤ norm.upper`` and the proximal maps for them."""
        steps = self.steps(norm.upper, lipschitz)
        return PrimalDualSetup(steps, norm, problem.f.prox_map(steps.tau),
                               problem.g.conjugate().prox_map(steps.sigma))

    def steps(self, norm: float, lipschitz: float | None) -> Steps:
        r"""The steps for :math:`\|K\|` = ``norm`` and :math:`L_h` = ``lipschitz``;
        a ``RuntimeWarning`` names the bound the given steps violate.

        Defaults: :math:`\sigma = 1/\|K\|` and
        :math:`\tau = 0.99/(\ell + \sigma\|K\|^2)` with
        :math:`\ell = L_h/(2(2 - \rho))` (:math:`L_h/2` for :math:`\rho = 1`, so that
        :math:`\rho < \delta`; :math:`\tau = 0.99/\|K\|` without ``h``); a step
        given alone fixes the other at 0.99 of its bound,
        :math:`\sigma = 0.99\,(1/\tau - \ell)/\|K\|^2`.
        """
        norm = norm if norm > 0 else 1.0  # K = 0: any steps do; size them as for ‖K‖ = 1
        L, n2 = lipschitz, norm * norm
        ell = (L or 0.0) / (2.0 * (2.0 - self.relaxation))
        tau, sigma = self.step, self.dual_step
        if sigma is None:
            if tau is None:
                sigma = 1.0 / norm
            else:
                slack = 1.0 / tau - ell
                if not slack > 0:
                    raise ValueError(
                        f"the primal step τ = {tau:.4g} leaves no dual step: {type(self).__name__} "
                        f"with relaxation ρ = {self.relaxation:.4g} needs τ < 2(2 - ρ)/L_h = "
                        f"{1.0 / ell:.4g}"
                    )
                sigma = SAFETY * slack / n2
        if tau is None:
            tau = SAFETY / (ell + sigma * n2)
        self._check_steps(tau, sigma, norm, L)
        return Steps(float(tau), float(sigma))

    def _check_steps(self, tau, sigma, norm, L) -> None:
        name = type(self).__name__
        n2 = norm * norm
        slack = 1.0 / tau - sigma * n2
        if not L:  # no smooth term, or an unknown L_h: the necessary τσ‖K‖² < 1
            if not tau * sigma * n2 < 1:
                warnings.warn(
                    f"{name}'s steps violate τσ‖K‖² < 1: τ = {tau:.4g}, σ = {sigma:.4g}, "
                    f"‖K‖ = {norm:.6g} give τσ‖K‖² = {tau * sigma * n2:.4g}; the iteration "
                    "may diverge", RuntimeWarning, stacklevel=4)
            return
        if not slack > L / 2:
            warnings.warn(
                f"{name}'s steps violate 1/τ - σ‖K‖² > L_h/2: τ = {tau:.4g}, σ = {sigma:.4g}, "
                f"‖K‖ = {norm:.6g}, L_h = {L:.4g} give 1/τ - σ‖K‖² = {slack:.4g} <= "
                f"L_h/2 = {L / 2:.4g}; the iteration may diverge", RuntimeWarning, stacklevel=4)
            return
        delta = 2.0 - L / (2.0 * slack)
        if not self.relaxation < delta:
            warnings.warn(
                f"{name}'s relaxation ρ = {self.relaxation:.4g} violates ρ < δ = 2 - "
                f"L_h/(2(1/τ - σ‖K‖²)) = {delta:.4g}; the iteration may diverge",
                RuntimeWarning, stacklevel=4)

    def init(self, prepared, x0):
        problem, setup = prepared.problem, prepared.setup
        if setup is None:
            setup = self.setup(problem, norm_of(problem.K, x0), prepared.lipschitz)
        Kx = problem.apply_K(x0)
        y0 = namespace(Kx).zeros_like(Kx)
        grad = problem.smooth_gradient(x0) if problem.has_smooth else None
        aux = PrimalDualAux(setup, Kx, problem.apply_KT(y0), grad)
        return State(z=(x0, y0), x=x0, aux=aux)

    # -- the iteration -----------------------------------------------------------------

    def update(self, prepared, state):
        problem = prepared.problem
        (x, y), aux = state.z, state.aux
        setup = aux.setup
        tau, sigma = setup.steps
        forward = aux.KTy if aux.grad is None else aux.KTy + aux.grad
        v = x - tau * forward
        x_t = setup.prox_f(v)
        Kx_t = problem.apply_K(x_t)
        # K(2x̃ - x) by linearity from the carried Kx: no second application of K.
        w = y + sigma * (2.0 * Kx_t - aux.Kx)
        y_t = setup.prox_gstar(w)
        KTy_t = problem.apply_KT(y_t)
        grad_t = None if aux.grad is None else problem.smooth_gradient(x_t)
        # (τp, σd), the primal–dual residual at (x̃, ỹ) in the iterates' units, from the
        # prox inputs: τp = x - x̃ - τ(Kᵀy + ∇h(x)) + τ(Kᵀỹ + ∇h(x̃)) = v - x̃ + τ(Kᵀỹ + ∇h(x̃))
        # and σd = y - ỹ + σK(x̃ - x) = w - ỹ - σKx̃.
        tp = v - x_t + tau * (KTy_t if grad_t is None else KTy_t + grad_t)
        sd = w - y_t - sigma * Kx_t
        rho = self.relaxation
        if rho == 1.0:
            new = PrimalDualAux(setup, Kx_t, KTy_t, grad_t)
            return State(z=(x_t, y_t), x=x_t, delta=(tp, sd), aux=new)
        x_n, y_n = x + rho * (x_t - x), y + rho * (y_t - y)
        new = PrimalDualAux(
            setup, aux.Kx + rho * (Kx_t - aux.Kx), aux.KTy + rho * (KTy_t - aux.KTy),
            None if grad_t is None else problem.smooth_gradient(x_n),
        )
        return State(z=(x_n, y_n), x=x_n, delta=(tp, sd), aux=new)

    @staticmethod
    def dual(state):
        """The dual iterate ``y`` (a maximizer of the dual problem in the limit)."""
        return state.z[1]

    # -- theory ------------------------------------------------------------------------

    def divergence_hint(self, problem, m, L):
        return (
            f"{type(self).__name__} converges when 1/τ - σ‖K‖² > L_h/2 (τσ‖K‖² < 1 without "
            "a smooth term): check the steps, the declared Lipschitz constant of h, and K's "
            "adjoint (ops.diagnostics.check_adjoint)"
        )
