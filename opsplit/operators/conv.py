r"""Multi-channel circular 2-D convolution, diagonalized by the real FFT.

The operator is the cross-correlation (the ``conv2d`` of deep-learning
libraries, with circular padding and the kernel centred at
``(kh // 2, kw // 2)``):

.. math::

    y_{o,i,j} = \sum_{c}\sum_{p,q} K_{o,c,p,q}\,
                x_{c,\,(i + p - kh//2) \bmod H,\,(j + q - kw//2) \bmod W}.

In the 2-D Fourier basis it is block diagonal: one ``C_out × C_in`` matrix
``symbol[h, w]`` per frequency, so applying it, its adjoint or a shifted
inverse costs one FFT pair and a batched small matrix product (Winston &
Kolter, *Monotone operator equilibrium networks*, NeurIPS 2020, §4).
"""

from __future__ import annotations

from .._backend import check_finite, check_floating, device, namespace
from ._base import LinearOperator
from .basic import check_trailing
from .shifted import _check_shift, shifted_inverse, shifted_operator

__all__ = ["Conv2dFFT", "conv_symbol"]


def _check_image_shape(image_shape) -> tuple:
    try:
        shape = tuple(int(s) for s in image_shape)
    except TypeError as exc:
        raise TypeError("image_shape must be a pair of ints (H, W)") from exc
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"image_shape must be two positive ints (H, W), got {image_shape!r}")
    return shape


