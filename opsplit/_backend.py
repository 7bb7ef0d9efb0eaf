"""The one module that knows which array libraries exist.

Everything else asks for the namespace of its inputs with :func:`namespace`
and creates new arrays with the dtype and device of an existing one, so the
same code runs on NumPy, CuPy and any array-API library.
"""

from __future__ import annotations

import numpy as np
from array_api_compat import array_namespace, device, is_cupy_array, is_cupy_namespace

__all__ = [
    "namespace",
    "device",
    "to_numpy",
    "from_host",
    "check_floating",
    "check_finite",
    "same_library",
    "sum_of_squares",
]


_NAMESPACE_BY_TYPE: dict = {}


def namespace(*arrays):
    """Return the array-API namespace of ``arrays`` (tuples are flattened)."""
    if len(arrays) == 1 and not isinstance(arrays[0], tuple):
        # Hot path (every operator and prox call): the namespace depends only
        # on the array type, so look it up once per type.
        kind = type(arrays[0])
        xp = _NAMESPACE_BY_TYPE.get(kind)
        if xp is None:
            xp = _NAMESPACE_BY_TYPE[kind] = array_namespace(arrays[0])
        return xp
    flat = []
    for a in arrays:
        if isinstance(a, tuple):
            flat.extend(a)
        elif a is not None:
            flat.append(a)
    return array_namespace(*flat)


def to_numpy(x) -> np.ndarray:
    """Copy an array to host memory as a NumPy array (an explicit transfer)."""
    if isinstance(x, (np.ndarray, np.generic)):
        return np.asarray(x)
    if is_cupy_array(x):
        return x.get()
    return np.from_dlpack(x)


_HOST_DTYPES = ("float32", "float64", "int32", "int64", "bool")


def from_host(host, like=None, dtype=None):
    """Copy host data (a NumPy array, a list) to the library and device of ``like``.

    The one explicit host-to-device transfer, for data sets, initial
    parameters and index batches.

    Parameters
    ----------
    host : array_like
        Data in host memory.
    like : array, optional
        An array of the target library and device; ``None`` keeps NumPy.
    dtype : str or dtype, optional
        A dtype name (``"float32"``, ``"float64"``, ``"int32"``, ``"int64"``,
        ``"bool"``) or a dtype of the target library; default: the dtype of
        ``like`` (of ``host`` when ``like`` is ``None``).

    Returns
    -------
    array

    Examples
    --------
    >>> import numpy as np
    >>> from opsplit._backend import from_host
    >>> from_host([1, 2], np.zeros(1, dtype=np.float32)).dtype
    dtype('float32')
    >>> from_host([1.0, 2.0], dtype="int64")
    array([1, 2])
    """
    if isinstance(dtype, str) and dtype not in _HOST_DTYPES:
        raise ValueError(f"dtype must be one of {_HOST_DTYPES}, got {dtype!r}")
    if like is None:
        return np.asarray(host, dtype=dtype)
    xp = namespace(like)
    if dtype is None:
        dtype = like.dtype
    elif isinstance(dtype, str):
        dtype = getattr(xp, dtype)
    return xp.asarray(np.asarray(host), dtype=dtype, device=device(like))


def check_floating(x, name: str) -> None:
    """Raise ``TypeError`` naming ``name`` unless it is a real floating array
    (or a tuple of them: a block vector)."""
    if isinstance(x, tuple):
        for i, part in enumerate(x):
            check_floating(part, f"{name}[{i}]")
        return
    try:
        xp = namespace(x)
    except TypeError as exc:
        raise TypeError(f"{name} must be an array, got {type(x).__name__}") from exc
    if not xp.isdtype(x.dtype, "real floating"):
        raise TypeError(f"{name} must have a real floating dtype, got {x.dtype}")


def check_finite(x, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` unless every entry of the array
    ``x`` (or of each block of a tuple) is finite.

    One reduction and one host transfer: call it once, when data is given
    (at construction), never inside iterations.
    """
    if isinstance(x, tuple):
        for i, part in enumerate(x):
            check_finite(part, f"{name}[{i}]")
        return
    xp = namespace(x)
    if not bool(xp.all(xp.isfinite(x))):
        raise ValueError(f"{name} must be finite, got an array with inf or nan entries")


def same_library(a, b, name_a: str, name_b: str) -> None:
    """Raise ``TypeError`` when ``a`` and ``b`` come from different array libraries
    or live on different devices."""
    try:
        array_namespace(a, b)
    except TypeError as exc:
        raise TypeError(
            f"{name_a} and {name_b} come from different array libraries: {exc}"
        ) from exc
    if device(a) != device(b):
        raise ValueError(
            f"{name_a} is on device {device(a)!r} but {name_b} is on {device(b)!r}"
        )


def sum_of_squares(xp, x):
    """``Σ x²`` over the last axis, the cheapest way each library offers.

    NumPy's ``vecdot`` is one fused pass; CuPy's array-API ``vecdot`` goes
    through a batched matrix product, and a product plus a sum is faster there.
    """
    if is_cupy_namespace(xp):
        return xp.sum(x * x, axis=-1)
    return xp.vecdot(x, x, axis=-1)
