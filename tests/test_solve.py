"""The driver and the three splitting methods on problems with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Lasso

import opsplit as ops


def mondeq_matrix(n, m, seed=0):
    """I - W for W = (1 - m)I - AᵀA + B - Bᵀ: strongly monotone with margin m."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n)) / np.sqrt(n)
    B = rng.standard_normal((n, n)) / np.sqrt(n)
    W = (1 - m) * np.eye(n) - A.T @ A + B - B.T
    return np.eye(n) - W


def mondeq_problem(backend, dtype="float64", n=30, batch=4, m=0.5, seed=0):
    rng = np.random.default_rng(seed + 1)
    M = mondeq_matrix(n, m, seed)
    c = rng.standard_normal((batch, n))
    F = ops.LinearMonotone(
        ops.Dense(backend.asarray(M, dtype)),
        backend.asarray(-c, dtype),
        lipschitz=float(np.linalg.norm(M, 2)),
        strong_monotonicity=m,
    )
    G = ops.Subdifferential(ops.prox.NonNegative())
    x0 = backend.asarray(np.zeros((batch, n)), dtype)
    return ops.Inclusion(F, G), x0, M, c


def safe_fb_step(M, m):
    return m / np.linalg.norm(M, 2) ** 2  # half of 2m/L²


METHODS = {
    "FB": lambda M, m: ops.ForwardBackward(step=safe_fb_step(M, m)),
    "PR": lambda M, m: ops.PeacemanRachford(step=1.0),
    "DR": lambda M, m: ops.DouglasRachford(step=1.0),
    "DR-relaxed": lambda M, m: ops.DouglasRachford(step=0.7, relaxation=1.5),
}


# -- (b) the monDEQ inclusion: agreement across methods, fixed point ---------------
@pytest.mark.parametrize("name", sorted(METHODS))
def test_mondeq_inclusion_fixed_point(backend, name):
    problem, x0, M, c = mondeq_problem(backend)
    res = ops.solve(problem, METHODS[name](M, 0.5), x0, tol=1e-12, maxiter=20000)
    assert res.success, res.message
    z = backend.to_numpy(res.x)
    W = np.eye(M.shape[0]) - M
    # z = ReLU(W z + c): the equilibrium itself, not a stored vector
    np.testing.assert_allclose(z, np.maximum(z @ W.T + c, 0), atol=1e-9)
    assert res.history.shape == (res.iterations,)
    assert res.residuals.shape == (4,)
    assert np.all(res.residuals <= 1e-12)


def test_methods_agree_to_1e8():
    from conftest import make_backend

    backend = make_backend("numpy")
    problem, x0, M, _ = mondeq_problem(backend, n=40, batch=3, m=0.2, seed=3)
    sols = [
        ops.solve(problem, METHODS[k](M, 0.2), x0, tol=1e-13, maxiter=50000).x for k in METHODS
    ]
    for s in sols[1:]:
        np.testing.assert_allclose(s, sols[0], atol=1e-8, rtol=0)


# -- (a) LASSO against scikit-learn -------------------------------------------------
def lasso_data(seed=0, n_samples=60, n_features=30):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n_samples, n_features))
    x_true = np.zeros(n_features)
    x_true[:5] = rng.standard_normal(5) * 3
    b = A @ x_true + 0.1 * rng.standard_normal(n_samples)
    return A, b


def lasso_objective(A, b, lam, x):
    return 0.5 * np.sum((A @ x - b) ** 2) + lam * np.sum(np.abs(x))


@pytest.mark.parametrize("method", ["FB", "DR", "PR"])
def test_lasso_matches_sklearn(method):
    A, b = lasso_data()
    lam = 5.0
    n = A.shape[1]
    ref = Lasso(alpha=lam / A.shape[0], fit_intercept=False, tol=1e-14, max_iter=100000)
    ref.fit(A, b)
    L = np.linalg.norm(A, 2) ** 2
    l1 = ops.Subdifferential(ops.prox.L1(lam))
    if method == "FB":
        smooth = ops.Gradient(lambda x: (x @ A.T - b) @ A, lipschitz=L, core_shape=(n,))
        problem, meth = ops.Inclusion(smooth, l1), ops.ForwardBackward(step=1.0 / L)
    else:
        normal_eq = ops.LinearMonotone(ops.Dense(A.T @ A), -(A.T @ b))
        problem = ops.Inclusion(normal_eq, l1)
        meth = ops.DouglasRachford(step=1.0 / L) if method == "DR" else ops.PeacemanRachford(
            step=1.0 / np.sqrt(L * np.linalg.eigvalsh(A.T @ A)[0])
        )
    res = ops.solve(problem, meth, np.zeros(n), tol=1e-13, maxiter=100000)
    assert res.success, res.message
    f_ours = lasso_objective(A, b, lam, res.x)
    f_ref = lasso_objective(A, b, lam, ref.coef_)
    assert abs(f_ours - f_ref) / f_ref < 1e-6
    # optimality: -Aᵀ(Ax - b) ∈ λ ∂‖x‖₁
    g = -(A.T @ (A @ res.x - b))
    on = np.abs(res.x) > 1e-10
    np.testing.assert_allclose(g[on], lam * np.sign(res.x[on]), atol=1e-6)
    assert np.all(np.abs(g[~on]) <= lam + 1e-6)


