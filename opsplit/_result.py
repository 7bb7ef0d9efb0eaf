"""The result of a solve: solution, status and convergence history."""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Status", "SolveResult"]


class Status(enum.Enum):
    """Why a solve stopped."""

    CONVERGED = "converged"
    MAX_ITER = "maximum iterations"
    NONFINITE = "non-finite"
    DIVERGED = "diverged"
    CALLBACK = "stopped by callback"


@dataclass
class SolveResult:
    """What :func:`opsplit.solve` returns.

    Attributes
    ----------
    x : array or tuple of arrays
        The solution estimate, in the input's library, device and dtype.
    status : Status
        Why the solve stopped; ``success`` is ``status is Status.CONVERGED``.
    message : str
        A human-readable account of the stop.
    iterations : int
        Number of iterations taken.
    history : numpy.ndarray
        One fixed-point residual per iteration (the batch maximum when
        batched), on the host.
    times : numpy.ndarray
        Wall time in seconds since the start, at each iteration.
    residuals : numpy.ndarray
        The final per-sample residuals (shape: the batch shape).
    wall_time : float
        Total time of the solve in seconds.
    state : object
        The method's final state; pass it as ``state=`` to warm-start.
    margin : float or None
        The strong-monotonicity margin used for certificates.
    unique : bool or None
        ``True`` when ``margin > 0`` proves the zero is unique.
    error_bound : numpy.ndarray or None
        A bound on ``‖x - x*‖`` per sample, when the method and the known
        constants give one.
    """

    x: Any
    status: Status
    message: str
    iterations: int
    history: np.ndarray
    times: np.ndarray
    residuals: np.ndarray
    wall_time: float
    state: Any = field(repr=False, default=None)
    margin: float | None = None
    unique: bool | None = None
    uniqueness: str | None = None
    # Computed on first access: the bound costs a few operator applications,
    # which a training loop that never reads it should not pay.
    _error_bound_fn: Callable[[], np.ndarray | None] | None = field(default=None, repr=False)

    @functools.cached_property
    def error_bound(self) -> np.ndarray | None:
        return None if self._error_bound_fn is None else self._error_bound_fn()

    @property
    def success(self) -> bool:
        return self.status is Status.CONVERGED

    def __repr__(self) -> str:
        last = self.history[-1] if self.history.size else float("nan")
        return (
            f"SolveResult(status={self.status.value!r}, iterations={self.iterations}, "
            f"residual={last:.3e}, wall_time={self.wall_time:.3g}s)"
        )
