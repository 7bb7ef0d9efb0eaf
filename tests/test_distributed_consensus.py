"""Consensus solves (opsplit.distributed.Consensus): in-process and on a 2-process LocalCluster.

References are independent of the product-space formulation: scikit-learn's
Lasso and LogisticRegression (with their objective scalings), a single-process
opsplit solve of the stacked problem, and the optimality conditions of
Σ f_i + g.  The cluster tests share one module-scoped LocalCluster.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import warnings

import numpy as np
import pytest

import opsplit as ops
from opsplit import distributed
from opsplit.distributed import losses

TOL = 1e-10
RTOL = 1e-8
LAM = 2.0
CUTS = (0, 17, 61, 90)  # three shards of unequal sizes


def _rel(x, ref):
    return np.linalg.norm(x - ref) / np.linalg.norm(ref)


def _data(loss, n=6, m=90, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, n))
    x_true = np.where(np.arange(n) % 2 == 0, rng.standard_normal(n) * 3, 0.0)
    if loss == "logistic":
        b = np.where(A @ x_true + 0.5 * rng.standard_normal(m) >= 0, 1.0, -1.0)
    else:
        b = A @ x_true + 0.1 * rng.standard_normal(m)
    return A, b


class _Rows:
    """A picklable loader: rows lo:hi of (A, b)."""

    def __init__(self, A, b, lo, hi):
        self.A, self.b, self.lo, self.hi = A, b, lo, hi

    def __call__(self):
        return self.A[self.lo:self.hi], self.b[self.lo:self.hi]


def _loaders(A, b, cuts=CUTS):
    return [_Rows(A, b, lo, hi) for lo, hi in zip(cuts[:-1], cuts[1:])]


def _npz(tmp_path, A, b, cuts=CUTS):
    paths = []
    for i, (lo, hi) in enumerate(zip(cuts[:-1], cuts[1:])):
        path = tmp_path / f"part-{i}.npz"
        np.savez(path, A=A[lo:hi], b=b[lo:hi])
        paths.append(str(path))
    return paths


def _logistic_grad(A, b):
    def grad(x):
        z = b * (A @ x)
        return A.T @ (-b * 0.5 * (1.0 - np.tanh(0.5 * z)))  # -b σ(-b z)
    return grad


def _stacked_solve(loss, A, b, lam=LAM):
    """Single-process opsplit solve of min Σ_j ℓ(a_j x, b_j) + lam‖x‖₁ on the stacked data."""
    g = ops.Subdifferential(ops.prox.L1(lam))
    n = A.shape[1]
    if loss == "least_squares":
        problem = ops.Inclusion(ops.Subdifferential(ops.prox.LeastSquares(A, b)), g)
        return ops.solve(problem, ops.DouglasRachford(step=0.05), np.zeros(n), tol=1e-13,
                         maxiter=100000).x
    L = np.linalg.norm(A, 2) ** 2 / 4
    problem = ops.Inclusion(ops.Gradient(_logistic_grad(A, b), lipschitz=L), g)
    return ops.solve(problem, ops.ForwardBackward(step=1.0 / L), np.zeros(n), tol=1e-14,
                     maxiter=200000).x


def _sklearn(loss, A, b, lam=LAM):
    """scikit-learn's solution of the same objective (scalings converted)."""
    m = A.shape[0]
    if loss == "least_squares":
        from sklearn.linear_model import Lasso

        # (1/2m)‖Ax - b‖² + α‖x‖₁ = (1/m)(½‖Ax - b‖² + lam‖x‖₁) with α = lam/m
        return Lasso(alpha=lam / m, fit_intercept=False, tol=1e-14,
                     max_iter=1_000_000).fit(A, b).coef_
    from sklearn.linear_model import LogisticRegression

    # ‖x‖₁ + C Σ log(1 + e^{-b a x}) = C (Σ … + lam‖x‖₁) with C = 1/lam
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the penalty= deprecation of scikit-learn >= 1.8
        clf = LogisticRegression(penalty="l1", C=1.0 / lam, solver="liblinear",
                                 fit_intercept=False, tol=1e-14, max_iter=1_000_000)
        return clf.fit(A, b).coef_[0]


# -- the formulation, in-process (client=None) ----------------------------------------


