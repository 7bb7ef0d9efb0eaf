r"""The fully connected monotone operator layer (monDEQ, Winston & Kolter 2020).

The layer's weight is parametrized so that :math:`I - W` is strongly monotone:

.. math::

    W = (1 - m) I - A^\top A + B - B^\top,
    \qquad I - W = m I + A^\top A - B + B^\top ,

whose symmetric part is :math:`\succeq m I` for every ``A`` and ``B``.  With
weight normalization (the paper's Section 5) ``A^\top A`` is replaced by
:math:`g\,A^\top A / \|A\|_F^2` and ``B`` by :math:`h\,B / \|B\|_F`, with
learned scalars ``g`` (kept ``>= 0`` for monotonicity) and ``h``.

Arrays follow the column convention :math:`z = \sigma(W z + U x + b)` applied
to row batches: ``x`` has shape ``(batch, in_features)`` and ``z`` has shape
``(batch, width)``, so in code the injection is ``x @ Uᵀ + b``.

The layer only knows its parameters and their derivatives; the equilibrium
and the implicit backward pass live in :mod:`opsplit.nn.deq`.

References
----------
E. Winston and J. Z. Kolter, "Monotone operator equilibrium networks",
NeurIPS 2020, Sections 3 and 5.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from .._backend import check_floating, device, from_host, namespace, to_numpy
from .._validate import check_float_dtype, check_positive_int
from ..operators import Dense
from .protocol import MonotoneLayer

__all__ = ["DenseParams", "MonDense"]


class DenseParams(NamedTuple):
    """Parameters of :class:`MonDense` (also the type of their gradients).

    Plain arrays of one library, dtype and device; build one directly from
    your own arrays (``DenseParams(A=..., B=..., U=..., b=...)``) or with
    :meth:`MonDense.init_params`.

    Attributes
    ----------
    A : array
        Shape ``(width, width)``: the factor of the symmetric part :math:`A^\top A`.
    B : array
        Shape ``(width, width)``: the skew part is :math:`B - B^\top`.
    U : array
        Shape ``(width, in_features)``: the input map.
    b : array
        Shape ``(width,)``: the bias.
    g : array or None
        0-d: the weight-normalization scale of ``A``; ``None`` for a layer without
        weight normalization.  :meth:`arrays` lists only the fields that are present.
    h : array or None
        0-d: the weight-normalization scale of ``B``; ``None`` without weight
        normalization.
    """

    A: Any
    B: Any
    U: Any
    b: Any
    g: Any = None
    h: Any = None

    def arrays(self) -> dict:
        """The present fields as a ``{name: array}`` dict (``g``/``h`` only when set)."""
        return {k: v for k, v in self._asdict().items() if v is not None}


def _fro(xp, a):
    """Frobenius norm as a 0-d array (no host transfer)."""
    return xp.sqrt(xp.sum(a * a))


def _inner(xp, a, b):
    return xp.sum(a * b)


@dataclass(frozen=True)
class MonDense(MonotoneLayer):
    r"""A fully connected monDEQ layer :math:`z = \sigma(W z + U x + b)`.

    Parameters
    ----------
    in_features : int
        Number of input features.
    width : int
        Number of hidden units (the size of ``z``).
    m : float
        Strong-monotonicity margin, ``> 0``: :math:`I - W \succeq m I`.
    weight_norm : bool
        Use the weight-normalized parametrization
        :math:`W = (1 - m) I - g\,A^\top A/\|A\|_F^2 + h\,(B - B^\top)/\|B\|_F`;
        the parameters then carry the scalars ``g`` and ``h``.

    Examples
    --------
    >>> import numpy as np
    >>> from opsplit import nn
    >>> layer = nn.MonDense(in_features=3, width=4, m=0.5)
    >>> p = layer.init_params(seed=0)
    >>> [f"{k}{v.shape}" for k, v in p.arrays().items()]
    ['A(4, 4)', 'B(4, 4)', 'U(4, 3)', 'b(4,)']
    >>> M = layer.monotone_matrix(p)              # I - W
    >>> bool(np.linalg.eigvalsh((M + M.T) / 2).min() >= 0.5 - 1e-12)
    True
    """

    in_features: int
    width: int
    m: float = 1.0
    weight_norm: bool = False

    def __post_init__(self):
        object.__setattr__(self, "in_features", check_positive_int(self.in_features, "in_features"))
        object.__setattr__(self, "width", check_positive_int(self.width, "width"))
        if not isinstance(self.m, numbers.Real) or isinstance(self.m, bool):
            raise TypeError(f"m must be a real number, got {type(self.m).__name__}")
        if not self.m > 0:  # also rejects NaN
            raise ValueError(f"m must be > 0 (the strong-monotonicity margin), got {self.m}")
        object.__setattr__(self, "m", float(self.m))
        if not isinstance(self.weight_norm, bool):
            raise TypeError("weight_norm must be a bool")

    # -- parameters ---------------------------------------------------------------
    def init_params(self, seed=0, *, dtype="float64", like=None, scale=0.5) -> DenseParams:
        r"""Random parameters that start well conditioned.

        ``A`` and ``B`` have i.i.d. :math:`\mathcal N(0, \text{scale}^2/\text{width})`
        entries, so :math:`\|A^\top A\|_2 \approx 4\,\text{scale}^2` and
        :math:`\|B - B^\top\|_2 \approx 2\sqrt 2\,\text{scale}`: ``I - W`` stays
        close to ``m I`` with a moderate Lipschitz constant.  ``U`` has
        :math:`\mathcal N(0, 1/\text{in\_features})` entries, ``b = 0``.  With
        weight normalization ``g = ‖A‖_F²`` and ``h = ‖B‖_F``, so the initial
        ``W`` is the same as without it.

        Parameters
        ----------
        seed : int
            Seed of the NumPy generator the values are drawn from (on the host,
            then copied once to the target library and device).
        dtype : str
            ``"float32"`` or ``"float64"``.
        like : array, optional
            An array whose library and device the parameters are created on;
            NumPy when omitted.
        scale : float
            Scale of ``A`` and ``B`` (see above).

        Returns
        -------
        DenseParams
        """
        dtype = check_float_dtype(dtype)
        if not isinstance(scale, numbers.Real) or not scale > 0:
            raise ValueError(f"scale must be a real number > 0, got {scale!r}")
        rng = np.random.default_rng(seed)
        n, k = self.width, self.in_features
        host = {
            "A": rng.standard_normal((n, n)) * (scale / np.sqrt(n)),
            "B": rng.standard_normal((n, n)) * (scale / np.sqrt(n)),
            "U": rng.standard_normal((n, k)) / np.sqrt(k),
            "b": np.zeros(n),
        }
        if self.weight_norm:
            host["g"] = np.asarray(np.sum(host["A"] ** 2))
            host["h"] = np.asarray(np.sqrt(np.sum(host["B"] ** 2)))
        return DenseParams(**{name: from_host(v, like, dtype) for name, v in host.items()})

    def check_params(self, params) -> None:
        """Raise ``TypeError``/``ValueError`` naming the field that does not fit."""
        if not isinstance(params, DenseParams):
            raise TypeError(f"params must be DenseParams, got {type(params).__name__}")
        n, k = self.width, self.in_features
        shapes = {"A": (n, n), "B": (n, n), "U": (n, k), "b": (n,)}
        if self.weight_norm:
            shapes.update(g=(), h=())
        for name in ("g", "h"):
            if not self.weight_norm and getattr(params, name) is not None:
                raise ValueError(f"params.{name} is set but the layer has weight_norm=False")
        dtype = None
        for name, shape in shapes.items():
            value = getattr(params, name)
            if value is None:
                raise ValueError(f"params.{name} is missing (the layer has weight_norm=True)")
            check_floating(value, f"params.{name}")
            if tuple(value.shape) != shape:
                raise ValueError(f"params.{name} must have shape {shape}, got {tuple(value.shape)}")
            if dtype is None:
                dtype = value.dtype
            elif value.dtype != dtype:
                raise TypeError(f"params.{name} has dtype {value.dtype}, params.A has {dtype}")
        namespace(*params.arrays().values())  # one library

    def check_input(self, params, x) -> None:
        """Raise a clear error unless ``x`` is a finite ``(batch, in_features)`` array
        matching the parameters' library, dtype and device.

        One host transfer (the finiteness flag) per call.
        """
        check_floating(x, "x")
        if x.ndim != 2:
            raise ValueError(
                f"x must have shape (batch, in_features={self.in_features}), "
                f"got shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.in_features:
            raise ValueError(
                f"x has {x.shape[1]} features but the layer expects in_features={self.in_features}"
            )
        if x.dtype != params.U.dtype:
            raise TypeError(f"x has dtype {x.dtype} but the parameters have {params.U.dtype}")
        try:
            xp = namespace(x, params.U)
        except TypeError as exc:
            raise TypeError(f"x and the parameters come from different libraries: {exc}") from exc
        if device(x) != device(params.U):
            raise ValueError(
                f"x is on device {device(x)!r} but the parameters are on {device(params.U)!r}"
            )
        if not bool(to_numpy(xp.all(xp.isfinite(x)))):
            raise ValueError("x contains NaN or Inf")

    # -- the weight ---------------------------------------------------------------
    def _normalized(self, params):
        """``(S, K)`` with ``I - W = m I + S - K``: ``S`` the (scaled) ``AᵀA``,
        ``K`` the (scaled) ``B - Bᵀ``."""
        xp = namespace(params.A)
        A, B = params.A, params.B
        S = xp.matmul(xp.matrix_transpose(A), A)
        K = B - xp.matrix_transpose(B)
        if self.weight_norm:
            S = (params.g / xp.sum(A * A)) * S
            K = (params.h / _fro(xp, B)) * K
        return S, K

    def monotone_matrix(self, params):
        r"""The matrix :math:`I - W = m I + A^\top A - B + B^\top` (weight-normalized
        variant when ``weight_norm``)."""
        xp = namespace(params.A)
        S, K = self._normalized(params)
        eye = xp.eye(self.width, dtype=params.A.dtype, device=device(params.A))
        return self.m * eye + S - K

    def monotone(self, params) -> Dense:
        r""":math:`I - W` as a :class:`~opsplit.Dense` operator (checks ``params``);
        :meth:`MonDEQ.prepare <opsplit.nn.MonDEQ.prepare>` inverts it once
        per parameter update."""
        self.check_params(params)
        return Dense(self.monotone_matrix(params))

    def lipschitz(self, params) -> float:
        r""":math:`\|I - W\|_2`, computed on the host (for choosing step sizes:
        forward–backward converges for :math:`\alpha < 2m/L^2`)."""
        return float(np.linalg.norm(to_numpy(self.monotone_matrix(params)).astype(float), 2))

    def input_norm(self, params) -> float:
        r""":math:`\|U\|_2`, exactly (host)."""
        return float(np.linalg.norm(to_numpy(params.U).astype(float), 2))

    # -- forward pieces -----------------------------------------------------------
    def injection(self, params, x):
        """``x @ Uᵀ + b``, shape ``(batch, width)``: the constant input of the equilibrium."""
        xp = namespace(x)
        return xp.matmul(x, xp.matrix_transpose(params.U)) + params.b

    def monotone_tangent(self, params, tangent: DenseParams):
        r"""The directional derivative of :math:`I - W` along ``tangent``.

        Without weight normalization
        :math:`d(I - W) = dA^\top A + A^\top dA - dB + dB^\top`; with it, with
        :math:`a = \|A\|_F^2`, :math:`\beta = \|B\|_F`, :math:`S = A^\top A / a`,
        :math:`K = (B - B^\top)/\beta`:

        .. math::

            dS = \frac{dA^\top A + A^\top dA}{a} - \frac{2\langle A, dA\rangle}{a} S,
            \quad
            dK = \frac{dB - dB^\top}{\beta} - \frac{\langle B, dB\rangle}{\beta^2} K,
            \quad
            d(I - W) = dg\,S + g\,dS - dh\,K - h\,dK .

        Used by :meth:`tangent`; ``None`` fields of ``tangent`` count as zero.
        """
        xp = namespace(params.A)
        A, B = params.A, params.B
        dA = _zero_if_none(tangent.A, A)
        dB = _zero_if_none(tangent.B, B)
        t = xp.matrix_transpose
        dS = xp.matmul(t(dA), A) + xp.matmul(t(A), dA)
        dK = dB - t(dB)
        if not self.weight_norm:
            return dS - dK
        a = xp.sum(A * A)
        beta = _fro(xp, B)
        S = xp.matmul(t(A), A) / a
        K = (B - t(B)) / beta
        dS = dS / a - (2.0 * _inner(xp, A, dA) / a) * S
        dK = dK / beta - (_inner(xp, B, dB) / (beta * beta)) * K
        dg = _zero_if_none(tangent.g, params.g)
        dh = _zero_if_none(tangent.h, params.h)
        return dg * S + params.g * dS - dh * K - params.h * dK

    # -- gradients ----------------------------------------------------------------
    def grads(self, params, x, z, r):
        r"""Parameter and input gradients from :math:`r = \partial\ell/\partial q`,
        the gradient with respect to :math:`q = W z + U x + b` (per sample).

        With row batches ``R`` (``r`` per row), ``Z`` and ``X``:

        .. math::

            G_W = R^\top Z,\quad \nabla_U = R^\top X,\quad
            \nabla_b = \textstyle\sum_{\text{batch}} R,\quad \nabla_x = R\,U .

        Then, without weight normalization (:math:`W = (1-m)I - A^\top A + B - B^\top`),

        .. math::

            \nabla_A = -A\,(G_W + G_W^\top), \qquad \nabla_B = G_W - G_W^\top ,

        and with it, with :math:`a = \|A\|_F^2`, :math:`\beta = \|B\|_F`,
        :math:`S = A^\top A/a`, :math:`K = (B - B^\top)/\beta`,

        .. math::

            \nabla_g = -\langle G_W, S\rangle,\quad
            \nabla_A = -\frac{g}{a}\bigl(A(G_W + G_W^\top)
                        - 2\langle G_W, S\rangle A\bigr),

            \nabla_h = \langle G_W, K\rangle,\quad
            \nabla_B = \frac{h}{\beta}\bigl(G_W - G_W^\top
                        - \langle G_W, K\rangle B/\beta\bigr).

        Returns
        -------
        grads : DenseParams
            Same fields as ``params``.
        grad_x : array, shape (batch, in_features)
        """
        xp = namespace(r)
        t = xp.matrix_transpose
        A, B = params.A, params.B
        Rt = t(r)
        G = xp.matmul(Rt, z)
        grad_U = xp.matmul(Rt, x)
        grad_b = xp.sum(r, axis=0)
        grad_x = xp.matmul(r, params.U)
        sym = G + t(G)
        skew = G - t(G)
        if not self.weight_norm:
            grads = DenseParams(A=-xp.matmul(A, sym), B=skew, U=grad_U, b=grad_b)
            return grads, grad_x
        a = xp.sum(A * A)
        beta = _fro(xp, B)
        S = xp.matmul(t(A), A) / a
        K = (B - t(B)) / beta
        GS = _inner(xp, G, S)
        GK = _inner(xp, G, K)
        grad_A = -(params.g / a) * (xp.matmul(A, sym) - 2.0 * GS * A)
        grad_B = (params.h / beta) * (skew - (GK / beta) * B)
        grads = DenseParams(A=grad_A, B=grad_B, U=grad_U, b=grad_b, g=-GS, h=GK)
        return grads, grad_x

    def injection_tangent(self, params, x, tangent: DenseParams | None, dx=None):
        """The directional derivative of ``x @ Uᵀ + b`` along ``(tangent, dx)``."""
        xp = namespace(x)
        out = xp.zeros((x.shape[0], self.width), dtype=x.dtype, device=device(x))
        if tangent is not None and tangent.U is not None:
            out = out + xp.matmul(x, xp.matrix_transpose(tangent.U))
        if tangent is not None and tangent.b is not None:
            out = out + tangent.b
        if dx is not None:
            out = out + xp.matmul(dx, xp.matrix_transpose(params.U))
        return out

    def tangent(self, params, x, z, dparams: DenseParams | None = None, dx=None):
        r"""The directional derivative :math:`dq = dW\,z + dU\,x + db + U\,dx` of
        :math:`q = W z + U x + b` at fixed ``z`` (the tangent problem's
        right-hand side; :meth:`grads` is its adjoint).

        ``None`` for ``dparams``, ``dx`` or a field of ``dparams`` counts as zero;
        :math:`dW = -d(I - W)` is :meth:`monotone_tangent`.
        """
        dq = self.injection_tangent(params, x, dparams, dx)
        weights = () if dparams is None else (dparams.A, dparams.B, dparams.g, dparams.h)
        if any(t is not None for t in weights):
            xp = namespace(z)
            dM = self.monotone_tangent(params, dparams)  # d(I - W) = -dW
            dq = dq - xp.matmul(z, xp.matrix_transpose(dM))
        return dq


def _zero_if_none(value, like):
    if value is not None:
        return value
    xp = namespace(like)
    return xp.zeros(like.shape, dtype=like.dtype, device=device(like))
