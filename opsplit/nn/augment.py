r"""Data augmentation for image batches: random crops of a padded image and horizontal flips.

The monDEQ paper trains its large CIFAR-10 models with the standard
augmentation: pad each image with 4 pixels on every side, take a random
crop of the original size, and flip it horizontally with probability 1/2.
Here that is one batched, seeded operation on an array of any array-API
library (NumPy, CuPy, ...), so the training loop can apply it to a batch
already on the device.

For image ``n`` with crop corner :math:`(r_n, c_n) \in \{0..2p\}^2` in the
padded image and flip bit :math:`f_n`,

.. math::

   \text{out}_{n,k,i,j} = \tilde x_{n,k,\, i + r_n - p,\; \phi_n(j) + c_n - p},
   \qquad \phi_n(j) = \begin{cases} W - 1 - j & f_n \\ j & \text{otherwise,} \end{cases}

where :math:`\tilde x` is ``x`` extended by ``fill`` outside its ``H × W``
grid.  It is one gather (``take``) from ``x`` flattened and followed by the
fill values, with indices built on the array's device from per-image source
rows and columns (``batch × (H + W)`` small integers): pixels are copied,
never computed, so the result is exact on every backend, with no per-image
loop.
"""

from __future__ import annotations

import numbers

import numpy as np

from .._backend import check_floating, device, namespace

__all__ = ["crop_flip", "random_crop_flip"]


