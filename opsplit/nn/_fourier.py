r"""Fourier-domain pieces shared by the convolutional monDEQ layers.

Circular multi-channel cross-correlations on an ``n1 × n2`` grid (the
``conv2d`` of deep-learning libraries with circular padding and a centred
``k × k`` kernel) are block diagonal in the 2-D Fourier basis.  Where a layer
also subsamples by 2 (the multi-tier layer's inter-tier maps keep even rows
and columns), the grid is split into its ``q × q = 4`` *polyphase*
components (even/odd rows × even/odd columns), each on an
``n1/q × n2/q`` grid: a circular cross-correlation of the fine grid is a
``q²C_out × q²C_in`` circular cross-correlation of the coarse one, and the
subsampling keeps one phase, so it too is block diagonal there.  Either way
an operator is one complex ``C' × C'`` matrix per frequency of the real FFT's
half spectrum (``rfft2``), applied as

.. math::

    y = \operatorname{irfft2}\big(S[f]\;\operatorname{rfft2}(x)[:, f]\big),

one batched matrix product over the frequencies ``f``: the kernel
:func:`opsplit.operators.conv.apply_symbol`, shared with
:class:`~opsplit.Conv2dFFT` (the spectrum laid out ``(F, C, batch)`` so that
the product is a single batched GEMM, the transposes absorbed by the
transforms; nothing of size ``batch × F × C × C`` is formed).  This module
adds the polyphase symbols, the kernel gradients and :class:`SpectralConv`.

References
----------
E. Winston and J. Z. Kolter, "Monotone operator equilibrium networks",
NeurIPS 2020, Section 4 and Appendix D.
"""

from __future__ import annotations

import itertools

import numpy as np

from .._backend import device, namespace, to_numpy
from ..operators import LinearOperator, shifted_inverse, shifted_operator
from ..operators.basic import check_trailing
from ..operators.conv import apply_symbol, embed_kernel, fft_module
from ..operators.spectral import exact_norm_rule, exact_range

__all__ = [
    "to_phases",
    "from_phases",
    "kernel_symbol",
    "cross_spectrum",
    "kernel_gradient",
    "conj_t",
    "pad_ring",
    "crop_ring",
    "SpectralConv",
]


def conj_t(a):
    """Conjugate transpose of the trailing two axes."""
    xp = namespace(a)
    return xp.conj(xp.matrix_transpose(a))


# -- grids ------------------------------------------------------------------------------


def pad_ring(x, width=1):
    """Zero-pad the last two axes by ``width`` on every side."""
    xp = namespace(x)
    *lead, n1, n2 = x.shape
    dev = device(x)
    cols = xp.zeros((*lead, n1, width), dtype=x.dtype, device=dev)
    x = xp.concat([cols, x, cols], axis=-1)
    rows = xp.zeros((*lead, width, n2 + 2 * width), dtype=x.dtype, device=dev)
    return xp.concat([rows, x, rows], axis=-2)


def crop_ring(x, width=1):
    """The interior of the last two axes (inverse of :func:`pad_ring`)."""
    return x[..., width:-width, width:-width]


