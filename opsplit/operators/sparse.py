r"""Sparse matrices, and shifted inverses :math:`(aI + bL)^{-1}` without dense algebra.

:class:`Sparse` holds a SciPy sparse matrix (or a ``cupyx.scipy.sparse`` one,
on CuPy arrays) and keeps it: its shifted inverse is one sparse LU
factorization (:class:`SparseLU`, exact up to rounding) or, when asked,
a Krylov solve (:class:`KrylovInverse`) to a stated relative residual
``tol``.  An operator known only through its products (a SciPy
``LinearOperator``, see :func:`~opsplit.operators.scipy_interop.from_scipy`)
gets the Krylov inverse.

Which Krylov method: for a monotone ``L`` and ``a, b > 0`` the matrix
:math:`aI + bL` has a positive definite symmetric part.  When ``L`` is
symmetric it is symmetric positive definite and conjugate gradients apply
(``"cg"``; ``"minres"`` also allows a symmetric indefinite shift); otherwise
restarted GMRES (``"gmres"``), which converges for every matrix with a
positive definite symmetric part (Elman 1982).  MINRES would be wrong there:
it needs a symmetric matrix.

A Krylov solve stops at :math:`\|r\| \le \text{tol}\,\|y\|`; its error is
then at most :math:`\text{tol}\,\|y\|/a` (for monotone ``L``,
:math:`\|(aI + bL)^{-1}\| \le 1/a`).  The inverse records ``tol`` as its
``tolerance`` and :func:`~opsplit.operators.inverse_tolerance` reports it, so
that the error bounds of a solve do not assume an exact resolvent (see
:func:`opsplit._certify.error_bound`).

References
----------
Y. Saad, *Iterative Methods for Sparse Linear Systems*, 2nd ed., SIAM 2003
(§6.5 GMRES, §6.11 CG). H. C. Elman, "Iterative methods for large sparse
nonsymmetric systems of linear equations", PhD thesis, Yale 1982.
"""

from __future__ import annotations

import numpy as np

from .._backend import namespace
from .._validate import check_real
from ._base import LinearOperator
from .basic import check_trailing
from .shifted import _check_shift, inverse_tolerance, shifted_inverse, shifted_operator

__all__ = ["Sparse", "SparseLU", "KrylovInverse", "SOLVERS", "default_tolerance", "sparse_module"]

#: How many times a Krylov solve is resumed before it is declared failed.
_RESTARTS = 3

#: The ways a shifted inverse of a :class:`Sparse` matrix is applied.
SOLVERS = ("splu", "cg", "minres", "gmres")


def default_tolerance(dtype) -> float:
    """The default relative residual of Krylov solves: ``1e-10`` in float64,
    ``1e-5`` in float32."""
    return 1e-5 if np.dtype(str(dtype)) == np.float32 else 1e-10


def check_solver(solver, tol, dtype, *, allowed=SOLVERS):
    """``(solver, tol)`` validated: ``tol`` defaults to :func:`default_tolerance`
    and must lie in ``(0, 1)``."""
    if solver not in allowed:
        raise ValueError(f"solver must be one of {allowed}, got {solver!r}")
    if tol is None:
        return solver, default_tolerance(dtype)
    tol = check_real(tol, "tol", minimum=0.0, strict=True)
    if not tol < 1:
        raise ValueError(f"tol must be < 1, got {tol}")
    return solver, tol


def sparse_module(matrix):
    """``scipy.sparse`` or ``cupyx.scipy.sparse`` when ``matrix`` is one of
    their sparse matrices, else ``None``."""
    try:
        return _sparse_library(matrix)[0]
    except TypeError:
        return None


def _sparse_library(matrix):
    """``(sparse module, sparse.linalg module, array module)`` of a SciPy or
    ``cupyx.scipy.sparse`` matrix; ``TypeError`` for anything else."""
    import scipy.sparse as sp

    if sp.issparse(matrix):
        import scipy.sparse.linalg as spla

        return sp, spla, np
    if type(matrix).__module__.startswith("cupyx."):  # CuPy is optional: import it only here
        import cupy
        import cupyx.scipy.sparse as csp
        import cupyx.scipy.sparse.linalg as cspla

        if csp.issparse(matrix):
            return csp, cspla, cupy
    raise TypeError(
        "matrix must be a scipy.sparse (or cupyx.scipy.sparse) matrix, got "
        f"{type(matrix).__module__}.{type(matrix).__name__}"
    )


