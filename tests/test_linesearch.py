"""Step rules for forward–backward and FISTA without L: backtracking and adaPGM."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import to_numpy
from test_fista import (
    LeastSquaresFn,
    kkt_residual,
    lasso_data,
    lasso_objective,
    lasso_problem,
    sklearn_lasso,
)

import opsplit as ops
from opsplit.splitting import method_config, method_from_config
from opsplit.splitting.linesearch import MAX_HALVINGS


def unknown_L(problem):
    """The same problem with A's Lipschitz constant hidden."""
    f = problem.A
    return ops.Inclusion(ops.LinearMonotone(f.op, f.offset), problem.B)


def steps_taken(problem, method, x0, **kwargs):
    steps = []
    res = ops.solve(problem, method, x0, callback=lambda k, r, s: steps.append(s.aux.step),
                    **kwargs)
    return res, np.array(steps)


# -- backtracking ----------------------------------------------------------------------


@pytest.mark.parametrize("cls", [ops.ForwardBackward, ops.FISTA])
def test_backtracking_from_a_too_long_step_finds_the_lasso_solution(cls):
    A, b, lam = lasso_data()
    problem, L = lasso_problem(A, b, lam)
    problem = unknown_L(problem)
    res, steps = steps_taken(problem, cls(step=10.0, step_rule="backtracking"), np.zeros(80),
                             tol=1e-12, maxiter=100_000)
    assert res.success, res.message
    assert np.abs(res.x - sklearn_lasso(A, b, lam)).max() < 1e-8
    assert kkt_residual(A, b, lam, res.x) < 1e-10
    # The gradient test accepts every α ≤ 1/(2L): the step found lies in
    # [1/(4L), 1/L] (10 is 54·L), and it only shrinks.
    assert 1 / (4 * L) <= steps[-1] <= 1 / L
    assert (np.diff(steps) <= 0).all()
    assert steps[0] < 10.0  # the first iteration already backtracked


@pytest.mark.parametrize("cls", [ops.ForwardBackward, ops.FISTA])
def test_backtracking_with_function_values_keeps_steps_up_to_one_over_L(cls):
    A, b, lam = lasso_data()
    _, L = lasso_problem(A, b, lam)
    f = ops.Subdifferential(LeastSquaresFn(A, b))
    problem = ops.Inclusion(f, ops.Subdifferential(ops.prox.L1(lam)))
    res, steps = steps_taken(problem, cls(step=10.0, step_rule="backtracking"), np.zeros(80),
                             tol=1e-12, maxiter=100_000)
    assert res.success, res.message
    assert np.abs(res.x - sklearn_lasso(A, b, lam)).max() < 1e-8
    # Sufficient decrease holds for every α ≤ 1/L: halving stops above 1/(2L).
    assert 1 / (2 * L) < steps[-1]
    assert (np.diff(steps) <= 0).all()


def test_backtracking_beats_a_fixed_short_step_and_matches_the_fixed_answer():
    A, b, lam = lasso_data()
    problem, L = lasso_problem(A, b, lam)
    fixed = ops.solve(problem, ops.FISTA(step=1.0 / L), np.zeros(80), tol=1e-12, maxiter=50_000)
    search = ops.solve(unknown_L(problem), ops.FISTA(step=1e3, step_rule="backtracking"),
                       np.zeros(80), tol=1e-12, maxiter=50_000)
    assert search.success and fixed.success
    np.testing.assert_allclose(search.x, fixed.x, atol=1e-9)


def test_batched_backtracking_shares_the_smallest_step_and_solves_every_sample():
    A, _, lam = lasso_data()
    rng = np.random.default_rng(2)
    B = rng.standard_normal((3, 40)) * np.array([[1.0], [5.0], [0.2]])
    f = ops.LinearMonotone(ops.Dense(A.T @ A), -B @ A)
    problem = ops.Inclusion(f, ops.Subdifferential(ops.prox.L1(lam)))
    res = ops.solve(problem, ops.ForwardBackward(step=10.0, step_rule="backtracking"),
                    np.zeros((3, 80)), tol=1e-12, maxiter=100_000)
    assert res.success, res.message
    assert np.ndim(res.state.aux.step) == 0  # one step for the batch
    for i in range(3):
        ref = sklearn_lasso(A, B[i], lam)
        assert np.abs(res.x[i] - ref).max() < 1e-8 * max(1.0, np.abs(ref).max())


