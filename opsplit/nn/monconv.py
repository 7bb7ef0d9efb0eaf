r"""The single-convolution monotone operator layer (Winston & Kolter 2020, §4).

Conventions follow the paper's code so that models and results compare:

- the image ``x`` of shape ``(batch, C_in, H, W)`` is zero-padded by one
  pixel; the state ``z`` has shape ``(batch, C, H + 2, W + 2)``;
- every convolution, the input convolution ``U`` included, is a circular
  cross-correlation with a centred ``k × k`` kernel on the padded grid;
- the weight, with Frobenius norms over whole 4-D kernels, is

  .. math::

      W = (1 - m) I - g\,\frac{A^\top A}{\|A\|_F^2} + h\,\frac{B - B^\top}{\|B\|_F},
      \qquad I - W = m I + g\,\frac{A^\top A}{\|A\|_F^2} - h\,\frac{B - B^\top}{\|B\|_F}
      \succeq m I ;

- the nonlinearity zeroes the outer ring (:class:`~opsplit.nn.border.BorderMasked`).

In the Fourier basis of the padded grid every convolution is one ``C × C``
matrix per frequency of the half spectrum (:mod:`opsplit.nn._fourier`), so
:math:`(I + \alpha(I - W))^{-1}` is one batched complex inverse per
frequency, computed once per parameter update.

References
----------
E. Winston and J. Z. Kolter, "Monotone operator equilibrium networks",
NeurIPS 2020, Section 4 and Appendix D.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from .._backend import check_floating, device, from_host, namespace, to_numpy
from .._validate import check_float_dtype, check_positive_int
from ..operators.conv import apply_symbol, apply_to_spectrum, spectrum
from . import _fourier as fourier
from .border import BorderMasked
from .protocol import MonotoneLayer

__all__ = ["ConvParams", "MonConv"]


class ConvParams(NamedTuple):
    """Parameters of :class:`MonConv` (also the type of their gradients).

    Attributes
    ----------
    A : array, shape (C, C, k, k)
    B : array, shape (C, C, k, k)
    U : array, shape (C, C_in, k, k)
    b : array, shape (C,)
    g : 0-d array
        Scale of :math:`A^\\top A/\\|A\\|_F^2` (keep it ``>= 0``).
    h : 0-d array
        Scale of :math:`(B - B^\\top)/\\|B\\|_F`.
    """

    A: Any
    B: Any
    U: Any
    b: Any
    g: Any
    h: Any

    def arrays(self) -> dict:
        """The fields as a ``{name: array}`` dict."""
        return dict(self._asdict())


# -- shared checks and helpers (also used by the multi-tier layer) ----------------------


def check_image_shape(image_shape) -> tuple:
    """``image_shape`` as a pair of positive ints, or a ValueError/TypeError naming it."""
    try:
        shape = tuple(image_shape)
    except TypeError as exc:
        raise TypeError(f"image_shape must be a pair of ints (H, W), got {image_shape!r}") from exc
    if len(shape) != 2:
        raise ValueError(f"image_shape must be a pair of ints (H, W), got {image_shape!r}")
    return tuple(check_positive_int(s, "image_shape") for s in shape)


def check_kernel_size(kernel_size, grid) -> int:
    """An odd positive ``kernel_size`` that fits ``grid``."""
    k = check_positive_int(kernel_size, "kernel_size")
    if k % 2 == 0:
        raise ValueError(f"kernel_size must be odd (a centred kernel), got {k}")
    if k > min(grid):
        raise ValueError(f"kernel_size {k} does not fit the grid {grid}")
    return k


def check_margin(m) -> float:
    if not isinstance(m, numbers.Real) or isinstance(m, bool):
        raise TypeError(f"m must be a real number, got {type(m).__name__}")
    if not m > 0:
        raise ValueError(f"m must be > 0 (the strong-monotonicity margin), got {m}")
    return float(m)


def check_field(value, name, shape, dtype):
    """Check one parameter array's type, shape and dtype; return its dtype."""
    check_floating(value, name)
    if tuple(value.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(value.shape)}")
    if dtype is not None and value.dtype != dtype:
        raise TypeError(f"{name} has dtype {value.dtype}, expected {dtype}")
    return value.dtype


