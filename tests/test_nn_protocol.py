"""The layer protocol: MonDEQ runs any MonotoneLayer, including tuple (multi-tier) states.

A two-tier toy layer (hidden state ``(z1, z2)``, ``I - W`` block lower
triangular, so its inverse is a block forward substitution) goes through the
same forward, backward and tangent solves as the dense layer; its
equilibrium is checked against an independent flat solve and its gradients
against central differences and the dense reference.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest

import opsplit as ops
from opsplit import nn

N1, N2, N_IN, BATCH, M = 4, 3, 5, 3, 1.0


class TierParams(NamedTuple):
    W11: object
    W21: object
    W22: object
    U1: object
    U2: object
    b1: object
    b2: object

    def arrays(self):
        return self._asdict()


class TwoTier(nn.MonotoneLayer):
    """``z1 = σ(W11 z1 + U1 x + b1)``, ``z2 = σ(W21 z1 + W22 z2 + U2 x + b2)``.

    The weights are taken as given (the test picks values with
    ``I - W ⪰ M·I``); only what MonDEQ needs is implemented.
    """

    m = M

    def init_params(self, seed=0, *, dtype="float64", like=None):
        rng = np.random.default_rng(seed)

        def monotone_block(n):
            a, b = rng.standard_normal((2, n, n)) * 0.3
            return (1 - M) * np.eye(n) - a.T @ a + b - b.T  # I - W = M·I + aᵀa + skew

        return TierParams(
            W11=monotone_block(N1),
            W21=0.2 * rng.standard_normal((N2, N1)) / np.sqrt(N1),
            W22=monotone_block(N2),
            U1=rng.standard_normal((N1, N_IN)),
            U2=rng.standard_normal((N2, N_IN)),
            b1=0.3 * rng.standard_normal(N1),
            b2=0.3 * rng.standard_normal(N2),
        )

    def check_params(self, params):
        if not isinstance(params, TierParams):
            raise TypeError("params must be TierParams")

    def check_input(self, params, x):
        if np.shape(x)[-1:] != (N_IN,) or not np.all(np.isfinite(x)):
            raise ValueError("x must be a finite (batch, 5) array")

    def monotone(self, params):
        self.check_params(params)
        return ops.BlockLowerTriangular(
            [
                [ops.Dense(np.eye(N1) - params.W11)],
                [ops.Dense(-params.W21), ops.Dense(np.eye(N2) - params.W22)],
            ]
        )

    def injection(self, params, x):
        return (x @ params.U1.T + params.b1, x @ params.U2.T + params.b2)

    def tangent(self, params, x, z, dparams=None, dx=None):
        d = dparams._asdict() if dparams is not None else {}

        def get(name):
            value = d.get(name)
            return np.zeros_like(getattr(params, name)) if value is None else value

        z1, z2 = z
        dq1 = z1 @ get("W11").T + x @ get("U1").T + get("b1")
        dq2 = z1 @ get("W21").T + z2 @ get("W22").T + x @ get("U2").T + get("b2")
        if dx is not None:
            dq1, dq2 = dq1 + dx @ params.U1.T, dq2 + dx @ params.U2.T
        return dq1, dq2

    def grads(self, params, x, z, r):
        (z1, z2), (r1, r2) = z, r
        grads = TierParams(
            W11=r1.T @ z1,
            W21=r2.T @ z1,
            W22=r2.T @ z2,
            U1=r1.T @ x,
            U2=r2.T @ x,
            b1=r1.sum(axis=0),
            b2=r2.sum(axis=0),
        )
        return grads, r1 @ params.U1 + r2 @ params.U2

    def lipschitz(self, params):
        return float(np.linalg.norm(self.monotone(params).to_dense(), 2))


def flat_weight(p):
    W = np.zeros((N1 + N2, N1 + N2))
    W[:N1, :N1], W[N1:, :N1], W[N1:, N1:] = p.W11, p.W21, p.W22
    return W


@pytest.fixture
def case():
    layer = TwoTier()
    p = layer.init_params(seed=0)
    x = np.random.default_rng(1).standard_normal((BATCH, N_IN))
    return layer, p, x


def test_the_toy_layer_is_monotone_with_margin(case):
    layer, p, _ = case
    Mfull = np.eye(N1 + N2) - flat_weight(p)
    assert np.linalg.eigvalsh((Mfull + Mfull.T) / 2).min() >= 0.8 * M
    np.testing.assert_allclose(layer.monotone(p).to_dense(), Mfull, atol=1e-14)


@pytest.mark.parametrize(
    "method", [ops.PeacemanRachford(1.0), ops.DouglasRachford(0.7), ops.ForwardBackward(0.1)]
)
def test_tuple_states_forward_matches_a_flat_solve(case, method):
    layer, p, x = case
    deq = nn.MonDEQ(layer, method=method, tol=1e-12, maxiter=5000)
    (z1, z2), state = deq.forward(p, x)
    assert state.result.success, state.result.message
    # independent: the same equilibrium on flat vectors with the dense W
    W, c = flat_weight(p), np.hstack(layer.injection(p, x))
    F = ops.LinearMonotone(ops.Dense(np.eye(N1 + N2) - W), -c)
    ref = ops.solve(
        ops.Inclusion(F, ops.Subdifferential(ops.prox.NonNegative())),
        ops.PeacemanRachford(1.0),
        np.zeros_like(c),
        tol=1e-13,
        maxiter=5000,
    )
    np.testing.assert_allclose(np.hstack([z1, z2]), ref.x, atol=1e-9)
    np.testing.assert_allclose(np.hstack([z1, z2]), np.maximum(ref.x @ W.T + c, 0), atol=1e-9)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_tuple_states_gradients_and_tangents(case, activation):
    layer, p, x = case
    deq = nn.MonDEQ(layer, activation, method=ops.PeacemanRachford(1.0), tol=1e-13, maxiter=5000)
    z, state = deq.forward(p, x)
    rng = np.random.default_rng(2)
    w = tuple(rng.standard_normal(part.shape) for part in z)
    grads, grad_x = deq.backward(p, state, w)
    exact, exact_x = deq.exact_backward(p, state, w)
    for name in TierParams._fields:
        np.testing.assert_allclose(getattr(grads, name), getattr(exact, name), atol=1e-9)
    np.testing.assert_allclose(grad_x, exact_x, atol=1e-9)

    # central differences of ℓ = ⟨w, z*(p, x)⟩ along random directions
    def loss(params, xx):
        zz, _ = deq.forward(params, xx)
        return sum(np.sum(a * b) for a, b in zip(w, zz))

    v = rng.standard_normal(x.shape)
    dp = TierParams(*(rng.standard_normal(np.shape(a)) for a in p))
    eps = 1e-6
    fd_x = (loss(p, x + eps * v) - loss(p, x - eps * v)) / (2 * eps)
    assert abs(fd_x - np.sum(grad_x * v)) <= 1e-6 * max(1.0, abs(fd_x))
    shifted = [TierParams(*(a + s * eps * d for a, d in zip(p, dp))) for s in (1, -1)]
    fd_p = (loss(shifted[0], x) - loss(shifted[1], x)) / (2 * eps)
    analytic_p = sum(np.sum(g * d) for g, d in zip(grads, dp))
    assert abs(fd_p - analytic_p) <= 1e-6 * max(1.0, abs(fd_p))

    # the tangent solve: the dense reference and the adjoint identity ⟨Jv, w⟩ = ⟨v, Jᵀw⟩
    dz = deq.jvp(p, state, dp, v)
    for got, ref in zip(dz, deq.exact_jvp(p, state, dp, v)):
        np.testing.assert_allclose(got, ref, atol=1e-9)
    lhs = sum(np.sum(a * b) for a, b in zip(dz, w))
    assert abs(lhs - (np.sum(grad_x * v) + analytic_p)) <= 1e-9 * max(1.0, abs(lhs))


def test_a_layer_must_implement_the_protocol():
    class Incomplete(nn.MonotoneLayer):
        m = 1.0

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()
    with pytest.raises(TypeError, match="MonotoneLayer"):
        nn.MonDEQ(object())


@pytest.mark.parametrize(
    "layer",
    [
        nn.MonDense(3, 4),
        nn.MonConv(in_channels=1, channels=2, image_shape=(4, 4)),
        nn.MonMultiConv(in_channels=1, channels=(2, 2), image_shape=(4, 4)),
    ],
    ids=["dense", "conv", "multiconv"],
)
def test_init_params_takes_float_dtypes_only(layer):
    """Every layer's parameters come in the float dtype asked for; any other dtype
    (which the host-to-device copy alone would accept) is refused by name."""
    for dtype in ("float32", "float64"):
        params = layer.init_params(seed=0, dtype=dtype)
        assert {str(v.dtype) for v in params.arrays().values()} == {dtype}
    for bad in ("int64", "float16", "bool"):
        with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64'"):
            layer.init_params(seed=0, dtype=bad)
