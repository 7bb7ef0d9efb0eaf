"""Figures for convergence studies: residual curves, step-size sweeps, rates.

Every function returns a :class:`matplotlib.figure.Figure` built without
``pyplot``, so it works headless (no display, no global backend switch)
and ``fig.savefig(...)`` writes PNG or PDF directly.  Pass ``ax=`` to draw
into an existing axes instead (its figure is returned).  matplotlib is
imported on first use only, so ``import opsplit`` stays light.
"""

from __future__ import annotations

import numpy as np

__all__ = ["residuals", "step_sweep", "rates"]


def _axes(ax, figsize):
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def residuals(results, labels=None, *, against="iterations", ax=None, title=None,
              figsize=(6.0, 4.0)):
    """Residual histories of several solves on one semilog axis.

    Parameters
    ----------
    results : sequence of SolveResult
    labels : sequence of str, optional
        One legend entry per result (default ``"run 0"``, ``"run 1"``, ...).
    against : {"iterations", "time"}
        The horizontal axis: iteration number, or wall time in seconds.
    ax : matplotlib.axes.Axes, optional
    title : str, optional
    figsize : tuple
        Size of a new figure, in inches.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> F = ops.LinearMonotone(ops.Dense(np.eye(2)), np.array([-1.0, 1.0]))
    >>> prob = ops.Inclusion(F, ops.Subdifferential(ops.prox.NonNegative()))
    >>> runs = [ops.solve(prob, meth, np.zeros(2), tol=1e-8)
    ...         for meth in (ops.PeacemanRachford(0.5), ops.ForwardBackward(0.5))]
    >>> fig = ops.plot.residuals(runs, labels=["PR", "FB"])
    >>> fig.axes[0].get_yscale(), len(fig.axes[0].get_lines())
    ('log', 2)
    """
    results = list(results)
    if against not in ("iterations", "time"):
        raise ValueError(f"against must be 'iterations' or 'time', got {against!r}")
    if labels is None:
        labels = [f"run {i}" for i in range(len(results))]
    labels = list(labels)
    if len(labels) != len(results):
        raise ValueError(f"labels has {len(labels)} entries for {len(results)} results")
    fig, ax = _axes(ax, figsize)
    for res, label in zip(results, labels):
        h = np.asarray(res.history, dtype=float)
        x = np.arange(1, h.size + 1) if against == "iterations" else np.asarray(res.times)
        ok = np.isfinite(h) & (h > 0)
        status = "" if res.success else f" ({res.status.value})"
        ax.semilogy(x[ok], h[ok], label=f"{label}{status}")
    ax.set_xlabel("iteration" if against == "iterations" else "time [s]")
    ax.set_ylabel("fixed-point residual")
    ax.grid(True, which="both", alpha=0.3)
    if results:
        ax.legend()
    if title:
        ax.set_title(title)
    return fig


def step_sweep(study, *, ax=None, title=None, figsize=(6.0, 4.0)):
    """Iterations to tolerance against the step size, one line per method.

    Failed runs (divergence, no convergence within ``maxiter``, non-finite
    iterates) are drawn as crosses on a "failed" line above ``maxiter`` —
    shown, not hidden.  When the study knows ``m`` and ``L``, the
    forward–backward limit :math:`2m/L^2` is drawn as a vertical line.

    Parameters
    ----------
    study : StepStudy
        From :func:`opsplit.diagnostics.study.step_study`.
    ax, title, figsize
        As in :func:`residuals`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from .diagnostics.rates import fb_step_limit

    fig, ax = _axes(ax, figsize)
    steps = np.asarray(study.steps, dtype=float)
    fail_level = study.maxiter * 1.6
    for i, label in enumerate(study.labels):
        ok = study.converged[i]
        (line,) = ax.plot(steps[ok], study.iterations[i][ok], "o-", label=label)
        if (~ok).any():
            ax.plot(steps[~ok], np.full((~ok).sum(), fail_level), "x", ms=9, mew=2,
                    color=line.get_color(), label=f"{label} failed")
    ax.axhline(fail_level, color="0.6", lw=0.8, ls=":")
    ax.text(steps.min(), fail_level * 1.08, "failed (diverged / not converged)", fontsize=8,
            color="0.4")
    if study.m is not None and study.L is not None and study.m > 0:
        limit = fb_step_limit(study.m, study.L)
        ax.axvline(limit, color="0.3", ls="--", lw=1)
        ax.text(limit, study.maxiter, " 2m/L² ", fontsize=8, color="0.3", rotation=90,
                va="top", ha="right")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("step size α")
    ax.set_ylabel(f"iterations to residual ≤ {study.tol:g}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return fig


def rates(comparisons, *, ax=None, title=None, figsize=(5.0, 4.5)):
    """Measured rates against their theoretical bounds.

    Each :class:`~opsplit.diagnostics.RateComparison` is a point
    (bound, measured); points on or below the diagonal are consistent with
    theory, points above it (drawn red) contradict the stated constants.

    Parameters
    ----------
    comparisons : sequence of RateComparison
    ax, title, figsize
        As in :func:`residuals`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    comparisons = list(comparisons)
    fig, ax = _axes(ax, figsize)
    ax.plot([0, 1], [0, 1], color="0.5", lw=1, ls="--", label="measured = bound")
    groups = {}
    for c in comparisons:
        groups.setdefault(c.label, []).append(c)
    for label, rows in groups.items():
        b = [c.bound for c in rows]
        r = [c.measured for c in rows]
        ax.plot(b, r, "o", label=label)
        for c in rows:
            if not c.consistent:
                ax.plot([c.bound], [c.measured], "o", ms=12, mfc="none", mec="red", mew=2)
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("theoretical contraction factor")
    ax.set_ylabel("measured rate")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return fig
