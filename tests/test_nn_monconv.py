"""The single-convolution monDEQ layer against a direct (np.roll) reference."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import correlate, dense_of, to_numpy

import opsplit as ops
from opsplit import nn

C_IN, C, IMAGE, K, M = 2, 3, (4, 5), 3, 0.7


# -- independent references ------------------------------------------------------------
def reference_monotone(p, m, shape):
    """``I - W = m I + g AᵀA/‖A‖² - h (B - Bᵀ)/‖B‖`` from dense correlation matrices."""
    p = {k: to_numpy(v).astype(np.float64) for k, v in p._asdict().items()}
    A = dense_of(lambda v: correlate(p["A"], v), shape)
    B = dense_of(lambda v: correlate(p["B"], v), shape)
    a, beta = np.sum(p["A"] ** 2), np.sqrt(np.sum(p["B"] ** 2))
    return m * np.eye(A.shape[0]) + p["g"] * A.T @ A / a - p["h"] * (B - B.T) / beta


def make_case(seed=0, backend=None, dtype="float64"):
    layer = nn.MonConv(in_channels=C_IN, channels=C, image_shape=IMAGE, kernel_size=K, m=M)
    p = layer.init_params(seed=seed)
    p = p._replace(g=np.asarray(1.7), h=np.asarray(-0.8))  # not the initial values
    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal((2, C_IN, *IMAGE))
    if backend is not None:
        p = nn.ConvParams(*(backend.asarray(v, dtype) for v in p))
        x = backend.asarray(x, dtype)
    return layer, p, x


# -- the operator ----------------------------------------------------------------------
def test_monotone_operator_matches_direct_correlation(backend):
    layer, p, _ = make_case(backend=backend)
    ref = reference_monotone(p, M, layer.state_shape)
    M_op = layer.monotone(p)
    np.testing.assert_allclose(to_numpy(M_op.to_dense()), ref, atol=1e-12)
    # matvec and the adjoint on a batch, against the dense matrix and its transpose
    v = np.random.default_rng(3).standard_normal((2, *layer.state_shape))
    vb = backend.asarray(v)
    np.testing.assert_allclose(
        to_numpy(M_op.matvec(vb)).reshape(2, -1), v.reshape(2, -1) @ ref.T, atol=1e-12
    )
    np.testing.assert_allclose(
        to_numpy(M_op.rmatvec(vb)).reshape(2, -1), v.reshape(2, -1) @ ref, atol=1e-12
    )


def test_non_square_image_and_larger_kernel_match_reference():
    layer = nn.MonConv(in_channels=2, channels=2, image_shape=(3, 6), kernel_size=5, m=0.4)
    p = layer.init_params(seed=1)
    ref = reference_monotone(p, 0.4, layer.state_shape)
    np.testing.assert_allclose(layer.monotone_matrix(p), ref, atol=1e-12)
    np.testing.assert_allclose(layer.weight(p), np.eye(len(ref)) - ref, atol=1e-12)
    x = np.random.default_rng(0).standard_normal((1, 2, 3, 6))
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    expected = correlate(p.U, padded) + p.b[:, None, None]
    np.testing.assert_allclose(layer.injection(p, x), expected, atol=1e-12)


def test_reference_detects_a_wrong_operator():
    # the reference is sharp: a sign error in the skew part or a transposed kernel shows up
    layer, p, _ = make_case()
    ref = reference_monotone(p, M, layer.state_shape)
    flipped = reference_monotone(p._replace(h=-p.h), M, layer.state_shape)
    transposed = reference_monotone(p._replace(A=p.A[:, :, ::-1, ::-1]), M, layer.state_shape)
    dense = to_numpy(layer.monotone(p).to_dense())
    assert np.abs(dense - flipped).max() > 1e-2
    assert np.abs(dense - transposed).max() > 1e-2
    assert np.abs(dense - ref).max() < 1e-12


def test_injection_is_padded_correlation_plus_bias(backend):
    layer, p, x = make_case(backend=backend)
    xn = to_numpy(x)
    U, b = to_numpy(p.U), to_numpy(p.b)
    padded = np.pad(xn, ((0, 0), (0, 0), (1, 1), (1, 1)))
    ref = correlate(U, padded) + b[:, None, None]
    np.testing.assert_allclose(to_numpy(layer.injection(p, x)), ref, atol=1e-12)


@pytest.mark.parametrize("step", [0.3, 2.0])
def test_shifted_inverse_is_exact(backend, step):
    layer, p, _ = make_case(backend=backend)
    ref = reference_monotone(p, M, layer.state_shape)
    steps = ops.operators.precompute(layer.monotone(p), step)
    inv = to_numpy(steps.inverse.to_dense())
    eye = np.eye(ref.shape[0])
    np.testing.assert_allclose(inv @ (eye + step * ref), eye, atol=1e-12)
    # the adjoint of the inverse is the inverse of the adjoint (backward pass)
    inv_h = to_numpy(steps.H.inverse.to_dense())
    np.testing.assert_allclose(inv_h @ (eye + step * ref.T), eye, atol=1e-12)


def test_symmetric_part_is_at_least_m():
    layer, p, _ = make_case()
    rng = np.random.default_rng(5)
    # arbitrary kernels and scales, g >= 0
    p = p._replace(
        A=3.0 * rng.standard_normal(p.A.shape),
        B=rng.standard_normal(p.B.shape),
        g=np.asarray(4.0),
        h=np.asarray(5.0),
    )
    dense = to_numpy(layer.monotone(p).to_dense())
    eig = np.linalg.eigvalsh((dense + dense.T) / 2)
    assert eig.min() >= M - 1e-10
    # the exact margin and norm from the per-frequency symbols
    op = layer.monotone(p)
    assert ops.operators.exact_margin(op) == pytest.approx(eig.min(), abs=1e-10)
    assert ops.operators.exact_norm(op) == pytest.approx(np.linalg.norm(dense, 2), rel=1e-12)
    assert layer.lipschitz(p) == pytest.approx(np.linalg.norm(dense, 2), rel=1e-12)


def test_float32_stays_float32():
    layer, p, x = make_case()
    p32 = nn.ConvParams(*(v.astype(np.float32) for v in p))
    x32 = x.astype(np.float32)
    M_op = layer.monotone(p32)
    z = np.ones((2, *layer.state_shape), dtype=np.float32)
    inv = ops.operators.precompute(M_op, 1.0).inverse
    assert layer.injection(p32, x32).dtype == np.float32
    assert M_op.matvec(z).dtype == np.float32 and M_op.rmatvec(z).dtype == np.float32
    assert inv.matvec(z).dtype == np.float32
    grads, grad_x = layer.grads(p32, x32, z, z)
    assert all(g.dtype == np.float32 for g in grads) and grad_x.dtype == np.float32


def test_layer_pieces_are_portable(backend):
    """Injection, tangent and gradients on every backend agree with NumPy."""
    layer, p, x = make_case()
    rng = np.random.default_rng(8)
    z = rng.standard_normal((2, *layer.state_shape))
    grads, grad_x = layer.grads(p, x, z, z)
    pb = nn.ConvParams(*(backend.asarray(v) for v in p))
    xb, zb = backend.asarray(x), backend.asarray(z)
    grads_b, grad_x_b = layer.grads(pb, xb, zb, zb)
    for name in p._fields:
        np.testing.assert_allclose(
            to_numpy(getattr(grads_b, name)), getattr(grads, name), atol=1e-12
        )
    np.testing.assert_allclose(to_numpy(grad_x_b), grad_x, atol=1e-12)
    dq = layer.tangent(p, x, z, grads, x)
    np.testing.assert_allclose(to_numpy(layer.tangent(pb, xb, zb, grads_b, xb)), dq, atol=1e-11)


# -- gradients and tangents against finite differences ---------------------------------
def _pre_activation(layer, p, x, z):
    return z - layer.monotone(p).matvec(z) + layer.injection(p, x)


@pytest.mark.parametrize("name", ["A", "B", "U", "b", "g", "h", "x"])
def test_grads_and_tangent_match_finite_differences(name):
    """``q = W z + U x_pad + b`` at fixed ``z``: ``grads`` is the gradient of
    ``⟨r, q⟩`` and ``tangent`` the directional derivative of ``q``."""
    layer, p, x = make_case()
    rng = np.random.default_rng(11)
    z = rng.standard_normal((2, *layer.state_shape))
    r = rng.standard_normal((2, *layer.state_shape))
    value = x if name == "x" else getattr(p, name)
    d = rng.standard_normal(np.shape(value))

    def moved(t):
        if name == "x":
            return p, x + t * d
        return p._replace(**{name: value + t * d}), x

    eps = 1e-6
    fd_q = (_pre_activation(layer, *moved(eps), z) - _pre_activation(layer, *moved(-eps), z)) / (
        2 * eps
    )
    grads, grad_x = layer.grads(p, x, z, r)
    analytic = np.sum((grad_x if name == "x" else getattr(grads, name)) * d)
    assert analytic == pytest.approx(np.sum(r * fd_q), rel=1e-7)
    if name == "x":
        dq = layer.tangent(p, x, z, None, d)
    else:
        dparams = nn.ConvParams(**{f: (d if f == name else None) for f in p._fields})
        dq = layer.tangent(p, x, z, dparams)
    np.testing.assert_allclose(dq, fd_q, atol=1e-7)


def test_full_equilibrium_gradcheck():
    layer, p, x = make_case()
    p = p._replace(b=p.b + 0.3)
    deq = nn.MonDEQ(layer, activation=layer.nonlinearity("relu"), method=ops.PeacemanRachford(1.0))
    report = nn.gradcheck(deq, p, x, n_directions=2)
    assert report.passed, str(report)

    # a wrong gradient fails it
    def broken(params, state, grad_z):
        grads, grad_x = deq.backward(params, state, grad_z)
        return grads._replace(A=grads.A + 1e-3), grad_x

    assert not nn.gradcheck(deq, p, x, n_directions=1, backward=broken).fields["A"].passed


def test_backward_and_jvp_match_the_exact_dense_solves():
    layer, p, x = make_case()
    deq = nn.MonDEQ(
        layer, activation=layer.nonlinearity("relu"), method=ops.PeacemanRachford(1.0), tol=1e-12
    )
    z, state = deq.forward(p, x)
    c = np.random.default_rng(4).standard_normal(z.shape)
    grads, grad_x = deq.backward(p, state, c)
    exact, exact_x = deq.exact_backward(p, state, c)
    for name in p._fields:
        np.testing.assert_allclose(getattr(grads, name), getattr(exact, name), atol=1e-9)
    np.testing.assert_allclose(grad_x, exact_x, atol=1e-9)
    dz = deq.jvp(p, state, None, x)
    np.testing.assert_allclose(dz, deq.exact_jvp(p, state, None, x), atol=1e-9)
    assert np.sum(c * dz) == pytest.approx(np.sum(grad_x * x), rel=1e-8)


def test_equilibrium_matches_dense_reference_and_keeps_ring_zero():
    layer, p, x = make_case()
    deq = nn.MonDEQ(
        layer,
        activation=layer.nonlinearity("relu"),
        method=ops.PeacemanRachford(1.0),
        tol=1e-12,
        maxiter=2000,
    )
    z, state = deq.forward(p, x)
    assert state.result.success
    ring = np.ones(layer.grid, dtype=bool)
    ring[1:-1, 1:-1] = False
    assert np.all(z[..., ring] == 0.0)
    W = np.eye(int(np.prod(layer.state_shape))) - reference_monotone(p, M, layer.state_shape)
    q = z.reshape(2, -1) @ W.T + to_numpy(layer.injection(p, x)).reshape(2, -1)
    expected = np.where(ring, 0.0, np.maximum(q.reshape(z.shape), 0.0))
    np.testing.assert_allclose(z, expected, atol=1e-9)
    assert np.abs(z).max() > 0  # not trivially zero


# -- the border nonlinearity -----------------------------------------------------------
@pytest.mark.parametrize("activation", ["relu", "tanh", "leaky_relu"])
def test_border_masked_prox(activation):
    sigma = nn.BorderMasked(activation)
    inner = ops.prox.activations.get_activation(activation)
    v = np.random.default_rng(2).standard_normal((2, 3, 5, 6))
    for step in (0.5, 1.0):
        p = sigma.prox(v, step)
        assert np.all(p[..., 0, :] == 0) and np.all(p[..., -1, :] == 0)
        assert np.all(p[..., :, 0] == 0) and np.all(p[..., :, -1] == 0)
        np.testing.assert_allclose(p[..., 1:-1, 1:-1], inner.prox(v, step)[..., 1:-1, 1:-1])
        np.testing.assert_allclose(sigma.reflect(v, step), 2 * p - v, atol=1e-14)
        # optimality of the prox on the interior and the value: f(p) finite, f(v) infinite
        assert np.isfinite(float(sigma.value(p)))
    assert float(sigma.value(v)) == np.inf
    d = sigma.derivative(v)
    assert np.all(d[..., 0, :] == 0) and np.all(d[..., :, -1] == 0)
    np.testing.assert_allclose(d[..., 1:-1, 1:-1], inner.derivative(v)[..., 1:-1, 1:-1])
    # tuples: one ring per block
    t = sigma.prox((v, v[..., :4, :4]), 1.0)
    assert t[1].shape == (2, 3, 4, 4) and np.all(t[1][..., 0, :] == 0)


def test_border_masked_on_every_backend(backend):
    """The ring is written into a fresh array (slice assignment): the same values
    on every backend, and the input is left alone."""
    sigma = nn.BorderMasked("relu")
    v = np.random.default_rng(3).standard_normal((2, 3, 5, 6))
    vb = backend.asarray(v)
    for fn in (sigma.prox, sigma.reflect, sigma.derivative):
        expected = fn(v)
        np.testing.assert_array_equal(to_numpy(fn(vb)), expected)
    np.testing.assert_array_equal(to_numpy(vb), v)
    ring = np.ones((5, 6), bool)
    ring[1:-1, 1:-1] = False
    np.testing.assert_array_equal(sigma.reflect(v)[..., ring], -v[..., ring])
    np.testing.assert_array_equal(sigma.reflect(v)[..., ~ring], np.abs(v)[..., ~ring])


# -- memory ------------------------------------------------------------------------------
def _peak_bytes(fn):
    import tracemalloc

    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_no_batch_by_frequency_by_channel_squared_array():
    """A whole forward + backward pass never holds one complex array of
    ``batch × F × C × C`` (what per-sample, per-frequency matrices would form):
    its peak stays below that size, which the measurement does see when such an
    array is formed."""
    batch, c = 64, 48
    layer = nn.MonConv(in_channels=1, channels=c, image_shape=(6, 6), kernel_size=3)
    p = layer.init_params(seed=0)
    x = np.random.default_rng(0).standard_normal((batch, 1, 6, 6))
    deq = nn.MonDEQ(layer, method=ops.PeacemanRachford(step=1.0), tol=1e-3)
    symbol = layer.monotone(p).symbol
    size = batch * symbol.shape[0] * c * c * 16  # complex128

    def one_batch():
        z, state = deq.forward(p, x)
        deq.backward(p, state, np.ones_like(z))

    one_batch()  # warm caches (FFT plans) outside the measurement
    assert _peak_bytes(one_batch) < size
    spec = np.ones((symbol.shape[0], c, batch), complex)  # the broken way: batch × F × C × C
    assert _peak_bytes(lambda: np.einsum("foc,fcb->bfoc", symbol, spec)) >= size


# -- bad input -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kernel_size": 4}, "kernel_size"),
        ({"kernel_size": 9}, "kernel_size"),
        ({"image_shape": (4,)}, "image_shape"),
        ({"image_shape": (0, 4)}, "image_shape"),
        ({"channels": 0}, "channels"),
        ({"m": 0.0}, "m must be"),
    ],
)
def test_bad_construction(kwargs, match):
    args = {"in_channels": 1, "channels": 2, "image_shape": (4, 4), "kernel_size": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        nn.MonConv(**args)


def test_bad_input_and_params():
    layer, p, x = make_case()
    with pytest.raises(ValueError, match="image_shape"):
        layer.check_input(p, x[..., :4])
    with pytest.raises(ValueError, match="in_channels"):
        layer.check_input(p, x[:, :1])
    with pytest.raises(ValueError, match="x must have shape"):
        layer.check_input(p, x[0])
    with pytest.raises(TypeError, match="dtype"):
        layer.check_input(p, x.astype(np.float32))
    with pytest.raises(ValueError, match="params.A"):
        layer.monotone(p._replace(A=p.A[:, :, :1]))
    with pytest.raises(ValueError, match="params.g"):
        layer.monotone(p._replace(g=np.ones(1)))
    with pytest.raises(TypeError, match="ConvParams"):
        layer.monotone(tuple(p))
