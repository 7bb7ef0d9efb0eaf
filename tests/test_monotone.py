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
    J, R = F.resolvents(step)
    np.testing.assert_allclose(J(y), np.linalg.solve(np.eye(n) + step * M, y - step * c))
    np.testing.assert_allclose(R(y), 2 * J(y) - y, atol=1e-12)


def test_adjoint_problem_reuses_the_forward_precomputation_as_transposed_views():
    n, step = 5, 0.4
    M = monotone_matrix(n, 3)
    c = np.arange(n, dtype=float)
    L = ops.Dense(M)
    P = ops.operators.precompute(L, step, reflection=True, forward=True)
    Ft = ops.LinearMonotone(L.H, c, precomputed=P.H)
    y = np.linspace(-1, 1, n)
    p = np.linalg.solve(np.eye(n) + step * M.T, y - step * c)
    np.testing.assert_allclose(Ft.resolvent(step)(y), p, atol=1e-12)
    np.testing.assert_allclose(Ft.reflected_resolvent(step)(y), 2 * p - y, atol=1e-12)
    np.testing.assert_allclose(Ft.forward_step(step)(y), y - step * (M.T @ y + c), atol=1e-12)
    # no new matrix: the adjoint's operators are views of the forward ones, and
    # the forward step of Lᴴ is not a lazy I - αLᴴ
    for name in ("inverse", "cayley", "forward"):
        assert getattr(P.H, name).H is getattr(P, name)
    assert isinstance(P.forward, ops.Dense) and isinstance(P.cayley, ops.Dense)
    np.testing.assert_allclose(P.cayley.matrix, 2 * np.linalg.inv(np.eye(n) + step * M) - np.eye(n))
    assert P.H.H.op is L


def test_precomputed_steps_refuse_another_step_or_operator():
    # Replaces the float-keyed inverse cache, which silently used a wrong inverse.
    n = 4
    M = monotone_matrix(n)
    L = ops.Dense(M)
    P = ops.operators.precompute(L, 0.5)
    F = ops.LinearMonotone(L, precomputed=P)
    y = np.ones(n)
    np.testing.assert_allclose(F.resolvent(0.5)(y), np.linalg.solve(np.eye(n) + 0.5 * M, y))
    for method in (F.resolvent, F.reflected_resolvent, F.resolvents, F.forward_step):
        with pytest.raises(ValueError, match=r"step 0\.25 .* step 0\.5"):
            method(0.25)
    with pytest.raises(ValueError, match="another operator"):
        ops.LinearMonotone(ops.Dense(M), precomputed=P)  # equal matrix, another object
    with pytest.raises(ValueError, match="another operator"):
        ops.LinearMonotone(L.H, precomputed=P)  # the adjoint needs P.H
    with pytest.raises(ValueError, match="another operator"):
        ops.LinearMonotone(L, precomputed=P.H)
    with pytest.raises(TypeError, match="precomputed"):
        ops.LinearMonotone(L, precomputed=(0.5, P.inverse))
    no_inverse = ops.operators.precompute(L, 0.5, resolvent=False, forward=True)
    with pytest.raises(ValueError, match="resolvent=True"):
        ops.LinearMonotone(L, precomputed=no_inverse).resolvent(0.5)
    np.testing.assert_allclose(
        ops.LinearMonotone(L, precomputed=no_inverse).forward_step(0.5)(y), y - 0.5 * M @ y
    )


@pytest.fixture
def count_inverses(monkeypatch):
    """Count the dense inversions done through the NumPy array-API namespace."""
    import array_api_compat.numpy as xp

    calls = []
    inv = xp.linalg.inv

    def counting(a):
        calls.append(a.shape)
        return inv(a)

    monkeypatch.setattr(xp.linalg, "inv", counting)
    return calls


