"""Conversion to and from :class:`scipy.sparse.linalg.LinearOperator`.

SciPy operators run on host NumPy arrays only; both directions refuse other
array libraries with a ``TypeError`` rather than copying data behind the
caller's back.  A sparse matrix becomes a :class:`~opsplit.operators.sparse.Sparse`
operator (its shifted inverses factorize); an operator known only through
its products gets shifted inverses by a Krylov method to a stated tolerance.
"""

from __future__ import annotations

import numpy as np

from ._base import LinearOperator, flatten, unflatten
from .basic import check_trailing
from .shifted import _check_shift, inverse_tolerance, shifted_inverse
from .sparse import SOLVERS, KrylovInverse, Sparse, check_solver

__all__ = ["ScipyOperator", "from_scipy", "to_scipy"]


def _check_numpy(x, name: str) -> None:
    if not isinstance(x, np.ndarray):
        raise TypeError(
            f"{name} must be a NumPy array for a SciPy operator, got {type(x).__module__}."
            f"{type(x).__name__}; convert it with opsplit._backend.to_numpy"
        )


class ScipyOperator(LinearOperator):
    """A SciPy linear operator seen as an opsplit operator on NumPy arrays.

    Acts on the last axis; row batches ``(..., n)`` are applied with one
    ``matmat`` on the transposed batch.  Results are cast to
    ``np.result_type(x.dtype, self.dtype)``.  The SciPy operator must define
    its adjoint (``rmatvec``/``rmatmat``).  Build it with :func:`from_scipy`.

    Its shifted inverse :math:`(aI + bL)^{-1}` is a
    :class:`~opsplit.operators.sparse.KrylovInverse` with this operator's
    ``solver`` (``"gmres"``, or ``"cg"``/``"minres"`` for a symmetric ``L``)
    and relative residual ``tol``.
    """

    def __init__(self, linop, dtype, *, solver="gmres", tol=None, maxiter=None):
        self.linop = linop
        self.dtype = np.dtype(dtype)
        self.solver, self.tol = check_solver(solver, tol, self.dtype, allowed=SOLVERS[1:])
        self.maxiter = maxiter
        m, n = linop.shape
        self.in_shape, self.out_shape = (n,), (m,)

    def _apply(self, matmat, x, shape_in, shape_out, name):
        _check_numpy(x, name)
        check_trailing(x, shape_in, name)
        batch = x.shape[:-1]
        columns = np.reshape(x, (-1, shape_in[0])).T
        out = np.asarray(matmat(columns)).T
        dtype = np.result_type(x.dtype, self.dtype)
        return np.reshape(out, (*batch, shape_out[0])).astype(dtype, copy=False)

    def matvec(self, x):
        return self._apply(self.linop.matmat, x, self.in_shape, self.out_shape, "x")

    def rmatvec(self, y):
        return self._apply(self.linop.rmatmat, y, self.out_shape, self.in_shape, "y")

    def _like(self, like):
        return np.zeros((), dtype=self.dtype)