def _check_padding(padding) -> int:
    if not isinstance(padding, numbers.Integral) or isinstance(padding, bool):
        raise TypeError(f"padding must be an integer, got {type(padding).__name__}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    return int(padding)


def _check_images(x):
    check_floating(x, "x")
    if x.ndim != 4:
        raise ValueError(f"x must have shape (batch, channels, H, W), got shape {tuple(x.shape)}")


def _fill_values(fill, channels: int) -> np.ndarray:
    values = np.asarray(fill, dtype=np.float64)
    if values.ndim > 1 or (values.ndim == 1 and values.shape[0] != channels):
        raise ValueError(
            f"fill must be a number or one value per channel ({channels}), got shape "
            f"{values.shape}"
        )
    if not np.all(np.isfinite(values)):
        raise ValueError("fill must be finite")
    return np.broadcast_to(values, (channels,))


def crop_flip(x, offsets, flips, *, padding: int = 4, fill=0.0):
    """Crop each image of ``x`` out of its ``padding``-padded version, then flip it.

    Parameters
    ----------
    x : array
        Images of shape ``(batch, channels, H, W)``, real floating dtype, of
        any array-API library; not modified.
    offsets : array-like of int, shape (batch, 2)
        Per image, the (row, column) of the crop's top-left corner in the
        padded image, each in ``0 .. 2*padding`` (``padding`` is no shift).
    flips : array-like of bool, shape (batch,)
        Per image, whether the crop is flipped left-right.
    padding : int
        Pixels added on each side before cropping.
    fill : float or sequence of float
        The value of the padding, one for all channels or one per channel.
        ``0`` pads in the space of ``x``; to pad with black *before*
        standardisation (what torchvision's ``RandomCrop`` did in the
        paper's code), pass ``-mean/std`` per channel.

    Returns
    -------
    array
        Same shape, dtype, library and device as ``x``.

    Examples
    --------
    >>> x = np.arange(9.0).reshape(1, 1, 3, 3)
    >>> crop_flip(x, [[0, 1]], [False], padding=1)[0, 0]    # shift down by one row
    array([[0., 0., 0.],
           [0., 1., 2.],
           [3., 4., 5.]])
    >>> crop_flip(x, [[1, 2]], [True], padding=1, fill=-1.0)[0, 0]
    array([[-1.,  2.,  1.],
           [-1.,  5.,  4.],
           [-1.,  8.,  7.]])
    """
    _check_images(x)
    padding = _check_padding(padding)
    n, channels, height, width = x.shape
    offsets = np.asarray(offsets)
    flips = np.asarray(flips)
    if offsets.shape != (n, 2) or not np.issubdtype(offsets.dtype, np.integer):
        raise ValueError(f"offsets must be integers of shape ({n}, 2), got {offsets.dtype} "
                         f"{offsets.shape}")
    if offsets.size and (offsets.min() < 0 or offsets.max() > 2 * padding):
        raise ValueError(f"offsets must lie in 0..{2 * padding} (2*padding)")
    if flips.shape != (n,) or flips.dtype != np.bool_:
        raise ValueError(f"flips must be booleans of shape ({n},), got {flips.dtype} "
                         f"{flips.shape}")
    fill = _fill_values(fill, channels)

    # Source row / column of each output pixel (host, batch × side integers).
    rows = np.arange(height)[None, :] + (offsets[:, :1] - padding)
    cols = np.arange(width)[None, :]
    cols = np.where(flips[:, None], width - 1 - cols, cols) + (offsets[:, 1:] - padding)
    inside_rows = (rows >= 0) & (rows < height)
    inside_cols = (cols >= 0) & (cols < width)

    xp, dev = namespace(x), device(x)
    size = n * channels * height * width
    source = xp.concat([xp.reshape(x, (-1,)),
                        xp.asarray(fill, dtype=x.dtype, device=dev)])
    channel = xp.arange(channels, dtype=xp.int64, device=dev)[None, :, None, None]
    image = xp.arange(n, dtype=xp.int64, device=dev)[:, None, None, None]
    r = xp.asarray(np.where(inside_rows, rows, 0), dtype=xp.int64, device=dev)
    c = xp.asarray(np.where(inside_cols, cols, 0), dtype=xp.int64, device=dev)
    index = (image * channels + channel) * (height * width) + (
        r[:, None, :, None] * width + c[:, None, None, :])
    inside = (xp.asarray(inside_rows, device=dev)[:, None, :, None]
              & xp.asarray(inside_cols, device=dev)[:, None, None, :])
    index = xp.where(inside, index, size + channel)      # outside: that channel's fill
    return xp.reshape(xp.take(source, xp.reshape(index, (-1,))), x.shape)


def random_crop_flip(x, rng: np.random.Generator, *, padding: int = 4, flip: bool = True,
                     fill=0.0):
    """The paper's CIFAR augmentation on a batch: random ``padding``-pixel crops and flips.

    Draws from ``rng``, in this order, the crop corners
    ``rng.integers(0, 2*padding + 1, size=(batch, 2))`` (row, column) and,
    when ``flip``, the flips ``rng.random(batch) < 0.5``; then returns
    :func:`crop_flip` of ``x`` with them.  Same generator state, same batch.

    Parameters
    ----------
    x : array
        Images of shape ``(batch, channels, H, W)``, real floating dtype, of
        any array-API library; not modified.
    rng : numpy.random.Generator
        Source of the random choices (on the host: only ``3 × batch``
        numbers are drawn; the images stay where they are).
    padding : int
        Pixels of padding on each side (4 in the paper).
    flip : bool
        Also flip left-right with probability 1/2.
    fill : float or sequence of float
        Value of the padding (see :func:`crop_flip`).

    Returns
    -------
    array
        The augmented batch, same shape, dtype, library and device as ``x``.

    Examples
    --------
    >>> x = np.random.default_rng(0).standard_normal((8, 3, 32, 32)).astype(np.float32)
    >>> a = random_crop_flip(x, np.random.default_rng(1))
    >>> b = random_crop_flip(x, np.random.default_rng(1))
    >>> a.shape, a.dtype, bool(np.array_equal(a, b))
    ((8, 3, 32, 32), dtype('float32'), True)
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    _check_images(x)
    padding = _check_padding(padding)
    n = x.shape[0]
    offsets = rng.integers(0, 2 * padding + 1, size=(n, 2))
    flips = rng.random(n) < 0.5 if flip else np.zeros(n, dtype=bool)
    return crop_flip(x, offsets, flips, padding=padding, fill=fill)