# -- (c) DR with relaxation 2 is PR, iterate by iterate -------------------------------
def test_douglas_rachford_relaxation_two_is_peaceman_rachford(backend):
    problem, x0, M, _ = mondeq_problem(backend, n=20, batch=2)
    trails = {}
    for key, method in {
        "PR": ops.PeacemanRachford(step=0.8),
        "DR2": ops.DouglasRachford(step=0.8, relaxation=2.0),
    }.items():
        seen = []
        ops.solve(
            problem, method, x0, tol=1e-300, maxiter=25,
            callback=lambda k, r, s, seen=seen: seen.append(backend.to_numpy(s.x).copy()),
        )
        trails[key] = np.stack(seen)
    assert trails["PR"].shape[0] == 25
    np.testing.assert_allclose(trails["DR2"], trails["PR"], rtol=0, atol=1e-12)
    # and relaxation 1 is genuinely different
    seen = []
    ops.solve(problem, ops.DouglasRachford(step=0.8), x0, tol=1e-300, maxiter=3,
              callback=lambda k, r, s: seen.append(backend.to_numpy(s.x).copy()))
    assert not np.allclose(seen[-1], trails["PR"][2])


# -- (d) divergence is reported ------------------------------------------------------
def test_forward_backward_too_large_step_diverges(backend):
    # Without the projection, x⁺ = (I - αM)x + αc, whose spectral radius exceeds 1 for a
    # step far above 2m/L²: the iterates must blow up.
    _, x0, M, c = mondeq_problem(backend)
    F = ops.LinearMonotone(ops.Dense(backend.asarray(M)), backend.asarray(-c))
    problem = ops.Inclusion(F, ops.Subdifferential(ops.prox.Zero()))
    L = np.linalg.norm(M, 2)
    assert np.max(np.abs(np.linalg.eigvals(np.eye(30) - 20 * 2 * 0.5 / L**2 * M))) > 1
    res = ops.solve(problem, ops.ForwardBackward(step=20 * 2 * 0.5 / L**2), x0, tol=1e-10,
                    maxiter=5000)
    assert res.status in (ops.Status.DIVERGED, ops.Status.NONFINITE)
    assert not res.success
    assert "diverged" in res.message or "non-finite" in res.message


def test_max_iterations_is_not_success():
    from conftest import make_backend

    problem, x0, M, _ = mondeq_problem(make_backend("numpy"))
    res = ops.solve(problem, ops.ForwardBackward(step=1e-3), x0, tol=1e-12, maxiter=5)
    assert res.status is ops.Status.MAX_ITER and not res.success
    assert res.iterations == 5 and res.history.size == 5
    assert "did not converge" in res.message


def test_nan_offset_is_refused_and_nan_outputs_report_nonfinite():
    n = 3
    with pytest.raises(ValueError, match="offset"):  # known at construction
        ops.LinearMonotone(ops.Dense(np.eye(n)), np.array([1.0, np.nan, 0.0]))
    F = ops.Gradient(lambda x: x + np.array([1.0, np.nan, 0.0]))  # known only when run
    res = ops.solve(ops.Inclusion(F, ops.Subdifferential(ops.prox.Zero())),
                    ops.ForwardBackward(step=0.5), np.zeros(n))
    assert res.status is ops.Status.NONFINITE and not res.success


@pytest.mark.parametrize("name", ["FB", "PR", "DR"])
def test_non_finite_operator_data_is_never_converged(name):
    """An infinite offset that bypassed construction checks (mutated afterwards) is
    clipped to 0 by the projection in forward-backward's step: the old driver
    saw x = 0, delta = 0 and said CONVERGED."""
    meth = {"FB": ops.ForwardBackward(0.5), "PR": ops.PeacemanRachford(1.0),
            "DR": ops.DouglasRachford(1.0)}[name]
    c = np.array([1.0, 1.0])
    F = ops.LinearMonotone(ops.Dense(np.eye(2)), c)
    c[:] = np.inf  # after construction: LinearMonotone itself rejects it
    with np.errstate(invalid="ignore"):
        res = ops.solve(ops.Inclusion(F, ops.Subdifferential(ops.prox.NonNegative())), meth,
                        np.zeros(2))
    assert res.status is ops.Status.NONFINITE and not res.success, res.message
    assert "non-finite" in res.message or "NaN or Inf" in res.message