@pytest.mark.parametrize("loss", ["least_squares", "logistic"])
def test_in_process_solution_matches_stacked_solve_and_sklearn(loss):
    A, b = _data(loss)
    problem = distributed.Consensus(_loaders(A, b), loss=loss, regularizer=ops.prox.L1(LAM))
    res = ops.solve(problem, ops.DouglasRachford(step=1.0), np.zeros(A.shape[1]), tol=TOL,
                    maxiter=5000)
    assert res.success, res.message
    assert res.x.shape == (A.shape[1],)
    ref = _stacked_solve(loss, A, b)
    assert _rel(res.x, ref) < RTOL
    assert _rel(res.x, _sklearn(loss, A, b)) < RTOL
    assert np.count_nonzero(ref) < A.shape[1]  # the L1 term is active: a real test of g's prox


def test_lasso_optimality_conditions_hold_so_the_prox_constant_of_g_is_right():
    # 0 ∈ Aᵀ(Ax - b) + lam ∂‖x‖₁: a wrong constant in prox_{(α/N) g} (α or α·N)
    # gives a different fixed point, which violates these conditions.
    A, b = _data("least_squares")
    problem = distributed.Consensus(_loaders(A, b), regularizer=ops.prox.L1(LAM))
    x = ops.solve(problem, ops.DouglasRachford(step=1.0), np.zeros(6), tol=1e-12,
                  maxiter=5000).x
    grad = A.T @ (A @ x - b)
    on = np.abs(x) > 1e-9
    assert on.any() and (~on).any()
    np.testing.assert_allclose(grad[on], -LAM * np.sign(x[on]), atol=1e-8)
    assert np.all(np.abs(grad[~on]) <= LAM + 1e-8)
    # the broken constant: a prox of g at step α (not α/N) misses them by far
    broken = ops.prox.L1(LAM * len(CUTS[1:]))  # = prox_{α g} inside the (α/N) formula
    wrong = ops.solve(distributed.Consensus(_loaders(A, b), regularizer=broken),
                      ops.DouglasRachford(step=1.0), np.zeros(6), tol=1e-12, maxiter=5000).x
    assert np.abs(A.T @ (A @ wrong - b))[np.abs(wrong) > 1e-9].max() > LAM + 1e-3


def test_resolvent_of_B_is_the_broadcast_prox_of_the_mean_at_step_over_N():
    A, b = _data("least_squares")
    problem = distributed.Consensus(_loaders(A, b), regularizer=ops.prox.L1(LAM))
    rng = np.random.default_rng(3)
    v = tuple(rng.standard_normal(6) for _ in range(3))
    alpha = 0.7
    out = problem.B.resolvent(alpha)(v)
    # brute force: minimize g(x) + (1/(2α)) Σ‖x - v_i‖² coordinatewise on a fine grid
    grid = np.linspace(-5, 5, 200001)
    expected = [grid[np.argmin(LAM * np.abs(grid) + sum((grid - vi[j]) ** 2 for vi in v)
                               / (2 * alpha))] for j in range(6)]
    assert len(out) == 3 and all(part is out[0] for part in out)
    np.testing.assert_allclose(out[0], expected, atol=1e-4)


@pytest.mark.parametrize("loss", ["logistic", "huber"])
def test_newton_prox_satisfies_its_optimality_condition(loss):
    A, b = _data(loss if loss == "logistic" else "least_squares")
    shard = losses.ShardBuilder(0, _Rows(A, b, 0, 40), loss, delta=0.3)()
    v = np.random.default_rng(1).standard_normal(6) * 4
    for alpha in (0.01, 1.0, 100.0):
        x = losses.prox(shard, alpha, v)
        # x - v + α ∇f(x) = 0, ∇f by central finite differences of f (independent of ℓ')
        h = 1e-6
        fd = np.array([(shard.value(x + h * e) - shard.value(x - h * e)) / (2 * h)
                       for e in np.eye(6)])
        np.testing.assert_allclose(x - v + alpha * fd, 0.0, atol=1e-6 * max(1.0, alpha))
        np.testing.assert_allclose(x - v + alpha * shard.gradient(x), 0.0,
                                   atol=1e-12 * max(1.0, alpha) * np.linalg.norm(v))
    batch = np.stack([v, -v, 2 * v])  # leading axes: one solve per point
    np.testing.assert_array_equal(losses.prox(shard, 1.0, batch)[1], losses.prox(shard, 1.0, -v))


