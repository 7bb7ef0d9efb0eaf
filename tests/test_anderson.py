"""Safeguarded Anderson acceleration (ops.Anderson): faster where it should be,
never much slower, same answers as the plain method, per-sample batches."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import to_numpy

import opsplit as ops
from opsplit import nn
from opsplit.splitting import SplittingMethod, State, method_config, method_from_config, method_name

#: Anderson with the safeguard and the conditioning restart switched off.
UNSAFE = dict(safeguard=1e300, safeguard_bound=1e300, rcond=0.0, regularization=1e-14)


def _lasso(m, n, seed=0):
    """LASSO with normalized Gaussian columns, λ = 0.1‖Aᵀb‖∞, as an inclusion."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, n))
    A /= np.linalg.norm(A, axis=0)
    b = rng.standard_normal(m)
    lam = 0.1 * np.abs(A.T @ b).max()
    problem = ops.Inclusion(ops.Subdifferential(ops.prox.LeastSquares(A, b)),
                            ops.Subdifferential(ops.prox.L1(lam)))
    return problem, A, b, lam


def _nnls(seed=1):
    rng = np.random.default_rng(seed)
    A, b = rng.standard_normal((60, 30)), rng.standard_normal(60)
    return ops.Inclusion(ops.LinearMonotone(ops.Dense(A.T @ A), -A.T @ b),
                         ops.Subdifferential(ops.prox.NonNegative())), np.linalg.norm(A, 2) ** 2


def _box_qp(seed=2, n=60):
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((n, n))
    Q = M @ M.T / n + 0.01 * np.eye(n)
    return ops.Inclusion(ops.LinearMonotone(ops.Dense(Q), rng.standard_normal(n)),
                         ops.Subdifferential(ops.prox.Box(-0.5, 0.5))), np.linalg.norm(Q, 2)


def _dense_monotone(seed=3, n=40, batch=None):
    """Strongly monotone, non-symmetric linear part plus the nonnegative orthant."""
    rng = np.random.default_rng(seed)
    M, S = rng.standard_normal((2, n, n)) / np.sqrt(n)
    L = 0.2 * np.eye(n) + 0.5 * M @ M.T + (S - S.T)
    c = rng.standard_normal(n if batch is None else (batch, n))
    return ops.Inclusion(ops.LinearMonotone(ops.Dense(L), c),
                         ops.Subdifferential(ops.prox.NonNegative())), L, c


def _iterations(problem, method, x0, tol=1e-10, maxiter=20000):
    res = ops.solve(problem, method, x0, tol=tol, maxiter=maxiter)
    assert res.success, res.message
    return res


# -- the bars -------------------------------------------------------------------------


def test_lasso_douglas_rachford_halves_the_iterations_and_solves_lasso():
    """Anderson–DR reaches relative residual 1e-10 in at most half of DR's
    iterations, at the LASSO solution (KKT conditions, and scikit-learn)."""
    problem, A, b, lam = _lasso(100, 400)
    x0 = np.zeros(400)
    plain = _iterations(problem, ops.DouglasRachford(step=1.0), x0)
    fast = _iterations(problem, ops.Anderson(ops.DouglasRachford(step=1.0), memory=5), x0)
    assert fast.iterations <= plain.iterations / 2, (fast.iterations, plain.iterations)
    x = fast.x
    grad = A.T @ (A @ x - b)
    on = np.abs(x) > 1e-9
    np.testing.assert_allclose(grad[on], -lam * np.sign(x[on]), atol=1e-7)
    assert np.all(np.abs(grad[~on]) <= lam + 1e-7)
    from sklearn.linear_model import Lasso

    ref = Lasso(alpha=lam / len(b), fit_intercept=False, tol=1e-14, max_iter=100000).fit(A, b)
    np.testing.assert_allclose(x, ref.coef_, atol=1e-6)
    np.testing.assert_allclose(x, plain.x, atol=1e-7)


