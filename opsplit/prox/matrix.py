r"""Spectral functions of matrices: the nuclear norm and the spectral-norm ball.

Both act on the **last two axes** (a matrix); leading axes are a batch and the
value is summed over it. Their proxes apply a scalar rule to the singular
values, from one SVD per matrix (``xp.linalg.svd``, batched):

.. math::

    \operatorname{prox}(X) = U \operatorname{diag}\bigl(\phi(s)\bigr) V^{T},
    \qquad X = U \operatorname{diag}(s) V^{T},

with :math:`\phi(s) = \max(s - t, 0)` (singular-value soft thresholding) for
the nuclear norm and :math:`\phi(s) = \min(s, r)` for the ball. They are
conjugate to each other (registered with
:func:`~opsplit.prox.calculus.closed_form_conjugate`):
:math:`(\lambda\|\cdot\|_*)^* = \iota_{\{\|Y\|_2 \le \lambda\}}`.

References
----------
J.-F. Cai, E. J. Candès and Z. Shen, "A singular value thresholding algorithm
for matrix completion", SIAM J. Optim. 20(4), 2010. A. S. Lewis, "The convex
analysis of unitarily invariant matrix functions", J. Convex Anal. 2, 1995.
"""

from __future__ import annotations

from .._backend import check_floating, namespace
from .._validate import check_positive, check_real
from ._base import ProxFunction, membership_tolerance, restrict, zero_scalar
from .calculus import closed_form_conjugate

__all__ = ["NuclearNorm", "SpectralNormBall"]


def _check_matrix(x, name: str = "x") -> None:
    check_floating(x, name)
    if x.ndim < 2:
        raise ValueError(
            f"{name} must have at least two axes (the function acts on the last two), "
            f"got shape {tuple(x.shape)}"
        )


def _map_singular_values(x, rule):
    """``U diag(rule(s)) Vᵀ`` from the thin SVD of every matrix of ``x``."""
    xp = namespace(x)
    u, s, vt = xp.linalg.svd(x, full_matrices=False)
    return (u * rule(s)[..., None, :]) @ vt


class NuclearNorm(ProxFunction):
    r"""``lam·‖X‖_*``, the sum of the singular values of the last two axes.

    Its prox is singular-value soft thresholding at ``t = lam·step``:

    .. math::

        \operatorname{prox}(X) = U \operatorname{diag}\bigl(\max(s - t, 0)\bigr) V^{T}.

    One thin SVD per matrix: :math:`O(mn\min(m, n))`.

    Parameters
    ----------
    lam : float
        ``lam >= 0``.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.diag([3.0, 1.0, 0.5])
    >>> f = NuclearNorm(1.0)
    >>> float(f.value(X))
    4.5
    >>> np.round(np.linalg.svd(f.prox(X), compute_uv=False), 12)
    array([2., 0., 0.])
    """

    def __init__(self, lam=1.0):
        self.lam = check_real(lam, "lam", minimum=0.0)

    def value(self, x):
        _check_matrix(x)
        xp = namespace(x)
        return self.lam * xp.sum(xp.linalg.svdvals(x))

    def prox(self, x, step=1.0):
        step = check_positive(step, "step")
        _check_matrix(x)
        t = self.lam * step
        return _map_singular_values(x, lambda s: namespace(s).maximum(s - t, 0.0))


class SpectralNormBall(ProxFunction):
    r"""Indicator of ``‖X‖₂ ≤ radius`` (largest singular value) for every matrix
    of the last two axes.

    The projection clips the singular values at the radius:
    :math:`U \operatorname{diag}(\min(s, r)) V^{T}`. Membership in
    :meth:`value` allows a relative slack ``sqrt(eps)`` (the SVD rounds).

    Parameters
    ----------
    radius : float
        ``radius >= 0``.

    Examples
    --------
    >>> import numpy as np
    >>> SpectralNormBall(1.0).prox(np.diag([3.0, 0.5]))
    array([[1. , 0. ],
           [0. , 0.5]])
    """

    indicator = True

    def __init__(self, radius=1.0):
        self.radius = check_real(radius, "radius", minimum=0.0)

    def value(self, x):
        _check_matrix(x)
        xp = namespace(x)
        slack = self.radius * (1.0 + membership_tolerance(x))
        return restrict(zero_scalar(x), xp.linalg.svdvals(x) <= slack)

    def prox(self, x, step=1.0):
        check_positive(step, "step")
        _check_matrix(x)
        r = self.radius
        return _map_singular_values(x, lambda s: namespace(s).minimum(s, r))


@closed_form_conjugate.register
def _(function: NuclearNorm):
    return SpectralNormBall(function.lam)


@closed_form_conjugate.register
def _(function: SpectralNormBall):
    return NuclearNorm(function.radius)
