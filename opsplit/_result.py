"""The result of a solve: solution, status and convergence history."""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._certify import Certificate

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
        The fixed-point residual (relative unless the solve was absolute; the
        batch maximum when batched) at each recorded iteration, on the host.
    history_abs : numpy.ndarray or None
        The absolute residual ``‖z_k - z_{k-1}‖`` at the same iterations
        (batch maximum): it grows when a run diverges, while the relative one
        levels off near 1.  Rate fits use it.
    history_iterations : numpy.ndarray
        The iteration (counted from 1) of each entry of ``history``: every
        iteration, ``1, 2, ..., iterations``, unless the solve recorded only
        its checks (``record="checks"``).  Given as ``None``, it is the former.
    times : numpy.ndarray
        Wall time in seconds since the start, at each recorded iteration.
    residuals : numpy.ndarray
        The final per-sample residuals (shape: the batch shape).
    wall_time : float
        Total time of the solve in seconds.
    state : object
        The method's final state; pass it as ``state=`` to warm-start.
    certificate : Certificate
        Uniqueness of the zero and the margin behind it (computed on first
        access: an exact margin costs a small eigenvalue problem).
    margin : float or None
        The strong-monotonicity margin used for certificates.
    unique : bool or None
        ``True`` when ``margin > 0`` proves the zero is unique.
    verified : bool
        ``False`` when the margin rests on a declared or supplied constant that
        nothing checked (see :func:`opsplit.diagnostics.verify`).
    uniqueness : str
        The certificate in words.
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
    history_abs: np.ndarray | None = field(repr=False, default=None)
    history_iterations: np.ndarray | None = field(repr=False, default=None)
    # Computed on first access: the certificate and the bound cost an eigenvalue
    # problem or a few operator applications, which a training loop that never
    # reads them should not pay.
    _certify_fn: Callable[[], Any] | None = field(default=None, repr=False)
    _error_bound_fn: Callable[[float], np.ndarray | None] | None = field(default=None,
                                                                         repr=False)

    def __post_init__(self):
        if self.history_iterations is None:
            self.history_iterations = np.arange(1, np.size(self.history) + 1)
        elif np.shape(self.history_iterations) != np.shape(self.history):
            raise ValueError(
                f"history_iterations has shape {np.shape(self.history_iterations)}, "
                f"history {np.shape(self.history)}: one iteration per entry"
            )

    @property
    def history_per_iteration(self) -> np.ndarray:
        """``history`` spread over iterations ``1, ..., iterations``: entry
        ``k - 1`` is the residual of iteration ``k``, NaN where none was
        recorded (between the checks of a ``record="checks"`` solve)."""
        dense = np.full(max(self.iterations, int(np.max(self.history_iterations, initial=0))),
                        np.nan)
        dense[np.asarray(self.history_iterations, dtype=np.int64) - 1] = self.history
        return dense

    @functools.cached_property
    def certificate(self) -> Certificate:
        """Uniqueness of the zero and the margin behind it."""
        if self._certify_fn is None:
            return Certificate(None, None, False, "uniqueness not certified: no problem known")
        return self._certify_fn()

    @property
    def margin(self) -> float | None:
        """The strong-monotonicity margin of ``A + B`` behind the certificate."""
        return self.certificate.margin

    @property
    def unique(self) -> bool | None:
        """``True`` when the margin proves the zero unique."""
        return self.certificate.unique

    @property
    def verified(self) -> bool:
        """``False`` when the margin rests on a constant nothing checked."""
        return self.certificate.verified

    @property
    def uniqueness(self) -> str:
        """The certificate in words."""
        return self.certificate.reason

    @functools.cached_property
    def error_bound(self) -> np.ndarray | None:
        """A bound on ``‖x - x*‖`` per sample, or ``None``."""
        cert = self.certificate
        if self._error_bound_fn is None or not cert.unique:
            return None
        return self._error_bound_fn(cert.margin)

    @property
    def success(self) -> bool:
        return self.status is Status.CONVERGED

    def __repr__(self) -> str:
        last = self.history[-1] if self.history.size else float("nan")
        return (
            f"SolveResult(status={self.status.value!r}, iterations={self.iterations}, "
            f"residual={last:.3e}, wall_time={self.wall_time:.3g}s)"
        )
