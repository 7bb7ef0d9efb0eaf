"""The multi-tier convolutional monDEQ layer against a direct (np.roll) reference."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import correlate, dense_of, to_numpy

import opsplit as ops
from opsplit import nn

C_IN, CHANNELS, IMAGE, K, M = 2, (2, 3, 2), (4, 4), 3, 0.6


# -- independent references ------------------------------------------------------------
def reference_monotone(layer, p, pad=(0, 1)):
    """``I - W`` block by block from the definition: ``mI + AᵀA + SᵀS - (B - Bᵀ)`` on
    the diagonal, ``2 Aᵀ P S`` below it, with explicit subsampling and top-left placement."""
    p = {k: v for k, v in p._asdict().items()}
    shapes, L = layer.state_shapes, layer.depth

    def unit(k):
        return k / np.linalg.norm(k)

    A = [
        np.sqrt(p["g"][i]) * dense_of(lambda v, i=i: correlate(unit(p["A"][i]), v), shapes[i])
        for i in range(L)
    ]
    B = [
        p["h"][i] * dense_of(lambda v, i=i: correlate(unit(p["B"][i]), v), shapes[i])
        for i in range(L)
    ]

    def placed_subsampled(i):
        def f(v):
            y = correlate(unit(p["N"][i]), v)[..., ::2, ::2]
            return np.pad(y, [(0, 0)] * (y.ndim - 2) + [pad, pad])  # (0, 1): top-left

        return np.sqrt(p["gn"][i]) * dense_of(f, shapes[i])

    S = [placed_subsampled(i) for i in range(L - 1)]
    sizes = [int(np.prod(s)) for s in shapes]
    off = np.cumsum([0, *sizes])
    out = np.zeros((off[-1], off[-1]))
    for i in range(L):
        block = layer.m * np.eye(sizes[i]) + A[i].T @ A[i] - (B[i] - B[i].T)
        if i < L - 1:
            block += S[i].T @ S[i]
        out[off[i] : off[i + 1], off[i] : off[i + 1]] = block
        if i > 0:
            out[off[i] : off[i + 1], off[i - 1] : off[i]] = 2 * A[i].T @ S[i - 1]
    return out


def make_case(seed=0, channels=CHANNELS):
    layer = nn.MonMultiConv(
        in_channels=C_IN, channels=channels, image_shape=IMAGE, kernel_size=K, m=M
    )
    p = layer.init_params(seed=seed)
    rng = np.random.default_rng(seed + 1)
    L = layer.depth
    p = p._replace(  # not the initial values
        g=tuple(np.asarray(v) for v in rng.uniform(0.5, 2.0, L)),
        h=tuple(np.asarray(v) for v in rng.uniform(-1.5, 1.5, L)),
        gn=tuple(np.asarray(v) for v in rng.uniform(0.5, 2.0, L - 1)),
    )
    x = rng.standard_normal((2, C_IN, *IMAGE))
    return layer, p, x


def on_backend(p, backend, dtype="float64"):
    def put(v):
        return tuple(put(a) for a in v) if isinstance(v, tuple) else backend.asarray(v, dtype)

    return nn.MultiConvParams(*(put(v) for v in p))


def flat(state):
    return np.concatenate([to_numpy(s).reshape(s.shape[0], -1) for s in state], axis=1)


# -- the operator ----------------------------------------------------------------------
def test_grids_halve():
    layer = nn.MonMultiConv(in_channels=1, channels=(16, 32, 32), image_shape=(28, 28))
    assert layer.grids == ((30, 30), (16, 16), (9, 9))


def test_monotone_operator_matches_direct_reference(backend):
    layer, p, _ = make_case()
    ref = reference_monotone(layer, p)
    op = layer.monotone(on_backend(p, backend))
    np.testing.assert_allclose(to_numpy(op.to_dense()), ref, atol=1e-12)
    np.testing.assert_allclose(to_numpy(layer.weight(on_backend(p, backend))),
                               np.eye(len(ref)) - ref, atol=1e-12)
    rng = np.random.default_rng(4)
    v = tuple(backend.asarray(rng.standard_normal((2, *s))) for s in layer.state_shapes)
    vf = flat(v)
    np.testing.assert_allclose(flat(op.matvec(v)), vf @ ref.T, atol=1e-12)
    np.testing.assert_allclose(flat(op.rmatvec(v)), vf @ ref, atol=1e-12)


@pytest.mark.parametrize(
    "channels, image, kernel_size",
    [((2,), (4, 6), 3), ((2, 3), (4, 8), 3), ((1, 2, 2), (8, 4), 3), ((2, 2), (8, 8), 5)],
)
def test_other_shapes_and_depths_match_reference(channels, image, kernel_size):
    layer = nn.MonMultiConv(
        in_channels=1, channels=channels, image_shape=image, kernel_size=kernel_size, m=0.5
    )
    p = layer.init_params(seed=2)
    ref = reference_monotone(layer, p)
    np.testing.assert_allclose(layer.monotone_matrix(p), ref, atol=1e-12)
    inv = ops.operators.precompute(layer.monotone(p), 0.9).inverse.to_dense()
    eye = np.eye(ref.shape[0])
    np.testing.assert_allclose(inv @ (eye + 0.9 * ref), eye, atol=1e-12)


def test_reference_detects_a_misplaced_subsampling():
    # placing S's output bottom-right instead of top-left, or a wrong inter-tier sign
    layer, p, _ = make_case()
    dense = to_numpy(layer.monotone(p).to_dense())
    ref = reference_monotone(layer, p)
    assert np.abs(dense - ref).max() < 1e-12
    assert np.abs(dense - reference_monotone(layer, p, pad=(1, 0))).max() > 1e-2
    n0 = int(np.prod(layer.state_shapes[0]))
    wrong = ref.copy()
    wrong[n0:, :n0] *= -1
    assert np.abs(dense - wrong).max() > 1e-2


@pytest.mark.parametrize("step", [0.4, 3.0])
def test_shifted_inverse_by_block_substitution_is_exact(backend, step):
    layer, p, _ = make_case()
    ref = reference_monotone(layer, p)
    steps = ops.operators.precompute(layer.monotone(on_backend(p, backend)), step)
    eye = np.eye(ref.shape[0])
    np.testing.assert_allclose(
        to_numpy(steps.inverse.to_dense()) @ (eye + step * ref), eye, atol=1e-12
    )
    np.testing.assert_allclose(
        to_numpy(steps.H.inverse.to_dense()) @ (eye + step * ref.T), eye, atol=1e-12
    )


def test_symmetric_part_is_at_least_m_and_lipschitz_bounds():
    layer, p, _ = make_case()
    rng = np.random.default_rng(9)
    p = p._replace(
        A=tuple(3 * rng.standard_normal(a.shape) for a in p.A),
        N=tuple(rng.standard_normal(n.shape) for n in p.N),
        g=tuple(np.asarray(4.0) for _ in p.g),
        gn=tuple(np.asarray(3.0) for _ in p.gn),
        h=tuple(np.asarray(2.0) for _ in p.h),
    )
    ref = reference_monotone(layer, p)
    assert np.linalg.eigvalsh((ref + ref.T) / 2).min() >= M - 1e-10
    norm = np.linalg.norm(ref, 2)
    bound = layer.lipschitz(p)
    assert norm <= bound <= 3 * norm


def test_float32_stays_float32():
    layer, p, x = make_case()
    p32 = nn.MultiConvParams(
        *(
            tuple(a.astype(np.float32) for a in v) if isinstance(v, tuple) else v.astype(np.float32)
            for v in p
        )
    )
    x32 = x.astype(np.float32)
    z = tuple(np.ones((2, *s), dtype=np.float32) for s in layer.state_shapes)
    op = layer.monotone(p32)
    inv = ops.operators.precompute(op, 1.0).inverse
    assert all(t.dtype == np.float32 for t in layer.injection(p32, x32))
    assert all(t.dtype == np.float32 for t in op.matvec(z) + op.rmatvec(z) + inv.matvec(z))
    grads, grad_x = layer.grads(p32, x32, z, z)
    assert (
        all(a.dtype == np.float32 for a in grads.arrays().values()) and grad_x.dtype == np.float32
    )


def test_layer_pieces_are_portable(backend):
    """Injection, tangent and gradients on every backend agree with NumPy."""
    layer, p, x = make_case()
    rng = np.random.default_rng(8)
    z = tuple(rng.standard_normal((2, *s)) for s in layer.state_shapes)
    grads, grad_x = layer.grads(p, x, z, z)
    pb = on_backend(p, backend)
    xb, zb = backend.asarray(x), tuple(backend.asarray(t) for t in z)
    grads_b, grad_x_b = layer.grads(pb, xb, zb, zb)
    expected = grads.arrays()
    for name, value in grads_b.arrays().items():
        np.testing.assert_allclose(to_numpy(value), expected[name], atol=1e-12)
    np.testing.assert_allclose(to_numpy(grad_x_b), grad_x, atol=1e-12)
    dq = layer.tangent(p, x, z, grads, x)
    for a, b in zip(layer.tangent(pb, xb, zb, grads_b, xb), dq, strict=True):
        np.testing.assert_allclose(to_numpy(a), b, atol=1e-11)


# -- gradients and tangents ------------------------------------------------------------
def _q(layer, p, x, z):
    Mz = layer.monotone(p).matvec(z)
    return tuple(a - b + c for a, b, c in zip(z, Mz, layer.injection(p, x), strict=True))


FIELDS = [("U", None), ("b", None), ("x", None)] + [
    (name, i)
    for name, n in (("A", 3), ("B", 3), ("g", 3), ("h", 3), ("N", 2), ("gn", 2))
    for i in range(n)
]


@pytest.mark.parametrize("name, index", FIELDS)
def test_grads_and_tangent_match_finite_differences(name, index):
    layer, p, x = make_case()
    rng = np.random.default_rng(12)
    z = tuple(rng.standard_normal((2, *s)) for s in layer.state_shapes)
    r = tuple(rng.standard_normal((2, *s)) for s in layer.state_shapes)
    value = x if name == "x" else getattr(p, name)
    if index is not None:
        value = value[index]
    d = rng.standard_normal(np.shape(value))

    def moved(t):
        if name == "x":
            return p, x + t * d
        if index is None:
            return p._replace(**{name: value + t * d}), x
        entries = list(getattr(p, name))
        entries[index] = value + t * d
        return p._replace(**{name: tuple(entries)}), x

    eps = 1e-6
    plus, minus = _q(layer, *moved(eps), z), _q(layer, *moved(-eps), z)
    fd_q = tuple((a - b) / (2 * eps) for a, b in zip(plus, minus, strict=True))
    grads, grad_x = layer.grads(p, x, z, r)
    grad = grad_x if name == "x" else getattr(grads, name)
    if index is not None:
        grad = grad[index]
    assert np.sum(grad * d) == pytest.approx(sum(np.sum(a * b) for a, b in zip(r, fd_q)), rel=1e-7)
    if name == "x":
        dq = layer.tangent(p, x, z, None, d)
    else:
        fields = {f: None for f in p._fields}
        if index is None:
            fields[name] = d
        else:
            fields[name] = tuple(d if j == index else None for j in range(len(getattr(p, name))))
        dq = layer.tangent(p, x, z, nn.MultiConvParams(**fields))
    for a, b in zip(dq, fd_q, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-7)


def test_equilibrium_gradients_through_mondeq():
    """Forward and backward of the full equilibrium (tuple states) against central
    differences of ``⟨c, z*⟩``; the tangent (``jvp``) agrees with ``backward``."""
    layer, p, x = make_case(channels=(2, 3))
    p = p._replace(b=p.b + 0.5)
    deq = nn.MonDEQ(
        layer,
        activation=layer.nonlinearity("relu"),
        method=ops.PeacemanRachford(1.0),
        tol=1e-13,
        maxiter=5000,
    )
    z, state = deq.forward(p, x)
    assert state.result.success
    for t in z:  # the rings stay zero
        assert np.all(t[..., 0, :] == 0) and np.all(t[..., :, -1] == 0)
    assert max(np.abs(t).max() for t in z) > 0
    rng = np.random.default_rng(3)
    c = tuple(rng.standard_normal(t.shape) for t in z)
    grads, grad_x = deq.backward(p, state, c)

    def loss(params, xx):
        zz, _ = deq.forward(params, xx, z0=z)
        return sum(np.sum(a * b) for a, b in zip(c, zz))

    eps = 1e-6
    checks = [("A", 1), ("B", 0), ("N", 0), ("g", 1), ("gn", 0), ("h", 1), ("U", None), ("b", None)]
    for name, index in checks:
        value = getattr(p, name) if index is None else getattr(p, name)[index]
        d = rng.standard_normal(np.shape(value))
        d /= np.linalg.norm(d)

        def moved(t, name=name, index=index, value=value, d=d):
            if index is None:
                return p._replace(**{name: value + t * d})
            entries = list(getattr(p, name))
            entries[index] = value + t * d
            return p._replace(**{name: tuple(entries)})

        fd = (loss(moved(eps), x) - loss(moved(-eps), x)) / (2 * eps)
        grad = getattr(grads, name) if index is None else getattr(grads, name)[index]
        assert np.sum(grad * d) == pytest.approx(fd, rel=1e-6, abs=1e-9), name
    dx = rng.standard_normal(x.shape)
    fd = (loss(p, x + eps * dx) - loss(p, x - eps * dx)) / (2 * eps)
    assert np.sum(grad_x * dx) == pytest.approx(fd, rel=1e-6)
    exact, exact_x = deq.exact_backward(p, state, c)
    for name, value in exact.arrays().items():
        np.testing.assert_allclose(grads.arrays()[name], value, atol=1e-9)
    np.testing.assert_allclose(grad_x, exact_x, atol=1e-9)
    dz = deq.jvp(p, state, None, dx)
    assert sum(np.sum(a * b) for a, b in zip(c, dz)) == pytest.approx(np.sum(grad_x * dx), rel=1e-8)


# -- bad input -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"image_shape": (6, 6)}, "does not halve"),
        ({"kernel_size": 2}, "kernel_size"),
        ({"kernel_size": 5}, "kernel_size"),  # larger than the last 3×3 grid
        ({"channels": ()}, "channels"),
        ({"channels": (2, 0)}, "channels"),
    ],
)
def test_bad_construction(kwargs, match):
    args = {
        "in_channels": 1,
        "channels": (2, 3, 2),
        "image_shape": (4, 4),
        "kernel_size": 3,
        **kwargs,
    }
    with pytest.raises(ValueError, match=match):
        nn.MonMultiConv(**args)


def test_bad_params_and_input():
    layer, p, x = make_case()
    with pytest.raises(ValueError, match=r"params\.N must hold 2"):
        layer.monotone(p._replace(N=p.N[:1]))
    with pytest.raises(ValueError, match=r"params\.g must hold 3"):
        layer.monotone(p._replace(g=p.g + p.g[:1]))
    with pytest.raises(ValueError, match=r"params\.N\[1\]"):
        layer.monotone(p._replace(N=(p.N[0], p.N[0])))  # (3, 2) where (2, 3) belongs
    with pytest.raises(TypeError, match=r"params\.A must be a tuple"):
        layer.monotone(p._replace(A=list(p.A)))
    with pytest.raises(ValueError, match="image_shape"):
        layer.check_input(p, x[..., :2, :2])
    with pytest.raises(ValueError, match="in_channels"):
        layer.check_input(p, x[:, :1])
