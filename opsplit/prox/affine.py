r"""Indicators of sets given by linear constraints: an affine set and a half-space.

Both act on the **last axis** of ``x`` (leading axes are a batch, every row
must lie in the set), keep the dtype and device of ``x``, and precompute what
their projection needs once, at construction: the projection itself is one
or two thin matrix products, with no factorization and no host transfer.

References
----------
A. Beck, "First-Order Methods in Optimization", SIAM, 2017, §6.4 (Lemma 6.26
and Example 6.33). H. H. Bauschke and P. L. Combettes, *Convex Analysis and
Monotone Operator Theory in Hilbert Spaces*, 2nd ed., 2017, Example 29.18.
"""

from __future__ import annotations

from .._backend import check_floating, namespace, same_library, to_numpy
from .._validate import check_positive, check_real
from ._base import (
    ProxFunction,
    check_array,
    check_last_axis,
    holds,
    like_input,
    membership_tolerance,
    restrict,
    zero_scalar,
)

__all__ = ["AffineSet", "HalfSpace"]


class AffineSet(ProxFunction):
    r"""Indicator of the affine set ``{x : A x = b}`` (every row of ``x``).

    The projection is

    .. math::

        \operatorname{prox}(x) = x - A^T (A A^T)^{-1} (A x - b)
        = x - Q\,(Q^T x - c), \qquad A^T = Q R, \quad c = R^{-T} b,

    with the thin QR factorization of ``Aᵀ`` computed once at construction
    (``Ax = b`` exactly when ``Qᵀx = c``). It costs two thin products per row
    and its rounding error grows with the condition number of ``A``, not with
    that of ``A Aᵀ``. ``‖Qᵀx - c‖`` is the distance of ``x`` to the set;
    :meth:`value` allows it a relative slack ``sqrt(eps)·(‖x‖ + ‖c‖)``.

    Parameters
    ----------
    A : array, shape (m, n)
        A real floating matrix with finite entries and full row rank
        (``m <= n``, ``AAᵀ`` invertible); the factorization is done in its
        library, on its device and in its dtype (pass float64 for float64
        accuracy), and ``x`` must live there too.
    b : array, shape (m,)
        The right-hand side, finite, from ``A``'s library and device.

    Raises
    ------
    ValueError
        If ``A`` does not have full row rank (the message gives its numerical
        rank), or the shapes do not fit, or an entry is not finite.

    Examples
    --------
    >>> import numpy as np
    >>> f = AffineSet(np.array([[1.0, 1.0, 0.0]]), np.array([1.0]))
    >>> f.prox(np.array([2.0, 0.0, 5.0]))
    array([ 1.5, -0.5,  5. ])
    """

    indicator = True

    def __init__(self, A, b):
        A = check_array(A, "A", ndim=2)
        b = check_array(b, "b", ndim=1)
        same_library(A, b, "A", "b")
        m, n = A.shape
        if b.shape[0] != m:
            raise ValueError(f"b must have {m} entries (the rows of A), got shape {tuple(b.shape)}")
        if m == 0:
            raise ValueError("A must have at least one row")
        xp = namespace(A)
        dtype = xp.result_type(A, b)
        A, b = xp.astype(A, dtype, copy=False), xp.astype(b, dtype, copy=False)
        _check_full_row_rank(A)
        q, r = xp.linalg.qr(xp.matrix_transpose(A))  # Aᵀ = Q R: Q (n, m), R (m, m)
        c = xp.linalg.solve(xp.matrix_transpose(r), xp.reshape(b, (m, 1)))
        self.A = A
        self.b = b
        self._q = q
        self._c = xp.reshape(c, (m,))

    def _residual(self, x):
        """``(Qᵀx - c, Q)`` in ``x``'s dtype: the coordinates of ``x`` minus its
        projection, in the orthonormal basis ``Q`` of the row space of ``A``."""
        check_floating(x, "x")
        check_last_axis(x, self.A.shape[1])
        q = like_input(self._q, x, "A")
        return x @ q - like_input(self._c, x, "b"), q

    def value(self, x):
        xp = namespace(x)
        residual, _ = self._residual(x)
        c_norm = xp.linalg.vector_norm(like_input(self._c, x, "b"))
        distance = xp.linalg.vector_norm(residual, axis=-1)
        slack = membership_tolerance(x) * (xp.linalg.vector_norm(x, axis=-1) + c_norm)
        return restrict(zero_scalar(x), distance <= slack)

    def prox(self, x, step=1.0):
        check_positive(step, "step")
        residual, q = self._residual(x)
        return x - residual @ namespace(x).matrix_transpose(q)


