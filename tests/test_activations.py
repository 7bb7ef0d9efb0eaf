"""Activations as proximal operators: root-find accuracy, the activation at
step 1, derivatives by finite differences, optimality, backends."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import expit, logit, spence

from opsplit.prox import (
    Activation,
    HardTanh,
    LeakyReLU,
    ProxFunction,
    ReLU,
    Sigmoid,
    Softplus,
    Tanh,
)
from opsplit.prox.activations import activation_config, activation_from_config, get_activation

# independent NumPy/SciPy references: σ, σ', σ⁻¹ and the domain of f
REFERENCE = {
    "tanh": (np.tanh, lambda v: 1 - np.tanh(v) ** 2, np.arctanh, (-1.0, 1.0)),
    "sigmoid": (expit, lambda v: expit(v) * (1 - expit(v)), logit, (0.0, 1.0)),
    "softplus": (lambda v: np.logaddexp(0.0, v), expit, lambda p: np.log(np.expm1(p)),
                 (0.0, np.inf)),
}  # fmt: skip
SMOOTH = list(REFERENCE)
STEPS = [1e-3, 3e-3, 0.02, 0.3, 0.9, 1.0, 1.1, 3.0, 10.0]


def pre_activations(rng, n=60):
    """Points across scales, both signs, including the hard ones near 0."""
    return np.concatenate(
        [
            rng.normal(0.0, 1.0, n // 3),
            rng.normal(0.0, 10.0, n // 3),
            np.sign(rng.normal(size=n // 3)) * 10.0 ** rng.uniform(-8, 5, n // 3),
            [0.0, 0.5, -0.5, 1.0, -1.0],
        ]
    )


def brentq_prox(name, v, step):
    """prox_{step f}(v) by Brent's method on step·u + (1-step)·σ(u) = v, p = σ(u)."""
    sigma = REFERENCE[name][0]
    out = []
    for vi in v:
        u = brentq(
            lambda u, vi=vi: step * u + (1 - step) * sigma(u) - vi,
            -1e9,
            1e9,
            xtol=1e-300,
            rtol=4 * np.finfo(float).eps,
            maxiter=1000,
        )
        out.append(sigma(u))
    return np.array(out)


@pytest.mark.parametrize("name", SMOOTH)
def test_root_find_matches_brentq_float64(name):
    rng = np.random.default_rng(0)
    f = get_activation(name)
    v = pre_activations(rng)
    worst = 0.0
    for step in STEPS:
        p = f.prox(v, step)
        ref = brentq_prox(name, v, step)
        worst = max(worst, np.max(np.abs(p - ref) / np.maximum(1.0, np.abs(ref))))
    assert worst < 1e-10, worst


@pytest.mark.parametrize("name", SMOOTH)
def test_root_find_float32_accuracy(name):
    """In float32 the prox is as accurate as float32 allows: compared with
    the float64 prox of the same (float32-representable) inputs."""
    rng = np.random.default_rng(1)
    f = get_activation(name)
    v32 = pre_activations(rng).astype(np.float32)
    eps = np.finfo(np.float32).eps
    for step in STEPS:
        p32 = f.prox(v32, step)
        assert p32.dtype == np.float32
        p64 = f.prox(v32.astype(np.float64), step)
        err = np.abs(p32 - p64) / np.maximum(1.0, np.abs(p64))
        assert np.max(err) < 8 * eps, (step, np.max(err))


@pytest.mark.parametrize("name", SMOOTH)
def test_extreme_inputs_stay_in_domain_without_warnings(name):
    f = get_activation(name)
    low, high = REFERENCE[name][3]
    v = np.array([-1e6, -1e3, -40.0, -1e-30, 0.0, 1e-30, 40.0, 1e3, 1e6])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for step in [1e-3, 0.5, 2.0, 10.0]:
            for dtype in (np.float32, np.float64):
                p = f.prox(v.astype(dtype), step)
                assert np.all(np.isfinite(p)) and np.all((p >= low) & (p <= high))
                d = f.prox_derivative(v.astype(dtype), step)
                assert np.all((d >= 0) & (d <= 1))


