r"""Spectral facts that follow exactly from an operator's structure.

The *margin* of a square linear operator ``L`` is the smallest eigenvalue of
its symmetric part,

.. math::

    m(L) = \lambda_{\min}\Big(\tfrac12 (L + L^{H})\Big)
         = \min_{x \ne 0} \frac{\langle L x, x\rangle}{\|x\|^2},

so ``L`` is monotone iff ``m(L) >= 0`` and ``m``-strongly monotone iff
``m(L) >= m``; :math:`I + \alpha L` is then invertible for every
:math:`\alpha > 0`.  The rules here are exact and cheap where the structure
allows:

- :class:`~opsplit.Identity`, :class:`~opsplit.Diagonal`: closed form;
- :class:`~opsplit.Dense`: ``eigvalsh`` of the symmetric part, ``svdvals``;
- FFT convolutions (:class:`~opsplit.Conv2dFFT`) and any sum, scaling,
  product or adjoint of them with the identity (``I - W``): the per-frequency
  ``C×C`` symbols;
- finite differences (:class:`~opsplit.operators.Difference1D`,
  :class:`~opsplit.operators.Gradient2D`): the path-Laplacian eigenvalues (norm only);
- scaled, adjoint and block-diagonal operators of those.

They return ``None`` when the structure gives no exact answer;
:mod:`opsplit.diagnostics` then estimates (Lanczos).  Each call moves a few
numbers to the host: call them once per operator, not inside iterations.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from functools import singledispatch

import numpy as np

from .._backend import device, namespace, to_numpy
from .._vectors import is_block_shape, shape_size
from ._base import (
    AdjointOperator,
    LinearOperator,
    ProductOperator,
    ScaledOperator,
    SumOperator,
    check_linear,
)
from .basic import Dense, Diagonal, Identity
from .block import BlockDiagonal
from .conv import Conv2dFFT
from .differences import Difference1D, Gradient2D
from .monotone import ForwardOperator, LinearMonotone

__all__ = ["exact_margin", "exact_norm", "exact_range", "exact_norm_rule", "exact_cocoercivity",
           "operator_lipschitz"]


def exact_margin(op: LinearOperator) -> float | None:
    r"""The margin :math:`\lambda_{\min}\big(\tfrac12(L + L^{H})\big)` of ``L = op``
    from its structure, or ``None`` when the structure does not give it exactly.

    Parameters
    ----------
    op : LinearOperator
        A square operator.

    Returns
    -------
    float or None

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> M = np.array([[1.0, 3.0], [-3.0, 2.0]])   # the skew part does not count
    >>> round(ops.operators.exact_margin(ops.Dense(M)), 12)
    1.0
    >>> ops.operators.exact_margin(ops.Dense(M) @ ops.Dense(M)) is None
    True
    """
    check_linear(op, square=True)
    found = exact_range(op)
    return None if found is None else found[0]


def exact_norm(op: LinearOperator) -> float | None:
    """The operator norm ``‖op‖₂`` (largest singular value) from the structure of
    ``op``, or ``None`` when the structure does not give it exactly.

    Parameters
    ----------
    op : LinearOperator

    Returns
    -------
    float or None

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> round(ops.operators.exact_norm(ops.Dense(np.array([[3.0, 0.0], [4.0, 0.0]]))), 12)
    5.0
    """
    check_linear(op)
    found = exact_norm_rule(op)
    return None if found is None else found[0]


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
    ev = to_numpy(namespace(mats).linalg.eigvalsh(_hermitian_part(mats)))
    return float(ev.min()), float(ev.max())


@singledispatch
def exact_range(op: LinearOperator) -> tuple[float, float, str] | None:
    r"""The extreme eigenvalues of the symmetric part :math:`\tfrac12(L + L^{H})`,
    from the structure of ``L = op``, and how they were computed.

    Register a rule for a new structure with ``exact_range.register``.

    Parameters
    ----------
    op : LinearOperator
        A square operator.

    Returns
    -------
    tuple (float, float, str) or None
        ``(λ_min, λ_max, how)``, or ``None`` when no structure gives them exactly.
    """
    form = _fft_form(op)
    if form is None or form.symbol is None:
        return None
    lo, hi = _range_of_matrices(form.matrices())
    return lo, hi, "per-frequency eigvalsh of the FFT symbol"


@exact_range.register
def _(op: Identity):
    return 1.0, 1.0, "identity"


@exact_range.register
def _(op: Diagonal):
    d = to_numpy(op.diagonal)
    return float(d.min()), float(d.max()), "diagonal entries"


@exact_range.register
def _(op: Dense):
    lo, hi = _range_of_matrices(_upcast(op.matrix))
    return lo, hi, "eigvalsh of the symmetric part"


@exact_range.register
def _(op: ScaledOperator):
    inner = exact_range(op.op)
    if inner is None:
        return None
    lo, hi, method = inner
    s = op.scalar
    return (s * lo, s * hi, method) if s >= 0 else (s * hi, s * lo, method)


@exact_range.register
def _(op: AdjointOperator):
    return exact_range(op.op)


@exact_range.register
def _(op: BlockDiagonal):
    parts = [exact_range(b) if b.in_shape == b.out_shape else None for b in op.blocks]
    if any(p is None for p in parts):
        return None
    return min(p[0] for p in parts), max(p[1] for p in parts), "block by block: " + parts[0][2]


def _svd_max(mats):
    return float(to_numpy(namespace(mats).linalg.svdvals(mats)).max())


@singledispatch
def exact_norm_rule(op: LinearOperator) -> tuple[float, str] | None:
    """``(‖op‖₂, how)`` from the structure of ``op``, or ``None`` when no
    structure gives the norm exactly.

    Register a rule for a new structure with ``exact_norm_rule.register``.

    Parameters
    ----------
    op : LinearOperator

    Returns
    -------
    tuple (float, str) or None
    """
    form = _fft_form(op)
    if form is None or form.symbol is None:
        return None
    return _svd_max(form.matrices()), "per-frequency singular values of the FFT symbol"


@exact_norm_rule.register
def _(op: Identity):
    return 1.0, "identity"


@exact_norm_rule.register
def _(op: Diagonal):
    return float(np.abs(to_numpy(op.diagonal)).max()), "diagonal entries"


@exact_norm_rule.register
def _(op: Dense):
    return _svd_max(_upcast(op.matrix)), "largest singular value (svdvals)"


@exact_norm_rule.register
def _(op: Conv2dFFT):
    return _svd_max(_upcast(op.symbol)), "per-frequency singular values of the FFT symbol"


@exact_norm_rule.register
def _(op: ScaledOperator):
    inner = exact_norm_rule(op.op)
    return None if inner is None else (abs(op.scalar) * inner[0], inner[1])


@exact_norm_rule.register
def _(op: AdjointOperator):
    return exact_norm_rule(op.op)


@exact_norm_rule.register
def _(op: BlockDiagonal):
    parts = [exact_norm_rule(b) for b in op.blocks]
    if any(p is None for p in parts):
        return None
    return max(p[0] for p in parts), "block by block: " + parts[0][1]


@exact_norm_rule.register(Difference1D)
@exact_norm_rule.register(Gradient2D)
def _(op):
    return op.norm(), "closed form: largest eigenvalue of the path Laplacian(s) DᵀD"


#: Largest number of unknowns for which the cocoercivity of a linear operator
#: without a closed form is computed from its dense matrix.
COCOERCIVITY_DENSE_LIMIT = 2048


def exact_cocoercivity(
    op: LinearOperator, dense_limit: int = COCOERCIVITY_DENSE_LIMIT
) -> float | None:
    r"""The largest ``β`` with :math:`\langle Lx, x\rangle \ge \beta\|Lx\|^2` for all
    ``x`` (``L = op``), or ``None`` when it is not computed.

    ``0.0`` means ``L`` is monotone but not cocoercive (some ``x`` has
    :math:`\langle Lx, x\rangle = 0 \ne Lx`, e.g. a nonzero skew-symmetric
    ``L``), ``-inf`` that ``L`` is not monotone, ``inf`` that ``L = 0``.
    Closed forms for the identity, diagonal and positively scaled operators;
    otherwise, for at most ``dense_limit`` unknowns, from the dense matrix
    ``M = U Σ Vᵀ``: on the complement of the kernel,

    .. math::

        \beta = \lambda_{\min}\bigl(\Sigma_r^{-1} V_r^{T} S V_r \Sigma_r^{-1}\bigr),
        \qquad S = \tfrac12 (M + M^{T}),

    (the kernel contributes nothing: :math:`Lk = 0` forces :math:`Sk = 0` for a
    monotone ``L``).  It moves the matrix to the host: call it once per
    operator, not inside iterations.

    Parameters
    ----------
    op : LinearOperator
        A square operator.
    dense_limit : int
        Largest number of unknowns for which the dense matrix is formed.

    Returns
    -------
    float or None

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> ops.operators.exact_cocoercivity(ops.Dense(np.diag([4.0, 1.0])))          # 1/λ_max
    0.25
    >>> ops.operators.exact_cocoercivity(ops.Dense(np.array([[0.0, 1.0], [-1.0, 0.0]])))  # skew
    0.0
    """
    if isinstance(op, Identity):
        return 1.0
    if isinstance(op, ScaledOperator) and op.scalar > 0:
        inner = exact_cocoercivity(op.op, dense_limit)
        if inner is not None:
            return inner / op.scalar
    if isinstance(op, Diagonal):
        d = to_numpy(op.diagonal).astype(np.float64)
        if d.size and d.min() < 0:
            return -math.inf
        top = float(d.max()) if d.size else 0.0
        return math.inf if top == 0 else 1.0 / top
    if op.dtype is None or is_block_shape(op.in_shape) or shape_size(op.in_shape) > dense_limit:
        return None
    return _dense_cocoercivity(to_numpy(op.to_dense()))


def _dense_cocoercivity(matrix) -> float:
    M = np.asarray(matrix, dtype=np.complex128 if np.iscomplexobj(matrix) else np.float64)
    S = (M + M.conj().T) / 2
    U, s, Vh = np.linalg.svd(M)
    if s.size == 0 or s[0] == 0:
        return math.inf
    rounding = 100 * max(M.shape) * np.finfo(np.float64).eps
    if np.linalg.eigvalsh(S).min() < -rounding * s[0]:
        return -math.inf
    rank = int(np.count_nonzero(s > rounding * s[0]))
    V = Vh[:rank].conj().T / s[:rank]
    K = V.conj().T @ S @ V
    beta = float(np.linalg.eigvalsh((K + K.conj().T) / 2).min())
    return 0.0 if beta * s[0] <= rounding else beta


def operator_lipschitz(op) -> float | None:
    """A Lipschitz constant of ``op``: the exact norm of an affine operator's
    linear part when its structure gives it, else the declared one, else ``None``."""
    if isinstance(op, LinearMonotone):
        found = exact_norm(op.op)
        if found is not None:
            return float(found)
    return op.lipschitz if isinstance(op, ForwardOperator) else None
