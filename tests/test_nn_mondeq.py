"""The fully connected monDEQ layer: parametrization, equilibrium, backward, JVP."""

from __future__ import annotations

import array_api_compat
import numpy as np
import pytest

import opsplit as ops
from opsplit import nn
from opsplit.nn.deq import LinearizedActivation
from opsplit.prox.activations import get_activation

N_IN, WIDTH, BATCH = 5, 12, 3


def make_case(m=0.5, weight_norm=False, seed=0, backend=None, dtype="float64"):
    layer = nn.MonDense(in_features=N_IN, width=WIDTH, m=m, weight_norm=weight_norm)
    p = layer.init_params(seed=seed)
    rng = np.random.default_rng(seed + 100)
    p = p._replace(b=0.3 * rng.standard_normal(WIDTH))
    x = rng.standard_normal((BATCH, N_IN))
    if backend is not None:
        p = nn.DenseParams(
            **{k: None if v is None else backend.asarray(v, dtype) for k, v in p._asdict().items()}
        )
        x = backend.asarray(x, dtype)
    return layer, p, x


def fb_step(layer, p):
    return layer.m / layer.lipschitz(p) ** 2


def numpy_params(p):
    from conftest import to_numpy

    return {k: to_numpy(v).astype(np.float64) for k, v in p.arrays().items()}


def dense_weight(p, m, weight_norm):
    """W from the definition, independently of the layer's code."""
    A, B = p["A"], p["B"]
    ata, skew = A.T @ A, B - B.T
    if weight_norm:
        ata = p["g"] * ata / np.sum(A * A)
        skew = p["h"] * skew / np.linalg.norm(B)
    return (1 - m) * np.eye(A.shape[0]) - ata + skew


# -- the parametrization ---------------------------------------------------------------
@pytest.mark.parametrize("weight_norm", [False, True])
def test_weight_is_the_monotone_parametrization(weight_norm):
    m = 0.3
    layer, p, _ = make_case(m=m, weight_norm=weight_norm)
    rng = np.random.default_rng(7)
    # arbitrary (not just initial) values, including a large A and g >= 0
    p = p._replace(A=3 * rng.standard_normal((WIDTH, WIDTH)), B=rng.standard_normal((WIDTH, WIDTH)))
    if weight_norm:
        p = p._replace(g=np.asarray(2.5), h=np.asarray(-1.7))
    W = layer.weight(p)
    np.testing.assert_allclose(W, dense_weight(numpy_params(p), m, weight_norm), atol=1e-12)
    M = np.eye(WIDTH) - W
    assert np.linalg.eigvalsh((M + M.T) / 2).min() >= m - 1e-10
    np.testing.assert_allclose(layer.monotone_matrix(p), M, atol=1e-12)


def test_weight_norm_starts_at_the_plain_weight():
    _, p, _ = make_case(weight_norm=False, seed=3)
    layer_wn = nn.MonDense(N_IN, WIDTH, m=0.5, weight_norm=True)
    p_wn = layer_wn.init_params(seed=3)
    assert set(p_wn.arrays()) == {"A", "B", "U", "b", "g", "h"}
    np.testing.assert_allclose(
        layer_wn.weight(p_wn), nn.MonDense(N_IN, WIDTH, m=0.5).weight(p_wn._replace(g=None, h=None))
    )


def test_init_params_deterministic_well_conditioned_and_typed(backend):
    layer = nn.MonDense(N_IN, WIDTH, m=1.0)
    like = backend.asarray(np.zeros(1), "float32")
    p1 = layer.init_params(seed=4, dtype="float32", like=like)
    p2 = layer.init_params(seed=4, dtype="float32", like=like)
    for name, value in p1.arrays().items():
        assert value.dtype == backend.dtype("float32"), name
        np.testing.assert_array_equal(backend.to_numpy(value), backend.to_numpy(getattr(p2, name)))
    assert not np.array_equal(layer.init_params(seed=5).A, backend.to_numpy(p1.A))
    assert layer.lipschitz(p1) < 5.0  # I - W stays close to m·I at initialization


