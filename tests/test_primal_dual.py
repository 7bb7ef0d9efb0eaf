"""Primal–dual methods on ``Composite`` problems (Chambolle–Pock, Condat–Vũ),
against CVXPY and scikit-learn, with their optimality conditions and bounds."""

from __future__ import annotations

import dataclasses

import cvxpy as cp
import numpy as np
import pytest
from conftest import to_numpy
from sklearn.linear_model import Lasso

import opsplit as ops
from opsplit.operators import LinearOperator
from opsplit.operators.lanczos import estimate_norm
from opsplit.splitting import method_config, method_from_config


def difference_matrix(n):
    """The (n - 1) × n forward-difference matrix, built densely."""
    return np.diff(np.eye(n), axis=0)


def piecewise_signal(n, rng, noise=0.3):
    clean = np.repeat(rng.standard_normal(5) * 2.0, -(-n // 5))[:n]
    return clean + noise * rng.standard_normal(n)


def tv_problem(b, lam, like=None):
    n = b.shape[-1]
    D = difference_matrix(n)
    if like is not None:
        D, b = like(D), like(b)
    return ops.Composite(f=ops.prox.Translated(ops.prox.SquaredL2(), b),
                         g=ops.prox.L1(lam), K=ops.Dense(D))


def cvxpy_tv(b, lam, A=None, box=None):
    """min ½‖x - b‖² + λ‖Dx‖₁ (or ½‖Ax - b‖² over a box) with CVXPY (Clarabel)."""
    n = b.size if A is None else A.shape[1]
    x = cp.Variable(n)
    fit = 0.5 * cp.sum_squares(x - b) if A is None else 0.5 * cp.sum_squares(A @ x - b)
    constraints = [] if box is None else [x >= box[0], x <= box[1]]
    prob = cp.Problem(cp.Minimize(fit + lam * cp.norm1(cp.diff(x))), constraints)
    prob.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    return x.value, prob.value


def tv_gap(x, y, b, lam):
    """Duality gap of ½‖x - b‖² + λ‖Dx‖₁: P(x) - D(y) with
    D(y) = -f*(-Dᵀy) - g*(y), f*(u) = ½‖u‖² + ⟨u, b⟩, g* the indicator of ‖y‖∞ ≤ λ."""
    D = difference_matrix(b.size)
    primal = 0.5 * np.sum((x - b) ** 2) + lam * np.abs(D @ x).sum()
    u = -D.T @ y
    assert np.abs(y).max() <= lam * (1 + 1e-12)
    dual = -(0.5 * u @ u + u @ b)
    return primal - dual


# -- against independent references ---------------------------------------------------


def test_tv_denoising_matches_cvxpy():
    rng = np.random.default_rng(0)
    b, lam = piecewise_signal(80, rng), 1.0
    ref_x, ref_value = cvxpy_tv(b, lam)
    prob = tv_problem(b, lam)
    res = ops.solve(prob, ops.ChambollePock(), np.zeros_like(b), tol=1e-11, maxiter=50000)
    assert res.success, res.message
    assert np.linalg.norm(res.x - ref_x) <= 1e-6 * np.linalg.norm(ref_x)
    assert abs(float(prob.objective(res.x)) - ref_value) <= 1e-9 * abs(ref_value)
    # the optimality conditions at the computed pair: x - b + Dᵀy = 0, |y| ≤ λ, y·Dx = λ|Dx|
    y, D = ops.ChambollePock.dual(res.state), difference_matrix(b.size)
    assert np.abs(res.x - b + D.T @ y).max() <= 1e-8
    assert np.abs(y).max() <= lam + 1e-12
    assert abs(y @ (D @ res.x) - lam * np.abs(D @ res.x).sum()) <= 1e-7


def test_lasso_matches_scikit_learn():
    """f = λ‖x‖₁, g = ½‖· - b‖² (Translated SquaredL2), K = A."""
    rng = np.random.default_rng(1)
    m, n = 40, 60
    A = rng.standard_normal((m, n)) / np.sqrt(m)
    b = A @ (rng.standard_normal(n) * (rng.random(n) < 0.2)) + 0.05 * rng.standard_normal(m)
    lam = 0.1 * np.abs(A.T @ b).max()
    ref = Lasso(alpha=lam / m, fit_intercept=False, tol=1e-14, max_iter=10**6).fit(A, b).coef_
    prob = ops.Composite(f=ops.prox.L1(lam), g=ops.prox.Translated(ops.prox.SquaredL2(), b), K=A)
    assert isinstance(prob.K, ops.Dense)  # an array K is wrapped
    res = ops.solve(prob, ops.ChambollePock(), np.zeros(n), tol=1e-12, maxiter=100000)
    assert res.success, res.message
    assert np.linalg.norm(res.x - ref) <= 1e-6 * np.linalg.norm(ref)
    # the dual solution is the residual: y = Ax - b
    assert np.allclose(ops.ChambollePock.dual(res.state), A @ res.x - b, atol=1e-9)


def _least_squares_tv(rng, n=50, m=70):
    A = rng.standard_normal((m, n)) / np.sqrt(m)
    x_true = np.clip(np.repeat(rng.random(5), n // 5), 0.1, 0.9)
    b = A @ x_true + 0.05 * rng.standard_normal(m)
    L = float(np.linalg.norm(A, 2) ** 2)
    h = ops.Gradient(lambda x: (x @ A.T - b) @ A, lipschitz=L)
    return A, b, h


def test_condat_vu_with_a_smooth_term_matches_cvxpy():
    """h = ½‖Ax - b‖², f = the box [0.2, 0.8], g∘K = λ‖Dx‖₁."""
    rng = np.random.default_rng(2)
    A, b, h = _least_squares_tv(rng)
    lam, n = 0.05, A.shape[1]
    ref_x, _ = cvxpy_tv(b, lam, A=A, box=(0.2, 0.8))
    prob = ops.Composite(f=ops.prox.Box(0.2, 0.8), g=ops.prox.L1(lam),
                         K=difference_matrix(n), smooth=h)
    res = ops.solve(prob, ops.CondatVu(), np.zeros(n), tol=1e-11, maxiter=100000)
    assert res.success, res.message
    assert np.linalg.norm(res.x - ref_x) <= 1e-6 * np.linalg.norm(ref_x)


def test_least_squares_as_smooth_term_or_by_its_prox():
    """½‖Ax - b‖² + λ‖Dx‖₁: Condat–Vũ with h = LeastSquares (its gradient), and
    Chambolle–Pock with f = LeastSquares (its factorized prox), against CVXPY."""
    rng = np.random.default_rng(13)
    A, b, _ = _least_squares_tv(rng)
    lam, n = 0.05, A.shape[1]
    ref_x, ref_value = cvxpy_tv(b, lam, A=A)
    ls, D = ops.prox.LeastSquares(A, b), difference_matrix(n)
    smooth = ops.Composite(f=ops.prox.Zero(), g=ops.prox.L1(lam), K=D, smooth=ls)
    by_prox = ops.Composite(f=ls, g=ops.prox.L1(lam), K=D)
    for prob, method in ((smooth, ops.CondatVu()), (by_prox, ops.ChambollePock())):
        res = ops.solve(prob, method, np.zeros(n), tol=1e-11, maxiter=100000)
        assert res.success, res.message
        assert np.linalg.norm(res.x - ref_x) <= 1e-6 * np.linalg.norm(ref_x)
        assert float(prob.objective(res.x)) == pytest.approx(ref_value, rel=1e-9)


def test_residual_and_duality_gap_vanish():
    rng = np.random.default_rng(3)
    b, lam = piecewise_signal(60, rng), 0.5
    prob, method = tv_problem(b, lam), ops.ChambollePock()
    gaps, residuals = [], []

    def record(k, r, state):
        x, y = state.z
        gaps.append(tv_gap(x, y, b, lam))
        residuals.append(r)

    res = ops.solve(prob, method, np.zeros_like(b), tol=1e-12, maxiter=50000, callback=record)
    assert res.success
    assert gaps[-1] <= 1e-9 * (1 + abs(float(prob.objective(res.x))))
    assert min(gaps) >= -1e-9  # weak duality: the dual iterates are feasible
    assert gaps[-1] < 1e-9 * gaps[0] and res.history[-1] <= 1e-12 < residuals[0]


def test_residual_is_the_primal_dual_residual():
    """delta = (τp, σd), p ∈ ∂f(x̃) + Kᵀỹ and d ∈ ∂g*(ỹ) - Kx̃, computed independently."""
    rng = np.random.default_rng(4)
    b, lam = piecewise_signal(30, rng), 0.7
    prob, method = tv_problem(b, lam), ops.ChambollePock()
    prepared = method.prepare(prob)
    state = method.init(prepared, np.zeros_like(b))
    for _ in range(5):
        state = method.update(prepared, state)
    (x, y), (tau, sigma) = state.z, state.aux.setup.steps
    new = method.update(prepared, state)
    (xt, yt) = new.z
    D = difference_matrix(b.size)
    p = (x - xt) / tau - D.T @ (y - yt)
    d = (y - yt) / sigma - D @ (x - xt)
    assert np.allclose(new.delta[0], tau * p, atol=1e-14)
    assert np.allclose(new.delta[1], sigma * d, atol=1e-14)
    # p is ∂f(x̃) + Kᵀỹ = x̃ - b + Dᵀỹ exactly (f smooth); d + Dx̃ is in the normal cone of
    # the box |y| ≤ λ at ỹ
    assert np.allclose(p, xt - b + D.T @ yt, atol=1e-12)
    w = d + D @ xt
    assert np.all(w[np.abs(yt) < lam - 1e-12] == pytest.approx(0.0, abs=1e-12))
    assert np.all(w * np.sign(yt) >= -1e-12)


# -- sibling equivalence and steps ------------------------------------------------------


@pytest.mark.parametrize("relaxation", [1.0, 1.6])
def test_condat_vu_without_smooth_term_is_chambolle_pock(relaxation):
    rng = np.random.default_rng(5)
    b = piecewise_signal(40, rng)
    prob = tv_problem(b, 0.8)
    zero_h = ops.Composite(f=prob.f, g=prob.g, K=prob.K,
                           smooth=ops.Gradient(lambda x: 0.0 * x, lipschitz=0.0))
    x0 = rng.standard_normal(40)
    runs = [ops.solve(p, m(relaxation=relaxation), x0, tol=1e-300, maxiter=60)
            for p, m in ((prob, ops.ChambollePock), (prob, ops.CondatVu),
                         (zero_h, ops.CondatVu))]
    for other in runs[1:]:
        assert np.array_equal(other.x, runs[0].x)
        assert np.array_equal(other.state.z[1], runs[0].state.z[1])
        assert np.array_equal(other.history, runs[0].history)
    # and the iterates are not stuck: they differ from a run with other steps
    moved = ops.solve(prob, ops.ChambollePock(step=0.1, relaxation=relaxation), x0,
                      tol=1e-300, maxiter=60)
    assert not np.allclose(moved.x, runs[0].x)


def test_default_steps_satisfy_the_bounds():
    rng = np.random.default_rng(6)
    A, b, h = _least_squares_tv(rng)
    K = ops.Dense(difference_matrix(A.shape[1]))
    nK, L = np.linalg.norm(difference_matrix(A.shape[1]), 2), h.lipschitz
    cv = ops.CondatVu()
    tau, sigma = cv.steps(float(nK), L)
    assert 1 / tau - sigma * nK**2 > L / 2 and 1 / tau - sigma * nK**2 == pytest.approx(
        L / 2 / 0.99 + sigma * nK**2 * (1 / 0.99 - 1))
    tau, sigma = ops.ChambollePock().steps(float(nK), 0.0)
    assert tau * sigma * nK**2 == pytest.approx(0.99)
    tau, sigma = ops.ChambollePock(step=0.1).steps(float(nK), 0.0)
    assert tau == 0.1 and tau * sigma * nK**2 == pytest.approx(0.99)
    tau, sigma = ops.CondatVu(dual_step=0.3).steps(float(nK), L)
    assert sigma == 0.3 and 1 / tau - sigma * nK**2 == pytest.approx(L / 2 / 0.99 + 0.3 * nK**2
                                                                      * (1 / 0.99 - 1))
    tau, sigma = ops.CondatVu(relaxation=1.5).steps(float(nK), L)  # ρ < δ by default too
    assert 1.5 < 2 - L / (2 * (1 / tau - sigma * nK**2))
    with pytest.raises(ValueError, match=r"2\(2 - ρ\)/L_h"):
        ops.CondatVu(step=3.0 / L).steps(float(nK), L)
    del K


def test_steps_outside_the_proven_range_warn():
    rng = np.random.default_rng(7)
    b = piecewise_signal(20, rng)
    prob = tv_problem(b, 0.5)
    with pytest.warns(RuntimeWarning, match=r"τσ‖K‖² < 1"):
        ops.solve(prob, ops.ChambollePock(step=1.0, dual_step=1.0), np.zeros(20),
                  maxiter=5)
    A, bb, h = _least_squares_tv(rng)
    n = A.shape[1]
    prob = ops.Composite(f=ops.prox.Zero(), g=ops.prox.L1(0.1), K=difference_matrix(n), smooth=h)
    with pytest.warns(RuntimeWarning, match=r"1/τ - σ‖K‖² > L_h/2"):
        ops.solve(prob, ops.CondatVu(step=1.9 / h.lipschitz, dual_step=1.0),
                  np.zeros(n), maxiter=5)
    tau, sigma = ops.CondatVu().steps(float(np.linalg.norm(difference_matrix(n), 2)),
                                      h.lipschitz)  # 1/τ - σ‖K‖² ≈ L_h/2: δ ≈ 1
    with pytest.warns(RuntimeWarning, match=r"ρ < δ"):
        ops.solve(prob, ops.CondatVu(step=tau, dual_step=sigma, relaxation=1.9), np.zeros(n),
                  maxiter=5)
    ops.solve(prob, ops.CondatVu(relaxation=1.9), np.zeros(n), maxiter=5)  # defaults fit ρ
    # within the bounds: no warning (pytest turns warnings into errors)
    ops.solve(prob, ops.CondatVu(relaxation=1.0), np.zeros(n), maxiter=5)


def test_far_too_large_steps_are_reported_as_divergence():
    """min ½‖Dx‖² (f = 0, g = ½‖·‖²): a linear iteration, unstable for τσ‖K‖² = 36."""
    prob = ops.Composite(f=ops.prox.Zero(), g=ops.prox.SquaredL2(), K=difference_matrix(30))
    x0 = np.random.default_rng(12).standard_normal(30)
    with pytest.warns(RuntimeWarning, match="τσ‖K‖²"):
        res = ops.solve(prob, ops.ChambollePock(step=3.0, dual_step=3.0), x0,
                        maxiter=5000)
    assert res.status is ops.Status.DIVERGED, res.message
    assert "τσ‖K‖² < 1" in res.message
    res = ops.solve(prob, ops.ChambollePock(), x0, tol=1e-10, maxiter=50000)
    assert res.success and np.ptp(res.x) <= 1e-8  # the minimizers are the constants


# -- shapes, batches, dtypes, backends ---------------------------------------------------


def test_batched_solve_equals_per_sample_solves():
    rng = np.random.default_rng(8)
    B = np.stack([piecewise_signal(25, rng) for _ in range(3)])
    batched = ops.solve(tv_problem(B, 0.6), ops.ChambollePock(), np.zeros_like(B),
                        tol=1e-12, maxiter=50000)
    assert batched.success and batched.x.shape == B.shape
    for i in range(3):
        single = ops.solve(tv_problem(B[i], 0.6), ops.ChambollePock(), np.zeros(25),
                           tol=1e-12, maxiter=50000)
        assert np.allclose(batched.x[i], single.x, atol=1e-9)
        assert np.allclose(batched.x[i], cvxpy_tv(B[i], 0.6)[0], atol=1e-6)


def test_on_every_backend_and_dtype(backend, dtype):
    rng = np.random.default_rng(9)
    b, lam = piecewise_signal(30, rng), 0.5
    ref_x, _ = cvxpy_tv(b, lam)
    prob = tv_problem(b, lam, like=lambda a: backend.asarray(a, dtype))
    x0 = backend.asarray(np.zeros(30), dtype)
    tol = 1e-5 if dtype == "float32" else 1e-11
    res = ops.solve(prob, ops.ChambollePock(), x0, tol=tol, maxiter=20000)
    assert res.success, res.message
    assert res.x.dtype == backend.dtype(dtype)
    assert res.state.z[1].dtype == backend.dtype(dtype)
    err = np.linalg.norm(to_numpy(res.x) - ref_x) / np.linalg.norm(ref_x)
    assert err <= (1e-4 if dtype == "float32" else 1e-6)
    # Condat–Vũ with the data term as its smooth part, and relaxation
    bb = backend.asarray(b, dtype)
    smooth = ops.Composite(f=ops.prox.Zero(), g=prob.g, K=prob.K,
                           smooth=ops.Gradient(lambda x: x - bb, lipschitz=1.0))
    res = ops.solve(smooth, ops.CondatVu(relaxation=1.3), x0, tol=tol, maxiter=20000)
    assert res.success, res.message
    assert res.x.dtype == backend.dtype(dtype)
    err = np.linalg.norm(to_numpy(res.x) - ref_x) / np.linalg.norm(ref_x)
    assert err <= (1e-4 if dtype == "float32" else 1e-6)


def test_a_wrong_in_shape_names_K():
    prob = tv_problem(np.zeros(10), 1.0)
    with pytest.raises(ValueError, match="K"):
        ops.solve(prob, ops.ChambollePock(), np.zeros(11))
    with pytest.raises(TypeError, match="x0 has dtype float32 but K has float64"):
        ops.solve(prob, ops.ChambollePock(), np.zeros(10, dtype=np.float32))
    with pytest.raises(ValueError, match="smooth"):
        ops.Composite(f=ops.prox.Zero(), g=ops.prox.L1(), K=difference_matrix(5),
                      smooth=ops.Gradient(lambda x: x, lipschitz=1.0, core_shape=(4,)))


def test_bad_inputs_are_named():
    with pytest.raises(TypeError, match="K must be a LinearOperator"):
        ops.Composite(f=ops.prox.Zero(), g=ops.prox.L1(), K=lambda x: x)
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    M = np.arange(12.0).reshape(3, 4)
    no_adjoint = spla.LinearOperator((3, 4), matvec=lambda v: M @ v, dtype=np.float64)
    with pytest.raises(TypeError, match="K has no adjoint"):
        ops.Composite(f=ops.prox.Zero(), g=ops.prox.L1(), K=no_adjoint)
    with_adjoint = spla.LinearOperator((3, 4), matvec=lambda v: M @ v,
                                       rmatvec=lambda v: M.T @ v, dtype=np.float64)
    for K in (with_adjoint, sp.csr_matrix(M)):
        prob = ops.Composite(f=ops.prox.Zero(), g=ops.prox.L1(), K=K)
        assert np.allclose(prob.apply_KT(prob.apply_K(np.ones(4))), M.T @ M @ np.ones(4))
    with pytest.raises(ValueError, match="K must be a 2-D"):
        ops.Composite(f=ops.prox.Zero(), g=ops.prox.L1(), K=np.ones(3))
    with pytest.raises(TypeError, match="g must be a ProxFunction"):
        ops.Composite(f=ops.prox.Zero(), g=np.abs)
    with pytest.raises(TypeError, match="smooth"):
        ops.Composite(f=ops.prox.Zero(), g=ops.prox.L1(), smooth=ops.prox.L1())
    h = ops.Gradient(lambda x: x, lipschitz=1.0)
    with_h = ops.Composite(f=ops.prox.Zero(), g=ops.prox.L1(), smooth=h)
    with pytest.raises(TypeError, match="CondatVu"):
        ops.solve(with_h, ops.ChambollePock(), np.zeros(3))
    with pytest.raises(ValueError, match="objective needs h's value"):
        with_h.objective(np.zeros(3))
    no_L = ops.Composite(f=ops.prox.Zero(), g=ops.prox.L1(), smooth=ops.Gradient(lambda x: x))
    with pytest.raises(ValueError, match="Lipschitz constant"):
        ops.solve(no_L, ops.CondatVu(), np.zeros(3))
    with pytest.raises(TypeError, match="ChambollePock solves a Composite"):
        inc = ops.Inclusion(ops.Subdifferential(ops.prox.Zero()),
                            ops.Subdifferential(ops.prox.Zero()))
        ops.solve(inc, ops.ChambollePock(), np.zeros(3))
    for bad in ({"relaxation": 2.0}, {"relaxation": 0.0}, {"step": -1.0},
                {"dual_step": 0.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ops.ChambollePock(**bad)
    with pytest.raises(TypeError, match="array"):
        ops.solve(ops.Composite(f=ops.prox.Zero(), g=ops.prox.L1()), ops.ChambollePock(),
                  (np.zeros(2), np.zeros(2)))


class _MatrixFree(LinearOperator):
    """Forward differences holding no array (no exact norm rule, no ``like``)."""

    def __init__(self, n):
        self.in_shape, self.out_shape = (n,), (n - 1,)

    def matvec(self, x):
        return x[..., 1:] - x[..., :-1]

    def rmatvec(self, y):
        z = np.zeros((*y.shape[:-1], 1), dtype=y.dtype)
        return np.concatenate([z, y], axis=-1) - np.concatenate([y, z], axis=-1)


def test_a_matrix_free_K_is_normed_in_x0s_library():
    rng = np.random.default_rng(10)
    n, lam = 2100, 0.3  # above the dense limit: Lanczos
    b = piecewise_signal(n, rng)
    K = _MatrixFree(n)
    est = estimate_norm(K, b, tol=1e-6, maxiter=100)  # as the methods size their steps
    assert not est.exact and est.upper >= 2 * np.cos(np.pi / (2 * n)) * (1 - 1e-12)
    assert est.value <= 2 * np.cos(np.pi / (2 * n)) * (1 + 1e-12)
    prob = ops.Composite(f=ops.prox.Translated(ops.prox.SquaredL2(), b), g=ops.prox.L1(lam), K=K)
    res = ops.solve(prob, ops.ChambollePock(), np.zeros(n), tol=1e-10, maxiter=20000)
    exact = ops.solve(ops.Composite(f=prob.f, g=prob.g, K=ops.operators.Difference1D(n)),
                      ops.ChambollePock(), np.zeros(n), tol=1e-10, maxiter=20000)
    assert res.success and exact.success
    assert np.allclose(res.x, exact.x, atol=1e-7)


def test_registry_round_trip():
    for name, method in (("cp", ops.ChambollePock(step=0.3, dual_step=0.2, relaxation=1.5)),
                         ("cv", ops.CondatVu(dual_step=0.7))):
        config = method_config(method)
        assert config["name"] == name
        assert set(config) == {"name", "step", "dual_step", "relaxation"}
        assert method_from_config(config) == method
        assert {f.name for f in dataclasses.fields(method)} == set(config) - {"name"}


def test_inputs_are_not_modified():
    rng = np.random.default_rng(11)
    b = piecewise_signal(20, rng)
    x0 = rng.standard_normal(20)
    keep_b, keep_x0 = b.copy(), x0.copy()
    ops.solve(tv_problem(b, 0.5), ops.ChambollePock(relaxation=1.5), x0, maxiter=50)
    assert np.array_equal(b, keep_b) and np.array_equal(x0, keep_x0)