@pytest.mark.parametrize("name", SMOOTH)
def test_optimality_condition(name):
    """p + step·f'(p) = v with f' = σ⁻¹ - id from SciPy/NumPy, where p is not
    so close to the boundary that σ⁻¹(p) is ill-conditioned."""
    rng = np.random.default_rng(2)
    f = get_activation(name)
    inverse = REFERENCE[name][2]
    for step in STEPS:
        u = rng.uniform(-6, 6, 50)  # the pre-activation of the answer
        v = step * u + (1 - step) * REFERENCE[name][0](u)  # so p = σ(u) exactly
        p = f.prox(v, step)
        residual = p + step * (inverse(p) - p) - v
        assert np.max(np.abs(residual) / (1 + np.abs(v))) < 1e-9
        # and a deliberately wrong prox (the step doubled) fails the same check
        q = f.prox(v, 2 * step)
        wrong = q + step * (inverse(q) - q) - v
        assert np.max(np.abs(wrong) / (1 + np.abs(v))) > 1e-3


def test_piecewise_linear_optimality():
    rng = np.random.default_rng(3)
    v = rng.normal(0, 3, 40)
    for slope in [0.01, 0.3, 1.0]:
        f = LeakyReLU(slope)
        for step in STEPS:
            p = f.prox(v, step)
            grad = (1 / slope - 1) * np.minimum(p, 0)  # f'(p)
            np.testing.assert_allclose(p + step * grad, v, rtol=1e-13, atol=1e-13)


ALL = ["relu", "leaky_relu", "hardtanh", "tanh", "sigmoid", "softplus"]


def numpy_activation(name, v):
    return {
        "relu": lambda: np.maximum(v, 0),
        "leaky_relu": lambda: np.where(v >= 0, v, 0.01 * v),
        "hardtanh": lambda: np.clip(v, -1, 1),
        "tanh": lambda: np.tanh(v),
        "sigmoid": lambda: expit(v),
        "softplus": lambda: np.logaddexp(0, v),
    }[name]()


def numpy_derivative(name, v):
    if name in REFERENCE:
        return REFERENCE[name][1](v)
    return {
        "relu": lambda: (v > 0).astype(float),
        "leaky_relu": lambda: np.where(v > 0, 1.0, 0.01),
        "hardtanh": lambda: ((v > -1) & (v < 1)).astype(float),
    }[name]()


@pytest.mark.parametrize("name", ALL)
def test_prox_at_step_one_is_the_activation(name, backend, dtype):
    rng = np.random.default_rng(4)
    v_np = rng.normal(0, 3, (4, 5))
    v = backend.asarray(v_np, dtype)
    f = get_activation(name)
    tol = 1e-6 if dtype == "float32" else 1e-14
    for out in (f.activate(v), f.prox(v, 1.0)):
        assert out.dtype == backend.dtype(dtype) and out.shape == v.shape
        np.testing.assert_allclose(
            backend.to_numpy(out), numpy_activation(name, v_np), rtol=tol, atol=tol
        )
    d = f.derivative(v)
    assert d.dtype == backend.dtype(dtype) and d.shape == v.shape
    np.testing.assert_allclose(
        backend.to_numpy(d), numpy_derivative(name, v_np), rtol=10 * tol, atol=10 * tol
    )


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("step", [0.01, 0.5, 1.0, 4.0])
def test_prox_derivative_matches_central_differences(name, step):
    rng = np.random.default_rng(5)
    f = get_activation(name)
    v = rng.normal(0, 2, 200)
    if name in ("relu", "leaky_relu", "hardtanh"):  # stay away from the kinks
        v = v[np.min(np.abs(v[:, None] - np.array([-1.0, 0.0, 1.0])), axis=1) > 1e-3]
    h = 1e-6
    fd = (f.prox(v + h, step) - f.prox(v - h, step)) / (2 * h)
    d = f.prox_derivative(v, step)
    np.testing.assert_allclose(d, fd, rtol=1e-6, atol=1e-7)
    p2, d2 = f.prox_and_derivative(v, step)
    np.testing.assert_array_equal(p2, f.prox(v, step))
    np.testing.assert_array_equal(d2, d)
    if step != 1.0 and not f.indicator:  # then σ'(v) is a different (wrong) answer
        assert np.max(np.abs(f.derivative(v) - fd)) > 1e-3