def test_huber_consensus_matches_single_process_gradient_solve():
    A, b = _data("least_squares")
    b = b + np.where(np.arange(90) % 11 == 0, 8.0, 0.0)  # outliers: both Huber pieces active
    delta = 0.5
    problem = distributed.Consensus(_loaders(A, b), loss="huber", delta=delta,
                                    regularizer=ops.prox.L1(LAM))
    res = ops.solve(problem, ops.Anderson(ops.DouglasRachford(step=1.0)), np.zeros(6),
                    tol=TOL, maxiter=5000)
    assert res.success, res.message
    grad = lambda x: A.T @ np.clip(A @ x - b, -delta, delta)  # noqa: E731
    L = np.linalg.norm(A, 2) ** 2
    ref = ops.solve(ops.Inclusion(ops.Gradient(grad, lipschitz=L),
                                  ops.Subdifferential(ops.prox.L1(LAM))),
                    ops.ForwardBackward(step=1.0 / L), np.zeros(6), tol=1e-14,
                    maxiter=200000).x
    r = np.abs(A @ ref - b)
    assert (r > delta).any() and (r < delta).any()
    assert _rel(res.x, ref) < RTOL


@pytest.mark.parametrize("method", [
    ops.DouglasRachford(step=1.0),
    ops.DouglasRachford(step=0.5, relaxation=1.5),
    ops.ADMM(step=1.0),
    ops.Anderson(ops.DouglasRachford(step=1.0)),
    ops.PeacemanRachford(step=0.05),
], ids=["DR", "DR-relaxed", "ADMM", "Anderson-DR", "PR"])
def test_every_two_resolvent_method_reaches_the_same_solution(method):
    A, b = _data("least_squares")
    problem = distributed.Consensus(_loaders(A, b), regularizer=ops.prox.L1(LAM))
    res = ops.solve(problem, method, np.zeros(6), tol=TOL, maxiter=20000)
    assert res.success, res.message
    assert _rel(res.x, _stacked_solve("least_squares", A, b)) < RTOL


def test_margin_of_A_is_the_smallest_shard_sigma_min_squared():
    A, b = _data("least_squares")
    problem = distributed.Consensus(_loaders(A, b))
    expected = min(np.linalg.svd(A[lo:hi], compute_uv=False)[-1] ** 2
                   for lo, hi in zip(CUTS[:-1], CUTS[1:]))
    assert problem.A.strong_monotonicity == pytest.approx(expected, rel=1e-10)
    # a wide shard (fewer rows than features): no strong monotonicity
    wide = distributed.Consensus(_loaders(A, b, cuts=(0, 3, 90)))
    assert wide.A.strong_monotonicity == 0.0


def test_certificates_are_checked_on_the_product_space():
    A, b = _data("least_squares")
    problem = distributed.Consensus(_loaders(A, b), regularizer=ops.prox.L1(LAM))
    res = ops.solve(problem, ops.DouglasRachford(step=0.03), np.zeros(6), tol=TOL,
                    verify=ops.diagnostics.verify)
    assert res.certificate.unique and res.certificate.verified  # σ_min² > 0, sampled
    # a margin beyond what the operators give is withdrawn by the sampling check
    overclaimed = distributed.Consensus(_loaders(A, b), regularizer=ops.prox.L1(LAM),
                                        margin=10 * problem.A.strong_monotonicity)
    res = ops.solve(overclaimed, ops.DouglasRachford(step=0.03), np.zeros(6), tol=TOL,
                    verify=ops.diagnostics.verify)
    assert not res.certificate.unique and "exceeds" in res.certificate.reason


def test_npz_paths_and_loaders_give_the_same_solve(tmp_path):
    A, b = _data("least_squares")
    x0 = np.zeros(6)
    method = ops.DouglasRachford(step=1.0)
    by_path = ops.solve(distributed.Consensus(_npz(tmp_path, A, b), regularizer=ops.prox.L1(LAM)),
                        method, x0, tol=TOL)
    by_loader = ops.solve(distributed.Consensus(_loaders(A, b), regularizer=ops.prox.L1(LAM)),
                          method, x0, tol=TOL)
    np.testing.assert_array_equal(by_path.x, by_loader.x)
    assert by_path.iterations == by_loader.iterations


