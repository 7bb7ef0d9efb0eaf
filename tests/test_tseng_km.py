"""Tseng's forward–backward–forward method on saddle points (against linprog and
dense solves, where forward–backward fails), and the Krasnoselskii–Mann
iteration on fixed-point problems (Krasnoselskii's rotation, averaged maps,
its equivalence with Douglas–Rachford)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import to_numpy
from scipy.optimize import linprog

import opsplit as ops
from opsplit.splitting import method_config, method_from_config, method_from_name
from opsplit.splitting.tseng import tseng_contraction

# -- Tseng: matrix games --------------------------------------------------------------------


class Saddle(ops.ForwardOperator):
    """``(x, y) ↦ (M y, -Mᵀ x)``: monotone (skew), ``‖M‖``-Lipschitz, not cocoercive."""

    def __init__(self, M):
        self.M = M
        self.lipschitz = float(np.linalg.norm(M, 2))
        self.core_shape = ((M.shape[0],), (M.shape[1],))

    def evaluate(self, v):
        x, y = v
        return (y @ self.M.T, -(x @ self.M))


def _game(M, method, maxiter=20000, tol=1e-10):
    m, n = M.shape
    B = ops.Subdifferential(ops.prox.SeparableSum([ops.prox.Simplex(), ops.prox.Simplex()]))
    x0 = (np.full(m, 1.0 / m) + 0.1 * (np.eye(m)[0] - np.eye(m)[1]), np.full(n, 1.0 / n))
    return ops.solve(ops.Inclusion(Saddle(M), B), method, x0, tol=tol, maxiter=maxiter)


def _game_value(M):
    """min over the simplex of max_j (Mᵀx)_j, by linear programming."""
    m, n = M.shape
    res = linprog(np.r_[np.zeros(m), 1.0], A_ub=np.c_[M.T, -np.ones(n)], b_ub=np.zeros(n),
                  A_eq=np.r_[np.ones(m), 0.0][None], b_eq=[1.0],
                  bounds=[(0, None)] * m + [(None, None)], method="highs")
    assert res.success
    return res.fun


ROCK_PAPER_SCISSORS = np.array([[0.0, 1.0, -1.0], [-1.0, 0.0, 1.0], [1.0, -1.0, 0.0]])


@pytest.mark.parametrize("M", [ROCK_PAPER_SCISSORS,
                               np.random.default_rng(0).standard_normal((4, 5))],
                         ids=["rps", "random"])
def test_tseng_solves_matrix_games(M):
    L = np.linalg.norm(M, 2)
    res = _game(M, ops.Tseng(step=0.9 / L))
    assert res.success, res.message
    x, y = res.x
    assert np.all(x >= 0) and np.all(y >= 0)
    np.testing.assert_allclose([x.sum(), y.sum()], 1.0, rtol=1e-12)
    gap = (x @ M).max() - (M @ y).min()  # duality gap: zero exactly at a saddle point
    assert 0 <= gap < 1e-8
    assert x @ M @ y == pytest.approx(_game_value(M), abs=1e-8)


def test_forward_backward_fails_on_the_game_where_tseng_converges():
    L = np.linalg.norm(ROCK_PAPER_SCISSORS, 2)
    res = _game(ROCK_PAPER_SCISSORS, ops.ForwardBackward(step=0.5 / L), maxiter=3000)
    assert res.status is ops.Status.MAX_ITER
    x, y = res.x
    assert (x @ ROCK_PAPER_SCISSORS).max() - (ROCK_PAPER_SCISSORS @ y).min() > 0.1


def _bilinear(n=4, seed=1):
    """min_x max_y xᵀKy + bᵀx - cᵀy as 0 ∈ A(x, y) with A affine and skew."""
    rng = np.random.default_rng(seed)
    K = rng.standard_normal((n, n)) + 2 * np.eye(n)
    b, c = rng.standard_normal(n), rng.standard_normal(n)
    skew = np.block([[np.zeros((n, n)), K], [-K.T, np.zeros((n, n))]])
    A = ops.LinearMonotone(ops.Dense(skew), np.r_[b, c])
    solution = np.r_[np.linalg.solve(K.T, c), np.linalg.solve(K, -b)]
    return ops.Inclusion(A, ops.Subdifferential(ops.prox.Zero())), solution, np.linalg.norm(K, 2)


def test_unconstrained_bilinear_saddle_point():
    problem, solution, L = _bilinear()
    fb = ops.solve(problem, ops.ForwardBackward(step=0.5 / L), np.zeros(8), maxiter=5000)
    assert fb.status is ops.Status.DIVERGED
    res = ops.solve(problem, ops.Tseng(step=0.5 / L), np.zeros(8), tol=1e-12, maxiter=20000)
    assert res.success, res.message
    np.testing.assert_allclose(res.x, solution, atol=1e-9)


def test_tseng_on_backends_with_a_box(backend):
    be = backend
    n = 3
    rng = np.random.default_rng(2)
    K = rng.standard_normal((n, n))
    skew = np.block([[np.zeros((n, n)), K], [-K.T, np.zeros((n, n))]])
    offset = rng.standard_normal(2 * n)
    A = ops.LinearMonotone(ops.Dense(be.asarray(skew)), be.asarray(offset))
    B = ops.Subdifferential(ops.prox.Box(-0.5, 0.5))
    L = np.linalg.norm(K, 2)
    res = ops.solve(ops.Inclusion(A, B), ops.Tseng(step=0.8 / L), be.asarray(np.zeros(2 * n)),
                    tol=1e-12, maxiter=50000)
    assert res.success, res.message
    x = to_numpy(res.x)
    # the variational inequality: x = P_box(x - t(Ax)) for any t > 0
    np.testing.assert_allclose(x, np.clip(x - 0.3 * (skew @ x + offset), -0.5, 0.5),
                               atol=1e-9)
    assert np.abs(x).max() <= 0.5


def test_tseng_natural_residual_and_first_step_is_forward_backward():
    problem, _, L = _bilinear()
    x0 = np.random.default_rng(3).standard_normal(8)
    tseng, fb = ops.Tseng(step=0.5 / L), ops.ForwardBackward(step=0.5 / L)
    t_prep, f_prep = tseng.prepare(problem), fb.prepare(problem)
    t1 = tseng.update(t_prep, tseng.init(t_prep, x0))
    f1 = fb.update(f_prep, fb.init(f_prep, x0))
    np.testing.assert_array_equal(t1.x, f1.x)           # y = J_αB(x - αAx)
    np.testing.assert_array_equal(t1.delta, t1.x - x0)  # residual y - x
    A = problem.A
    np.testing.assert_allclose(t1.z, t1.x - 0.5 / L * (A(t1.x) - A(x0)), atol=1e-14)


def test_tseng_contraction_bound_holds():
    rng = np.random.default_rng(4)
    n, s = 5, 0.5
    S = rng.standard_normal((n, n))
    P = s * np.eye(n) + (S - S.T)
    c = rng.standard_normal(n)
    A = ops.LinearMonotone(ops.Dense(P), c)
    problem = ops.Inclusion(A, ops.Subdifferential(ops.prox.Zero()))
    x_star = np.linalg.solve(P, -c)
    m, L = s, np.linalg.norm(P, 2)
    method = ops.Tseng(step=method_from_name("tseng").optimal_step(m, L))
    bound = method.contraction(m, L)
    assert bound < 1
    prepared = method.prepare(problem)
    state = method.init(prepared, np.zeros(n))
    errors = [np.linalg.norm(state.z - x_star)]
    for _ in range(30):
        state = method.update(prepared, state)
        errors.append(np.linalg.norm(state.z - x_star))
    ratios = np.array(errors[1:]) / np.array(errors[:-1])
    assert ratios.max() <= bound * (1 + 1e-12)
    assert ratios.max() > 0.5 * bound  # the bound is not vacuous on this problem


def test_tseng_theory_values():
    assert tseng_contraction(1.0, 2.0, 0.25) == pytest.approx(math.sqrt(0.75))
    assert tseng_contraction(1.0, 2.0, 0.5) is None
    method = ops.Tseng(step=0.1)
    assert method.step_limit(0.0, 4.0) == 0.25
    assert method.optimal_step(0.0, 4.0) is None
    m, L = 1.0, 2.0
    best = method.optimal_step(m, L)
    assert 1 - (best * L) ** 2 == pytest.approx(2 * best * m)
    grid = np.linspace(0.01, 0.49, 200)
    assert tseng_contraction(m, L, best) <= min(tseng_contraction(m, L, a) for a in grid) + 1e-12


def test_tseng_step_above_one_over_L_warns():
    problem, _, L = _bilinear()
    with pytest.warns(RuntimeWarning, match=r"Tseng's limit 1/L = "):
        res = ops.solve(problem, ops.Tseng(step=1.5 / L), np.zeros(8), maxiter=3000)
    assert not res.success


def test_tseng_error_bound_holds():
    cp = pytest.importorskip("cvxpy")
    rng = np.random.default_rng(6)
    G = rng.standard_normal((4, 4))
    P = G @ G.T + 0.5 * np.eye(4)
    q = rng.standard_normal(4)
    A = ops.LinearMonotone(ops.Dense(P), q)
    problem = ops.Inclusion(A, ops.Subdifferential(ops.prox.NonNegative()))
    x = cp.Variable(4)
    cp.Problem(cp.Minimize(0.5 * cp.quad_form(x, P) + q @ x), [x >= 0]).solve(
        solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    ref = np.asarray(x.value)
    L = np.linalg.norm(P, 2)
    res = ops.solve(problem, ops.Tseng(step=0.5 / L), np.zeros(4), tol=1e-5)
    assert res.success and res.unique
    err = np.linalg.norm(res.x - ref)
    assert err <= res.error_bound <= 1e3 * max(err, 1e-9)


# -- Krasnoselskii–Mann -------------------------------------------------------------------


def _rotation(theta):
    return np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])


def test_km_rotation_needs_averaging():
    """Krasnoselskii's example: x⁺ = Rx circles; x⁺ = (x + Rx)/2 contracts by cos(θ/2)."""
    theta = 1.0
    R = _rotation(theta)
    problem = ops.FixedPoint(lambda x: x @ R.T)
    x0 = np.array([1.0, 2.0])
    with pytest.warns(RuntimeWarning, match="1/θ = 1"):
        plain = ops.solve(problem, ops.KrasnoselskiiMann(relaxation=1.0), x0, maxiter=500,
                          tol=1e-8)
    assert plain.status is ops.Status.MAX_ITER
    np.testing.assert_allclose(plain.history_abs, 2 * math.sin(theta / 2) * np.linalg.norm(x0),
                               rtol=1e-12)
    averaged = ops.solve(problem, ops.KrasnoselskiiMann(relaxation=0.5), x0, tol=1e-10,
                         relative=False, maxiter=500)
    assert averaged.success
    np.testing.assert_allclose(averaged.x, 0.0, atol=1e-9)
    rates = averaged.history_abs[1:] / averaged.history_abs[:-1]
    np.testing.assert_allclose(rates, math.cos(theta / 2), rtol=1e-9)