@pytest.mark.parametrize("weight_norm", [False, True])
def test_monotone_tangent_matches_finite_differences(weight_norm):
    layer, p, _ = make_case(weight_norm=weight_norm)
    rng = np.random.default_rng(1)
    t = nn.DenseParams(**{k: rng.standard_normal(np.shape(v)) for k, v in p.arrays().items()})
    eps = 1e-6
    plus = nn.DenseParams(
        **{k: v + eps * t[i] for i, (k, v) in enumerate(p._asdict().items()) if v is not None}
    )
    minus = nn.DenseParams(
        **{k: v - eps * t[i] for i, (k, v) in enumerate(p._asdict().items()) if v is not None}
    )
    fd = (layer.monotone_matrix(plus) - layer.monotone_matrix(minus)) / (2 * eps)
    np.testing.assert_allclose(layer.monotone_tangent(p, t), fd, atol=1e-7)


# -- the equilibrium -------------------------------------------------------------------
FORWARD_METHODS = {
    "FB": lambda layer, p: ops.ForwardBackward(step=fb_step(layer, p)),
    "PR": lambda layer, p: ops.PeacemanRachford(step=1.0),
    "DR": lambda layer, p: ops.DouglasRachford(step=0.7),
}


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "softplus", "leaky_relu"])
@pytest.mark.parametrize("method", sorted(FORWARD_METHODS))
def test_forward_solves_the_fixed_point(method, activation):
    layer, p, x = make_case(m=0.5)
    deq = nn.MonDEQ(
        layer, activation, method=FORWARD_METHODS[method](layer, p), tol=1e-12, maxiter=5000
    )
    z, state = deq.forward(p, x)
    assert state.result.success, state.result.message
    sigma = get_activation(activation).activate
    W = dense_weight(numpy_params(p), 0.5, False)
    v = z @ W.T + x @ p.U.T + p.b
    np.testing.assert_allclose(z, sigma(v), atol=1e-10)
    np.testing.assert_allclose(state.pre_activation, v, atol=1e-10)
    assert state.z is z and state.x is x


def test_relu_equilibrium_matches_active_set_solution():
    """For ReLU, z* solves (I - W_SS) z_S = (Ux + b)_S on its support S, with the
    complementary pre-activations ≤ 0 — an exact linear-algebra reference."""
    layer, p, x = make_case(m=0.2, seed=2)
    deq = nn.MonDEQ(layer, method=ops.PeacemanRachford(1.0), tol=1e-13, maxiter=5000)
    z, _ = deq.forward(p, x)
    W = layer.weight(p)
    c = x @ p.U.T + p.b
    for k in range(BATCH):
        S = z[k] > 1e-9
        assert 0 < S.sum() < WIDTH
        exact = np.zeros(WIDTH)
        exact[S] = np.linalg.solve(np.eye(S.sum()) - W[np.ix_(S, S)], c[k, S])
        np.testing.assert_allclose(z[k], exact, atol=1e-10)
        assert np.all((W @ exact + c[k])[~S] <= 1e-10)


def test_methods_agree_and_operators_are_shared():
    layer, p, x = make_case(m=0.5, weight_norm=True)
    pr = nn.MonDEQ(layer, method=ops.PeacemanRachford(1.0), tol=1e-12, maxiter=2000)
    prepared = pr.prepare(p)
    assert isinstance(prepared, nn.PreparedOperators)
    assert prepared.backward is prepared.forward  # one precomputation for both passes
    assert prepared.forward.step == 1.0 and prepared.forward.forward is None
    z_pr, state = pr.forward(p, x, prepared=prepared)
    assert state.prepared is prepared
    # the inverse really is (I + α(I - W))⁻¹, the Cayley matrix 2(I + α(I - W))⁻¹ - I
    M = layer.monotone_matrix(p)
    inv = prepared.forward.inverse.to_dense()
    np.testing.assert_allclose(inv @ (np.eye(WIDTH) + M), np.eye(WIDTH), atol=1e-12)
    np.testing.assert_allclose(prepared.forward.cayley.to_dense(), 2 * inv - np.eye(WIDTH))
    fb = nn.MonDEQ(layer, method=ops.ForwardBackward(fb_step(layer, p)), tol=1e-12, maxiter=20000)
    steps = fb.prepare(p).forward
    assert steps.inverse is None and steps.cayley is None  # forward–backward needs no inverse
    np.testing.assert_allclose(steps.forward.to_dense(), np.eye(WIDTH) - fb_step(layer, p) * M)
    z_fb, _ = fb.forward(p, x)
    np.testing.assert_allclose(z_fb, z_pr, atol=1e-9)
    # a warm start from the solution converges at once
    _, warm = pr.forward(p, x, prepared=prepared, z0=state.result.state.z)
    assert warm.result.iterations <= 2
    # a precomputation made for other methods or steps is refused, not silently rebuilt
    with pytest.raises(ValueError, match="prepared does not fit"):
        pr.forward(p, x, prepared=fb.prepare(p))
    with pytest.raises(ValueError, match="prepared does not fit"):
        pr.with_step(0.5).forward(p, x, prepared=prepared)
    with pytest.raises(TypeError, match="prepared must be"):
        pr.forward(p, x, prepared=prepared.forward)