def _check_array_of(x, array_module, name):
    if not isinstance(x, array_module.ndarray):
        library = "NumPy" if array_module is np else "CuPy"
        raise TypeError(
            f"{name} must be a {library} array for this sparse matrix, got "
            f"{type(x).__module__}.{type(x).__name__}"
        )


def _rows(x, n):
    """``x`` of shape ``(..., n)`` as the columns ``(n, N)`` of one product."""
    return namespace(x).reshape(x, (-1, n)).T


def _unrows(columns, batch, xp):
    """The columns ``(k, N)`` of a product back to shape ``(*batch, k)``."""
    return xp.reshape(xp.ascontiguousarray(columns.T), (*batch, columns.shape[0]))


class Sparse(LinearOperator):
    r"""A sparse matrix ``M`` acting on the last axis: ``y = M x``.

    A batch ``(..., n)`` is applied as one sparse-times-dense product.  The
    shifted inverse :math:`(aI + bM)^{-1}`
    (:func:`~opsplit.operators.shifted_inverse`) is one sparse LU
    factorization (``solver="splu"``, the default; SciPy has no sparse
    Cholesky, and LU with a fill-reducing ordering serves symmetric matrices
    well) or a Krylov solve to relative residual ``tol``: ``"cg"`` for a
    symmetric ``M`` (:math:`aI + bM` is then positive definite for monotone
    ``M``), ``"minres"`` (symmetric, possibly indefinite), ``"gmres"``
    (nonsymmetric).  See :mod:`opsplit.operators.sparse` for the choice.

    Why a type of its own rather than a SciPy ``LinearOperator`` wrapped by
    :func:`~opsplit.operators.scipy_interop.from_scipy`: the matrix stays at
    hand, so the shifted inverse is a factorization (dispatched on the type),
    ``to_dense`` is exact and free of products, and the same class holds a
    ``cupyx.scipy.sparse`` matrix for CuPy arrays.

    Parameters
    ----------
    matrix : scipy.sparse matrix or array, or cupyx.scipy.sparse matrix
        Real floating, finite, 2-D.
    solver : {"splu", "cg", "minres", "gmres"}
        How shifted inverses are applied.
    tol : float, optional
        Relative residual of the Krylov solvers (default ``1e-10`` in
        float64, ``1e-5`` in float32); ignored by ``"splu"``.
    maxiter : int, optional
        Iteration limit of the Krylov solvers (default ``10·n``).

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp, opsplit as ops
    >>> M = ops.operators.Sparse(sp.csr_matrix(np.array([[2.0, -1.0], [-1.0, 2.0]])))
    >>> M @ np.ones(2)
    array([1., 1.])
    >>> inv = ops.shifted_inverse(M, 1.0, 0.5)          # (I + M/2)⁻¹ by sparse LU
    >>> np.allclose(inv @ (np.ones(2) + 0.5 * (M @ np.ones(2))), np.ones(2))
    True
    """

    def __init__(self, matrix, *, solver="splu", tol=None, maxiter=None):
        sparse, _, array_module = _sparse_library(matrix)
        if matrix.ndim != 2:
            raise ValueError(f"matrix must be 2-D, got shape {matrix.shape}")
        if not np.issubdtype(np.dtype(str(matrix.dtype)), np.floating):
            raise TypeError(f"matrix must have a real floating dtype, got {matrix.dtype}")
        matrix = sparse.csr_matrix(matrix)
        if not bool(array_module.all(array_module.isfinite(matrix.data))):
            raise ValueError("matrix must be finite, got inf or nan entries")
        self.solver, self.tol = check_solver(solver, tol, matrix.dtype)
        self.maxiter = None if maxiter is None else int(maxiter)
        self.matrix = matrix
        self.dtype = matrix.dtype
        m, n = matrix.shape
        self.in_shape, self.out_shape = (n,), (m,)
        self._array_module = array_module

    def _apply(self, matrix, x, shape_in, name):
        _check_array_of(x, self._array_module, name)
        check_trailing(x, shape_in, name)
        xp = self._array_module
        out = matrix @ _rows(x, shape_in[0])
        out = xp.asarray(out).astype(xp.result_type(x.dtype, self.dtype), copy=False)
        return _unrows(out, x.shape[:-1], xp)

    def matvec(self, x):
        return self._apply(self.matrix, x, self.in_shape, "x")

    def rmatvec(self, y):
        return self._apply(self.matrix.T, y, self.out_shape, "y")

    def to_dense(self, like=None):
        return self.matrix.toarray()

    def shifted_matrix(self, a: float, b: float):
        """The sparse matrix ``a·I + b·M`` (CSC, ready to factorize)."""
        _check_shift(a, b)
        sparse = _sparse_library(self.matrix)[0]
        if self.in_shape != self.out_shape:
            raise ValueError(f"op must be square, got {self.out_shape} <- {self.in_shape}")
        eye = sparse.identity(self.in_shape[0], dtype=self.dtype, format="csc")
        return (a * eye + b * self.matrix).tocsc()

    def _like(self, like):
        return self._array_module.zeros((), dtype=self.dtype)


