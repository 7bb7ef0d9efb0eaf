"""Monotone operators, described by what they offer.

A :class:`ForwardOperator` can be *evaluated* (forward steps); a
:class:`ResolventOperator` offers its resolvent :math:`J_{\\alpha A} =
(I + \\alpha A)^{-1}` (backward steps).  An operator may be both.  Methods
ask for the capability they need through the type, never by probing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from .._backend import device, namespace, same_library
from .._validate import check_positive
from .._vectors import add, axpy, dtype_of, first_array, reflect, scale, sub
from ._base import AdjointOperator, LinearOperator
from .basic import Dense, Identity, check_trailing
from .shifted import shifted_inverse

__all__ = [
    "MonotoneOperator",
    "ForwardOperator",
    "ResolventOperator",
    "LinearMonotone",
    "Subdifferential",
    "Gradient",
    "NormalCone",
    "ScaledMonotone",
    "ScaledForward",
    "ScaledResolvent",
    "ScaledForwardResolvent",
    "SumMonotone",
    "AffineMap",
]


class MonotoneOperator(ABC):
    """A (maximally) monotone operator on arrays.

    Attributes
    ----------
    core_shape : tuple or None
        Trailing shape of one sample, when the operator knows it; leading
        axes beyond it are batch axes.
    strong_monotonicity : float or None
        A known constant ``m`` with ``⟨Ax - Ay, x - y⟩ ≥ m‖x - y‖²``.
    """

    core_shape = None
    strong_monotonicity = None

    def validate(self, x, name: str = "x") -> None:
        """Raise ``ValueError``/``TypeError`` naming ``name`` if ``x`` does not fit."""

    def __mul__(self, scalar):
        if not isinstance(scalar, (int, float)) or isinstance(scalar, bool):
            return NotImplemented
        return ScaledMonotone(float(scalar), self)

    __rmul__ = __mul__


class ForwardOperator(MonotoneOperator):
    """A monotone operator that can be evaluated directly.

    Attributes
    ----------
    lipschitz : float or None
        A Lipschitz constant, when known.
    cocoercivity : float or None
        ``β`` with ``⟨Ax - Ay, x - y⟩ ≥ β‖Ax - Ay‖²``, when known.
    """

    lipschitz = None
    cocoercivity = None

    @abstractmethod
    def evaluate(self, x):
        """Return ``A(x)``."""

    def __call__(self, x):
        return self.evaluate(x)

    def forward_step(self, step: float) -> Callable:
        """Return the explicit step :math:`x \\mapsto x - \\text{step}\\,A(x)`."""
        check_positive(step, "step")
        return lambda x: axpy(-float(step), self.evaluate(x), x)

    def __add__(self, other):
        if not isinstance(other, ForwardOperator):
            return NotImplemented
        return SumMonotone(self, other)


class ResolventOperator(MonotoneOperator):
    """A monotone operator whose resolvent is available."""

    @abstractmethod
    def resolvent(self, step: float) -> Callable:
        """Return the map :math:`x \\mapsto (I + \\text{step}\\,A)^{-1} x`.

        Any precomputation (a factorization, FFT symbols) happens here, once,
        and lives in the returned callable.
        """

    def reflected_resolvent(self, step: float) -> Callable:
        """Return :math:`R_{\\text{step}\\,A} = 2 J_{\\text{step}\\,A} - I`."""
        resolvent = self.resolvent(step)
        return lambda x: reflect(resolvent(x), x)


@dataclass(frozen=True)
class AffineMap:
    r"""The affine map :math:`y \mapsto T y - s` (a precomputed value).

    Resolvents and reflected resolvents of :class:`LinearMonotone` take this
    form: :math:`J_{\alpha A}(y) = (I + \alpha L)^{-1} y - (I + \alpha L)^{-1}
    \alpha c` and :math:`R_{\alpha A} = 2 J_{\alpha A} - I`.
    """

    linear: LinearOperator
    shift: object  # an array, a tuple of arrays, or None

    def __call__(self, y):
        out = self.linear.matvec(y)
        return out if self.shift is None else sub(out, self.shift)


def _identity_plus(dense: Dense, factor: float, identity_factor: float = 1.0) -> Dense:
    """The matrix ``identity_factor·I + factor·M`` of a square dense ``M``."""
    xp = namespace(dense.matrix)
    n = dense.matrix.shape[0]
    eye = xp.eye(n, dtype=dense.matrix.dtype, device=device(dense.matrix))
    return Dense(identity_factor * eye + factor * dense.matrix)


def _cayley(inverse: LinearOperator) -> LinearOperator:
    """``2·inverse - I``, as one matrix when the inverse is dense."""
    if isinstance(inverse, Dense):
        return _identity_plus(inverse, 2.0, -1.0)
    if isinstance(inverse, AdjointOperator) and isinstance(inverse.op, Dense):
        # e.g. a backward (adjoint) problem sharing the forward inverse
        return _identity_plus(inverse.op, 2.0, -1.0).H
    return 2.0 * inverse - Identity(inverse.in_shape)


class LinearMonotone(ForwardOperator, ResolventOperator):
    r"""The affine monotone map :math:`x \mapsto L x + c`.

    Monotone when the symmetric part of ``L`` is positive semidefinite.
    Its resolvent is :math:`(I + \alpha L)^{-1}(y - \alpha c)`, with the
    inverse built by :func:`shifted_inverse` once per step size.

    Parameters
    ----------
    op : LinearOperator
        The square linear part ``L``.
    offset : array, optional
        The constant ``c``; broadcast against the batch (shape ``op.out_shape``
        or with leading batch axes).
    inverse : tuple (step, LinearOperator), optional
        A precomputed :math:`(I + \text{step}\,L)^{-1}`, used by
        :meth:`resolvent` for that step instead of computing it again (for
        example shared between a forward and a backward problem).
    lipschitz, strong_monotonicity : float, optional
        Known constants (``‖L‖`` and λ_min of the symmetric part).

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> F = ops.LinearMonotone(ops.Dense(np.eye(2) * 2.0), np.array([1.0, 0.0]))
    >>> F(np.ones(2)), F.resolvent(0.5)(np.ones(2))
    (array([3., 2.]), array([0.25, 0.5 ]))
    """

    def __init__(self, op, offset=None, *, inverse=None, lipschitz=None, strong_monotonicity=None):
        if not isinstance(op, LinearOperator):
            raise TypeError(f"op must be a LinearOperator, got {type(op).__name__}")
        if op.in_shape != op.out_shape:
            raise ValueError(f"op must be square, got {op.out_shape} <- {op.in_shape}")
        if offset is not None:
            namespace(offset)  # raises TypeError for non-arrays
            if op.dtype is not None and dtype_of(offset) != op.dtype:
                raise TypeError(f"offset has dtype {dtype_of(offset)}, op has {op.dtype}")
            check_trailing(offset, op.out_shape, "offset")
        if inverse is not None:
            step, inv = inverse
            check_positive(step, "step")
            if not isinstance(inv, LinearOperator):
                raise TypeError("inverse must be a (step, LinearOperator) pair")
        self.op, self.offset, self.inverse = op, offset, inverse
        self.core_shape = op.in_shape
        self.lipschitz = lipschitz
        self.strong_monotonicity = strong_monotonicity

    def validate(self, x, name="x"):
        check_trailing(x, self.core_shape, name)
        first = x[0] if isinstance(x, tuple) else x
        if self.offset is not None:
            offset = first_array(self.offset)
            same_library(first, offset, name, "offset")
            if offset.ndim > first.ndim:
                raise ValueError(
                    f"offset has batch axes {tuple(offset.shape)} that {name} of shape "
                    f"{tuple(first.shape)} lacks: give {name} the same batch axes"
                )
        if self.op.dtype is not None:
            same_library(first, self.op._like(None), name, "the operator's array")
            if first.dtype != self.op.dtype:
                raise TypeError(
                    f"{name} has dtype {first.dtype} but the operator has {self.op.dtype}"
                )

    def evaluate(self, x):
        y = self.op.matvec(x)
        return y if self.offset is None else add(y, self.offset)

    def _inverse(self, step):
        check_positive(step, "step")
        if self.inverse is not None and self.inverse[0] == step:
            return self.inverse[1]
        return shifted_inverse(self.op, 1.0, float(step))

    def _shift(self, inv, step, factor):
        if self.offset is None:
            return None
        return inv.matvec(scale(factor * float(step), self.offset))

    def resolvent(self, step):
        inv = self._inverse(step)
        return AffineMap(inv, self._shift(inv, step, 1.0))

    def forward_step(self, step):
        # x - α(Lx + c) = (I - αL)x - αc: one product with a precomputed
        # matrix when L is dense, instead of a product and two extra passes.
        check_positive(step, "step")
        shift = None if self.offset is None else scale(float(step), self.offset)
        if isinstance(self.op, Dense):
            return AffineMap(_identity_plus(self.op, -float(step)), shift)
        return AffineMap(Identity(self.op.in_shape) - float(step) * self.op, shift)

    def reflected_resolvent(self, step):
        # R = 2J - I is affine too: one product with the Cayley matrix per
        # application instead of a product and two extra passes.
        inv = self._inverse(step)
        return AffineMap(_cayley(inv), self._shift(inv, step, 2.0))


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
        from ..prox._base import ProxFunction

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
            def blocks(x):
                if isinstance(x, tuple):
                    return tuple(fn(part, step) for part in x)
                return fn(x, step)

            return blocks
        return lambda x: fn(x, step)


class NormalCone(Subdifferential):
    r"""The normal cone :math:`N_C` of a closed convex set ``C``.

    ``C`` is given by its indicator, a :class:`~opsplit.prox.ProxFunction`
    whose prox is the projection (for example ``prox.Box`` or
    ``prox.L2Ball``); the resolvent is that projection for every step.
    """

    def __init__(self, indicator):
        super().__init__(indicator)
        if not getattr(indicator, "indicator", False):
            raise TypeError("indicator must be the indicator function of a set")


class Gradient(ForwardOperator):
    r"""The gradient :math:`\nabla h` of a convex differentiable function.

    Parameters
    ----------
    grad : callable
        ``x ↦ ∇h(x)``.
    lipschitz : float, optional
        Lipschitz constant ``L`` of ``∇h``; by Baillon–Haddad the gradient is
        then ``1/L``-cocoercive.
    strong_monotonicity : float, optional
        Strong convexity constant of ``h``.
    core_shape : tuple, optional
        Trailing shape of one sample.
    """

    def __init__(self, grad, *, lipschitz=None, strong_monotonicity=None, core_shape=None):
        if not callable(grad):
            raise TypeError("grad must be callable")
        self.grad = grad
        self.lipschitz = lipschitz
        self.cocoercivity = None if not lipschitz else 1.0 / lipschitz
        self.strong_monotonicity = strong_monotonicity
        self.core_shape = core_shape

    def evaluate(self, x):
        return self.grad(x)


class ScaledMonotone(MonotoneOperator):
    r"""``s·A`` for ``s > 0``; build it with ``s * A``.

    It offers exactly the capabilities of ``A``: the subclass
    :class:`ScaledForward` evaluates ``s·A(x)``, :class:`ScaledResolvent`
    gives :math:`J_{\alpha s A} = J_{(\alpha s) A}`, and
    :class:`ScaledForwardResolvent` both.
    """

    def __new__(cls, scalar: float, op: MonotoneOperator):
        if cls is ScaledMonotone:
            forward = isinstance(op, ForwardOperator)
            backward = isinstance(op, ResolventOperator)
            cls = {
                (True, True): ScaledForwardResolvent,
                (True, False): ScaledForward,
                (False, True): ScaledResolvent,
            }.get((forward, backward), ScaledMonotone)
        return super().__new__(cls)

    def __init__(self, scalar: float, op: MonotoneOperator):
        if not isinstance(op, MonotoneOperator):
            raise TypeError(f"op must be a MonotoneOperator, got {type(op).__name__}")
        if not scalar > 0:
            raise ValueError(f"scalar must be > 0 to keep monotonicity, got {scalar}")
        self.scalar, self.op = float(scalar), op
        self.core_shape = op.core_shape
        m = op.strong_monotonicity
        self.strong_monotonicity = None if m is None else scalar * m

    def validate(self, x, name="x"):
        self.op.validate(x, name)


class ScaledForward(ScaledMonotone, ForwardOperator):
    """``s·A`` of an evaluable ``A``."""

    def __init__(self, scalar, op):
        super().__init__(scalar, op)
        self.lipschitz = None if op.lipschitz is None else self.scalar * op.lipschitz
        self.cocoercivity = None if op.cocoercivity is None else op.cocoercivity / self.scalar

    def evaluate(self, x):
        return self.scalar * self.op.evaluate(x)


class ScaledResolvent(ScaledMonotone, ResolventOperator):
    """``s·A`` of an ``A`` with a resolvent."""

    def resolvent(self, step):
        check_positive(step, "step")
        return self.op.resolvent(step * self.scalar)


class ScaledForwardResolvent(ScaledForward, ScaledResolvent):
    """``s·A`` of an ``A`` that is both evaluable and has a resolvent."""


class SumMonotone(ForwardOperator):
    """``A + B`` of two directly evaluable monotone operators."""

    def __init__(self, a: ForwardOperator, b: ForwardOperator):
        self.a, self.b = a, b
        self.core_shape = a.core_shape if a.core_shape is not None else b.core_shape
        la, lb = a.lipschitz, b.lipschitz
        self.lipschitz = None if la is None or lb is None else la + lb
        ma, mb = a.strong_monotonicity, b.strong_monotonicity
        self.strong_monotonicity = (ma or 0.0) + (mb or 0.0) if (ma or mb) else None

    def validate(self, x, name="x"):
        self.a.validate(x, name)
        self.b.validate(x, name)

    def evaluate(self, x):
        return self.a.evaluate(x) + self.b.evaluate(x)