def test_backtracking_is_bounded_and_a_failed_search_is_not_a_convergence():
    calls = []

    def grad(x):
        calls.append(1)
        return np.full_like(x, np.nan) if len(calls) > 1 else x

    problem = ops.Inclusion(ops.Gradient(grad), ops.Subdifferential(ops.prox.Zero()))
    res = ops.solve(problem, ops.ForwardBackward(step=1.0, step_rule="backtracking"),
                    np.ones(3), maxiter=1)
    # One evaluation in init, then one per trial: at most MAX_HALVINGS halvings.
    assert len(calls) == 1 + MAX_HALVINGS + 1
    assert res.state.aux.step == pytest.approx(2.0**-MAX_HALVINGS)
    # The step 2⁻³⁰ moved x by ~1e-9: without a valid step that must not
    # read as convergence.
    assert res.status is ops.Status.NONFINITE


def test_backtracking_on_array_api_backends_keeps_the_dtype(backend, dtype):
    A, b, lam = lasso_data(20, 30, seed=4)
    problem, _ = lasso_problem(A, b, lam, backend.xp, dtype, backend.device)
    x0 = backend.asarray(np.zeros(30), dtype)
    for method in (ops.ForwardBackward(step=10.0, step_rule="backtracking"),
                   ops.FISTA(step=10.0, step_rule="backtracking"),
                   ops.ForwardBackward(step=10.0, step_rule="adaptive")):
        res = ops.solve(unknown_L(problem), method, x0,
                        tol=1e-5 if dtype == "float32" else 1e-12, maxiter=20_000)
        assert res.success, (method, res.message)
        assert res.x.dtype == backend.dtype(dtype)
        ref = sklearn_lasso(A, b, lam)
        x = to_numpy(res.x).astype(np.float64)
        if dtype == "float32":  # the objective to float32's accuracy
            F, F_ref = lasso_objective(A, b, lam, x), lasso_objective(A, b, lam, ref)
            assert F - F_ref <= 1e-5 * F_ref
        else:
            assert np.abs(x - ref).max() < 1e-8


# -- adaptive (adaPGM) -----------------------------------------------------------------


@pytest.mark.parametrize("step", [1e-4, 1.0, 10.0])
def test_adaptive_forward_backward_solves_lasso_without_L(step):
    A, b, lam = lasso_data()
    problem, L = lasso_problem(A, b, lam)
    res, steps = steps_taken(unknown_L(problem),
                             ops.ForwardBackward(step=step, step_rule="adaptive"),
                             np.zeros(80), tol=1e-12, maxiter=20_000)
    assert res.success, res.message
    assert np.abs(res.x - sklearn_lasso(A, b, lam)).max() < 1e-8
    assert lasso_objective(A, b, lam, res.x) <= lasso_objective(
        A, b, lam, sklearn_lasso(A, b, lam)) + 1e-12
    # The step adapts to the local curvature whatever it started from: it grows
    # from 1e-4, and it is brought down from 10; it grows by at most
    # √(1 + α_k/α_{k-1}) per iteration (√2 at first).
    assert steps[-1] > 0.1 / L
    ratio = steps[1:] / steps[:-1]
    assert ratio[0] <= np.sqrt(2) * (1 + 1e-12)
    assert (ratio[1:] <= np.sqrt(1 + ratio[:-1]) * (1 + 1e-12)).all()


def logistic_data(m=120, n=30, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, n))
    w = np.where(rng.random(n) < 0.3, rng.standard_normal(n), 0.0)
    y = np.where(X @ w + 0.5 * rng.standard_normal(m) > 0, 1.0, -1.0)
    return X, y


def logistic_gradient(X, y):
    """∇ Σ log(1 + exp(−yᵢ xᵢᵀw)) (the loss scikit-learn uses with C = 1)."""
    def grad(w):
        margin = y * (X @ w)
        return -X.T @ (y * np.exp(-np.logaddexp(0.0, margin)))
    return grad


def logistic_objective(X, y, lam, w):
    return np.logaddexp(0.0, -y * (X @ w)).sum() + lam * np.abs(w).sum()