def test_one_inverse_per_parameter_update_for_forward_and_adjoint_problems(count_inverses):
    n, step = 6, 0.3
    M = 2.0 * np.eye(n) + 0.5 * (monotone_matrix(n, 4) - monotone_matrix(n, 4).T)
    c = np.random.default_rng(5).standard_normal((3, n))
    L = ops.Dense(M)
    P = ops.operators.precompute(L, step, reflection=True, forward=True)
    assert len(count_inverses) == 1
    zero = ops.Subdifferential(ops.prox.Zero())
    forward = ops.Inclusion(ops.LinearMonotone(L, c, precomputed=P), zero)
    adjoint = ops.Inclusion(ops.LinearMonotone(L.H, c, precomputed=P.H), zero)
    x0 = np.zeros((3, n))
    for problem, matrix in ((forward, M), (adjoint, M.T)):
        for method in (
            ops.PeacemanRachford(step=step),
            ops.DouglasRachford(step=step),
            ops.ForwardBackward(step=step),
        ):
            result = ops.solve(problem, method, x0, tol=1e-12, maxiter=5000)
            np.testing.assert_allclose(result.x, np.linalg.solve(matrix, -c.T).T, atol=1e-9)
    assert len(count_inverses) == 1
    # without a precomputation each resolvent pair inverts once, not twice
    ops.LinearMonotone(L, c).resolvents(step)
    assert len(count_inverses) == 2


def test_precompute_builds_only_the_maps_asked_for():
    n, step = 5, 0.5
    M = monotone_matrix(n, 7)
    L = ops.Dense(M)
    inverse = np.linalg.inv(np.eye(n) + step * M)
    P = ops.operators.precompute(L, step)  # the resolvent only: no Cayley matrix
    assert P.cayley is None and P.forward is None
    np.testing.assert_allclose(P.inverse.to_dense(), inverse, atol=1e-12)
    R = ops.operators.precompute(L, step, resolvent=False, reflection=True)
    np.testing.assert_allclose(R.cayley.to_dense(), 2 * inverse - np.eye(n), atol=1e-12)
    assert R.forward is None
    Fw = ops.operators.precompute(L, step, resolvent=False, forward=True)
    assert Fw.inverse is None and Fw.cayley is None
    np.testing.assert_allclose(Fw.forward.to_dense(), np.eye(n) - step * M, atol=1e-12)
    # a precomputation without the Cayley map still gives the right reflection
    c = np.arange(n, dtype=float)
    y = np.linspace(-1, 1, n)
    F = ops.LinearMonotone(L, c, precomputed=P)
    p = np.linalg.solve(np.eye(n) + step * M, y - step * c)
    np.testing.assert_allclose(F.reflected_resolvent(step)(y), 2 * p - y, atol=1e-12)


def test_methods_declare_the_maps_of_A_they_apply():
    assert ops.PeacemanRachford.applies_A == ("reflection",)
    assert ops.DouglasRachford.applies_A == ("resolvent",)
    assert ops.ForwardBackward.applies_A == ("forward",)


def test_peaceman_rachford_takes_both_maps_of_B_from_one_inversion(count_inverses):
    # J_B and R_B of a linear B come from one resolvents() call: two inversions
    # for the whole prepare (one for A, one for B), not three.
    n, step = 4, 0.5
    zero_c = np.zeros(n)
    A = ops.LinearMonotone(ops.Dense(monotone_matrix(n, 1)), zero_c + 1.0)
    B = ops.LinearMonotone(ops.Dense(monotone_matrix(n, 2)), zero_c)
    prepared = ops.PeacemanRachford(step=step).prepare(ops.Inclusion(A, B))
    assert len(count_inverses) == 2
    y = np.linspace(-1, 1, n)
    MB = B.op.matrix
    j = np.linalg.solve(np.eye(n) + step * MB, y)
    np.testing.assert_allclose(prepared.of_B(y), j, atol=1e-12)
    np.testing.assert_allclose(prepared.reflect_B(y), 2 * j - y, atol=1e-12)


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


# -- no silent wrong answers --------------------------------------------------------
def test_non_finite_data_is_refused_at_construction(backend):
    # Today's solvers reported CONVERGED with x = 0 on such data.
    M = np.eye(3)
    bad_matrix = M.copy()
    bad_matrix[1, 2] = np.inf
    with pytest.raises(ValueError, match="matrix"):
        ops.Dense(backend.asarray(bad_matrix))
    with pytest.raises(ValueError, match="diagonal"):
        ops.Diagonal(backend.asarray([1.0, np.nan, 2.0]))
    kernel = np.zeros((1, 1, 3, 3))
    kernel[0, 0, 1, 1] = -np.inf
    with pytest.raises(ValueError, match="kernel"):
        ops.Conv2dFFT(backend.asarray(kernel), (4, 4))
    L = ops.Dense(backend.asarray(M))
    with pytest.raises(ValueError, match="offset"):
        ops.LinearMonotone(L, backend.asarray([0.0, np.inf, 1.0]))
    with pytest.raises(ValueError, match=r"offset\[1\]"):
        ops.LinearMonotone(
            ops.BlockDiagonal([ops.Identity(2), ops.Identity(1)]),
            (backend.asarray([0.0, 1.0]), backend.asarray([np.nan])),
        )