class SparseLU(LinearOperator):
    r"""The inverse of a square sparse matrix ``S``, applied through one sparse
    LU factorization (SuperLU: ``scipy.sparse.linalg.splu``, or
    ``cupyx.scipy.sparse.linalg.splu`` on CuPy), computed here, once.

    ``matvec`` solves :math:`S x = y`, ``rmatvec`` :math:`S^T x = y`, for
    a batch of right-hand sides at once.  Exact up to rounding:
    ``tolerance`` is 0.

    Parameters
    ----------
    matrix : sparse matrix
        Square and nonsingular.

    Raises
    ------
    ValueError
        When ``matrix`` is singular.
    """

    tolerance = 0.0

    def __init__(self, matrix):
        _, linalg, array_module = _sparse_library(matrix)
        try:
            self.factor = linalg.splu(matrix.tocsc())
        except RuntimeError as exc:  # SuperLU: "Factor is exactly singular"
            raise ValueError(f"the matrix is singular: {exc}") from exc
        n = matrix.shape[0]
        self.in_shape = self.out_shape = (n,)
        self.dtype = matrix.dtype
        self._array_module = array_module

    def _solve(self, y, trans, name):
        _check_array_of(y, self._array_module, name)
        check_trailing(y, self.in_shape, name)
        xp = self._array_module
        rhs = xp.asarray(_rows(y, self.in_shape[0]), dtype=self.dtype, order="F")
        return _unrows(self.factor.solve(rhs, trans=trans), y.shape[:-1], xp)

    def matvec(self, x):
        return self._solve(x, "N", "x")

    def rmatvec(self, y):
        return self._solve(y, "T", "y")

    def _like(self, like):
        return self._array_module.zeros((), dtype=self.dtype)