def test_km_on_the_peaceman_rachford_map_is_douglas_rachford():
    rng = np.random.default_rng(7)
    n, step, lam = 4, 0.8, 0.6
    G = rng.standard_normal((n, n))
    A = ops.LinearMonotone(ops.Dense(G @ G.T / n + 0.1 * np.eye(n)), rng.standard_normal(n))
    B = ops.Subdifferential(ops.prox.NonNegative())
    RA, RB = A.reflected_resolvent(step), B.reflected_resolvent(step)
    x0 = rng.standard_normal(n)
    km = ops.solve(ops.FixedPoint(lambda u: RA(RB(u))), ops.KrasnoselskiiMann(relaxation=lam),
                   x0, tol=1e-300, maxiter=25)
    dr = ops.solve(ops.Inclusion(A, B), ops.DouglasRachford(step=step, relaxation=2 * lam), x0,
                   tol=1e-300, maxiter=25)
    np.testing.assert_allclose(km.state.z, dr.state.z, atol=1e-12)
    np.testing.assert_allclose(km.history_abs, dr.history_abs, rtol=1e-9)
    assert not np.allclose(km.state.z, x0)


def test_km_on_an_averaged_composition_of_projections():
    """P_C ∘ P_D (hyperplane after ball) is 2/3-averaged: KM converges for λ < 3/2 to
    a point of C ∩ D."""
    a = np.array([1.0, 2.0, -1.0])
    radius = 1.0

    def T(x):
        nrm = np.linalg.norm(x, axis=-1, keepdims=True)
        p = x * np.minimum(1.0, radius / nrm)
        return p - ((p @ a - 1.0)[..., None] / (a @ a)) * a

    problem = ops.FixedPoint(T, core_shape=(3,), averaged=2 / 3)
    x0 = np.array([[3.0, -4.0, 5.0], [0.0, 0.0, -2.0]])
    res = ops.solve(problem, ops.KrasnoselskiiMann(relaxation=1.4), x0, tol=1e-12,
                    maxiter=5000)
    assert res.success, res.message
    np.testing.assert_allclose(res.x @ a, 1.0, atol=1e-10)
    assert np.all(np.linalg.norm(res.x, axis=-1) <= radius + 1e-10)
    np.testing.assert_allclose(T(res.x), res.x, atol=1e-10)
    with pytest.warns(RuntimeWarning, match="1/θ = 1.5"):
        ops.solve(problem, ops.KrasnoselskiiMann(relaxation=1.5), x0, maxiter=3)


