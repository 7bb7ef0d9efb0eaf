"""Davis–Yin three-operator splitting: answers against CVXPY and closed forms,
iterate-level equivalences with Douglas–Rachford (C = 0) and forward–backward
(A = 0), the cocoercivity it needs, and bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import to_numpy
from scipy.optimize import minimize

import opsplit as ops
from opsplit.diagnostics import check_cocoercive
from opsplit.operators import exact_cocoercivity as linear_cocoercivity
from opsplit.splitting import method_config, method_from_config, method_from_name
from opsplit.splitting.davis_yin import cocoercivity

# -- a three-term problem: ½‖Mx - b‖² + lam‖x‖₁ over the box [0, u] ----------------------


def _lasso_box(seed=0, m=12, n=8):
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((m, n))
    b = rng.standard_normal(m) * 2.0
    lam, u = 0.3, 0.4
    return M, b, lam, u


def _cvxpy_reference(M, b, lam, u):
    cp = pytest.importorskip("cvxpy")
    x = cp.Variable(M.shape[1])
    objective = cp.Minimize(0.5 * cp.sum_squares(M @ x - b) + lam * cp.norm1(x))
    cp.Problem(objective, [x >= 0, x <= u]).solve(solver="CLARABEL", tol_gap_abs=1e-12,
                                                   tol_gap_rel=1e-12, tol_feas=1e-12)
    return np.asarray(x.value)


def _problem(M, b, lam, u, xp=np, like=None):
    Mx = M if like is None else like(M)
    bx = b if like is None else like(b)
    L = float(np.linalg.norm(M, 2) ** 2)
    A = ops.Subdifferential(ops.prox.L1(lam))
    B = ops.Subdifferential(ops.prox.Box(0.0, u))
    C = ops.Gradient(lambda x: (x @ xp.matrix_transpose(Mx) - bx) @ Mx, lipschitz=L)
    return ops.Inclusion(A, B, C), L


def _natural_residual(x, M, b, lam, u, t):
    """x - clip(soft(x - t∇f(x), t·lam), 0, u): zero exactly at the minimizer
    (the prox of lam|·| + ι[0,u] on a line is the clipped soft threshold)."""
    v = x - t * (M.T @ (M @ x - b))
    soft = np.sign(v) * np.maximum(np.abs(v) - t * lam, 0.0)
    return x - np.clip(soft, 0.0, u)


def test_three_term_problem_matches_cvxpy(backend):
    be = backend
    M, b, lam, u = _lasso_box()
    problem, L = _problem(M, b, lam, u, be.xp, be.asarray)
    x0 = be.asarray(np.zeros(M.shape[1]))
    res = ops.solve(problem, ops.DavisYin(step=1.0 / L), x0, tol=1e-13, maxiter=20000)
    assert res.success, res.message
    x = to_numpy(res.x)
    ref = _cvxpy_reference(M, b, lam, u)
    assert 0 < np.count_nonzero(np.abs(ref) > 1e-6) < M.shape[1]  # both terms active
    assert np.abs(ref - u).min() < 1e-6                            # the box is active
    np.testing.assert_allclose(x, ref, atol=1e-7)
    # the optimality condition itself, to rounding
    assert np.abs(_natural_residual(x, M, b, lam, u, 1.0 / L)).max() < 1e-11


def test_a_wrong_answer_fails_the_optimality_check():
    """The natural residual above is not trivially zero: it rejects a perturbed point."""
    M, b, lam, u = _lasso_box()
    problem, L = _problem(M, b, lam, u)
    res = ops.solve(problem, ops.DavisYin(step=1.0 / L), np.zeros(M.shape[1]), tol=1e-13,
                    maxiter=20000)
    wrong = res.x + 1e-3 * np.eye(M.shape[1])[0]
    assert np.abs(_natural_residual(wrong, M, b, lam, u, 1.0 / L)).max() > 1e-5


def test_float32_stays_float32_and_batches_are_independent():
    M, b, lam, u = _lasso_box()
    problem, L = _problem(M.astype(np.float32), b.astype(np.float32), lam, u)
    rng = np.random.default_rng(1)
    x0 = rng.standard_normal((3, M.shape[1])).astype(np.float32)
    res = ops.solve(problem, ops.DavisYin(step=1.0 / L), x0, tol=1e-5, maxiter=5000)
    assert res.success and res.x.dtype == np.float32 and res.x.shape == x0.shape
    one = ops.solve(problem, ops.DavisYin(step=1.0 / L), x0[1], tol=1e-5, maxiter=5000)
    np.testing.assert_allclose(res.x[1], one.x, atol=1e-4)
    np.testing.assert_array_equal(x0, x0.copy())  # not modified


# -- iterate-level equivalences ----------------------------------------------------------


def _affine_pair(n=5, seed=2):
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((n, n))
    S = rng.standard_normal((n, n))
    P = G @ G.T / n + 0.1 * np.eye(n) + (S - S.T)  # monotone, not symmetric
    A = ops.LinearMonotone(ops.Dense(P), rng.standard_normal(n))
    B = ops.Subdifferential(ops.prox.NonNegative())
    return A, B, rng.standard_normal(n)


def _iterates(method, problem, x0, k):
    prepared = method.prepare(problem)
    state = method.init(prepared, x0)
    out = []
    for _ in range(k):
        state = method.update(prepared, state)
        out.append((state.z, state.x))
    return out


@pytest.mark.parametrize("relaxation", [1.0, 1.5])
def test_zero_C_gives_douglas_rachford_exactly(relaxation):
    A, B, x0 = _affine_pair()
    zero = ops.LinearMonotone(ops.Dense(np.zeros((5, 5))))
    dy = _iterates(ops.DavisYin(step=0.7, relaxation=relaxation), ops.Inclusion(A, B, zero),
                   x0, 30)
    dr = _iterates(ops.DouglasRachford(step=0.7, relaxation=relaxation), ops.Inclusion(A, B),
                   x0, 30)
    for (z1, x1), (z2, x2) in zip(dy, dr):
        np.testing.assert_array_equal(z1, z2)
        np.testing.assert_array_equal(x1, x2)
    # and a nonzero C changes them (the comparison can fail)
    shift = ops.LinearMonotone(ops.Dense(0.1 * np.eye(5)))
    other = _iterates(ops.DavisYin(step=0.7, relaxation=relaxation),
                      ops.Inclusion(A, B, shift), x0, 30)
    assert not np.allclose(other[-1][1], dr[-1][1])


def test_zero_A_gives_forward_backward():
    M, b, lam, u = _lasso_box()
    L = float(np.linalg.norm(M, 2) ** 2)
    C = ops.Gradient(lambda x: (M @ x - b) @ M, lipschitz=L)
    B = ops.Subdifferential(ops.prox.Box(0.0, u))
    zero = ops.Subdifferential(ops.prox.Zero())
    x0 = np.random.default_rng(3).standard_normal(M.shape[1])
    dy = _iterates(ops.DavisYin(step=1.5 / L), ops.Inclusion(zero, B, C), x0, 40)
    fb = _iterates(ops.ForwardBackward(step=1.5 / L), ops.Inclusion(C, B),
                   np.clip(x0, 0.0, u), 40)  # from x_B = J_αB(z0)
    for (_, x1), (_, x2) in zip(dy, fb):
        np.testing.assert_allclose(x1, x2, rtol=0, atol=1e-13)
    assert not np.allclose(dy[0][1], dy[-1][1])  # it moved


# -- cocoercivity --------------------------------------------------------------------------


def _sampled_cocoercivity(P, seed=0):
    """min ⟨Px, x⟩/‖Px‖² by local minimization from many starts (a reference
    independent of the SVD formula)."""
    rng = np.random.default_rng(seed)

    def ratio(x):
        Px = P @ x
        return (x @ Px) / (Px @ Px)

    return min(minimize(ratio, rng.standard_normal(P.shape[0]), method="BFGS").fun
               for _ in range(20))


def test_linear_cocoercivity_closed_forms():
    eps = 0.3
    assert linear_cocoercivity(ops.Dense(np.diag([4.0, 1.0, 0.0]))) == pytest.approx(0.25)
    assert linear_cocoercivity(ops.Diagonal(np.array([4.0, 2.0]))) == 0.25
    assert linear_cocoercivity(ops.Identity(3)) == 1.0
    assert linear_cocoercivity(2.0 * ops.Identity(3)) == 0.5
    rot = np.array([[1.0, eps], [-eps, 1.0]])  # a skew part, yet cocoercive
    assert linear_cocoercivity(ops.Dense(rot)) == pytest.approx(1 / (1 + eps**2), rel=1e-12)
    assert linear_cocoercivity(ops.Dense(np.array([[0.0, 1.0], [-1.0, 0.0]]))) == 0.0
    assert linear_cocoercivity(ops.Dense(np.diag([1.0, -1.0]))) == -np.inf
    assert linear_cocoercivity(ops.Dense(np.zeros((2, 2)))) == np.inf


def test_linear_cocoercivity_matches_sampled_minimum_and_the_bisection_check():
    rng = np.random.default_rng(4)
    G, S = rng.standard_normal((5, 5)), rng.standard_normal((5, 5))
    P = G @ G.T / 5 + 0.05 * np.eye(5) + 0.5 * (S - S.T)
    beta = linear_cocoercivity(ops.Dense(P))
    assert beta == pytest.approx(_sampled_cocoercivity(P), rel=1e-6)
    op = ops.LinearMonotone(ops.Dense(P))
    assert check_cocoercive(op, np.zeros(5), beta=beta * (1 - 1e-6)).passed
    assert not check_cocoercive(op, np.zeros(5), beta=beta * 1.01).passed


def test_cocoercivity_sources():
    assert cocoercivity(ops.Gradient(lambda x: 4.0 * x, lipschitz=4.0)) == 0.25
    assert cocoercivity(ops.LinearMonotone(ops.Dense(np.eye(2)), cocoercivity=0.3)) == 0.3
    # m/L² from declared constants (an operator declaring no cocoercivity)

    class Declared(ops.ForwardOperator):
        lipschitz, strong_monotonicity = 2.0, 0.5

        def evaluate(self, x):
            return x

    assert cocoercivity(Declared()) == 0.125
    assert cocoercivity(ops.Gradient(lambda x: x, strong_monotonicity=1.0)) is None
    assert cocoercivity(ops.Gradient(lambda x: x)) is None


def test_non_cocoercive_C_is_refused():
    A, B, _ = _affine_pair(n=2)
    skew = ops.LinearMonotone(ops.Dense(np.array([[0.0, 2.0], [-2.0, 0.0]])))
    with pytest.raises(ValueError, match="C is not cocoercive.*skew"):
        ops.solve(ops.Inclusion(A, B, skew), ops.DavisYin(step=0.1), np.zeros(2))
    declared = ops.Gradient(lambda x: x, lipschitz=1.0)
    declared.cocoercivity = 0.0
    with pytest.raises(ValueError, match="C is not cocoercive"):
        ops.solve(ops.Inclusion(A, B, declared), ops.DavisYin(step=0.1), np.zeros(2))
    not_monotone = ops.LinearMonotone(ops.Dense(np.diag([1.0, -1.0])))
    with pytest.raises(ValueError, match="not even monotone"):
        ops.solve(ops.Inclusion(A, B, not_monotone), ops.DavisYin(step=0.1), np.zeros(2))


def test_step_above_two_beta_warns_and_diverges():
    M, b, _, _ = _lasso_box()
    L = float(np.linalg.norm(M, 2) ** 2)
    C = ops.Gradient(lambda x: (M @ x - b) @ M, lipschitz=L)
    zero = ops.Subdifferential(ops.prox.Zero())
    problem = ops.Inclusion(zero, zero, C)  # gradient descent on ½‖Mx - b‖²
    with pytest.warns(RuntimeWarning, match=r"limit 2β = "):
        res = ops.solve(problem, ops.DavisYin(step=2.5 / L), np.zeros(M.shape[1]),
                        maxiter=2000)
    assert res.status is ops.Status.DIVERGED
    assert "2β" in res.message
    # below the limit: no warning, convergence
    res = ops.solve(problem, ops.DavisYin(step=1.9 / L), np.zeros(M.shape[1]), tol=1e-8,
                    maxiter=20000)
    assert res.success


def test_relaxation_above_its_limit_warns():
    M, b, lam, u = _lasso_box()
    problem, L = _problem(M, b, lam, u)
    # α = 1/L = β: the limit is 2 - 1/2 = 1.5
    with pytest.warns(RuntimeWarning, match=r"2 - α/\(2β\) = 1.5"):
        ops.solve(problem, ops.DavisYin(step=1.0 / L, relaxation=1.6), np.zeros(M.shape[1]),
                  maxiter=5)
    with pytest.raises(ValueError, match="relaxation"):
        ops.DavisYin(relaxation=2.5)


def test_mismatched_operator_shapes_name_C():
    A = ops.LinearMonotone(ops.Dense(np.eye(2)))
    B = ops.Subdifferential(ops.prox.NonNegative())
    C = ops.LinearMonotone(ops.Dense(np.eye(3)))
    with pytest.raises(ValueError, match=r"C acts on core shape \(3,\) but A on \(2,\)"):
        ops.Inclusion(A, B, C)
    ops.Inclusion(A, B, ops.Gradient(lambda x: x, core_shape=[2]))  # the same shape, as a list
    with pytest.raises(TypeError, match="three operators: ops.DavisYin"):
        ops.solve(ops.Inclusion(A, B, ops.LinearMonotone(ops.Dense(np.eye(2)))),
                  ops.ForwardBackward(step=0.1), np.zeros(2))
    with pytest.raises(TypeError, match="splits 3 operators"):
        ops.solve(ops.Inclusion(A, B), ops.DavisYin(step=0.1), np.zeros(2))
    with pytest.raises(TypeError, match="C to be evaluated"):
        ops.solve(ops.Inclusion(A, B, B), ops.DavisYin(step=0.1), np.zeros(2))


# -- error bound ----------------------------------------------------------------------------


def _lcp_reference(P, q):
    """The solution of 0 ∈ Px + q + N_{x ≥ 0}(x) by enumerating active sets."""
    n = len(q)
    for free in itertools.product([False, True], repeat=n):
        f = np.array(free)
        x = np.zeros(n)
        if f.any():
            x[f] = np.linalg.solve(P[np.ix_(f, f)], -q[f])
        w = P @ x + q
        if (x >= -1e-12).all() and (w[~f] >= -1e-12).all() and np.allclose(w[f], 0):
            return x
    raise AssertionError("no solution found")


def test_error_bound_holds():
    A, B, _ = _affine_pair(n=4, seed=5)
    b = np.array([1.0, -0.5, 2.0, 0.3])
    C = ops.Gradient(lambda x: x - b, lipschitz=1.0, strong_monotonicity=1.0)
    problem = ops.Inclusion(A, B, C)
    P = to_numpy(A.op.matrix) + np.eye(4)
    ref = _lcp_reference(P, A.offset - b)
    res = ops.solve(problem, ops.DavisYin(step=0.5, relaxation=1.0), np.zeros(4), tol=1e-6)
    assert res.success and res.unique
    err = np.linalg.norm(res.x - ref)
    assert 0 < err <= res.error_bound <= 1e3 * max(err, 1e-12)
    assert np.linalg.norm(ops.solve(problem, ops.DavisYin(step=0.5), np.zeros(4),
                                    tol=1e-13).x - ref) < 1e-10


# -- registry ---------------------------------------------------------------------------------


def test_registry_round_trip():
    method = ops.DavisYin(step=0.3, relaxation=1.2)
    config = method_config(method)
    assert config == {"name": "dy", "step": 0.3, "relaxation": 1.2}
    assert method_from_config(config) == method
    assert method_from_name("DavisYin", step=0.3, relaxation=1.2) == method
    with pytest.raises(ValueError, match="not exact"):
        method_from_config({"name": "dy", "step": 0.3})
