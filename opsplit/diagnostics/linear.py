r"""Spectral facts about linear operators: margin, norm, adjoint test.

The *margin* of a square linear operator ``L`` is the smallest eigenvalue of
its symmetric part,

.. math::

    m(L) = \lambda_{\min}\Big(\tfrac12 (L + L^{H})\Big)
         = \min_{x \ne 0} \frac{\langle L x, x\rangle}{\|x\|^2},

so ``L`` is monotone iff ``m(L) >= 0`` and ``m``-strongly monotone iff
``m(L) >= m``.  Both :func:`margin` and :func:`opnorm` use the operator's
structure when it gives an exact answer, and Lanczos otherwise:

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

import math
import operator
from dataclasses import dataclass
from functools import singledispatch

import numpy as np
from array_api_compat import device

from .._backend import namespace
from ..operators._base import (
    AdjointOperator,
    LinearOperator,
    ProductOperator,
    ScaledOperator,
    SumOperator,
    flatten,
    unflatten,
)
from ..operators.basic import Dense, Diagonal, Identity
from ..operators.block import BlockDiagonal
from ..operators.conv import Conv2dFFT
from ._report import Estimate, compare, finish
from ._vec import batch_dot, eps_of, host, like_of, random_vector, stack, vector_size

__all__ = ["margin", "opnorm", "symmetric_range", "check_adjoint", "lanczos", "dense_matrix"]


def _check_linear(op, name="op"):
    if not isinstance(op, LinearOperator):
        raise TypeError(f"{name} must be a LinearOperator, got {type(op).__name__}")


def _check_square(op, name="op"):
    if op.in_shape != op.out_shape:
        raise ValueError(f"{name} must be square, got {op.out_shape} <- {op.in_shape}")


def _upcast(a):
    """``a`` in double precision (real or complex), on its device, for accurate spectra."""
    xp = namespace(a)
    if xp.isdtype(a.dtype, "complex floating"):
        return xp.astype(a, xp.complex128)
    return xp.astype(a, xp.float64)


# -- FFT-diagonal forms: c·I + conv(symbol) -----------------------------------------


@dataclass(frozen=True)
class _FFTForm:
    """``scalar·I + conv(symbol)`` with ``symbol`` of shape (H, W//2+1, C, C) or None."""

    scalar: float
    symbol: object
    image_shape: tuple | None

    def matrices(self):
        """Per-frequency matrices ``scalar·I + symbol`` (upcast)."""
        xp = namespace(self.symbol)
        s = _upcast(self.symbol)
        eye = xp.eye(s.shape[-1], dtype=s.dtype, device=device(s))
        return s + self.scalar * eye


def _combine(op, fn_sym, fn_scalar):
    """The form of the sum or product ``op`` from the forms of ``op.a`` and ``op.b``:
    scalar ``fn_scalar(a.scalar, b.scalar)``, symbol ``fn_sym(a, b)``."""
    a, b = _fft_form(op.a), _fft_form(op.b)
    if a is None or b is None:
        return None
    if a.symbol is not None and b.symbol is not None:
        if a.image_shape != b.image_shape or a.symbol.shape != b.symbol.shape:
            return None
    shape = a.image_shape if a.symbol is not None else b.image_shape
    return _FFTForm(fn_scalar(a.scalar, b.scalar), fn_sym(a, b), shape)


@singledispatch
def _fft_form(op):
    """The FFT-diagonal form of ``op``, or None when it has none."""
    return None


@_fft_form.register
def _(op: Identity):
    return _FFTForm(1.0, None, None)


@_fft_form.register
def _(op: Conv2dFFT):
    if op.channels_in != op.channels_out:
        return None
    return _FFTForm(0.0, op.symbol, op.image_shape)


@_fft_form.register
def _(op: ScaledOperator):
    f = _fft_form(op.op)
    if f is None:
        return None
    return _FFTForm(op.scalar * f.scalar, None if f.symbol is None else op.scalar * f.symbol,
                    f.image_shape)


@_fft_form.register
def _(op: AdjointOperator):
    f = _fft_form(op.op)
    if f is None or f.symbol is None:
        return f
    xp = namespace(f.symbol)
    return _FFTForm(f.scalar, xp.conj(xp.matrix_transpose(f.symbol)), f.image_shape)


@_fft_form.register
def _(op: SumOperator):
    def sym(a, b):
        if a.symbol is None:
            return b.symbol
        if b.symbol is None:
            return a.symbol
        return a.symbol + b.symbol

    return _combine(op, sym, operator.add)


@_fft_form.register
def _(op: ProductOperator):
    def sym(a, b):
        terms = []
        if a.symbol is not None and b.symbol is not None:
            terms.append(namespace(a.symbol).matmul(a.symbol, b.symbol))
        if a.symbol is not None and b.scalar:
            terms.append(b.scalar * a.symbol)
        if b.symbol is not None and a.scalar:
            terms.append(a.scalar * b.symbol)
        if not terms:
            return None
        total = terms[0]
        for t in terms[1:]:
            total = total + t
        return total

    return _combine(op, sym, operator.mul)


# -- exact rules ----------------------------------------------------------------------


def _hermitian_part(m):
    xp = namespace(m)
    mt = xp.matrix_transpose(m)
    if xp.isdtype(m.dtype, "complex floating"):
        mt = xp.conj(mt)
    return (m + mt) / 2


def _range_of_matrices(mats):
    ev = host(namespace(mats).linalg.eigvalsh(_hermitian_part(mats)))
    return float(ev.min()), float(ev.max())


@singledispatch
def _exact_range(op):
    """(λ_min, λ_max, method) of the symmetric part, or None when no exact rule applies."""
    form = _fft_form(op)
    if form is None or form.symbol is None:
        return None
    lo, hi = _range_of_matrices(form.matrices())
    return lo, hi, "per-frequency eigvalsh of the FFT symbol"


@_exact_range.register
def _(op: Identity):
    return 1.0, 1.0, "identity"


@_exact_range.register
def _(op: Diagonal):
    d = host(op.diagonal)
    return float(d.min()), float(d.max()), "diagonal entries"


@_exact_range.register
def _(op: Dense):
    lo, hi = _range_of_matrices(_upcast(op.matrix))
    return lo, hi, "eigvalsh of the symmetric part"


@_exact_range.register
def _(op: ScaledOperator):
    inner = _exact_range(op.op)
    if inner is None:
        return None
    lo, hi, method = inner
    s = op.scalar
    return (s * lo, s * hi, method) if s >= 0 else (s * hi, s * lo, method)


@_exact_range.register
def _(op: AdjointOperator):
    return _exact_range(op.op)


@_exact_range.register
def _(op: BlockDiagonal):
    parts = [_exact_range(b) if b.in_shape == b.out_shape else None for b in op.blocks]
    if any(p is None for p in parts):
        return None
    return min(p[0] for p in parts), max(p[1] for p in parts), "block by block: " + parts[0][2]


def _svd_max(mats):
    return float(host(namespace(mats).linalg.svdvals(mats)).max())


@singledispatch
def _exact_norm(op):
    """(‖op‖₂, method), or None when no exact rule applies."""
    form = _fft_form(op)
    if form is None or form.symbol is None:
        return None
    return _svd_max(form.matrices()), "per-frequency singular values of the FFT symbol"


@_exact_norm.register
def _(op: Identity):
    return 1.0, "identity"


@_exact_norm.register
def _(op: Diagonal):
    return float(np.abs(host(op.diagonal)).max()), "diagonal entries"


@_exact_norm.register
def _(op: Dense):
    return _svd_max(_upcast(op.matrix)), "largest singular value (svdvals)"


@_exact_norm.register
def _(op: Conv2dFFT):
    return _svd_max(_upcast(op.symbol)), "per-frequency singular values of the FFT symbol"


@_exact_norm.register
def _(op: ScaledOperator):
    inner = _exact_norm(op.op)
    return None if inner is None else (abs(op.scalar) * inner[0], inner[1])


@_exact_norm.register
def _(op: AdjointOperator):
    return _exact_norm(op.op)


@_exact_norm.register
def _(op: BlockDiagonal):
    parts = [_exact_norm(b) for b in op.blocks]
    if any(p is None for p in parts):
        return None
    return max(p[0] for p in parts), "block by block: " + parts[0][1]


# -- dense fallback -------------------------------------------------------------------


def _is_blocked(shape):
    return bool(shape) and isinstance(shape[0], tuple)


def dense_matrix(op: LinearOperator, like=None):
    """The dense matrix of ``op`` (rows: flattened outputs, blocks concatenated).

    Built by applying ``op`` once to the batch of all basis vectors, so it
    works for block operators on tuples too.  Intended for small operators.

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> from opsplit.diagnostics import dense_matrix
    >>> dense_matrix(ops.Diagonal(np.array([1.0, 2.0])))
    array([[1., 0.],
           [0., 2.]])
    """
    _check_linear(op)
    ref = like_of(op, like)
    xp = namespace(ref)
    n = vector_size(op.in_shape)
    basis = unflatten(xp.eye(n, dtype=ref.dtype, device=device(ref)), op.in_shape)
    return xp.matrix_transpose(flatten(op.matvec(basis), op.out_shape))


# -- Lanczos --------------------------------------------------------------------------


@dataclass(frozen=True)
class LanczosResult:
    """Extreme Ritz values of a symmetric operator and their residuals."""

    smallest: float
    smallest_error: float
    largest: float
    largest_error: float
    iterations: int


def _scaled(v, s):
    return tuple(s * p for p in v) if isinstance(v, tuple) else s * v


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
    maxiter, tol, seed, which
        Step limit, relative residual target, start-vector seed, and which
        end(s) of the spectrum must converge: ``"min"``, ``"max"``, ``"both"``.

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
    n = vector_size(shape)
    kmax = max(1, min(n, int(maxiter)))
    rng = np.random.default_rng(seed)
    q = random_vector(shape, like, rng)
    q = _scaled(q, 1.0 / math.sqrt(float(host(batch_dot(q, q, 0)))))
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
            scale = max(abs(theta[0]), abs(theta[-1]), np.finfo(np.float64).tiny)
            wanted = {"min": res[0], "max": res[1], "both": max(res)}[which]
            if last or wanted <= tol * scale:
                return LanczosResult(
                    float(theta[0]), float(res[0]), float(theta[-1]), float(res[1]), k + 1
                )
        betas.append(beta)
        basis.append(_scaled(w, 1.0 / beta))
    raise AssertionError("unreachable")  # pragma: no cover


def _add_vec(a, b):
    return tuple(x + y for x, y in zip(a, b)) if isinstance(a, tuple) else a + b


# -- public functions -----------------------------------------------------------------


def _resolve(op, like, dense_limit, method):
    if method not in ("auto", "exact", "dense", "lanczos"):
        raise ValueError(f"method must be 'auto', 'exact', 'dense' or 'lanczos', got {method!r}")
    use_dense = method == "dense" or (
        method == "auto" and vector_size(op.in_shape) <= dense_limit
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
    dense_limit, tol, maxiter, seed
        See :func:`lanczos`.

    Returns
    -------
    (Estimate, Estimate)
        λ_min and λ_max, each with its accuracy.
    """
    _check_linear(L, "L")
    _check_square(L, "L")
    use_dense, ref = _resolve(L, like, dense_limit, method)
    exact = None if method in ("dense", "lanczos") else _exact_range(L)
    if exact is None and use_dense:
        lo, hi = _range_of_matrices(_upcast(dense_matrix(L, ref)))
        exact = (lo, hi, "eigvalsh of the dense symmetric part")
    if exact is not None:
        lo, hi, how = exact
        return (Estimate(lo, method=how, exact=True), Estimate(hi, method=how, exact=True))
    if method == "exact":
        raise ValueError(f"method='exact': no exact rule for {type(L).__name__}")

    def sym(v):
        return _scaled(_add_vec(L.matvec(v), L.rmatvec(v)), 0.5)

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
    like : array, optional
        Gives library, dtype and device when ``L`` holds no array.
    method, dense_limit, tol, maxiter, seed
        As in :func:`symmetric_range`.

    Returns
    -------
    Estimate

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> round(ops.diagnostics.opnorm(ops.Dense(np.array([[3.0, 0.0], [4.0, 0.0]]))), 12)
    5.0
    """
    _check_linear(L, "L")
    use_dense, ref = _resolve(L, like, dense_limit, method)
    exact = None if method in ("dense", "lanczos") else _exact_norm(L)
    if exact is None and use_dense:
        exact = (_svd_max(_upcast(dense_matrix(L, ref))), "svdvals of the dense matrix")
    if exact is not None:
        return Estimate(exact[0], method=exact[1], exact=True)
    if method == "exact":
        raise ValueError(f"method='exact': no exact rule for {type(L).__name__}")
    r = lanczos(
        lambda v: L.rmatvec(L.matvec(v)), L.in_shape, ref,
        maxiter=maxiter, tol=tol, seed=seed, which="max",
    )
    value = math.sqrt(max(r.largest, 0.0))
    error = math.sqrt(max(r.largest, 0.0) + r.largest_error) - value
    return Estimate(value, error=error, method=f"Lanczos on LᴴL, {r.iterations} steps")


def check_adjoint(L, like=None, *, trials=3, rtol=None, seed=0, raise_on_fail=False):
    r"""The dot test :math:`\langle L x, y\rangle = \langle x, L^{H} y\rangle`.

    On ``trials`` random pairs (one batched application each way), the
    relative mismatch

    .. math::

        \frac{|\langle Lx, y\rangle - \langle x, L^{H}y\rangle|}
             {\max(\|Lx\|\,\|y\|,\ \|x\|\,\|L^{H}y\|)}

    must stay below ``rtol`` (default ``1000·eps`` of the dtype).

    Parameters
    ----------
    L : LinearOperator
    like : array, optional
        Gives library, dtype and device when ``L`` holds no array.
    trials : int
        Number of random pairs.
    rtol : float, optional
    seed : int
    raise_on_fail : bool
        Raise :class:`~opsplit.diagnostics.CheckFailed` when the test fails.

    Returns
    -------
    CheckReport
        ``worst`` is the largest relative mismatch.

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> ops.diagnostics.check_adjoint(ops.Dense(np.arange(6.0).reshape(2, 3))).passed
    True
    """
    _check_linear(L, "L")
    if not isinstance(trials, int) or trials < 1:
        raise ValueError(f"trials must be a positive integer, got {trials!r}")
    ref = like_of(L, like)
    tol = 1000 * eps_of(ref) if rtol is None else float(rtol)
    rng = np.random.default_rng(seed)
    x = random_vector(L.in_shape, ref, rng, batch=(trials,))
    y = random_vector(L.out_shape, ref, rng, batch=(trials,))
    Lx, Lhy = L.matvec(x), L.rmatvec(y)
    lhs, rhs = host(batch_dot(Lx, y, 1)), host(batch_dot(x, Lhy, 1))
    nLx, ny = np.sqrt(host(batch_dot(Lx, Lx, 1))), np.sqrt(host(batch_dot(y, y, 1)))
    nx, nLhy = np.sqrt(host(batch_dot(x, x, 1))), np.sqrt(host(batch_dot(Lhy, Lhy, 1)))
    scale = np.maximum(np.maximum(nLx * ny, nx * nLhy), np.finfo(np.float64).tiny)
    worst = float(np.max(np.abs(lhs - rhs) / scale))
    quantity = "relative mismatch |<Lx,y> - <x,L^H y>|"
    how = f"dot test on {trials} random pairs"
    report = compare("adjoint", worst, 0.0, tol, "lower", quantity, how, trials)
    return finish(report, raise_on_fail)