def test_km_carrying_T_is_the_same_as_the_problem_carrying_it():
    R = _rotation(0.7)

    def T(x):
        return x @ R.T

    x0 = np.array([0.3, -1.0])
    a = ops.solve(ops.FixedPoint(T), ops.KrasnoselskiiMann(relaxation=0.5), x0, maxiter=40)
    b = ops.solve(ops.FixedPoint(), ops.KrasnoselskiiMann(T, 0.5), x0, maxiter=40)
    np.testing.assert_array_equal(a.x, b.x)
    with pytest.raises(ValueError, match="give it to one of them"):
        ops.solve(ops.FixedPoint(T), ops.KrasnoselskiiMann(lambda x: x, 0.5), x0)
    with pytest.raises(ValueError, match="T: give the map"):
        ops.solve(ops.FixedPoint(), ops.KrasnoselskiiMann(), x0)


def test_km_on_backends(backend, dtype):
    be = backend
    R = be.asarray(_rotation(1.2), dtype)
    problem = ops.FixedPoint(lambda x: x @ be.xp.matrix_transpose(R), core_shape=(2,))
    x0 = be.asarray(np.array([[1.0, 0.0], [0.5, 2.0]]), dtype)
    tol = 1e-5 if dtype == "float32" else 1e-12
    res = ops.solve(problem, ops.KrasnoselskiiMann(relaxation=0.5), x0, tol=tol,
                    relative=False)
    assert res.success and res.x.dtype == x0.dtype and res.x.shape == (2, 2)
    assert np.abs(to_numpy(res.x)).max() < 10 * tol


