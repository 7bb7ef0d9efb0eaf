r"""Step-size studies: iterations to a tolerance across methods and step sizes.

Winston & Kolter (NeurIPS 2020, Figure 3) compare forward–backward and
Peaceman–Rachford on a trained monDEQ across
:math:`\alpha \in \{1, 1/2, \dots, 1/64\}`: Peaceman–Rachford converges for
every ``α`` and at its best ``α`` needs fewer iterations, while
forward–backward fails above a threshold near its bound :math:`2m/L^2`.
:func:`step_study` runs that experiment on any :class:`~opsplit.Inclusion`;
failures (divergence, no convergence within ``maxiter``) are recorded, not
dropped.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from .._certify import operator_margin
from .._result import Status
from .._solve import solve
from ..operators.spectral import operator_lipschitz
from ..splitting import METHODS, inclusion_methods, method_from_name

__all__ = ["StepStudy", "step_study", "sweep", "LABELS", "DEFAULT_STEPS"]

DEFAULT_STEPS = tuple(2.0**-k for k in range(7))

#: Study labels: the registered short names (:data:`opsplit.splitting.METHODS`)
#: in capitals, e.g. ``("FB", "PR", "DR")``.
LABELS = tuple(name.upper() for name in METHODS)


@dataclass
class StepStudy:
    """Iterations to a tolerance for each method and step size.

    Attributes
    ----------
    labels : tuple of str
        Method labels (rows), e.g. ``("FB", "PR", "DR")``.
    steps : tuple of float
        Step sizes (columns).
    iterations : numpy.ndarray, shape (len(labels), len(steps))
        Iterations taken; a failed run holds the iterations it ran.
    converged : numpy.ndarray of bool, same shape
        Whether each run converged.
    status : list of list of Status
        Why each run stopped.
    times : numpy.ndarray
        Wall time of each solve in seconds.
    tol : float
        The tolerance of every solve.
    maxiter : int
        The iteration limit of every solve.
    m : float or None
        Strong monotonicity of the problem's contracting operator, when known.
    L : float or None
        Its Lipschitz constant, when known.
    results : dict
        ``(label, step) -> SolveResult`` (histories for plots).
    """

    labels: tuple
    steps: tuple
    iterations: np.ndarray
    converged: np.ndarray
    status: list
    times: np.ndarray
    tol: float
    maxiter: int
    m: float | None = None
    L: float | None = None
    results: dict = field(default_factory=dict, repr=False)

    def best(self, label: str):
        """``(step, iterations)`` of the fastest converged run of ``label``, or
        ``(None, None)`` when none converged."""
        i = self.labels.index(label)
        ok = self.converged[i]
        if not ok.any():
            return None, None
        iters = np.where(ok, self.iterations[i], np.iinfo(np.int64).max)
        j = int(np.argmin(iters))
        return self.steps[j], int(self.iterations[i, j])

    def failure_threshold(self, label: str):
        """The smallest step at which ``label`` failed while every smaller step
        converged (``None`` when it never failed above a converged step)."""
        i = self.labels.index(label)
        order = np.argsort(self.steps)
        threshold = None
        for j in order[::-1]:
            if self.converged[i, j]:
                break
            threshold = self.steps[j]
        if threshold is None or not self.converged[i].any():
            return None
        return threshold

    def bound(self, label: str, step: float):
        """The theoretical contraction factor for ``label`` at ``step`` (None without m, L)."""
        if self.m is None or self.L is None:
            return None
        return method_from_name(label, step=step).contraction(self.m, self.L)

    def table(self) -> str:
        """Iterations per method (rows) and step (columns); failures by their status."""
        head = ["method"] + [_step_label(s) for s in self.steps] + ["best"]
        rows = [head]
        for i, label in enumerate(self.labels):
            cells = [label]
            for j in range(len(self.steps)):
                if self.converged[i, j]:
                    cells.append(str(int(self.iterations[i, j])))
                else:
                    cells.append(_FAIL[self.status[i][j]])
            step, iters = self.best(label)
            cells.append("-" if step is None else f"{iters} at α={_step_label(step)}")
            rows.append(cells)
        widths = [max(len(r[k]) for r in rows) for k in range(len(head))]
        lines = ["  ".join(c.rjust(w) if k else c.ljust(w) for k, (c, w) in
                           enumerate(zip(r, widths))) for r in rows]
        notes = [f"iterations to a relative residual <= {self.tol:g} (max {self.maxiter}); "
                 "'div' diverged, 'max' hit maxiter, 'nan' non-finite"]
        if self.m is not None and self.L is not None:
            for label in self.labels:
                method = method_from_name(label)
                limit = method.step_limit(self.m, self.L)
                if math.isfinite(limit):
                    # FISTA's bound is on the objective, not a contraction.
                    holds = "contracts for α <" if method.contracts else "holds for α ≤"
                    notes.append(
                        f"m = {self.m:.4g}, L = {self.L:.4g}: the {label} bound {holds} "
                        f"{method.step_limit_formula} = {limit:.4g}"
                    )
        return "\n".join(lines + notes)


_FAIL = {
    Status.DIVERGED: "div",
    Status.MAX_ITER: "max",
    Status.NONFINITE: "nan",
    Status.CALLBACK: "stop",
    Status.CONVERGED: "ok",
}


def _step_label(step: float) -> str:
    if step >= 1:
        return f"{step:g}"
    inv = 1.0 / step
    return f"1/{inv:g}" if abs(inv - round(inv)) < 1e-9 else f"{step:.3g}"


def step_study(
    problem,
    x0,
    *,
    methods=None,
    steps=DEFAULT_STEPS,
    tol: float = 1e-4,
    maxiter: int = 500,
    m: float | None = None,
    L: float | None = None,
    keep_results: bool = True,
) -> StepStudy:
    r"""Solve ``problem`` with each method and step size; record iterations to ``tol``.

    Parameters
    ----------
    problem : Inclusion
        For PR and DR both operators need resolvents, for FB ``A`` must be
        evaluable.
    x0 : array
        Starting point (a batch: the slowest sample decides, as in
        :func:`opsplit.solve`).
    methods : sequence of str, optional
        Labels of registered methods (:data:`LABELS`, e.g. ``"FB"``, ``"PR"``,
        ``"DR"``; any case); by default every registered method that splits
        as many operators as ``problem`` has
        (:func:`~opsplit.splitting.inclusion_methods`).
    steps : sequence of float
        Default :math:`1, 1/2, \dots, 1/64`.
    tol : float
        Passed to :func:`opsplit.solve` (relative residual).
    maxiter : int
        Passed to :func:`opsplit.solve`.
    m : float, optional
        Strong monotonicity of ``problem.A``; defaults to its exact margin
        (affine operators with structure) or declared constant.  Only used
        for the bounds in the table.
    L : float, optional
        Lipschitz constant of ``problem.A``; defaults to its exact norm or
        declared constant.
    keep_results : bool
        Keep every :class:`~opsplit.SolveResult` (for residual plots).

    Returns
    -------
    StepStudy

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> from opsplit.diagnostics.study import step_study
    >>> M = np.array([[1.0, 4.0], [-4.0, 1.0]])          # m = 1, L = sqrt(17)
    >>> F = ops.LinearMonotone(ops.Dense(M), np.array([-1.0, 1.0]),
    ...                        lipschitz=float(np.sqrt(17.0)), strong_monotonicity=1.0)
    >>> G = ops.Subdifferential(ops.prox.NonNegative())
    >>> s = step_study(ops.Inclusion(F, G), np.zeros(2), steps=(1.0, 0.25, 1 / 32))
    >>> bool(s.converged[0, 2]), bool(s.converged[0, 0])   # FB: only the small step
    (True, False)
    >>> bool(s.converged[1].all())                          # PR: every step
    True
    """
    if methods is None:
        methods = inclusion_methods(len(problem.operators))
    if m is None:
        m = operator_margin(problem.A)[0]
    if L is None:
        L = operator_lipschitz(problem.A)

    def run(label, step):
        return solve(problem, method_from_name(label, step=step), x0, tol=tol,
                     maxiter=maxiter)

    return sweep(run, methods=methods, steps=steps, tol=tol, maxiter=maxiter, m=m, L=L,
                 keep_results=keep_results)


def sweep(run, *, methods=LABELS, steps=DEFAULT_STEPS, tol: float = 1e-4,
          maxiter: int = 500, m=None, L=None, keep_results: bool = True) -> StepStudy:
    """The loop of :func:`step_study` around any solver: ``run(label, step)`` must
    return the :class:`~opsplit.SolveResult` of method ``label`` (one of
    :data:`LABELS`) with step ``step`` at tolerance ``tol`` (used for the
    monDEQ study, whose solves go through :meth:`opsplit.nn.MonDEQ.forward`)."""
    for label in methods:
        if not isinstance(label, str) or label.lower() not in METHODS:
            raise ValueError(f"methods must hold labels of {LABELS}, got {label!r}")
    labels = tuple(label.upper() for label in methods)
    steps = tuple(float(s) for s in steps)
    if not steps or not all(s > 0 for s in steps):
        raise ValueError(f"steps must be positive numbers, got {steps}")
    shape = (len(labels), len(steps))
    iterations = np.zeros(shape, dtype=np.int64)
    converged = np.zeros(shape, dtype=bool)
    times = np.zeros(shape)
    status = [[None] * len(steps) for _ in labels]
    results = {}
    for i, label in enumerate(labels):
        for j, step in enumerate(steps):
            with warnings.catch_warnings():
                # Steps beyond a method's proven range are tried on purpose: the
                # study records how those runs end instead of warning.
                warnings.simplefilter("ignore", RuntimeWarning)
                res = run(label, step)
            iterations[i, j] = res.iterations
            converged[i, j] = res.success
            times[i, j] = res.wall_time
            status[i][j] = res.status
            if keep_results:
                results[(label, step)] = res
    return StepStudy(
        labels=labels,
        steps=steps,
        iterations=iterations,
        converged=converged,
        status=status,
        times=times,
        tol=tol,
        maxiter=maxiter,
        m=None if m is None else float(m),
        L=None if L is None or (isinstance(L, float) and math.isnan(L)) else float(L),
        results=results,
    )