@pytest.mark.parametrize("name", ALL)
def test_backends_agree_with_numpy_float64(name, backend, dtype):
    rng = np.random.default_rng(6)
    v_np = rng.normal(0, 4, (3, 7))
    v = backend.asarray(v_np, dtype)
    before = backend.to_numpy(v).copy()
    f = get_activation(name)
    tol = 2e-5 if dtype == "float32" else 1e-12
    for step in (0.05, 2.5):
        p, d = f.prox_and_derivative(v, step)
        assert p.dtype == backend.dtype(dtype) and d.dtype == backend.dtype(dtype)
        p_ref, d_ref = f.prox_and_derivative(backend.to_numpy(v).astype(np.float64), step)
        np.testing.assert_allclose(backend.to_numpy(p), p_ref, rtol=tol, atol=tol)
        np.testing.assert_allclose(backend.to_numpy(d), d_ref, rtol=tol, atol=tol)
        assert float(backend.to_numpy(f.value(p))) < np.inf
    np.testing.assert_array_equal(backend.to_numpy(v), before)


@pytest.mark.parametrize("name", SMOOTH)
def test_value_derivative_is_inverse_minus_identity(name):
    """d f/dp = σ⁻¹(p) - p by central differences of ``value`` (checks the
    closed forms of f, including the dilogarithm for softplus)."""
    f = get_activation(name)
    low, high = REFERENCE[name][3]
    p = np.linspace(low + 0.05, min(high, 8.0) - 0.05, 41)
    h = 1e-6
    values = np.array([[float(f.value(np.array([q + s * h]))) for s in (-1, 1)] for q in p])
    fd = (values[:, 1] - values[:, 0]) / (2 * h)
    np.testing.assert_allclose(fd, REFERENCE[name][2](p) - p, rtol=1e-6, atol=1e-7)


def test_value_closed_forms_and_domains():
    p = np.linspace(0, 30, 31)
    np.testing.assert_allclose(
        [float(Softplus().value(np.array([q]))) for q in p],
        spence(-np.expm1(-p)),
        rtol=1e-13,
        atol=1e-15,
    )  # SciPy's spence(1 - z) loses the low digits of tiny Li2(z)
    assert float(Softplus().value(np.array([0.0]))) == pytest.approx(np.pi**2 / 6, rel=1e-15)
    assert float(Tanh().value(np.array([1.0, -1.0]))) == pytest.approx(2 * np.log(2) - 1)
    assert float(Sigmoid().value(np.array([0.0, 1.0]))) == pytest.approx(-0.5)
    for f, outside in [
        (Tanh(), 1.5),
        (Tanh(), -1.0001),
        (Sigmoid(), -0.1),
        (Softplus(), -1e-9),
        (ReLU(), -1.0),
        (HardTanh(), 2.0),
    ]:
        assert float(f.value(np.array([0.5, outside]))) == np.inf
    assert float(LeakyReLU(0.5).value(np.array([-2.0, 3.0]))) == pytest.approx(2.0)


def test_value_is_zero_dim_on_backend(backend):
    x = backend.asarray(np.array([0.2, 0.4]))
    for f in (Tanh(), Sigmoid(), Softplus(), ReLU(), HardTanh(), LeakyReLU()):
        val = f.value(x)
        assert val.shape == ()
        assert float(backend.to_numpy(val)) < np.inf


def test_get_activation():
    classes = {
        "relu": ReLU,
        "leaky_relu": LeakyReLU,
        "hardtanh": HardTanh,
        "tanh": Tanh,
        "sigmoid": Sigmoid,
        "softplus": Softplus,
    }
    for name, cls in classes.items():
        f = get_activation(name)
        assert type(f) is cls and isinstance(f, Activation) and isinstance(f, ProxFunction)
        assert f.separable and f.convex
    assert get_activation("ReLU").indicator
    assert get_activation("leaky_relu", slope=0.2).slope == 0.2
    r = ReLU()
    assert get_activation(r) is r
    with pytest.raises(ValueError, match="valid names are.*'softplus'"):
        get_activation("gelu")
    with pytest.raises(TypeError):
        get_activation(3)