def test_km_bad_input():
    x0 = np.zeros(2)
    with pytest.raises(TypeError, match="T must be callable"):
        ops.KrasnoselskiiMann(3.0)
    with pytest.raises(TypeError, match="T must be callable"):
        ops.FixedPoint("T")
    with pytest.raises(ValueError, match="relaxation"):
        ops.KrasnoselskiiMann(relaxation=0.0)
    with pytest.raises(ValueError, match="averaged"):
        ops.FixedPoint(lambda x: x, averaged=1.5)
    with pytest.raises(ValueError, match="x0 must end with axes"):
        ops.solve(ops.FixedPoint(lambda x: x, core_shape=3), ops.KrasnoselskiiMann(), x0)
    with pytest.raises(ValueError, match=r"T returned shape \(1,\)"):
        ops.solve(ops.FixedPoint(lambda x: x[:1]), ops.KrasnoselskiiMann(), x0)
    with pytest.raises(TypeError, match="solves a FixedPoint"):
        problem, _, _ = _bilinear()
        ops.solve(problem, ops.KrasnoselskiiMann(), np.zeros(8))
    with pytest.raises(TypeError, match="Tseng solves a.*Inclusion, got FixedPoint"):
        ops.solve(ops.FixedPoint(lambda x: x), ops.Tseng(), x0)


# -- registry ---------------------------------------------------------------------------------


def test_registry_round_trips():
    for method in (ops.Tseng(step=0.25), ops.KrasnoselskiiMann(relaxation=0.7)):
        config = method_config(method)
        assert method_from_config(config) == method
    assert method_config(ops.Tseng(step=0.25)) == {"name": "tseng", "step": 0.25}
    assert method_config(ops.KrasnoselskiiMann(relaxation=0.7)) == {
        "name": "km", "step": 1.0, "T": None, "relaxation": 0.7}
    with pytest.raises(TypeError, match="T is a callable"):
        method_config(ops.KrasnoselskiiMann(lambda x: x, 0.5))
    assert method_from_name("km", relaxation=0.3) == ops.KrasnoselskiiMann(relaxation=0.3)