def to_phases(x, q):
    """``(..., C, n1, n2) -> (..., C·q², n1/q, n2/q)``: the polyphase components.

    Channel ``c·q² + a1·q + a2`` holds ``x[..., c, a1::q, a2::q]``.
    """
    if q == 1:
        return x
    xp = namespace(x)
    *lead, c, n1, n2 = x.shape
    nd = len(lead)
    y = xp.reshape(x, (*lead, c, n1 // q, q, n2 // q, q))
    y = xp.permute_dims(y, (*range(nd), nd, nd + 2, nd + 4, nd + 1, nd + 3))
    return xp.reshape(y, (*lead, c * q * q, n1 // q, n2 // q))


def from_phases(y, q):
    """Inverse of :func:`to_phases`."""
    if q == 1:
        return y
    xp = namespace(y)
    *lead, cq, m1, m2 = y.shape
    nd = len(lead)
    c = cq // (q * q)
    x = xp.reshape(y, (*lead, c, q, q, m1, m2))
    x = xp.permute_dims(x, (*range(nd), nd, nd + 3, nd + 1, nd + 4, nd + 2))
    return xp.reshape(x, (*lead, c, m1 * q, m2 * q))


# -- symbols ----------------------------------------------------------------------------


def kernel_symbol(kernel, grid, q=1):
    r"""Per-frequency matrices of the circular cross-correlation by ``kernel``.

    Parameters
    ----------
    kernel : array, shape (C_out, C_in, kh, kw)
    grid : tuple of int
        The (fine) grid the correlation acts on; divisible by ``q``.
    q : int
        Polyphase factor: 1 (the plain symbol) or 2.

    Returns
    -------
    array, shape (F, q²·C_out, q²·C_in)
        Complex, ``F = (n1/q)·((n2/q)//2 + 1)`` frequencies of the coarse
        grid's half spectrum (row-major).  With ``g`` the embedded kernel
        (:func:`~opsplit.operators.conv.embed_kernel`), the polyphase kernel from input phase ``b``
        to output phase ``a`` is :math:`\tilde g_{ab}[d] = g[q d + b - a]`,
        and the symbol of a cross-correlation is
        :math:`\overline{\operatorname{rfft2}(\tilde g)}`.
    """
    xp = namespace(kernel)
    g = embed_kernel(kernel, grid)
    if q > 1:
        rows = []
        for a1, a2 in itertools.product(range(q), repeat=2):
            cols = [
                xp.roll(g, shift=(a1 - b1, a2 - b2), axis=(-2, -1))[..., ::q, ::q]
                for b1, b2 in itertools.product(range(q), repeat=2)
            ]
            rows.append(xp.stack(cols, axis=2))  # (C_out, C_in, q², m1, m2)
        g = xp.stack(rows, axis=1)  # (C_out, q², C_in, q², m1, m2)
        c_out, _, c_in, _, m1, m2 = g.shape
        g = xp.reshape(g, (c_out * q * q, c_in * q * q, m1, m2))
    spec = xp.conj(fft_module(xp).rfftn(g, axes=(-2, -1)))
    c_out, c_in, m1, m2h = spec.shape
    return xp.reshape(xp.permute_dims(spec, (2, 3, 0, 1)), (m1 * m2h, c_out, c_in))


def cross_spectrum(u_spec, v_spec):
    r""":math:`\sum_{\text{batch}} \overline{\hat u}\,\hat v^\top` per frequency:
    ``(F, C_u, batch), (F, C_v, batch) -> (F, C_u, C_v)``, the spectrum of
    the batch-summed cross-correlation maps ``Σ_i u[o, i] v[c, i + s]``."""
    xp = namespace(u_spec)
    return xp.matmul(xp.conj(u_spec), xp.matrix_transpose(v_spec))


def kernel_gradient(cross, grid, kernel_size):
    r"""The gradient of :math:`\langle u, K \star v\rangle` with respect to the
    ``k × k`` kernel ``K``, from ``cross = cross_spectrum(û, v̂)``:
    ``G[o, c, p, q] = Σ_i u[o, i] v[c, i + (p, q) - k//2]`` (real array)."""
    xp = namespace(cross)
    n1, n2 = grid
    f, c_u, c_v = cross.shape
    spec = xp.reshape(xp.permute_dims(cross, (1, 2, 0)), (c_u, c_v, n1, n2 // 2 + 1))
    maps = fft_module(xp).irfftn(spec, s=(n1, n2), axes=(-2, -1))
    kh, kw = kernel_size
    maps = xp.roll(maps, shift=(kh // 2, kw // 2), axis=(-2, -1))
    return maps[..., :kh, :kw]


# -- the operator -----------------------------------------------------------------------


class SpectralConv(LinearOperator):
    r"""A circular multi-channel cross-correlation given by its per-frequency matrices.

    Acts on trailing axes ``(C_in, n1, n2)`` and returns ``(C_out, n1, n2)``
    (leading axes are batch axes):
    :math:`y = \operatorname{irfft2}(S[f]\,\operatorname{rfft2}(x)[:, f])`
    on the polyphase grids of factor ``q`` (see the module docstring).
    Shifted inverses :math:`(aI + bS)^{-1}` are one batched ``C' × C'``
    inverse per frequency, exact on the half spectrum because the symbol of
    a real operator satisfies :math:`S(-\omega) = \overline{S(\omega)}`.

    Parameters
    ----------
    symbol : complex array, shape (F, q²·C_out, q²·C_in)
        From :func:`kernel_symbol` (and sums and products of such).
    grid : tuple of int
        ``(n1, n2)``, the fine grid.
    q : int
        Polyphase factor (1 or 2).
    """

    def __init__(self, symbol, grid, q=1):
        xp = namespace(symbol)
        n1, n2 = grid
        m1, m2 = n1 // q, n2 // q
        if symbol.ndim != 3 or symbol.shape[0] != m1 * (m2 // 2 + 1):
            raise ValueError(
                f"symbol must have shape ({m1 * (m2 // 2 + 1)}, C_out, C_in) for grid {grid} "
                f"and q={q}, got {tuple(symbol.shape)}"
            )
        self.symbol = symbol
        self.grid, self.q = (int(n1), int(n2)), int(q)
        self.in_shape = (symbol.shape[2] // (q * q), n1, n2)
        self.out_shape = (symbol.shape[1] // (q * q), n1, n2)
        self.dtype = xp.real(symbol[:1, :1, :1]).dtype
        self._symbol_h = conj_t(symbol)

    def matvec(self, x):
        check_trailing(x, self.in_shape, "x")
        return apply_symbol(self.symbol, x, self.grid, self.q)

    def rmatvec(self, y):
        check_trailing(y, self.out_shape, "y")
        return apply_symbol(self._symbol_h, y, self.grid, self.q)

    def _like(self, like):
        return namespace(self.symbol).real(self.symbol)

    def norm(self) -> float:
        """``‖op‖₂``: the largest singular value over the frequencies (host)."""
        mats = to_numpy(self.symbol).astype(np.complex128)
        return float(np.linalg.norm(mats, ord=2, axis=(-2, -1)).max())

    def symmetric_range(self) -> tuple:
        """``(λ_min, λ_max)`` of the symmetric part (square operators; host)."""
        mats = to_numpy(self.symbol).astype(np.complex128)
        eig = np.linalg.eigvalsh(0.5 * (mats + np.conj(np.swapaxes(mats, -1, -2))))
        return float(eig.min()), float(eig.max())

    def margin(self) -> float:
        """λ_min of the symmetric part (square operators; host)."""
        return self.symmetric_range()[0]


def _shifted_symbol(op: SpectralConv, a, b):
    if op.in_shape != op.out_shape:
        raise ValueError(f"a shifted operator must be square, got {op.out_shape} <- {op.in_shape}")
    xp = namespace(op.symbol)
    eye = xp.eye(op.symbol.shape[-1], dtype=op.symbol.dtype, device=device(op.symbol))
    return a * eye + b * op.symbol


@shifted_inverse.register
def _(op: SpectralConv, a: float = 1.0, b: float = 1.0):
    """``(aI + bL)⁻¹``: one batched inverse of the per-frequency matrices."""
    xp = namespace(op.symbol)
    return SpectralConv(xp.linalg.inv(_shifted_symbol(op, a, b)), op.grid, op.q)


@shifted_operator.register
def _(op: SpectralConv, a: float = 1.0, b: float = 1.0):
    """``aI + bL``: one symbol, one FFT pair."""
    return SpectralConv(_shifted_symbol(op, a, b), op.grid, op.q)


@exact_range.register
def _(op: SpectralConv):
    if op.in_shape != op.out_shape:
        return None
    lo, hi = op.symmetric_range()
    return lo, hi, "per-frequency eigvalsh of the (polyphase) FFT symbol"


@exact_norm_rule.register
def _(op: SpectralConv):
    return op.norm(), "per-frequency singular values of the (polyphase) FFT symbol"
