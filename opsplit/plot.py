"""Figures for convergence studies: residual curves, step-size sweeps, rates.

Every function returns a :class:`matplotlib.figure.Figure` built without
``pyplot``, so it works headless (no display, no global backend switch)
and ``fig.savefig(...)`` writes PNG or PDF directly.  Pass ``ax=`` to draw
into an existing axes instead (its figure is returned).  matplotlib is
imported on first use only, so ``import opsplit`` stays light.
"""

from __future__ import annotations

import math

import numpy as np

from ._result import Status
from .splitting import method_from_name

__all__ = ["residuals", "step_sweep", "rates"]


def _axes(ax, figsize):
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _common_suffix(labels):
    """The parenthesized suffix every label shares (``" (alpha 1)"``), or ``""``."""
    if len(labels) < 2 or not all(lab.endswith(")") and " (" in lab for lab in labels):
        return ""
    suffixes = {lab[lab.rindex(" ("):] for lab in labels}
    return suffixes.pop() if len(suffixes) == 1 else ""


def residuals(results, labels=None, *, against="iterations", tol=None, residual="auto",
              ax=None, title=None, figsize=(6.0, 4.0)):
    """Residual histories of several solves on one semilog axis.

    A run that did not converge says why in its legend entry; a diverged or
    non-finite run ends in a cross.  Each residual is drawn at its iteration
    (``history_iterations``: a solve with ``record="checks"`` has points at
    its checks only, joined by lines).  A suffix that every label shares (such
    as ``" (alpha 1)"``) is shown once, as the legend's title.

    Parameters
    ----------
    results : sequence of SolveResult
        At least one.
    labels : sequence of str, optional
        One legend entry per result (default ``"run 0"``, ``"run 1"``, ...).
    against : {"iterations", "time"}
        The horizontal axis: iteration number (integer ticks), or wall time
        in seconds.
    tol : float, optional
        Draw the stopping tolerance as a horizontal line.
    residual : {"auto", "relative", "absolute"}
        Which history to draw: ``history`` (relative, as the solve stopped
        on it) or ``history_abs``.  ``"auto"`` draws the absolute residual
        when a run diverged (its relative residual levels off near 1 while
        the iterates blow up), else the relative one.
    ax : matplotlib.axes.Axes, optional
        Draw into this axes instead of a new figure.
    title : str, optional
        Title of the axes.
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
    >>> fig = ops.plot.residuals(runs, labels=["PR", "FB"], tol=1e-8)
    >>> fig.axes[0].get_yscale(), len(fig.axes[0].get_lines())   # two runs and tol
    ('log', 3)
    """
    results = list(results)
    if not results:
        raise ValueError("results must hold at least one SolveResult")
    if against not in ("iterations", "time"):
        raise ValueError(f"against must be 'iterations' or 'time', got {against!r}")
    if residual not in ("auto", "relative", "absolute"):
        raise ValueError(f"residual must be 'auto', 'relative' or 'absolute', got {residual!r}")
    if tol is not None and not (isinstance(tol, (int, float)) and tol > 0):
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    if labels is None:
        labels = [f"run {i}" for i in range(len(results))]
    labels = [str(lab) for lab in labels]
    if len(labels) != len(results):
        raise ValueError(f"labels has {len(labels)} entries for {len(results)} results")
    if residual == "auto":
        diverged = any(r.status is Status.DIVERGED for r in results)
        residual = "absolute" if diverged else "relative"
    if residual == "absolute" and any(r.history_abs is None for r in results):
        raise ValueError("residual='absolute' needs results with history_abs")
    suffix = _common_suffix(labels)
    fig, ax = _axes(ax, figsize)
    for res, label in zip(results, labels):
        h = np.asarray(res.history if residual == "relative" else res.history_abs, dtype=float)
        x = np.asarray(res.history_iterations if against == "iterations" else res.times)
        ok = np.isfinite(h) & (h > 0)
        status = "" if res.success else f" ({res.status.value})"
        name = label[: len(label) - len(suffix)] if suffix else label
        (line,) = ax.semilogy(x[ok], h[ok], label=f"{name}{status}")
        if res.status in (Status.DIVERGED, Status.NONFINITE) and ok.any():
            last = np.flatnonzero(ok)[-1]
            ax.plot([x[last]], [h[last]], "x", ms=9, mew=2, color=line.get_color())
    if tol is not None:
        ax.axhline(tol, color="0.4", ls="--", lw=1, label=f"tol {tol:g}")
    if against == "iterations":
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("iteration" if against == "iterations" else "time [s]")
    ax.set_ylabel(f"{residual} fixed-point residual")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(title=suffix.strip()[1:-1] if suffix else None)
    if title:
        ax.set_title(title)
    return fig


def step_sweep(study, *, ax=None, title=None, figsize=(6.0, 4.0)):
    """Iterations to tolerance against the step size, one line per method.

    Failed runs (divergence, no convergence within ``maxiter``, non-finite
    iterates) are drawn as crosses on a "failed" line above ``maxiter`` —
    shown, not hidden.  When the study knows ``m`` and ``L``, the
    step limits of the methods that have one (forward–backward's
    :math:`2m/L^2`) are drawn as vertical lines.  The step axis has base-2
    ticks; the iteration axis is logarithmic.

    Parameters
    ----------
    study : StepStudy
        From :func:`opsplit.diagnostics.study.step_study`.
    ax : matplotlib.axes.Axes, optional
        Draw into this axes instead of a new figure.
    title : str, optional
        Title of the axes.
    figsize : tuple
        Size of a new figure, in inches (ignored with ``ax``).

    Returns
    -------
    matplotlib.figure.Figure
    """
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
        for label in study.labels:
            method = method_from_name(label)
            limit = method.step_limit(study.m, study.L)
            if not math.isfinite(limit):
                continue
            ax.axvline(limit, color="0.3", ls="--", lw=1)
            ax.text(limit, study.maxiter, f" {label}: {method.step_limit_formula} ",
                    fontsize=8, color="0.3", rotation=90, va="top", ha="right")
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
    theory, points above it (circled red) contradict the stated constants,
    and diverged runs (circled black) lie right of 1 on the measured axis.
    The axes span the data (at least ``[0, 1]``), with the line rate = 1.

    Parameters
    ----------
    comparisons : sequence of RateComparison
        At least one.
    ax : matplotlib.axes.Axes, optional
        Draw into this axes instead of a new figure.
    title : str, optional
        Title of the axes.
    figsize : tuple
        Size of a new figure, in inches (ignored with ``ax``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    comparisons = list(comparisons)
    if not comparisons:
        raise ValueError("comparisons must hold at least one RateComparison")
    values = [v for c in comparisons for v in (c.bound, c.measured) if math.isfinite(v)]
    top = max(1.0, *values) * 1.05
    fig, ax = _axes(ax, figsize)
    ax.plot([0, top], [0, top], color="0.5", lw=1, ls="--", label="measured = bound")
    if top > 1.05:
        ax.axhline(1.0, color="0.7", lw=0.8, ls=":")
    groups = {}
    for c in comparisons:
        groups.setdefault(c.label, []).append(c)
    for label, rows in groups.items():
        b = [c.bound for c in rows]
        r = [c.measured for c in rows]
        ax.plot(b, r, "o", label=label)
        for c in rows:
            if c.diverged:
                ax.plot([c.bound], [c.measured], "o", ms=12, mfc="none", mec="black", mew=2)
            elif not c.consistent:
                ax.plot([c.bound], [c.measured], "o", ms=12, mfc="none", mec="red", mew=2)
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("theoretical contraction factor")
    ax.set_ylabel("measured rate")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return fig
