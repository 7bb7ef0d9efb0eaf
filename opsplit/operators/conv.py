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

The kernel that applies such per-frequency matrices (:func:`apply_symbol`)
is shared with the convolutional monDEQ layers (:mod:`opsplit.nn._fourier`,
which adds polyphase symbols for stride-2 maps).  It lays the spectrum out
``(F, C, batch)`` (``F`` frequencies of the half spectrum), so that the
product is one batched GEMM (nothing of size ``batch × F × C × C`` is
formed), and splits each 2-D transform into its two passes with the one
transpose between them: real FFT along the contiguous columns, transposing
copy, complex FFT along the rows in place; the inverse in the mirror order.
For NumPy arrays the transforms are :mod:`scipy.fft`'s (measured on
``(128, 54, 30, 30)`` float32, one thread: the real FFT along the columns
3× faster than :mod:`numpy.fft`'s; and it transforms in place) and the
transposing copy goes in cache-sized blocks; other libraries use their
namespace's ``fft`` and one copy.
"""

from __future__ import annotations

from array_api_compat import is_numpy_namespace

from .._backend import check_finite, check_floating, device, namespace
from ._base import LinearOperator
from .basic import check_trailing
from .shifted import _check_shift, shifted_inverse, shifted_operator

__all__ = [
    "Conv2dFFT",
    "conv_symbol",
    "fft_module",
    "embed_kernel",
    "spectrum",
    "apply_symbol",
    "apply_to_spectrum",
]


def _check_image_shape(image_shape) -> tuple:
    try:
        shape = tuple(int(s) for s in image_shape)
    except TypeError as exc:
        raise TypeError("image_shape must be a pair of ints (H, W)") from exc
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"image_shape must be two positive ints (H, W), got {image_shape!r}")
    return shape


# -- the shared kernel --------------------------------------------------------------


def fft_module(xp):
    """The FFT functions for arrays of namespace ``xp``: :mod:`scipy.fft` for
    NumPy (faster than :mod:`numpy.fft` here, and able to transform in
    place), the namespace's own ``fft`` otherwise (CuPy, array-API strict)."""
    if is_numpy_namespace(xp):
        import scipy.fft

        return scipy.fft
    return xp.fft