def _cases():
    lasso, A, *_ = _lasso(40, 120, seed=5)
    nnls, L_nnls = _nnls()
    box, L_box = _box_qp()
    dense, _, c = _dense_monotone()
    dense_b, _, cb = _dense_monotone(batch=4)
    yield "lasso", lasso, np.zeros(120), np.linalg.norm(A, 2) ** 2
    yield "nnls", nnls, np.zeros(30), L_nnls
    yield "box-qp", box, np.zeros(60), L_box
    yield "dense", dense, np.zeros_like(c), None
    yield "dense-batch", dense_b, np.zeros_like(cb), None


CASES = {name: rest for name, *rest in _cases()}


@pytest.mark.parametrize("method", ["fb", "pr", "dr"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_safeguard_keeps_within_ten_percent_of_the_plain_method(case, method):
    """On every problem here the safeguarded Anderson takes at most 1.1× the
    plain method's iterations, and finds the same solution."""
    problem, x0, L = CASES[case]
    if method == "fb":
        if L is None:
            pytest.skip("the linear part is not symmetric: forward-backward needs its constants")
        plain_method = ops.ForwardBackward(step=1.0 / L)
    else:
        step = 1.0 if L is None else 1.0 / np.sqrt(L)
        plain_method = (ops.PeacemanRachford if method == "pr" else ops.DouglasRachford)(step=step)
    plain = _iterations(problem, plain_method, x0)
    fast = _iterations(problem, ops.Anderson(plain_method), x0)
    assert fast.iterations <= 1.1 * plain.iterations, (fast.iterations, plain.iterations)
    np.testing.assert_allclose(fast.x, plain.x, atol=1e-7)


@pytest.mark.parametrize("name", ["pr", "dr", "fb"])
def test_mondeq_forward_and_backward_with_anderson(name):
    """monDEQ forward and backward passes through Anderson: the same equilibrium
    (a fixed point of z = relu(Wz + Ux + b)) and gradients as the plain method,
    in at most 1.1× its iterations."""
    layer = nn.MonDense(in_features=10, width=60, m=1.0)
    params = layer.init_params(seed=0)
    x = np.random.default_rng(1).standard_normal((8, 10))
    inner = {"pr": ops.PeacemanRachford(step=1.0), "dr": ops.DouglasRachford(step=1.0),
             "fb": ops.ForwardBackward(step=layer.m / layer.lipschitz(params) ** 2)}[name]
    runs = []
    for method in (inner, ops.Anderson(inner, memory=5)):
        deq = nn.MonDEQ(layer, method=method, tol=1e-10, maxiter=5000, check_every=1,
                        record="every")
        z, state = deq.forward(params, x)
        grads, grad_x = deq.backward(params, state, np.cos(z))
        runs.append((z, state, grads, grad_x))
    (z0, s0, g0, gx0), (z1, s1, g1, gx1) = runs
    W = layer.weight(params)
    np.testing.assert_allclose(z1, np.maximum(z1 @ W.T + x @ params.U.T + params.b, 0), atol=1e-8)
    np.testing.assert_allclose(z1, z0, atol=1e-8)
    np.testing.assert_allclose(g1.A, g0.A, atol=1e-7)
    np.testing.assert_allclose(gx1, gx0, atol=1e-7)
    assert s1.result.iterations <= 1.1 * s0.result.iterations
    assert isinstance(s1.result.state.aux, ops.splitting.anderson.AndersonMemory)


def _adversarial_lasso():
    """A 4 × 8 LASSO on which forward–backward at step 1.9/L makes plain
    Anderson stall (found by a search over small random problems)."""
    rng = np.random.default_rng(68)
    n = int(rng.integers(2, 8))
    A, b = rng.standard_normal((n, 2 * n)), rng.standard_normal(n)
    problem = ops.Inclusion(ops.LinearMonotone(ops.Dense(A.T @ A), -A.T @ b),
                            ops.Subdifferential(ops.prox.L1(0.3 * np.abs(A.T @ b).max())))
    return problem, np.zeros(2 * n), ops.ForwardBackward(step=1.9 / np.linalg.norm(A, 2) ** 2)


def _adversarial_skew():
    """A 3 × 3 skew-dominated inclusion with an ℓ1 term on which plain Anderson
    on Douglas–Rachford stalls."""
    rng = np.random.default_rng(74)
    n = int(rng.integers(2, 8))
    S = rng.standard_normal((n, n))
    problem = ops.Inclusion(ops.LinearMonotone(ops.Dense(S - S.T + 0.01 * np.eye(n)),
                                               rng.standard_normal(n)),
                            ops.Subdifferential(ops.prox.L1(1.0)))
    return problem, np.zeros(n), ops.DouglasRachford(step=1.0)


@pytest.mark.parametrize("make", [_adversarial_lasso, _adversarial_skew])
def test_unsafeguarded_anderson_stalls_where_the_safeguard_converges(make):
    problem, x0, method = make()
    plain = _iterations(problem, method, x0, maxiter=3000)
    raw = ops.solve(problem, ops.Anderson(method, **UNSAFE), x0, tol=1e-10, maxiter=3000)
    assert not raw.success
    safe = _iterations(problem, ops.Anderson(method), x0, maxiter=3000)
    assert safe.iterations <= plain.iterations
    np.testing.assert_allclose(safe.x, plain.x, atol=1e-8)


# -- the iteration ----------------------------------------------------------------------


def test_batched_samples_keep_their_own_coefficients_and_safeguard():
    """A batch gives each sample the iterates it gets alone (coefficients,
    safeguard and restarts per sample), to rounding."""
    problem, _, c = _dense_monotone(batch=3)
    method = ops.Anderson(ops.DouglasRachford(step=1.0), memory=4)
    batch = ops.solve(problem, method, np.zeros_like(c), tol=1e-300, maxiter=25)
    for i in range(3):
        alone_problem = ops.Inclusion(ops.LinearMonotone(problem.A.op, c[i]), problem.B)
        alone = ops.solve(alone_problem, method, np.zeros(c.shape[1]), tol=1e-300, maxiter=25)
        np.testing.assert_allclose(batch.state.z[i], alone.state.z, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(batch.x[i], alone.x, rtol=1e-9, atol=1e-12)
    # and the samples do differ: a shared coefficient vector would not give this
    assert not np.allclose(batch.state.aux.accelerated, batch.state.aux.accelerated[0]) or \
        not np.allclose(batch.state.z[0], batch.state.z[1])


def test_tuple_governing_variable_is_one_vector_per_sample():
    """Blocks are concatenated per sample: a tuple problem iterates exactly as
    the same problem on the concatenated vector."""
    rng = np.random.default_rng(0)
    M = rng.standard_normal((5, 5))
    M = 0.9 * M / np.linalg.norm(M, 2)
    shift = rng.standard_normal(5)

    def T_flat(v):
        return np.clip(v @ M.T + shift, -1.0, 1.0)

    def T_blocks(v):
        out = T_flat(np.concatenate([v[0], v[1]], axis=-1))
        return out[..., :3], out[..., 3:]

    method = ops.Anderson(ops.KrasnoselskiiMann(relaxation=1.0), memory=3)
    with pytest.warns(RuntimeWarning, match="relaxation"):
        flat = ops.solve(ops.FixedPoint(T_flat, core_shape=(5,)), method, np.zeros((2, 5)),
                         tol=1e-300, maxiter=12)
    with pytest.warns(RuntimeWarning, match="relaxation"):
        blocks = ops.solve(ops.FixedPoint(T_blocks, core_shape=((3,), (2,))), method,
                           (np.zeros((2, 3)), np.zeros((2, 2))), tol=1e-300, maxiter=12)
    np.testing.assert_allclose(np.concatenate(blocks.state.z, axis=-1), flat.state.z,
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(flat.x, T_flat(flat.x), atol=1e-8)


def test_every_iteration_applies_the_map_once():
    calls = []
    rng = np.random.default_rng(1)
    M = rng.standard_normal((6, 6))
    M = 0.95 * M / np.linalg.norm(M, 2)

    def T(v):
        calls.append(1)
        return v @ M.T + 1.0

    with pytest.warns(RuntimeWarning, match="relaxation"):
        res = ops.solve(ops.FixedPoint(T, core_shape=(6,)),
                        ops.Anderson(ops.KrasnoselskiiMann(relaxation=1.0)), np.zeros(6),
                        tol=1e-12, maxiter=200)
    assert res.success
    assert len(calls) == res.iterations
    np.testing.assert_allclose(res.x, np.linalg.solve(np.eye(6) - M, np.ones(6)), atol=1e-9)


def test_backends_and_float32(backend, dtype):
    """float32 stays float32; array_api_strict on both devices (no host
    conversion inside the iteration) gives the plain method's answer."""
    _, L, c = _dense_monotone(n=20, batch=2)
    L_b, c_b = backend.asarray(L, dtype), backend.asarray(c, dtype)
    problem = ops.Inclusion(ops.LinearMonotone(ops.Dense(L_b), c_b),
                            ops.Subdifferential(ops.prox.NonNegative()))
    x0 = backend.xp.zeros(c_b.shape, dtype=backend.dtype(dtype), device=backend.device)
    tol = 1e-5 if dtype == "float32" else 1e-11
    res = ops.solve(problem, ops.Anderson(ops.DouglasRachford(step=1.0), memory=5), x0,
                    tol=tol, maxiter=2000)
    assert res.success, res.message
    assert res.x.dtype == backend.dtype(dtype)
    ref = ops.solve(ops.Inclusion(ops.LinearMonotone(ops.Dense(L), c),
                                  ops.Subdifferential(ops.prox.NonNegative())),
                    ops.DouglasRachford(step=1.0), np.zeros_like(c), tol=1e-13, maxiter=5000)
    np.testing.assert_allclose(to_numpy(res.x), ref.x, atol=1e-3 if dtype == "float32" else 1e-8)


def test_certificate_bounds_the_true_error():
    """delta and x are the plain step's from the accepted point: the error
    bound of the wrapped method holds (checked against a tight solve)."""
    problem, _, c = _dense_monotone(n=30)
    res = ops.solve(problem, ops.Anderson(ops.DouglasRachford(step=1.0)), np.zeros(30),
                    tol=1e-6)
    exact = ops.solve(problem, ops.DouglasRachford(step=1.0), np.zeros(30), tol=1e-14,
                      maxiter=10000).x
    bound = res.error_bound
    assert bound is not None
    err = np.linalg.norm(res.x - exact)
    assert 0 < err <= float(np.max(bound))


def test_inputs_are_not_modified_and_a_solve_continues_from_its_state():
    problem, _, c = _dense_monotone(n=20)
    x0 = np.zeros(20)
    method = ops.Anderson(ops.PeacemanRachford(step=1.0))
    first = ops.solve(problem, method, x0, tol=1e-300, maxiter=7)
    again = ops.solve(problem, method, x0, tol=1e-300, maxiter=7, state=first.state)
    once = ops.solve(problem, method, x0, tol=1e-300, maxiter=14)
    assert np.all(x0 == 0)
    np.testing.assert_allclose(again.state.z, once.state.z, rtol=1e-12)


# -- the method object --------------------------------------------------------------------


def test_delegates_to_the_wrapped_method_and_replaces_its_step():
    inner = ops.DouglasRachford(step=0.5, relaxation=1.5)
    acc = ops.Anderson(inner, memory=7, restart=40)
    assert (acc.requires, acc.applies_A, acc.problem_types, acc.step) == (
        inner.requires, inner.applies_A, inner.problem_types, 0.5)
    assert acc.contraction(0.3, 2.0) == inner.contraction(0.3, 2.0)
    moved = dataclasses.replace(acc, step=2.0)
    assert moved.method == ops.DouglasRachford(step=2.0, relaxation=1.5)
    assert (moved.step, moved.memory, moved.restart) == (2.0, 7, 40)
    assert ops.Anderson(inner, step=0.25).method.step == 0.25
    pr = ops.PeacemanRachford(step=1.0)
    assert nn.MonDEQ(nn.MonDense(3, 4), method=ops.Anderson(pr)).with_step(0.3).method == \
        ops.Anderson(ops.PeacemanRachford(step=0.3))


def test_config_nests_the_wrapped_method_and_round_trips_exactly():
    acc = ops.Anderson(ops.DouglasRachford(step=0.5, relaxation=1.7), memory=9,
                       regularization=1e-6, safeguard=0.9, safeguard_bound=10.0,
                       safeguard_decay=0.01, safeguard_scale=7, restart=30, rcond=1e-9)
    config = method_config(acc)
    assert config == {
        "name": "anderson", "method": {"name": "dr", "step": 0.5, "relaxation": 1.7},
        "memory": 9, "regularization": 1e-6, "safeguard": 0.9, "safeguard_bound": 10.0,
        "safeguard_decay": 0.01, "safeguard_scale": 7, "restart": 30, "rcond": 1e-9,
    }
    assert method_from_config(config) == acc
    assert method_name(acc) == method_name(ops.Anderson) == "anderson"
    with pytest.raises(ValueError, match="missing"):
        method_from_config({k: v for k, v in config.items() if k != "memory"})
    with pytest.raises(ValueError, match="unknown"):
        method_from_config({**config, "step": 0.5})


class _PrimalOnly(SplittingMethod):
    """A method whose init builds its governing variable from a primal point."""

    def prepare(self, problem):
        return None

    def init(self, prepared, x0):
        return State(z=(x0, 0.0 * x0), x=x0)

    def update(self, prepared, state):
        return state

    def optimal_step(self, m, L):
        return 1.0

    def contraction(self, m, L):
        return 0.5


def test_refuses_what_it_cannot_accelerate():
    with pytest.raises(TypeError, match="FISTA"):
        ops.Anderson(ops.FISTA(step=0.1))
    with pytest.raises(TypeError, match="already"):
        ops.Anderson(ops.Anderson(ops.DouglasRachford()))
    with pytest.raises(TypeError, match="method must be a SplittingMethod"):
        ops.Anderson("dr")
    with pytest.raises(ValueError, match="memory"):
        ops.Anderson(ops.DouglasRachford(), memory=0)
    with pytest.raises(ValueError, match="regularization"):
        ops.Anderson(ops.DouglasRachford(), regularization=0.0)
    with pytest.raises(ValueError, match="safeguard"):
        ops.Anderson(ops.DouglasRachford(), safeguard=-1.0)
    with pytest.raises(ValueError, match="step"):
        ops.Anderson(ops.DouglasRachford(), step=-1.0)
    problem, *_ = _dense_monotone(n=4)
    with pytest.raises(TypeError, match="state_at"):
        ops.solve(problem, ops.Anderson(_PrimalOnly()), np.zeros(4))


@pytest.mark.parametrize("name, wrapped", [("fb", True), ("dr", True), ("pr", False)])
def test_train_anderson_wraps_only_where_it_pays(name, wrapped):
    import argparse
    from types import SimpleNamespace

    from opsplit.nn import cli_train

    parser = argparse.ArgumentParser()
    cli_train.add_arguments(parser)
    args = parser.parse_args(["--method", name, "--anderson", "--alpha", "0.3"])
    data = SimpleNamespace(features=6, num_classes=3, image_shape=(6,))
    model = cli_train._build_model(args, data, SimpleNamespace(size=5))
    method = model.deq.method
    assert isinstance(method, ops.Anderson) is wrapped
    assert method.step == 0.3 and method_name(method.method if wrapped else method) == name
    plain = cli_train._build_model(parser.parse_args(["--method", name]), data,
                                   SimpleNamespace(size=5))
    assert not isinstance(plain.deq.method, ops.Anderson)
