"""Monotone operators defined by proximable functions.

They live in the prox layer (above the operators layer, which knows nothing of
proximal functions): :class:`Subdifferential` :math:`\\partial f`, whose
resolvent is :math:`\\operatorname{prox}_{\\alpha f}`, and its special case
:class:`NormalCone`.
"""

from __future__ import annotations

from .._validate import check_positive
from .._vectors import vmap
from ..operators.monotone import ResolventOperator
from ._base import ProxFunction

__all__ = ["Subdifferential", "NormalCone"]


class Subdifferential(ResolventOperator):
    r"""The subdifferential :math:`\partial f` of a proximable convex function.

    Its resolvent is the proximal operator: :math:`J_{\alpha \partial f} =
    \operatorname{prox}_{\alpha f}`.

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> G = ops.Subdifferential(ops.prox.NonNegative())
    >>> G.resolvent(1.0)(np.array([-1.0, 2.0]))
    array([0., 2.])
    """

    def __init__(self, function):
        if not isinstance(function, ProxFunction):
            raise TypeError(f"function must be a ProxFunction, got {type(function).__name__}")
        self.function = function

    def resolvent(self, step):
        check_positive(step, "step")
        return self._blockwise(self.function.prox, step)

    def reflected_resolvent(self, step):
        # 2·prox - I, in one pass where the function knows a closed form
        # (ReLU's reflection is |x|).
        check_positive(step, "step")
        return self._blockwise(self.function.reflect, step)

    def _blockwise(self, fn, step):
        if self.function.separable:
            # A separable function acts entrywise, so on a tuple (multi-tier)
            # vector it acts on each block.
            return lambda x: vmap(lambda part: fn(part, step), x)
        return lambda x: fn(x, step)


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
