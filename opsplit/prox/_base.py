"""Base class for proximable functions."""

from __future__ import annotations

from abc import ABC, abstractmethod

__all__ = ["ProxFunction", "check_step"]


def check_step(step) -> None:
    """Raise unless ``step`` is a positive real number."""
    if not isinstance(step, (int, float)) or isinstance(step, bool):
        raise TypeError(f"step must be a real number, got {type(step).__name__}")
    if not step > 0:
        raise ValueError(f"step must be > 0, got {step}")


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
    so ``prox`` is a projection, independent of ``step``), smooth.
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

    def __call__(self, x):
        return self.value(x)

    def conjugate(self):
        """The convex conjugate ``f*``, proximable through the Moreau identity."""
        from .calculus import Conjugate

        return Conjugate(self)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"
