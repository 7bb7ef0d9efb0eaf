r"""The logistic loss, its gradient and its prox (a safeguarded Newton root find).

With labels :math:`y_i \in \{-1, +1\}` the loss is
:math:`f(x) = \sum_i \log(1 + e^{-y_i x_i})`; without labels it is the softplus
sum :math:`\sum_i \log(1 + e^{x_i})`. Both are :math:`\sum_i s(c_i x_i)` with the
softplus :math:`s(z) = \log(1 + e^{z})` and :math:`c = -y` (or ``1``).

The prox has no closed form. It is computed from the one of the sigmoid
activation (:class:`~opsplit.prox.Sigmoid`), whose safeguarded Newton iteration
it reuses: the conjugate of the softplus is the negative binary entropy
:math:`s^*(q) = q\log q + (1-q)\log(1-q) = f_\sigma(q) + \tfrac12 q^2` on
:math:`[0, 1]`, where :math:`f_\sigma` is the function whose prox is the
sigmoid, so the Moreau identity and completing the square give

.. math::

    \operatorname{prox}_{\gamma s}(v) = v - \gamma\, q, \qquad
    q = \operatorname{prox}_{\tau f_\sigma}\!\Bigl(\frac{v}{1+\gamma}\Bigr), \qquad
    \tau = \frac{1}{1+\gamma},

i.e. the root of :math:`p + \gamma\,\sigma(p) = v` with :math:`q = \sigma(p)`.

References
----------
N. Parikh and S. Boyd, "Proximal Algorithms", Foundations and Trends in
Optimization 1(3), 2014, §6.5 (logistic loss). H. H. Bauschke and P. L.
Combettes, *Convex Analysis and Monotone Operator Theory in Hilbert Spaces*,
2nd ed., 2017, Thm. 14.3 (Moreau decomposition).
"""

from __future__ import annotations

from .._backend import check_floating, namespace
from .._validate import check_positive
from ._base import ProxFunction, check_broadcasts, holds, like_input
from .smooth_activations import Sigmoid, Softplus

__all__ = ["Logistic"]

_SIGMOID = Sigmoid()
_SOFTPLUS = Softplus()


class Logistic(ProxFunction):
    r"""The logistic loss :math:`f(x) = \sum_i \log(1 + e^{-y_i x_i})` (labels
    :math:`y_i = \pm 1`), or :math:`\sum_i \log(1 + e^{x_i})` without labels.

    Value, gradient and prox are computed without overflow for any finite
    input (``|x| = 10³`` or ``10⁶`` included):

    .. math::

        s(z) = \max(z, 0) + \operatorname{log1p}(e^{-|z|}), \qquad
        \nabla f(x) = -y\,\sigma(-y\,x), \qquad L = \tfrac14,

    with :math:`\sigma` the logistic sigmoid. The prox solves, entrywise,

    .. math::

        u + \gamma\,\sigma(u) = -y\,x, \qquad
        \operatorname{prox}_{\gamma f}(x) = -y\,u,

    by the sigmoid activation's safeguarded Newton iteration (see the module
    docstring): a bracket from :math:`0 < \sigma < 1`, Newton steps that fall
    back to bisection when they leave it, and a fixed number of iterations set
    by ``γ`` alone, so it runs on any array backend with no data-dependent
    branch and no host transfer, and converges to a few units of roundoff.

    Parameters
    ----------
    labels : array, optional
        Labels ``±1`` (any real or integer dtype) that broadcast against the
        trailing axes of ``x`` and live in ``x``'s library and device; ``None``
        (the default) gives the softplus sum.

    Examples
    --------
    >>> import numpy as np
    >>> f = Logistic(np.array([1.0, -1.0]))
    >>> x = np.array([2.0, 2.0])
    >>> bool(np.isclose(f.value(x), np.log1p(np.exp(-2.0)) + np.log1p(np.exp(2.0))))
    True
    >>> p = f.prox(x, 0.5)
    >>> bool(np.allclose((x - p) / 0.5, f.gradient(p)))
    True
    """

    separable = True
    smooth = True
    #: Lipschitz constant of the gradient (``σ' ≤ 1/4``, labels ``±1``).
    lipschitz = 0.25

    def __init__(self, labels=None):
        if labels is not None:
            try:
                xp = namespace(labels)
            except TypeError as exc:
                raise TypeError(
                    f"labels must be an array of ±1 or None, got {type(labels).__name__}"
                ) from exc
            if xp.isdtype(labels.dtype, "bool") or not xp.isdtype(
                labels.dtype, ("real floating", "integral")
            ):
                raise TypeError(f"labels must have a real or integer dtype, got {labels.dtype}")
            if not holds((labels == 1) | (labels == -1)):
                raise ValueError("labels must all be +1 or -1 (map 0/1 labels with 2 * y - 1)")
        self.labels = labels

    def _sign(self, x):
        """``c = -y`` in ``x``'s dtype (``None`` without labels)."""
        if self.labels is None:
            return None
        check_broadcasts(self.labels, x, "labels")
        return -like_input(self.labels, x, "labels")

    def value(self, x):
        check_floating(x, "x")
        sign = self._sign(x)
        z = x if sign is None else sign * x
        return namespace(x).sum(_SOFTPLUS.activate(z))

    def gradient(self, x):
        r""":math:`\nabla f(x) = c\,\sigma(c\,x)` with :math:`c = -y`
        (:math:`\sigma(x)` without labels), same shape and dtype as ``x``."""
        check_floating(x, "x")
        sign = self._sign(x)
        if sign is None:
            return _SIGMOID.activate(x)
        return sign * _SIGMOID.activate(sign * x)

    def prox(self, x, step=1.0):
        step = check_positive(step, "step")
        check_floating(x, "x")
        sign = self._sign(x)
        v = x if sign is None else sign * x
        tau = 1.0 / (1.0 + step)
        u = v - step * _SIGMOID.prox(tau * v, tau)
        return u if sign is None else sign * u