class KrylovInverse(LinearOperator):
    r""":math:`(aI + bL)^{-1}` applied by a Krylov method to relative residual
    ``tol``: every application solves :math:`(aI + bL)x = y` for each row of
    ``y`` until :math:`\|y - (aI + bL)x\| \le \text{tol}\,\|y\|`.

    The solvers are SciPy's (``scipy.sparse.linalg.cg``, ``minres``,
    ``gmres``) on NumPy arrays, CuPy's (``cupyx.scipy.sparse.linalg``) on
    CuPy arrays; each row is a separate solve, started from zero.  The
    adjoint solves with :math:`aI + bL^H`.  The true residual of every solve
    is checked (the solvers stop on estimates, MINRES on a scaled one) and
    the solve resumed from its answer when it is above ``tol``; a solve that
    still misses it raises ``ArithmeticError``: an unconverged inverse would
    be a silent wrong answer.

    Parameters
    ----------
    op : LinearOperator
        The square ``L``, acting on the last axis of NumPy (or CuPy) arrays.
    a : float
        The multiple of the identity.
    b : float
        The multiple of ``L``.
    solver : {"cg", "minres", "gmres"}
        ``"cg"`` needs :math:`aI + bL` symmetric positive definite,
        ``"minres"`` symmetric; ``"gmres"`` takes any nonsingular matrix.
    tol : float, optional
        The relative residual (default :func:`default_tolerance` of ``op``'s dtype).
    maxiter : int, optional
        Iteration limit per solve (default ``10·n``).

    Attributes
    ----------
    tolerance : float
        ``tol``: each application errs by at most ``tol·‖y‖/a`` when ``L`` is
        monotone.
    """

    def __init__(self, op, a, b, *, solver="gmres", tol=None, maxiter=None):
        _check_shift(a, b)
        if op.in_shape != op.out_shape or len(op.in_shape) != 1:
            raise ValueError(
                f"op must be square and act on one axis, got {op.out_shape} <- {op.in_shape}"
            )
        dtype = op.dtype if op.dtype is not None else np.float64
        self.solver, self.tol = check_solver(solver, tol, dtype, allowed=SOLVERS[1:])
        self.tolerance = self.tol
        self.op, self.a, self.b = op, float(a), float(b)
        self.maxiter = 10 * op.in_shape[0] if maxiter is None else int(maxiter)
        self.in_shape = self.out_shape = op.in_shape
        self.dtype = op.dtype

    def _solve(self, y, apply, name):
        check_trailing(y, self.in_shape, name)
        xp = namespace(y)
        linalg = _krylov_module(y)
        n = self.in_shape[0]
        a, b = self.a, self.b

        def shifted(v):
            v = xp.reshape(v, (n,))
            return a * v + b * apply(v)

        system = linalg.LinearOperator((n, n), matvec=shifted, dtype=y.dtype)
        method = getattr(linalg, self.solver)
        # SciPy names the relative tolerance rtol, CuPy tol; MINRES takes no atol.
        options = {"rtol" if linalg.__name__.startswith("scipy") else "tol": self.tol,
                   "maxiter": self.maxiter}
        if self.solver != "minres":
            options["atol"] = 0.0
        rows = xp.reshape(y, (-1, n))
        solutions = []
        for i in range(rows.shape[0]):
            rhs = rows[i]
            bound = self.tol * float(xp.linalg.vector_norm(rhs))
            solution = None
            # The solvers stop on their own residual estimates (MINRES on a
            # scaled one): the true residual is checked, and the solve resumed
            # from its answer, so that ``tolerance`` is a fact, not a hope.
            for _ in range(_RESTARTS):
                solution, info = method(system, rhs, x0=solution, **options)
                residual = float(xp.linalg.vector_norm(rhs - shifted(solution)))
                if residual <= bound:
                    break
            else:
                raise ArithmeticError(
                    f"{self.solver} did not reach the relative residual tol={self.tol:.3g} "
                    f"in {_RESTARTS} runs of maxiter={self.maxiter} iterations (info {info}, "
                    f"residual {residual:.3g} > {bound:.3g}): is a·I + b·L nonsingular"
                    f"{' and symmetric' if self.solver != 'gmres' else ''}?"
                )
            solutions.append(xp.astype(solution, y.dtype, copy=False))
        return xp.reshape(xp.stack(solutions), y.shape)

    def matvec(self, x):
        return self._solve(x, self.op.matvec, "x")

    def rmatvec(self, y):
        return self._solve(y, self.op.rmatvec, "y")

    def _like(self, like):
        return self.op._like(like)


def _krylov_module(y):
    """``scipy.sparse.linalg`` for NumPy arrays, ``cupyx.scipy.sparse.linalg``
    for CuPy ones; ``TypeError`` for other libraries."""
    if isinstance(y, np.ndarray):
        import scipy.sparse.linalg as spla

        return spla
    from array_api_compat import is_cupy_array

    if is_cupy_array(y):
        import cupyx.scipy.sparse.linalg as cspla

        return cspla
    raise TypeError(
        f"Krylov inverses run on NumPy or CuPy arrays, got {type(y).__module__}."
        f"{type(y).__name__}"
    )


@shifted_inverse.register
def _(op: Sparse, a: float = 1.0, b: float = 1.0):
    _check_shift(a, b)
    if op.solver == "splu":
        try:
            return SparseLU(op.shifted_matrix(a, b))
        except ValueError as exc:
            raise ValueError(f"a·I + b·L is singular (a={a}, b={b}): {exc}") from exc
    return KrylovInverse(op, a, b, solver=op.solver, tol=op.tol, maxiter=op.maxiter)


@shifted_operator.register
def _(op: Sparse, a: float = 1.0, b: float = 1.0):
    return Sparse(op.shifted_matrix(a, b), solver=op.solver, tol=op.tol, maxiter=op.maxiter)


@inverse_tolerance.register
def _(op: Sparse):
    return 0.0 if op.solver == "splu" else op.tol
