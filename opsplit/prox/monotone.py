"""Monotone operators defined by proximable functions.

They live in the prox layer (above the operators layer, which knows nothing of
proximal functions): :class:`Subdifferential` :math:`\\partial f`, whose
resolvent is :math:`\\operatorname{prox}_{\\alpha f}`, its special case
:class:`NormalCone`, and :class:`SmoothSubdifferential`, the gradient of a
smooth ``f``, which can also be evaluated.
"""

from __future__ import annotations

from .._validate import check_positive
from .._vectors import check_same_shape, vmap
from ..operators.monotone import ForwardOperator, ResolventOperator
from ._base import ProxFunction

__all__ = ["Subdifferential", "SmoothSubdifferential", "NormalCone"]


class Subdifferential(ResolventOperator):
    r"""The subdifferential :math:`\partial f` of a proximable convex function.

    Its resolvent is the proximal operator: :math:`J_{\alpha \partial f} =
    \operatorname{prox}_{\alpha f}`, built once per step by
    :meth:`ProxFunction.prox_map <opsplit.prox.ProxFunction.prox_map>` (a
    factorization, for :class:`~opsplit.prox.LeastSquares`, happens there and
    only there).  For a smooth ``f`` (trait ``smooth``)
    ``Subdifferential(f)`` is a :class:`SmoothSubdifferential`, which can also
    be evaluated.

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> G = ops.Subdifferential(ops.prox.NonNegative())
    >>> G.resolvent(1.0)(np.array([-1.0, 2.0]))
    array([0., 2.])
    >>> isinstance(ops.Subdifferential(ops.prox.SquaredL2(2.0)), ops.ForwardOperator)
    True
    """

    def __new__(cls, function=None, *args, **kwargs):
        if cls is Subdifferential and isinstance(function, ProxFunction) and function.smooth:
            cls = SmoothSubdifferential
        return super().__new__(cls)

    def __init__(self, function):
        if not isinstance(function, ProxFunction):
            raise TypeError(f"function must be a ProxFunction, got {type(function).__name__}")
        self.function = function

    def resolvent(self, step):
        return self._blockwise(self.function.prox_map(check_positive(step, "step")))

    def reflected_resolvent(self, step):
        # 2·prox - I, in one pass where the function knows a closed form
        # (ReLU's reflection is |x|).
        return self._blockwise(self.function.reflect_map(check_positive(step, "step")))

    def resolvents(self, step):
        # One precomputation (a factorization) serves both maps.
        step = check_positive(step, "step")
        prox = self.function.prox_map(step)
        return self._blockwise(prox), self._blockwise(self.function.reflect_map(step, prox))

    def _blockwise(self, fn):
        if self.function.separable:
            # A separable function acts entrywise, so on a tuple (multi-tier)
            # vector it acts on each block.
            return lambda x: vmap(fn, x)
        return fn


class SmoothSubdifferential(Subdifferential, ForwardOperator):
    r"""The gradient :math:`\nabla f` of a smooth convex function, as a monotone
    operator with both capabilities: evaluated (forward–backward) and
    through its resolvent (Peaceman–Rachford, Douglas–Rachford).

    ``Subdifferential(f)`` builds it when ``f.smooth``.  Its Lipschitz
    constant is ``f.lipschitz`` and, by Baillon–Haddad, it is
    ``1/f.lipschitz``-cocoercive; its strong monotonicity is
    ``f.strong_convexity``.

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> G = ops.Subdifferential(ops.prox.SquaredL2(2.0))
    >>> G(np.array([1.0, -1.0])), G.lipschitz, G.cocoercivity
    (array([ 2., -2.]), 2.0, 0.5)
    """

    def __init__(self, function):
        super().__init__(function)
        if not function.smooth:
            raise TypeError(f"function must be smooth, {type(function).__name__} is not")

    # Read from the function when asked: a LeastSquares computes its spectrum
    # at first use, which a method that never needs it (WorkingSet) skips.
    @property
    def lipschitz(self):
        return self.function.lipschitz

    @property
    def cocoercivity(self):
        lipschitz = self.function.lipschitz
        return 1.0 / lipschitz if lipschitz else None

    @property
    def strong_monotonicity(self):
        return self.function.strong_convexity

    def evaluate(self, x):
        gradient = self.function.gradient
        out = vmap(gradient, x) if self.function.separable else gradient(x)
        check_same_shape(out, x, f"the gradient of {type(self.function).__name__}")
        return out


class NormalCone(Subdifferential):
    r"""The normal cone :math:`N_C` of a closed convex set ``C``.

    ``C`` is given by its indicator, a :class:`~opsplit.prox.ProxFunction`
    whose prox is the projection (for example ``prox.Box`` or
    ``prox.L2Ball``); the resolvent is that projection for every step.
    """

    def __init__(self, indicator):
        super().__init__(indicator)
        if not indicator.indicator:
            raise TypeError("indicator must be the indicator function of a set")
