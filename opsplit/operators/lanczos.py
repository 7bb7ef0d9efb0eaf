r"""Estimates of spectra that the structure of an operator does not give.

:func:`lanczos` (full reorthogonalization) finds the extreme eigenvalues of a
symmetric operator given only by its action, with the accuracy reached;
:func:`estimate_norm` uses it on :math:`L^{H} L` for the operator norm when
no exact rule of :mod:`opsplit.operators.spectral` applies.  They sit in the
operators layer so that methods can size their steps with them (a
primal–dual method needs :math:`\|K\|`) and the diagnostics
(:func:`opsplit.diagnostics.opnorm`) can report them.  Each call moves
numbers to the host at every Lanczos step: call them once per operator,
never inside iterations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .._backend import namespace
from .._vectors import scale, shape_size
from ._base import check_linear
from ._vec import batch_dot, eps_of, host, like_of, random_vector, stack
from .spectral import _svd_max, _upcast, exact_norm_rule

__all__ = ["lanczos", "LanczosResult", "estimate_norm", "NormEstimate"]


@dataclass(frozen=True)
class LanczosResult:
    """Extreme Ritz values of a symmetric operator and their residuals."""

    smallest: float
    smallest_error: float
    largest: float
    largest_error: float
    iterations: int


def _minus_combination(w, coeffs, Q):
    """``w - Σ_i coeffs[i]·Q[i]`` with ``Q`` a stacked batch of vectors."""
    if isinstance(w, tuple):
        return tuple(_minus_combination(a, coeffs, q) for a, q in zip(w, Q))
    xp = namespace(w)
    return w - xp.tensordot(coeffs, Q, axes=1)


def lanczos(apply, shape, like, *, maxiter=300, tol=1e-10, seed=0, which="both"):
    r"""Extreme eigenvalues of a symmetric operator by Lanczos.

    Full reorthogonalization (two Gram–Schmidt passes) keeps the basis
    orthonormal, so the Ritz values are reliable; the iteration stops when
    the residual bound :math:`\beta_k |s_{k,i}|` of the wanted extreme Ritz
    pairs is below ``tol`` times the largest Ritz magnitude, or at an
    invariant subspace, or after ``maxiter`` steps.  Each Ritz value
    :math:`\theta` has an eigenvalue within its residual, and the smallest
    (largest) Ritz value is never below (above) the smallest (largest)
    eigenvalue.

    Parameters
    ----------
    apply : callable
        ``v ↦ S v`` for a symmetric ``S`` (one vector, no batch axes).
    shape : tuple
        Trailing shape of a vector (a tuple of block shapes for tuples).
    like : array
        Gives the array library, dtype and device.
    maxiter : int
        Largest number of Lanczos steps (capped by the dimension).
    tol : float
        Relative target: stop once the wanted Ritz pairs' residual bounds are
        at most ``tol`` times the largest Ritz magnitude.
    seed : int
        Seed of the NumPy generator that draws the random start vector.
    which : {"min", "max", "both"}
        The end(s) of the spectrum whose residual bound must reach ``tol``.

    Returns
    -------
    LanczosResult

    References
    ----------
    G. H. Golub and C. F. Van Loan, *Matrix Computations*, 4th ed., §10.1.

    Examples
    --------
    >>> import numpy as np
    >>> from opsplit.diagnostics import lanczos
    >>> S = np.diag(np.arange(1.0, 31.0))
    >>> r = lanczos(lambda v: S @ v, (30,), S)
    >>> round(r.smallest, 8), round(r.largest, 8)
    (1.0, 30.0)
    """
    if which not in ("min", "max", "both"):
        raise ValueError(f"which must be 'min', 'max' or 'both', got {which!r}")
    from scipy.linalg import eigh_tridiagonal  # host, small: the Lanczos matrix T
    n = shape_size(shape)
    kmax = max(1, min(n, int(maxiter)))
    rng = np.random.default_rng(seed)
    q = random_vector(shape, like, rng)
    q = scale(1.0 / math.sqrt(float(host(batch_dot(q, q, 0)))), q)
    basis, alphas, betas = [q], [], []
    for k in range(kmax):
        w = apply(basis[-1])
        Q = stack(basis)
        coeffs = batch_dot(Q, w, 1)
        w = _minus_combination(w, coeffs, Q)
        again = batch_dot(Q, w, 1)
        w = _minus_combination(w, again, Q)
        alphas.append(float(host(coeffs[-1] + again[-1])))
        beta = math.sqrt(max(float(host(batch_dot(w, w, 0))), 0.0))
        size = max(abs(a) for a in alphas) + max(betas, default=0.0)
        invariant = beta <= 10 * eps_of(like) * max(size, np.finfo(np.float64).tiny)
        last = invariant or k == kmax - 1
        if last or k % 5 == 4:
            theta, s = eigh_tridiagonal(np.asarray(alphas), np.asarray(betas))
            res = (0.0, 0.0) if invariant else (beta * abs(s[-1, 0]), beta * abs(s[-1, -1]))
            size_ritz = max(abs(theta[0]), abs(theta[-1]), np.finfo(np.float64).tiny)
            wanted = {"min": res[0], "max": res[1], "both": max(res)}[which]
            if last or wanted <= tol * size_ritz:
                return LanczosResult(
                    float(theta[0]), float(res[0]), float(theta[-1]), float(res[1]), k + 1
                )
        betas.append(beta)
        basis.append(scale(1.0 / beta, w))
    raise AssertionError("unreachable")  # pragma: no cover


class NormEstimate(NamedTuple):
    """The operator norm found by :func:`estimate_norm`.

    Attributes
    ----------
    value : float
        The norm (a lower bound when estimated by Lanczos: a Ritz value).
    error : float
        The accuracy reached (0 when exact); ``value + error`` bounds the
        norm from above once Lanczos has found the largest eigenvalue.
    method : str
        How the value was obtained.
    exact : bool
        Whether ``value`` follows exactly from the structure or a dense matrix.
    """

    value: float
    error: float
    method: str
    exact: bool

    @property
    def upper(self) -> float:
        """``value + error``: the norm to use where it must not be underestimated
        (step sizes)."""
        return self.value + self.error


def estimate_norm(
    op, like=None, *, method="auto", dense_limit=2048, tol=1e-10, maxiter=300, seed=0
) -> NormEstimate:
    r"""The operator norm :math:`\|L\|_2` (largest singular value) of ``L = op``.

    Exact for the structures of :func:`~opsplit.operators.spectral.exact_norm_rule`
    (dense, diagonal, FFT convolutions, ...) and, below ``dense_limit``
    unknowns, from the dense matrix; otherwise Lanczos on :math:`L^{H} L`
    (equivalent to, and faster than, power iteration), whose ``error`` bounds
    the distance to the norm if the largest eigenvalue has been found.

    Parameters
    ----------
    op : LinearOperator
        The operator, square or not.
    like : array, optional
        Gives library, dtype and device when ``op`` holds no array.
    method : {"auto", "exact", "dense", "lanczos"}
        ``"auto"``: a structural exact rule, else the dense matrix's largest
        singular value when ``op`` has at most ``dense_limit`` unknowns, else
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
    NormEstimate

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> from opsplit.operators.lanczos import estimate_norm
    >>> D = np.diff(np.eye(500), axis=0)           # forward differences, ‖D‖ < 2
    >>> est = estimate_norm(ops.Dense(D), method="lanczos")
    >>> est.exact, bool(abs(est.value - np.linalg.norm(D, 2)) < 1e-6 * est.value)
    (False, True)
    >>> estimate_norm(ops.Dense(D)).method     # exact from the structure when it can be
    'largest singular value (svdvals)'

    """
    check_linear(op, "op")
    if method not in ("auto", "exact", "dense", "lanczos"):
        raise ValueError(f"method must be 'auto', 'exact', 'dense' or 'lanczos', got {method!r}")
    # A structural rule needs no array: operators that hold none (differences,
    # identities) get their exact norm without ``like``.
    exact = None if method in ("dense", "lanczos") else exact_norm_rule(op)
    if exact is not None:
        return NormEstimate(float(exact[0]), 0.0, exact[1], True)
    ref = like_of(op, like)
    if exact is None and (
        method == "dense" or (method == "auto" and shape_size(op.in_shape) <= dense_limit)
    ):
        exact = (_svd_max(_upcast(op.to_dense(ref))), "svdvals of the dense matrix")
    if exact is not None:
        return NormEstimate(float(exact[0]), 0.0, exact[1], True)
    if method == "exact":
        raise ValueError(f"method='exact': no exact rule for {type(op).__name__}")
    r = lanczos(
        lambda v: op.rmatvec(op.matvec(v)), op.in_shape, ref,
        maxiter=maxiter, tol=tol, seed=seed, which="max",
    )
    value = math.sqrt(max(r.largest, 0.0))
    error = math.sqrt(max(r.largest, 0.0) + r.largest_error) - value
    return NormEstimate(value, error, f"Lanczos on LᴴL, {r.iterations} steps", False)
