"""FISTA (accelerated forward–backward) with adaptive restart, through ops.solve."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import to_numpy

import opsplit as ops
from opsplit.prox import ProxFunction
from opsplit.splitting import method_config, method_from_config


def lasso_data(m=40, n=80, seed=0):
    """Normalized Gaussian columns, λ = 0.1‖Aᵀb‖∞ (the issue's LASSO)."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, n))
    A /= np.linalg.norm(A, axis=0)
    b = rng.standard_normal(m)
    lam = 0.1 * np.abs(A.T @ b).max()
    return A, b, lam


def lasso_problem(A, b, lam, xp=np, dtype="float64", device=None):
    """½‖Ax − b‖² + λ‖x‖₁ as 0 ∈ AᵀA x − Aᵀb + ∂(λ‖·‖₁)."""
    L = float(np.linalg.norm(A, 2) ** 2)
    H = xp.asarray((A.T @ A).astype(dtype), device=device)
    c = xp.asarray((-A.T @ b).astype(dtype), device=device)
    f = ops.LinearMonotone(ops.Dense(H), c, lipschitz=L)
    return ops.Inclusion(f, ops.Subdifferential(ops.prox.L1(lam))), L


def lasso_objective(A, b, lam, x):
    return 0.5 * np.sum((A @ x - b) ** 2) + lam * np.abs(x).sum()


def sklearn_lasso(A, b, lam):
    linear_model = pytest.importorskip("sklearn.linear_model")
    # scikit-learn minimizes (1/(2m))‖b − Ax‖² + α‖x‖₁: α = λ/m is the same problem.
    model = linear_model.Lasso(alpha=lam / A.shape[0], fit_intercept=False, tol=1e-14,
                               max_iter=1_000_000)
    return model.fit(A, b).coef_


def kkt_residual(A, b, lam, x):
    """‖x − prox_{λ‖·‖₁}(x − ∇f(x))‖: zero exactly at the LASSO solution."""
    v = x - A.T @ (A @ x - b)
    return np.linalg.norm(x - np.sign(v) * np.maximum(np.abs(v) - lam, 0.0))


class LeastSquaresFn(ProxFunction):
    """½‖Mx − b‖², a smooth function with a value (NumPy only), for the function
    restart scheme and the value-based line search."""

    smooth = True

    def __init__(self, M, b):
        self.M, self.b = M, b
        self.lipschitz = float(np.linalg.norm(M, 2) ** 2)

    def value(self, x):
        return 0.5 * np.sum((self.M @ x - self.b) ** 2)

    def gradient(self, x):
        return self.M.T @ (self.M @ x - self.b)

    def prox(self, x, step=1.0):
        n = self.M.shape[1]
        return np.linalg.solve(np.eye(n) + step * self.M.T @ self.M, x + step * self.M.T @ self.b)


# -- the answer ------------------------------------------------------------------------


@pytest.mark.parametrize("restart", [False, True, "function"])
def test_fista_solves_lasso_like_scikit_learn(restart):
    A, b, lam = lasso_data()
    problem, L = lasso_problem(A, b, lam)
    if restart == "function":  # needs f with a value: the smooth subdifferential
        f = ops.Subdifferential(LeastSquaresFn(A, b))
        problem = ops.Inclusion(f, problem.B)
    res = ops.solve(problem, ops.FISTA(step=1.0 / L, restart=restart), np.zeros(80),
                    tol=1e-12, maxiter=50_000)
    assert res.success, res.message
    ref = sklearn_lasso(A, b, lam)
    assert np.abs(res.x - ref).max() < 1e-8
    assert kkt_residual(A, b, lam, res.x) < 1e-10
    # The objective, in opsplit's scaling, matches scikit-learn's minimizer.
    assert lasso_objective(A, b, lam, res.x) == pytest.approx(
        lasso_objective(A, b, lam, ref), rel=1e-12, abs=1e-12)


def test_residual_is_the_gradient_mapping_and_vanishes_at_the_solution():
    A, b, lam = lasso_data()
    problem, L = lasso_problem(A, b, lam)
    method = ops.FISTA(step=1.0 / L)
    res = ops.solve(problem, method, np.zeros(80), tol=1e-12, maxiter=50_000)
    y = res.state.aux.y
    # delta = x_k − y_k, not the change of x (which is never formed).
    prepared = method.prepare(problem)
    last = method.update(prepared, res.state)
    v = res.state.aux.y - (A.T @ (A @ res.state.aux.y - b)) / L
    x_next = np.sign(v) * np.maximum(np.abs(v) - lam / L, 0.0)
    np.testing.assert_allclose(last.delta, x_next - y, atol=1e-15)
    # Started at the (tol-accurate) solution the first residual is at the level of
    # tol; away from it, it is not.
    at = method.update(prepared, method.init(prepared, res.x))
    assert np.linalg.norm(at.delta) <= 1e-11 * np.linalg.norm(res.x)
    away = method.update(prepared, method.init(prepared, np.zeros(80)))
    assert np.linalg.norm(away.delta) > 0.01 * np.linalg.norm(res.x)


def test_fista_converges_on_array_api_backends(backend, dtype):
    A, b, lam = lasso_data(20, 30, seed=3)
    problem, L = lasso_problem(A, b, lam, backend.xp, dtype, backend.device)
    x0 = backend.asarray(np.zeros(30), dtype)
    res = ops.solve(problem, ops.FISTA(step=1.0 / L), x0, tol=1e-5 if dtype == "float32"
                    else 1e-12, maxiter=20_000)
    assert res.success, res.message
    assert res.x.dtype == backend.dtype(dtype)  # float32 stays float32
    assert res.state.aux.t.dtype == backend.dtype(dtype)
    ref = sklearn_lasso(A, b, lam)
    tol = 1e-3 if dtype == "float32" else 1e-8
    assert np.abs(to_numpy(res.x) - ref).max() < tol


# -- acceleration and restart ---------------------------------------------------------


def strongly_convex_problem(n=60, cond=1e3, seed=1):
    """f = ½xᵀHx − cᵀx with eigenvalues in [1/cond, 1], g = λ‖x‖₁."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    H = (Q * np.geomspace(1.0 / cond, 1.0, n)) @ Q.T
    c = rng.standard_normal(n)
    f = ops.LinearMonotone(ops.Dense(H), -c, lipschitz=1.0, strong_monotonicity=1.0 / cond)
    return ops.Inclusion(f, ops.Subdifferential(ops.prox.L1(0.05))), H, c


def test_restarted_fista_needs_far_fewer_iterations_than_fb_and_plain_fista():
    problem, _, _ = strongly_convex_problem()
    x0 = np.zeros(60)
    runs = {name: ops.solve(problem, method, x0, tol=1e-10, maxiter=100_000)
            for name, method in [("fb", ops.ForwardBackward(step=1.0)),
                                 ("plain", ops.FISTA(step=1.0, restart=False)),
                                 ("restart", ops.FISTA(step=1.0, restart=True))]}
    assert all(r.success for r in runs.values())
    # κ = 10³ turns the residual 1e-10 into a relative error up to ~1e-7 each.
    x, ref = runs["restart"].x, runs["fb"].x
    assert np.linalg.norm(x - ref) <= 1e-6 * np.linalg.norm(ref)
    # FB needs ~κ log(1/tol) ≈ 2·10⁴ iterations, restarted FISTA ~√κ log(1/tol).
    assert runs["restart"].iterations < 0.1 * runs["fb"].iterations
    assert runs["restart"].iterations < 0.5 * runs["plain"].iterations


def known_solution_lasso(seed=7, m=80, n=40, lam=0.5):
    """A LASSO with a known solution: x* and a subgradient s ∈ ∂(λ‖·‖₁)(x*) fix b
    so that Aᵀ(Ax* − b) = −s (A tall with full column rank)."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, n)) @ np.diag(np.geomspace(1.0, 1e-2, n))
    x_star = np.where(rng.random(n) < 0.5, 0.0, rng.standard_normal(n))
    s = np.where(x_star != 0, lam * np.sign(x_star), lam * rng.uniform(-0.9, 0.9, n))
    b = A @ x_star + A @ np.linalg.solve(A.T @ A, s)
    return A, b, lam, x_star, rng.standard_normal(n)


def objective_gaps(method, A, b, lam, x_star, x0, iterations):
    problem, _ = lasso_problem(A, b, lam)
    F_star = lasso_objective(A, b, lam, x_star)
    gaps = []
    ops.solve(problem, method, x0, tol=1e-300, maxiter=iterations,
              callback=lambda k, r, state: gaps.append(
                  lasso_objective(A, b, lam, state.x) - F_star))
    return np.array(gaps)


def test_plain_fista_obeys_the_beck_teboulle_bound_at_every_iteration():
    A, b, lam, x_star, x0 = known_solution_lasso()
    assert kkt_residual(A, b, lam, x_star) < 1e-12  # x* is the solution
    L = float(np.linalg.norm(A, 2) ** 2)
    method = ops.FISTA(step=1.0 / L, restart=False)
    gaps = objective_gaps(method, A, b, lam, x_star, x0, 500)
    d = np.linalg.norm(x0 - x_star)
    k = np.arange(1, 501)
    bounds = np.array([method.objective_bound(int(i), d) for i in k])
    np.testing.assert_allclose(bounds, 2 * L * d**2 / (k + 1.0) ** 2, rtol=1e-14)
    assert len(gaps) == 500 and (gaps >= -1e-9).all()
    assert (gaps <= bounds).all()
    # The check can fail: above the step limit the same bound is violated.
    with pytest.warns(RuntimeWarning, match="1/L"):
        too_long = objective_gaps(ops.FISTA(step=3.0 / L, restart=False), A, b, lam, x_star,
                                  x0, 50)
    assert (too_long > bounds[:len(too_long)]).any()


def test_batched_solve_equals_per_sample_solves_iterate_for_iterate():
    A, _, lam = lasso_data()
    rng = np.random.default_rng(5)
    B = rng.standard_normal((3, 40))
    L = float(np.linalg.norm(A, 2) ** 2)
    f = ops.LinearMonotone(ops.Dense(A.T @ A), -B @ A, lipschitz=L)  # batch of offsets
    problem = ops.Inclusion(f, ops.Subdifferential(ops.prox.L1(lam)))
    method = ops.FISTA(step=1.0 / L)
    batched = ops.solve(problem, method, np.zeros((3, 80)), tol=1e-300, maxiter=150)
    for i in range(3):
        fi = ops.LinearMonotone(ops.Dense(A.T @ A), -A.T @ B[i], lipschitz=L)
        single = ops.solve(ops.Inclusion(fi, problem.B), method, np.zeros(80), tol=1e-300,
                           maxiter=150)
        np.testing.assert_allclose(batched.x[i], single.x, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(batched.state.aux.t[i], single.state.aux.t)
    # The samples restarted at different iterations (their t differ).
    assert len(set(np.round(batched.state.aux.t, 8))) > 1


def test_restart_scheme_changes_the_iterates():
    problem, _, _ = strongly_convex_problem(n=30, cond=1e2)
    x0 = np.zeros(30)
    on = ops.solve(problem, ops.FISTA(step=1.0), x0, tol=1e-300, maxiter=200)
    off = ops.solve(problem, ops.FISTA(step=1.0, restart=False), x0, tol=1e-300, maxiter=200)
    # Plain FISTA's t_k grows like k/2; a restart resets it.
    assert off.state.aux.t == pytest.approx(
        _t_after(200), rel=1e-12)
    assert on.state.aux.t < off.state.aux.t


def _t_after(k):
    t = 1.0
    for _ in range(k):
        t = 0.5 * (1 + math.sqrt(1 + 4 * t * t))
    return t


# -- bad input, theory, registry ------------------------------------------------------


def test_step_above_one_over_L_warns_naming_the_bound():
    A, b, lam = lasso_data()
    problem, L = lasso_problem(A, b, lam)
    with pytest.warns(RuntimeWarning, match=r"exceeds 1/L = "):
        ops.solve(problem, ops.FISTA(step=1.5 / L), np.zeros(80), maxiter=5)
    # No warning at 1/L (pytest turns warnings into errors).
    ops.solve(problem, ops.FISTA(step=1.0 / L), np.zeros(80), maxiter=5)


def test_function_restart_needs_values_and_one_sample():
    A, b, lam = lasso_data()
    problem, L = lasso_problem(A, b, lam)
    with pytest.raises(TypeError, match="restart='function'.*Subdifferential"):
        ops.solve(problem, ops.FISTA(step=1.0 / L, restart="function"), np.zeros(80))
    f = ops.Subdifferential(LeastSquaresFn(A, b))
    f.core_shape = (80,)  # so that the problem sees the batch axis
    smooth = ops.Inclusion(f, problem.B)
    with pytest.raises(ValueError, match="batch"):
        ops.solve(smooth, ops.FISTA(step=1.0 / L, restart="function"), np.zeros((2, 80)))


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"restart": "sometimes"}, ValueError, "restart"),
    ({"restart": 1}, ValueError, "restart"),
    ({"step_rule": "adaptive"}, ValueError, "step_rule"),
    ({"step_rule": 3}, TypeError, "step_rule"),
    ({"step": -1.0}, ValueError, "step"),
])
def test_bad_hyperparameters_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        ops.FISTA(**kwargs)


def test_theory_hooks():
    method = ops.FISTA(step=0.5)
    assert method.step_limit(0.0, 4.0) == 0.25 == method.optimal_step(0.1, 4.0)
    assert ops.FISTA.contracts is False and ops.FISTA.fixed_point is False
    assert method.contraction(0.1, 4.0) is None  # no contraction factor
    with pytest.raises(ValueError, match="m = 2.0 exceeds L"):
        method.contraction(2.0, 1.0)
    assert method.objective_bound(1, 2.0) == pytest.approx(2 * 4.0 / (0.5 * 4))
    with pytest.raises(ValueError, match="iteration"):
        method.objective_bound(0, 1.0)
    from opsplit.splitting.anderson import Anderson

    with pytest.raises(TypeError, match="Anderson"):
        Anderson(method)


@pytest.mark.parametrize("method", [ops.FISTA(step=0.3, restart="function",
                                              step_rule="backtracking"),
                                    ops.FISTA(step=2.0, restart=False)])
def test_config_round_trip(method):
    config = method_config(method)
    assert config["name"] == "fista"
    assert method_from_config(config) == method
    with pytest.raises(ValueError, match="not exact"):
        method_from_config({k: v for k, v in config.items() if k != "restart"})
