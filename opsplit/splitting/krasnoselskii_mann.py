r"""The Krasnoselskii–Mann iteration for fixed points of nonexpansive maps."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from .._validate import check_positive
from .._vectors import add, check_same_shape, scale, sub
from ..problems import FixedPoint
from ._base import SplittingMethod, State, check_constants

__all__ = ["KrasnoselskiiMann"]


class _KMMap(NamedTuple):
    T: Callable  # T, with the shape of T(x) checked


@dataclass(frozen=True, init=False)
class KrasnoselskiiMann(SplittingMethod):
    r"""The Krasnoselskii–Mann iteration for :math:`x = T(x)`, ``T`` nonexpansive.

    .. math::

        x^{+} = x + \lambda\,\bigl(T(x) - x\bigr),
        \qquad \lambda = \text{relaxation}.

    For a nonexpansive ``T`` with a fixed point it converges for every
    :math:`\lambda \in (0, 1)` (Krasnoselskii's averaging, :math:`\lambda =
    1/2`, turns a rotation, on which the plain iteration :math:`x^{+} = T x`
    circles for ever, into a contraction); for a ``θ``-averaged ``T``
    (declared with ``ops.FixedPoint(T, averaged=θ)``) for every
    :math:`\lambda \in (0, 1/\theta)`.  ``prepare`` warns
    (``RuntimeWarning``) at or above ``1/θ``.  The residual is
    :math:`\|x^{+} - x\| = \lambda\,\|T x - x\|`.

    ``T`` belongs to the problem, :class:`~opsplit.FixedPoint`; it may be
    given to the method instead (``KrasnoselskiiMann(T, relaxation)``), and
    then solves a ``FixedPoint()`` without one — not both.  A method carrying
    a callable has no JSON configuration
    (:func:`~opsplit.splitting.method_config` raises ``TypeError``): give
    ``T`` to the problem to store the method.  ``step`` is not used (KM has
    none); it is kept so that every registered method takes one.

    Applied to the Peaceman–Rachford map :math:`R_{\alpha A} R_{\alpha B}` it
    is Douglas–Rachford with relaxation :math:`2\lambda`.

    Parameters
    ----------
    T : callable, optional
        The nonexpansive map, when the problem does not hold it.
    relaxation : float
        ``λ > 0``.
    step : float
        Unused (keyword only).

    References
    ----------
    M. A. Krasnosel'skii, "Two remarks on the method of successive
    approximations", Uspekhi Mat. Nauk 10 (1955); W. R. Mann, "Mean value
    methods in iteration", Proc. AMS 4 (1953); H. H. Bauschke and
    P. L. Combettes, Convex Analysis and Monotone Operator Theory in Hilbert
    Spaces, 2nd ed., Springer (2017), Section 5.2.

    Examples
    --------
    A rotation by 90° has the one fixed point 0; averaging reaches it:

    >>> import numpy as np, opsplit as ops
    >>> R = np.array([[0.0, -1.0], [1.0, 0.0]])
    >>> T = lambda x: x @ R.T
    >>> res = ops.solve(ops.FixedPoint(T), ops.KrasnoselskiiMann(relaxation=0.5),
    ...                 np.array([1.0, 0.0]), tol=1e-10, relative=False)
    >>> res.success, bool(np.abs(res.x).max() < 1e-9)
    (True, True)
    """

    problem_types: ClassVar[tuple[type, ...]] = (FixedPoint,)
    requires: ClassVar[tuple[type, ...]] = ()
    contracts: ClassVar[bool] = False  # m and L describe no part of a fixed-point problem

    T: Callable | None = None
    relaxation: float = 0.5

    def __init__(self, T=None, relaxation=0.5, *, step=1.0):
        if T is not None and not callable(T):
            raise TypeError(f"T must be callable, got {type(T).__name__}")
        object.__setattr__(self, "step", step)
        object.__setattr__(self, "T", T)
        object.__setattr__(self, "relaxation", relaxation)
        self.__post_init__()

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "relaxation", check_positive(self.relaxation, "relaxation"))

    def prepare(self, problem):
        self.check_problem(problem)
        if problem.T is not None and self.T is not None and problem.T is not self.T:
            raise ValueError("T is given to both the FixedPoint and KrasnoselskiiMann: "
                             "give it to one of them")
        T = problem.T if problem.T is not None else self.T
        if T is None:
            raise ValueError("T: give the map to ops.FixedPoint(T) or to "
                             "ops.KrasnoselskiiMann(T)")
        theta = 1.0 if problem.averaged is None else problem.averaged
        if self.relaxation >= 1.0 / theta:
            kind = ("merely nonexpansive (declare FixedPoint(T, averaged=θ) when T is "
                    "θ-averaged)" if problem.averaged is None else f"{theta:.4g}-averaged")
            warnings.warn(
                f"relaxation {self.relaxation:.4g} is not below Krasnoselskii-Mann's limit "
                f"1/θ = {1.0 / theta:.4g} for T {kind}: the iteration may not converge",
                RuntimeWarning, stacklevel=3,
            )

        def checked(x):
            out = T(x)
            check_same_shape(out, x, "T")
            return out

        return _KMMap(checked)

    def init(self, prepared, x0):
        return State(z=x0, x=x0)

    def update(self, prepared, state):
        x = state.z
        Tx = prepared.T(x)
        delta = sub(Tx, x)
        if self.relaxation != 1.0:
            delta = scale(self.relaxation, delta)
        x_new = add(x, delta)
        return State(z=x_new, x=x_new, delta=delta)

    # -- theory ------------------------------------------------------------------------

    def step_limit(self, m, L):
        """``inf``: KM has no step (its ``relaxation`` is checked in ``prepare``)."""
        check_constants(m, L)
        return math.inf

    def divergence_hint(self, problem, m, L):
        return ("Krasnoselskii-Mann cannot diverge for a nonexpansive T with a fixed point "
                "(the distance to any fixed point never increases): T may be expansive "
                "(ops.diagnostics.check_averaged tells) or have no fixed point")

    def stall_hint(self, margin):
        hint = ("for a merely nonexpansive T the residual may decrease slowly "
                "(o(1/√k) in general)")
        if self.relaxation >= 1.0:
            hint += "; with relaxation ≥ 1 it may circle for ever (a rotation does): try 0.5"
        return hint