PRECOMPUTATION_CASES = {
    # (forward method, backward method) -> (inversions, Cayley matrices, forward-step matrices)
    "PR": ((ops.PeacemanRachford(0.7), None), (1, 1, 0)),
    "DR": ((ops.DouglasRachford(0.7), None), (1, 0, 0)),  # no Cayley matrix: DR never applies it
    "DR+PR same step": ((ops.DouglasRachford(0.7), ops.PeacemanRachford(0.7)), (1, 1, 0)),
    "FB": ((ops.ForwardBackward(0.05), None), (0, 0, 1)),
    "PR+FB same step": ((ops.PeacemanRachford(0.05), ops.ForwardBackward(0.05)), (1, 1, 1)),
    "PR+DR other step": ((ops.PeacemanRachford(0.7), ops.DouglasRachford(0.3)), (2, 1, 0)),
}


@pytest.mark.parametrize("case", sorted(PRECOMPUTATION_CASES))
def test_one_precomputation_per_parameter_update(case, monkeypatch):
    """prepare + forward + backward + jvp form each n×n matrix once, and only those
    the methods apply (their ``applies_A``): one inverse per step size for
    Peaceman–Rachford and Douglas–Rachford, a Cayley matrix only for
    Peaceman–Rachford, one forward-step matrix only for forward–backward; the
    adjoint problem uses their transposed views.
    Counted by recording every inversion and every Dense built, and matching
    the built matrices against independently computed ones."""
    (method, backward_method), (n_inv, n_cayley, n_forward) = PRECOMPUTATION_CASES[case]
    layer, p, x = make_case(m=0.5)
    rng = np.random.default_rng(5)
    g = rng.standard_normal((BATCH, WIDTH))
    dp = nn.DenseParams(**{k: rng.standard_normal(np.shape(v)) for k, v in p.arrays().items()})
    M = layer.monotone_matrix(p)
    eye = np.eye(WIDTH)
    steps = {method.step, (backward_method or method).step}
    expected = {"cayley": [], "inverse": [], "forward": [], "monotone": [M]}
    for a in steps:
        inv = np.linalg.inv(eye + a * M)
        expected["inverse"].append(inv)
        expected["cayley"].append(2 * inv - eye)
        expected["forward"].append(eye - a * M)

    xp = array_api_compat.array_namespace(p.A)
    inversions, built = [], []
    real_inv, real_init = xp.linalg.inv, ops.Dense.__init__
    monkeypatch.setattr(xp.linalg, "inv", lambda a: inversions.append(a) or real_inv(a))

    def recording_init(self, matrix):
        built.append(np.array(matrix))
        real_init(self, matrix)

    monkeypatch.setattr(ops.Dense, "__init__", recording_init)
    deq = nn.MonDEQ(layer, method=method, backward_method=backward_method, tol=1e-8,
                    maxiter=5000)
    z, state = deq.forward(p, x, prepared=deq.prepare(p))
    deq.backward(p, state, g)
    deq.jvp(p, state, dp, x)
    deq.jvp(p, state, dx=x)
    monkeypatch.undo()

    def count(kind, transpose=False):
        targets = [t.T if transpose else t for t in expected[kind]]
        return sum(
            any(b.shape == t.shape and np.allclose(b, t, rtol=0, atol=1e-12) for t in targets)
            for b in built
        )

    assert len(inversions) == n_inv
    assert count("monotone") == 1
    assert (count("inverse"), count("cayley"), count("forward")) == (n_inv, n_cayley, n_forward)
    # the adjoint problem built no matrix of its own
    assert (count("inverse", True), count("cayley", True), count("forward", True)) == (0, 0, 0)
    assert len(built) == 1 + n_inv + n_cayley + n_forward
    assert state.result.success


