"""ADMM (``ops.ADMM``) on ``ops.Constrained``, ``ops.Inclusion`` and ``ops.Composite``.

References: scikit-learn's Lasso, SciPy's linprog (basis pursuit), CVXPY
(total variation), Douglas–Rachford's iterates (the consensus form), the
optimality conditions through ADMM's dual variable.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import opsplit as ops
from opsplit.diagnostics import dr_contraction
from opsplit.splitting import method_config, method_from_config

# -- problems -----------------------------------------------------------------------------


def lasso_data(m=40, n=80, seed=0):
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((m, n))
    M /= np.linalg.norm(M, axis=0)
    x_true = np.zeros(n)
    x_true[rng.choice(n, 5, replace=False)] = rng.standard_normal(5)
    b = M @ x_true + 0.05 * rng.standard_normal(m)
    lam = 0.1 * np.abs(M.T @ b).max()
    return M, b, lam


def tv_data(n=30, seed=1):
    rng = np.random.default_rng(seed)
    y = np.repeat([0.0, 2.0, -1.0], n // 3) + 0.3 * rng.standard_normal(n)
    D = np.diff(np.eye(n), axis=0)
    return y, D


def tv_problem(y, D, lam, **kw):
    f = ops.prox.Translated(ops.prox.SquaredL2(), y)  # ½‖x - y‖²
    return ops.Constrained(f, ops.prox.L1(lam), A=ops.Dense(D), **kw)


def tv_cvxpy(y, D, lam):
    import cvxpy as cp

    x = cp.Variable(y.shape[0])
    cp.Problem(cp.Minimize(0.5 * cp.sum_squares(x - y) + lam * cp.norm1(D @ x))).solve(
        solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    return x.value


def tv_objective(x, y, D, lam):
    return 0.5 * np.sum((x - y) ** 2) + lam * np.abs(D @ x).sum()


def soft(v, t):
    return np.sign(v) * np.maximum(np.abs(v) - t, 0.0)


# -- LASSO with a factorized least-squares prox -------------------------------------------


def test_lasso_matches_scikit_learn():
    from sklearn.linear_model import Lasso

    M, b, lam = lasso_data()
    m = M.shape[0]
    # scikit-learn minimizes (1/(2m))‖Mx - b‖² + α‖x‖₁: α = λ/m for ½‖Mx - b‖² + λ‖x‖₁.
    ref = Lasso(alpha=lam / m, fit_intercept=False, tol=1e-15, max_iter=1_000_000).fit(M, b).coef_
    problem = ops.Constrained(ops.prox.LeastSquares(M, b), ops.prox.L1(lam))
    res = ops.solve(problem, ops.ADMM(step=1.0), np.zeros(M.shape[1]), tol=1e-12, maxiter=20_000)
    assert res.success, res.message
    np.testing.assert_allclose(res.x, ref, rtol=0, atol=1e-8 * np.abs(ref).max())
    # the optimality conditions, through ADMM's dual y = ρu: ∇f(x) + y = 0, y ∈ λ∂‖z‖₁
    y = ops.ADMM(step=1.0).dual(res.state)
    np.testing.assert_allclose(M.T @ (M @ res.x - b), -y, atol=1e-8)
    assert np.abs(y).max() <= lam * (1 + 1e-9)
    support = np.abs(res.x) > 1e-8
    np.testing.assert_allclose(y[support], lam * np.sign(res.x[support]), rtol=1e-7)
    # the comparison can fail: another λ gives another answer
    other = ops.solve(ops.Constrained(ops.prox.LeastSquares(M, b), ops.prox.L1(2 * lam)),
                      ops.ADMM(step=1.0), np.zeros(M.shape[1]), tol=1e-12, maxiter=20_000)
    assert np.abs(other.x - ref).max() > 1e-3


def test_lasso_inclusion_form_is_the_same_solve():
    """``Inclusion(∂f, ∂g)`` runs the consensus form: same answer, and ADMM returns
    ``z`` (exactly sparse) there."""
    M, b, lam = lasso_data(seed=2)
    f, g = ops.prox.LeastSquares(M, b), ops.prox.L1(lam)
    x0 = np.zeros(M.shape[1])
    a = ops.solve(ops.Constrained(f, g), ops.ADMM(step=0.5), x0, tol=1e-12, maxiter=20_000)
    i = ops.solve(ops.Inclusion(ops.Subdifferential(f), ops.Subdifferential(g)),
                  ops.ADMM(step=0.5), x0, tol=1e-12, maxiter=20_000)
    assert a.success and i.success
    assert a.iterations == i.iterations
    np.testing.assert_allclose(i.x, a.x, atol=1e-10)
    np.testing.assert_array_equal(i.x, soft(i.x, 0.0))  # z is a prox of λ‖·‖₁: zeros are exact
    assert np.count_nonzero(i.x) < M.shape[1]


# -- a general A: basis pursuit, linearized x-update --------------------------------------


def basis_pursuit_linprog(M, b):
    from scipy.optimize import linprog

    m, n = M.shape
    r = linprog(np.ones(2 * n), A_eq=np.hstack([M, -M]), b_eq=b, bounds=(0, None),
                method="highs", options={"primal_feasibility_tolerance": 1e-10,
                                         "dual_feasibility_tolerance": 1e-10})
    assert r.success
    return r.x[:n] - r.x[n:]


@pytest.mark.parametrize("given_norm", [False, True])
def test_basis_pursuit_matches_linprog(given_norm):
    rng = np.random.default_rng(3)
    M = rng.standard_normal((20, 50))
    x_true = np.zeros(50)
    x_true[[3, 17, 41]] = [1.5, -2.0, 0.7]
    b = M @ x_true
    ref = basis_pursuit_linprog(M, b)
    # min ‖x‖₁ s.t. Mx - z = 0, z ∈ {b}: A = M (linearized), B = -I
    norm = float(np.linalg.norm(M, 2)) if given_norm else None
    problem = ops.Constrained(ops.prox.L1(1.0), ops.prox.Box(b, b), A=ops.Dense(M), norm_A=norm)
    res = ops.solve(problem, ops.ADMM(step=0.05), np.zeros(50), tol=1e-11, maxiter=50_000)
    assert res.success, res.message
    np.testing.assert_allclose(res.x, ref, atol=1e-7)
    np.testing.assert_allclose(M @ res.x, b, atol=1e-7)
    assert np.abs(res.x).sum() == pytest.approx(np.abs(ref).sum(), rel=1e-9)
    # the residual includes √μ(x⁺ - x): the linearized update's x is part of the fixed point
    assert len(res.state.delta) == 3


def test_linearized_update_needs_a_norm_it_cannot_find():
    class Shift(ops.LinearOperator):  # holds no array: no dtype to estimate ‖A‖ in
        in_shape = out_shape = (4,)

        def matvec(self, x):
            return np.roll(x, 1, axis=-1)

        def rmatvec(self, y):
            return np.roll(y, -1, axis=-1)

    problem = ops.Constrained(ops.prox.L1(1.0), ops.prox.Zero(), A=Shift())
    with pytest.raises(ValueError, match="norm_A"):
        ops.solve(problem, ops.ADMM(), np.zeros(4))
    res = ops.solve(ops.Constrained(ops.prox.SquaredL2(), ops.prox.L1(1.0), A=Shift(),
                                    c=np.ones(4), norm_A=1.0),
                    ops.ADMM(), np.zeros(4), tol=1e-12, maxiter=5000)
    # min ½‖x‖² + ‖z‖₁, shift(x) - z = 1: x = shift⁻¹(1 + z), z = argmin ½‖1 + z‖² + ‖z‖₁ = 0
    np.testing.assert_allclose(res.x, np.ones(4), atol=1e-9)


# -- total variation: A = D -----------------------------------------------------------------


def test_total_variation_matches_cvxpy():
    y, D = tv_data()
    lam = 0.5
    ref = tv_cvxpy(y, D, lam)
    method = ops.ADMM(step=1.0)
    res = ops.solve(tv_problem(y, D, lam), method, np.zeros_like(y), tol=1e-12, maxiter=50_000)
    assert res.success, res.message
    np.testing.assert_allclose(res.x, ref, atol=1e-6)
    assert tv_objective(res.x, y, D, lam) <= tv_objective(ref, y, D, lam) + 1e-10
    # optimality: x - y + Dᵀw = 0 with w = ρu ∈ λ∂‖Dx‖₁
    w = method.dual(res.state)
    np.testing.assert_allclose(res.x - y + D.T @ w, 0.0, atol=1e-9)
    assert np.abs(w).max() <= lam * (1 + 1e-9)
    # and it is not the answer for another λ
    assert np.abs(tv_cvxpy(y, D, 2 * lam) - res.x).max() > 1e-2


def test_composite_problem_runs_with_A_equal_K():
    y, D = tv_data()
    lam = 0.5
    f = ops.prox.Translated(ops.prox.SquaredL2(), y)
    composite = ops.Composite(f=f, g=ops.prox.L1(lam), K=ops.Dense(D))
    a = ops.solve(composite, ops.ADMM(step=1.0), np.zeros_like(y), tol=1e-12, maxiter=50_000)
    b = ops.solve(tv_problem(y, D, lam), ops.ADMM(step=1.0), np.zeros_like(y), tol=1e-12,
                  maxiter=50_000)
    assert a.success and a.iterations == b.iterations
    np.testing.assert_array_equal(a.x, b.x)
    with pytest.raises(TypeError, match="smooth"):
        ops.solve(ops.Composite(f=f, g=ops.prox.L1(lam), K=ops.Dense(D),
                                smooth=ops.Gradient(lambda x: x, lipschitz=1.0)),
                  ops.ADMM(), np.zeros_like(y))


@pytest.mark.parametrize("relaxation", [0.7, 1.6])
def test_relaxation_gives_the_same_answer(relaxation):
    y, D = tv_data()
    ref = tv_cvxpy(y, D, 0.5)
    res = ops.solve(tv_problem(y, D, 0.5), ops.ADMM(step=1.0, relaxation=relaxation),
                    np.zeros_like(y), tol=1e-12, maxiter=50_000)
    assert res.success
    np.testing.assert_allclose(res.x, ref, atol=1e-6)


# -- Douglas–Rachford equivalence -----------------------------------------------------------


@pytest.mark.parametrize("relaxation", [1.0, 1.5])
def test_consensus_admm_is_douglas_rachford_iterate_by_iterate(relaxation):
    """With ``v = z + u``, ADMM's ``z`` is DR's ``x = J_{αB}(v)`` at the same
    step and relaxation (Gabay 1983; Eckstein–Bertsekas 1992), from the same x0."""
    rng = np.random.default_rng(4)
    M, b, lam = lasso_data(20, 30, seed=4)
    problem = ops.Inclusion(ops.Subdifferential(ops.prox.LeastSquares(M, b)),
                            ops.Subdifferential(ops.prox.L1(lam)))
    x0 = rng.standard_normal(30)

    def run(method, k=40):
        prepared = method.prepare(problem)
        state = method.init(prepared, x0)
        states = [state]
        for _ in range(k):
            state = method.update(prepared, state)
            states.append(state)
        return states

    admm = run(ops.ADMM(step=0.3, relaxation=relaxation))
    dr = run(ops.DouglasRachford(step=0.3, relaxation=relaxation))
    for a, d in zip(admm, dr):
        u, Bz = a.z
        np.testing.assert_allclose(a.x, d.x, rtol=0, atol=1e-12)  # z_k = x_k of DR
        np.testing.assert_allclose(-Bz + u, d.z, rtol=0, atol=1e-12)  # z + u = v (B = -I)
    assert np.abs(admm[-1].x - admm[1].x).max() > 1e-3  # the iterates did move
    # the mapping is α = 1/ρ = step: another step breaks the equivalence
    other = run(ops.DouglasRachford(step=0.6, relaxation=relaxation), k=5)
    assert np.abs(other[5].x - admm[5].x).max() > 1e-6


def test_inclusion_of_affine_operators_matches_douglas_rachford():
    """Any two resolvent operators (here a monDEQ-like affine one): ADMM solves the
    inclusion like Douglas–Rachford, and the answer satisfies it."""
    rng = np.random.default_rng(5)
    n = 6
    W = rng.standard_normal((n, n))
    L = np.eye(n) + W - W.T + 0.1 * W @ W.T
    q = rng.standard_normal(n)
    F = ops.LinearMonotone(ops.Dense(L), q)
    G = ops.Subdifferential(ops.prox.NonNegative())
    res = ops.solve(ops.Inclusion(F, G), ops.ADMM(step=0.5), np.zeros(n), tol=1e-13,
                    maxiter=10_000)
    x = res.x
    assert res.success and x.min() >= 0
    # complementarity: x ≥ 0, Lx + q ≥ 0, x ⟂ (Lx + q)
    w = L @ x + q
    assert w.min() >= -1e-10 and abs(x @ w) < 1e-10


# -- residual balancing ---------------------------------------------------------------------


def test_residual_balancing_rescues_a_badly_scaled_rho():
    y, D = tv_data(n=60)
    lam = 0.5
    problem = tv_problem(y, D, lam)
    x0 = np.zeros_like(y)
    ref = tv_cvxpy(y, D, lam)
    # ρ = 0.1 is too small here (ρ ≈ 1-8 is good)
    plain = ops.solve(problem, ops.ADMM(step=10.0), x0, tol=1e-9, maxiter=30_000)
    balanced_method = ops.ADMM(step=10.0, balance=True, balance_every=5)
    balanced = ops.solve(problem, balanced_method, x0, tol=1e-9, maxiter=30_000)
    assert plain.success and balanced.success
    assert balanced.iterations * 5 < plain.iterations, (balanced.iterations, plain.iterations)
    np.testing.assert_allclose(balanced.x, ref, atol=1e-6)
    np.testing.assert_allclose(plain.x, ref, atol=1e-6)
    rho = balanced_method.rho(balanced.state)
    assert rho >= 0.1 * 2**3  # ρ went up from 0.1 by several factors τ = 2
    # the dual variable is rescaled with ρ: it still certifies optimality
    w = balanced_method.dual(balanced.state)
    np.testing.assert_allclose(balanced.x - y + D.T @ w, 0.0, atol=1e-7)


def test_balancing_with_a_factorized_prox_refactorizes_only_when_rho_changes():
    """Each change of ρ rebuilds the maps (one factorization); the step of each
    least-squares factorization is recorded by counting prox_map calls."""
    M, b, lam = lasso_data(seed=6)
    calls = []

    class Counting(ops.prox.LeastSquares):
        def prox_map(self, step=1.0):
            calls.append(step)
            return super().prox_map(step)

    problem = ops.Constrained(Counting(M, b), ops.prox.L1(lam))
    method = ops.ADMM(step=100.0, balance=True, balance_every=10, balance_until=200)
    res = ops.solve(problem, method, np.zeros(M.shape[1]), tol=1e-10, maxiter=20_000)
    assert res.success
    changes = len(calls) - 1
    assert 1 <= changes <= 200 // 10
    assert calls[0] == pytest.approx(100.0)
    assert 1.0 / method.rho(res.state) == pytest.approx(calls[-1])
    plain = ops.solve(ops.Constrained(ops.prox.LeastSquares(M, b), ops.prox.L1(lam)),
                      ops.ADMM(step=100.0), np.zeros(M.shape[1]), tol=1e-10, maxiter=20_000)
    np.testing.assert_allclose(res.x, plain.x, atol=1e-7)


# -- batches, dtypes, backends --------------------------------------------------------------


def test_batched_equals_per_sample():
    rng = np.random.default_rng(7)
    _, D = tv_data(n=24)
    Y = rng.standard_normal((3, 24)).cumsum(axis=1)
    method = ops.ADMM(step=0.7, relaxation=1.4)
    batched = ops.solve(tv_problem(Y, D, 0.3), method, np.zeros_like(Y), tol=1e-12,
                        maxiter=50_000)
    assert batched.success and batched.residuals.shape == (3,)
    for i in range(3):
        one = ops.solve(tv_problem(Y[i], D, 0.3), method, np.zeros(24), tol=1e-12,
                        maxiter=50_000)
        assert one.iterations <= batched.iterations
        np.testing.assert_allclose(batched.x[i], one.x, atol=1e-9)
    # the samples differ, so the comparison means something
    assert np.abs(batched.x[0] - batched.x[1]).max() > 0.1


def test_batched_right_hand_side():
    """``c`` with batch axes: min ½‖x‖² s.t. x - z = c_i, z ≥ 0, i.e. x = max(c_i, 0)...
    solved per sample."""
    rng = np.random.default_rng(8)
    C = rng.standard_normal((4, 5))
    # min ½‖x‖² + ι(z ≥ 0) s.t. x - z = C: x = z + C, z = argmin ½‖z + C‖², z ≥ 0 = max(-C, 0)
    problem = ops.Constrained(ops.prox.SquaredL2(), ops.prox.NonNegative(),
                              A=ops.Identity(5), c=C)
    res = ops.solve(problem, ops.ADMM(), np.zeros((4, 5)), tol=1e-13, maxiter=5000)
    np.testing.assert_allclose(res.x, C + np.maximum(-C, 0.0), atol=1e-12)
    with pytest.raises(ValueError, match="x0"):
        ops.solve(problem, ops.ADMM(), np.zeros(5))  # c has batch axes that x0 lacks


def test_float32_stays_float32(backend):
    y, D = tv_data(n=12)
    y32 = backend.asarray(y, "float32")
    problem = ops.Constrained(ops.prox.Translated(ops.prox.SquaredL2(), y32), ops.prox.L1(0.3),
                              A=ops.Dense(backend.asarray(D, "float32")))
    for method in (ops.ADMM(step=1.0), ops.ADMM(step=1.0, relaxation=1.5, balance=True,
                                                balance_every=3)):
        res = ops.solve(problem, method, backend.asarray(np.zeros(12), "float32"), tol=1e-5,
                        maxiter=20_000)
        assert res.success, res.message
        assert res.x.dtype == backend.xp.float32
        assert all(d.dtype == backend.xp.float32 for d in res.state.delta)
        ref = tv_cvxpy(y, D, 0.3)
        np.testing.assert_allclose(backend.to_numpy(res.x), ref, atol=1e-3)


def test_inputs_are_not_mutated():
    y, D = tv_data()
    y0, D0 = y.copy(), D.copy()
    x0 = np.ones_like(y)
    ops.solve(tv_problem(y, D, 0.5, c=np.zeros(D.shape[0])), ops.ADMM(relaxation=1.5), x0,
              tol=1e-8, maxiter=500)
    np.testing.assert_array_equal(x0, np.ones_like(y))
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(D, D0)


# -- bad input ------------------------------------------------------------------------------


def test_bad_problems_name_the_argument():
    f, g = ops.prox.L1(1.0), ops.prox.Zero()
    A = ops.Dense(np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"^B maps to shape \(2,\) but A maps to \(3,\)"):
        ops.Constrained(f, g, A=A, B=ops.Dense(np.ones((2, 4))))
    with pytest.raises(ValueError, match=r"^c must end with axes \(3,\)"):
        ops.Constrained(f, g, A=A, c=np.zeros(4))
    with pytest.raises(TypeError, match=r"^A must be a LinearOperator"):
        ops.Constrained(f, g, A=np.ones((3, 4)))
    with pytest.raises(TypeError, match=r"^B must be a LinearOperator"):
        ops.Constrained(f, g, B=lambda z: z)
    with pytest.raises(TypeError, match=r"^g must be a ProxFunction"):
        ops.Constrained(f, ops.Subdifferential(g))
    with pytest.raises(ValueError, match="c must"):
        ops.Constrained(f, g, A=A, c=np.array([0.0, np.nan, 0.0]))
    with pytest.raises(TypeError, match="^c has dtype float32"):
        ops.Constrained(f, g, A=A, c=np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match="norm_A"):
        ops.Constrained(f, g, A=A, norm_A=-1.0)
    # x0 that does not fit A
    with pytest.raises(ValueError, match="x0"):
        ops.solve(ops.Constrained(f, g, A=A), ops.ADMM(), np.zeros(3))
    # a sound problem of the same kind is accepted
    ops.Constrained(f, g, A=A, B=ops.Dense(np.ones((3, 2))), c=np.zeros(3))


def test_bad_hyperparameters_and_problems():
    with pytest.raises(ValueError, match="relaxation"):
        ops.ADMM(relaxation=2.0)
    with pytest.raises(ValueError, match="step"):
        ops.ADMM(step=0.0)
    with pytest.raises(TypeError, match="balance"):
        ops.ADMM(balance=1)
    with pytest.raises(ValueError, match="balance_mu"):
        ops.ADMM(balance_mu=1.0)
    with pytest.raises(ValueError, match="balance_tau"):
        ops.ADMM(balance_tau=0.5)
    with pytest.raises(ValueError, match="balance_every"):
        ops.ADMM(balance_every=0)
    F = ops.Gradient(lambda x: x)
    with pytest.raises(TypeError, match="resolvent"):
        ops.solve(ops.Inclusion(F, ops.Subdifferential(ops.prox.Zero())), ops.ADMM(),
                  np.zeros(2))


# -- registry and theory --------------------------------------------------------------------


def test_config_round_trip_is_exact():
    method = ops.ADMM(step=0.3, relaxation=1.7, balance=True, balance_every=7, balance_mu=5.0,
                      balance_tau=3.0, balance_until=400)
    config = method_config(method)
    assert config == {"name": "admm", "step": 0.3, "relaxation": 1.7, "balance": True,
                      "balance_every": 7, "balance_mu": 5.0, "balance_tau": 3.0,
                      "balance_until": 400}
    assert method_from_config(json.loads(json.dumps(config))) == method
    config.pop("balance_tau")
    with pytest.raises(ValueError, match="missing"):
        method_from_config(config)


def test_theory_is_douglas_rachford_s():
    m, L = 0.3, 2.0
    for step in (1e-3, 0.5, 1e3):
        for relaxation in (1.0, 1.5):
            meth = ops.ADMM(step=step, relaxation=relaxation)
            assert meth.contraction(m, L) == dr_contraction(m, L, step, relaxation) < 1
            assert meth.step_limit(m, L) == math.inf
            assert meth.contraction(0.0, L) == pytest.approx(1.0)  # no strong convexity
    assert ops.ADMM().optimal_step(m, L) == 1.0 / L
    # the contraction bound holds on a strongly convex consensus problem
    rng = np.random.default_rng(9)
    d = rng.uniform(m, L, 8)
    F = ops.LinearMonotone(ops.Diagonal(d), rng.standard_normal(8), lipschitz=L,
                           strong_monotonicity=m)
    res = ops.solve(ops.Inclusion(F, ops.Subdifferential(ops.prox.L1(0.1))), ops.ADMM(step=0.5),
                    np.zeros(8), tol=1e-12, maxiter=5000)
    h = res.history_abs
    assert np.all(h[5:] <= 1.5 * h[4:-1])
    assert (h[-1] / h[4]) ** (1 / (len(h) - 5)) <= dr_contraction(m, L, 0.5) + 1e-2


def test_balancing_explains_an_operator_precomputed_for_one_step():
    """A resolvent precomputed for one step (a monDEQ's) cannot follow a new ρ:
    the error says so instead of the operator's bare complaint."""
    op = ops.Dense(np.array([[2.0, 1.0], [-1.0, 2.0]]))
    F = ops.LinearMonotone(op, np.array([1.0, -3.0]),
                           precomputed=ops.operators.precompute(op, 100.0))
    problem = ops.Inclusion(F, ops.Subdifferential(ops.prox.NonNegative()))
    method = ops.ADMM(step=100.0, balance=True, balance_every=1)
    with pytest.raises(ValueError, match=r"residual balancing moved ρ.*balance=False"):
        ops.solve(problem, method, np.zeros(2), tol=1e-14, maxiter=100)
    res = ops.solve(problem, ops.ADMM(step=100.0), np.zeros(2), tol=1e-12, maxiter=10_000)
    assert res.success


def test_a_change_of_rho_keeps_the_dual_variable():
    """Boyd §3.4.1: when ρ changes the scaled dual u = y/ρ is rescaled, so y itself
    is continuous: at the first change, y equals that of the same step without
    balancing."""
    y, D = tv_data()
    problem = tv_problem(y, D, 0.5)
    balanced, plain = ops.ADMM(step=10.0, balance=True, balance_every=3), ops.ADMM(step=10.0)
    pb, pp = balanced.prepare(problem), plain.prepare(problem)
    sb, sp = balanced.init(pb, np.zeros_like(y)), plain.init(pp, np.zeros_like(y))
    changed_at = None
    for k in range(1, 100):
        sb, sp = balanced.update(pb, sb), plain.update(pp, sp)
        np.testing.assert_allclose(balanced.dual(sb), plain.dual(sp), atol=1e-12)
        np.testing.assert_allclose(sb.x, sp.x, atol=1e-12)
        if balanced.rho(sb) != plain.rho(sp):
            changed_at = k
            break
    # ρ = 0.1 doubled at a balancing point
    assert changed_at is not None and changed_at % 3 == 0 and balanced.rho(sb) == 0.2
    sb, sp = balanced.update(pb, sb), plain.update(pp, sp)
    assert np.abs(sb.x - sp.x).max() > 1e-6  # from there on the iterations differ


def test_consensus_over_two_shards():
    """Consensus ADMM (Boyd §7.1): x = (x₁, x₂) copies of the unknown, one per data
    shard, B = -[I; I].  Since BᵀB = 2I = ‖B‖²I the linearized z-update is exact
    (the prox of g at the average); the answer is the LASSO of the stacked data."""
    from scipy.linalg import block_diag
    from sklearn.linear_model import Lasso

    M, b, lam = lasso_data(60, 30, seed=10)
    (M1, M2), (b1, b2) = np.split(M, [25]), np.split(b, [25])  # shards of unequal sizes
    n = M.shape[1]
    f = ops.prox.LeastSquares(block_diag(M1, M2), np.concatenate([b1, b2]))
    stack = ops.Dense(-np.vstack([np.eye(n), np.eye(n)]))
    problem = ops.Constrained(f, ops.prox.L1(lam), A=ops.Identity(2 * n), B=stack)
    method = ops.ADMM(step=1.0)
    res = ops.solve(problem, method, np.zeros(2 * n), tol=1e-12, maxiter=20_000)
    assert res.success, res.message
    ref = Lasso(alpha=lam / M.shape[0], fit_intercept=False, tol=1e-15,
                max_iter=1_000_000).fit(M, b).coef_
    np.testing.assert_allclose(res.x[:n], ref, atol=1e-8)
    np.testing.assert_allclose(res.x[n:], ref, atol=1e-8)
    # the z-update is the prox of g at the average of the copies (x + u, here u = 0):
    # z⁰ = soft(mean(x0₁, x0₂), λ/(2ρ)); the state's governing variable is (u, Bz)
    x0 = np.random.default_rng(11).standard_normal(2 * n)
    state = method.init(method.prepare(problem), x0)
    _, Bz = state.z
    np.testing.assert_allclose(-Bz[:n], soft(x0.reshape(2, n).mean(axis=0), lam / 2.0),
                               atol=1e-12)
    np.testing.assert_array_equal(Bz[:n], Bz[n:])


def test_linearized_admm_takes_the_exact_norm_of_an_operator_holding_no_array():
    """A = Difference1D holds no array; its exact norm comes from its structure, so
    no norm_A is needed, and the answer is the exact TV prox (an independent
    direct algorithm)."""
    n = 40
    y = np.cumsum(np.random.default_rng(5).standard_normal(n))
    problem = ops.Constrained(ops.prox.Translated(ops.prox.SquaredL2(1.0), y),
                              ops.prox.L1(1.0), A=ops.operators.Difference1D(n))
    res = ops.solve(problem, ops.ADMM(step=1.0), np.zeros(n), tol=1e-12, maxiter=50_000)
    assert res.success
    exact = ops.prox.TotalVariation1D(1.0).prox(y, 1.0)
    np.testing.assert_allclose(res.x, exact, atol=1e-7)
    assert np.max(np.abs(res.x - y)) > 0.1  # the regularizer acts