def check_image_input(x, params_like, in_channels, image_shape) -> None:
    """``x`` must be a finite ``(batch, in_channels, H, W)`` array of the
    parameters' library, dtype and device (one host transfer)."""
    check_floating(x, "x")
    if x.ndim != 4:
        raise ValueError(
            f"x must have shape (batch, in_channels={in_channels}, H, W), got {tuple(x.shape)}"
        )
    if x.shape[1] != in_channels:
        raise ValueError(
            f"x has {x.shape[1]} channels but the layer expects in_channels={in_channels}"
        )
    if tuple(x.shape[2:]) != tuple(image_shape):
        raise ValueError(
            f"x has images of size {tuple(x.shape[2:])} but the layer expects "
            f"image_shape={tuple(image_shape)}"
        )
    if x.dtype != params_like.dtype:
        raise TypeError(f"x has dtype {x.dtype} but the parameters have {params_like.dtype}")
    try:
        xp = namespace(x, params_like)
    except TypeError as exc:
        raise TypeError(f"x and the parameters come from different libraries: {exc}") from exc
    if device(x) != device(params_like):
        raise ValueError(
            f"x is on device {device(x)!r} but the parameters are on {device(params_like)!r}"
        )
    if not bool(to_numpy(xp.all(xp.isfinite(x)))):
        raise ValueError("x contains NaN or Inf")


def fro(a):
    """Frobenius norm of a whole array as a 0-d array (no host transfer)."""
    xp = namespace(a)
    return xp.sqrt(xp.sum(a * a))


def inner(a, b):
    return namespace(a).sum(a * b)


def unit_grad(kernel, norm, grad_unit):
    r"""Chain rule through :math:`K_u = K/\|K\|`:
    :math:`\nabla_K = (G_u - \langle G_u, K_u\rangle K_u)/\|K\|`."""
    unit = kernel / norm
    return (grad_unit - inner(grad_unit, unit) * unit) / norm


def unit_tangent(kernel, norm, d_kernel):
    r""":math:`dK_u = (dK - \langle K_u, dK\rangle K_u)/\|K\|`."""
    unit = kernel / norm
    return (d_kernel - inner(unit, d_kernel) * unit) / norm


def zero_if_none(value, like):
    if value is not None:
        return value
    return namespace(like).zeros(like.shape, dtype=like.dtype, device=device(like))


def init_kernel(rng, shape):
    """PyTorch's default ``Conv2d`` initialization: uniform ``±1/sqrt(fan_in)``."""
    fan_in = shape[1] * shape[2] * shape[3]
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape), bound


