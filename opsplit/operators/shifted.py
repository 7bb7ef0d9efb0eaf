"""Structure-aware shifts ``a·I + b·L`` and shifted inverses ``(a·I + b·L)⁻¹``.

Each rule returns a *new operator value* holding its precomputation (an
inverse matrix, inverted FFT symbols, one shifted matrix, ...), so a solver
computes it once and applies it to every iterate and every batch row.
Structures register their rules with :func:`shifted_inverse.register` and
:func:`shifted_operator.register`; a structure whose inverse is iterative
(a Krylov solve, :mod:`opsplit.operators.sparse`) also registers
:func:`inverse_tolerance`.
"""

from __future__ import annotations

from functools import singledispatch

from .._backend import device, namespace
from .._validate import check_real
from ._base import AdjointOperator, LinearOperator, ScaledOperator, StructureError, check_linear
from .basic import Dense, Diagonal, Identity

__all__ = ["shifted_inverse", "shifted_operator", "inverse_tolerance"]


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
    a : float
        The multiple of the identity.
    b : float
        The multiple of ``L``.

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
        raise ValueError(f"a·I + b·L is singular (a={a}, b={b}): L is the identity and a + b == 0")
    return ScaledOperator(1.0 / (a + b), op)


@shifted_inverse.register
def _(op: Diagonal, a: float = 1.0, b: float = 1.0):
    _check_shift(a, b)
    shifted = a + b * op.diagonal
    xp = namespace(shifted)
    if not bool(xp.all(shifted != 0)):
        raise ValueError(f"a·I + b·L is singular (a={a}, b={b}): a zero on the diagonal")
    return Diagonal(1.0 / shifted)


@shifted_inverse.register
def _(op: Dense, a: float = 1.0, b: float = 1.0):
    _check_shift(a, b)
    # One LU factorization, kept as an explicit inverse: every later
    # application is a single (batched) matrix product.
    try:
        inverse = namespace(op.matrix).linalg.inv(_shifted_matrix(op, a, b))
    except ValueError as exc:  # numpy's LinAlgError is a ValueError
        raise ValueError(f"a·I + b·L is singular (a={a}, b={b}): {exc}") from exc
    return Dense(inverse)


@singledispatch
def shifted_operator(op: LinearOperator, a: float = 1.0, b: float = 1.0) -> LinearOperator:
    r"""Return the operator :math:`a I + b L` for a square ``L = op``, as one value.

    Where the structure allows, the result is one operator of the same kind
    (one matrix for :class:`Dense`, one diagonal, one FFT symbol), so that
    applying it costs one product instead of a product and two vector passes;
    otherwise it is the lazy sum ``a·I + b·L``.  With ``a = -1``, ``b = 2``
    and ``op`` a resolvent :math:`(I + \alpha L)^{-1}` this is the Cayley map
    :math:`2 (I + \alpha L)^{-1} - I`; with ``a = 1``, ``b = -\alpha`` it is
    the forward step :math:`I - \alpha L`.

    Parameters
    ----------
    op : LinearOperator
        A square operator.
    a : float
        The multiple of the identity.
    b : float
        The multiple of ``L``.

    Returns
    -------
    LinearOperator

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> ops.operators.shifted_operator(ops.Dense(np.eye(2)), 1.0, -0.5).matrix
    array([[0.5, 0. ],
           [0. , 0.5]])
    """
    _check_shift(a, b)
    check_linear(op, square=True)
    return ScaledOperator(a, Identity(op.in_shape)) + ScaledOperator(b, op)


@shifted_operator.register
def _(op: Identity, a: float = 1.0, b: float = 1.0):
    _check_shift(a, b)
    return ScaledOperator(a + b, op)


@shifted_operator.register
def _(op: Diagonal, a: float = 1.0, b: float = 1.0):
    _check_shift(a, b)
    return Diagonal(a + b * op.diagonal)


@shifted_operator.register
def _(op: Dense, a: float = 1.0, b: float = 1.0):
    _check_shift(a, b)
    return Dense(_shifted_matrix(op, a, b))


def _shifted_matrix(op: Dense, a: float, b: float):
    """The array ``a·I + b·M`` of a square dense ``M``."""
    check_linear(op, square=True)
    xp = namespace(op.matrix)
    eye = xp.eye(op.matrix.shape[0], dtype=op.matrix.dtype, device=device(op.matrix))
    return a * eye + b * op.matrix


@singledispatch
def inverse_tolerance(op: LinearOperator) -> float:
    r"""The relative residual to which :func:`shifted_inverse` of ``op`` solves:
    0 for the direct rules (exact up to rounding), the ``tol`` of a Krylov
    solve (:class:`~opsplit.operators.sparse.KrylovInverse`).

    Error bounds that assume exact resolvents consult it (see
    :func:`opsplit._certify.error_bound`).

    Parameters
    ----------
    op : LinearOperator

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp, opsplit as ops
    >>> ops.operators.inverse_tolerance(ops.Dense(np.eye(2)))
    0.0
    >>> ops.operators.inverse_tolerance(ops.operators.Sparse(sp.eye(2), solver="cg", tol=1e-6))
    1e-06
    """
    return 0.0


@inverse_tolerance.register
def _(op: ScaledOperator):
    return inverse_tolerance(op.op)


@inverse_tolerance.register
def _(op: AdjointOperator):
    return inverse_tolerance(op.op)


def _register_views(rule):
    r"""The rules ``rule`` (:func:`shifted_inverse` or :func:`shifted_operator`)
    shares for views of an operator: :math:`aI + b(sL) = aI + (bs)L`, and
    :math:`(aI + bL^H)^{\pm 1} = ((aI + bL)^{\pm 1})^H` for real ``a``, ``b``
    (a transposed view of ``L``'s result, no new matrix)."""

    @rule.register
    def _(op: ScaledOperator, a: float = 1.0, b: float = 1.0):
        _check_shift(a, b)
        return rule(op.op, a, b * op.scalar)

    @rule.register
    def _(op: AdjointOperator, a: float = 1.0, b: float = 1.0):
        _check_shift(a, b)
        return rule(op.op, a, b).H


_register_views(shifted_inverse)
_register_views(shifted_operator)
