"""The primal–dual method of Chambolle and Pock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ._primal_dual import PrimalDualSplitting

__all__ = ["ChambollePock"]


@dataclass(frozen=True)
class ChambollePock(PrimalDualSplitting):
    r"""Chambolle–Pock's primal–dual method for :math:`\min_x f(x) + g(Kx)`.

    On a :class:`~opsplit.Composite` without smooth term, with ``x̃``, ``ỹ``
    the proximal steps and ``ρ`` the relaxation:

    .. math::

        \tilde x &= \operatorname{prox}_{\tau f}\bigl(x - \tau K^{T} y\bigr),\\
        \tilde y &= \operatorname{prox}_{\sigma g^*}\bigl(y + \sigma K(2\tilde x - x)\bigr),\\
        (x^{+}, y^{+}) &= (x, y) + \rho\,\bigl((\tilde x, \tilde y) - (x, y)\bigr),

    with :math:`\tau` = ``step``, :math:`\sigma` = ``dual_step``,
    :math:`\rho` = ``relaxation`` and the extrapolation :math:`\theta = 1`
    (:math:`2\tilde x - x`).  The prox of :math:`g^*` comes from the Moreau
    identity :math:`\operatorname{prox}_{\sigma g^*}(v) = v - \sigma
    \operatorname{prox}_{g/\sigma}(v/\sigma)` (or a closed form of
    :math:`g^*`, :meth:`~opsplit.prox.ProxFunction.conjugate`).

    It converges to a saddle point of :math:`f(x) + \langle Kx, y\rangle -
    g^*(y)` when one exists, for :math:`\tau\sigma\|K\|^2 < 1` and
    :math:`0 < \rho < 2`; steps violating the bound give a
    ``RuntimeWarning``.  By default :math:`\sigma = 1/\|K\|` and
    :math:`\tau = 0.99/\|K\|`, with :math:`\|K\|` exact where ``K``'s structure
    gives it (dense, diagonal, differences, FFT convolutions) and a Lanczos
    estimate (its upper end) otherwise, computed once at setup.

    The solve stops on the primal–dual residual of Chambolle and Pock
    (:math:`(\tau p, \sigma d)`, see :mod:`opsplit.splitting._primal_dual`),
    zero exactly at a saddle point.  The result's ``x`` is the primal
    solution; the dual solution ``y`` is ``ChambollePock.dual(result.state)``
    (``result.state.z == (x, y)``), and ``y`` starts at 0.  A smooth term is
    refused with a ``TypeError``: :class:`CondatVu` takes it.

    Parameters
    ----------
    step : float, optional
        The primal step :math:`\tau > 0`; by default sized from :math:`\|K\|`
        (see above).
    dual_step : float, optional
        :math:`\sigma > 0`; given alone, :math:`\tau = 0.99/(\sigma\|K\|^2)`,
        and :math:`\sigma = 0.99/(\tau\|K\|^2)` for :math:`\tau` alone.
    relaxation : float
        :math:`\rho \in (0, 2)`.

    References
    ----------
    A. Chambolle and T. Pock, "A first-order primal-dual algorithm for convex
    problems with applications to imaging", J. Math. Imaging Vis. 40 (2011).
    L. Condat, "A primal-dual splitting method for convex optimization
    involving Lipschitzian, proximable and linear composite terms", J. Optim.
    Theory Appl. 158 (2013), Algorithm 3.1 (the relaxed form).

    Examples
    --------
    Total-variation denoising of a step, :math:`\tfrac12\|x - b\|^2 + \lambda\|Dx\|_1`:

    >>> import numpy as np, opsplit as ops
    >>> b = np.array([0.0, 0.2, 1.0, 0.8])
    >>> prob = ops.Composite(f=ops.prox.Translated(ops.prox.SquaredL2(), b),
    ...                      g=ops.prox.L1(0.1), K=ops.Dense(np.diff(np.eye(4), axis=0)))
    >>> res = ops.solve(prob, ops.ChambollePock(), np.zeros(4), tol=1e-10, maxiter=5000)
    >>> res.success, np.round(res.x, 6)
    (True, array([0.1 , 0.2 , 0.85, 0.85]))
    >>> y = ops.ChambollePock.dual(res.state)      # the dual solution: x - b + Dᵀy = 0
    >>> np.round(y, 6)
    array([ 0.1 ,  0.1 , -0.05])
    """

    smooth_allowed: ClassVar[bool] = False

