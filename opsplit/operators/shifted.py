"""Structure-aware shifted inverses ``(a·I + b·L)⁻¹``.

Each rule returns a *new operator value* holding its precomputation (an
inverse matrix, inverted FFT symbols, ...), so a solver computes it once and
applies it to every iterate and every batch row.  Structures register their
rule with :func:`shifted_inverse.register`.
"""

from __future__ import annotations

from functools import singledispatch

from .._backend import namespace
from .._validate import check_real
from ._base import AdjointOperator, LinearOperator, ScaledOperator, StructureError
from .basic import Dense, Diagonal, Identity

__all__ = ["shifted_inverse"]


def _check_shift(a, b):
    check_real(a, "a")
    check_real(b, "b")


@singledispatch
def shifted_inverse(op: LinearOperator, a: float = 1.0, b: float = 1.0) -> LinearOperator:
    r"""Return the operator :math:`(a I + b L)^{-1}` for ``L = op``.

    Parameters
    ----------
    op : LinearOperator
        A square operator with exploitable structure: Identity, Diagonal,
        Dense, a scaled or adjoint one of those, an FFT convolution or a
        block lower-triangular operator.
    a, b : float
        The shift and the scaling.

    Returns
    -------
    LinearOperator
        The inverse, with its precomputation done once.

    Raises
    ------
    StructureError
        When no structure of ``op`` allows a direct inverse.

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> M = np.array([[2.0, 1.0], [-1.0, 2.0]])
    >>> inv = ops.shifted_inverse(ops.Dense(M), 1.0, 0.5)
    >>> x = np.array([1.0, -2.0])
    >>> np.allclose(inv @ (x + 0.5 * (M @ x)), x)
    True
    """
    raise StructureError(
        f"no structure-aware shifted inverse for {type(op).__name__}; "
        "form it as ops.Dense(matrix) or use an operator with structure"
    )


@shifted_inverse.register
def _(op: Identity, a: float = 1.0, b: float = 1.0):
    _check_shift(a, b)
    if a + b == 0:
        raise ZeroDivisionError("a·I + b·I is singular (a + b == 0)")
    return ScaledOperator(1.0 / (a + b), op)


@shifted_inverse.register
def _(op: Diagonal, a: float = 1.0, b: float = 1.0):
    _check_shift(a, b)
    return Diagonal(1.0 / (a + b * op.diagonal))


@shifted_inverse.register
def _(op: Dense, a: float = 1.0, b: float = 1.0):
    _check_shift(a, b)
    xp = namespace(op.matrix)
    n, m = op.matrix.shape
    if n != m:
        raise ValueError(f"shifted inverse needs a square matrix, got shape {(n, m)}")
    from array_api_compat import device

    eye = xp.eye(n, dtype=op.matrix.dtype, device=device(op.matrix))
    # One LU factorization, kept as an explicit inverse: every later
    # application is a single (batched) matrix product.
    return Dense(xp.linalg.inv(a * eye + b * op.matrix))


@shifted_inverse.register
def _(op: ScaledOperator, a: float = 1.0, b: float = 1.0):
    _check_shift(a, b)
    return shifted_inverse(op.op, a, b * op.scalar)


@shifted_inverse.register
def _(op: AdjointOperator, a: float = 1.0, b: float = 1.0):
    _check_shift(a, b)
    return shifted_inverse(op.op, a, b).H
