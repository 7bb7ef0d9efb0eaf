"""Lanczos with full reorthogonalization: extreme eigenvalues of a symmetric
operator given only by its action, with the accuracy reached."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._backend import namespace
from .._vectors import scale, shape_size
from ._vec import batch_dot, eps_of, host, random_vector, stack

__all__ = ["lanczos", "LanczosResult"]


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
