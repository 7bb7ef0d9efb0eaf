"""Arithmetic on the iterates: an array, or a tuple of arrays (multi-tier states).

Splitting methods are written once against these helpers, so tuple-valued
states need no special case anywhere else.
"""

from __future__ import annotations

import math

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
    "batch_norms",
    "batch_inner",
    "is_tuple",
    "is_block_shape",
    "block_shapes",
    "shape_size",
    "dtype_of",
    "first_array",
    "shape_of",
    "same_shape",
    "check_same_shape",
]


def is_tuple(x) -> bool:
    return isinstance(x, tuple)


def is_block_shape(shape) -> bool:
    """True for the shape of a block (tuple) vector: a tuple of array shapes."""
    return bool(shape) and isinstance(shape[0], tuple)


def block_shapes(shape) -> tuple:
    """The shapes of the blocks: ``shape`` itself for a block shape, else ``(shape,)``."""
    return tuple(shape) if is_block_shape(shape) else (tuple(shape),)


def shape_size(shape) -> int:
    """The number of entries of one vector of trailing ``shape`` (summed over blocks)."""
    return sum(math.prod(s) for s in block_shapes(shape))


def vmap(fn, *vectors):
    """Apply ``fn`` blockwise over tuple vectors, directly over arrays."""
    if isinstance(vectors[0], tuple):
        return tuple(fn(*parts) for parts in zip(*vectors))
    return fn(*vectors)


def add(x, y):
    if isinstance(x, tuple):
        return tuple(a + b for a, b in zip(x, y))
    return x + y


def sub(x, y):
    if isinstance(x, tuple):
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
    if isinstance(x, tuple):
        return tuple(2.0 * a - b for a, b in zip(x, y))
    return 2.0 * x - y


def batch_sq_norms(x, batch_ndim: int):
    """Squared Euclidean norms over all but the ``batch_ndim`` leading axes.

    Returns an array of shape ``x.shape[:batch_ndim]`` (0-d when
    ``batch_ndim == 0``); for a tuple the blocks' squares are summed.
    """
    if isinstance(x, tuple):
        total = None
        for part in x:
            sq = batch_sq_norms(part, batch_ndim)
            total = sq if total is None else total + sq
        return total
    xp = namespace(x)
    flat = x if x.ndim == batch_ndim + 1 else xp.reshape(x, (*x.shape[:batch_ndim], -1))
    return sum_of_squares(xp, flat)

def batch_inner(x, y, batch_ndim: int):
    """Inner products ``⟨x, y⟩`` over all but the ``batch_ndim`` leading axes.

    Returns an array of shape ``x.shape[:batch_ndim]`` on ``x``'s device (0-d
    when ``batch_ndim == 0``); for tuples the blocks' products are summed.
    """
    if isinstance(x, tuple):
        total = None
        for a, b in zip(x, y):
            part = batch_inner(a, b, batch_ndim)
            total = part if total is None else total + part
        return total
    xp = namespace(x)
    prod = x * y
    flat = prod if prod.ndim == batch_ndim + 1 else xp.reshape(prod, (*prod.shape[:batch_ndim], -1))
    return xp.sum(flat, axis=-1)


def batch_norms(x, batch_ndim: int):
    """Euclidean norms over all but the ``batch_ndim`` leading axes, on ``x``'s device."""
    return namespace(first_array(x)).sqrt(batch_sq_norms(x, batch_ndim))


def dtype_of(x):
    return x[0].dtype if is_tuple(x) else x.dtype


def first_array(x):
    """The array itself, or the first block of a tuple."""
    return x[0] if is_tuple(x) else x


def shape_of(x):
    """The shape of an array, or the tuple of its blocks' shapes."""
    if is_tuple(x):
        return tuple(tuple(part.shape) for part in x)
    return tuple(x.shape)


def same_shape(a, b) -> bool:
    """True when ``a`` and ``b`` are both arrays, or both tuples, of equal shapes."""
    return is_tuple(a) == is_tuple(b) and shape_of(a) == shape_of(b)


def check_same_shape(out, x, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` when the output ``out`` of an operator
    does not have the shape (or block structure) of its input ``x``.

    A shape comparison only: no data moves, so it is cheap inside iterations.
    """
    if not same_shape(out, x):
        raise ValueError(
            f"{name} returned shape {_describe(out)} for an input of shape {_describe(x)}: "
            "a monotone operator must return the shape of its input"
        )


def _describe(x):
    if is_tuple(x):
        return "(" + ", ".join(str(tuple(part.shape)) for part in x) + ")"
    return str(tuple(x.shape))