def conv_symbol(kernel, image_shape):
    r"""The per-frequency matrices of the circular cross-correlation by ``kernel``.

    The kernel is zero-padded to ``(H, W)`` and rolled so that its centre
    ``(kh // 2, kw // 2)`` sits at the origin, giving ``g``; then

    .. math::

        \text{symbol}[h, w, o, c] = \overline{\operatorname{rfft2}(g_{o,c})[h, w]},

    the conjugate because cross-correlation, not convolution, is applied.

    Parameters
    ----------
    kernel : array, shape (C_out, C_in, kh, kw)
        Finite real floating kernel with ``kh <= H`` and ``kw <= W``.
    image_shape : tuple of int
        The spatial size ``(H, W)``.

    Returns
    -------
    array, shape (H, W // 2 + 1, C_out, C_in)
        Complex, ``complex64`` for a ``float32`` kernel.

    Examples
    --------
    >>> import numpy as np
    >>> from opsplit.operators.conv import conv_symbol
    >>> conv_symbol(np.ones((1, 1, 1, 1)), (2, 3)).shape
    (2, 2, 1, 1)
    >>> conv_symbol(np.ones((1, 1, 1, 1)), (2, 3))[..., 0, 0].real
    array([[1., 1.],
           [1., 1.]])
    """
    check_floating(kernel, "kernel")
    check_finite(kernel, "kernel")
    height, width = _check_image_shape(image_shape)
    if kernel.ndim != 4:
        raise ValueError(f"kernel must have shape (C_out, C_in, kh, kw), got {tuple(kernel.shape)}")
    c_out, c_in, kh, kw = kernel.shape
    if kh > height or kw > width:
        raise ValueError(
            f"kernel of spatial size {(kh, kw)} does not fit image_shape {(height, width)}"
        )
    xp = namespace(kernel)
    dev = device(kernel)
    padded = xp.concat(
        [kernel, xp.zeros((c_out, c_in, kh, width - kw), dtype=kernel.dtype, device=dev)],
        axis=-1,
    )
    padded = xp.concat(
        [padded, xp.zeros((c_out, c_in, height - kh, width), dtype=kernel.dtype, device=dev)],
        axis=-2,
    )
    centred = xp.roll(padded, shift=(-(kh // 2), -(kw // 2)), axis=(-2, -1))
    spectrum = xp.conj(xp.fft.rfftn(centred, axes=(-2, -1)))
    return xp.permute_dims(spectrum, (2, 3, 0, 1))


class Conv2dFFT(LinearOperator):
    r"""Circular multi-channel 2-D cross-correlation, applied through the real FFT.

    Acts on trailing axes ``(C_in, H, W)`` and returns ``(C_out, H, W)``;
    leading axes are batch axes.  With ``X = rfft2(x)`` over the last two
    axes and ``S = symbol``,

    .. math::

        y = \operatorname{irfft2}\big(S[h, w]\, X[:, h, w]\big), \qquad
        x = \operatorname{irfft2}\big(S[h, w]^{H}\, Y[:, h, w]\big)
        \ \text{(adjoint)}.

    See :func:`conv_symbol` for the exact kernel convention (``conv2d`` with
    circular padding and a centred kernel).  A ``float32`` kernel gives a
    ``complex64`` symbol and ``float32`` results.

    Parameters
    ----------
    kernel : array, shape (C_out, C_in, kh, kw)
        Real floating kernel, ``kh <= H``, ``kw <= W``.
    image_shape : tuple of int
        Spatial size ``(H, W)`` of the images.

    See Also
    --------
    Conv2dFFT.from_symbol : build the operator from its per-frequency matrices.

    Examples
    --------
    >>> import numpy as np
    >>> from opsplit.operators.conv import Conv2dFFT
    >>> shift = np.zeros((1, 1, 1, 3)); shift[0, 0, 0, 2] = 1.0  # y_j = x_{j+1}
    >>> A = Conv2dFFT(shift, (1, 4))
    >>> x = np.arange(4.0).reshape(1, 1, 4)
    >>> np.round(A @ x, 12), np.round(A.H @ x, 12)
    (array([[[1., 2., 3., 0.]]]), array([[[3., 0., 1., 2.]]]))
    """

    def __init__(self, kernel, image_shape):
        self._set(conv_symbol(kernel, image_shape), _check_image_shape(image_shape))

    @classmethod
    def from_symbol(cls, symbol, image_shape) -> Conv2dFFT:
        """Build the operator from its per-frequency matrices.

        Parameters
        ----------
        symbol : complex array
            Of shape ``(H, W // 2 + 1, C_out, C_in)``: ``symbol[h, w]``
            multiplies the channel vector at rfft2 frequency ``(h, w)``.  It
            must come from a real operator (Hermitian symmetric), as every
            symbol built by this module does.
        image_shape : tuple of int
            The spatial size ``(H, W)``.

        Examples
        --------
        >>> import numpy as np
        >>> from opsplit.operators.conv import Conv2dFFT
        >>> A = Conv2dFFT.from_symbol(2.0 * np.ones((3, 2, 1, 1), dtype=complex), (3, 2))
        >>> A @ np.ones((1, 3, 2))
        array([[[2., 2.],
                [2., 2.],
                [2., 2.]]])
        """
        height, width = _check_image_shape(image_shape)
        try:
            xp = namespace(symbol)
        except TypeError as exc:
            raise TypeError(f"symbol must be an array, got {type(symbol).__name__}") from exc
        if not xp.isdtype(symbol.dtype, "complex floating"):
            raise TypeError(f"symbol must have a complex floating dtype, got {symbol.dtype}")
        if symbol.ndim != 4 or tuple(symbol.shape[:2]) != (height, width // 2 + 1):
            raise ValueError(
                f"symbol must have shape ({height}, {width // 2 + 1}, C_out, C_in) for "
                f"image_shape {(height, width)}, got {tuple(symbol.shape)}"
            )
        check_finite(symbol, "symbol")
        op = cls.__new__(cls)
        op._set(symbol, (height, width))
        return op

    def _set(self, symbol, image_shape):
        xp = namespace(symbol)
        self.symbol = symbol
        self.image_shape = image_shape
        self.channels_out, self.channels_in = symbol.shape[2], symbol.shape[3]
        self.in_shape = (self.channels_in, *image_shape)
        self.out_shape = (self.channels_out, *image_shape)
        self.dtype = xp.finfo(symbol.dtype).dtype
        self._symbol_h = xp.conj(xp.matrix_transpose(symbol))

    def _apply(self, matrices, x):
        # (..., C, H, W) -> rfft2 -> (..., H, W', C, 1) -> per-frequency product -> back.
        xp = namespace(x)
        spectrum = xp.fft.rfftn(x, axes=(-2, -1))
        columns = xp.expand_dims(xp.moveaxis(spectrum, -3, -1), axis=-1)
        product = xp.moveaxis(xp.matmul(matrices, columns)[..., 0], -1, -3)
        return xp.fft.irfftn(product, s=self.image_shape, axes=(-2, -1))

    def matvec(self, x):
        check_trailing(x, self.in_shape, "x")
        return self._apply(self.symbol, x)

    def rmatvec(self, y):
        check_trailing(y, self.out_shape, "y")
        return self._apply(self._symbol_h, y)

    def _like(self, like):
        return namespace(self.symbol).real(self.symbol)


@shifted_inverse.register
def _(op: Conv2dFFT, a: float = 1.0, b: float = 1.0):
    r"""``(aI + bL)⁻¹`` has symbol :math:`(a I + b\, S[h, w])^{-1}` at every frequency.

    Exact over the rfft half-spectrum: a real operator's symbol satisfies
    :math:`S(-\omega) = \overline{S(\omega)}`, and so does its inverse.
    """
    _check_shift(a, b)
    shifted = _shifted_symbol(op, a, b)
    try:
        inverse = namespace(shifted).linalg.inv(shifted)
    except ValueError as exc:  # numpy's LinAlgError is a ValueError
        raise ValueError(f"a·I + b·L is singular at some frequency (a={a}, b={b})") from exc
    return Conv2dFFT.from_symbol(inverse, op.image_shape)


@shifted_operator.register
def _(op: Conv2dFFT, a: float = 1.0, b: float = 1.0):
    r"""``aI + bL`` has symbol :math:`a I + b\, S[h, w]`: one symbol, one FFT pair."""
    _check_shift(a, b)
    return Conv2dFFT.from_symbol(_shifted_symbol(op, a, b), op.image_shape)


def _shifted_symbol(op: Conv2dFFT, a: float, b: float):
    if op.channels_in != op.channels_out:
        raise ValueError(
            "a shifted convolution must be square (C_out == C_in), got "
            f"C_out={op.channels_out}, C_in={op.channels_in}"
        )
    xp = namespace(op.symbol)
    eye = xp.eye(op.channels_in, dtype=op.symbol.dtype, device=device(op.symbol))
    return a * eye + b * op.symbol
