"""What every splitting method provides to the driver."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, NamedTuple

from .._validate import check_positive
from ..operators.monotone import ForwardOperator

__all__ = ["SplittingMethod", "State", "check_positive"]


class State(NamedTuple):
    """Iterate of a splitting method.

    Attributes
    ----------
    z : array or tuple
        The governing fixed-point variable (``x`` for forward–backward, the
        auxiliary ``u`` for Peaceman–Rachford and Douglas–Rachford).
    x : array or tuple or None
        The current solution estimate (``None`` between checks for methods
        that compute it only on demand; see :meth:`SplittingMethod.complete`).
    delta : array or tuple or None
        ``z_new - z_old`` from the last step, whose norm is the fixed-point
        residual; ``None`` before the first step.
    """

    z: Any
    x: Any
    delta: Any = None


def require(op, capability, role: str, method: str) -> None:
    if not isinstance(op, capability):
        need = "be evaluated directly" if capability is ForwardOperator else "offer a resolvent"
        raise TypeError(
            f"{method} needs operator {role} to {need}; {type(op).__name__} does not"
        )


@dataclass(frozen=True)
class SplittingMethod(ABC):
    """A splitting method: hyperparameters only, no loop.

    The driver :func:`opsplit.solve` calls :meth:`prepare` once (resolvents
    and factorizations are computed there and returned), :meth:`init` once,
    then :meth:`update` until it decides to stop.
    """

    step: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "step", check_positive(self.step, "step"))

    @abstractmethod
    def prepare(self, problem):
        """Precompute what the iteration applies (a returned value)."""

    @abstractmethod
    def init(self, prepared, x0) -> State:
        """The state that starts the iteration from ``x0``."""

    @abstractmethod
    def update(self, prepared, state: State) -> State:
        """One iteration; pure, inputs are not modified."""

    def complete(self, prepared, state: State) -> State:
        """Fill in what :meth:`update` left out for speed (``x`` when a method
        iterates on another variable); the driver calls it at each check."""
        return state

    def solution(self, state: State):
        return state.x

    def error_factor(
        self, margin: float, lipschitz: float | None, monotonicity: float = 0.0
    ) -> float | None:
        """A constant ``c`` with ``‖x⁺ - x*‖ ≤ c·‖z⁺ - z‖``, or ``None``.

        ``margin`` is the strong monotonicity of ``A + B``, ``lipschitz`` and
        ``monotonicity`` those of ``A`` alone (see the certificates page).
        """
        return None