@pytest.mark.parametrize("check_every", [1, 5, "auto"])
def test_infinite_gradient_gives_nonfinite(check_every):
    # ∇h returns +inf; x - α·inf = -inf is projected to 0 by NonNegative.
    grad = ops.Gradient(lambda x: x + np.inf)
    problem = ops.Inclusion(grad, ops.Subdifferential(ops.prox.NonNegative()))
    res = ops.solve(problem, ops.ForwardBackward(0.5), np.zeros(3), check_every=check_every)
    assert res.status is ops.Status.NONFINITE, res.message
    assert "inside the step" in res.message
    # a finite gradient with the same projection does converge (the check is not blind)
    ok = ops.solve(ops.Inclusion(ops.Gradient(lambda x: x + 1.0), problem.B),
                   ops.ForwardBackward(0.5), np.zeros(3), check_every=check_every)
    assert ok.success and np.allclose(ok.x, 0.0)


def test_nan_from_a_prox_gives_nonfinite():
    from opsplit.prox import ProxFunction

    class NaNAbove(ProxFunction):
        separable = True

        def value(self, x):
            return 0.0

        def prox(self, x, step=1.0):
            return np.where(x > 0.5, np.nan, x)

    F = ops.LinearMonotone(ops.Dense(np.eye(2)), np.array([-1.0, -1.0]))
    for meth in (ops.ForwardBackward(0.5), ops.PeacemanRachford(1.0), ops.DouglasRachford(1.0)):
        res = ops.solve(ops.Inclusion(F, ops.Subdifferential(NaNAbove())), meth, np.zeros(2))
        assert res.status is ops.Status.NONFINITE, (meth, res.message)


# -- the documented residual formula -----------------------------------------------------
def test_residual_formula_is_the_documented_relative_one():
    """history[k] = max over the batch of ‖z_k - z_{k-1}‖ / (‖z_k‖ + eps), computed
    here by iterating Douglas-Rachford by hand with NumPy."""
    rng = np.random.default_rng(5)
    n, batch, step = 6, 3, 0.7
    M = mondeq_matrix(n, 0.5, 4)
    c = 10.0 * rng.standard_normal((batch, n))  # ‖z‖ far from 1
    problem = ops.Inclusion(ops.LinearMonotone(ops.Dense(M), c),
                            ops.Subdifferential(ops.prox.NonNegative()))
    res = ops.solve(problem, ops.DouglasRachford(step), np.zeros((batch, n)), tol=1e-300,
                    maxiter=12)
    inv = np.linalg.inv(np.eye(n) + step * M)
    u = np.zeros((batch, n))
    rel, absolute = [], []
    for _ in range(12):
        x = np.maximum(u, 0.0)
        v = (2 * x - u - step * c) @ inv.T
        u_new = u + v - x
        d = np.linalg.norm(u_new - u, axis=1)
        rel.append(np.max(d / (np.linalg.norm(u_new, axis=1) + np.finfo(float).eps)))
        absolute.append(np.max(d))
        u = u_new
    np.testing.assert_allclose(res.history, rel, rtol=1e-10)
    np.testing.assert_allclose(res.history_abs, absolute, rtol=1e-10)
    assert not np.allclose(rel, absolute, rtol=1e-2)  # the two are told apart
    absolute_run = ops.solve(problem, ops.DouglasRachford(step), np.zeros((batch, n)),
                             tol=1e-300, maxiter=12, relative=False)
    np.testing.assert_allclose(absolute_run.history, absolute, rtol=1e-10)


# -- silent wrong answers of issue 7 ------------------------------------------------------
def _dense_fb_far_above_limit():
    rng = np.random.default_rng(0)
    M = mondeq_matrix(30, 0.5, 0)
    m, L = float(np.linalg.eigvalsh((M + M.T) / 2)[0]), float(np.linalg.norm(M, 2))
    F = ops.LinearMonotone(ops.Dense(M), rng.standard_normal(30))
    meth = ops.ForwardBackward(20 * 2 * m / L**2)
    res = ops.solve(ops.Inclusion(F, ops.Subdifferential(ops.prox.Zero())), meth, np.zeros(30),
                    maxiter=5000)
    return res, meth, m, L


