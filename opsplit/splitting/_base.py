"""What every splitting method provides to the driver and to the diagnostics."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

from .._validate import check_positive
from ..operators.monotone import ForwardOperator, LinearMonotone, ResolventOperator
from ..operators.spectral import exact_margin
from ..problems import Inclusion

__all__ = ["SplittingMethod", "State", "check_positive", "check_constants"]


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
        residual; ``None`` before the first step, and after a step of a
        method that forms it only for the residual (forward–backward,
        Peaceman–Rachford): the driver then forms it from the previous ``z``
        when it records a residual, and the final state always carries it.
    w : array or tuple or None
        An intermediate point of the last step that neither ``z`` nor
        ``delta`` shows (forward–backward's forward step
        :math:`x - \\alpha A(x)`, which the resolvent of ``B`` may map back to
        finite values); the driver checks it for NaN and Inf when the solve
        stops.
    aux : object or None
        Whatever else the method carries from one step to the next (momentum,
        a dual variable, an adaptive step, an acceleration memory), as the
        method defines it; the driver never looks inside.
    """

    z: Any
    x: Any
    delta: Any = None
    w: Any = None
    aux: Any = None


def check_constants(m, L, step=None) -> None:
    """Raise unless ``m`` (strong monotonicity) and ``L`` (Lipschitz constant),
    and ``step`` when given, can describe one operator."""
    for name, v in (("m", m), ("L", L)) + ((("step", step),) if step is not None else ()):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            raise TypeError(f"{name} must be a finite real number, got {v!r}")
    if not m >= 0:
        raise ValueError(f"m must be >= 0, got {m}")
    if not L > 0:
        raise ValueError(f"L must be > 0, got {L}")
    if m > L * (1 + 1e-12):
        raise ValueError(f"m = {m} exceeds L = {L}: no operator has these constants")
    if step is not None and not step > 0:
        raise ValueError(f"step must be > 0, got {step}")


def check_error_constants(step, margin, lipschitz, monotonicity) -> None:
    """Raise unless the constants of an a-posteriori error factor make sense."""
    if not step > 0:
        raise ValueError(f"step must be > 0, got {step}")
    if not margin > 0:
        raise ValueError(f"margin must be > 0 for an error bound, got {margin}")
    if not lipschitz >= 0:
        raise ValueError(f"lipschitz must be >= 0, got {lipschitz}")
    if not monotonicity >= 0:
        raise ValueError(f"monotonicity must be >= 0, got {monotonicity}")


def linear_margin(op) -> float | None:
    """The exact margin of the linear part of an affine operator ``op`` when its
    structure gives it cheaply (dense, diagonal, FFT), else ``None``."""
    if isinstance(op, LinearMonotone):
        return exact_margin(op.op)
    return None


_CAPABILITY = {
    ForwardOperator: "be evaluated directly",
    ResolventOperator: "offer a resolvent",
}