def from_scipy(linop, like=None, *, solver=None, tol=None, maxiter=None):
    """Wrap a SciPy ``LinearOperator``, sparse matrix or NumPy matrix.

    Parameters
    ----------
    linop : scipy.sparse.linalg.LinearOperator, sparse matrix or 2-D ndarray
        The operator; it must provide its adjoint.
    like : numpy.ndarray, optional
        Sets the operator's dtype (default ``linop.dtype``), for example to
        use a ``float64`` SciPy operator in ``float32`` computations.
    solver : {"splu", "cg", "minres", "gmres"}, optional
        How shifted inverses are applied: a sparse matrix defaults to
        ``"splu"`` (a sparse LU factorization), any other operator to
        ``"gmres"``; ``"cg"`` suits a symmetric ``L`` (see
        :mod:`opsplit.operators.sparse`).
    tol : float, optional
        Relative residual of the Krylov solvers (default ``1e-10`` in
        float64, ``1e-5`` in float32).
    maxiter : int, optional
        Iteration limit of the Krylov solvers.

    Returns
    -------
    Sparse or ScipyOperator
        A :class:`~opsplit.operators.sparse.Sparse` operator for a sparse
        matrix, a :class:`ScipyOperator` otherwise.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from opsplit.operators.scipy_interop import from_scipy
    >>> A = from_scipy(sp.csr_matrix(np.array([[1.0, 2.0], [0.0, 1.0]])))
    >>> A @ np.ones((3, 2))
    array([[3., 1.],
           [3., 1.],
           [3., 1.]])
    >>> A.H @ np.ones(2)
    array([1., 3.])
    """
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    if like is not None:
        _check_numpy(like, "like")
    if sp.issparse(linop):
        if linop.ndim != 2:
            raise ValueError(f"linop must be 2-D, got shape {linop.shape}")
        dtype = np.dtype(like.dtype if like is not None else linop.dtype)
        if not np.issubdtype(dtype, np.floating):
            raise TypeError(f"the operator's dtype must be real floating, got {dtype}")
        return Sparse(linop.astype(dtype, copy=False), solver=solver or "splu", tol=tol,
                      maxiter=maxiter)
    if isinstance(linop, np.ndarray):
        if linop.ndim != 2:
            raise ValueError(f"linop must be 2-D, got shape {linop.shape}")
        linop = spla.aslinearoperator(linop)
    elif not isinstance(linop, spla.LinearOperator):
        raise TypeError(
            "linop must be a scipy.sparse.linalg.LinearOperator, a sparse matrix or a "
            f"2-D ndarray, got {type(linop).__name__}"
        )
    dtype = np.dtype(like.dtype if like is not None else linop.dtype)
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(f"the operator's dtype must be real floating, got {dtype}")
    return ScipyOperator(linop, dtype, solver=solver or "gmres", tol=tol, maxiter=maxiter)


@shifted_inverse.register
def _(op: ScipyOperator, a: float = 1.0, b: float = 1.0):
    _check_shift(a, b)
    return KrylovInverse(op, a, b, solver=op.solver, tol=op.tol, maxiter=op.maxiter)


@inverse_tolerance.register
def _(op: ScipyOperator):
    return op.tol


def to_scipy(op: LinearOperator):
    """Export an opsplit operator on NumPy arrays as a SciPy ``LinearOperator``.

    Block operators (tuple shapes) are exported on their flattened vectors
    (blocks concatenated in order, see :func:`opsplit.operators._base.flatten`).

    Parameters
    ----------
    op : LinearOperator
        An operator holding NumPy arrays (or none, like ``Identity``).

    Returns
    -------
    scipy.sparse.linalg.LinearOperator
        With ``matvec``, ``rmatvec``, ``matmat`` and ``rmatmat``; its dtype is
        ``op.dtype`` (``float64`` when the operator adapts to its input).

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> from opsplit.operators.scipy_interop import to_scipy
    >>> S = to_scipy(ops.Dense(np.array([[1.0, 2.0], [0.0, 1.0]])))
    >>> S.matvec(np.ones(2)), S.rmatvec(np.ones(2))
    (array([3., 1.]), array([1., 3.]))
    """
    import scipy.sparse.linalg as spla

    if not isinstance(op, LinearOperator):
        raise TypeError(f"op must be an opsplit LinearOperator, got {type(op).__name__}")
    try:
        held = op._like(None)
    except ValueError:  # holds no array, adapts to NumPy input
        held = None
    if held is not None and not isinstance(held, np.ndarray):
        raise TypeError(
            f"op must hold NumPy arrays to be used by SciPy, it holds {type(held).__module__}."
            f"{type(held).__name__}"
        )
    dtype = np.dtype(op.dtype if op.dtype is not None else np.float64)

    def apply(fn, shape_in, shape_out):
        def wrapped(v):
            v = np.asarray(v, dtype=dtype)
            batched = v.ndim == 2
            out = flatten(fn(unflatten(v.T if batched else v, shape_in)), shape_out)
            return out.T if batched else out

        return wrapped

    return spla.LinearOperator(
        op.shape,
        matvec=apply(op.matvec, op.in_shape, op.out_shape),
        rmatvec=apply(op.rmatvec, op.out_shape, op.in_shape),
        matmat=apply(op.matvec, op.in_shape, op.out_shape),
        rmatmat=apply(op.rmatvec, op.out_shape, op.in_shape),
        dtype=dtype,
    )