def test_driver_hooks_lift_result_and_state_blocks():
    A, b = _data("least_squares")
    problem = distributed.Consensus(_loaders(A, b))
    x0 = np.ones(6)
    res = ops.solve(problem, ops.DouglasRachford(step=1.0), x0, tol=TOL)
    assert isinstance(res.state.z, tuple) and len(res.state.z) == 3
    assert res.x.shape == (6,)
    np.testing.assert_allclose(res.x, np.linalg.lstsq(A, b, rcond=None)[0], rtol=1e-8)
    np.testing.assert_array_equal(x0, np.ones(6))  # not modified
    assert problem.report() == ""  # nothing happened to a worker in-process
    assert "lost" not in res.message
    assert problem.objective(res.x) == pytest.approx(0.5 * np.sum((A @ res.x - b) ** 2))


class _Converted(_Rows):
    """Rows lo:hi of (A, b), with A given as another matrix type by ``convert``."""

    def __init__(self, A, b, lo, hi, convert):
        super().__init__(A, b, lo, hi)
        self.convert = convert

    def __call__(self):
        A, b = super().__call__()
        return self.convert(A), b


def _strict(a):
    import array_api_strict as xps

    return xps.asarray(a)


@pytest.mark.parametrize("loss", ["least_squares", "logistic", "huber"])
@pytest.mark.parametrize("kind", ["sparse", "array_api_strict"])
def test_sparse_and_non_numpy_shards_give_the_dense_numpy_solution(loss, kind):
    # array_api_strict stands in for CuPy on a worker's GPU: the shard's arrays
    # stay in their library; only NumPy vectors travel
    import scipy.sparse

    if kind == "array_api_strict":
        pytest.importorskip("array_api_strict")
    convert = scipy.sparse.csr_matrix if kind == "sparse" else _strict
    A, b = _data("logistic" if loss == "logistic" else "least_squares")
    method = ops.Anderson(ops.DouglasRachford(step=1.0))
    dense = distributed.Consensus(_loaders(A, b), loss=loss, regularizer=ops.prox.L1(LAM))
    other = distributed.Consensus(
        [_Converted(A, b, lo, hi, convert) for lo, hi in zip(CUTS[:-1], CUTS[1:])],
        loss=loss, regularizer=ops.prox.L1(LAM))
    ref = ops.solve(dense, method, np.zeros(6), tol=TOL, maxiter=5000)
    res = ops.solve(other, method, np.zeros(6), tol=TOL, maxiter=5000)
    assert res.success and type(res.x) is np.ndarray
    assert _rel(res.x, ref.x) < RTOL


@pytest.mark.parametrize("loss", ["least_squares", "logistic"])
def test_float32_stays_float32(loss):
    A, b = _data(loss)
    A32, b32 = A.astype(np.float32), b.astype(np.float32)
    problem = distributed.Consensus(_loaders(A32, b32), loss=loss, regularizer=ops.prox.L1(LAM))
    res = ops.solve(problem, ops.DouglasRachford(step=1.0), np.zeros(6, np.float32), tol=1e-5)
    assert res.success, res.message
    assert res.x.dtype == np.float32 and all(z.dtype == np.float32 for z in res.state.z)
    assert _rel(res.x, _stacked_solve(loss, A, b)) < 1e-4


# -- bad input, before iterating -------------------------------------------------------


def _bad(A, b):
    return lambda: (A, b)


def test_shards_with_different_feature_counts_name_the_shard_and_path(tmp_path):
    A, b = _data("least_squares")
    paths = _npz(tmp_path, A, b)
    np.savez(paths[2], A=A[61:, :5], b=b[61:])
    with pytest.raises(ValueError, match=r"shard 2 \('.*part-2\.npz'\) has 5 features.*shard 0"):
        distributed.Consensus(paths)


def test_empty_shard_is_named():
    A, b = _data("least_squares")
    with pytest.raises(ValueError, match=r"shard 1 \(loader .*\): the shard is empty"):
        distributed.Consensus([_Rows(A, b, 0, 10), _Rows(A, b, 10, 10)])