def test_divergence_message_quotes_the_growth_and_the_limit():
    res, meth, m, L = _dense_fb_far_above_limit()
    assert res.status is ops.Status.DIVERGED
    h = res.history_abs
    assert h.shape == res.history.shape == (res.iterations,)
    assert h[-1] > 1e8 * h.min()  # the absolute residual blew up ...
    assert res.history[-1] < 10  # ... while the relative one levelled off
    assert f"absolute residual {h[-1]:.3g}" in res.message
    assert f"smallest seen, {h.min():.3g} at iteration {int(np.argmin(h)) + 1}" in res.message
    assert f"2m/L² = {2 * m / L**2:.4g}" in res.message  # computed exactly from the matrix


@pytest.mark.parametrize("meth", [ops.PeacemanRachford(1.0), ops.DouglasRachford(1.0)])
def test_singular_resolvent_of_a_non_monotone_operator(meth):
    F = ops.LinearMonotone(ops.Dense(np.diag([-1.0, 1.0])), np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match=r"I \+ αL is singular .*not monotone \(margin -1\)"):
        ops.solve(ops.Inclusion(F, ops.Subdifferential(ops.prox.Zero())), meth, np.zeros(2))


@pytest.mark.parametrize("meth", [ops.PeacemanRachford(1.0), ops.DouglasRachford(1.0),
                                  ops.ForwardBackward(0.5)])
def test_divergence_of_a_non_monotone_operator_names_it(meth):
    F = ops.LinearMonotone(ops.Dense(np.diag([-0.5, 1.0])), np.array([1.0, 1.0]))
    res = ops.solve(ops.Inclusion(F, ops.Subdifferential(ops.prox.Zero())), meth, np.zeros(2))
    assert res.status is ops.Status.DIVERGED
    assert "A is not monotone (margin -0.5)" in res.message
    assert "step" not in res.message.split(";", 1)[1]


def test_peaceman_rachford_stops_on_the_solution_without_strong_monotonicity():
    """LASSO with more features than samples: AᵀA is singular, u oscillates, x converges."""
    rng = np.random.default_rng(0)
    n_samples, n_features, lam = 20, 50, 2.0
    A = rng.standard_normal((n_samples, n_features))
    x_true = np.zeros(n_features)
    x_true[:4] = 3 * rng.standard_normal(4)
    b = A @ x_true + 0.1 * rng.standard_normal(n_samples)
    ref = Lasso(alpha=lam / n_samples, fit_intercept=False, tol=1e-14, max_iter=100000)
    ref.fit(A, b)
    problem = ops.Inclusion(ops.LinearMonotone(ops.Dense(A.T @ A), -(A.T @ b)),
                            ops.Subdifferential(ops.prox.L1(lam)))
    step = 1.0 / np.linalg.norm(A, 2) ** 2
    res = ops.solve(problem, ops.PeacemanRachford(step), np.zeros(n_features), tol=1e-10,
                    maxiter=20000)
    assert res.success and res.iterations < 2000, res.message
    assert "solution's own residual" in res.message
    f_ref = lasso_objective(A, b, lam, ref.coef_)
    assert abs(lasso_objective(A, b, lam, res.x) - f_ref) / f_ref < 1e-9
    g = -(A.T @ (A @ res.x - b))  # optimality: g ∈ λ ∂‖x‖₁
    on = np.abs(res.x) > 1e-8
    np.testing.assert_allclose(g[on], lam * np.sign(res.x[on]), atol=1e-6)
    assert np.all(np.abs(g[~on]) <= lam + 1e-6)
    # A run cut short says why Peaceman-Rachford may not get there.
    short = ops.solve(problem, ops.PeacemanRachford(step), np.zeros(n_features), tol=1e-10,
                      maxiter=10)
    assert "needs A or B strongly monotone" in short.message


def test_declared_constant_is_said_to_be_unverified_and_verify_refutes_it():
    grad = ops.Gradient(lambda x: x - 2 * np.sin(x), strong_monotonicity=1.0)
    problem = ops.Inclusion(grad, ops.Subdifferential(ops.prox.Zero()))
    zeros = set()
    for start in (-6.0, -2.0, 0.5, 2.0, 6.0):
        res = ops.solve(problem, ops.ForwardBackward(0.1), np.full(1, start), tol=1e-12)
        assert res.success and abs(res.x[0] - 2 * np.sin(res.x[0])) < 1e-9
        zeros.add(round(float(res.x[0]), 6))
        assert res.unique is True and res.verified is False
        assert "declared, not verified" in res.uniqueness
    assert len(zeros) >= 2  # the "unique" zero is not
    cert = ops.diagnostics.verify(problem, res)
    assert cert.unique is False and "declared 1-strongly monotone" in cert.reason
    checked = ops.solve(problem, ops.ForwardBackward(0.1), np.full(1, 2.0), tol=1e-12,
                        verify=ops.diagnostics.verify)
    assert checked.unique is False and checked.verified and checked.error_bound is None
    # a true constant survives the same check
    good = ops.Inclusion(ops.Gradient(lambda x: 2 * x + np.sin(x), strong_monotonicity=1.0),
                         problem.B)
    kept = ops.solve(good, ops.ForwardBackward(0.1), np.full(1, 2.0), tol=1e-12,
                     verify=ops.diagnostics.verify)
    assert kept.unique is True and kept.verified and "checked by sampling" in kept.uniqueness