def test_an_output_of_another_shape_is_refused_naming_the_operator():
    # Today ``x[..., :1]`` broadcasts silently and "converges" with residual 0.
    G = ops.Gradient(lambda x: x[..., :1])
    x0 = np.ones((2, 3))
    with pytest.raises(ValueError, match="Gradient"):
        G(x0)
    with pytest.raises(ValueError, match="Gradient"):
        ops.solve(
            ops.Inclusion(G, ops.Subdifferential(ops.prox.Zero())), ops.ForwardBackward(), x0
        )

    class Broadcasting(ops.ForwardOperator):
        def evaluate(self, x):
            return np.sum(x, axis=-1, keepdims=True)

    with pytest.raises(ValueError, match="Broadcasting"):
        Broadcasting().forward_step(0.5)(x0)


def _block_problem():
    """A monotone operator on two-block states and its dense matrix."""
    rng = np.random.default_rng(11)
    M0, M1 = monotone_matrix(3, 1), monotone_matrix(2, 2)
    L = ops.BlockDiagonal([ops.Dense(M0), ops.Dense(M1)])
    dense = np.zeros((5, 5))
    dense[:3, :3], dense[3:, 3:] = M0, M1
    c = (rng.standard_normal(3), rng.standard_normal(2))
    x = (rng.standard_normal((4, 3)), rng.standard_normal((4, 2)))
    return L, dense, c, x


def _flat(v):
    return np.concatenate(v, axis=-1)


def test_monotone_algebra_on_block_states():
    # Today SumMonotone adds tuples with ``+``: two blocks in, four blocks out.
    L, dense, c, x = _block_problem()
    F = ops.LinearMonotone(L, c)
    G = ops.Gradient(lambda v: tuple(2.0 * part for part in v))
    ref_F = _flat(x) @ dense.T + _flat(c)
    total = (F + G)(x)
    assert isinstance(total, tuple) and len(total) == 2
    np.testing.assert_allclose(_flat(total), ref_F + 2.0 * _flat(x), atol=1e-12)
    scaled = (0.5 * F)(x)
    assert isinstance(scaled, tuple) and len(scaled) == 2
    np.testing.assert_allclose(_flat(scaled), 0.5 * ref_F, atol=1e-12)
    step = 0.7
    forward = (F + G).forward_step(step)(x)
    np.testing.assert_allclose(_flat(forward), _flat(x) - step * (ref_F + 2 * _flat(x)))
    # resolvents of F, of 0.5·F, and of a separable subdifferential, blockwise
    shifted = np.eye(5) + step * dense
    p = np.linalg.solve(shifted, (_flat(x) - step * _flat(c)).T).T
    for J, R in (F.resolvents(step), (F.resolvent(step), F.reflected_resolvent(step))):
        np.testing.assert_allclose(_flat(J(x)), p, atol=1e-12)
        np.testing.assert_allclose(_flat(R(x)), 2 * p - _flat(x), atol=1e-12)
    half = 0.5 * F
    J, R = half.resolvents(2 * step)  # J_{2α·(F/2)} = J_{αF}
    np.testing.assert_allclose(_flat(J(x)), p, atol=1e-12)
    np.testing.assert_allclose(_flat(half.reflected_resolvent(2 * step)(x)), 2 * p - _flat(x))
    relu = ops.Subdifferential(ops.prox.NonNegative())
    J, R = relu.resolvents(step)
    np.testing.assert_allclose(_flat(J(x)), np.maximum(_flat(x), 0.0))
    np.testing.assert_allclose(_flat(R(x)), np.abs(_flat(x)))


def test_solving_on_block_states_matches_the_dense_solution():
    L, dense, c, x = _block_problem()
    problem = ops.Inclusion(
        ops.LinearMonotone(L, c) + ops.Gradient(lambda v: v),
        ops.Subdifferential(ops.prox.Zero()),
    )
    x0 = tuple(np.zeros_like(part) for part in x)
    result = ops.solve(problem, ops.ForwardBackward(step=0.2), x0, tol=1e-12, maxiter=5000)
    expected = np.linalg.solve(dense + np.eye(5), -_flat(c))
    np.testing.assert_allclose(_flat(result.x), np.broadcast_to(expected, (4, 5)), atol=1e-9)