def embed_kernel(kernel, grid):
    """The kernel ``(C_out, C_in, kh, kw)`` as a full-grid cross-correlation kernel
    ``g`` with ``g[s] = kernel[s + k//2]`` (indices mod ``grid``), so that
    ``y[i] = Σ_s g[s] x[i + s]``."""
    xp = namespace(kernel)
    c_out, c_in, kh, kw = kernel.shape
    n1, n2 = grid
    dev = device(kernel)
    g = xp.concat(
        [kernel, xp.zeros((c_out, c_in, kh, n2 - kw), dtype=kernel.dtype, device=dev)], axis=-1
    )
    g = xp.concat(
        [g, xp.zeros((c_out, c_in, n1 - kh, n2), dtype=kernel.dtype, device=dev)], axis=-2
    )
    return xp.roll(g, shift=(-(kh // 2), -(kw // 2)), axis=(-2, -1))


def _reverse_axes(y, block=8):
    """``(R, M, K) -> (K, M, R)`` as a fresh contiguous array.

    For NumPy the copy goes ``block`` leading rows at a time: a plain
    transposing copy of the ``(480, 54, 128)`` spectra of the benchmark
    strides through memory and takes twice as long.  Other libraries make one
    copy (one kernel on a GPU)."""
    xp = namespace(y)
    r, m, k = y.shape
    if not is_numpy_namespace(xp):
        return xp.reshape(xp.permute_dims(y, (2, 1, 0)), (k, m, r))
    out = xp.empty((k, m, r), dtype=y.dtype)
    for start in range(0, r, block):
        out[:, :, start : start + block] = xp.permute_dims(y[start : start + block], (2, 1, 0))
    return out


def _rows_fft(y, inverse):
    """The complex (inverse) FFT along axis 0 of a fresh array, in place where the
    library can (:mod:`scipy.fft`)."""
    xp = namespace(y)
    fft = fft_module(xp)
    transform = fft.ifft if inverse else fft.fft
    if fft is not xp.fft:
        return transform(y, axis=0, overwrite_x=True)
    return transform(y, axis=0)


def spectrum(x, q=1):
    """``rfft2`` of the ``q × q`` polyphase components of ``x`` ``(..., C, n1, n2)``,
    laid out ``(F, C·q², batch)`` (leading axes flattened into ``batch``).

    Channel ``c·q² + a1·q + a2`` holds the spectrum of ``x[..., c, a1::q,
    a2::q]`` (``q = 1``: the plain ``rfft2``).  ``rfft2`` goes as its two
    passes with the transpose between them: the real FFT along the
    contiguous columns, one transposing copy to ``(columns, ..., batch)``
    rows-first, and the complex FFT along the rows in place.
    """
    xp = namespace(x)
    fft = fft_module(xp)
    *_, c, n1, n2 = x.shape
    m1, m2 = n1 // q, n2 // q
    m2h = m2 // 2 + 1
    if q == 1:
        cols = fft.rfft(xp.reshape(x, (-1, c, n1, n2)), axis=-1)  # (batch, C, n1, m2h)
    else:
        xs = xp.reshape(x, (-1, c, m1, q, m2, q))
        xs = xp.permute_dims(xs, (0, 1, 3, 5, 2, 4))  # (batch, C, q, q, m1, m2)
        cols = fft.rfft(xs, axis=-1)  # (batch, C, q, q, m1, m2h): a fresh array
    batch = cols.shape[0]
    spec = _reverse_axes(xp.reshape(cols, (batch, c * q * q, m1 * m2h)))  # (F, C·q², batch)
    spec = _rows_fft(xp.reshape(spec, (m1, m2h, c * q * q, batch)), inverse=False)
    return xp.reshape(spec, (m1 * m2h, c * q * q, batch))


def _from_spectrum(spec, lead, grid, q):
    """Inverse of :func:`spectrum`, *overwriting* ``spec`` (a fresh product):
    the complex inverse FFT along the rows in place, one transposing copy to
    ``(batch, C·q², rows, columns)``, the real inverse along the columns,
    which writes the plain layout."""
    xp = namespace(spec)
    n1, n2 = grid
    m1, m2 = n1 // q, n2 // q
    m2h = m2 // 2 + 1
    cq, batch = spec.shape[1], spec.shape[2]
    y = _rows_fft(xp.reshape(spec, (m1, m2h, cq, batch)), inverse=True)
    y = _reverse_axes(xp.reshape(y, (m1 * m2h, cq, batch)))  # (batch, C·q², F)
    y = fft_module(xp).irfft(xp.reshape(y, (batch, cq, m1, m2h)), n=m2, axis=-1)
    c = cq // (q * q)
    if q > 1:
        y = xp.reshape(y, (batch, c, q, q, m1, m2))
        y = xp.permute_dims(y, (0, 1, 4, 2, 5, 3))  # (batch, C, m1, q, m2, q)
    return xp.reshape(y, (*lead, c, n1, n2))


def apply_symbol(symbol, x, grid, q_in=1, q_out=None):
    r"""``irfft2(symbol[f] · rfft2(x)[:, f])``: per-frequency matrices applied to images.

    Parameters
    ----------
    symbol : complex array, shape (F, q_out²·C_out, q_in²·C_in)
        One matrix per frequency of the (coarse) grid's half spectrum,
        row-major over ``(n1/q_in, n2/q_in // 2 + 1)``.
    x : real array, shape (..., C_in, n1, n2)
        Leading axes are batch axes.
    grid : tuple of int
        ``(n1, n2)``, the grid of ``x``; divisible by ``q_in``.
    q_in : int
        Polyphase factor of the input (1: the plain spectrum).
    q_out : int, optional
        Polyphase factor of the output (default ``q_in``); the output grid
        is ``(n1/q_in·q_out, n2/q_in·q_out)``.

    Returns
    -------
    array, shape (..., C_out, n1/q_in·q_out, n2/q_in·q_out)

    Notes
    -----
    One forward transform, one batched GEMM ``(F, C_out', C_in') @ (F, C_in',
    batch)`` and one inverse transform (see the module docstring for the
    layout): nothing of size ``batch × F × C × C`` is formed.

    Examples
    --------
    >>> import numpy as np
    >>> from opsplit.operators.conv import apply_symbol
    >>> symbol = np.full((2 * 2, 1, 1), 3.0 + 0j)      # 3·I at every frequency
    >>> apply_symbol(symbol, np.ones((1, 2, 2)), (2, 2))
    array([[[3., 3.],
            [3., 3.]]])
    """
    q_out = q_in if q_out is None else q_out
    n1, n2 = grid
    out_grid = (n1 // q_in * q_out, n2 // q_in * q_out)
    return apply_to_spectrum(symbol, spectrum(x, q_in), tuple(x.shape[:-3]), out_grid, q_out)


def apply_to_spectrum(symbol, spec, lead, grid, q=1):
    """:func:`apply_symbol` from a spectrum already computed by :func:`spectrum`
    (reuse it when several symbols act on the same images).

    Parameters
    ----------
    symbol : complex array, shape (F, q²·C_out, C_in')
    spec : complex array, shape (F, C_in', batch)
        From :func:`spectrum`; not modified.
    lead : tuple of int
        The leading (batch) axes of the result, of product ``batch``.
    grid : tuple of int
        The output grid ``(n1, n2)``, divisible by ``q``.
    q : int
        Polyphase factor of the output.

    Returns
    -------
    array, shape (*lead, C_out, n1, n2)
    """
    xp = namespace(spec)
    return _from_spectrum(xp.matmul(symbol, spec), lead, grid, q)


# -- the operator -------------------------------------------------------------------


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
    *_, kh, kw = kernel.shape
    if kh > height or kw > width:
        raise ValueError(
            f"kernel of spatial size {(kh, kw)} does not fit image_shape {(height, width)}"
        )
    xp = namespace(kernel)
    spec = xp.conj(fft_module(xp).rfftn(embed_kernel(kernel, (height, width)), axes=(-2, -1)))
    return xp.permute_dims(spec, (2, 3, 0, 1))


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
        # the per-frequency matrices as one (F, C_out, C_in) stack, for apply_symbol
        flat = (-1, self.channels_out, self.channels_in)
        self._matrices = xp.reshape(symbol, flat)
        self._matrices_h = xp.conj(xp.matrix_transpose(self._matrices))

    def matvec(self, x):
        check_trailing(x, self.in_shape, "x")
        return apply_symbol(self._matrices, x, self.image_shape)

    def rmatvec(self, y):
        check_trailing(y, self.out_shape, "y")
        return apply_symbol(self._matrices_h, y, self.image_shape)

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