def test_linear_margin_is_computed_not_declared():
    M = np.array([[1.0, 3.0], [-3.0, 2.0]])  # symmetric part diag(1, 2): margin 1
    problem = ops.Inclusion(ops.LinearMonotone(ops.Dense(M), np.array([1.0, -1.0])),
                            ops.Subdifferential(ops.prox.Zero()))
    res = ops.solve(problem, ops.PeacemanRachford(0.5), np.zeros(2), tol=1e-12)
    assert res.unique is True and res.verified is True
    assert res.margin == pytest.approx(np.linalg.eigvalsh((M + M.T) / 2)[0], rel=1e-12)
    assert "computed exactly" in res.uniqueness
    err = np.linalg.norm(res.x - np.linalg.solve(M, [-1.0, 1.0]))
    assert err <= res.error_bound
    # An overstated declaration on a linear operator is overruled by the exact margin
    wrong = ops.Inclusion(ops.LinearMonotone(ops.Dense(M), np.array([1.0, -1.0]),
                                             strong_monotonicity=5.0), problem.B)
    assert ops.solve(wrong, ops.PeacemanRachford(0.5), np.zeros(2)).margin == pytest.approx(1.0)
    # A supplied margin is believed, and verify withdraws it when too large.
    told = ops.solve(problem, ops.PeacemanRachford(0.5), np.zeros(2), margin=3.0)
    assert told.margin == 3.0 and not told.verified
    cert = ops.diagnostics.verify(problem, told)
    assert cert.unique is False and "exceeds" in cert.reason


def test_methods_declare_the_capabilities_they_need():
    assert ops.ForwardBackward.requires == (ops.ForwardOperator, ops.ResolventOperator)
    assert ops.PeacemanRachford.requires == (ops.ResolventOperator, ops.ResolventOperator)
    assert ops.DouglasRachford.requires == (ops.ResolventOperator, ops.ResolventOperator)
    assert ops.DavisYin.requires == (ops.ResolventOperator, ops.ResolventOperator,
                                     ops.ForwardOperator)
    for cls in ops.splitting.METHODS.values():
        assert len(cls.requires) in ((2, 3) if ops.Inclusion in cls.problem_types else (0,))


