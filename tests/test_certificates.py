"""Uniqueness certificates and a-posteriori error bounds attached by ``solve``.

The bounds (derived in :mod:`opsplit.diagnostics.certificates`) must hold on
every random strongly monotone problem — dense, FFT convolution and monDEQ
— against the true zero from a high-accuracy solve that is itself checked
to satisfy the inclusion, and must not be vacuous.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import opsplit as ops
from opsplit.diagnostics import (
    fb_error_factor,
    margin,
    opnorm,
    rachford_error_factor,
)
from opsplit.nn.mondense import MonDense
from opsplit.operators.conv import Conv2dFFT
from opsplit.prox.functions import L1, Box, NonNegative, Zero

# The bound is within this factor of the true error on every problem below
# (measured: worst 43, median 2.0 over the 600 samples; see test_bound_not_vacuous).
NOT_VACUOUS = 100.0

_PROXES = [Zero(), NonNegative(), L1(0.3), Box(-0.5, 0.5)]


def _dense_problem(rng, n=6):
    m = rng.uniform(0.05, 1.0)
    G = rng.standard_normal((n, n)) * rng.uniform(0.1, 1.0) / math.sqrt(n)
    S = rng.standard_normal((n, n)) * rng.uniform(0.0, 2.0) / math.sqrt(n)
    M = m * np.eye(n) + G.T @ G + (S - S.T)
    op = ops.Dense(M)
    return op, (n,)


def _conv_problem(rng, c=2, hw=(4, 4)):
    m = rng.uniform(0.05, 1.0)
    K = rng.standard_normal((c, c, 3, 3)) * rng.uniform(0.1, 0.6)
    S = rng.standard_normal((c, c, 3, 3)) * rng.uniform(0.0, 0.6)
    A, B = Conv2dFFT(K, hw), Conv2dFFT(S, hw)
    eye = np.eye(c)
    a, b = A.symbol, B.symbol
    ah = np.conj(np.swapaxes(a, -1, -2))
    bh = np.conj(np.swapaxes(b, -1, -2))
    op = Conv2dFFT.from_symbol(m * eye + ah @ a + b - bh, hw)
    return op, (c, *hw)


def _mondeq_problem(rng, width=8):
    layer = MonDense(in_features=5, width=width, m=float(rng.uniform(0.05, 1.0)))
    params = layer.init_params(seed=int(rng.integers(1 << 30)), scale=float(rng.uniform(0.3, 1.5)))
    op = ops.Dense(layer.monotone_matrix(params))
    x = rng.standard_normal((3, 5))
    return op, (width,), layer.injection(params, x)


def _problem(kind, rng):
    """(F, G, core shape, offset batch) with F's constants computed exactly."""
    if kind == "mondeq":
        op, core, inj = _mondeq_problem(rng)
        offset, prox = -inj, NonNegative()
    else:
        op, core = _dense_problem(rng) if kind == "dense" else _conv_problem(rng)
        offset = rng.standard_normal((3, *core))
        prox = _PROXES[int(rng.integers(len(_PROXES)))]
    m, L = float(margin(op)), float(opnorm(op))
    F = ops.LinearMonotone(op, lipschitz=L, strong_monotonicity=m)
    return F, ops.Subdifferential(prox), offset, m, L


def _inclusion(F, G, offset):
    A = ops.LinearMonotone(
        F.op, offset, lipschitz=F.lipschitz, strong_monotonicity=F.strong_monotonicity
    )
    return ops.Inclusion(A, G)


def _pieces(prox, w, step):
    """For a piecewise-linear prox at ``w``: (free mask, shift s, fixed values), with
    prox(w) = w - s on the free entries and the fixed value elsewhere."""
    zero = np.zeros_like(w)
    if isinstance(prox, Zero):
        return np.ones(w.shape, bool), zero, zero
    if isinstance(prox, NonNegative):
        return w > 0, zero, zero
    if isinstance(prox, Box):
        return (w > prox.low) & (w < prox.high), zero, np.clip(w, prox.low, prox.high)
    t = prox.lam * step  # L1
    return np.abs(w) > t, t * np.sign(w), zero