@pytest.mark.parametrize("where", ["A", "b"])
def test_non_finite_value_in_a_shard_is_named(tmp_path, where):
    A, b = _data("least_squares")
    paths = _npz(tmp_path, A, b)
    A1, b1 = A[17:61].copy(), b[17:61].copy()
    if where == "A":
        A1[3, 2] = np.nan
    else:
        b1[3] = np.nan
    np.savez(paths[1], A=A1, b=b1)
    with pytest.raises(ValueError, match=rf"shard 1 \('.*part-1\.npz'\): {where} holds 1 "
                                         r"non-finite"):
        distributed.Consensus(paths)


def test_unreadable_or_malformed_files_are_named(tmp_path):
    A, b = _data("least_squares")
    missing = str(tmp_path / "nope.npz")
    with pytest.raises(ValueError, match=r"shard 0 \('.*nope\.npz'\): cannot read"):
        distributed.Consensus([missing])
    np.savez(tmp_path / "x.npz", X=A, y=b)
    with pytest.raises(ValueError, match=r"shard 0 .*holds arrays \['X', 'y'\], not \['A', 'b'\]"):
        distributed.Consensus([str(tmp_path / "x.npz")])


def test_other_bad_input():
    A, b = _data("least_squares")
    with pytest.raises(ValueError, match="logistic labels b must be ±1"):
        distributed.Consensus([_bad(A, b)], loss="logistic")
    with pytest.raises(ValueError, match="loss must be one of"):
        distributed.Consensus([_bad(A, b)], loss="hinge")
    with pytest.raises(TypeError, match="regularizer must be a ProxFunction"):
        distributed.Consensus([_bad(A, b)], regularizer=1.0)
    with pytest.raises(TypeError, match="shards must be a sequence"):
        distributed.Consensus("data.npz")
    with pytest.raises(TypeError, match=r"shards\[1\] must be a path or a loader"):
        distributed.Consensus([_bad(A, b), 3])
    with pytest.raises(ValueError, match="shards must not be empty"):
        distributed.Consensus([])
    with pytest.raises(TypeError, match=r"shard 1 .*dtype float32 but shard 0 .*float64"):
        distributed.Consensus([_bad(A, b), _bad(A.astype(np.float32), b.astype(np.float32))])
    with pytest.raises(ValueError, match=r"shard 0 .*b must have shape \(90,\)"):
        distributed.Consensus([_bad(A, b[:5])])
    problem = distributed.Consensus([_bad(A, b)])
    with pytest.raises(ValueError, match=r"x0 must have shape \(6,\)"):
        ops.solve(problem, ops.DouglasRachford(), np.zeros(5))
    with pytest.raises(ValueError, match=r"x0 must have shape \(6,\)"):
        ops.solve(problem, ops.DouglasRachford(), np.zeros((2, 6)))


# -- on a LocalCluster with 2 worker processes -----------------------------------------

needs_dask = pytest.mark.skipif(
    importlib.util.find_spec("distributed") is None,
    reason="needs dask[distributed] (pip install 'opsplit[distributed]')")


@pytest.fixture(scope="module")
def client():
    if importlib.util.find_spec("distributed") is None:
        pytest.skip("needs dask[distributed] (pip install 'opsplit[distributed]')")
    c = distributed.local_client(n_workers=2)
    yield c
    c.close()


@pytest.mark.parametrize("loss", ["least_squares", "logistic"])
def test_cluster_solution_matches_single_process(client, tmp_path, loss):
    A, b = _data(loss, seed=5)
    problem = distributed.Consensus(_npz(tmp_path, A, b), loss=loss,
                                    regularizer=ops.prox.L1(LAM), client=client)
    method = ops.DouglasRachford(step=0.03 if loss == "least_squares" else 1.0)  # ~50 iterations
    res = ops.solve(problem, method, np.zeros(6), tol=TOL, maxiter=5000)
    assert res.success, res.message
    local = distributed.Consensus(_loaders(A, b), loss=loss, regularizer=ops.prox.L1(LAM))
    same = ops.solve(local, method, np.zeros(6), tol=TOL, maxiter=5000)
    assert _rel(res.x, same.x) < 1e-12 and res.iterations == same.iterations
    assert _rel(res.x, _stacked_solve(loss, A, b)) < RTOL
    placement = set(problem.pool.placement)
    assert len(placement) == 2  # the shards really are on both workers


