r"""Convergence rates: fitted from a residual history, and bounded by theory.

Theoretical contraction factors of the fixed-point maps, for ``A``
``m``-strongly monotone and ``L``-Lipschitz, ``B`` maximally monotone and
step ``α``:

.. math::

    c_{FB} &= \sqrt{1 - 2\alpha m + \alpha^2 L^2}
        &&\text{(of } I - \alpha A\text{; < 1 iff } \alpha < 2m/L^2),\\
    c_{PR} &= \sqrt{1 - \frac{4\alpha m}{(1 + \alpha L)^2}}
        &&\text{(of the Cayley operator } R_{\alpha A} = 2J_{\alpha A} - I),\\
    c_{DR} &= \bigl|1 - \tfrac{\lambda}{2}\bigr| + \tfrac{\lambda}{2}\, c_{PR}
        &&\text{(} = (1 + c_{PR})/2 \text{ for relaxation } \lambda = 1).

They are minimized by :math:`\alpha = m/L^2` (giving
:math:`\sqrt{1 - m^2/L^2}`) for forward–backward and :math:`\alpha = 1/L`
(giving :math:`\sqrt{1 - m/L}`) for Peaceman–Rachford and Douglas–Rachford.
The residual :math:`\|z_{k+1} - z_k\|` of a ``c``-contraction shrinks by at
least ``c`` per iteration, so a measured rate above the bound contradicts
the stated ``m`` or ``L``.

References
----------
E. Winston and J. Z. Kolter, "Monotone operator equilibrium networks",
NeurIPS 2020, Appendix (convergence of forward–backward and
Peaceman–Rachford).  E. K. Ryu and S. Boyd, "A primer on monotone operator
methods", Appl. Comput. Math. 15 (2016), §2 and §6.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from .._result import SolveResult, Status
from ..splitting import (
    METHODS,
    ForwardBackward,
    SplittingMethod,
    dr_contraction,
    fb_contraction,
    method_from_name,
    method_name,
    pr_contraction,
)

__all__ = [
    "RateFit",
    "fit_rate",
    "fb_contraction",
    "pr_contraction",
    "dr_contraction",
    "contraction",
    "optimal_step",
    "suggest_step",
    "fb_step_limit",
    "RateComparison",
    "compare_rate",
    "rate_table",
]


# -- empirical rates ------------------------------------------------------------------


@dataclass(frozen=True)
class RateFit:
    """A fitted convergence model of a residual history.

    Attributes
    ----------
    rate : float
        Geometric factor per iteration, :math:`r_{k+1} \\approx \\text{rate}\\cdot r_k`,
        from a least-squares line through :math:`\\log r_k` over the tail.
    r2 : float
        Coefficient of determination of the chosen model (``kind``).
    kind : str
        ``"linear"`` (geometric, ``log r`` linear in ``k``) or ``"sublinear"``
        (``log r`` linear in ``log k``: :math:`r_k \\approx C / k^{\\text{order}}`).
    order : float
        The power ``p`` of the :math:`O(1/k^p)` fit.
    r2_linear : float
        r² of the linear (geometric) model.
    r2_sublinear : float
        r² of the sublinear model.
    start : int
        First fitted entry (0-based index into the history).
    stop : int
        One past the last fitted entry: ``start <= k < stop``.  For a
        history recorded only at checks the iterations of these entries are
        ``result.history_iterations[start:stop]``.
    """

    rate: float
    r2: float
    kind: str
    order: float
    r2_linear: float
    r2_sublinear: float
    start: int
    stop: int

    def __str__(self) -> str:
        if self.kind == "linear":
            return f"linear: rate {self.rate:.4f} per iteration (r² = {self.r2:.4f})"
        return f"sublinear: O(1/k^{self.order:.2f}) (r² = {self.r2:.4f})"


def _line(t, y):
    """Least-squares slope, intercept and r² of ``y`` against ``t``."""
    A = np.stack([t, np.ones_like(t)], axis=1)
    (slope, intercept), *_ = np.linalg.lstsq(A, y, rcond=None)
    resid = y - (slope * t + intercept)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else 1.0
    return float(slope), float(intercept), r2


def fit_rate(history, *, tail: float = 0.5, floor: float = 0.0, model: str = "auto") -> RateFit:
    r"""Fit the convergence rate of a residual history.

    Over the last ``tail`` fraction of the positive, finite residuals
    (stopping before the first value at or below ``floor``, e.g. a rounding
    floor), two least-squares lines are fitted:

    .. math::

        \log r_k \approx a + k \log(\text{rate})
        \quad\text{(linear convergence)},\qquad
        \log r_k \approx a - p \log k
        \quad(O(1/k^p),\ \text{sublinear}),

    and the one with the larger r² is reported (``model`` forces a choice).

    Parameters
    ----------
    history : array_like or SolveResult
        Residuals per iteration; for a :class:`~opsplit.SolveResult`, its
        absolute residuals ``history_abs`` (which grow on a diverging run,
        where the relative ones level off near 1) at their iterations
        ``history_iterations`` (every iteration, or only the checked ones of
        a solve with ``record="checks"``: the rate stays per iteration).
    tail : float
        Fraction of the run to fit, in ``(0, 1]``; at least 3 points are used.
    floor : float
        Residuals at or below it end the fitted range.
    model : {"auto", "linear", "sublinear"}

    Returns
    -------
    RateFit

    Examples
    --------
    >>> import numpy as np
    >>> from opsplit.diagnostics import fit_rate
    >>> fit = fit_rate(0.5 ** np.arange(40))
    >>> round(fit.rate, 6), fit.kind, round(fit.r2, 6)
    (0.5, 'linear', 1.0)
    >>> fit = fit_rate(1.0 / np.arange(1, 200))
    >>> fit.kind, round(fit.order, 3)
    ('sublinear', 1.0)
    """
    if model not in ("auto", "linear", "sublinear"):
        raise ValueError(f"model must be 'auto', 'linear' or 'sublinear', got {model!r}")
    if not 0 < tail <= 1:
        raise ValueError(f"tail must be in (0, 1], got {tail}")
    iterations = None
    if isinstance(history, SolveResult):
        iterations = np.asarray(history.history_iterations, dtype=np.float64)
        history = history.history if history.history_abs is None else history.history_abs
    h = np.asarray(history, dtype=np.float64).reshape(-1)
    if iterations is None:
        iterations = np.arange(1, h.size + 1, dtype=np.float64)
    ok = np.isfinite(h) & (h > floor)
    stop = int(np.argmin(ok)) if not ok.all() else h.size
    if stop < 3:
        raise ValueError(
            f"history must hold at least 3 finite residuals above floor={floor} "
            f"before the first that is not; got {stop}"
        )
    start = min(stop - 3, int(math.floor(stop * (1.0 - tail))))
    k = iterations[start:stop]  # counted from 1
    y = np.log(h[start:stop])
    slope, _, r2_lin = _line(k, y)
    pslope, _, r2_sub = _line(np.log(k), y)
    kind = model if model != "auto" else ("linear" if r2_lin >= r2_sub - 1e-9 else "sublinear")
    return RateFit(
        rate=math.exp(slope),
        r2=r2_lin if kind == "linear" else r2_sub,
        kind=kind,
        order=-pslope,
        r2_linear=r2_lin,
        r2_sublinear=r2_sub,
        start=start,
        stop=stop,
    )


# -- theoretical factors: each method's own (opsplit.splitting) ---------------------


def _method(method, step=None):
    """A method instance for ``method`` (an instance, a registered class, or a name
    such as ``"pr"``, ``"PeacemanRachford"`` or ``"peaceman_rachford"``), with
    ``step`` when given."""
    if isinstance(method, SplittingMethod):
        return method if step is None else dataclasses.replace(method, step=step)
    if isinstance(method, str):
        name = method.replace("_", "").replace("-", "").replace(" ", "")
        try:
            cls = type(method_from_name(name))
        except ValueError as exc:
            raise ValueError(f"method: {exc}") from None
    elif isinstance(method, type) and issubclass(method, SplittingMethod):
        cls = METHODS[method_name(method)]
    else:
        raise TypeError(
            "method must be a splitting method (instance or registered class) or its name, "
            f"got {type(method).__name__}"
        )
    return cls() if step is None else cls(step=step)


def contraction(method, m: float, L: float, step: float | None = None) -> float:
    """The theoretical contraction factor of ``method`` (a method instance, class or
    name) for constants ``m``, ``L``; ``step`` defaults to the instance's.

    The factor is the method's own (:meth:`SplittingMethod.contraction
    <opsplit.SplittingMethod.contraction>`).

    Examples
    --------
    >>> import opsplit as ops
    >>> from opsplit.diagnostics import contraction
    >>> round(contraction(ops.DouglasRachford(step=0.5), 1.0, 2.0), 6)
    0.853553
    """
    if step is None and not isinstance(method, SplittingMethod):
        raise ValueError("step is required when method is a class or a name")
    return _method(method, step).contraction(m, L)


def optimal_step(method, m: float, L: float) -> float:
    r"""The step minimizing the contraction bound of ``method``:
    :math:`m/L^2` for forward–backward, :math:`1/L` for Peaceman–Rachford
    and Douglas–Rachford.

    Examples
    --------
    >>> from opsplit.diagnostics import optimal_step
    >>> optimal_step("fb", 1.0, 2.0), optimal_step("pr", 1.0, 2.0)
    (0.25, 0.5)
    """
    return _method(method).optimal_step(m, L)


def fb_step_limit(m: float, L: float) -> float:
    r"""The largest step :math:`2m/L^2` for which the forward–backward bound contracts
    (:meth:`ForwardBackward.step_limit <opsplit.ForwardBackward.step_limit>`).

    Examples
    --------
    >>> from opsplit.diagnostics import fb_step_limit
    >>> fb_step_limit(1.0, 2.0)
    0.5
    """
    return ForwardBackward().step_limit(m, L)


def suggest_step(m: float, L: float, method="peaceman_rachford") -> float:
    r"""Propose a step size ``α`` for ``method`` from the constants ``m`` and ``L``
    of the strongly monotone, Lipschitz operator: the minimizer of the
    method's contraction bound (:func:`optimal_step`).

    Forward–backward is then guaranteed to converge at rate
    :math:`\sqrt{1 - m^2/L^2}`, Peaceman–Rachford at :math:`\sqrt{1 - m/L}` — far
    better when ``L/m`` is large.

    Examples
    --------
    >>> from opsplit.diagnostics import suggest_step
    >>> suggest_step(0.5, 4.0, "forward_backward"), suggest_step(0.5, 4.0)
    (0.03125, 0.25)
    """
    return optimal_step(method, m, L)


# -- measured versus theory -----------------------------------------------------------


@dataclass(frozen=True)
class RateComparison:
    """A fitted rate next to its theoretical bound.

    Attributes
    ----------
    label : str
        The method.
    step : float
        Its step size.
    measured : float
        The fitted geometric rate of the absolute residual (:func:`fit_rate`).
    r2 : float
        Its r².
    bound : float
        The worst-case contraction factor for the stated ``m`` and ``L``.
    consistent : bool
        ``measured <= bound + slack``: a measured rate above the bound means
        the stated ``m`` or ``L`` is wrong.
    iterations : int
        Iterations of the run.
    diverged : bool
        The run diverged, became non-finite, or its residual grows (a fitted
        rate above 1): never reported as ``"ok"``.
    """

    label: str
    step: float
    measured: float
    r2: float
    bound: float
    consistent: bool
    iterations: int
    diverged: bool = False

    @property
    def message(self) -> str:
        if self.diverged:
            allowed = "as the bound >= 1 allows" if self.bound >= 1 else "against the bound < 1"
            return f"diverged ({allowed})"
        if self.consistent:
            return "ok"
        return "measured rate is slower than the worst case: the stated m or L is wrong"


def compare_rate(result, method, m: float, L: float, *, tail=0.5, slack=0.01, floor=0.0,
                 label=None) -> RateComparison:
    r"""Compare the fitted rate of a solve with the theoretical bound.

    The rate is fitted on the absolute residual ``result.history_abs``
    (``‖z_{k+1} - z_k‖``, which a ``c``-contraction shrinks by at least ``c``
    per iteration; the relative residual levels off near 1 on a diverging
    run), or on ``result.history`` when the result has no absolute history.
    A run that diverged, became non-finite, or whose fitted rate exceeds 1
    is marked ``diverged``.

    Parameters
    ----------
    result : SolveResult
        The solve.
    method : SplittingMethod
        The method instance that produced it.
    m : float
        Strong monotonicity constant of the contracting operator.
    L : float
        Its Lipschitz constant.
    tail : float
        Fraction of the run over which :func:`fit_rate` fits the rate, in
        ``(0, 1]``.
    floor : float
        Residuals at or below it (e.g. a rounding floor) end the fitted
        range, as in :func:`fit_rate`.
    slack : float
        Allowed excess of the measured rate over the bound (fits of short
        histories are noisy).
    label : str, optional
        Row name; defaults to the method's class name.

    Returns
    -------
    RateComparison

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> from opsplit.diagnostics import compare_rate
    >>> M = np.array([[2.0, 1.0], [-1.0, 2.0]])
    >>> F = ops.LinearMonotone(ops.Dense(M), np.array([-1.0, 2.0]))
    >>> meth = ops.ForwardBackward(step=0.2)
    >>> res = ops.solve(ops.Inclusion(F, ops.Subdifferential(ops.prox.Zero())), meth,
    ...                 np.zeros(2), tol=1e-12)
    >>> c = compare_rate(res, meth, m=2.0, L=np.sqrt(5.0))
    >>> c.consistent, c.measured <= c.bound, c.message
    (True, True, 'ok')
    >>> compare_rate(res, meth, m=4.0, L=4.0).consistent     # wrong constants are caught
    False
    """
    fit = fit_rate(result, tail=tail, floor=floor, model="linear")
    bound = contraction(method, m, L)
    failed = result.status in (Status.DIVERGED, Status.NONFINITE)
    return RateComparison(
        label=label or type(method).__name__,
        step=float(method.step),
        measured=fit.rate,
        r2=fit.r2,
        bound=bound,
        consistent=bool(fit.rate <= bound + slack),
        iterations=int(result.iterations),
        diverged=bool(failed or fit.rate > 1.0),
    )


def rate_table(comparisons) -> str:
    """A plain-text table of :class:`RateComparison` rows.

    Examples
    --------
    >>> from opsplit.diagnostics import RateComparison, rate_table
    >>> print(rate_table([RateComparison("PR", 0.5, 0.61, 0.999, 0.71, True, 30)]))
    method  step  iters  measured  r²      bound   verdict
    PR      0.5   30     0.6100    0.9990  0.7100  ok
    """
    rows = [("method", "step", "iters", "measured", "r²", "bound", "verdict")]
    for c in comparisons:
        rows.append((
            c.label, f"{c.step:.4g}", str(c.iterations), f"{c.measured:.4f}",
            f"{c.r2:.4f}", f"{c.bound:.4f}", c.message,
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)