def _polish(M, c, prox, step, x):
    """Exact zero of ``0 ∈ Mx + c + ∂f(x)`` by active-set refinement of ``x``."""
    for _ in range(20):
        w = x - step * (x @ M.T + c)
        free, shift, fixed = _pieces(prox, w, step)
        new = np.where(free, 0.0, fixed)
        for i in np.ndindex(x.shape[:-1]):
            F = free[i]
            rhs = -shift[i][F] / step - c[i][F] - M[np.ix_(F, ~F)] @ new[i][~F]
            new[i][F] = np.linalg.solve(M[np.ix_(F, F)], rhs)
        if np.array_equal(new, x):
            break
        x = new
    return x


def _reference(problem, x0, step):
    """The zero to near machine precision, checked to satisfy the inclusion:
    Peaceman–Rachford to identify the active pieces, then an exact solve on them."""
    res = ops.solve(problem, ops.PeacemanRachford(step=step), x0, tol=1e-8, maxiter=4000)
    core = problem.A.op.in_shape
    M = problem.A.op.to_dense()
    flat = (-1, math.prod(core))
    prox = problem.B.function
    x = np.reshape(res.x, flat)
    c = np.reshape(np.broadcast_to(problem.A.offset, x0.shape), flat)
    x = np.reshape(_polish(M, c, prox, step, x), x0.shape)
    # Natural residual of the inclusion: x = J_{αB}(x - αA(x)).
    nat = problem.B.resolvent(step)(x - step * problem.A.evaluate(x)) - x
    assert np.max(np.abs(nat)) < 1e-12, "reference solve did not reach the zero"
    return x


def _errors(x, xstar, core_ndim):
    axes = tuple(range(x.ndim - core_ndim, x.ndim))
    return np.sqrt(np.sum((x - xstar) ** 2, axis=axes))


def _run_all():
    rng = np.random.default_rng(20240601)
    kinds = ["dense"] * 80 + ["conv"] * 60 + ["mondeq"] * 60
    records = []
    for i, kind in enumerate(kinds):
        F, G, offset, m, L = _problem(kind, rng)
        prob = _inclusion(F, G, offset)
        core_ndim = len(F.op.in_shape)
        x0 = np.zeros(offset.shape)
        xstar = _reference(prob, x0, 1.0 / L)
        family = ("FB", "PR", "DR")[i % 3]
        if family == "FB":
            method = ops.ForwardBackward(step=float(rng.uniform(0.2, 1.0) * 2 * m / L**2))
        elif family == "PR":
            method = ops.PeacemanRachford(step=float(np.exp(rng.uniform(-2, 1)) / L))
        else:
            method = ops.DouglasRachford(step=float(np.exp(rng.uniform(-2, 1)) / L),
                                         relaxation=float(rng.uniform(0.5, 2.0)))
        tol = float(10.0 ** rng.uniform(-7, -2))
        maxiter = int(rng.integers(5, 400))
        res = ops.solve(prob, method, x0, tol=tol, maxiter=maxiter)
        err = _errors(res.x, xstar, core_ndim)
        records.append((kind, family, res, err, method, F))
    return records


@pytest.fixture(scope="module")
def records():
    return _run_all()


def test_bound_holds_on_200_random_problems(records):
    assert len(records) == 200
    for kind, family, res, err, method, F in records:
        assert res.unique is True and "unique zero" in res.uniqueness
        assert res.error_bound is not None, (kind, family)
        assert res.error_bound.shape == err.shape == (3,)
        assert np.all(err <= res.error_bound * (1 + 1e-8) + 1e-12), (kind, family, err,
                                                                      res.error_bound)
        # The factor bound alone (derived with L, no extra evaluations) holds too.
        factor = method.error_factor(F.strong_monotonicity, F.lipschitz,
                                     F.strong_monotonicity)
        delta = _errors(res.state.delta, 0.0, len(F.op.in_shape))
        assert np.all(err <= factor * delta * (1 + 1e-8) + 1e-12), (kind, family)


def test_bound_not_vacuous(records):
    ratios = {}
    for _, family, res, err, _, _ in records:
        ok = err > 1e-10  # above the reference's accuracy
        ratios.setdefault(family, []).extend((res.error_bound[ok] / err[ok]).tolist())
    for family, r in ratios.items():
        r = np.asarray(r)
        assert r.size > 100, family
        assert np.all(r >= 1.0 - 1e-8)
        assert np.max(r) <= NOT_VACUOUS, (family, np.max(r), np.median(r))
        assert np.median(r) <= 5.0, (family, np.median(r))