# -- (e) inputs are not mutated; (f) float32 stays float32 ------------------------------
@pytest.mark.parametrize("name", sorted(METHODS))
def test_inputs_not_mutated(name):
    from conftest import make_backend

    problem, x0, M, c = mondeq_problem(make_backend("numpy"))
    x0 = x0 + 0.3
    before = (x0.copy(), problem.A.op.matrix.copy(), problem.A.offset.copy())
    ops.solve(problem, METHODS[name](M, 0.5), x0, tol=1e-8, maxiter=300)
    for a, b in zip(before, (x0, problem.A.op.matrix, problem.A.offset)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_float32_stays_float32(backend, name):
    problem, x0, M, c = mondeq_problem(backend, dtype="float32")
    res = ops.solve(problem, METHODS[name](M, 0.5), x0, tol=1e-6, maxiter=5000)
    assert res.x.dtype == backend.xp.float32
    assert res.success, res.message
    z = backend.to_numpy(res.x).astype(np.float64)
    W = np.eye(M.shape[0]) - M
    np.testing.assert_allclose(z, np.maximum(z @ W.T + c, 0), atol=1e-3)


# -- batching, callbacks, warm starts -----------------------------------------------------
def test_batch_stops_when_every_sample_converged():
    from conftest import make_backend

    backend = make_backend("numpy")
    problem, x0, M, c = mondeq_problem(backend, batch=5)
    res = ops.solve(problem, ops.PeacemanRachford(), x0, tol=1e-10)
    assert res.success and np.all(res.residuals <= 1e-10)
    # the history holds the batch maximum: each sample alone needs at most as many iterations
    with pytest.raises(ValueError, match="batch axes"):
        ops.solve(problem, ops.PeacemanRachford(), x0[0])
    iterations = []
    for i in range(5):
        F = ops.LinearMonotone(problem.A.op, problem.A.offset[i])
        single = ops.solve(ops.Inclusion(F, problem.B), ops.PeacemanRachford(), x0[i], tol=1e-10)
        np.testing.assert_allclose(single.x, res.x[i], atol=1e-9)
        iterations.append(single.iterations)
    assert max(iterations) == res.iterations


def test_check_every_gives_same_history():
    from conftest import make_backend

    problem, x0, M, _ = mondeq_problem(make_backend("numpy"))
    a = ops.solve(problem, ops.PeacemanRachford(), x0, tol=1e-10)
    b = ops.solve(problem, ops.PeacemanRachford(), x0, tol=1e-10, check_every=7)
    assert b.iterations >= a.iterations and b.iterations - a.iterations < 7
    checks = np.arange(6, a.iterations, 7)  # where b checked: exact there
    np.testing.assert_allclose(b.history[checks], a.history[checks], rtol=1e-12)
    # in between, the scale ‖z‖ is the one at the next check: close once ‖z‖ settles
    np.testing.assert_allclose(b.history[7 : a.iterations], a.history[7:], rtol=0.05)
    assert b.times.shape == b.history.shape and np.all(np.diff(b.times) >= 0)


def test_callback_can_stop():
    from conftest import make_backend

    problem, x0, M, _ = mondeq_problem(make_backend("numpy"))
    calls = []
    res = ops.solve(problem, ops.PeacemanRachford(), x0, tol=1e-14,
                    callback=lambda k, r, s: calls.append(r) or k >= 4)
    assert res.status is ops.Status.CALLBACK and res.iterations == 4 and len(calls) == 4
    assert not res.success


def test_warm_start_from_state_and_from_x0():
    from conftest import make_backend

    problem, x0, M, _ = mondeq_problem(make_backend("numpy"))
    cold = ops.solve(problem, ops.PeacemanRachford(), x0, tol=1e-6)
    warm = ops.solve(problem, ops.PeacemanRachford(), x0, tol=1e-10, state=cold.state)
    full = ops.solve(problem, ops.PeacemanRachford(), x0, tol=1e-10)
    assert warm.iterations < full.iterations - cold.iterations // 2
    np.testing.assert_allclose(warm.x, full.x, atol=1e-9)
    fb = ops.ForwardBackward(step=safe_fb_step(M, 0.5))
    near = ops.solve(problem, fb, full.x + 1e-9, tol=1e-8)
    assert near.iterations < 5


# -- bad input ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, exc, word",
    [
        (lambda: ops.PeacemanRachford(step=0.0), ValueError, "step"),
        (lambda: ops.ForwardBackward(step=-1.0), ValueError, "step"),
        (lambda: ops.DouglasRachford(step=1.0, relaxation=2.5), ValueError, "relaxation"),
        (lambda: ops.DouglasRachford(step=1.0, relaxation=0.0), ValueError, "relaxation"),
        (lambda: ops.ForwardBackward(step="1"), TypeError, "step"),
    ],
)
def test_bad_hyperparameters(make, exc, word):
    with pytest.raises(exc, match=word):
        make()


def test_bad_solve_arguments():
    from conftest import make_backend

    problem, x0, M, _ = mondeq_problem(make_backend("numpy"))
    pr = ops.PeacemanRachford()
    with pytest.raises(ValueError, match="tol"):
        ops.solve(problem, pr, x0, tol=0.0)
    with pytest.raises(ValueError, match="tol"):
        ops.solve(problem, pr, x0, tol=-1e-3)
    with pytest.raises(TypeError, match="maxiter"):
        ops.solve(problem, pr, x0, maxiter=10.5)
    with pytest.raises(ValueError, match="x0"):
        ops.solve(problem, pr, np.zeros((4, 31)))
    with pytest.raises(TypeError, match="x0"):
        ops.solve(problem, pr, x0.astype(np.float32))
    with pytest.raises(TypeError, match="x0"):
        ops.solve(problem, pr, [[0.0] * 30])
    with pytest.raises(TypeError, match="x0"):
        ops.solve(problem, pr, np.zeros((4, 30), dtype=np.int64))
    with pytest.raises(TypeError, match="method"):
        ops.solve(problem, "PR", x0)
    with pytest.raises(TypeError, match="problem"):
        ops.solve((problem.A, problem.B), pr, x0)


def test_mixed_array_libraries_rejected():
    from conftest import make_backend

    strict = make_backend("strict1")
    problem, _, M, _ = mondeq_problem(strict)
    with pytest.raises((TypeError, ValueError), match="x0"):
        ops.solve(problem, ops.PeacemanRachford(), np.zeros((4, 30)))


