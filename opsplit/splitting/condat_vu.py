"""The primal–dual method of Condat and Vũ, with a smooth term."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ._primal_dual import PrimalDualSplitting

__all__ = ["CondatVu"]


@dataclass(frozen=True)
class CondatVu(PrimalDualSplitting):
    r"""Condat–Vũ's primal–dual method for :math:`\min_x f(x) + g(Kx) + h(x)`.

    On a :class:`~opsplit.Composite` whose smooth term ``h`` has an
    :math:`L_h`-Lipschitz gradient, with ``x̃``, ``ỹ`` the proximal steps:

    .. math::

        \tilde x &= \operatorname{prox}_{\tau f}\bigl(x - \tau(\nabla h(x) + K^{T} y)\bigr),\\
        \tilde y &= \operatorname{prox}_{\sigma g^*}\bigl(y + \sigma K(2\tilde x - x)\bigr),\\
        (x^{+}, y^{+}) &= (x, y) + \rho\,\bigl((\tilde x, \tilde y) - (x, y)\bigr),

    with :math:`\tau` = ``step``, :math:`\sigma` = ``dual_step`` and
    :math:`\rho` = ``relaxation``.  Without ``h`` it is :class:`ChambollePock`
    (the same iterates).

    It converges to a saddle point of :math:`f(x) + h(x) + \langle Kx,
    y\rangle - g^*(y)` when one exists, for

    .. math::

        \frac1\tau - \sigma\|K\|^2 > \frac{L_h}{2}, \qquad
        0 < \rho < \delta = 2 - \frac{L_h}{2}\Bigl(\frac1\tau - \sigma\|K\|^2\Bigr)^{-1};

    steps or a relaxation violating these give a ``RuntimeWarning`` naming the
    bound.  By default :math:`\sigma = 1/\|K\|` and :math:`\tau = 0.99/(L_h/(2(2
    - \rho)) + \sigma\|K\|^2)` (both conditions hold); a step given alone
    fixes the other at 0.99 of its bound.  :math:`\|K\|` is exact where
    ``K``'s structure gives it and a Lanczos estimate otherwise; :math:`L_h` is ``h``'s declared
    ``lipschitz`` constant (needed unless both steps are given).

    The solve stops on the primal–dual residual (:math:`(\tau p, \sigma d)`,
    see :mod:`opsplit.splitting._primal_dual`); the dual solution is
    ``CondatVu.dual(result.state)``.

    Parameters
    ----------
    step : float, optional
        The primal step :math:`\tau > 0` (below :math:`2/L_h`).
    dual_step : float, optional
        :math:`\sigma > 0`.
    relaxation : float
        :math:`\rho \in (0, 2)`, below :math:`\delta` above.

    References
    ----------
    L. Condat, "A primal-dual splitting method for convex optimization
    involving Lipschitzian, proximable and linear composite terms", J. Optim.
    Theory Appl. 158 (2013), Algorithm 3.1 and Theorem 3.1.
    B. C. Vũ, "A splitting algorithm for dual monotone inclusions involving
    cocoercive operators", Adv. Comput. Math. 38 (2013).

    Examples
    --------
    Nonnegative least squares with a total-variation penalty,
    :math:`\tfrac12\|x - b\|^2 + \iota_{x \ge 0} + 0.1\|Dx\|_1`:

    >>> import numpy as np, opsplit as ops
    >>> b = np.array([-1.0, 0.2, 1.0, 0.8])
    >>> h = ops.Gradient(lambda x: x - b, lipschitz=1.0)
    >>> prob = ops.Composite(f=ops.prox.NonNegative(), g=ops.prox.L1(0.1),
    ...                      K=ops.Dense(np.diff(np.eye(4), axis=0)), smooth=h)
    >>> res = ops.solve(prob, ops.CondatVu(), np.zeros(4), tol=1e-10, maxiter=5000)
    >>> res.success, np.round(res.x, 6)
    (True, array([0.  , 0.2 , 0.85, 0.85]))
    """

    smooth_allowed: ClassVar[bool] = True
    step_limit_formula: ClassVar[str | None] = "1/τ − σ‖K‖² > L_h/2"