def _check_full_row_rank(A) -> None:
    """Raise ``ValueError`` unless ``A`` (m × n) has numerical rank ``m``, with
    the tolerance of ``numpy.linalg.matrix_rank``: ``σ_max·max(m, n)·eps``.
    One host transfer of the ``m`` singular values, at construction."""
    xp = namespace(A)
    m, n = A.shape
    if m > n:
        raise ValueError(
            f"A must have full row rank, but its {m} rows in {n} columns cannot be independent"
        )
    s = to_numpy(xp.linalg.svdvals(A))
    tol = s.max() * max(m, n) * float(xp.finfo(A.dtype).eps)
    rank = int((s > tol).sum())
    if rank < m:
        raise ValueError(
            f"A must have full row rank: its numerical rank is {rank} < {m} rows "
            f"(singular values {s.min():.3g} to {s.max():.3g}), so A Aᵀ is singular"
        )


class HalfSpace(ProxFunction):
    r"""Indicator of the half-space ``{x : ⟨a, x⟩ ≤ beta}`` (every row of ``x``).

    With the unit normal ``u = a/‖a‖`` and offset ``β/‖a‖`` computed once,

    .. math::

        \operatorname{prox}(x) = x - \max\bigl(0,\ \langle u, x\rangle
        - \beta/\|a\|\bigr)\, u .

    :meth:`value` allows ``⟨u, x⟩ - β/‖a‖`` (the signed distance) a relative
    slack ``sqrt(eps)·(‖x‖ + |β|/‖a‖)``.

    Parameters
    ----------
    a : array, shape (n,)
        The normal, real floating, finite and nonzero; ``x`` must come from
        its library and device (it is used in ``x``'s dtype).
    beta : float
        The offset.

    Examples
    --------
    >>> import numpy as np
    >>> HalfSpace(np.array([0.0, 2.0]), 1.0).prox(np.array([[2.0, 1.0], [0.0, 0.25]]))
    array([[2.  , 0.5 ],
           [0.  , 0.25]])
    """

    indicator = True

    def __init__(self, a, beta=0.0):
        self.a = check_array(a, "a", ndim=1)
        self.beta = check_real(beta, "beta")
        xp = namespace(a)
        norm = xp.linalg.vector_norm(a)
        if not holds(norm > 0.0):
            raise ValueError("a must be nonzero (the normal of the half-space)")
        norm = float(to_numpy(norm))
        self._unit = a / norm
        self._offset = self.beta / norm

    def _excess(self, x):
        """``(⟨u, x⟩ - β/‖a‖, u)`` in ``x``'s dtype, the first with a length-1 last axis."""
        check_floating(x, "x")
        check_last_axis(x, self.a.shape[0])
        u = like_input(self._unit, x, "a")
        return namespace(x).sum(x * u, axis=-1, keepdims=True) - self._offset, u

    def value(self, x):
        xp = namespace(x)
        excess, _ = self._excess(x)
        norms = xp.linalg.vector_norm(x, axis=-1, keepdims=True)
        slack = membership_tolerance(x) * (norms + abs(self._offset))
        return restrict(zero_scalar(x), excess <= slack)

    def prox(self, x, step=1.0):
        check_positive(step, "step")
        excess, u = self._excess(x)
        return x - namespace(x).maximum(excess, 0.0) * u