def test_forward_backward_needs_evaluable_A():
    G = ops.Subdifferential(ops.prox.NonNegative())
    with pytest.raises(TypeError, match="evaluated directly"):
        ops.solve(ops.Inclusion(G, G), ops.ForwardBackward(), np.zeros(3))
    grad = ops.Gradient(lambda x: x)
    with pytest.raises(TypeError, match="resolvent"):
        ops.solve(ops.Inclusion(grad, grad), ops.PeacemanRachford(), np.zeros(3))


# -- tuple (multi-tier) states ----------------------------------------------------------
def test_multi_tier_tuple_state_matches_dense(backend):
    """A two-tier block lower-triangular inclusion solved on tuples agrees with the
    same inclusion solved on the flattened vector with a dense matrix."""
    rng = np.random.default_rng(7)
    n1, n2, batch = 6, 4, 3
    M11, M22 = mondeq_matrix(n1, 0.5, 1), mondeq_matrix(n2, 0.5, 2)
    M21 = 0.3 * rng.standard_normal((n2, n1))
    blocks = [[ops.Dense(backend.asarray(M11))],
              [ops.Dense(backend.asarray(M21)), ops.Dense(backend.asarray(M22))]]
    L = ops.BlockLowerTriangular(blocks)
    c1, c2 = rng.standard_normal((batch, n1)), rng.standard_normal((batch, n2))
    F = ops.LinearMonotone(L, (backend.asarray(-c1), backend.asarray(-c2)))
    G = ops.Subdifferential(ops.prox.NonNegative())
    x0 = (backend.asarray(np.zeros((batch, n1))), backend.asarray(np.zeros((batch, n2))))
    res = ops.solve(ops.Inclusion(F, G), ops.PeacemanRachford(step=0.5), x0, tol=1e-12,
                    maxiter=5000)
    assert res.success, res.message
    assert isinstance(res.x, tuple) and res.residuals.shape == (batch,)

    dense = np.block([[M11, np.zeros((n1, n2))], [M21, M22]])
    flat = ops.Inclusion(ops.LinearMonotone(ops.Dense(dense), -np.concatenate([c1, c2], 1)), G)
    ref = ops.solve(flat, ops.PeacemanRachford(step=0.5), np.zeros((batch, n1 + n2)),
                    tol=1e-12, maxiter=5000)
    got = np.concatenate([backend.to_numpy(p) for p in res.x], axis=1)
    np.testing.assert_allclose(got, ref.x, atol=1e-9)


def test_auto_check_cadence_stops_like_every_iteration():
    from conftest import make_backend

    problem, x0, M, _ = mondeq_problem(make_backend("numpy"))
    for method in (ops.PeacemanRachford(), ops.ForwardBackward(step=safe_fb_step(M, 0.5))):
        every, checks = ops.solve(problem, method, x0, tol=1e-10, maxiter=5000), []
        auto = ops.solve(problem, method, x0, tol=1e-10, maxiter=5000, check_every="auto",
                         callback=lambda k, r, s, checks=checks: checks.append(k))
        assert auto.success
        # few checks, and only a few iterations past the first converged one
        assert len(checks) < every.iterations / 4
        assert every.iterations <= auto.iterations <= every.iterations * 1.1 + 2
        np.testing.assert_allclose(auto.x, every.x, atol=1e-8)
        at = np.asarray(checks[:-1] + [auto.iterations]) - 1
        np.testing.assert_allclose(auto.history[at[:-1]], every.history[at[:-1]], rtol=1e-12)
    with pytest.raises(TypeError, match="check_every"):
        ops.solve(problem, ops.PeacemanRachford(), x0, check_every="sometimes")


# -- record="checks": residuals only where the driver checks ------------------------
RECORD_METHODS = {
    "FB": lambda M: ops.ForwardBackward(step=safe_fb_step(M, 0.5)),
    "PR": lambda M: ops.PeacemanRachford(step=1.0),
    "DR": lambda M: ops.DouglasRachford(step=1.0),
    "DR-relaxed": lambda M: ops.DouglasRachford(step=0.7, relaxation=1.5),
}