def test_worker_killed_mid_solve_is_recovered_and_reported(client):
    A, b = _data("least_squares", seed=7)
    problem = distributed.Consensus(_loaders(A, b), regularizer=ops.prox.L1(LAM), client=client)
    victim = problem.pool.placement[0]

    def kill(iteration, residual, state):
        if iteration == 5:
            pid = client.run(os.getpid, workers=[victim])[victim]
            os.kill(pid, signal.SIGKILL)
        return False

    res = ops.solve(problem, ops.DouglasRachford(step=0.03), np.zeros(6), tol=TOL,
                    maxiter=5000, callback=kill)
    assert res.success, res.message
    assert "recovered" in res.message and "was lost" in res.message, res.message
    assert "shard 0 rebuilt" in res.message, res.message
    assert _rel(res.x, _stacked_solve("least_squares", A, b)) < RTOL
    client.wait_for_workers(2, timeout=30)  # the nanny restarts it for the next tests


def _cached_shards(token):
    from opsplit.distributed import _engine

    return sum(1 for key in _engine._CACHE if key[1] == token)


def test_close_drops_the_workers_caches_and_ends_the_problem(client):
    A, b = _data("least_squares")
    problem = distributed.Consensus(_loaders(A, b), regularizer=ops.prox.L1(LAM), client=client)
    token = problem.pool.token
    assert sum(client.run(_cached_shards, token).values()) == 3
    res = ops.solve(problem, ops.DouglasRachford(step=0.03), np.zeros(6), tol=TOL)
    assert res.success and sum(client.run(_cached_shards, token).values()) == 3
    problem.close()
    assert sum(client.run(_cached_shards, token).values()) == 0
    with pytest.raises(ValueError, match="was closed"):
        ops.solve(problem, ops.DouglasRachford(step=0.03), np.zeros(6), tol=TOL)


def test_traffic_per_iteration_is_linear_in_n_times_workers(client):
    per_map = {}
    for n in (50, 2050):
        rng = np.random.default_rng(0)
        A, b = rng.standard_normal((60, n)), rng.standard_normal(60)
        problem = distributed.Consensus(_loaders(A, b, cuts=(0, 30, 60)), client=client)
        problem.pool.reset_traffic()
        ops.solve(problem, ops.DouglasRachford(step=1.0), np.zeros(n), tol=1e-30, maxiter=10)
        t = problem.traffic()
        assert t.maps == 10
        per_map[n] = t.per_map["total"]
    # each of the 2 shards' vectors (8n bytes) travels client → scheduler → worker
    # and back worker → client: ≈ 3 · 2 · 8 · Δn more bytes, read from Dask's counters
    growth = (per_map[2050] - per_map[50]) / (2 * 8 * 2000)
    assert 2.5 < growth < 4.0, per_map


def test_bad_shard_on_a_worker_is_named(client, tmp_path):
    A, b = _data("least_squares")
    paths = _npz(tmp_path, A, b)
    A1 = A[17:61].copy()
    A1[0, 0] = np.inf
    np.savez(paths[1], A=A1, b=b[17:61])
    with pytest.raises(ValueError, match=r"shard 1 \('.*part-1\.npz'\): A holds 1 non-finite"):
        distributed.Consensus(paths, client=client)


@needs_dask
def test_unreachable_scheduler_address_is_named():
    with pytest.raises(ValueError, match=r"tcp://127\.0\.0\.1:9"):
        distributed.Consensus([lambda: (np.eye(2), np.ones(2))], client="tcp://127.0.0.1:9",
                              timeout=1.0)


@needs_dask
def test_scheduler_gone_mid_solve_raises_with_the_last_iterate():
    A, b = _data("least_squares")
    own = distributed.local_client(n_workers=1)
    problem = distributed.Consensus(_loaders(A, b), client=own, timeout=5.0)

    def close(iteration, residual, state):
        if iteration == 3:
            own.close()
        return False

    with pytest.raises(distributed.DistributedError) as info:
        ops.solve(problem, ops.DouglasRachford(step=1.0), np.zeros(6), tol=TOL, callback=close)
    assert info.value.last_iterate is not None and info.value.last_iterate.shape == (6,)