def test_fb_factor_matches_the_issue_bound_and_improves_it():
    # With m_A = 0 the factor is sqrt(1 + α²L²)/(αm) <= (1/α + L)/m (the issue's form).
    for a, m, L in [(0.1, 0.5, 2.0), (1.0, 1.0, 1.0), (0.01, 0.01, 3.0)]:
        assert fb_error_factor(a, m, L) <= (1 / a + L) / m
        assert fb_error_factor(a, m, L, monotonicity=m) < fb_error_factor(a, m, L)


def test_fb_bound_is_attained():
    # A = L·I (m_A = m = L) on R with B = 0: x⁺ - x* = (1 - αL)(x - x*) and the
    # bound |1 - αL|/(αL)·|x⁺ - x| is an equality.
    L, a, x, xs = 2.0, 0.2, 3.0, 1.0
    xp = xs + (1 - a * L) * (x - xs)
    assert math.isclose(fb_error_factor(a, L, L, L) * abs(xp - x), abs(xp - xs))


def test_rachford_factor_uses_the_smaller_bound():
    a, m, L = 0.5, 1.0, 2.0
    inclusion_only = rachford_error_factor(a, m, L)
    assert math.isclose(inclusion_only, 1 + (1 + a * L) / (2 * a * m))
    with_contraction = rachford_error_factor(a, m, L, monotonicity=m)
    c = math.sqrt(1 - 4 * a * m / (1 + a * L) ** 2)
    assert math.isclose(with_contraction, min(inclusion_only, c / (1 - c)))


@pytest.mark.parametrize(
    "bad", [dict(step=0.0), dict(margin=0.0), dict(lipschitz=-1.0), dict(monotonicity=-1.0)]
)
def test_factor_arguments_validated(bad):
    args = dict(step=0.5, margin=1.0, lipschitz=2.0, monotonicity=0.0) | bad
    with pytest.raises(ValueError, match=next(iter(bad))):
        fb_error_factor(**args)


def test_uniqueness_messages():
    M = np.array([[1.0, 2.0], [-2.0, 1.0]])
    F = ops.LinearMonotone(ops.Dense(M), np.array([1.0, -1.0]), lipschitz=float(np.sqrt(5.0)))
    G = ops.Subdifferential(Zero())
    prob = ops.Inclusion(F, G)
    res = ops.solve(prob, ops.PeacemanRachford(step=0.5), np.zeros(2), tol=1e-10)
    # nothing declared: the margin 1 of the dense matrix is computed, not left unknown
    assert res.unique is True and res.verified and math.isclose(res.margin, 1.0)
    assert "computed exactly" in res.uniqueness
    grad = ops.Gradient(lambda x: x @ M.T + np.array([1.0, -1.0]))
    res = ops.solve(ops.Inclusion(grad, G), ops.ForwardBackward(step=0.1), np.zeros(2),
                    tol=1e-10)
    assert res.unique is None and res.error_bound is None  # nonlinear, nothing declared
    assert "not certified" in res.uniqueness and not res.verified
    res = ops.solve(prob, ops.PeacemanRachford(step=0.5), np.zeros(2), tol=1e-10, margin=1.0)
    assert res.unique and "supplied to solve" in res.uniqueness
    assert "declared, not verified" in res.uniqueness and not res.verified
    assert res.error_bound.shape == ()
    assert np.linalg.norm(res.x - np.linalg.solve(M, [-1.0, 1.0])) <= res.error_bound
    res = ops.solve(prob, ops.ForwardBackward(step=0.1), np.zeros(2), tol=1e-10, margin=0.0)
    assert res.unique is False and res.error_bound is None


def test_wrong_margin_gives_a_wrong_bound_which_the_rate_check_flags():
    # The bound is only as good as the constants: an overstated margin can
    # under-estimate the error; compare_rate exposes the contradiction.
    from opsplit.diagnostics import compare_rate

    M = np.array([[0.05, 1.0], [-1.0, 0.05]])
    L = float(opnorm(ops.Dense(M)))
    F = ops.LinearMonotone(ops.Dense(M), np.array([1.0, 1.0]), lipschitz=L)
    prob = ops.Inclusion(F, ops.Subdifferential(Zero()))
    meth = ops.PeacemanRachford(step=1.0)
    res = ops.solve(prob, meth, np.zeros(2), tol=1e-6, margin=0.05)
    true = np.linalg.norm(res.x - np.linalg.solve(M, [-1.0, -1.0]))
    assert true <= res.error_bound
    assert compare_rate(res, meth, 0.05, F.lipschitz).consistent
    assert not compare_rate(res, meth, 0.9, F.lipschitz).consistent


