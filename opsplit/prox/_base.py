"""Base class for proximable functions, and the small helpers they share."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

from .._backend import device, namespace
from .._validate import check_positive, check_real

__all__ = [
    "ProxFunction",
    "check_positive",
    "check_real",
    "restrict",
    "zero_scalar",
    "membership_tolerance",
]


def restrict(total, inside):
    """``total`` where every entry of the boolean array ``inside`` holds, else ``+inf``.

    Both stay on the device: the result is a 0-d array of ``total``'s library.
    """
    xp = namespace(inside)
    return xp.where(xp.all(inside), total, xp.inf)


def zero_scalar(x):
    """A 0-d zero with the dtype and device of ``x``."""
    return namespace(x).zeros((), dtype=x.dtype, device=device(x))


def membership_tolerance(x) -> float:
    """Relative slack ``sqrt(eps)`` of ``x``'s dtype for membership in sets whose
    projection rounds (balls, simplices), as ``isapprox`` does: the projection
    of a large point carries an error proportional to that point, which the
    projected point alone cannot reveal."""
    return math.sqrt(float(namespace(x).finfo(x.dtype).eps))


class ProxFunction(ABC):
    r"""A closed convex (or at least proximable) function ``f``.

    Subclasses implement :meth:`value` (``f(x)``, summed over all entries,
    ``+inf`` outside the domain of an indicator) and :meth:`prox`:

    .. math::

        \operatorname{prox}_{\text{step}\,f}(x) =
        \arg\min_p\; f(p) + \frac{1}{2\,\text{step}} \|p - x\|^2 .

    Traits
    ------
    convex, separable (acts entrywise), indicator (the indicator of a set,
    so ``prox`` is a projection, independent of ``step``), smooth
    (differentiable with a Lipschitz gradient).
    """

    convex = True
    separable = False
    indicator = False
    smooth = False

    @abstractmethod
    def value(self, x):
        """``f(x)`` as a 0-d array of ``x``'s library."""

    @abstractmethod
    def prox(self, x, step: float = 1.0):
        """The proximal operator with parameter ``step`` (> 0)."""

    def reflect(self, x, step: float = 1.0):
        r"""The reflected prox :math:`2\operatorname{prox}_{\text{step}\,f}(x) - x`
        (Peaceman–Rachford's reflection); subclasses with a cheaper closed
        form override it."""
        return 2.0 * self.prox(x, step) - x

    def __call__(self, x):
        return self.value(x)

    def conjugate(self):
        """The convex conjugate ``f*``, proximable through the Moreau identity."""
        from .calculus import Conjugate

        return Conjugate(self)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"
