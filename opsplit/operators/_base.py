"""Abstract linear operator and its lazy algebra.

A linear operator acts on the trailing axes of its input (``in_shape``);
any leading axes are batch axes and pass through unchanged.  The adjoint
``rmatvec`` is mandatory: every splitting method that needs ``Lᴴ`` can rely
on it, and the dot test checks it.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod

from .._backend import device, namespace
from .._vectors import add, is_block_shape, scale, shape_size

__all__ = [
    "LinearOperator",
    "flatten",
    "unflatten",
    "SumOperator",
    "ScaledOperator",
    "ProductOperator",
    "AdjointOperator",
    "StructureError",
    "check_linear",
]


class StructureError(TypeError):
    """Raised when an operation needs structure an operator does not have."""


def check_linear(op, name: str = "op", *, square: bool = False) -> None:
    """Raise ``TypeError`` naming ``name`` unless ``op`` is a :class:`LinearOperator`,
    and ``ValueError`` when ``square`` and its input and output shapes differ."""
    if not isinstance(op, LinearOperator):
        raise TypeError(f"{name} must be a LinearOperator, got {type(op).__name__}")
    if square and op.in_shape != op.out_shape:
        raise ValueError(f"{name} must be square, got {op.out_shape} <- {op.in_shape}")


class LinearOperator(ABC):
    """A linear map acting on the trailing axes of arrays.

    Subclasses set ``in_shape`` and ``out_shape`` (the trailing shapes that
    the operator consumes and produces) and ``dtype`` (``None`` when the
    operator adapts to its input's dtype, like :class:`Identity`), and
    implement :meth:`matvec` and :meth:`rmatvec`.

    The algebra is lazy: ``A + B``, ``A - B``, ``2.0 * A``, ``-A``, ``A @ B``
    and ``A.H`` build new operators without forming matrices.  ``A @ x`` with
    an array ``x`` applies the operator.
    """

    in_shape: tuple
    out_shape: tuple
    dtype = None

    @abstractmethod
    def matvec(self, x):
        """Apply the operator to the trailing ``in_shape`` axes of ``x``."""

    @abstractmethod
    def rmatvec(self, y):
        """Apply the adjoint to the trailing ``out_shape`` axes of ``y``."""

    # -- shape --------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        """``(prod(out_shape), prod(in_shape))``: the size of the dense matrix."""
        return (shape_size(self.out_shape), shape_size(self.in_shape))

    @property
    def H(self) -> LinearOperator:
        """The adjoint (conjugate transpose) operator."""
        return AdjointOperator(self)

    @property
    def T(self) -> LinearOperator:
        """The transpose; equal to :attr:`~opsplit.operators.LinearOperator.H`
        for the real operators here."""
        return self.H

    def __call__(self, x):
        return self.matvec(x)

    # -- lazy algebra -------------------------------------------------------
    def __add__(self, other):
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return SumOperator(self, other)

    def __sub__(self, other):
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return SumOperator(self, ScaledOperator(-1.0, other))

    def __mul__(self, scalar):
        if not isinstance(scalar, numbers.Real) or isinstance(scalar, bool):
            return NotImplemented
        return ScaledOperator(float(scalar), self)

    __rmul__ = __mul__

    def __neg__(self):
        return ScaledOperator(-1.0, self)

    def __matmul__(self, other):
        if isinstance(other, LinearOperator):
            return ProductOperator(self, other)
        return self.matvec(other)

    def to_dense(self, like=None):
        """The dense matrix of shape :attr:`shape` (row-major flattening).

        Built by applying the operator to the identity basis, so it costs
        ``shape[1]`` applications; intended for tests and small problems.
        ``like`` supplies the array library, dtype and device when the
        operator holds no array of its own.  Operators on tuples of arrays
        (block operators) flatten their blocks in order, see :func:`flatten`.
        """
        like = self._like(like)
        xp = namespace(like)
        n_in = shape_size(self.in_shape)
        eye = xp.eye(n_in, dtype=like.dtype, device=device(like))
        rows = flatten(self.matvec(unflatten(eye, self.in_shape)), self.out_shape)
        return xp.matrix_transpose(rows)

    def _like(self, like):
        """An array giving library, dtype and device; subclasses holding arrays
        return one of theirs."""
        if like is None:
            raise ValueError(
                f"{type(self).__name__}.to_dense needs `like`: the operator holds no array"
            )
        return like

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.out_shape} <- {self.in_shape}>"


def flatten(x, shape):
    """Merge the trailing ``shape`` axes of ``x`` into one (row-major).

    ``shape`` is an operator's ``in_shape``/``out_shape``.  For a block shape
    (a tuple of shapes) ``x`` is a tuple of arrays; their flattened blocks
    are concatenated in order.  Leading batch axes are kept.

    Examples
    --------
    >>> import numpy as np
    >>> from opsplit.operators._base import flatten
    >>> flatten((np.zeros((2, 1)), np.ones((2, 2, 2))), ((1,), (2, 2)))
    array([[0., 1., 1., 1., 1.],
           [0., 1., 1., 1., 1.]])
    """
    if is_block_shape(shape):
        if not isinstance(x, tuple) or len(x) != len(shape):
            raise ValueError(f"x must be a tuple of {len(shape)} arrays")
        parts = [flatten(part, s) for part, s in zip(x, shape, strict=True)]
        return namespace(*parts).concat(parts, axis=-1)
    xp = namespace(x)
    batch = tuple(x.shape[: x.ndim - len(shape)])
    return xp.reshape(x, (*batch, math.prod(shape)))


def unflatten(v, shape):
    """Inverse of :func:`flatten`: split the last axis of ``v`` into ``shape``.

    Examples
    --------
    >>> import numpy as np
    >>> from opsplit.operators._base import unflatten
    >>> [p.shape for p in unflatten(np.arange(5.0), ((1,), (2, 2)))]
    [(1,), (2, 2)]
    """
    xp = namespace(v)
    if is_block_shape(shape):
        parts, start = [], 0
        for s in shape:
            stop = start + math.prod(s)
            parts.append(unflatten(v[..., start:stop], s))
            start = stop
        return tuple(parts)
    return xp.reshape(v, (*v.shape[:-1], *shape))


def _common_dtype(a, b):
    return a.dtype if a.dtype is not None else b.dtype


class SumOperator(LinearOperator):
    """``A + B``."""

    def __init__(self, a: LinearOperator, b: LinearOperator):
        if a.in_shape != b.in_shape or a.out_shape != b.out_shape:
            raise ValueError(
                f"cannot add operators of shapes {a.out_shape}<-{a.in_shape} "
                f"and {b.out_shape}<-{b.in_shape}"
            )
        self.a, self.b = a, b
        self.in_shape, self.out_shape = a.in_shape, a.out_shape
        self.dtype = _common_dtype(a, b)

    def matvec(self, x):
        return add(self.a.matvec(x), self.b.matvec(x))

    def rmatvec(self, y):
        return add(self.a.rmatvec(y), self.b.rmatvec(y))

    def _like(self, like):
        try:
            return self.a._like(like)
        except ValueError:
            return self.b._like(like)


class ScaledOperator(LinearOperator):
    """``scalar * A`` for a real scalar."""

    def __init__(self, scalar: float, op: LinearOperator):
        self.scalar, self.op = float(scalar), op
        self.in_shape, self.out_shape, self.dtype = op.in_shape, op.out_shape, op.dtype

    def matvec(self, x):
        return scale(self.scalar, self.op.matvec(x))

    def rmatvec(self, y):
        return scale(self.scalar, self.op.rmatvec(y))

    def _like(self, like):
        return self.op._like(like)


class ProductOperator(LinearOperator):
    """The composition ``A @ B``: ``x ↦ A(B(x))``."""

    def __init__(self, a: LinearOperator, b: LinearOperator):
        if a.in_shape != b.out_shape:
            raise ValueError(
                f"cannot compose: left operator takes {a.in_shape}, right gives {b.out_shape}"
            )
        self.a, self.b = a, b
        self.in_shape, self.out_shape = b.in_shape, a.out_shape
        self.dtype = _common_dtype(a, b)

    def matvec(self, x):
        return self.a.matvec(self.b.matvec(x))

    def rmatvec(self, y):
        return self.b.rmatvec(self.a.rmatvec(y))

    def _like(self, like):
        try:
            return self.a._like(like)
        except ValueError:
            return self.b._like(like)


class AdjointOperator(LinearOperator):
    """``Aᴴ``, built lazily from ``A.rmatvec``."""

    def __init__(self, op: LinearOperator):
        self.op = op
        self.in_shape, self.out_shape, self.dtype = op.out_shape, op.in_shape, op.dtype

    def matvec(self, x):
        return self.op.rmatvec(x)

    def rmatvec(self, y):
        return self.op.matvec(y)

    @property
    def H(self) -> LinearOperator:
        return self.op

    def _like(self, like):
        return self.op._like(like)