@dataclass(frozen=True)
class SplittingMethod(ABC):
    """A splitting method: hyperparameters only, no loop.

    The driver :func:`opsplit.solve` calls :meth:`prepare` once (resolvents
    and factorizations are computed there and returned), :meth:`init` once,
    then :meth:`update` until it decides to stop.

    Each method also owns its theory, which the diagnostics ask for instead
    of branching on the method's type: the step-size limit
    (:meth:`step_limit`), the step minimizing the bound
    (:meth:`optimal_step`), the contraction factor (:meth:`contraction`), the
    a-posteriori error factor (:meth:`error_factor`), the computed bound
    (:meth:`inclusion_bound`) and what to tell the user when a run fails
    (:meth:`divergence_hint`, :meth:`stall_hint`).

    Attributes
    ----------
    problem_types : tuple of type
        The problem statements the method solves (:class:`~opsplit.Inclusion`
        unless it says otherwise).
    requires : tuple of type
        For inclusions, the capabilities (:class:`~opsplit.ForwardOperator`,
        :class:`~opsplit.ResolventOperator`) the method needs of ``A``, ``B``
        (and ``C`` for three-operator methods), in that order; their number is
        the number of operators the method splits.
    applies_A : tuple of str
        The maps of ``A`` the iteration applies, named as the keywords of
        :func:`~opsplit.operators.precompute`: ``"resolvent"``
        :math:`J_{\alpha A}`, ``"reflection"`` :math:`2 J_{\alpha A} - I`,
        ``"forward"`` :math:`I - \alpha A`; callers that precompute an affine
        ``A`` build only these (e.g. :meth:`opsplit.nn.MonDEQ.prepare`).
    step_limit_formula : str or None
        :meth:`step_limit` in symbols (e.g. ``"2m/L²"``), for tables and
        figures; ``None`` when every step contracts.
    contracts : bool
        Whether :meth:`contraction` gives a contraction factor (fixed-point
        methods); ``False`` for methods whose guarantee is of another kind
        (FISTA's :math:`O(1/k^2)` objective bound), which the step-size
        studies and step tables leave out.
    fixed_point : bool
        Whether one :meth:`update` applies a fixed map :math:`T` to the
        governing variable ``z``, the state being a function of ``z`` alone
        (:meth:`state_at`); what :class:`~opsplit.Anderson` accelerates.
        ``False`` for methods that carry memory beyond ``z`` (FISTA's
        momentum, adaptive steps), which Anderson refuses; a property where
        a hyperparameter decides (forward–backward's ``step_rule``).
    """

    problem_types: ClassVar[tuple[type, ...]] = (Inclusion,)
    requires: ClassVar[tuple[type, ...]] = (ResolventOperator, ResolventOperator)
    applies_A: ClassVar[tuple[str, ...]] = ("resolvent",)
    step_limit_formula: ClassVar[str | None] = None
    contracts: ClassVar[bool] = True
    fixed_point: ClassVar[bool] = True

    step: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "step", check_positive(self.step, "step"))

    # -- the iteration ---------------------------------------------------------------

    def check_problem(self, problem) -> None:
        """Raise ``TypeError`` unless the method solves ``problem``: one of its
        ``problem_types`` and, for an inclusion, as many operators as it
        splits, each with the capability it needs (``requires``)."""
        name = type(self).__name__
        if not isinstance(problem, self.problem_types):
            kinds = " or ".join(t.__name__ for t in self.problem_types)
            raise TypeError(f"{name} solves a {kinds}, got {type(problem).__name__}")
        if isinstance(problem, Inclusion):
            given, split = len(problem.operators), len(self.requires)
            if given != split:
                hint = (" (three operators: ops.DavisYin)" if given == 3
                        else " (give C to the Inclusion)")
                raise TypeError(f"{name} splits {split} operators; the Inclusion has "
                                f"{given}{hint}")
            self.check_capabilities(problem)

    def check_capabilities(self, problem) -> None:
        """Raise ``TypeError`` when an operator of ``problem`` lacks a
        capability in ``requires``."""
        for role, op, capability in zip("ABC", problem.operators, self.requires):
            if not isinstance(op, capability):
                raise TypeError(
                    f"{type(self).__name__} needs operator {role} to {_CAPABILITY[capability]}; "
                    f"{type(op).__name__} does not"
                )

    @abstractmethod
    def prepare(self, problem):
        """Precompute what the iteration applies (a returned value)."""

    @abstractmethod
    def init(self, prepared, x0) -> State:
        """The state that starts the iteration from ``x0``."""

    @abstractmethod
    def update(self, prepared, state: State) -> State:
        """One iteration; pure, inputs are not modified."""

    def state_at(self, prepared, z) -> State:
        """The state at the governing variable ``z``, whose :meth:`update`
        returns :math:`T(z)` in its ``z`` (for :attr:`fixed_point` methods).

        :class:`~opsplit.Anderson` calls it at every point it extrapolates
        to.  The default, :meth:`init`, is right for methods whose state is a
        function of ``z`` alone; a method overrides it to skip work its
        :meth:`update` does not need (Peaceman–Rachford's ``x``), and must
        override it when :meth:`init` starts from something else than the
        governing variable (a primal point only): the default raises
        ``TypeError`` then rather than iterate on the wrong map.
        """
        state = self.init(prepared, z)
        if state.z is not z:
            raise TypeError(
                f"{type(self).__name__}.init does not keep the point it is given as its "
                "governing variable z: override state_at (or set fixed_point = False) "
                "to accelerate it"
            )
        return state

    def complete(self, prepared, state: State) -> State:
        """Fill in what :meth:`update` left out for speed (``x`` when a method
        iterates on another variable); the driver calls it at each check."""
        return state

    def solution(self, state: State):
        return state.x

    def solution_residual(self, prepared, state: State):
        """A vector that vanishes exactly at a solution, computed from the
        solution estimate ``state.x`` alone, or ``None``.

        The driver stops on it (besides the residual of ``z``) for methods
        whose governing variable need not converge when the solution does
        (see :meth:`needs_solution_residual`).
        """
        return None

    def needs_solution_residual(self, margin: float | None) -> bool:
        """Whether ``z`` may fail to converge although ``x`` does, for a
        problem whose ``A + B`` has the known margin ``margin``."""
        return False

    # -- theory ------------------------------------------------------------------------

    def step_limit(self, m: float, L: float) -> float:
        """The largest step for which the contraction bound is below 1, for the
        contracting operator's strong monotonicity ``m`` and Lipschitz
        constant ``L`` (``math.inf``: every step)."""
        check_constants(m, L)
        return math.inf

    def optimal_step(self, m: float, L: float) -> float | None:
        """The step minimizing :meth:`contraction` for constants ``m``, ``L``
        (``None``: the method has no such bound, e.g. when ``contracts`` is
        false)."""
        check_constants(m, L)
        return None

    def contraction(self, m: float, L: float) -> float | None:
        """The contraction factor of one iteration at this step, for constants
        ``m``, ``L`` (see :mod:`opsplit.diagnostics.rates`); ``None`` when no
        bound is implemented."""
        check_constants(m, L)
        return None

    def error_factor(
        self, margin: float, lipschitz: float | None, monotonicity: float = 0.0
    ) -> float | None:
        """A constant ``c`` with ``‖x⁺ - x*‖ ≤ c·‖z⁺ - z‖``, or ``None``.

        ``margin`` is the strong monotonicity of ``A + B``, ``lipschitz`` and
        ``monotonicity`` those of ``A`` alone (see the certificates page).
        """
        return None

    def inclusion_bound(self, problem, state: State, margin: float, batch_ndim: int):
        """Per-sample bound on ``‖x - x*‖`` from computed elements of ``A + B``
        at the final ``state`` (a device array of the batch shape), or ``None``."""
        return None

    def divergence_hint(self, problem, m: float | None, L: float | None) -> str:
        """Why a run may have diverged, for ``A``'s constants ``m``, ``L``
        (``None`` when unknown); the driver has already ruled out a
        non-monotone linear part."""
        return (
            f"{type(self).__name__} converges for every step when A and B are maximally "
            "monotone: check the operators' monotonicity (ops.diagnostics.check_monotone)"
        )

    def stall_hint(self, margin: float | None) -> str:
        """What to say when the run reached ``maxiter``, for the known margin
        of ``A + B`` (``""``: nothing beyond the residual)."""
        return ""


def resolvent(op, step: float, role: str):
    """``op.resolvent(step)``, with a singular linear system explained as the
    operator's non-monotonicity."""
    return _explained(op.resolvent, op, step, role)


def reflected_resolvent(op, step: float, role: str):
    """``op.reflected_resolvent(step)``, errors as in :func:`resolvent`."""
    return _explained(op.reflected_resolvent, op, step, role)


def resolvents(op, step: float, role: str):
    """``op.resolvents(step)`` (both maps from one precomputation), errors as in
    :func:`resolvent`."""
    return _explained(op.resolvents, op, step, role)


def _explained(build, op, step, role):
    if not isinstance(op, LinearMonotone):
        return build(step)
    try:
        return build(step)
    except (ValueError, ZeroDivisionError) as exc:  # numpy's LinAlgError is a ValueError
        m = linear_margin(op)
        if m is None:
            why = "its linear part L may not be monotone (check_monotone tells)"
        elif m < 0:
            why = f"L is not monotone (margin {m:.4g})"
        else:
            raise
        raise ValueError(
            f"I + αL is singular for operator {role} at step α = {step:.4g}: {why}; "
            "splitting methods need maximally monotone operators"
        ) from exc
