"""Vector helpers for the diagnostics: those shared with the estimates of the
operators layer (:mod:`opsplit.operators._vec`: random test vectors, batched
inner products, host copies of small reductions) and row selection in batches.

A "vector" is an array or a tuple of arrays (block operators); a batch of
vectors carries ``nb`` extra leading axes.
"""

from __future__ import annotations

import numpy as np
from array_api_compat import device

from .._backend import namespace
from .._vectors import is_tuple
from ..operators._vec import batch_dot, eps_of, host, like_of, random_vector, stack

__all__ = [
    "like_of",
    "random_vector",
    "batch_dot",
    "host",
    "stack",
    "eps_of",
    "take",
    "put_rows",
]


def take(x, index):
    """Rows ``index`` (a host integer array) of a batch of vectors."""
    if is_tuple(x):
        return tuple(take(p, index) for p in x)
    xp = namespace(x)
    idx = xp.asarray(np.asarray(index, dtype=np.int64), device=device(x))
    return xp.take(x, idx, axis=0)


def put_rows(old, new, mask):
    """Rows of ``new`` where the host boolean ``mask`` is true, else of ``old``."""
    if is_tuple(old):
        return tuple(put_rows(o, n, mask) for o, n in zip(old, new))
    xp = namespace(old)
    m = xp.asarray(np.asarray(mask, dtype=bool), device=device(old))
    m = xp.reshape(m, (m.shape[0],) + (1,) * (old.ndim - 1))
    return xp.where(m, new, old)
