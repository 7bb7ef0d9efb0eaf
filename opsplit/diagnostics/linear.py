r"""Spectral estimates of linear operators: margin and norm.

The *margin* :math:`m(L) = \lambda_{\min}\big(\tfrac12 (L + L^{H})\big)` of a square
linear operator (defined in :mod:`opsplit.operators.spectral`) decides
monotonicity: ``L`` is ``m``-strongly monotone iff ``m(L) >= m``.  Both
:func:`margin` and :func:`opnorm` use the operator's structure when it gives
an exact answer (the rules of
:mod:`opsplit.operators.spectral`), and Lanczos otherwise:

- :class:`~opsplit.Identity`, :class:`~opsplit.Diagonal`: closed form;
- :class:`~opsplit.Dense`: ``eigvalsh`` of the symmetric part, ``svdvals``;
- FFT convolutions (:class:`~opsplit.operators.conv.Conv2dFFT`) and any sum,
  scaling, product or adjoint of them with the identity: the per-frequency
  ``C×C`` symbols are Hermitian-diagonalized (exact and cheap);
- block-diagonal operators: block by block;
- anything else with at most ``dense_limit`` unknowns: its dense matrix;
- larger general and block operators: Lanczos with full reorthogonalization
  on the symmetric part (or on :math:`L^{H}L` for the norm), stopped when the
  extreme Ritz pair's residual :math:`\beta_k |s_{k}|` is below ``tol``
  relative; that residual is returned as the accuracy reached.

Results are :class:`~opsplit.diagnostics.Estimate` floats carrying
``error``, ``method`` and ``exact``.
"""

from __future__ import annotations

from .._vectors import add, scale, shape_size
from ..operators._base import check_linear
from ..operators.lanczos import estimate_norm, lanczos
from ..operators.spectral import _range_of_matrices, _upcast, exact_range
from ._report import Estimate
from ._vec import like_of

__all__ = ["margin", "opnorm", "symmetric_range"]


# -- public functions -----------------------------------------------------------------


def _resolve(op, like, dense_limit, method):
    if method not in ("auto", "exact", "dense", "lanczos"):
        raise ValueError(f"method must be 'auto', 'exact', 'dense' or 'lanczos', got {method!r}")
    use_dense = method == "dense" or (
        method == "auto" and shape_size(op.in_shape) <= dense_limit
    )
    return use_dense, like_of(op, like)


def symmetric_range(
    L, like=None, *, method="auto", dense_limit=2048, tol=1e-10, maxiter=300, seed=0
):
    r"""Smallest and largest eigenvalues of :math:`\tfrac12(L + L^{H})`.

    Parameters
    ----------
    L : LinearOperator
        A square operator.
    like : array, optional
        Gives library, dtype and device when ``L`` holds no array.
    method : {"auto", "exact", "dense", "lanczos"}
        ``"auto"``: a structural exact rule, else the dense matrix when
        ``L`` has at most ``dense_limit`` unknowns, else Lanczos.
        ``"exact"`` raises ``ValueError`` when no exact rule applies.
    dense_limit : int
        Largest number of unknowns for which ``"auto"`` forms the dense
        matrix.
    tol : float
        Relative residual target of Lanczos (see :func:`lanczos`).
    maxiter : int
        Largest number of Lanczos steps.
    seed : int
        Seed of Lanczos's random start vector.

    Returns
    -------
    (Estimate, Estimate)
        λ_min and λ_max, each with its accuracy.
    """
    check_linear(L, "L", square=True)
    use_dense, ref = _resolve(L, like, dense_limit, method)
    exact = None if method in ("dense", "lanczos") else exact_range(L)
    if exact is None and use_dense:
        lo, hi = _range_of_matrices(_upcast(L.to_dense(ref)))
        exact = (lo, hi, "eigvalsh of the dense symmetric part")
    if exact is not None:
        lo, hi, how = exact
        return (Estimate(lo, method=how, exact=True), Estimate(hi, method=how, exact=True))
    if method == "exact":
        raise ValueError(f"method='exact': no exact rule for {type(L).__name__}")

    def sym(v):
        return scale(0.5, add(L.matvec(v), L.rmatvec(v)))

    r = lanczos(sym, L.in_shape, ref, maxiter=maxiter, tol=tol, seed=seed)
    how = f"Lanczos on the symmetric part, {r.iterations} steps"
    return (
        Estimate(r.smallest, error=r.smallest_error, method=how),
        Estimate(r.largest, error=r.largest_error, method=how),
    )


def margin(L, like=None, **options) -> Estimate:
    r"""The margin :math:`\lambda_{\min}\big(\tfrac12(L + L^{H})\big)` of a linear operator.

    ``L`` is monotone iff the margin is ``>= 0``, and ``m``-strongly monotone
    iff it is ``>= m``.  Exact for dense, diagonal, FFT-convolution (also
    ``I - W`` with ``W`` a convolution) and small operators; otherwise a
    Lanczos estimate whose ``error`` states the accuracy reached (the Ritz
    value is an upper bound of the true margin).

    Parameters
    ----------
    L : LinearOperator
        Square linear operator.
    like : array, optional
        Gives library, dtype and device when ``L`` holds no array.
    **options
        ``method``, ``dense_limit``, ``tol``, ``maxiter``, ``seed``: see
        :func:`symmetric_range`.

    Returns
    -------
    Estimate
        A float with ``error``, ``method`` and ``exact`` attributes.

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> M = np.array([[1.0, 3.0], [-3.0, 2.0]])   # skew part does not count
    >>> m = ops.diagnostics.margin(ops.Dense(M))
    >>> round(m, 12), m.exact
    (1.0, True)
    """
    return symmetric_range(L, like, **options)[0]


def opnorm(L, like=None, *, method="auto", dense_limit=2048, tol=1e-10, maxiter=300, seed=0):
    r"""The operator norm :math:`\|L\|_2` (largest singular value).

    Exact for dense, diagonal, FFT-convolution and small operators; otherwise
    Lanczos on :math:`L^{H} L` (equivalent to, and faster than, power
    iteration), whose ``error`` bounds the distance to the norm if the
    largest eigenvalue has been found (the value itself is a lower bound).

    Parameters
    ----------
    L : LinearOperator
        The operator, square or not.
    like : array, optional
        Gives library, dtype and device when ``L`` holds no array.
    method : {"auto", "exact", "dense", "lanczos"}
        ``"auto"``: a structural exact rule, else the dense matrix's largest
        singular value when ``L`` has at most ``dense_limit`` unknowns, else
        Lanczos on :math:`L^{H} L`.  ``"exact"`` raises ``ValueError`` when no
        exact rule applies.
    dense_limit : int
        Largest number of unknowns for which ``"auto"`` forms the dense
        matrix.
    tol : float
        Relative residual target of Lanczos (see :func:`lanczos`).
    maxiter : int
        Largest number of Lanczos steps.
    seed : int
        Seed of Lanczos's random start vector.

    Returns
    -------
    Estimate

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> round(ops.diagnostics.opnorm(ops.Dense(np.array([[3.0, 0.0], [4.0, 0.0]]))), 12)
    5.0
    """
    check_linear(L, "L")
    found = estimate_norm(L, like_of(L, like), method=method, dense_limit=dense_limit,
                          tol=tol, maxiter=maxiter, seed=seed)
    return Estimate(found.value, error=found.error, method=found.method, exact=found.exact)