@pytest.mark.parametrize("check_every", [1, 5, "auto"])
@pytest.mark.parametrize("name", sorted(RECORD_METHODS))
def test_recording_only_checks_changes_no_decision(backend, name, check_every):
    problem, x0, M, c = mondeq_problem(backend)
    method = RECORD_METHODS[name](M)
    kwargs = dict(tol=1e-10, maxiter=5000, check_every=check_every)
    checked = []
    every = ops.solve(problem, method, x0, **kwargs)
    only = ops.solve(problem, method, x0, record="checks",
                     callback=lambda k, r, s: checked.append(k), **kwargs)
    assert every.success and only.success
    assert (only.iterations, only.status) == (every.iterations, every.status)
    np.testing.assert_array_equal(backend.to_numpy(only.x), backend.to_numpy(every.x))
    # one entry per check (the callback saw all but the last) at those iterations
    np.testing.assert_array_equal(only.history_iterations, checked + [only.iterations])
    np.testing.assert_array_equal(every.history_iterations, np.arange(1, every.iterations + 1))
    at = only.history_iterations - 1
    np.testing.assert_allclose(only.history, every.history[at], rtol=1e-12)
    np.testing.assert_allclose(only.history_abs, every.history_abs[at], rtol=1e-12)
    np.testing.assert_allclose(only.residuals, every.residuals, rtol=1e-12)
    if check_every == 1:
        assert only.history.size == only.iterations
    else:
        assert only.history.size < only.iterations / 2
    # the final state carries z_k - z_{k-1}: the error bounds agree, and the
    # absolute residual is its norm
    delta = backend.to_numpy(only.state.delta)
    np.testing.assert_allclose(delta, backend.to_numpy(every.state.delta), rtol=1e-12,
                               atol=1e-15)
    assert np.isclose(np.linalg.norm(delta, axis=-1).max(), only.history_abs[-1], rtol=1e-9)
    np.testing.assert_allclose(only.error_bound, every.error_bound, rtol=1e-12)
    # the bound holds against the equilibrium solved to rounding
    ref = ops.solve(problem, ops.PeacemanRachford(step=1.0), x0, tol=1e-14, maxiter=20000)
    err = np.linalg.norm(backend.to_numpy(only.x) - backend.to_numpy(ref.x), axis=-1)
    assert np.all(err <= only.error_bound * (1 + 1e-9) + 1e-13)


def test_final_delta_is_the_last_step_under_checks_also_at_maxiter():
    from conftest import make_backend

    problem, x0, M, _ = mondeq_problem(make_backend("numpy"))
    pr = ops.PeacemanRachford(step=1.0)
    before = ops.solve(problem, pr, x0, tol=1e-30, maxiter=9, check_every=4, record="checks")
    after = ops.solve(problem, pr, x0, tol=1e-30, maxiter=1, state=before.state,
                      record="checks")
    assert before.status is ops.Status.MAX_ITER
    np.testing.assert_array_equal(before.history_iterations, [4, 8, 9])
    # z_10 - z_9 from the continued run, against the states themselves
    np.testing.assert_allclose(after.state.delta, after.state.z - before.state.z, atol=0)
    ten = ops.solve(problem, pr, x0, tol=1e-30, maxiter=10)
    np.testing.assert_allclose(after.state.delta, ten.state.delta, rtol=1e-12)


def test_peaceman_rachford_forms_no_delta_between_checks(monkeypatch):
    """Under record="checks" an iteration is the method's work only: the update
    leaves u⁺ - u to the driver, which forms it (one subtraction and one norm)
    at the checks alone; under "every", at every iteration."""
    from conftest import make_backend

    import opsplit._solve as driver

    problem, x0, M, _ = mondeq_problem(make_backend("numpy"))
    pr = ops.PeacemanRachford(step=1.0)
    prepared = pr.prepare(problem)
    assert pr.update(prepared, pr.init(prepared, x0)).delta is None
    assert ops.ForwardBackward(step=0.01).update(
        ops.ForwardBackward(step=0.01).prepare(problem), ops.State(z=x0, x=x0)).delta is None

    counts = {"sub": 0, "norms": 0}
    real_sub, real_norms = driver.sub, driver.batch_sq_norms

    def sub(a, b):
        counts["sub"] += 1
        return real_sub(a, b)

    def norms(v, batch_ndim):
        counts["norms"] += 1
        return real_norms(v, batch_ndim)

    monkeypatch.setattr(driver, "sub", sub)
    monkeypatch.setattr(driver, "batch_sq_norms", norms)
    res = ops.solve(problem, pr, x0, tol=1e-30, maxiter=40, check_every=10, record="checks")
    checks = res.history_iterations.size
    assert checks == 4 and res.iterations == 40
    # one difference per check; norms: the difference and ‖z‖ per check
    assert counts == {"sub": checks, "norms": 2 * checks}
    counts.update(sub=0, norms=0)
    ops.solve(problem, pr, x0, tol=1e-30, maxiter=40, check_every=10)
    assert counts == {"sub": 40, "norms": 40 + checks}


def test_record_must_be_every_or_checks():
    from conftest import make_backend

    problem, x0, M, _ = mondeq_problem(make_backend("numpy"))
    with pytest.raises(ValueError, match="record"):
        ops.solve(problem, ops.PeacemanRachford(), x0, record="never")
