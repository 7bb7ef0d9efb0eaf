r"""Smooth functions whose prox is a linear solve: least squares.

:class:`LeastSquares` is :math:`f(x) = \tfrac12\|Ax - b\|^2`.  Its prox

.. math::

    \operatorname{prox}_{\alpha f}(x) = (I + \alpha A^T A)^{-1}(x + \alpha A^T b)

is one Cholesky solve with :math:`I + \alpha A^T A` (``n × n``) when ``A`` is
tall or square, and, for a wide ``A`` (``m < n``), the matrix-inversion
lemma with the smaller :math:`I + \alpha A A^T` (``m × m``):

.. math::

    (I + \alpha A^T A)^{-1} r = r - \alpha A^T (I + \alpha A A^T)^{-1} A r .

The factorization is a returned value: :meth:`LeastSquares.prox_map` computes
it once for a step and returns the map, which a splitting method applies at
every iteration (:class:`~opsplit.Subdifferential` asks for it once per
solve); a new step means a new call, a new factorization.

References
----------
N. Parikh and S. Boyd, "Proximal Algorithms", Foundations and Trends in
Optimization 1(3), 2014, §6.1.1 and §4.2 (caching the factorization).
G. H. Golub and C. F. Van Loan, *Matrix Computations*, 4th ed., §2.1.4
(Sherman–Morrison–Woodbury).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .._backend import device, namespace, same_library, to_numpy
from .._validate import check_positive
from .._vectors import reflect
from ..operators import Dense, LinearOperator, Sparse
from ..operators.sparse import SparseLU, _sparse_library, sparse_module
from ._base import ProxFunction, check_array, check_last_axis

__all__ = ["LeastSquares", "factorize"]

#: Computed smallest eigenvalues within this fraction of the largest count as zero.
_ROUNDING = 1e-10

#: Sparse Gram matrices up to this size get their exact spectrum (dense eigvalsh).
_DENSE_SPECTRUM = 2000


def factorize(matrix):
    r"""A solver for the symmetric positive definite ``matrix``, factorized once.

    Returns ``solve`` with ``solve(y) = matrix⁻¹ y`` over the last axis of
    ``y`` (leading axes are a batch).  Dense NumPy: Cholesky
    (``scipy.linalg.cho_factor``, two triangular solves per application);
    dense CuPy: ``cupy.linalg.cholesky`` and ``cupyx.scipy.linalg.solve_triangular``;
    sparse (SciPy or ``cupyx``): sparse LU (:class:`~opsplit.operators.SparseLU`);
    other array-API libraries (no triangular solve in the standard): the
    explicit inverse of the (small) matrix, one product per application.

    Parameters
    ----------
    matrix : array or sparse matrix
        Symmetric positive definite, ``k × k``.

    Returns
    -------
    callable

    Raises
    ------
    ValueError
        When ``matrix`` is not positive definite (numerically).

    Examples
    --------
    >>> import numpy as np
    >>> solve = factorize(np.array([[4.0, 2.0], [2.0, 3.0]]))
    >>> solve(np.array([[6.0, 5.0], [4.0, 2.0]]))
    array([[1., 1.],
           [1., 0.]])
    """
    if sparse_module(matrix) is not None:
        return SparseLU(matrix).matvec
    xp = namespace(matrix)
    k = matrix.shape[0]
    if isinstance(matrix, np.ndarray):
        import scipy.linalg as sla

        try:
            factor = sla.cho_factor(matrix, lower=True, check_finite=False)
        except sla.LinAlgError as exc:
            raise ValueError(f"the matrix is not positive definite: {exc}") from exc

        def solve(y):
            columns = xp.reshape(y, (-1, k)).T
            out = sla.cho_solve(factor, columns, check_finite=False)
            return xp.reshape(out.T, y.shape)

        return solve
    from array_api_compat import is_cupy_array

    if is_cupy_array(matrix):  # pragma: no cover - needs a GPU
        from cupyx.scipy.linalg import solve_triangular

        lower = xp.linalg.cholesky(matrix)

        def solve(y):
            columns = xp.reshape(y, (-1, k)).T
            half = solve_triangular(lower, columns, lower=True)
            out = solve_triangular(lower, half, lower=True, trans="T")
            return xp.reshape(out.T, y.shape)

        return solve
    xp.linalg.cholesky(matrix)  # a positive definiteness check, as on the other paths
    inverse = xp.linalg.inv(matrix)
    return lambda y: y @ inverse  # symmetric: y @ inverse.T == y @ inverse


def _as_operator(A):
    """``A`` as :class:`~opsplit.Dense` or :class:`~opsplit.operators.Sparse`,
    validated and named ``A`` in errors."""
    if isinstance(A, (Dense, Sparse)):
        return A
    if isinstance(A, LinearOperator):
        if len(A.in_shape) != 1 or len(A.out_shape) != 1:
            raise ValueError(f"A must act on one axis, got {A.out_shape} <- {A.in_shape}")
        return Dense(A.to_dense())
    if sparse_module(A) is not None:
        try:
            return Sparse(A)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"A: {exc}") from exc
    try:
        namespace(A)
    except TypeError as exc:
        raise TypeError(
            "A must be an array, a SciPy sparse matrix or an opsplit LinearOperator, "
            f"got {type(A).__name__}"
        ) from exc
    return Dense(check_array(A, "A", ndim=2))


def _gram(op, wide):
    """The Gram matrix of the smaller side: :math:`AA^T` (wide) or :math:`A^TA`."""
    if isinstance(op, Sparse):
        M = op.matrix
        return (M @ M.T if wide else M.T @ M).tocsc()
    M = op.matrix
    Mt = namespace(M).matrix_transpose(M)
    return M @ Mt if wide else Mt @ M


def _spectrum(gram):
    """``(λ_min, λ_max)`` of the symmetric Gram matrix, in float64 on the host:
    ``eigvalsh`` (exact up to rounding); for a sparse Gram matrix larger than
    :data:`_DENSE_SPECTRUM`, Lanczos (``eigsh`` to machine precision) for
    ``λ_max`` and ``None`` for ``λ_min``."""
    if sparse_module(gram) is not None:
        if gram.shape[0] > _DENSE_SPECTRUM:
            linalg = _sparse_library(gram)[1]
            top = linalg.eigsh(gram.astype("float64"), k=1, which="LA", tol=0.0,
                               return_eigenvectors=False)
            return None, float(to_numpy(top).max())
        gram = gram.toarray()  # the Gram matrix of the smaller side, dense
    xp = namespace(gram)
    ev = to_numpy(xp.linalg.eigvalsh(xp.astype(gram, xp.float64)))
    return float(ev.min()), float(ev.max())


class LeastSquares(ProxFunction):
    r""":math:`f(x) = \tfrac12\|Ax - b\|_2^2`, smooth, with a prox by one factorization.

    .. math::

        \nabla f(x) = A^T(Ax - b), \qquad \text{lipschitz} = \|A\|_2^2, \qquad
        \operatorname{prox}_{\alpha f}(x) = (I + \alpha A^T A)^{-1}(x + \alpha A^T b),

    the prox through a Cholesky factorization of :math:`I + \alpha A^T A`
    (tall or square ``A``) or, for a wide ``A``, of :math:`I + \alpha AA^T` with
    the matrix-inversion lemma (see :mod:`opsplit.prox.smooth`).
    :meth:`prox_map` factorizes once and returns the map; :meth:`prox` alone
    factorizes at every call (use it for a single evaluation).

    The Gram matrix of the smaller side (:math:`AA^T` or :math:`A^TA`) is
    formed once, at first use (a prox, ``lipschitz``); its extreme eigenvalues give ``lipschitz``
    :math:`= \|A\|_2^2` exactly and, for a tall ``A``,
    ``strong_convexity`` :math:`= \sigma_{\min}(A)^2` (0 for a wide ``A``,
    or a rank-deficient one up to a relative ``1e-10``).  A sparse Gram
    matrix larger than 2000 gets ``lipschitz`` by Lanczos (to machine
    precision) and no ``strong_convexity``.

    ``x`` has ``n`` entries on its last axis; leading axes are a batch
    (``b`` may carry the same batch axes, one right-hand side per sample), and
    the value is summed over the batch.

    Parameters
    ----------
    A : array, scipy sparse matrix or LinearOperator
        ``m × n``, real floating, finite.  A dense array of any array-API
        library (NumPy, CuPy, ...) or :class:`~opsplit.Dense`; a SciPy
        (or ``cupyx``) sparse matrix or :class:`~opsplit.operators.Sparse`,
        factorized by sparse LU; any other opsplit ``LinearOperator`` on one
        axis is turned into its dense matrix once (``n`` products).
    b : array
        Shape ``(m,)`` or ``(..., m)``; the dtype, library and device of ``A``.

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> A = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    >>> f = ops.prox.LeastSquares(A, np.array([1.0, 2.0, 3.0]))
    >>> f.value(np.zeros(2)), f.gradient(np.zeros(2)), f.lipschitz
    (np.float64(7.0), array([-1., -4.]), 4.0)
    >>> prox = f.prox_map(1.0)               # one factorization, many applications
    >>> prox(np.zeros(2))                    # (I + AᵀA)⁻¹ Aᵀb
    array([0.5, 0.8])
    """

    smooth = True

    def __init__(self, A, b):
        op = _as_operator(A)
        m, n = op.shape
        like = op._like(None)
        check_array(b, "b")
        same_library(b, like, "b", "A")
        check_last_axis(b, m, "b")
        if b.dtype != op.dtype:
            raise TypeError(f"b has dtype {b.dtype} but A has {op.dtype}: give both one dtype")
        self.A, self.b = op, b
        self.wide = m < n
        #: ``Aᵀb`` (with ``b``'s batch axes), the constant part of every prox.
        self.Atb = op.rmatvec(b)

    @functools.cached_property
    def gram(self):
        """The Gram matrix of the smaller side, ``AAᵀ`` (wide) or ``AᵀA``,
        formed at first use (a prox, ``lipschitz``, ``strong_convexity``)."""
        return _gram(self.A, self.wide)

    @functools.cached_property
    def _extremes(self):
        return _spectrum(self.gram)

    @property
    def lipschitz(self):
        """:math:`\\|A\\|_2^2`, from the Gram matrix's spectrum (computed at first use)."""
        return self._extremes[1]

    @property
    def strong_convexity(self):
        """:math:`\\sigma_{\\min}(A)^2` for a tall ``A`` (``None`` when unknown), 0
        for a wide one."""
        if self.wide:
            return 0.0
        lo, hi = self._extremes
        if lo is None:
            return None
        return 0.0 if lo <= _ROUNDING * hi else lo

    def _check_x(self, x, name="x"):
        check_last_axis(x, self.A.shape[1], name)
        if x.dtype != self.A.dtype:
            raise TypeError(f"{name} has dtype {x.dtype} but A has {self.A.dtype}")

    def value(self, x):
        self._check_x(x)
        r = self.A.matvec(x) - self.b
        return 0.5 * namespace(r).sum(r * r)

    def gradient(self, x):
        self._check_x(x)
        return self.A.rmatvec(self.A.matvec(x) - self.b)

    def prox(self, x, step=1.0):
        """The prox at ``x``; it factorizes at every call: apply the map of
        :meth:`prox_map` to many points instead."""
        return self.prox_map(step)(x)

    def prox_map(self, step=1.0):
        """The prox map for ``step``, with the factorization of
        :math:`I + \\alpha A^TA` (or of :math:`I + \\alpha AA^T` for a wide
        ``A``) done here, once."""
        step = check_positive(step, "step")
        return LeastSquaresProx(self, step, factorize(self._shifted_gram(step)))

    def reflect_map(self, step=1.0, prox_map=None):
        """``2·prox - I`` for ``step``, reusing the factorization of ``prox_map``
        (a map :meth:`prox_map` returned for this ``step``) when given."""
        step = check_positive(step, "step")
        prox = self.prox_map(step) if prox_map is None else prox_map
        if not (isinstance(prox, LeastSquaresProx) and prox.function is self
                and prox.step == step):
            raise ValueError("prox_map must be this function's prox_map(step) for the same step")
        return lambda x: reflect(prox(x), x)

    def _shifted_gram(self, step):
        """``I + step·G`` for the Gram matrix ``G`` of the smaller side."""
        G = self.gram
        k = G.shape[0]
        sparse = sparse_module(G)
        if sparse is not None:
            return (sparse.identity(k, dtype=G.dtype, format="csc") + step * G).tocsc()
        xp = namespace(G)
        return xp.eye(k, dtype=G.dtype, device=device(G)) + step * G

    def __repr__(self) -> str:
        m, n = self.A.shape
        return f"LeastSquares(A: {m}×{n} {type(self.A).__name__}, b: {tuple(self.b.shape)})"


@dataclass(frozen=True, eq=False)
class LeastSquaresProx:
    r"""The prox map of a :class:`LeastSquares` for one ``step``, with its
    factorization (``solve``: the inverse of :math:`I + \alpha G`), as returned
    by :meth:`LeastSquares.prox_map`."""

    function: LeastSquares
    step: float
    solve: object

    def __call__(self, x):
        f, step = self.function, self.step
        f._check_x(x)
        r = x + step * f.Atb
        if not f.wide:
            return self.solve(r)
        return r - step * f.A.rmatvec(self.solve(f.A.matvec(r)))