# -- the backward pass -----------------------------------------------------------------
BACKWARD_METHODS = {
    "FB": lambda layer, p: ops.ForwardBackward(step=fb_step(layer, p)),
    "PR": lambda layer, p: ops.PeacemanRachford(step=1.0),
    "DR": lambda layer, p: ops.DouglasRachford(step=1.0),
}


@pytest.mark.parametrize("weight_norm", [False, True])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("method", sorted(BACKWARD_METHODS))
def test_backward_matches_dense_solve(method, activation, weight_norm):
    layer, p, x = make_case(m=0.5, weight_norm=weight_norm)
    deq = nn.MonDEQ(
        layer,
        activation,
        method=ops.PeacemanRachford(1.0),
        tol=1e-12,
        maxiter=2000,
        backward_method=BACKWARD_METHODS[method](layer, p),
        backward_maxiter=20000,
    )
    z, state = deq.forward(p, x)
    g = np.random.default_rng(3).standard_normal(z.shape)
    grads, grad_x, result = deq.backward(p, state, g, return_result=True)
    assert result.success, result.message
    exact, exact_x = deq.exact_backward(p, state, g)
    assert grads._fields == p._fields and set(grads.arrays()) == set(p.arrays())
    for name, value in exact.arrays().items():
        np.testing.assert_allclose(getattr(grads, name), value, rtol=1e-8, atol=1e-9, err_msg=name)
    np.testing.assert_allclose(grad_x, exact_x, rtol=1e-8, atol=1e-9)


def test_backward_against_explicit_jacobian():
    """Independent of the layer's formulas: the dense Jacobian dz/dx of the
    ReLU equilibrium, (I - JW)⁻¹ J U, gives grad_x = Jacobianᵀ g."""
    layer, p, x = make_case(m=0.5, seed=6)
    deq = nn.MonDEQ(layer, method=ops.PeacemanRachford(1.0), tol=1e-13, maxiter=2000)
    z, state = deq.forward(p, x)
    g = np.random.default_rng(0).standard_normal(z.shape)
    _, grad_x = deq.backward(p, state, g)
    W = dense_weight(numpy_params(p), 0.5, False)
    for k in range(BATCH):
        J = np.diag((z[k] > 0).astype(float))
        jac = np.linalg.solve(np.eye(WIDTH) - J @ W, J @ p.U)
        np.testing.assert_allclose(grad_x[k], jac.T @ g[k], atol=1e-10)


def test_linearized_activation_resolvent():
    """(I + αG̃)⁻¹ has denominator 1 + αD; entries with J = 0 are set to 0.
    The printed variant 1 + α(1 + D) does not solve u + α(Du - g) = y."""
    rng = np.random.default_rng(0)
    J = np.array([1.0, 0.7, 0.2, 0.0, 0.0, 0.5])
    g, y = rng.standard_normal(6), rng.standard_normal(6)
    alpha = 0.6
    u = LinearizedActivation(J, g).resolvent(alpha)(y)
    on = J > 0
    D = 1 / J[on] - 1
    np.testing.assert_allclose(u[on] + alpha * (D * u[on] - g[on]), y[on], atol=1e-14)
    np.testing.assert_array_equal(u[~on], 0.0)
    printed = (y[on] + alpha * g[on]) / (1 + alpha * (1 + D))
    assert not np.allclose(printed + alpha * (D * printed - g[on]), y[on], atol=1e-3)


