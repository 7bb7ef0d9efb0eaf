"""Arithmetic on the iterates: an array, or a tuple of arrays (multi-tier states).

Splitting methods are written once against these helpers, so tuple-valued
states need no special case anywhere else.
"""

from __future__ import annotations

from ._backend import namespace, sum_of_squares

__all__ = [
    "vmap",
    "add",
    "sub",
    "scale",
    "axpy",
    "lincomb",
    "reflect",
    "batch_sq_norms",
    "is_tuple",
]


def is_tuple(x) -> bool:
    return isinstance(x, tuple)


def vmap(fn, *vectors):
    """Apply ``fn`` blockwise over tuple vectors, directly over arrays."""
    if is_tuple(vectors[0]):
        return tuple(fn(*parts) for parts in zip(*vectors))
    return fn(*vectors)


def add(x, y):
    if is_tuple(x):
        return tuple(a + b for a, b in zip(x, y))
    return x + y


def sub(x, y):
    if is_tuple(x):
        return tuple(a - b for a, b in zip(x, y))
    return x - y


def scale(alpha, x):
    return vmap(lambda a: alpha * a, x)


def axpy(alpha, x, y):
    """``alpha * x + y``."""
    return vmap(lambda a, b: alpha * a + b, x, y)


def lincomb(a, x, b, y):
    """``a * x + b * y``."""
    return vmap(lambda u, v: a * u + b * v, x, y)


def reflect(x, y):
    """``2 x - y``: the reflection used by Peaceman–Rachford and Douglas–Rachford."""
    if is_tuple(x):
        return tuple(2.0 * a - b for a, b in zip(x, y))
    return 2.0 * x - y


def batch_sq_norms(x, batch_ndim: int):
    """Squared Euclidean norms over all but the ``batch_ndim`` leading axes.

    Returns an array of shape ``x.shape[:batch_ndim]`` (0-d when
    ``batch_ndim == 0``); for a tuple the blocks' squares are summed.
    """
    if is_tuple(x):
        total = None
        for part in x:
            sq = batch_sq_norms(part, batch_ndim)
            total = sq if total is None else total + sq
        return total
    xp = namespace(x)
    flat = x if x.ndim == batch_ndim + 1 else xp.reshape(x, (*x.shape[:batch_ndim], -1))
    return sum_of_squares(xp, flat)



def dtype_of(x):
    return x[0].dtype if is_tuple(x) else x.dtype


def first_array(x):
    """The array itself, or the first block of a tuple."""
    return x[0] if is_tuple(x) else x
