r"""The composite problem :math:`\min_x f(x) + g(Kx) + h(x)`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._backend import namespace
from ..operators._base import LinearOperator
from ..operators.basic import Dense, check_trailing
from ..operators.monotone import ForwardOperator
from ..operators.scipy_interop import from_scipy
from ..prox._base import ProxFunction
from ._base import Problem

__all__ = ["Composite"]


def _as_linear(K):
    """``K`` as a :class:`LinearOperator`: operators as they are, a 2-D array as
    :class:`~opsplit.Dense`, a SciPy sparse matrix or ``LinearOperator`` through
    :func:`~opsplit.operators.from_scipy`; ``TypeError`` naming ``K`` otherwise."""
    if isinstance(K, LinearOperator):
        return K
    if type(K).__module__.startswith("scipy"):
        _check_scipy_adjoint(K)
        return from_scipy(K)
    try:
        namespace(K)
    except TypeError:
        raise TypeError(
            "K must be a LinearOperator with its adjoint (matvec and rmatvec), a 2-D "
            f"array or a SciPy matrix, got {type(K).__name__}"
        ) from None
    if K.ndim != 2:
        raise ValueError(f"K must be a 2-D matrix when given as an array, got shape "
                         f"{tuple(K.shape)}")
    return Dense(K)


def _check_scipy_adjoint(K) -> None:
    """``TypeError`` naming ``K`` for a SciPy ``LinearOperator`` built without
    ``rmatvec`` (its adjoint fails only when called: call it once, here)."""
    import scipy.sparse.linalg as spla

    if not isinstance(K, spla.LinearOperator):
        return
    try:
        K.rmatvec(np.zeros(K.shape[0], dtype=K.dtype))
    except (NotImplementedError, TypeError) as exc:
        raise TypeError(
            f"K has no adjoint: its rmatvec fails ({exc}); primal–dual methods apply Kᵀ at "
            "every step — build the SciPy LinearOperator with rmatvec"
        ) from None


@dataclass(frozen=True)
class Composite(Problem):
    r"""Minimize :math:`f(x) + g(Kx) + h(x)`.

    ``f`` and ``g`` are closed convex functions used through their proxes (the
    dual step of a primal–dual method takes the prox of :math:`g^*` through
    the Moreau identity, :meth:`opsplit.prox.ProxFunction.conjugate`); ``K`` is
    a linear operator with its adjoint; ``h`` is convex with an
    :math:`L_h`-Lipschitz gradient, used only through that gradient
    (:class:`~opsplit.CondatVu`).  The saddle-point form that primal–dual
    methods solve is

    .. math::

        \min_x \max_y\; f(x) + h(x) + \langle Kx, y\rangle - g^*(y),

    whose solutions satisfy :math:`0 \in \partial f(x) + \nabla h(x) + K^{T} y`
    and :math:`0 \in \partial g^*(y) - Kx`.

    Parameters
    ----------
    f : ProxFunction
        Applied to ``x`` through its prox.
    g : ProxFunction
        Applied to ``Kx``, through the prox of its conjugate.
    K : LinearOperator or array, optional
        The linear map; the identity when ``None``.  A 2-D array is wrapped
        in :class:`~opsplit.Dense`, a SciPy sparse matrix or
        ``LinearOperator`` in :func:`~opsplit.operators.from_scipy`.  Its
        ``in_shape`` is the trailing shape of one sample of ``x``: leading
        axes beyond it are batch axes.
    smooth : ForwardOperator or ProxFunction, optional
        ``h``: either its gradient as a :class:`~opsplit.ForwardOperator`
        (e.g. ``ops.Gradient(grad, lipschitz=L)``), or a smooth
        :class:`~opsplit.prox.ProxFunction` (trait ``smooth``: its
        ``gradient`` and ``lipschitz``, e.g. ``ops.prox.LeastSquares(A, b)``).
        Its ``lipschitz`` constant :math:`L_h` sizes the steps.

    Examples
    --------
    1-D total-variation denoising, :math:`\tfrac12\|x - b\|^2 + \lambda\|Dx\|_1`:

    >>> import numpy as np, opsplit as ops
    >>> b = np.array([0.0, 0.1, 2.0, 2.1])
    >>> D = ops.Dense(np.diff(np.eye(4), axis=0))
    >>> prob = ops.Composite(f=ops.prox.Translated(ops.prox.SquaredL2(), b),
    ...                      g=ops.prox.L1(0.05), K=D)
    >>> prob.core_shape(), round(float(prob.objective(b)), 6)
    ((4,), 0.105)
    """

    f: ProxFunction
    g: ProxFunction
    K: Any = None
    smooth: Any = None

    def __post_init__(self):
        for name in ("f", "g"):
            value = getattr(self, name)
            if not isinstance(value, ProxFunction):
                raise TypeError(f"{name} must be a ProxFunction, got {type(value).__name__}")
        if self.K is not None:
            object.__setattr__(self, "K", _as_linear(self.K))
        h = self.smooth
        if h is None or isinstance(h, ForwardOperator):
            pass
        elif isinstance(h, ProxFunction):
            if not h.smooth:
                raise TypeError(
                    f"smooth must be differentiable with a Lipschitz gradient; {h!r} is not "
                    "(its smooth trait is False): put it in f instead"
                )
        else:
            raise TypeError(
                "smooth must be a ForwardOperator (e.g. ops.Gradient(grad, lipschitz=L)) or a "
                f"smooth ProxFunction, got {type(h).__name__}"
            )
        core = getattr(h, "core_shape", None) if isinstance(h, ForwardOperator) else None
        if core is not None and self.K is not None and tuple(core) != tuple(self.K.in_shape):
            raise ValueError(
                f"smooth acts on samples of shape {tuple(core)} but K's in_shape is "
                f"{tuple(self.K.in_shape)}"
            )

    # -- the pieces a method applies --------------------------------------------------

    def apply_K(self, x):
        """:math:`Kx` (``x`` itself when ``K`` is the identity)."""
        return x if self.K is None else self.K.matvec(x)

    def apply_KT(self, y):
        """:math:`K^{T} y` (``y`` itself when ``K`` is the identity)."""
        return y if self.K is None else self.K.rmatvec(y)

    @property
    def has_smooth(self) -> bool:
        """Whether the problem has a smooth term ``h``."""
        return self.smooth is not None

    def smooth_gradient(self, x):
        r""":math:`\nabla h(x)` (``ValueError`` without a smooth term)."""
        h = self.smooth
        if h is None:
            raise ValueError("the problem has no smooth term h")
        return h.evaluate(x) if isinstance(h, ForwardOperator) else h.gradient(x)

    @property
    def smooth_lipschitz(self) -> float | None:
        r""":math:`L_h`, the Lipschitz constant of :math:`\nabla h` (``0.0``
        without a smooth term, ``None`` when ``h`` does not state it)."""
        if self.smooth is None:
            return 0.0
        L = self.smooth.lipschitz
        return None if L is None else float(L)

    def objective(self, x):
        r"""The value :math:`f(x) + g(Kx) + h(x)` (summed over a batch), a 0-d
        array of ``x``'s library.

        ``h`` must be a smooth :class:`~opsplit.prox.ProxFunction` (a gradient
        alone has no value).
        """
        value = self.f.value(x) + self.g.value(self.apply_K(x))
        h = self.smooth
        if h is None:
            return value
        if isinstance(h, ForwardOperator):
            raise ValueError(
                "the objective needs h's value, but smooth was given as its gradient "
                f"({type(h).__name__}); give h as a smooth ProxFunction"
            )
        return value + h.value(x)

    # -- Problem ----------------------------------------------------------------------

    def core_shape(self):
        """``K``'s ``in_shape`` (``None`` when ``K`` is the identity)."""
        return None if self.K is None else tuple(self.K.in_shape)

    def validate(self, x, name="x0") -> None:
        """Raise unless ``x`` is an array whose trailing axes are ``K``'s ``in_shape``,
        of ``K``'s dtype (so that float32 stays float32)."""
        if isinstance(x, tuple):
            raise TypeError(f"{name} must be an array: Composite problems do not take "
                            "block (tuple) vectors")
        if self.K is None:
            return
        if self.K.dtype is not None and self.K.dtype != x.dtype:
            raise TypeError(f"{name} has dtype {x.dtype} but K has {self.K.dtype}: give both "
                            "one dtype")
        try:
            check_trailing(x, self.K.in_shape, name)
        except ValueError as exc:
            raise ValueError(f"{exc}: K's in_shape is {tuple(self.K.in_shape)} "
                             f"({type(self.K).__name__} K)") from None