def test_bound_on_backends(backend, dtype):
    rng = np.random.default_rng(3)
    n = 6
    G = rng.standard_normal((n, n)) / math.sqrt(n)
    S = rng.standard_normal((n, n)) / math.sqrt(n)
    M = 0.3 * np.eye(n) + G.T @ G + (S - S.T)
    c = rng.standard_normal((4, n))
    m = float(np.linalg.eigvalsh((M + M.T) / 2).min())
    L = float(np.linalg.norm(M, 2))
    # Reference in float64 NumPy.
    F64 = ops.LinearMonotone(ops.Dense(M), c, lipschitz=L, strong_monotonicity=m)
    prob64 = ops.Inclusion(F64, ops.Subdifferential(NonNegative()))
    xstar = _reference(prob64, np.zeros((4, n)), 1.0 / L)
    F = ops.LinearMonotone(
        ops.Dense(backend.asarray(M, dtype)), backend.asarray(c, dtype),
        lipschitz=L, strong_monotonicity=m,
    )
    prob = ops.Inclusion(F, ops.Subdifferential(NonNegative()))
    x0 = backend.asarray(np.zeros((4, n)), dtype)
    for method in (ops.ForwardBackward(step=m / L**2), ops.PeacemanRachford(step=1 / L),
                   ops.DouglasRachford(step=1 / L)):
        res = ops.solve(prob, method, x0, tol=1e-3)
        err = np.linalg.norm(backend.to_numpy(res.x) - xstar, axis=-1)
        slack = 1e-5 if dtype == "float32" else 1e-12
        assert res.error_bound.shape == (4,)
        assert np.all(err <= res.error_bound + slack), (method, err, res.error_bound)


def test_dense_matrix_is_independent_of_structure():
    # The constants used above come from structure-aware rules; compare one
    # convolution problem with plain NumPy on its dense matrix.
    op, _ = _conv_problem(np.random.default_rng(0))
    D = op.to_dense()
    assert math.isclose(float(margin(op)), np.linalg.eigvalsh((D + D.T) / 2).min(), rel_tol=1e-9)
    assert math.isclose(float(opnorm(op)), np.linalg.norm(D, 2), rel_tol=1e-9)


def test_computed_margin_and_verify_on_backends(backend):
    """The exact margin, the refutation search and the stop on the solution's own
    residual run on every backend (array_api_strict refuses NumPy-only idioms)."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((10, 20))  # AᵀA singular: margin 0, u need not converge
    AtA = A.T @ A
    F = ops.LinearMonotone(ops.Dense(backend.asarray(AtA)),
                           backend.asarray(-(A.T @ rng.standard_normal(10))))
    prob = ops.Inclusion(F, ops.Subdifferential(ops.prox.L1(1.0)))
    x0 = backend.asarray(np.zeros((3, 20)))
    res = ops.solve(prob, ops.PeacemanRachford(0.05), x0, tol=1e-8, maxiter=5000)
    assert res.success and "own residual" in res.message
    assert res.margin == 0.0 and res.unique is False and res.verified
    smooth = ops.Gradient(lambda x: 2.0 * x, strong_monotonicity=1.0)
    res = ops.solve(ops.Inclusion(smooth, prob.B), ops.ForwardBackward(0.1), x0, tol=1e-8,
                    verify=ops.diagnostics.verify)
    assert res.unique is True and res.verified and "checked by sampling" in res.uniqueness
    overstated = ops.Gradient(lambda x: 2.0 * x, strong_monotonicity=3.0)
    res = ops.solve(ops.Inclusion(overstated, prob.B), ops.ForwardBackward(0.1), x0, tol=1e-8,
                    verify=ops.diagnostics.verify)
    assert res.unique is False and "declared 3-strongly monotone" in res.uniqueness
