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

import math
from dataclasses import dataclass

import numpy as np

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
    r2_linear, r2_sublinear : float
        r² of both models.
    start, stop : int
        The fitted iterations ``start <= k < stop`` (0-based indices into the history).
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
    history : array_like
        Residuals per iteration (e.g. ``SolveResult.history``).
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
    h = np.asarray(history, dtype=np.float64).reshape(-1)
    ok = np.isfinite(h) & (h > floor)
    stop = int(np.argmin(ok)) if not ok.all() else h.size
    if stop < 3:
        raise ValueError(
            f"history must hold at least 3 finite residuals above floor={floor} "
            f"before the first that is not; got {stop}"
        )
    start = min(stop - 3, int(math.floor(stop * (1.0 - tail))))
    k = np.arange(start, stop, dtype=np.float64)
    y = np.log(h[start:stop])
    slope, _, r2_lin = _line(k, y)
    pslope, _, r2_sub = _line(np.log(k + 1.0), y)
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


# -- theoretical factors --------------------------------------------------------------


def _constants(m, L, step=None):
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


def fb_contraction(m: float, L: float, step: float) -> float:
    r"""Contraction factor :math:`\sqrt{1 - 2\alpha m + \alpha^2 L^2}` of forward–backward.

    It bounds the Lipschitz constant of :math:`I - \alpha A` (``A``
    ``m``-strongly monotone, ``L``-Lipschitz) and so of the whole step
    :math:`J_{\alpha B}(I - \alpha A)`; it is below 1 iff ``step < 2m/L²``.

    Examples
    --------
    >>> from opsplit.diagnostics import fb_contraction
    >>> round(fb_contraction(1.0, 2.0, 0.25), 6)
    0.866025
    """
    _constants(m, L, step)
    return math.sqrt(max(0.0, 1.0 - 2.0 * step * m + (step * L) ** 2))


def pr_contraction(m: float, L: float, step: float) -> float:
    r"""Contraction factor :math:`\sqrt{1 - 4\alpha m/(1 + \alpha L)^2}` of Peaceman–Rachford.

    For ``A`` ``m``-strongly monotone and ``L``-Lipschitz, with
    :math:`y = J_{\alpha A} x` so that :math:`x = y + \alpha A y` and
    :math:`R_{\alpha A} x = y - \alpha A y`, differences satisfy
    :math:`\|\Delta R\|^2 = \|\Delta x\|^2 - 4\alpha\langle \Delta y, \Delta A y\rangle
    \le \|\Delta x\|^2 - 4\alpha m \|\Delta y\|^2` and
    :math:`\|\Delta x\| \le (1 + \alpha L)\|\Delta y\|`; the reflected
    resolvent of the other (monotone) operator is nonexpansive.  ``m`` and
    ``L`` are those of the operator whose reflected resolvent contracts.

    Examples
    --------
    >>> from opsplit.diagnostics import pr_contraction
    >>> round(pr_contraction(1.0, 2.0, 0.5), 6)    # α = 1/L is optimal: sqrt(1 - m/L)
    0.707107
    """
    _constants(m, L, step)
    return math.sqrt(max(0.0, 1.0 - 4.0 * step * m / (1.0 + step * L) ** 2))


def dr_contraction(m: float, L: float, step: float, relaxation: float = 1.0) -> float:
    r"""Contraction factor of Douglas–Rachford with relaxation ``λ``:
    :math:`|1 - \lambda/2| + (\lambda/2)\,c_{PR}`.

    The map is :math:`(1 - \lambda/2) I + (\lambda/2) R_{\alpha A} R_{\alpha B}`;
    ``λ = 1`` gives :math:`(1 + c_{PR})/2`, ``λ = 2`` gives Peaceman–Rachford.

    Examples
    --------
    >>> from opsplit.diagnostics import dr_contraction, pr_contraction
    >>> c = pr_contraction(1.0, 2.0, 0.5)
    >>> dr_contraction(1.0, 2.0, 0.5) == (1 + c) / 2
    True
    """
    if not 0 < relaxation <= 2:
        raise ValueError(f"relaxation must be in (0, 2], got {relaxation}")
    c = pr_contraction(m, L, step)
    return abs(1.0 - relaxation / 2.0) + relaxation / 2.0 * c


