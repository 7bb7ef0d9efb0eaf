r"""The linearly constrained problem min f(x) + g(z) s.t. Ax + Bz = c (ADMM's form)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._backend import check_finite, check_floating, same_library
from .._validate import check_positive
from .._vectors import dtype_of, first_array, is_block_shape
from ..operators._base import LinearOperator
from ..operators.basic import check_trailing
from ..prox._base import ProxFunction
from ._base import Problem

__all__ = ["Constrained"]


@dataclass(frozen=True)
class Constrained(Problem):
    r"""Minimize :math:`f(x) + g(z)` subject to :math:`A x + B z = c`.

    The form of Boyd et al. (2011, §3) that :class:`~opsplit.ADMM` solves.
    Without ``A``, ``B`` and ``c`` it is the splitting (consensus) form
    :math:`\min f(x) + g(z)` s.t. :math:`x = z` (``A = I``, ``B = -I``,
    ``c = 0``), i.e. :math:`\min_x f(x) + g(x)`; with ``B`` omitted it is
    :math:`\min f(x) + g(Ax - c)` (``B = -I``); with ``A`` omitted, ``A = I``.
    The iterate ``x0`` given to :func:`~opsplit.solve` is the starting ``x``
    (its leading axes beyond ``A``'s input shape are batch axes, so give
    ``A = ops.Identity(n)`` to declare the shape of a batched consensus
    problem), and the solution returned is ``x``.

    Parameters
    ----------
    f : ProxFunction
        Closed convex ``f`` of ``x``; ADMM applies its prox.
    g : ProxFunction
        Closed convex ``g`` of ``z``; ADMM applies its prox.
    A : LinearOperator, optional
        Maps ``x`` to the constraint space; the identity when omitted.
    B : LinearOperator, optional
        Maps ``z`` to the constraint space (the same ``out_shape`` as ``A``);
        ``-I`` when omitted.
    c : array, optional
        Right-hand side, with ``A``'s output shape as trailing axes (leading
        batch axes allowed); zero when omitted.
    norm_A : float, optional
        A bound :math:`\ge \|A\|_2` for ADMM's linearized x-update (used when
        ``A`` is not a multiple of the identity).  Without it ADMM computes
        the norm once: exactly from ``A``'s structure or dense matrix, else by
        Lanczos; give it (e.g. from :func:`opsplit.diagnostics.opnorm`) when
        ``A`` holds no array.
    norm_B : float, optional
        The same for ``B``.

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> D = ops.Dense(np.array([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0]]))
    >>> prob = ops.Constrained(ops.prox.SquaredL2(), ops.prox.L1(0.5), A=D)
    >>> prob.core_shape(), prob.batch_ndim(np.zeros((4, 3)))
    ((3,), 1)
    """

    f: ProxFunction
    g: ProxFunction
    A: LinearOperator | None = None
    B: LinearOperator | None = None
    c: Any = None
    norm_A: float | None = None
    norm_B: float | None = None

    def __post_init__(self):
        for name in ("f", "g"):
            value = getattr(self, name)
            if not isinstance(value, ProxFunction):
                raise TypeError(
                    f"{name} must be a ProxFunction (e.g. ops.prox.L1), got {type(value).__name__}"
                )
        for name in ("A", "B"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, LinearOperator):
                raise TypeError(
                    f"{name} must be a LinearOperator (with an adjoint), got {type(value).__name__}"
                )
        A, B = self.A, self.B
        if A is not None and B is not None and A.out_shape != B.out_shape:
            raise ValueError(
                f"B maps to shape {B.out_shape} but A maps to {A.out_shape}: Ax + Bz = c "
                "needs A and B with the same output shape"
            )
        if A is not None and B is not None and None not in (A.dtype, B.dtype) \
                and A.dtype != B.dtype:
            raise TypeError(f"B has dtype {B.dtype} but A has {A.dtype}")
        if self.c is not None:
            check_floating(self.c, "c")
            shape = self.constraint_shape
            if shape is not None:
                check_trailing(self.c, shape, "c")
            check_finite(self.c, "c")
            dtype = self.operator_dtype
            if dtype is not None and dtype_of(self.c) != dtype:
                raise TypeError(f"c has dtype {dtype_of(self.c)} but the operators have {dtype}")
        for name in ("norm_A", "norm_B"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, check_positive(value, name))

    @property
    def constraint_shape(self):
        """Trailing shape of ``Ax + Bz`` and ``c``, or ``None`` when no operator gives it."""
        for op in (self.A, self.B):
            if op is not None:
                return op.out_shape
        return None

    @property
    def operator_dtype(self):
        """The dtype of ``A`` or ``B`` when one holds arrays, else ``None``."""
        for op in (self.A, self.B):
            if op is not None and op.dtype is not None:
                return op.dtype
        return None

    def core_shape(self):
        """Trailing shape of one ``x``: ``A``'s input shape (the constraint shape
        when ``A = I`` and ``B`` is given), else ``None``."""
        if self.A is not None:
            return self.A.in_shape
        return self.constraint_shape

    def validate(self, x, name="x0") -> None:
        shape = self.core_shape()
        if shape is not None:
            check_trailing(x, shape, name)
        first = first_array(x)
        if self.c is not None:
            same_library(first, first_array(self.c), name, "c")
            constraint = self.constraint_shape
            plain = shape is not None and not is_block_shape(shape)
            if plain and constraint is not None and not is_block_shape(constraint):
                c_batch = self.c.ndim - len(constraint)
                if c_batch > first.ndim - len(shape):
                    raise ValueError(
                        f"c has batch axes {tuple(self.c.shape)} that {name} of shape "
                        f"{tuple(first.shape)} lacks: give {name} the same batch axes"
                    )
        dtype = self.operator_dtype
        if dtype is not None and dtype_of(x) != dtype:
            raise TypeError(f"{name} has dtype {dtype_of(x)} but the operators have {dtype}")
