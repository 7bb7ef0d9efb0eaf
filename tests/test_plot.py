"""Figures: headless, one line per result, failures shown, files written."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

import opsplit as ops
from opsplit import plot
from opsplit.diagnostics import compare_rate
from opsplit.diagnostics.study import step_study
from opsplit.prox.functions import NonNegative, Zero


@pytest.fixture(scope="module")
def problem():
    m, b = 0.6, 1.0
    M = np.array([[m, b], [-b, m]])
    L = math.hypot(m, b)
    F = ops.LinearMonotone(ops.Dense(M), np.array([-1.0, 0.5]), lipschitz=L,
                           strong_monotonicity=m)
    return ops.Inclusion(F, ops.Subdifferential(NonNegative())), m, L


def test_import_is_light():
    import subprocess

    code = "import opsplit.plot, sys; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_residuals_against_iterations_and_time(problem, tmp_path):
    prob, m, L = problem
    runs = [ops.solve(prob, meth, np.zeros(2), tol=1e-10, maxiter=300)
            for meth in (ops.PeacemanRachford(1 / L), ops.ForwardBackward(m / L**2),
                         ops.ForwardBackward(3.0))]
    fig = plot.residuals(runs, labels=["PR", "FB", "FB big"], residual="relative")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "iteration"
    lines = [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]
    assert len(lines) == 3
    np.testing.assert_allclose(lines[0].get_ydata(), runs[0].history)
    np.testing.assert_allclose(lines[0].get_xdata(), np.arange(1, runs[0].iterations + 1))
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0] == "PR" and "FB big (" in legend[2]  # failed run says why
    fig_t = plot.residuals(runs[:2], labels=["PR", "FB"], against="time", title="t")
    np.testing.assert_allclose(fig_t.axes[0].get_lines()[1].get_xdata(), runs[1].times)
    path = tmp_path / "res.png"
    fig.savefig(path)
    assert path.stat().st_size > 1000
    with pytest.raises(ValueError, match="labels"):
        plot.residuals(runs, labels=["one"])
    with pytest.raises(ValueError, match="against"):
        plot.residuals(runs, against="flops")
    with pytest.raises(ValueError, match="at least one"):
        plot.residuals([])
    with pytest.raises(ValueError, match="residual"):
        plot.residuals(runs, residual="scaled")


def _unconstrained(prob):
    return ops.Inclusion(prob.A, ops.Subdifferential(Zero()))


def test_residual_plot_shows_divergence_tolerance_and_integer_ticks(problem):
    prob, m, L = problem
    good = ops.solve(prob, ops.PeacemanRachford(1 / L), np.zeros(2), tol=1e-10)
    bad = ops.solve(_unconstrained(prob), ops.ForwardBackward(3.0), np.zeros(2), tol=1e-10,
                    maxiter=300)
    assert bad.status is ops.Status.DIVERGED
    fig = plot.residuals([good, bad], ["PR (alpha 1)", "FB (alpha 1)"], tol=1e-10)
    ax = fig.axes[0]
    # a diverged run is drawn with its absolute residual, which grows by the ratio
    # that stopped it, and ends in a cross
    assert ax.get_ylabel() == "absolute fixed-point residual"
    fb = next(ln for ln in ax.get_lines() if ln.get_label().startswith("FB"))
    y = fb.get_ydata()
    np.testing.assert_allclose(y, bad.history_abs)
    assert y[-1] > 1e7 * y.min()
    crosses = [ln for ln in ax.get_lines() if ln.get_marker() == "x"]
    assert len(crosses) == 1 and crosses[0].get_ydata()[0] == y[-1]
    # the tolerance line
    tol_line = next(ln for ln in ax.get_lines() if ln.get_label() == "tol 1e-10")
    assert set(tol_line.get_ydata()) == {1e-10}
    # the shared "(alpha 1)" is said once, as the legend title
    legend = ax.get_legend()
    texts = [t.get_text() for t in legend.get_texts()]
    assert legend.get_title().get_text() == "alpha 1"
    assert texts[0] == "PR" and texts[1] == "FB (diverged)"
    assert not any("alpha" in t for t in texts)
    # integer iteration ticks
    fig.canvas.draw()
    ticks = ax.get_xticks()
    assert np.all(ticks == np.round(ticks))
    relative = plot.residuals([good], ["PR"])
    assert relative.axes[0].get_ylabel() == "relative fixed-point residual"


def test_step_sweep_shows_failures(problem, tmp_path):
    prob, m, L = problem
    study = step_study(prob, np.zeros(2), tol=1e-4, maxiter=2000)
    fig = plot.step_sweep(study, title="sweep")
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert "FB" in labels and "PR" in labels and "FB failed" in labels
    failed = next(line for line in ax.get_lines() if line.get_label() == "FB failed")
    assert list(failed.get_xdata()) == [1.0]  # FB fails only above 2m/L² ≈ 0.88
    assert ax.get_xscale() == "log"
    fig.savefig(tmp_path / "sweep.png")


def test_rates_plot_marks_contradictions(problem):
    prob, m, L = problem
    rows = []
    for meth in (ops.PeacemanRachford(1 / L), ops.ForwardBackward(m / L**2)):
        res = ops.solve(prob, meth, np.zeros(2), tol=1e-10, maxiter=500)
        rows.append(compare_rate(res, meth, m, L))
        rows.append(compare_rate(res, meth, L, L, label="wrong m"))
    fig = plot.rates(rows)
    ax = fig.axes[0]
    red = [ln for ln in ax.get_lines() if ln.get_markeredgecolor() == "red"]
    assert len(red) == sum(not r.consistent for r in rows) >= 1
    assert ax.get_xlim() == (0, 1.05) and ax.get_ylim() == (0, 1.05)
    with pytest.raises(ValueError, match="at least one"):
        plot.rates([])


def test_rates_plot_axes_fit_a_diverged_run(problem):
    prob, m, L = problem
    meth = ops.ForwardBackward(3.0)
    res = ops.solve(_unconstrained(prob), meth, np.zeros(2), tol=1e-10, maxiter=300)
    row = compare_rate(res, meth, m, L)
    assert row.diverged and row.measured > 1 and row.bound > 1
    ax = plot.rates([row]).axes[0]
    x_hi, y_hi = ax.get_xlim()[1], ax.get_ylim()[1]
    assert row.bound < x_hi < 1.1 * max(row.bound, row.measured)
    assert row.measured < y_hi
    black = [ln for ln in ax.get_lines() if ln.get_markeredgecolor() == "black"]
    assert len(black) == 1


def test_draw_into_existing_axes(problem):
    from matplotlib.figure import Figure

    prob, m, L = problem
    res = ops.solve(prob, ops.PeacemanRachford(1 / L), np.zeros(2), tol=1e-8)
    fig = Figure()
    ax1, ax2 = fig.subplots(1, 2)
    assert plot.residuals([res], ax=ax2) is fig
    assert len(ax2.get_lines()) == 1 and len(ax1.get_lines()) == 0


def test_verify_example_runs(tmp_path, capsys):
    """examples/verify_convergence.py (parts 1-3) behaves as it says and writes its figures."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "verify_convergence.py"
    spec = importlib.util.spec_from_file_location("_opsplit_verify_convergence", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--out", str(tmp_path), "--skip-mondeq"]) == 0
    out = capsys.readouterr().out
    assert "UNEXPECTED" not in out and out.count("[ok]") >= 12
    for name in ("verify_residuals.png", "verify_rates.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_verifying_page_examples_run():
    import doctest
    from pathlib import Path

    page = Path(__file__).resolve().parents[1] / "docs" / "verifying.rst"
    result = doctest.testfile(str(page), module_relative=False,
                              optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted >= 15 and result.failed == 0
    # Figures the page shows are committed.
    for name in ("verify_residuals.png", "verify_rates.png", "verify_sweep.png"):
        assert (page.parent / "_static" / name).is_file()


def test_residuals_recorded_at_checks_are_drawn_at_their_iterations(problem):
    prob, m, L = problem
    method = ops.ForwardBackward(m / L**2)
    every = ops.solve(prob, method, np.zeros(2), tol=1e-10, maxiter=300, check_every=7)
    checks = ops.solve(prob, method, np.zeros(2), tol=1e-10, maxiter=300, check_every=7,
                       record="checks")
    assert checks.history.size < every.history.size
    fig = plot.residuals([every, checks], labels=["every", "checks"], residual="relative")
    lines = [ln for ln in fig.axes[0].get_lines() if not ln.get_label().startswith("_")]
    x = np.asarray(lines[1].get_xdata())
    np.testing.assert_array_equal(x, checks.history_iterations)
    assert x[0] == 7 and x[-1] == checks.iterations  # not 1, 2, 3, ...
    # the points lie on the every-iteration curve
    np.testing.assert_allclose(lines[1].get_ydata(), every.history[x - 1], rtol=1e-12)