_NAMES = {
    "forward_backward": "forward_backward",
    "fb": "forward_backward",
    "forwardbackward": "forward_backward",
    "peaceman_rachford": "peaceman_rachford",
    "pr": "peaceman_rachford",
    "peacemanrachford": "peaceman_rachford",
    "douglas_rachford": "douglas_rachford",
    "dr": "douglas_rachford",
    "douglasrachford": "douglas_rachford",
}


def _kind(method):
    """The method family and (for instances) its step and relaxation."""
    from ..splitting import DouglasRachford, ForwardBackward, PeacemanRachford

    classes = {
        ForwardBackward: "forward_backward",
        PeacemanRachford: "peaceman_rachford",
        DouglasRachford: "douglas_rachford",
    }
    if isinstance(method, str):
        key = method.lower().replace("-", "_").replace(" ", "_")
        if key not in _NAMES:
            raise ValueError(
                f"method must be one of {sorted(set(_NAMES.values()))} (or fb, pr, dr), "
                f"got {method!r}"
            )
        return _NAMES[key], None, 1.0
    for cls, name in classes.items():
        if method is cls:
            return name, None, 1.0
        if isinstance(method, cls):
            return name, method.step, getattr(method, "relaxation", 2.0 if cls is
                                              PeacemanRachford else 1.0)
    raise TypeError(
        "method must be a ForwardBackward, PeacemanRachford or DouglasRachford "
        f"(instance or class) or its name, got {type(method).__name__}"
    )


def contraction(method, m: float, L: float, step: float | None = None) -> float:
    """The theoretical contraction factor of ``method`` (a method instance, class or
    name) for constants ``m``, ``L``; ``step`` defaults to the instance's.

    Examples
    --------
    >>> import opsplit as ops
    >>> from opsplit.diagnostics import contraction
    >>> round(contraction(ops.DouglasRachford(step=0.5), 1.0, 2.0), 6)
    0.853553
    """
    kind, own_step, relaxation = _kind(method)
    step = own_step if step is None else step
    if step is None:
        raise ValueError("step is required when method is a class or a name")
    if kind == "forward_backward":
        return fb_contraction(m, L, step)
    if kind == "peaceman_rachford":
        return pr_contraction(m, L, step)
    return dr_contraction(m, L, step, relaxation)


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
    _constants(m, L)
    kind = _kind(method)[0]
    if kind == "forward_backward":
        if m == 0:
            raise ValueError("forward-backward has no contraction bound with m = 0")
        return m / L**2
    return 1.0 / L


def fb_step_limit(m: float, L: float) -> float:
    r"""The largest step :math:`2m/L^2` for which the forward–backward bound contracts."""
    _constants(m, L)
    return 2.0 * m / L**2


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
    label, step : str, float
        The method and its step size.
    measured : float
        The fitted geometric rate (:func:`fit_rate`).
    r2 : float
        Its r².
    bound : float
        The worst-case contraction factor for the stated ``m`` and ``L``.
    consistent : bool
        ``measured <= bound + slack``: a measured rate above the bound means
        the stated ``m`` or ``L`` is wrong.
    iterations : int
    """

    label: str
    step: float
    measured: float
    r2: float
    bound: float
    consistent: bool
    iterations: int

    @property
    def message(self) -> str:
        if self.consistent:
            return "ok"
        return "measured rate beats the worst case: the stated m or L is wrong"


def compare_rate(result, method, m: float, L: float, *, tail=0.5, slack=0.01, floor=0.0,
                 label=None) -> RateComparison:
    r"""Compare the fitted rate of a solve with the theoretical bound.

    Parameters
    ----------
    result : SolveResult
        The solve (its ``history`` is fitted).
    method : SplittingMethod
        The method instance that produced it.
    m, L : float
        Strong monotonicity and Lipschitz constants of the contracting operator.
    tail, floor : float
        Passed to :func:`fit_rate`.
    slack : float
        Allowed excess of the measured rate over the bound (fits of short or
        relative-residual histories are noisy).
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
    >>> c.consistent, c.measured <= c.bound
    (True, True)
    >>> compare_rate(res, meth, m=4.0, L=4.0).consistent     # wrong constants are caught
    False
    """
    fit = fit_rate(result.history, tail=tail, floor=floor, model="linear")
    bound = contraction(method, m, L)
    return RateComparison(
        label=label or type(method).__name__,
        step=float(method.step),
        measured=fit.rate,
        r2=fit.r2,
        bound=bound,
        consistent=bool(fit.rate <= bound + slack),
        iterations=int(result.iterations),
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