@pytest.mark.parametrize(
    "make",
    [
        lambda: LeakyReLU(0.0),
        lambda: LeakyReLU(1.5),
        lambda: LeakyReLU(float("nan")),
        lambda: HardTanh(1.0, -1.0),
    ],
)
def test_bad_parameters(make):
    with pytest.raises(ValueError):
        make()


def test_bad_step_and_dtype():
    with pytest.raises(ValueError, match="step"):
        Tanh().prox(np.zeros(2), 0.0)
    with pytest.raises(TypeError, match="x"):
        Tanh().prox(np.zeros(2, dtype=int), 0.5)


# every registered activation with non-default parameters, its expected
# configuration and an independent NumPy formula of the activation
CONFIGS = [
    (ReLU(), {"name": "relu"}, lambda v: np.maximum(v, 0)),
    (LeakyReLU(slope=0.3), {"name": "leaky_relu", "slope": 0.3},
     lambda v: np.where(v >= 0, v, 0.3 * v)),
    (HardTanh(low=-0.5, high=2.0), {"name": "hardtanh", "low": -0.5, "high": 2.0},
     lambda v: np.clip(v, -0.5, 2.0)),
    (Tanh(), {"name": "tanh"}, np.tanh),
    (Sigmoid(), {"name": "sigmoid"}, expit),
    (Softplus(), {"name": "softplus"}, lambda v: np.logaddexp(0, v)),
]  # fmt: skip


def test_config_covers_every_registered_activation():
    assert {cfg["name"] for _, cfg, _ in CONFIGS} == set(ALL)


@pytest.mark.parametrize("act, expected, formula", CONFIGS, ids=[c["name"] for _, c, _ in CONFIGS])
def test_config_round_trip_is_exact(act, expected, formula):
    """The configuration names every parameter, survives JSON, and rebuilds an
    activation that computes the same function (LeakyReLU(0.3) must not come
    back as the default slope 0.01)."""
    import json

    cfg = activation_config(act)
    assert cfg == expected
    back = activation_from_config(json.loads(json.dumps(cfg)))
    assert type(back) is type(act) and activation_config(back) == cfg
    v = np.linspace(-4, 4, 41)
    np.testing.assert_allclose(back.activate(v), formula(v), rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(back.prox(v, 0.3), act.prox(v, 0.3), rtol=0, atol=0)


@pytest.mark.parametrize(
    "config, error, match",
    [
        ({"name": "gelu"}, ValueError, "unknown activation 'gelu'"),
        ({"slope": 0.3}, ValueError, "no 'name'"),
        ({"name": "leaky_relu"}, ValueError, r"missing \['slope'\]"),
        ({"name": "hardtanh", "low": -1.0}, ValueError, r"missing \['high'\]"),
        ({"name": "relu", "slope": 0.3}, ValueError, r"unknown \['slope'\]"),
        ({"name": "leaky_relu", "slope": 0.3, "alpha": 1.0}, ValueError, r"unknown \['alpha'\]"),
        ({"name": "leaky_relu", "slope": 2.0}, ValueError, "slope"),
        ({"name": "LeakyReLU", "slope": 0.3}, ValueError, "unknown activation"),
        ({"name": 3}, TypeError, "name"),
        ([("name", "relu")], TypeError, "config"),
    ],
)
def test_config_incomplete_or_unknown_is_an_error(config, error, match):
    with pytest.raises(error, match=match):
        activation_from_config(config)


def test_config_of_an_unregistered_activation_is_an_error():
    class Custom(ReLU):
        pass

    with pytest.raises(ValueError, match="Custom is not a registered activation"):
        activation_config(Custom())
    with pytest.raises(TypeError, match="activation"):
        activation_config("relu")


def test_hardtanh_bounds_are_numbers():
    """Box takes array bounds; the activation stays configured by two numbers."""
    with pytest.raises(TypeError, match="low must be a real number"):
        HardTanh(np.array([-1.0, 0.0]), 1.0)
