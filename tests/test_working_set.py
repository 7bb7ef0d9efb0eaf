"""WorkingSet: LASSO and elastic net against scikit-learn, the KKT conditions,
a working set that misses a needed coordinate, bad input, the registry."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import to_numpy

import opsplit as ops
from opsplit.splitting import method_config, method_from_config, method_name

sklearn = pytest.importorskip("sklearn.linear_model")


def lasso_data(m=60, n=150, seed=0, nnz=8):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, n))
    A /= np.linalg.norm(A, axis=0)
    x = np.zeros(n)
    x[rng.choice(n, nnz, replace=False)] = rng.standard_normal(nnz)
    b = A @ x + 0.1 * rng.standard_normal(m)
    return A, b


def problem(A, b, g):
    return ops.Inclusion(ops.Subdifferential(ops.prox.LeastSquares(A, b)),
                         ops.Subdifferential(g))


def lasso_objective(A, b, lam, x):
    return 0.5 * np.sum((A @ x - b) ** 2) + lam * np.abs(x).sum()


def sklearn_lasso(A, b, lam):
    """scikit-learn minimizes ‖Ax - b‖²/(2m) + α‖x‖₁: α = λ/m."""
    model = sklearn.Lasso(alpha=lam / A.shape[0], fit_intercept=False, tol=1e-14,
                          max_iter=200_000)
    return model.fit(A, b).coef_


def kkt_violation(A, b, lam, x):
    """max_j dist(Aⱼᵀ(b - Ax), λ ∂|xⱼ|), relative to λ."""
    c = A.T @ (b - A @ x)
    on = x != 0
    v_on = np.abs(c[on] - lam * np.sign(x[on]))
    v_off = np.maximum(np.abs(c[~on]) - lam, 0.0)
    return max(v_on.max(initial=0.0), v_off.max(initial=0.0)) / lam


INNER = {
    "fista": lambda: ops.FISTA(step=1.0),
    "fb": lambda: ops.ForwardBackward(step=1.0),
    "anderson-fb": lambda: ops.Anderson(ops.ForwardBackward(step=1.0), memory=5),
}


@pytest.mark.parametrize("inner", sorted(INNER))
@pytest.mark.parametrize("fraction", [0.5, 0.1, 0.01])
def test_lasso_matches_sklearn(inner, fraction):
    A, b = lasso_data()
    lam = fraction * np.abs(A.T @ b).max()
    ref = sklearn_lasso(A, b, lam)
    res = ops.solve(problem(A, b, ops.prox.L1(lam)), ops.WorkingSet(INNER[inner]()),
                    np.zeros(A.shape[1]), tol=1e-10, maxiter=20_000, check_every=1)
    assert res.success, res.message
    f_ref = lasso_objective(A, b, lam, ref)
    assert abs(lasso_objective(A, b, lam, res.x) - f_ref) <= 1e-8 * f_ref
    assert kkt_violation(A, b, lam, res.x) < 1e-6
    np.testing.assert_allclose(res.x, ref, atol=1e-6)
    if fraction == 0.01:  # a large support: W must have grown well past the first size
        assert np.count_nonzero(ref) > 40
        assert res.state.aux.columns.size >= np.count_nonzero(ref)


def test_lambda_above_the_threshold_gives_zero():
    A, b = lasso_data()
    lam = 1.001 * np.abs(A.T @ b).max()
    res = ops.solve(problem(A, b, ops.prox.L1(lam)), ops.WorkingSet(), np.zeros(A.shape[1]),
                    tol=1e-10, check_every=1)
    assert res.success and res.iterations == 1
    assert np.all(res.x == 0) and np.all(sklearn_lasso(A, b, lam) == 0)
    # From a nonzero start the method must move to 0 as well.
    x0 = np.zeros(A.shape[1])
    x0[:3] = 1.0
    res = ops.solve(problem(A, b, ops.prox.L1(lam)), ops.WorkingSet(), x0, tol=1e-12,
                    check_every=1, maxiter=5000)
    assert res.success
    np.testing.assert_allclose(res.x, 0.0, atol=1e-10)


def test_elastic_net_matches_sklearn():
    A, b = lasso_data(seed=1)
    m = A.shape[0]
    alpha, l1_ratio = 0.002, 0.6
    # sklearn: ‖Ax-b‖²/(2m) + αρ‖x‖₁ + α(1-ρ)/2 ‖x‖²; times m.
    g = ops.prox.ElasticNet(l1=m * alpha * l1_ratio, l2=m * alpha * (1 - l1_ratio))
    ref = sklearn.ElasticNet(alpha=alpha, l1_ratio=l1_ratio, fit_intercept=False, tol=1e-14,
                             max_iter=200_000).fit(A, b).coef_
    res = ops.solve(problem(A, b, g), ops.WorkingSet(), np.zeros(A.shape[1]), tol=1e-10,
                    check_every=1, maxiter=20_000)
    assert res.success, res.message

    def objective(x):
        return 0.5 * np.sum((A @ x - b) ** 2) + g.l1 * np.abs(x).sum() + 0.5 * g.l2 * x @ x

    assert abs(objective(res.x) - objective(ref)) <= 1e-8 * objective(ref)
    np.testing.assert_allclose(res.x, ref, atol=1e-6)
    # Optimality: Aᵀ(b - Ax) - l2·x ∈ l1·∂‖x‖₁.
    c = A.T @ (b - A @ res.x) - g.l2 * res.x
    on = res.x != 0
    assert 3 <= on.sum() < A.shape[0]
    assert np.abs(c[on] - g.l1 * np.sign(res.x[on])).max() < 1e-6 * g.l1
    assert np.abs(c[~on]).max() <= g.l1 * (1 + 1e-8)


def test_missed_coordinate_still_ends_at_the_solution():
    """A first working set that misses a coordinate of the solution, and an inner
    problem solved to tolerance at once: the restricted residual is small long
    before the full one, and the driver must not stop there."""
    A, b = lasso_data(seed=3)
    lam = 0.2 * np.abs(A.T @ b).max()
    ref = sklearn_lasso(A, b, lam)
    support = np.flatnonzero(ref)
    assert support.size >= 3
    # Start on one coordinate of the solution only, and add one coordinate per round.
    x0 = np.zeros(A.shape[1])
    x0[support[0]] = ref[support[0]]
    P = problem(A, b, ops.prox.L1(lam))
    method = ops.WorkingSet(ops.FISTA(step=1.0), size=1, check=1, ratio=1e-12)
    first = method.init(method.prepare(P), x0)
    assert not set(support) <= set(first.aux.columns.tolist())  # W misses the solution

    # The solution of the problem restricted to that first W is not the solution:
    # the residual of the restricted problem alone would have stopped too early.
    W = first.aux.columns
    sub = ops.solve(problem(A[:, W], b, ops.prox.L1(lam)), ops.FISTA(step=1.0 / np.linalg.norm(
        A[:, W], 2) ** 2), x0[W], tol=1e-12, maxiter=20_000)
    x_W = np.zeros(A.shape[1])
    x_W[W] = sub.x
    assert kkt_violation(A, b, lam, x_W) > 1e-2

    seen = []

    def honest(iteration, residual, state):
        # Each residual the driver sees is the full prox-gradient residual at state.x.
        seen.append((residual, kkt_violation(A, b, lam, to_numpy(state.x))))

    res = ops.solve(P, method, x0, tol=1e-11, maxiter=20_000, check_every=1, callback=honest)
    assert res.success, res.message
    assert res.state.aux.checks > 2
    # W grew in rounds; its Gram matrix, extended block by block, is A_Wᵀ A_W.
    mem = res.state.aux
    assert len(set(mem.columns.tolist())) == mem.columns.size > first.aux.columns.size
    np.testing.assert_allclose(mem.gram, A[:, mem.columns].T @ A[:, mem.columns], atol=1e-12)
    np.testing.assert_allclose(mem.c, A[:, mem.columns].T @ b, atol=1e-12)
    np.testing.assert_allclose(res.x, ref, atol=1e-7)
    assert kkt_violation(A, b, lam, res.x) < 1e-7
    # A residual small at a check means the full conditions nearly hold there.
    for residual, violation in seen:
        if residual < 1e-9:
            assert violation < 1e-5


def test_float32_stays_float32():
    A, b = lasso_data()
    lam = 0.1 * np.abs(A.T @ b).max()
    A32, b32 = A.astype(np.float32), b.astype(np.float32)
    res = ops.solve(problem(A32, b32, ops.prox.L1(lam)), ops.WorkingSet(),
                    np.zeros(A.shape[1], np.float32), tol=1e-5, check_every=1)
    assert res.success and res.x.dtype == np.float32
    np.testing.assert_allclose(res.x, sklearn_lasso(A, b, lam), atol=1e-3)


def test_array_api_strict(backend):
    A, b = lasso_data()
    lam = 0.1 * np.abs(A.T @ b).max()
    P = problem(backend.asarray(A), backend.asarray(b), ops.prox.L1(lam))
    res = ops.solve(P, ops.WorkingSet(), backend.asarray(np.zeros(A.shape[1])), tol=1e-10,
                    check_every=1)
    assert res.success
    np.testing.assert_allclose(to_numpy(res.x), sklearn_lasso(A, b, lam), atol=1e-6)


def test_bad_input():
    A, b = lasso_data()
    P = problem(A, b, ops.prox.L1(0.1))
    with pytest.raises(ValueError, match="x0"):
        ops.solve(P, ops.WorkingSet(), np.zeros((2, A.shape[1])))
    with pytest.raises(TypeError, match="method"):
        ops.WorkingSet("fista")
    with pytest.raises(TypeError, match="forward–backward"):
        ops.WorkingSet(ops.PeacemanRachford(step=1.0))
    with pytest.raises(TypeError, match="already"):
        ops.WorkingSet(ops.WorkingSet())
    with pytest.raises(ValueError, match="size"):
        ops.WorkingSet(size=0)
    with pytest.raises(ValueError, match="ratio"):
        ops.WorkingSet(ratio=1.0)
    with pytest.raises(ValueError, match="check"):
        ops.WorkingSet(check=0)
    with pytest.raises(TypeError, match="LeastSquares"):
        ops.solve(ops.Inclusion(ops.Subdifferential(ops.prox.SquaredL2(1.0)),
                                ops.Subdifferential(ops.prox.L1(0.1))),
                  ops.WorkingSet(), np.zeros(3))
    with pytest.raises(TypeError, match="separable"):
        ops.solve(problem(A, b, ops.prox.L2(0.1)), ops.WorkingSet(), np.zeros(A.shape[1]))
    with pytest.raises(ValueError, match="right-hand side"):
        ops.solve(problem(A, np.stack([b, b]), ops.prox.L1(0.1)), ops.WorkingSet(),
                  np.zeros(A.shape[1]))


def test_config_round_trip():
    method = ops.WorkingSet(ops.Anderson(ops.ForwardBackward(step=0.5), memory=3), size=7,
                            check=3, ratio=0.2)
    config = method_config(method)
    assert config == {
        "name": "ws",
        "method": {**method_config(ops.Anderson(ops.ForwardBackward(step=0.5), memory=3))},
        "size": 7, "check": 3, "ratio": 0.2,
    }
    assert method_from_config(config) == method
    assert method_from_config(method_config(ops.WorkingSet())) == ops.WorkingSet()
    assert method_name(method) == method_name(ops.WorkingSet) == "ws"
    with pytest.raises(ValueError, match="not exact"):
        method_from_config({**config, "extra": 1})


def test_least_squares_spectrum_is_lazy():
    """Building the least-squares term costs no Gram matrix: WorkingSet never needs one."""
    A, b = lasso_data()
    f = ops.prox.LeastSquares(A, b)
    assert "gram" not in vars(f)
    ops.solve(problem(A, b, ops.prox.L1(1.0)), ops.WorkingSet(), np.zeros(A.shape[1]))
    G = ops.Subdifferential(f)
    assert "gram" not in vars(f)
    np.testing.assert_allclose(G.lipschitz, np.linalg.norm(A, 2) ** 2, rtol=1e-12)
    assert G.cocoercivity == 1.0 / G.lipschitz and G.strong_monotonicity == 0.0


def test_relative_step_beyond_the_bound_warns_and_divergence_is_reported():
    A, b = lasso_data()
    P = problem(A, b, ops.prox.L1(0.1))
    assert ops.WorkingSet(ops.ForwardBackward(step=1.0)).step_limit(0.5, 3.0) == 2.0
    assert ops.WorkingSet().step_limit(0.5, 3.0) == 1.0
    with pytest.warns(RuntimeWarning, match="bound 2/L_W"):
        res = ops.solve(P, ops.WorkingSet(ops.ForwardBackward(step=2.5)), np.zeros(A.shape[1]),
                        check_every=1, maxiter=2000)
    assert res.status is ops.Status.DIVERGED


def test_nonnegative_least_squares_matches_scipy():
    """A tall, unnormalized A and g the indicator of x >= 0 (separable, 0 in its domain)."""
    from scipy.optimize import nnls

    rng = np.random.default_rng(4)
    A = rng.standard_normal((80, 40)) * rng.uniform(0.1, 5.0, size=40)
    b = rng.standard_normal(80)
    ref, _ = nnls(A, b)
    assert 0 < np.count_nonzero(ref) < 40
    res = ops.solve(problem(A, b, ops.prox.NonNegative()), ops.WorkingSet(), np.zeros(40),
                    tol=1e-12, check_every=1, maxiter=50_000)
    assert res.success, res.message
    np.testing.assert_allclose(res.x, ref, atol=1e-8)
    assert np.all(res.x >= 0)
