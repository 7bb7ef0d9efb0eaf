"""Hand-derived monDEQ gradients against central differences and the Taylor test."""

from __future__ import annotations

import numpy as np
import pytest

import opsplit as ops
from opsplit import nn
from opsplit.nn.checks import taylor_verdict

N_IN, WIDTH, BATCH = 4, 10, 2


def make_deq(m, activation, weight_norm, backward, seed=0):
    layer = nn.MonDense(in_features=N_IN, width=WIDTH, m=m, weight_norm=weight_norm)
    p = layer.init_params(seed=seed)
    rng = np.random.default_rng(seed + 1)
    p = p._replace(b=0.3 * rng.standard_normal(WIDTH))
    x = rng.standard_normal((BATCH, N_IN))
    if backward == "FB":
        bw = ops.ForwardBackward(step=m / layer.lipschitz(p) ** 2)
    else:
        bw = ops.PeacemanRachford(step=1.0)
    deq = nn.MonDEQ(layer, activation, method=ops.PeacemanRachford(step=1.0), backward_method=bw)
    return deq, p, x


@pytest.mark.parametrize("weight_norm", [False, True], ids=["plain", "weight_norm"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("m", [0.05, 1.0])
@pytest.mark.parametrize("backward", ["FB", "PR"])
def test_gradcheck_passes(backward, m, activation, weight_norm):
    deq, p, x = make_deq(m, activation, weight_norm, backward)
    report = nn.gradcheck(deq, p, x, seed=2, n_directions=2, tol=1e-13, rtol=1e-6)
    assert report.passed, str(report)
    assert report.converged and report.max_rel_error <= 1e-6
    expected = {"A", "B", "U", "b", "x"} | ({"g", "h"} if weight_norm else set())
    assert set(report.fields) == expected
    # the weights enter nonlinearly even for ReLU: their remainders fall like ε²
    for name in ("A", "B"):
        assert 1.9 <= report.fields[name].taylor_slope <= 2.1, str(report)
    if activation == "tanh":  # not piecewise linear: the input's remainder is O(ε²) too
        assert 1.9 <= report.fields["x"].taylor_slope <= 2.1, str(report)


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda g, gx: (g._replace(A=1.01 * g.A), gx), id="A-scaled-1.01"),
        pytest.param(
            lambda g, gx: (g._replace(U=g.U + 1e-4 * np.abs(g.U).max()), gx), id="U-shifted-1e-4"
        ),
        pytest.param(lambda g, gx: (g._replace(A=g.A.T), gx), id="A-transposed"),
        pytest.param(lambda g, gx: (g, -gx), id="x-sign"),
    ],
)
def test_gradcheck_fails_on_wrong_gradient(corrupt):
    deq, p, x = make_deq(0.5, "tanh", False, "PR")
    tight = deq.with_options(tol=1e-13, maxiter=10_000, backward_tol=1e-13, backward_maxiter=10_000)

    def broken(params, state, grad_z):
        return corrupt(*tight.backward(params, state, grad_z))

    report = nn.gradcheck(deq, p, x, n_directions=2, backward=broken)
    assert not report.passed
    bad = {name for name, f in report.fields.items() if not f.passed}
    assert len(bad) == 1, str(report)
    wrong = bad.pop()
    assert report.fields[wrong].rel_error > 1e-6
    # the Taylor remainder of a wrong gradient is O(ε), not O(ε²)
    assert not report.fields[wrong].taylor_passed
    assert report.fields[wrong].taylor_slope < 1.5


def test_gradcheck_of_the_dense_reference_backward():
    deq, p, x = make_deq(1.0, "relu", True, "PR")
    report = nn.gradcheck(deq, p, x, n_directions=1, backward=deq.exact_backward)
    assert report.passed, str(report)
    assert "passed: True" in str(report)


def test_gradcheck_on_strict_backend_in_float32():
    """float32 inputs on a non-NumPy backend are checked in float64."""
    import array_api_strict as xps

    deq, p, x = make_deq(1.0, "tanh", False, "PR")
    dev = xps.__array_namespace_info__().devices()[1]
    to = lambda a: xps.asarray(np.asarray(a, dtype=np.float32), device=dev)  # noqa: E731
    p32 = nn.DenseParams(**{k: to(v) for k, v in p.arrays().items()})
    report = nn.gradcheck(deq, p32, to(x), n_directions=1)
    assert report.passed, str(report)


def test_gradcheck_reports_unconverged_solves():
    deq, p, x = make_deq(0.05, "relu", False, "PR")
    report = nn.gradcheck(deq, p, x, n_directions=1, maxiter=3)
    assert not report.converged and not report.passed
    assert any("did not converge" in msg for msg in report.messages)


def test_taylor_verdict():
    eps = 1e-3 * 0.5 ** np.arange(5)
    slope, ok = taylor_verdict(eps, 3.0 * eps**2, noise=1e-14)
    assert ok and abs(slope - 2.0) < 1e-9
    slope, ok = taylor_verdict(eps, 1e-4 * eps + eps**2, noise=1e-14)  # wrong gradient
    assert not ok and slope < 1.8
    slope, ok = taylor_verdict(eps, np.full(5, 1e-15), noise=1e-14)  # linear to noise
    assert ok and np.isnan(slope)
    # a ReLU kink crossed at the largest ε only: the small-ε remainders decide
    slope, ok = taylor_verdict(eps, np.r_[1e-6, np.full(4, 1e-15)], noise=1e-14)
    assert ok
    assert not taylor_verdict(eps, np.r_[np.nan, eps[1:] ** 2], noise=1e-14)[1]


def test_gradcheck_bad_arguments():
    deq, p, x = make_deq(1.0, "relu", False, "PR")
    with pytest.raises(TypeError, match="deq"):
        nn.gradcheck("deq", p, x)
    with pytest.raises(ValueError, match="n_directions"):
        nn.gradcheck(deq, p, x, n_directions=0)
    with pytest.raises(ValueError, match="eps"):
        nn.gradcheck(deq, p, x, eps=0.0)
    with pytest.raises(ValueError, match="features"):
        nn.gradcheck(deq, p, x[:, :2])