# -- the adjoint test ⟨Jv, w⟩ = ⟨v, Jᵀw⟩ --------------------------------------------
@pytest.mark.parametrize("weight_norm", [False, True])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_adjoint_identity_of_equilibrium_jacobian(activation, weight_norm):
    layer, p, x = make_case(m=0.3, weight_norm=weight_norm, seed=1)
    deq = nn.MonDEQ(layer, activation, method=ops.PeacemanRachford(1.0), tol=1e-13, maxiter=5000)
    z, state = deq.forward(p, x)
    rng = np.random.default_rng(9)
    w = rng.standard_normal(z.shape)
    v_x = rng.standard_normal(x.shape)
    v_p = nn.DenseParams(**{k: rng.standard_normal(np.shape(a)) for k, a in p.arrays().items()})
    grads, grad_x = deq.backward(p, state, w)  # Jᵀw (splitting)
    jv = deq.jvp(p, state, v_p, v_x)  # Jv (splitting)
    rhs = np.sum(grad_x * v_x) + sum(
        np.sum(grads[i] * v_p[i]) for i in range(len(p)) if p[i] is not None
    )
    lhs = np.sum(jv * w)
    assert abs(lhs - rhs) <= 1e-10 * max(abs(lhs), 1.0)
    # the splitting JVP is the dense one
    np.testing.assert_allclose(jv, deq.exact_jvp(p, state, v_p, v_x), atol=1e-10)
    # a broken adjoint: I - W in place of its transpose (a forgotten .T) fails
    prepared = state.prepared
    untransposed = prepared._replace(
        monotone=prepared.monotone.H, forward=prepared.forward.H, backward=prepared.backward.H
    )
    _, grad_x_wrong = deq.backward(p, state._replace(prepared=untransposed), w)
    lhs_x = np.sum(deq.jvp(p, state, dx=v_x) * w)
    assert abs(lhs_x - np.sum(grad_x * v_x)) <= 1e-10 * max(abs(lhs_x), 1.0)
    assert abs(lhs_x - np.sum(grad_x_wrong * v_x)) > 1e-3 * abs(lhs_x)


# -- dtypes, backends, configuration -----------------------------------------------------
def test_forward_backward_on_every_backend_keep_dtype(backend, dtype):
    layer, p, x = make_case(m=0.5, weight_norm=True, backend=backend, dtype=dtype)
    deq = nn.MonDEQ(layer, "tanh", method=ops.PeacemanRachford(1.0), tol=1e-6, maxiter=500)
    z, state = deq.forward(p, x)
    grads, grad_x = deq.backward(p, state, z)
    dz = deq.jvp(p, state, dx=x)
    for name, value in [("z", z), ("grad_x", grad_x), ("dz", dz), *grads.arrays().items()]:
        assert value.dtype == backend.dtype(dtype), name
    assert state.result.success
    # the same numbers as NumPy float64
    layer64, p64, x64 = make_case(m=0.5, weight_norm=True)
    z64, st64 = nn.MonDEQ(layer64, "tanh", tol=1e-10).forward(p64, x64)
    _, gx64 = nn.MonDEQ(layer64, "tanh", tol=1e-10).exact_backward(p64, st64, z64)
    tol = 1e-4 if dtype == "float32" else 1e-6
    np.testing.assert_allclose(backend.to_numpy(z), z64, atol=tol)
    np.testing.assert_allclose(backend.to_numpy(grad_x), gx64, atol=10 * tol)


def test_with_step_and_options():
    layer, p, x = make_case()
    deq = nn.MonDEQ(layer, method=ops.PeacemanRachford(1.0))
    other = deq.with_step(0.4)
    assert other.method.step == 0.4 and deq.method.step == 1.0
    assert other._bw_method.step == 0.4
    mixed = nn.MonDEQ(layer, backward_method=ops.ForwardBackward(0.05)).with_step(2.0)
    assert mixed.method.step == 2.0 and mixed._bw_method.step == 0.05
    assert mixed.with_step(2.0, backward_step=0.02)._bw_method.step == 0.02
    prepared = mixed.prepare(p)
    assert (prepared.forward.step, prepared.backward.step) == (2.0, 0.05)
    assert prepared.forward.forward is None and prepared.backward.inverse is None
    z, _ = other.forward(p, x)
    assert z.shape == (BATCH, WIDTH)
    assert deq.with_options(tol=1e-3).tol == 1e-3


