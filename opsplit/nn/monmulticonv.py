r"""The multi-tier convolutional monotone operator layer (Winston & Kolter 2020, §4).

Tiers ``i = 0 … L-1`` carry ``c_i`` channels on ``n_i × n_i`` zero-padded
grids, :math:`n_i = (n_0 - 2)/2^i + 2` with :math:`n_0 = H + 2`; the state is a
tuple ``(z_0, …, z_{L-1})``.  With every kernel normalized by its whole
Frobenius norm,

.. math::

    A_i = \sqrt{g_i}\,\frac{A_i}{\|A_i\|},\quad
    B_i = h_i\,\frac{B_i}{\|B_i\|},\quad
    N_i = \sqrt{g^n_i}\,\frac{N_i}{\|N_i\|},

:math:`S_i` the circular cross-correlation with :math:`N_i` on tier ``i``'s
grid kept at even rows and columns, and :math:`P` the placement of that
``(n_{i+1} - 1)²`` result in the top-left of tier ``i + 1``'s grid, the weight
is block lower-bidiagonal:

.. math::

    W_{ii} = (1 - m) I - A_i^\top A_i - S_i^\top S_i + B_i - B_i^\top, \qquad
    W_{i+1,i} = -2\,A_{i+1}^\top P S_i ,

(no :math:`S_i` term on the last tier), so that
:math:`I - W = m I + \mathcal A^\top\mathcal A + \text{skew}` with
:math:`\mathcal A` block lower-bidiagonal (:math:`A_i` on the diagonal,
:math:`P S_i` below): its symmetric part is :math:`\succeq m I` for every
parameter value.  The injection :math:`U \star x_{\text{pad}} + b` reaches
tier 0 only; the border nonlinearity acts on every tier's ring.

**Resolvent.**  :math:`(I + \alpha(I - W))^{-1}` is a block forward
substitution (:class:`~opsplit.operators.block.BlockForwardSubstitution`;
its adjoint a backward substitution) whose diagonal solves are exact although
:math:`S_i^\top S_i` is not diagonal in tier ``i``'s Fourier basis (the
stride-2 subsampling couples 4 aliased frequencies): tier ``i < L-1`` is
split into its 4 polyphase components on an ``n_i/2`` grid, where every
correlation of the tier, and the subsampling (which keeps phase ``(0, 0)``),
are block diagonal; so each diagonal block is one ``4c_i × 4c_i`` complex
inverse per frequency of that grid's half spectrum
(:mod:`opsplit.nn._fourier`).  The last tier uses the plain ``c × c`` symbols.

References
----------
E. Winston and J. Z. Kolter, "Monotone operator equilibrium networks",
NeurIPS 2020, Section 4 and Appendix D.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from .._backend import device, from_host, namespace, to_numpy
from .._validate import check_float_dtype, check_positive_int
from ..operators import BlockLowerTriangular, LinearOperator
from ..operators.basic import check_trailing
from ..operators.conv import apply_symbol, apply_to_spectrum, spectrum
from . import _fourier as fourier
from .border import BorderMasked
from .monconv import (
    check_field,
    check_image_input,
    check_image_shape,
    check_kernel_size,
    check_margin,
    fro,
    init_kernel,
    inner,
    unit_grad,
    unit_tangent,
    zero_if_none,
)
from .protocol import MonotoneLayer

__all__ = ["MultiConvParams", "MonMultiConv", "InterTier"]

_TUPLE_FIELDS = ("A", "B", "N", "g", "h", "gn")


class MultiConvParams(NamedTuple):
    """Parameters of :class:`MonMultiConv` (also the type of their gradients).

    Attributes
    ----------
    U : array, shape (c_0, C_in, k, k)
    b : array, shape (c_0,)
    A : tuple of arrays, shapes (c_i, c_i, k, k)
    B : tuple of arrays, shapes (c_i, c_i, k, k)
    N : tuple of L - 1 arrays, shapes (c_{i+1}, c_i, k, k)
        The inter-tier kernels.
    g : tuple of 0-d arrays
        Scales of :math:`A_i^\\top A_i` (``> 0``: ``√g_i`` enters the inter-tier blocks).
    h : tuple of 0-d arrays
        Scales of :math:`B_i - B_i^\\top`.
    gn : tuple of L - 1 0-d arrays
        Scales of :math:`S_i^\\top S_i` (``> 0``).
    """

    U: Any
    b: Any
    A: tuple
    B: tuple
    N: tuple
    g: tuple
    h: tuple
    gn: tuple

    def arrays(self) -> dict:
        """Every array as a flat ``{name: array}`` dict (``"A0"``, ``"A1"``, ...)."""
        out = {"U": self.U, "b": self.b}
        for name in _TUPLE_FIELDS:
            for i, value in enumerate(getattr(self, name)):
                out[f"{name}{i}"] = value
        return out


# -- grid helpers -----------------------------------------------------------------------


def _subsample(x):
    """Even rows and columns of the last two axes."""
    return x[..., ::2, ::2]


def _upsample(y):
    """Adjoint of :func:`_subsample`: ``y`` at even rows and columns, zeros elsewhere."""
    xp = namespace(y)
    zero = xp.zeros_like(y)
    phases = xp.stack([y, zero, zero, zero], axis=-3)  # (..., c, 4, m1, m2)
    *lead, c, q2, m1, m2 = phases.shape
    return fourier.from_phases(xp.reshape(phases, (*lead, c * q2, m1, m2)), 2)


def _pad_end(x):
    """``P``: append a zero last row and column."""
    xp = namespace(x)
    *lead, n1, n2 = x.shape
    x = xp.concat([x, xp.zeros((*lead, n1, 1), dtype=x.dtype, device=device(x))], axis=-1)
    return xp.concat([x, xp.zeros((*lead, 1, n2 + 1), dtype=x.dtype, device=device(x))], axis=-2)


def _crop_end(x):
    """``Pᵀ``: drop the last row and column."""
    return x[..., :-1, :-1]


def _conv_norm(kernel, grid) -> float:
    """``‖K⋆‖₂`` of a circular correlation on ``grid`` (host)."""
    return fourier.SpectralConv(fourier.kernel_symbol(kernel, grid), grid).norm()


class InterTier(LinearOperator):
    r"""The block :math:`\text{coef}\cdot A^\top P S` from tier ``i`` to tier ``i + 1``.

    :math:`S` is the correlation with the inter-tier kernel kept at even rows
    and columns, given by its polyphase symbol's phase-0 rows ``s_symbol``
    ``(F_i', c_{i+1}, 4c_i)`` on tier ``i``'s half grid; :math:`A` is tier
    ``i + 1``'s correlation, given by its symbol ``a_symbol`` with polyphase
    factor ``q_next``.  The adjoint is :math:`\text{coef}\cdot S^\top P^\top A`.

    Parameters
    ----------
    coef : 0-d array
    a_symbol : complex array
    s_symbol : complex array
    grid : tuple
        Tier ``i``'s grid.
    next_grid : tuple
        Tier ``i + 1``'s grid.
    q_next : int
        Polyphase factor of ``a_symbol``.
    """

    def __init__(self, coef, a_symbol, s_symbol, grid, next_grid, q_next):
        self.coef, self.a_symbol, self.s_symbol = coef, a_symbol, s_symbol
        self.grid, self.next_grid, self.q_next = grid, next_grid, q_next
        self.half_grid = (grid[0] // 2, grid[1] // 2)
        self.in_shape = (s_symbol.shape[2] // 4, *grid)
        self.out_shape = (a_symbol.shape[1] // (q_next * q_next), *next_grid)
        self.dtype = namespace(s_symbol).real(s_symbol[:1, :1, :1]).dtype
        self._a_h, self._s_h = fourier.conj_t(a_symbol), fourier.conj_t(s_symbol)

    def matvec(self, x):
        check_trailing(x, self.in_shape, "x")
        s = apply_symbol(self.s_symbol, x, self.grid, 2, 1)
        y = apply_symbol(self._a_h, _pad_end(s), self.next_grid, self.q_next)
        return self.coef * y

    def rmatvec(self, y):
        check_trailing(y, self.out_shape, "y")
        w = _crop_end(apply_symbol(self.a_symbol, y, self.next_grid, self.q_next))
        x = apply_symbol(self._s_h, w, self.half_grid, 1, 2)
        return self.coef * x

    def _like(self, like):
        return namespace(self.s_symbol).real(self.s_symbol)


class _Units(NamedTuple):
    """Unit kernels ``K/‖K‖`` and the norms, per tier."""

    A: list
    a: list
    B: list
    b: list
    N: list
    n: list


@dataclass(frozen=True)
class MonMultiConv(MonotoneLayer):
    r"""The multi-tier convolutional monDEQ layer (see the module docstring).

    Parameters
    ----------
    in_channels : int
        Channels of the input image.
    channels : tuple of int
        Channels ``c_i`` of each tier (at least one tier).
    image_shape : tuple of int
        ``(H, W)``, the input image size; ``H`` and ``W`` must halve ``L - 1`` times.
    kernel_size : int
        Odd size ``k`` of every kernel; must fit the last tier's grid.
    m : float
        Strong-monotonicity margin, ``> 0``.

    Examples
    --------
    >>> import numpy as np
    >>> from opsplit import nn
    >>> layer = nn.MonMultiConv(in_channels=1, channels=(2, 3), image_shape=(4, 4))
    >>> layer.grids
    ((6, 6), (4, 4))
    >>> p = layer.init_params(seed=0)
    >>> [tuple(n.shape) for n in p.N]
    [(3, 2, 3, 3)]
    >>> M = layer.monotone(p).to_dense()           # I - W, (2·36 + 3·16)²
    >>> bool(np.linalg.eigvalsh((M + M.T) / 2).min() >= 1.0 - 1e-12)
    True
    """

    in_channels: int
    channels: tuple
    image_shape: tuple
    kernel_size: int = 3
    m: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "in_channels", check_positive_int(self.in_channels, "in_channels"))
        try:
            channels = tuple(self.channels)
        except TypeError as exc:
            raise TypeError(f"channels must be a tuple of ints, got {self.channels!r}") from exc
        if not channels:
            raise ValueError("channels must name at least one tier")
        object.__setattr__(
            self, "channels", tuple(check_positive_int(c, "channels") for c in channels)
        )
        shape = check_image_shape(self.image_shape)
        factor = 2 ** (len(channels) - 1)
        if shape[0] % factor or shape[1] % factor:
            raise ValueError(
                f"image_shape {shape} does not halve {len(channels) - 1} times "
                f"(H and W must be divisible by {factor} for {len(channels)} tiers)"
            )
        object.__setattr__(self, "image_shape", shape)
        object.__setattr__(self, "kernel_size", check_kernel_size(self.kernel_size, self.grids[-1]))
        object.__setattr__(self, "m", check_margin(self.m))

    # -- geometry -----------------------------------------------------------------
    @property
    def depth(self) -> int:
        """The number of tiers ``L``."""
        return len(self.channels)

    @property
    def grids(self) -> tuple:
        """Tier grids ``(H/2^i + 2, W/2^i + 2)``."""
        H, W = self.image_shape
        return tuple((H // 2**i + 2, W // 2**i + 2) for i in range(len(self.channels)))

    @property
    def state_shapes(self) -> tuple:
        """Trailing shape of each tier's state ``(c_i, n_i, n_i)``."""
        return tuple((c, *grid) for c, grid in zip(self.channels, self.grids, strict=True))

    def _q(self, i) -> int:
        """Polyphase factor of tier ``i``'s diagonal block."""
        return 2 if i < self.depth - 1 else 1

    def nonlinearity(self, activation="relu") -> BorderMasked:
        """``activation`` in each tier's interior, ``0`` on each tier's ring."""
        return BorderMasked(activation, ring=1)

    # -- parameters ---------------------------------------------------------------
    def init_params(self, seed=0, *, dtype="float64", like=None) -> MultiConvParams:
        """Random parameters as in the paper's code: PyTorch's default ``Conv2d``
        initialization (uniform ``±1/sqrt(fan_in)``) for every kernel and ``b``,
        and ``g = h = gn = 1``.

        Parameters
        ----------
        seed : int
            Seed of the NumPy generator (values drawn on the host, then copied).
        dtype : str
            ``"float32"`` or ``"float64"``.
        like : array, optional
            An array giving the library and device (NumPy when omitted).

        Returns
        -------
        MultiConvParams
        """
        dtype = check_float_dtype(dtype)
        rng = np.random.default_rng(seed)
        cs, k = self.channels, self.kernel_size
        U, bound = init_kernel(rng, (cs[0], self.in_channels, k, k))
        b = rng.uniform(-bound, bound, size=cs[0])
        A = [init_kernel(rng, (c, c, k, k))[0] for c in cs]
        B = [init_kernel(rng, (c, c, k, k))[0] for c in cs]
        N = [init_kernel(rng, (c1, c0, k, k))[0] for c0, c1 in zip(cs[:-1], cs[1:])]

        def put(v):
            return from_host(v, like, dtype)

        def ones(n):
            return tuple(put(np.asarray(1.0)) for _ in range(n))

        L = self.depth
        return MultiConvParams(
            U=put(U),
            b=put(b),
            A=tuple(put(a) for a in A),
            B=tuple(put(a) for a in B),
            N=tuple(put(a) for a in N),
            g=ones(L),
            h=ones(L),
            gn=ones(L - 1),
        )

    def check_params(self, params) -> None:
        """Raise ``TypeError``/``ValueError`` naming the field that does not fit."""
        if not isinstance(params, MultiConvParams):
            raise TypeError(f"params must be MultiConvParams, got {type(params).__name__}")
        cs, k, L = self.channels, self.kernel_size, self.depth
        lengths = {"A": L, "B": L, "N": L - 1, "g": L, "h": L, "gn": L - 1}
        for name, n in lengths.items():
            value = getattr(params, name)
            if not isinstance(value, tuple):
                raise TypeError(f"params.{name} must be a tuple, got {type(value).__name__}")
            if len(value) != n:
                raise ValueError(
                    f"params.{name} must hold {n} entries for {L} tiers, got {len(value)}"
                )
        dtype = check_field(params.U, "params.U", (cs[0], self.in_channels, k, k), None)
        check_field(params.b, "params.b", (cs[0],), dtype)
        for i in range(L):
            check_field(params.A[i], f"params.A[{i}]", (cs[i], cs[i], k, k), dtype)
            check_field(params.B[i], f"params.B[{i}]", (cs[i], cs[i], k, k), dtype)
            check_field(params.g[i], f"params.g[{i}]", (), dtype)
            check_field(params.h[i], f"params.h[{i}]", (), dtype)
        for i in range(L - 1):
            check_field(params.N[i], f"params.N[{i}]", (cs[i + 1], cs[i], k, k), dtype)
            check_field(params.gn[i], f"params.gn[{i}]", (), dtype)
        namespace(*params.arrays().values())  # one library

    def check_input(self, params, x) -> None:
        """Raise a clear error unless ``x`` is a finite ``(batch, in_channels, H, W)``
        array of the parameters' library, dtype and device."""
        check_image_input(x, params.U, self.in_channels, self.image_shape)

    # -- the weight ---------------------------------------------------------------
    def _units(self, params) -> _Units:
        a = [fro(A) for A in params.A]
        b = [fro(B) for B in params.B]
        n = [fro(N) for N in params.N]
        return _Units(
            A=[A / s for A, s in zip(params.A, a, strict=True)],
            a=a,
            B=[B / s for B, s in zip(params.B, b, strict=True)],
            b=b,
            N=[N / s for N, s in zip(params.N, n, strict=True)],
            n=n,
        )

    def _coupling(self, params, i):
        """``2·sqrt(g_{i+1}·gn_i)``, the scale of the block ``(i+1, i)``."""
        return 2.0 * namespace(params.gn[i]).sqrt(params.g[i + 1] * params.gn[i])

    def _diagonal_symbol(self, params, units, i, tangent=None):
        r"""Symbol of :math:`(I - W)_{ii}` (polyphase when a tier follows), or of its
        derivative along ``tangent = (dA_u, dB_u, dN_u, dg, dh, dgn)``."""
        xp = namespace(params.A[i])
        grid, q = self.grids[i], self._q(i)
        ct = fourier.conj_t
        SA = fourier.kernel_symbol(units.A[i], grid, q)
        SB = fourier.kernel_symbol(units.B[i], grid, q)
        SN = None
        if i < self.depth - 1:
            SN = fourier.kernel_symbol(units.N[i], grid, 2)[:, ::4, :]
        if tangent is None:
            eye = xp.eye(SA.shape[-1], dtype=SA.dtype, device=device(SA))
            sym = self.m * eye + params.g[i] * xp.matmul(ct(SA), SA) - params.h[i] * (SB - ct(SB))
            if SN is not None:
                sym = sym + params.gn[i] * xp.matmul(ct(SN), SN)
            return sym
        dAu, dBu, dNu, dg, dh, dgn = tangent
        dSA = fourier.kernel_symbol(dAu, grid, q)
        dSB = fourier.kernel_symbol(dBu, grid, q)
        sym = (
            dg * xp.matmul(ct(SA), SA)
            + params.g[i] * (xp.matmul(ct(dSA), SA) + xp.matmul(ct(SA), dSA))
            - dh * (SB - ct(SB))
            - params.h[i] * (dSB - ct(dSB))
        )
        if SN is not None:
            dSN = fourier.kernel_symbol(dNu, grid, 2)[:, ::4, :]
            sym = sym + dgn * xp.matmul(ct(SN), SN)
            sym = sym + params.gn[i] * (xp.matmul(ct(dSN), SN) + xp.matmul(ct(SN), dSN))
        return sym

    def _inter_tier(self, coef, A_unit, N_unit, i):
        grids = self.grids
        return InterTier(
            coef,
            fourier.kernel_symbol(A_unit, grids[i + 1], self._q(i + 1)),
            fourier.kernel_symbol(N_unit, grids[i], 2)[:, ::4, :],
            grids[i],
            grids[i + 1],
            self._q(i + 1),
        )

    def monotone(self, params) -> BlockLowerTriangular:
        r""":math:`I - W` as a block lower-bidiagonal operator on tuples of tier
        states (checks ``params``); its shifted inverse is a block forward
        substitution with exact per-frequency solves on the diagonal."""
        self.check_params(params)
        units = self._units(params)
        rows = []
        for i in range(self.depth):
            diag = fourier.SpectralConv(
                self._diagonal_symbol(params, units, i), self.grids[i], self._q(i)
            )
            row = [None] * i + [diag]
            if i > 0:
                row[i - 1] = self._inter_tier(
                    self._coupling(params, i - 1), units.A[i], units.N[i - 1], i - 1
                )
            rows.append(row)
        return BlockLowerTriangular(rows)

    def lipschitz(self, params) -> float:
        r"""An upper bound on :math:`\|I - W\|_2`: the largest diagonal-block norm
        (exact, per frequency) plus the largest inter-tier bound
        :math:`2\sqrt{g_{i+1} g^n_i}\,\|A_{u,i+1}\|_2\|N_{u,i}\|_2` (host)."""
        op = self.monotone(params)
        diag = max(row[i].norm() for i, row in enumerate(op.blocks))
        units = self._units(params)
        off = 0.0
        for i in range(self.depth - 1):
            a_norm = _conv_norm(units.A[i + 1], self.grids[i + 1])
            n_norm = _conv_norm(units.N[i], self.grids[i])
            coef = float(to_numpy(self._coupling(params, i)))
            off = max(off, coef * a_norm * n_norm)
        return diag + off

    def input_norm(self, params) -> float:
        r"""An upper bound on the norm of :math:`x \mapsto (U \star x_{\text{pad}}, 0, …)`:
        the norm of the correlation by ``U`` on tier 0's grid (host)."""
        return _conv_norm(params.U, self.grids[0])

    # -- forward pieces -----------------------------------------------------------
    def _zeros_like_state(self, like, batch):
        xp = namespace(like)
        return tuple(
            xp.zeros((batch, *shape), dtype=like.dtype, device=device(like))
            for shape in self.state_shapes
        )

    def injection(self, params, x):
        """``(U ⋆ pad(x) + b, 0, …, 0)``: the injection reaches tier 0 only."""
        SU = fourier.kernel_symbol(params.U, self.grids[0])
        top = apply_symbol(SU, fourier.pad_ring(x), self.grids[0]) + params.b[:, None, None]
        return (top, *self._zeros_like_state(x, x.shape[0])[1:])

    def monotone_tangent(self, params, dparams) -> BlockLowerTriangular:
        r"""The directional derivative of :math:`I - W` along ``dparams`` (``None``
        fields or entries count as zero), as a block operator: the symbols'
        derivatives on the diagonal, the product rule on the inter-tier blocks
        with :math:`dK_u = (dK - \langle K_u, dK\rangle K_u)/\|K\|` and
        :math:`d\sqrt{g\,g^n} = (dg\,g^n + g\,dg^n)/(2\sqrt{g\,g^n})`."""
        units = self._units(params)

        def field(name, i):
            values = getattr(dparams, name)
            return None if values is None else values[i]

        dA = [
            unit_tangent(params.A[i], units.a[i], zero_if_none(field("A", i), params.A[i]))
            for i in range(self.depth)
        ]
        dB = [
            unit_tangent(params.B[i], units.b[i], zero_if_none(field("B", i), params.B[i]))
            for i in range(self.depth)
        ]
        dN = [
            unit_tangent(params.N[i], units.n[i], zero_if_none(field("N", i), params.N[i]))
            for i in range(self.depth - 1)
        ]
        dg = [zero_if_none(field("g", i), params.g[i]) for i in range(self.depth)]
        dh = [zero_if_none(field("h", i), params.h[i]) for i in range(self.depth)]
        dgn = [zero_if_none(field("gn", i), params.gn[i]) for i in range(self.depth - 1)]
        rows = []
        for i in range(self.depth):
            tangent = (
                dA[i],
                dB[i],
                dN[i] if i < self.depth - 1 else None,
                dg[i],
                dh[i],
                dgn[i] if i < self.depth - 1 else None,
            )
            sym = self._diagonal_symbol(params, units, i, tangent)
            row = [None] * i + [fourier.SpectralConv(sym, self.grids[i], self._q(i))]
            if i > 0:
                j = i - 1
                coef = self._coupling(params, j)
                dcoef = coef * (dg[i] / params.g[i] + dgn[j] / params.gn[j]) / 2.0
                row[j] = (
                    self._inter_tier(dcoef, units.A[i], units.N[j], j)
                    + self._inter_tier(coef, dA[i], units.N[j], j)
                    + self._inter_tier(coef, units.A[i], dN[j], j)
                )
            rows.append(row)
        return BlockLowerTriangular(rows)

    def tangent(self, params, x, z, dparams=None, dx=None):
        r"""The directional derivative :math:`dq = -d(I - W)\,z + (dU \star x_{\text{pad}}
        + db + U \star dx_{\text{pad}}, 0, …, 0)` at fixed ``z``; ``None`` counts as zero."""
        xp = namespace(x)
        top = xp.zeros((x.shape[0], *self.state_shapes[0]), dtype=x.dtype, device=device(x))
        if dparams is not None and dparams.U is not None:
            SdU = fourier.kernel_symbol(dparams.U, self.grids[0])
            top = top + apply_symbol(SdU, fourier.pad_ring(x), self.grids[0])
        if dparams is not None and dparams.b is not None:
            top = top + dparams.b[:, None, None]
        if dx is not None:
            SU = fourier.kernel_symbol(params.U, self.grids[0])
            top = top + apply_symbol(SU, fourier.pad_ring(dx), self.grids[0])
        dq = (top, *self._zeros_like_state(x, x.shape[0])[1:])
        if dparams is not None and any(getattr(dparams, f) is not None for f in _TUPLE_FIELDS):
            dM = self.monotone_tangent(params, dparams).matvec(z)
            dq = tuple(a - b for a, b in zip(dq, dM, strict=True))
        return dq

    # -- gradients ----------------------------------------------------------------
    def grads(self, params, x, z, r):
        r"""Parameter and input gradients from :math:`r = \partial\ell/\partial q`
        (a tuple), the gradient with respect to :math:`q = W z + (U \star x_{\text{pad}}
        + b, 0, …)` at fixed ``z``.

        With :math:`\mathcal G(u, v)` the ``k × k`` kernel of batch-summed
        correlations :math:`\sum_i u[o, i]\,v[c, i + s]` (read from a product of
        spectra, :func:`~opsplit.nn._fourier.kernel_gradient`), unit kernels
        :math:`K_u`, :math:`\Pi = \text{up}\circ\text{sub}` and
        :math:`c_i = 2\sqrt{g_{i+1} g^n_i}`:

        .. math::

            \nabla_{A_{u,i}} &= -g_i\,[\mathcal G(A_u r_i, z_i) + \mathcal G(A_u z_i, r_i)]
                - c_{i-1}\,\mathcal G(P S_{u,i-1} z_{i-1},\, r_i),

            \nabla_{B_{u,i}} &= h_i\,[\mathcal G(r_i, z_i) - \mathcal G(z_i, r_i)],

            \nabla_{N_{u,i}} &= -g^n_i\,[\mathcal G(\Pi N_u r_i, z_i)
                + \mathcal G(\Pi N_u z_i, r_i)]
                - c_i\,\mathcal G(\text{up}(P^\top A_{u,i+1} r_{i+1}),\, z_i),

        the scales' gradients are the corresponding inner products
        (:math:`\nabla_{g_i} = -\langle A_u r_i, A_u z_i\rangle - \sqrt{g^n_{i-1}/g_i}\,v_{i-1}`,
        with :math:`v_i = \langle A_{u,i+1} r_{i+1}, P S_{u,i} z_i\rangle`, and so on),
        then :math:`\nabla_K = (\nabla_{K_u} - \langle\nabla_{K_u}, K_u\rangle K_u)/\|K\|`.
        ``U``, ``b`` and ``x`` are as in :meth:`MonConv.grads
        <opsplit.nn.monconv.MonConv.grads>` on tier 0.

        Returns
        -------
        grads : MultiConvParams
        grad_x : array, shape (batch, C_in, H, W)
        """
        xp = namespace(x)
        L, grids = self.depth, self.grids
        ks = (self.kernel_size, self.kernel_size)
        units = self._units(params)
        ct, kgrad, cross = fourier.conj_t, fourier.kernel_gradient, fourier.cross_spectrum
        R = [spectrum(ri) for ri in r]  # each reused by every symbol acting on r
        batch = tuple(r[0].shape[:-3])
        Z = [spectrum(zi) for zi in z]
        gA, gB, gN = [None] * L, [None] * L, [None] * (L - 1)
        dg, dh, dgn = [None] * L, [None] * L, [None] * (L - 1)
        for i in range(L):
            SA = fourier.kernel_symbol(units.A[i], grids[i])
            P = cross(R[i], Z[i])
            T_A = kgrad(xp.matmul(xp.conj(SA), P + ct(P)), grids[i], ks)
            T_B = kgrad(P - ct(P), grids[i], ks)
            dg[i] = -0.5 * inner(T_A, units.A[i])
            gA[i] = -params.g[i] * T_A
            dh[i] = inner(T_B, units.B[i])
            gB[i] = params.h[i] * T_B
        for i in range(L - 1):
            SN = fourier.kernel_symbol(units.N[i], grids[i])
            Nz = apply_to_spectrum(SN, Z[i], batch, grids[i])
            Nr = apply_to_spectrum(SN, R[i], batch, grids[i])
            PiNr = _upsample(_subsample(Nr))
            PiNz = _upsample(_subsample(Nz))
            dgn[i] = -xp.sum(PiNr * Nz)
            T_N = kgrad(
                cross(spectrum(PiNr), Z[i]) + cross(spectrum(PiNz), R[i]),
                grids[i],
                ks,
            )
            gN[i] = -params.gn[i] * T_N
            # the inter-tier block -c ⟨A_{i+1} r_{i+1}, P S_i z_i⟩
            coef = self._coupling(params, i)
            y = _pad_end(_subsample(Nz))
            SA1 = fourier.kernel_symbol(units.A[i + 1], grids[i + 1])
            w = apply_to_spectrum(SA1, R[i + 1], batch, grids[i + 1])
            v = xp.sum(w * y)
            dg[i + 1] = dg[i + 1] - v * xp.sqrt(params.gn[i] / params.g[i + 1])
            dgn[i] = dgn[i] - v * xp.sqrt(params.g[i + 1] / params.gn[i])
            gA[i + 1] = gA[i + 1] - coef * kgrad(
                cross(spectrum(y), R[i + 1]), grids[i + 1], ks
            )
            up = _upsample(_crop_end(w))
            gN[i] = gN[i] - coef * kgrad(cross(spectrum(up), Z[i]), grids[i], ks)
        grid0 = grids[0]
        X = spectrum(fourier.pad_ring(x))
        grad_U = kgrad(cross(R[0], X), grid0, ks)
        grad_b = xp.sum(r[0], axis=(0, 2, 3))
        SU = fourier.kernel_symbol(params.U, grid0)
        grad_x = fourier.crop_ring(apply_to_spectrum(ct(SU), R[0], batch, grid0))
        grads = MultiConvParams(
            U=grad_U,
            b=grad_b,
            A=tuple(unit_grad(params.A[i], units.a[i], gA[i]) for i in range(L)),
            B=tuple(unit_grad(params.B[i], units.b[i], gB[i]) for i in range(L)),
            N=tuple(unit_grad(params.N[i], units.n[i], gN[i]) for i in range(L - 1)),
            g=tuple(dg),
            h=tuple(dh),
            gn=tuple(dgn),
        )
        return grads, grad_x
