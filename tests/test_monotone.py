"""Monotone operators: resolvents, reflections and forward steps against their
definitions, and capabilities carried by type."""

from __future__ import annotations

import numpy as np
import pytest

import opsplit as ops


def monotone_matrix(n, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n)) / np.sqrt(n)
    S = rng.standard_normal((n, n))
    return 0.3 * np.eye(n) + A.T @ A + (S - S.T) / 2


def test_affine_resolvent_reflection_and_forward_step_match_definitions(backend, dtype):
    n, step = 6, 0.7
    M = monotone_matrix(n)
    c = np.random.default_rng(1).standard_normal((3, n))
    y = np.random.default_rng(2).standard_normal((3, n))
    F = ops.LinearMonotone(ops.Dense(backend.asarray(M, dtype)), backend.asarray(c, dtype))
    yb = backend.asarray(y, dtype)
    tol = 1e-4 if dtype == "float32" else 1e-11
    # J(y) = (I + αM)⁻¹(y - αc): check the defining equation p + α(Mp + c) = y
    p = backend.to_numpy(F.resolvent(step)(yb)).astype(np.float64)
    np.testing.assert_allclose(p + step * (p @ M.T + c), y, atol=tol)
    r = backend.to_numpy(F.reflected_resolvent(step)(yb)).astype(np.float64)
    np.testing.assert_allclose(r, 2 * p - y, atol=tol)
    f = backend.to_numpy(F.forward_step(step)(yb)).astype(np.float64)
    np.testing.assert_allclose(f, y - step * (y @ M.T + c), atol=tol)
    for out in (F.resolvent(step)(yb), F.reflected_resolvent(step)(yb), F.forward_step(step)(yb)):
        assert out.dtype == yb.dtype


def test_generic_reflection_and_forward_step_agree_with_affine_fast_paths():
    n, step = 5, 0.4
    M = monotone_matrix(n, 3)
    c = np.arange(n, dtype=float)
    F = ops.LinearMonotone(ops.Dense(M), c)
    y = np.linspace(-1, 1, n)
    generic_reflect = ops.ResolventOperator.reflected_resolvent(F, step)
    generic_forward = ops.ForwardOperator.forward_step(F, step)
    np.testing.assert_allclose(F.reflected_resolvent(step)(y), generic_reflect(y), atol=1e-12)
    np.testing.assert_allclose(F.forward_step(step)(y), generic_forward(y), atol=1e-12)
    # an adjoint inverse (the backward problem's) takes the same dense path
    inv = ops.shifted_inverse(ops.Dense(M), 1.0, step)
    Ft = ops.LinearMonotone(ops.Dense(M.T), inverse=(step, inv.H))
    np.testing.assert_allclose(
        Ft.reflected_resolvent(step)(y), 2 * np.linalg.solve(np.eye(n) + step * M.T, y) - y,
        atol=1e-12,
    )


def test_precomputed_inverse_is_used_only_for_its_step():
    n = 4
    M = monotone_matrix(n)
    wrong = ops.Dense(np.zeros((n, n)))  # deliberately not the inverse
    F = ops.LinearMonotone(ops.Dense(M), inverse=(0.5, wrong))
    y = np.ones(n)
    np.testing.assert_array_equal(F.resolvent(0.5)(y), np.zeros(n))
    np.testing.assert_allclose(F.resolvent(0.25)(y), np.linalg.solve(np.eye(n) + 0.25 * M, y))


def test_scaling_keeps_capabilities_by_type():
    G = ops.Subdifferential(ops.prox.L1(1.0))
    F = ops.LinearMonotone(ops.Dense(2.0 * np.eye(3)), lipschitz=2.0, strong_monotonicity=2.0)
    grad = ops.Gradient(lambda x: x, lipschitz=1.0)
    assert isinstance(3.0 * G, ops.ResolventOperator)
    assert not isinstance(3.0 * G, ops.ForwardOperator)
    assert isinstance(3.0 * grad, ops.ForwardOperator)
    assert not isinstance(3.0 * grad, ops.ResolventOperator)
    both = 0.5 * F
    assert isinstance(both, ops.ForwardOperator) and isinstance(both, ops.ResolventOperator)
    assert both.lipschitz == 1.0 and both.strong_monotonicity == 1.0
    x = np.array([3.0, -0.5, 1.5])
    # J_{α(sG)} = prox_{αs f}: soft threshold at α·s·λ
    np.testing.assert_allclose((3.0 * G).resolvent(0.5)(x), [1.5, 0.0, 0.0])
    np.testing.assert_allclose((3.0 * grad)(x), 3 * x)
    with pytest.raises(ValueError, match="scalar"):
        -1.0 * G
    with pytest.raises(TypeError, match="ForwardBackward needs operator A"):
        ops.solve(ops.Inclusion(3.0 * G, G), ops.ForwardBackward(), x)


def test_sum_and_gradient_constants():
    a = ops.Gradient(lambda x: 2 * x, lipschitz=2.0, strong_monotonicity=2.0)
    b = ops.LinearMonotone(ops.Dense(np.eye(2)), lipschitz=1.0)
    s = a + b
    x = np.array([1.0, -2.0])
    np.testing.assert_allclose(s(x), 3 * x)
    assert s.lipschitz == 3.0 and s.strong_monotonicity == 2.0
    assert a.cocoercivity == 0.5


def test_normal_cone_needs_an_indicator_and_projects():
    N = ops.NormalCone(ops.prox.Box(-1.0, 1.0))
    np.testing.assert_allclose(N.resolvent(123.0)(np.array([-3.0, 0.2, 9.0])), [-1.0, 0.2, 1.0])
    with pytest.raises(TypeError, match="indicator"):
        ops.NormalCone(ops.prox.L1(1.0))
    with pytest.raises(TypeError, match="ProxFunction"):
        ops.Subdifferential(lambda x: x)


def test_linear_monotone_rejects_bad_input():
    with pytest.raises(TypeError, match="op"):
        ops.LinearMonotone(np.eye(2))
    with pytest.raises(ValueError, match="square"):
        ops.LinearMonotone(ops.Dense(np.ones((2, 3))))
    with pytest.raises(TypeError, match="offset"):
        ops.LinearMonotone(ops.Dense(np.eye(2)), np.ones(2, dtype=np.float32))
    with pytest.raises(ValueError, match="offset"):
        ops.LinearMonotone(ops.Dense(np.eye(2)), np.ones(3))
    with pytest.raises(ValueError, match="step"):
        ops.LinearMonotone(ops.Dense(np.eye(2))).resolvent(0.0)


@pytest.mark.parametrize(
    "f",
    [ops.prox.NonNegative(), ops.prox.ReLU(), ops.prox.L1(0.3), ops.prox.Box(-0.5, 0.2),
     ops.prox.Tanh(), ops.prox.Zero()],
    ids=lambda f: type(f).__name__,
)
def test_reflection_is_twice_the_prox_minus_identity(backend, f):
    x = backend.asarray(np.linspace(-2.0, 2.0, 9) * 0.9)
    step = 0.6
    expected = 2.0 * backend.to_numpy(f.prox(x, step)) - backend.to_numpy(x)
    np.testing.assert_allclose(backend.to_numpy(f.reflect(x, step)), expected, atol=1e-12)
    R = ops.Subdifferential(f).reflected_resolvent(step)
    np.testing.assert_allclose(backend.to_numpy(R(x)), expected, atol=1e-12)
