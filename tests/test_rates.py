"""Rate fits, theoretical contraction factors, step helpers, measured-vs-theory."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

import opsplit as ops
from opsplit.diagnostics import (
    compare_rate,
    contraction,
    dr_contraction,
    fb_contraction,
    fb_step_limit,
    fit_rate,
    optimal_step,
    pr_contraction,
    rate_table,
    suggest_step,
)
from opsplit.diagnostics.study import step_study
from opsplit.prox.functions import NonNegative, Zero

# -- fits -----------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.3, 0.9, 0.995])
def test_geometric_fit_recovers_rate(rate):
    rng = np.random.default_rng(0)
    k = np.arange(400)
    h = 3.0 * rate**k * np.exp(0.05 * rng.standard_normal(k.size))
    fit = fit_rate(h[h > 1e-300])
    assert fit.kind == "linear"
    assert abs(fit.rate - rate) < 0.01 * (1 - rate) + 1e-3
    assert 0.9 < fit.r2 <= 1.0


@pytest.mark.parametrize("p", [0.5, 1.0, 2.0])
def test_sublinear_fit_recovers_order(p):
    h = 5.0 / np.arange(1, 3001) ** p
    fit = fit_rate(h)
    assert fit.kind == "sublinear"
    assert abs(fit.order - p) < 0.01 and fit.r2 > 0.999
    assert fit.r2_sublinear > fit.r2_linear


def test_fit_uses_the_tail_and_stops_at_the_floor():
    # Slow start (rate 0.99), fast tail (rate 0.5), then a rounding floor.
    h = np.concatenate([0.99 ** np.arange(50), 0.99**50 * 0.5 ** np.arange(1, 31),
                        np.full(20, 1e-16)])
    fit = fit_rate(h, tail=0.3, floor=1e-15)
    assert fit.stop == 80 and math.isclose(fit.rate, 0.5, rel_tol=1e-9)
    with pytest.raises(ValueError, match="at least 3"):
        fit_rate([1.0, 0.5])
    with pytest.raises(ValueError, match="tail"):
        fit_rate(h, tail=0.0)
    with pytest.raises(ValueError, match="model"):
        fit_rate(h, model="cubic")


# -- theoretical factors --------------------------------------------------------------


def _random_monotone(rng, n=6):
    G = rng.standard_normal((n, n)) / math.sqrt(n)
    S = rng.standard_normal((n, n)) / math.sqrt(n)
    M = rng.uniform(0.1, 1.0) * np.eye(n) + G.T @ G + rng.uniform(0, 2) * (S - S.T)
    m = np.linalg.eigvalsh((M + M.T) / 2).min()
    L = np.linalg.norm(M, 2)
    return M, m, L


def test_factors_bound_the_true_lipschitz_constants():
    # Independent reference: exact norms of I - αM and of the Cayley operator.
    rng = np.random.default_rng(1)
    for _ in range(50):
        M, m, L = _random_monotone(rng)
        n = M.shape[0]
        for a in np.exp(rng.uniform(-4, 1, 3)):
            assert np.linalg.norm(np.eye(n) - a * M, 2) <= fb_contraction(m, L, a) + 1e-12
            cayley = 2 * np.linalg.inv(np.eye(n) + a * M) - np.eye(n)
            assert np.linalg.norm(cayley, 2) <= pr_contraction(m, L, a) + 1e-12


def test_factors_are_attained_by_a_multiple_of_the_identity():
    for mu, a in [(2.0, 0.1), (0.5, 3.0)]:
        assert math.isclose(fb_contraction(mu, mu, a), abs(1 - a * mu))
        assert math.isclose(pr_contraction(mu, mu, a), abs(1 - a * mu) / (1 + a * mu))


def test_dr_factor_and_relaxation():
    c = pr_contraction(1.0, 3.0, 0.4)
    assert math.isclose(dr_contraction(1.0, 3.0, 0.4), (1 + c) / 2)
    assert math.isclose(dr_contraction(1.0, 3.0, 0.4, relaxation=2.0), c)
    assert math.isclose(dr_contraction(1.0, 3.0, 0.4, relaxation=0.5), 0.75 + 0.25 * c)
    with pytest.raises(ValueError, match="relaxation"):
        dr_contraction(1.0, 3.0, 0.4, relaxation=2.5)


@pytest.mark.parametrize("m,L", [(1.0, 1.0), (0.1, 3.0), (0.01, 50.0)])
def test_optimal_steps_minimize_the_bounds(m, L):
    for name, fn in [("fb", fb_contraction), ("pr", pr_contraction), ("dr", dr_contraction)]:
        ref = minimize_scalar(lambda la, fn=fn: fn(m, L, math.exp(la)), bounds=(-15, 5),
                              method="bounded", options={"xatol": 1e-10})
        a = optimal_step(name, m, L)
        assert fn(m, L, a) <= ref.fun + 1e-9
        assert math.isclose(a, math.exp(ref.x), rel_tol=1e-3)
    assert math.isclose(fb_contraction(m, L, m / L**2), math.sqrt(1 - (m / L) ** 2))
    assert math.isclose(pr_contraction(m, L, 1 / L), math.sqrt(1 - m / L))
    assert suggest_step(m, L, ops.ForwardBackward) == m / L**2
    assert suggest_step(m, L) == 1.0 / L


def test_fb_limit_is_sharp():
    # A = m I + skew with |λ| = L exactly (normal): FB diverges just above 2m/L².
    m, b = 0.5, 2.0
    M = np.array([[m, b], [-b, m]])
    L = math.hypot(m, b)
    assert fb_contraction(m, L, fb_step_limit(m, L)) == pytest.approx(1.0)
    prob = ops.Inclusion(ops.LinearMonotone(ops.Dense(M), np.array([1.0, -1.0])),
                         ops.Subdifferential(Zero()))
    below = ops.solve(prob, ops.ForwardBackward(0.9 * fb_step_limit(m, L)), np.zeros(2),
                      tol=1e-8, maxiter=5000)
    above = ops.solve(prob, ops.ForwardBackward(1.1 * fb_step_limit(m, L)), np.zeros(2),
                      tol=1e-8, maxiter=5000)
    assert below.success and not above.success
    assert above.status in (ops.Status.DIVERGED, ops.Status.NONFINITE)


def test_constants_validated():
    with pytest.raises(ValueError, match="exceeds"):
        fb_contraction(2.0, 1.0, 0.1)
    with pytest.raises(ValueError, match="step"):
        pr_contraction(1.0, 2.0, 0.0)
    with pytest.raises(ValueError, match="method"):
        optimal_step("newton", 1.0, 2.0)
    with pytest.raises(TypeError, match="method"):
        contraction(3, 1.0, 2.0, 0.1)
    with pytest.raises(ValueError, match="step is required"):
        contraction("pr", 1.0, 2.0)


# -- measured versus theory -----------------------------------------------------------


def test_measured_rates_never_beat_the_bound():
    rng = np.random.default_rng(2)
    rows = []
    for _ in range(10):
        M, m, L = _random_monotone(rng)
        c = rng.standard_normal((3, M.shape[0]))
        prob = ops.Inclusion(ops.LinearMonotone(ops.Dense(M), c),
                             ops.Subdifferential(NonNegative()))
        for meth in (ops.ForwardBackward(optimal_step("fb", m, L)),
                     ops.PeacemanRachford(1 / L), ops.DouglasRachford(0.5 / L),
                     ops.DouglasRachford(2 / L, relaxation=1.5)):
            res = ops.solve(prob, meth, np.zeros(c.shape), tol=1e-10, maxiter=3000)
            cmp = compare_rate(res, meth, m, L)
            assert cmp.consistent, cmp
            assert cmp.measured <= cmp.bound + 1e-3  # not only within the slack
            rows.append(cmp)
    text = rate_table(rows[:4])
    assert text.splitlines()[0].split()[:3] == ["method", "step", "iters"]
    assert "ForwardBackward" in text and "PeacemanRachford" in text


def test_wrong_constants_are_flagged():
    M = np.array([[0.1, 1.0], [-1.0, 0.1]])
    prob = ops.Inclusion(ops.LinearMonotone(ops.Dense(M), np.array([1.0, 2.0])),
                         ops.Subdifferential(Zero()))
    meth = ops.PeacemanRachford(1.0)
    res = ops.solve(prob, meth, np.zeros(2), tol=1e-10, maxiter=5000)
    L = float(np.linalg.norm(M, 2))
    good, bad = compare_rate(res, meth, 0.1, L), compare_rate(res, meth, 0.9, L)
    assert good.consistent and good.message == "ok"
    assert not bad.consistent and "m or L is wrong" in bad.message
    assert "m or L is wrong" in rate_table([bad])


def test_diverged_run_is_never_ok():
    """Forward-backward at 20x the safe step on a dense problem: the relative
    residual levels off near 1 (the old fit found rate ~1, verdict "ok"), the
    absolute one grows geometrically."""
    rng = np.random.default_rng(0)
    n = 30
    G = rng.standard_normal((n, n)) / math.sqrt(n)
    S = rng.standard_normal((n, n)) / math.sqrt(n)
    M = 0.5 * np.eye(n) + G.T @ G + S - S.T
    m, L = float(np.linalg.eigvalsh((M + M.T) / 2)[0]), float(np.linalg.norm(M, 2))
    prob = ops.Inclusion(ops.LinearMonotone(ops.Dense(M), rng.standard_normal(n)),
                         ops.Subdifferential(Zero()))
    meth = ops.ForwardBackward(20 * fb_step_limit(m, L))
    res = ops.solve(prob, meth, np.zeros(n), maxiter=5000)
    assert res.status is ops.Status.DIVERGED
    cmp = compare_rate(res, meth, m, L)
    # the fitted rate is that of the absolute residual: the spectral radius of I - αM
    rho = float(np.max(np.abs(np.linalg.eigvals(np.eye(n) - meth.step * M))))
    assert cmp.measured == pytest.approx(rho, rel=0.05) and cmp.measured > 1.5
    assert cmp.diverged and cmp.message != "ok" and "diverged" in cmp.message
    assert "ok" not in rate_table([cmp]).splitlines()[1].split()
    # a growing history is flagged even without the status
    growing = ops.SolveResult(x=None, status=ops.Status.MAX_ITER, message="", iterations=20,
                              history=np.full(20, 0.9), history_abs=1.3 ** np.arange(20),
                              times=np.zeros(20), residuals=np.zeros(()), wall_time=0.0)
    assert compare_rate(growing, meth, m, L).diverged


def test_theory_comes_from_the_methods():
    """contraction/optimal_step/step limits are each method's own, for every
    registered method (a new method needs no change here)."""
    from opsplit.splitting import METHODS

    m, L = 0.3, 2.0
    for name, cls in METHODS.items():
        meth = cls(step=0.4)
        assert contraction(meth, m, L) == meth.contraction(m, L)
        assert contraction(name, m, L, step=0.4) == meth.contraction(m, L)
        assert optimal_step(cls, m, L) == cls().optimal_step(m, L)
        limit = meth.step_limit(m, L)
        if meth.contraction(m, L) is None and cls(step=1e-3).contraction(m, L) is None:
            continue  # no contraction bound (Davis-Yin, Krasnoselskii-Mann)
        if math.isfinite(limit):
            assert cls(step=0.99 * limit).contraction(m, L) < 1
            above = cls(step=1.01 * limit).contraction(m, L)
            assert above is None or above > 1  # None: no bound above the limit (Tseng)
        else:
            for a in (1e-3, 1.0, 1e3):
                assert cls(step=a).contraction(m, L) < 1
    assert fb_step_limit(m, L) == pytest.approx(2 * m / L**2)


# -- step study -----------------------------------------------------------------------


def test_step_study_records_failures():
    m, b = 0.6, 1.0
    M = np.array([[m, b], [-b, m]])
    L = math.hypot(m, b)
    F = ops.LinearMonotone(ops.Dense(M), np.array([1.0, -1.0]), lipschitz=L,
                           strong_monotonicity=m)
    study = step_study(ops.Inclusion(F, ops.Subdifferential(Zero())), np.zeros(2),
                       tol=1e-4, maxiter=2000)
    fb, pr = study.labels.index("FB"), study.labels.index("PR")
    limit = fb_step_limit(m, L)  # ≈ 0.88
    for j, a in enumerate(study.steps):
        assert study.converged[fb, j] == (a < limit), a
    assert study.converged[pr].all()
    assert study.failure_threshold("FB") == 1.0
    assert study.failure_threshold("PR") is None
    (_, n_pr), (_, n_fb) = study.best("PR"), study.best("FB")
    assert n_pr < n_fb
    table = study.table()
    assert "div" in table and "2m/L²" in table
    assert study.bound("FB", 1.0) > 1 and study.bound("PR", 1.0) < 1
    assert set(study.results) == {(lab, a) for lab in study.labels for a in study.steps}
    with pytest.raises(ValueError, match="methods"):
        step_study(ops.Inclusion(F, ops.Subdifferential(Zero())), np.zeros(2), methods=["X"])


def test_step_study_labels_come_from_the_registry():
    from opsplit.diagnostics.study import LABELS
    from opsplit.splitting import METHODS

    assert LABELS == tuple(k.upper() for k in METHODS)
    M = np.array([[1.0, 2.0], [-2.0, 1.0]])  # no constants declared: computed exactly
    prob = ops.Inclusion(ops.LinearMonotone(ops.Dense(M), np.array([1.0, -1.0])),
                         ops.Subdifferential(Zero()))
    study = step_study(prob, np.zeros(2), methods=["pr", "Fb"], steps=(0.5,))
    assert study.labels == ("PR", "FB")
    assert study.m == pytest.approx(1.0) and study.L == pytest.approx(math.sqrt(5.0))
    assert study.bound("PR", 0.5) == ops.PeacemanRachford(0.5).contraction(1.0, math.sqrt(5.0))
    assert "FB bound contracts for α < 2m/L² = 0.4" in study.table()


def test_rate_of_a_history_recorded_at_checks_is_per_iteration():
    """A solve that recorded only its checks (every 5th iteration) has the same
    rate per iteration as one that recorded every iteration, not its fifth power."""
    rng = np.random.default_rng(4)
    M, m, L = _random_monotone(rng)
    c = rng.standard_normal((3, M.shape[0]))
    prob = ops.Inclusion(ops.LinearMonotone(ops.Dense(M), c), ops.Subdifferential(NonNegative()))
    meth = ops.PeacemanRachford(1 / L)
    every = ops.solve(prob, meth, np.zeros(c.shape), tol=1e-10, maxiter=3000)
    checks = ops.solve(prob, meth, np.zeros(c.shape), tol=1e-10, maxiter=3000, check_every=5,
                       record="checks")
    assert checks.history.size <= every.history.size / 4
    full, sparse = fit_rate(every), fit_rate(checks)
    assert abs(sparse.rate - full.rate) < 0.02, (sparse, full)
    assert compare_rate(checks, meth, m, L).consistent
    # the same values read as consecutive iterations would give the fifth power
    assert fit_rate(checks.history_abs).rate < full.rate ** 4
