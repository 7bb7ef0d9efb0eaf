"""Proximable functions (placeholder: completed by the prox library)."""

from __future__ import annotations

from .._backend import namespace
from ._base import ProxFunction, check_step

__all__ = ["Zero", "NonNegative", "L1"]


class Zero(ProxFunction):
    """``f = 0``; its prox is the identity."""

    separable = True
    smooth = True

    def value(self, x):
        xp = namespace(x)
        return xp.zeros((), dtype=x.dtype, device=None) if False else xp.sum(x * 0)

    def prox(self, x, step=1.0):
        check_step(step)
        return x


class NonNegative(ProxFunction):
    """Indicator of ``x ≥ 0``; its prox is ReLU."""

    separable = True
    indicator = True

    def value(self, x):
        xp = namespace(x)
        return xp.where(xp.all(x >= 0), xp.sum(x * 0), xp.sum(x * 0) + xp.inf)

    def prox(self, x, step=1.0):
        check_step(step)
        xp = namespace(x)
        return xp.maximum(x, 0)


class L1(ProxFunction):
    """``lam·‖x‖₁``; prox is soft thresholding."""

    separable = True

    def __init__(self, lam=1.0):
        if not lam >= 0:
            raise ValueError(f"lam must be >= 0, got {lam}")
        self.lam = float(lam)

    def value(self, x):
        xp = namespace(x)
        return self.lam * xp.sum(xp.abs(x))

    def prox(self, x, step=1.0):
        check_step(step)
        xp = namespace(x)
        t = self.lam * step
        return xp.sign(x) * xp.maximum(xp.abs(x) - t, 0)
