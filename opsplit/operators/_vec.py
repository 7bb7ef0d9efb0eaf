"""Vector helpers for estimates by probing: random vectors in an operator's
library, batched inner products, and host copies of small reductions.

A "vector" is an array or a tuple of arrays (block operators); a batch of
vectors carries ``nb`` extra leading axes.  They serve the estimates here
(:mod:`~opsplit.operators.lanczos`) and the checks of
:mod:`opsplit.diagnostics`.
"""

from __future__ import annotations

import numpy as np

from .._backend import device, namespace, to_numpy
from .._vectors import block_shapes, first_array, is_block_shape, is_tuple, vmap

__all__ = ["like_of", "random_vector", "batch_dot", "host", "stack", "eps_of"]


def like_of(op, like):
    """An array giving library, dtype and device for ``op``.

    Uses ``like`` when given (its first block for tuples), else an array the
    operator holds; raises ``ValueError`` naming ``like`` when neither exists.
    """
    if like is not None:
        first = like[0] if is_tuple(like) else like
        namespace(first)  # TypeError for non-arrays
        return first
    getter = getattr(op, "_like", None)
    if getter is not None:
        try:
            return getter(None)
        except ValueError:
            pass
    raise ValueError(
        f"like is required: {type(op).__name__} holds no array that gives the "
        "array library, dtype and device"
    )


def random_vector(shape, like, rng, batch=(), scale=1.0):
    """Standard normal entries (times ``scale``) of trailing ``shape`` and
    leading ``batch`` axes, in ``like``'s library, dtype and device.

    ``shape`` is one trailing shape or a tuple of block shapes (then a tuple
    of arrays is returned).
    """
    xp = namespace(like)
    parts = tuple(
        xp.asarray(
            scale * rng.standard_normal((*batch, *s)), dtype=like.dtype, device=device(like)
        )
        for s in block_shapes(shape)
    )
    return parts if is_block_shape(shape) else parts[0]


def batch_dot(a, b, nb: int):
    """⟨a, b⟩ over all but the ``nb`` leading axes (summed over blocks)."""
    xp = namespace(first_array(a))
    parts = vmap(lambda u, v: xp.sum(u * v, axis=tuple(range(nb, u.ndim))), a, b)
    if is_tuple(parts):
        total = parts[0]
        for p in parts[1:]:
            total = total + p
        return total
    return parts


def host(x) -> np.ndarray:
    """A float64 NumPy copy of a (small) device array: one explicit transfer."""
    return np.asarray(to_numpy(x), dtype=np.float64)


def stack(vectors):
    """Stack a list of vectors along a new leading axis."""
    if is_tuple(vectors[0]):
        return tuple(stack([v[i] for v in vectors]) for i in range(len(vectors[0])))
    return namespace(vectors[0]).stack(vectors)


def eps_of(like) -> float:
    return float(namespace(like).finfo(like.dtype).eps)
