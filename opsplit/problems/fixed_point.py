"""The fixed-point problem x = T(x) of a nonexpansive map."""

from __future__ import annotations

from .._validate import check_real
from ..operators.basic import _as_shape, check_trailing
from ._base import Problem

__all__ = ["FixedPoint"]


class FixedPoint(Problem):
    r"""Find :math:`x` with :math:`x = T(x)` for a nonexpansive map ``T``.

    ``T`` is any user map with :math:`\|T x - T y\| \le \|x - y\|` (a
    composition of projections or resolvents, a splitting method's own
    map, ...), applied to whole batches: leading axes beyond ``core_shape``
    are batch axes.  :class:`~opsplit.KrasnoselskiiMann` solves it.

    Parameters
    ----------
    T : callable, optional
        ``x ↦ T(x)``, returning an array (or tuple of arrays) shaped like
        ``x``.  May be left out when the method carries it
        (``ops.KrasnoselskiiMann(T)``).
    core_shape : tuple, optional
        Trailing shape of one sample (a tuple of shapes for block vectors);
        when given, ``x0`` is checked against it and its leading axes are a
        batch.
    averaged : float, optional
        ``θ ∈ (0, 1]`` when ``T`` is ``θ``-averaged, :math:`T = (1 - \theta) I
        + \theta N` with ``N`` nonexpansive (``1/2``: firmly nonexpansive, e.g.
        a resolvent or a projection).  Krasnoselskii–Mann converges for
        relaxations in :math:`(0, 1/\theta)`; the default ``None`` means merely
        nonexpansive (``θ = 1``).

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> T = lambda x: np.clip(x, 0.0, 1.0)              # a projection: firmly nonexpansive
    >>> prob = ops.FixedPoint(T, core_shape=(3,), averaged=0.5)
    >>> prob.batch_ndim(np.zeros((4, 3)))
    1
    """

    def __init__(self, T=None, core_shape=None, averaged=None):
        if T is not None and not callable(T):
            raise TypeError(f"T must be callable, got {type(T).__name__}")
        if core_shape is not None:
            core_shape = _as_shape(core_shape)
        if averaged is not None:
            averaged = check_real(averaged, "averaged", minimum=0.0, strict=True)
            if averaged > 1:
                raise ValueError(f"averaged must be in (0, 1], got {averaged}")
        self.T, self.averaged, self._core_shape = T, averaged, core_shape

    def __repr__(self):
        return (f"FixedPoint(T={self.T!r}, core_shape={self._core_shape!r}, "
                f"averaged={self.averaged!r})")

    def core_shape(self):
        """Trailing shape of one sample, when given."""
        return self._core_shape

    def validate(self, x, name="x0") -> None:
        """Check ``x`` against ``core_shape`` (``T`` is not applied: it may be
        expensive; the method checks the shape of ``T(x)`` as it iterates)."""
        if self._core_shape is not None:
            check_trailing(x, self._core_shape, name)
