"""Validation of scalar arguments, shared by every module.

Each helper returns the value as a Python ``float``/``int`` (Python scalars keep
float32 arrays float32; a NumPy float64 scalar would promote them) or raises
``TypeError``/``ValueError`` naming the argument.
"""

from __future__ import annotations

import math
import numbers

__all__ = ["check_real", "check_positive", "check_positive_int", "check_float_dtype"]


def check_real(value, name: str, *, minimum=None, strict: bool = False, finite=True) -> float:
    """``value`` as a float: a real number, not NaN, finite unless ``finite=False``,
    and ``>= minimum`` (``> minimum`` when ``strict``)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if math.isnan(value) or (finite and math.isinf(value)):
        raise ValueError(f"{name} must be a finite real number, got {value}")
    if minimum is not None:
        if strict and not value > minimum:
            raise ValueError(f"{name} must be > {minimum}, got {value}")
        if not strict and not value >= minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_positive(value, name: str) -> float:
    """``value`` as a float, raising unless it is a finite real number > 0."""
    if type(value) is float and 0.0 < value < math.inf:  # the common case, cheaply
        return value
    return check_real(value, name, minimum=0, strict=True)


def check_positive_int(value, name: str) -> int:
    """``value`` as an int, raising unless it is an integer > 0."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return int(value)


def check_float_dtype(dtype, name: str = "dtype") -> str:
    """The name ``"float32"`` or ``"float64"`` of ``dtype`` (a name or a NumPy
    dtype), raising ``ValueError`` naming ``name`` for any other dtype."""
    text = str(dtype)
    if text not in ("float32", "float64"):
        raise ValueError(f"{name} must be 'float32' or 'float64', got {dtype!r}")
    return text