@dataclass(frozen=True)
class MonConv(MonotoneLayer):
    r"""The single-convolution monDEQ layer :math:`z = \sigma(W z + U x_{\text{pad}} + b)`.

    Parameters
    ----------
    in_channels : int
        Channels of the input image.
    channels : int
        Channels ``C`` of the hidden state.
    image_shape : tuple of int
        ``(H, W)``, the size of the input images; the state lives on
        ``(H + 2, W + 2)``.
    kernel_size : int
        Odd size ``k`` of the (centred) kernels ``A``, ``B`` and ``U``.
    m : float
        Strong-monotonicity margin, ``> 0``: :math:`I - W \succeq m I`.

    Examples
    --------
    >>> import numpy as np
    >>> from opsplit import nn
    >>> layer = nn.MonConv(in_channels=1, channels=3, image_shape=(4, 4), kernel_size=3)
    >>> p = layer.init_params(seed=0)
    >>> [f"{k}{tuple(v.shape)}" for k, v in p.arrays().items()]
    ['A(3, 3, 3, 3)', 'B(3, 3, 3, 3)', 'U(3, 1, 3, 3)', 'b(3,)', 'g()', 'h()']
    >>> M = layer.monotone_matrix(p)              # I - W, (3·6·6)²
    >>> bool(np.linalg.eigvalsh((M + M.T) / 2).min() >= 1.0 - 1e-12)
    True
    """

    in_channels: int
    channels: int
    image_shape: tuple
    kernel_size: int = 3
    m: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "in_channels", check_positive_int(self.in_channels, "in_channels"))
        object.__setattr__(self, "channels", check_positive_int(self.channels, "channels"))
        object.__setattr__(self, "image_shape", check_image_shape(self.image_shape))
        object.__setattr__(self, "kernel_size", check_kernel_size(self.kernel_size, self.grid))
        object.__setattr__(self, "m", check_margin(self.m))

    @property
    def grid(self) -> tuple:
        """The padded grid ``(H + 2, W + 2)`` of the state."""
        return (self.image_shape[0] + 2, self.image_shape[1] + 2)

    @property
    def state_shape(self) -> tuple:
        """Trailing shape of one state ``z``: ``(C, H + 2, W + 2)``."""
        return (self.channels, *self.grid)

    def nonlinearity(self, activation="relu") -> BorderMasked:
        """``activation`` in the interior, ``0`` on the padding ring."""
        return BorderMasked(activation, ring=1)

    # -- parameters ---------------------------------------------------------------
    def init_params(self, seed=0, *, dtype="float64", like=None) -> ConvParams:
        """Random parameters as in the paper's code: PyTorch's default ``Conv2d``
        initialization (uniform ``±1/sqrt(fan_in)``) for ``A``, ``B``, ``U`` and
        ``b``, and ``g = h = 1``.

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
        ConvParams
        """
        dtype = check_float_dtype(dtype)
        rng = np.random.default_rng(seed)
        c, ci, k = self.channels, self.in_channels, self.kernel_size
        A, _ = init_kernel(rng, (c, c, k, k))
        B, _ = init_kernel(rng, (c, c, k, k))
        U, bound = init_kernel(rng, (c, ci, k, k))
        host = {
            "A": A,
            "B": B,
            "U": U,
            "b": rng.uniform(-bound, bound, size=c),
            "g": np.asarray(1.0),
            "h": np.asarray(1.0),
        }
        return ConvParams(**{name: from_host(v, like, dtype) for name, v in host.items()})

    def check_params(self, params) -> None:
        """Raise ``TypeError``/``ValueError`` naming the field that does not fit."""
        if not isinstance(params, ConvParams):
            raise TypeError(f"params must be ConvParams, got {type(params).__name__}")
        c, ci, k = self.channels, self.in_channels, self.kernel_size
        shapes = {
            "A": (c, c, k, k),
            "B": (c, c, k, k),
            "U": (c, ci, k, k),
            "b": (c,),
            "g": (),
            "h": (),
        }
        dtype = None
        for name, shape in shapes.items():
            dtype = check_field(getattr(params, name), f"params.{name}", shape, dtype)
        namespace(*params)  # one library

    def check_input(self, params, x) -> None:
        """Raise a clear error unless ``x`` is a finite ``(batch, in_channels, H, W)``
        array of the parameters' library, dtype and device."""
        check_image_input(x, params.U, self.in_channels, self.image_shape)

    # -- the weight ---------------------------------------------------------------
    def _symbols(self, params):
        """Unit-kernel symbols ``Â, B̂`` and the norms ``‖A‖, ‖B‖``."""
        a, beta = fro(params.A), fro(params.B)
        SA = fourier.kernel_symbol(params.A / a, self.grid)
        SB = fourier.kernel_symbol(params.B / beta, self.grid)
        return SA, SB, a, beta

    def monotone_symbol(self, params):
        r"""Per-frequency matrices of :math:`I - W`: ``(F, C, C)`` complex,
        :math:`m I + g\,\hat A^H \hat A - h(\hat B - \hat B^H)` with unit kernels."""
        xp = namespace(params.A)
        SA, SB, _, _ = self._symbols(params)
        eye = xp.eye(self.channels, dtype=SA.dtype, device=device(SA))
        gram = xp.matmul(fourier.conj_t(SA), SA)
        return self.m * eye + params.g * gram - params.h * (SB - fourier.conj_t(SB))

    def monotone(self, params) -> fourier.SpectralConv:
        r""":math:`I - W` as a linear operator on ``(C, H + 2, W + 2)`` (checks
        ``params``); its shifted inverses are one batched ``C × C`` complex
        inverse per frequency."""
        self.check_params(params)
        return fourier.SpectralConv(self.monotone_symbol(params), self.grid)

    def lipschitz(self, params) -> float:
        r""":math:`\|I - W\|_2`, exactly: the largest singular value over the
        frequencies (host)."""
        return self.monotone(params).norm()

    def input_norm(self, params) -> float:
        r"""An upper bound on :math:`\|x \mapsto U \star x_{\text{pad}}\|_2`: the
        norm of the circular correlation by ``U`` on the padded grid (exact per
        frequency; the zero padding is an isometric embedding; host)."""
        return fourier.SpectralConv(fourier.kernel_symbol(params.U, self.grid), self.grid).norm()

    # -- forward pieces -----------------------------------------------------------
    def injection(self, params, x):
        """``U ⋆ pad(x) + b``, shape ``(batch, C, H + 2, W + 2)``."""
        SU = fourier.kernel_symbol(params.U, self.grid)
        out = apply_symbol(SU, fourier.pad_ring(x), self.grid)
        return out + params.b[:, None, None]

    def injection_tangent(self, params, x, tangent: ConvParams | None, dx=None):
        """The directional derivative of ``U ⋆ pad(x) + b`` along ``(tangent, dx)``;
        ``None`` fields count as zero."""
        xp = namespace(x)
        out = xp.zeros((x.shape[0], *self.state_shape), dtype=x.dtype, device=device(x))
        if tangent is not None and tangent.U is not None:
            SdU = fourier.kernel_symbol(tangent.U, self.grid)
            out = out + apply_symbol(SdU, fourier.pad_ring(x), self.grid)
        if tangent is not None and tangent.b is not None:
            out = out + tangent.b[:, None, None]
        if dx is not None:
            SU = fourier.kernel_symbol(params.U, self.grid)
            out = out + apply_symbol(SU, fourier.pad_ring(dx), self.grid)
        return out

    def tangent(self, params, x, z, dparams=None, dx=None):
        r"""The directional derivative :math:`dq = -d(I - W)\,z + dU \star x_{\text{pad}}
        + db + U \star dx_{\text{pad}}` at fixed ``z``; ``None`` counts as zero."""
        dq = self.injection_tangent(params, x, dparams, dx)
        if dparams is not None and any(
            t is not None for t in (dparams.A, dparams.B, dparams.g, dparams.h)
        ):
            dq = dq - self.monotone_tangent(params, dparams).matvec(z)
        return dq

    def monotone_tangent(self, params, tangent: ConvParams) -> fourier.SpectralConv:
        r"""The directional derivative of :math:`I - W` along ``tangent``, as an
        operator (apply it with ``.matvec(z)``).

        With unit kernels :math:`A_u = A/\|A\|`, :math:`dA_u = (dA - \langle A_u,
        dA\rangle A_u)/\|A\|` (the same for ``B``) and the symbols being linear in
        the kernels,

        .. math::

            d(I - W) = dg\,\hat A_u^H \hat A_u
                + g\,(d\hat A_u^H \hat A_u + \hat A_u^H d\hat A_u)
                - dh\,(\hat B_u - \hat B_u^H) - h\,(d\hat B_u - d\hat B_u^H).
        """
        xp = namespace(params.A)
        SA, SB, a, beta = self._symbols(params)
        dA = unit_tangent(params.A, a, zero_if_none(tangent.A, params.A))
        dB = unit_tangent(params.B, beta, zero_if_none(tangent.B, params.B))
        dSA = fourier.kernel_symbol(dA, self.grid)
        dSB = fourier.kernel_symbol(dB, self.grid)
        dg = zero_if_none(tangent.g, params.g)
        dh = zero_if_none(tangent.h, params.h)
        ct = fourier.conj_t
        sym = (
            dg * xp.matmul(ct(SA), SA)
            + params.g * (xp.matmul(ct(dSA), SA) + xp.matmul(ct(SA), dSA))
            - dh * (SB - ct(SB))
            - params.h * (dSB - ct(dSB))
        )
        return fourier.SpectralConv(sym, self.grid)

    # -- gradients ----------------------------------------------------------------
    def grads(self, params, x, z, r):
        r"""Parameter and input gradients from :math:`r = \partial\ell/\partial q`,
        the gradient with respect to :math:`q = W z + U \star x_{\text{pad}} + b`.

        With :math:`P = \sum_{\text{batch}} \overline{\hat r}\,\hat z^\top` per
        frequency (the spectrum of the correlation maps of ``r`` and ``z``),
        :math:`\mathcal K(\cdot)` the ``k × k`` kernel read from a correlation
        spectrum (:func:`~opsplit.nn._fourier.kernel_gradient`), unit kernels
        :math:`A_u, B_u`,

        .. math::

            T_A = \mathcal K\big(\overline{\hat A_u}\,(P + P^H)\big),\quad
            T_B = \mathcal K(P - P^H),

            \nabla_g = -\tfrac12\langle T_A, A_u\rangle,\quad
            \nabla_{A_u} = -g\,T_A,\quad
            \nabla_h = \langle T_B, B_u\rangle,\quad
            \nabla_{B_u} = h\,T_B,

        then :math:`\nabla_K = (\nabla_{K_u} - \langle\nabla_{K_u}, K_u\rangle K_u)/\|K\|`;
        :math:`\nabla_U = \mathcal K(\sum \overline{\hat r}\,\hat x_{\text{pad}}^\top)`,
        :math:`\nabla_b = \sum_{\text{batch}, i, j} r`,
        :math:`\nabla_x = \operatorname{crop}(U^\top r)`.

        Returns
        -------
        grads : ConvParams
        grad_x : array, shape (batch, C_in, H, W)
        """
        xp = namespace(r)
        grid, ks = self.grid, (self.kernel_size, self.kernel_size)
        a, beta = fro(params.A), fro(params.B)
        SA = fourier.kernel_symbol(params.A / a, grid)
        R = spectrum(r)
        P = fourier.cross_spectrum(R, spectrum(z))
        PH = fourier.conj_t(P)
        T_A = fourier.kernel_gradient(xp.matmul(xp.conj(SA), P + PH), grid, ks)
        T_B = fourier.kernel_gradient(P - PH, grid, ks)
        A_u, B_u = params.A / a, params.B / beta
        grad_g = -0.5 * inner(T_A, A_u)
        grad_h = inner(T_B, B_u)
        grad_A = unit_grad(params.A, a, -params.g * T_A)
        grad_B = unit_grad(params.B, beta, params.h * T_B)
        X = spectrum(fourier.pad_ring(x))
        grad_U = fourier.kernel_gradient(fourier.cross_spectrum(R, X), grid, ks)
        grad_b = xp.sum(r, axis=(0, 2, 3))
        SU = fourier.kernel_symbol(params.U, grid)
        lead = tuple(r.shape[:-3])
        grad_x = fourier.crop_ring(apply_to_spectrum(fourier.conj_t(SU), R, lead, grid))
        grads = ConvParams(A=grad_A, B=grad_B, U=grad_U, b=grad_b, g=grad_g, h=grad_h)
        return grads, grad_x