# -- bad input ---------------------------------------------------------------------------
def test_bad_inputs_raise_clear_errors():
    layer, p, x = make_case()
    deq = nn.MonDEQ(layer)
    with pytest.raises(ValueError, match="features"):
        deq.forward(p, x[:, :-1])
    with pytest.raises(ValueError, match="NaN or Inf"):
        deq.forward(p, np.where(np.arange(N_IN) == 2, np.nan, x))
    with pytest.raises(ValueError, match="NaN or Inf"):
        deq.forward(p, np.where(np.arange(N_IN) == 0, np.inf, x))
    with pytest.raises(ValueError, match="shape"):
        deq.forward(p, x[0])
    with pytest.raises(TypeError, match="dtype"):
        deq.forward(p, x.astype(np.float32))
    for m in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="m must be > 0"):
            nn.MonDense(N_IN, WIDTH, m=m)
    with pytest.raises(ValueError, match="width"):
        nn.MonDense(N_IN, 0)
    with pytest.raises(ValueError, match="params.A"):
        deq.forward(p._replace(A=p.A[:-1]), x)
    with pytest.raises(ValueError, match="params.g is missing"):
        nn.MonDEQ(nn.MonDense(N_IN, WIDTH, weight_norm=True)).forward(p, x)
    with pytest.raises(ValueError, match="unknown activation"):
        nn.MonDEQ(layer, "swish")
    with pytest.raises(TypeError, match="method"):
        nn.MonDEQ(layer, method="PR")
    z, state = deq.forward(p, x)
    with pytest.raises(ValueError, match="grad_z"):
        deq.backward(p, state, z[:, :-1])


@pytest.mark.parametrize("name", ["PR", "DR", "FB"])
def test_recording_only_checks_gives_the_same_equilibrium_and_gradients(name):
    """MonDEQ records residuals at its checks only (record="checks", the default):
    the same iterates, iteration counts and gradients as record="every", with one
    history entry per check."""
    layer, p, x = make_case(m=0.5)
    method = {"PR": ops.PeacemanRachford(1.0), "DR": ops.DouglasRachford(1.0),
              "FB": ops.ForwardBackward(fb_step(layer, p))}[name]
    g = np.random.default_rng(3).standard_normal((BATCH, WIDTH))
    runs = {}
    for record in ("checks", "every"):
        deq = nn.MonDEQ(layer, method=method, tol=1e-8, maxiter=3000, record=record)
        z, state = deq.forward(p, x)
        grads, grad_x, bw = deq.backward(p, state, g, return_result=True)
        runs[record] = (z, state.result, grads, grad_x, bw)
    assert nn.MonDEQ(layer).record == "checks"
    (z_c, fw_c, gr_c, gx_c, bw_c), (z_e, fw_e, gr_e, gx_e, bw_e) = runs["checks"], runs["every"]
    np.testing.assert_array_equal(z_c, z_e)
    np.testing.assert_array_equal(gx_c, gx_e)
    for a, b in zip(gr_c, gr_e):
        if a is not None:
            np.testing.assert_array_equal(a, b)
    for c, e in ((fw_c, fw_e), (bw_c, bw_e)):
        assert c.success and (c.iterations, c.status) == (e.iterations, e.status)
        assert c.history.size < e.history.size == e.iterations
        assert c.history_iterations[-1] == c.iterations
        np.testing.assert_allclose(c.history, e.history[c.history_iterations - 1], rtol=1e-12)
    # the per-iteration view the training curves use: NaN where nothing was recorded
    dense = fw_c.history_per_iteration
    assert dense.shape == (fw_c.iterations,)
    np.testing.assert_array_equal(np.flatnonzero(np.isfinite(dense)) + 1, fw_c.history_iterations)
    with pytest.raises(ValueError, match="record"):
        nn.MonDEQ(layer, record="sometimes")