@pytest.mark.parametrize("step_rule", ["adaptive", "backtracking"])
def test_l1_logistic_regression_matches_scikit_learn_without_L(step_rule):
    linear_model = pytest.importorskip("sklearn.linear_model")
    X, y = logistic_data()
    lam = 2.0
    problem = ops.Inclusion(ops.Gradient(logistic_gradient(X, y)),
                            ops.Subdifferential(ops.prox.L1(lam)))
    res = ops.solve(problem, ops.ForwardBackward(step=1.0, step_rule=step_rule), np.zeros(30),
                    tol=1e-12, maxiter=50_000)
    assert res.success, res.message
    # scikit-learn minimizes ‖w‖₁ + C Σ loss: C = 1/λ is the same problem.
    ref = linear_model.LogisticRegression(
        l1_ratio=1.0, C=1.0 / lam, solver="liblinear", fit_intercept=False, tol=1e-12,
        max_iter=100_000).fit(X, y).coef_.ravel()
    assert np.abs(res.x - ref).max() < 1e-5
    assert logistic_objective(X, y, lam, res.x) <= logistic_objective(X, y, lam, ref) + 1e-9
    # Optimality: 0 ∈ ∇f(w) + λ ∂‖w‖₁ to rounding.
    v = res.x - logistic_gradient(X, y)(res.x)
    assert np.linalg.norm(res.x - np.sign(v) * np.maximum(np.abs(v) - lam, 0)) < 1e-9


def test_adaptive_needs_far_fewer_iterations_than_a_safe_fixed_step_on_logistic():
    X, y = logistic_data()
    problem = ops.Inclusion(ops.Gradient(logistic_gradient(X, y)),
                            ops.Subdifferential(ops.prox.L1(2.0)))
    L = 0.25 * np.linalg.norm(X, 2) ** 2  # the global bound a fixed step must respect
    fixed = ops.solve(problem, ops.ForwardBackward(step=1.0 / L), np.zeros(30), tol=1e-10,
                      maxiter=100_000)
    adaptive = ops.solve(problem, ops.ForwardBackward(step=1.0 / L, step_rule="adaptive"),
                         np.zeros(30), tol=1e-10, maxiter=100_000)
    assert fixed.success and adaptive.success
    assert adaptive.iterations < 0.5 * fixed.iterations
    np.testing.assert_allclose(adaptive.x, fixed.x, atol=1e-7)


# -- the configuration and the theory --------------------------------------------------


def test_old_forward_backward_configs_still_load():
    assert method_from_config({"name": "fb", "step": 0.5}) == ops.ForwardBackward(step=0.5)
    for rule in ("fixed", "backtracking", "adaptive"):
        method = ops.ForwardBackward(step=0.5, step_rule=rule)
        assert method_config(method) == {"name": "fb", "step": 0.5, "step_rule": rule}
        assert method_from_config(method_config(method)) == method
    # Other fields still may not be absent.
    with pytest.raises(ValueError, match=r"missing \['relaxation'\]"):
        method_from_config({"name": "dr", "step": 0.5})
    with pytest.raises(ValueError, match=r"missing \['step'\]"):
        method_from_config({"name": "fb", "step_rule": "fixed"})


@pytest.mark.parametrize(("rule", "error"), [("armijo", ValueError), (None, TypeError)])
def test_bad_step_rule_is_named(rule, error):
    with pytest.raises(error, match="step_rule"):
        ops.ForwardBackward(step=1.0, step_rule=rule)


def test_varying_steps_offer_no_fixed_step_theory():
    method = ops.ForwardBackward(step=0.1, step_rule="adaptive")
    assert method.contraction(0.5, 1.0) is None
    assert ops.ForwardBackward(step=0.1).contraction(0.5, 1.0) < 1
    assert method.error_factor(0.5, 1.0) is None
    assert method.fixed_point is False and ops.ForwardBackward(step=0.1).fixed_point is True


@pytest.mark.parametrize("method", [ops.ForwardBackward(step=5.0, step_rule="adaptive"),
                                    ops.ForwardBackward(step=5.0, step_rule="backtracking"),
                                    ops.FISTA(step=5.0, step_rule="backtracking"),
                                    ops.FISTA(step=1.0)])
def test_computed_error_bound_uses_the_step_taken(method):
    from test_fista import strongly_convex_problem

    problem, H, c = strongly_convex_problem(n=30, cond=1e2)
    f = ops.LinearMonotone(problem.A.op, problem.A.offset, strong_monotonicity=1e-2)
    problem = ops.Inclusion(f, problem.B)
    exact = ops.solve(problem, ops.FISTA(step=1.0), np.zeros(30), tol=1e-14, maxiter=100_000)
    res = ops.solve(problem, method, np.zeros(30), tol=1e-6, maxiter=100_000)
    assert res.success and exact.success
    error = np.linalg.norm(res.x - exact.x)
    bound = float(res.error_bound)
    # ‖g‖/m with g ∈ (A + B)(x⁺) computed at the step taken: a true bound, and
    # a tight one (a wrong step would make g no element of (A + B)(x⁺)).
    assert error <= bound <= 1e3 * error
