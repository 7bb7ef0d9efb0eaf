"""Structured proxes: Logistic, NuclearNorm (and SpectralNormBall), GroupL1,
TotalVariation1D.

For every function: optimality ``(x - p)/γ ∈ ∂f(p)`` checked explicitly (with
an independent subgradient: SciPy's ``expit``, the support-function form of
the nuclear norm, per-group norms in loops, the TV dual certificate), the
Moreau identity against an independently computed prox of the conjugate
(SciPy, NumPy loops, CVXPY), firm nonexpansiveness on random pairs, a slow
reference (``scipy.optimize``, CVXPY) on small cases, backends and dtypes,
and checks shown to fail on broken answers and rejected inputs.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
from array_api_compat import device
from conftest import make_backend, to_numpy
from scipy.optimize import lsq_linear, minimize_scalar
from scipy.special import expit, xlogy

import opsplit as ops
from opsplit.prox import (
    L2,
    GroupL1,
    Logistic,
    NuclearNorm,
    SpectralNormBall,
    TotalVariation1D,
    closed_form_conjugate,
)
from opsplit.prox.tv import _condat, _dynamic_program, tv1d_denoise

RNG = np.random.default_rng
#: CLARABEL to near machine precision (its defaults stop near 1e-8 in the gap,
#: which leaves solutions off by 1e-5 around near-ties)
TIGHT = {
    "solver": cp.CLARABEL,
    "tol_gap_abs": 1e-12,
    "tol_gap_rel": 1e-12,
    "tol_feas": 1e-12,
    "tol_ktratio": 1e-10,
}


def firmly_nonexpansive(prox, x1, x2, tol=1e-12):
    """``‖p₁ - p₂‖² ≤ ⟨p₁ - p₂, x₁ - x₂⟩`` (up to rounding)."""
    d = prox(x1) - prox(x2)
    slack = tol * float(np.sum((x1 - x2) ** 2))
    return float(np.sum(d * d)) <= float(np.sum(d * (x1 - x2))) + slack


def assert_firmly_nonexpansive(prox, shape, seed=0, pairs=20, scale=3.0):
    rng = RNG(seed)
    for _ in range(pairs):
        x1, x2 = scale * rng.standard_normal(shape), scale * rng.standard_normal(shape)
        assert firmly_nonexpansive(prox, x1, x2)
        # close pairs probe the local behaviour
        assert firmly_nonexpansive(prox, x1, x1 + 1e-3 * rng.standard_normal(shape))


def test_firm_nonexpansiveness_check_fails_on_an_expansive_map():
    assert not firmly_nonexpansive(lambda x: 1.5 * x, np.ones(3), np.zeros(3))
    assert not firmly_nonexpansive(lambda x: -x, np.ones(3), np.zeros(3))


# =====================================================================================
# Logistic
# =====================================================================================
def logistic_gradient(x, labels=None):
    """``∇f`` from SciPy's ``expit`` (independent of opsplit)."""
    if labels is None:
        return expit(x)
    return -labels * expit(-labels * x)


def logistic_value(x, labels=None):
    z = x if labels is None else -labels * x
    return float(np.sum(np.logaddexp(0.0, z)))


def entropy(q):
    """The negative binary entropy, the softplus's conjugate, ``+inf`` off ``[0, 1]``."""
    q = np.asarray(q, dtype=float)
    inside = (q >= 0) & (q <= 1)
    qc = np.clip(q, 0, 1)
    return np.where(inside, xlogy(qc, qc) + xlogy(1 - qc, 1 - qc), np.inf)


def logistic_residual(x, p, step, labels=None):
    """Largest relative ``|(x - p) - γ∇f(p)|`` (scaled by ``|x| + γ + 1``)."""
    r = (x - p) - step * logistic_gradient(p, labels)
    return float(np.max(np.abs(r) / (np.abs(x) + step + 1.0)))


STEPS = [1e-6, 1e-3, 0.1, 1.0, 4.0, 10.0, 1e3, 1e6]


def _logistic_data(seed=0, n=400):
    rng = RNG(seed)
    x = np.concatenate([10 * rng.standard_normal(n), [1e3, -1e3, 1e6, -1e6, 0.0, 1e-300]])
    labels = np.where(rng.random(x.size) < 0.5, -1.0, 1.0)
    return x, labels


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("labelled", [False, True])
def test_logistic_prox_optimality_to_rounding(step, labelled):
    x, labels = _logistic_data()
    labels = labels if labelled else None
    f = Logistic(labels)
    p = f.prox(x, step)
    assert p.dtype == np.float64 and np.all(np.isfinite(p))
    assert logistic_residual(x, p, step, labels) < 1e-12
    # a perturbation of one ulp-scale or more is seen by the same check
    assert logistic_residual(x, p + 1e-9 * (1 + np.abs(p)), step, labels) > 1e-12


def test_logistic_optimality_check_fails_on_broken_answers():
    x, labels = _logistic_data(1)
    f = Logistic(labels)
    assert logistic_residual(x, Logistic(-labels).prox(x, 1.0), 1.0, labels) > 1e-3
    assert logistic_residual(x, f.prox(x, 2.0), 1.0, labels) > 1e-3
    assert logistic_residual(x, Logistic().prox(x, 1.0), 1.0, labels) > 1e-3


@pytest.mark.parametrize("step", [1e-2, 0.5, 1.0, 3.0, 50.0])
def test_logistic_prox_agrees_with_minimize_scalar(step):
    rng = RNG(2)
    x = 5 * rng.standard_normal(30)
    labels = np.where(rng.random(30) < 0.5, -1.0, 1.0)
    p = Logistic(labels).prox(x, step)
    for xi, yi, pi in zip(x, labels, p):

        def objective(q, xi=xi, yi=yi):
            return np.logaddexp(0.0, -yi * q) + (q - xi) ** 2 / (2 * step)

        ref = minimize_scalar(
            objective,
            bracket=(xi - step - 1, xi + step + 1),
            method="brent",
            options={"xtol": 1e-12},
        ).x
        assert abs(pi - ref) <= 1e-6 * (1 + abs(ref))
        assert objective(pi) <= objective(ref) + 1e-13 * (1 + abs(objective(ref)))


@pytest.mark.parametrize("step", [0.1, 1.0, 7.0])
@pytest.mark.parametrize("labelled", [False, True])
def test_logistic_moreau_identity(step, labelled):
    """``x = prox_{γf}(x) + γ prox_{f*/γ}(x/γ)``, with ``f*(g) = h(c·g)``
    (``h`` the negative binary entropy, ``c = -y``) minimized by SciPy on
    ``[0, 1]``; and the Fenchel–Young equality ``f(p) + f*(g) = ⟨p, g⟩``."""
    rng = RNG(3)
    x = 4 * rng.standard_normal(25)
    labels = np.where(rng.random(25) < 0.5, -1.0, 1.0) if labelled else None
    c = np.ones(25) if labels is None else -labels
    p = Logistic(labels).prox(x, step)
    g = (x - p) / step
    for xi, ci, gi in zip(x, c, g):
        # prox_{f*/γ}(x/γ) = argmin_g h(c g)/γ + ½(g - x/γ)², with q = c·g in [0, 1]
        ref = minimize_scalar(
            lambda q, xi=xi, ci=ci: entropy(q) / step + 0.5 * (ci * q - xi / step) ** 2,
            bounds=(0.0, 1.0),
            method="bounded",
            options={"xatol": 1e-13},
        ).x
        assert abs(gi - ci * ref) < 1e-7
    fenchel_young = logistic_value(p, labels) + float(np.sum(entropy(c * g))) - float(p @ g)
    assert abs(fenchel_young) < 1e-10 * (1 + np.sum(np.abs(p * g)))


def test_logistic_value_and_gradient():
    x, labels = _logistic_data(4)
    f = Logistic(labels)
    assert float(f.value(x)) == pytest.approx(logistic_value(x, labels), rel=1e-14)
    np.testing.assert_allclose(f.gradient(x), logistic_gradient(x, labels), rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(Logistic().gradient(x), expit(x), rtol=1e-14)
    # extreme inputs: exact asymptotes, no overflow
    big = np.array([1e3, -1e3])
    assert float(Logistic().value(big)) == 1e3
    assert float(Logistic(np.array([1.0, -1.0])).value(big)) == 0.0
    np.testing.assert_array_equal(Logistic().gradient(big), [1.0, 0.0])
    # central differences in float64
    rng = RNG(5)
    x0, v = rng.standard_normal(10), rng.standard_normal(10)
    h = 1e-6
    small = Logistic(labels[:10])
    fd = (small.value(x0 + h * v) - small.value(x0 - h * v)) / (2 * h)
    assert float(fd) == pytest.approx(float(small.gradient(x0) @ v), rel=1e-8)


def test_logistic_traits_and_lipschitz_constant():
    f = Logistic()
    assert f.smooth and f.separable and f.convex and not f.indicator
    assert f.lipschitz == 0.25
    rng = RNG(6)
    for _ in range(50):
        a, b = rng.standard_normal(8) * 3, rng.standard_normal(8) * 3
        lhs = np.linalg.norm(f.gradient(a) - f.gradient(b))
        assert lhs <= 0.25 * np.linalg.norm(a - b) * (1 + 1e-12)
    h = 1e-6  # the bound is attained at 0: σ'(0) = 1/4
    assert (f.gradient(np.array([h])) - f.gradient(np.array([-h])))[0] / (2 * h) == pytest.approx(
        0.25, rel=1e-9
    )


@pytest.mark.parametrize("labelled", [False, True])
def test_logistic_firmly_nonexpansive(labelled):
    labels = np.where(RNG(7).random(12) < 0.5, -1.0, 1.0) if labelled else None
    f = Logistic(labels)
    for step in (0.2, 1.0, 20.0):
        assert_firmly_nonexpansive(lambda x, s=step: f.prox(x, s), (12,), scale=5.0)


def test_logistic_float32_and_extreme_inputs():
    x64, labels64 = _logistic_data(8, n=100)
    x64 = x64[np.abs(x64) <= 1e3]  # float32 range for the test data
    labels64 = labels64[: x64.size]
    x32, labels32 = x64.astype(np.float32), labels64.astype(np.float32)
    for step in (1e-3, 1.0, 1e3):
        p32 = Logistic(labels32).prox(x32, step)
        assert p32.dtype == np.float32 and np.all(np.isfinite(p32))
        p64 = Logistic(labels64).prox(x64, step)
        np.testing.assert_allclose(p32, p64, rtol=1e-5, atol=1e-5 * (1 + step))
        assert Logistic(labels32).gradient(x32).dtype == np.float32
        assert Logistic(labels32).value(x32).dtype == np.float32
        assert np.isfinite(Logistic(labels32).value(x32))
    # integer labels are used in x's dtype
    p = Logistic(labels64.astype(np.int64)).prox(x32, 1.0)
    assert p.dtype == np.float32


def test_logistic_backends(backend, dtype):
    rng = RNG(9)
    x = rng.standard_normal((3, 6)) * 4
    labels = np.where(rng.random(6) < 0.5, -1.0, 1.0)
    f = Logistic(backend.asarray(labels, dtype))
    xb = backend.asarray(x, dtype)
    expected = Logistic(labels).prox(x, 0.7)
    for out, ref in ((f.prox(xb, 0.7), expected), (f.gradient(xb), logistic_gradient(x, labels))):
        assert out.dtype == backend.dtype(dtype) and device(out) == device(xb)
        np.testing.assert_allclose(
            to_numpy(out),
            ref,
            rtol=1e-5 if dtype == "float32" else 1e-13,
            atol=1e-6 if dtype == "float32" else 1e-14,
        )


def test_logistic_in_splitting_methods():
    """``0 ∈ ∇f(x) + λ∂‖x‖₁`` for ``f = Logistic(y)`` has the closed-form solution
    ``x = y·log((1 - λ)/λ)`` (``σ(-|x|) = λ``): forward–backward uses the gradient
    and ``lipschitz``, Douglas–Rachford the Newton prox as a resolvent."""
    rng = RNG(22)
    labels = np.where(rng.random(20) < 0.5, -1.0, 1.0)
    lam = 0.3
    f = Logistic(labels)
    G = ops.Subdifferential(f)
    assert isinstance(G, ops.ForwardOperator) and G.lipschitz == 0.25
    problem = ops.Inclusion(G, ops.Subdifferential(ops.prox.L1(lam)))
    expected = labels * np.log((1 - lam) / lam)
    for method in (ops.ForwardBackward(step=4.0), ops.DouglasRachford(step=1.0)):
        result = ops.solve(problem, method, np.zeros(20), tol=1e-12, maxiter=10_000)
        assert result.success
        np.testing.assert_allclose(result.x, expected, atol=1e-9)


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: Logistic(np.array([1.0, 0.0])), ValueError, "labels must all be"),
        (lambda: Logistic(np.array([1.0, np.nan])), ValueError, "labels"),
        (lambda: Logistic([1.0, -1.0]), TypeError, "labels"),
        (lambda: Logistic(np.array([True, False])), TypeError, "labels"),
        (lambda: Logistic(np.ones(3)).prox(np.ones(4)), ValueError, "labels"),
        (lambda: Logistic().prox(np.ones(3), 0.0), ValueError, "step"),
        (lambda: Logistic().prox(np.ones(3, dtype=int)), TypeError, r"\bx\b"),
        (lambda: Logistic().gradient(np.ones(3, dtype=int)), TypeError, r"\bx\b"),
    ],
)
def test_logistic_bad_input(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_logistic_labels_must_share_the_library_of_x():
    strict = make_backend("strict0")
    f = Logistic(strict.asarray(np.array([1.0, -1.0])))
    with pytest.raises(TypeError, match="labels"):
        f.prox(np.ones(2))


# =====================================================================================
# Nuclear norm and spectral-norm ball
# =====================================================================================
def nuclear_subgradient_holds(X, P, lam, step, tol=1e-10):
    """``G = (X - P)/γ ∈ ∂(λ‖·‖_*)(P)`` for every matrix: the nuclear norm is the
    support function of the spectral ball of radius λ, so this holds iff
    ``‖G‖₂ ≤ λ`` and ``⟨G, P⟩ = λ‖P‖_*``."""
    G = (X - P) / step
    scale = 1.0 + np.abs(X).max()
    for g, p in zip(G.reshape(-1, *G.shape[-2:]), P.reshape(-1, *P.shape[-2:])):
        if np.linalg.norm(g, 2) > lam * (1 + tol) + tol:
            return False
        if abs(np.sum(g * p) - lam * np.linalg.norm(p, "nuc")) > tol * scale * scale:
            return False
    return True


@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (4, 4), (2, 3, 4, 6)])
@pytest.mark.parametrize("step", [0.3, 1.0, 2.5])
def test_nuclear_norm_prox_optimality(shape, step):
    rng = RNG(10)
    X = rng.standard_normal(shape) * 2
    lam = 0.8
    P = NuclearNorm(lam).prox(X, step)
    assert P.shape == X.shape
    assert nuclear_subgradient_holds(X, P, lam, step)
    # the check sees a wrong threshold and a wrong step
    assert not nuclear_subgradient_holds(X, NuclearNorm(1.1 * lam).prox(X, step), lam, step)
    assert not nuclear_subgradient_holds(X, NuclearNorm(lam).prox(X, 0.5 * step), lam, step)


def test_nuclear_norm_batched_is_matrix_by_matrix():
    X = RNG(11).standard_normal((2, 3, 4, 5))
    f = NuclearNorm(0.5)
    P = f.prox(X, 1.5)
    for idx in np.ndindex(2, 3):
        np.testing.assert_allclose(P[idx], f.prox(X[idx], 1.5), atol=1e-13)
    assert float(f.value(X)) == pytest.approx(
        0.5 * sum(np.linalg.norm(X[idx], "nuc") for idx in np.ndindex(2, 3)), rel=1e-13
    )


def test_nuclear_norm_matches_cvxpy():
    rng = RNG(12)
    X = rng.standard_normal((5, 4)) * 2
    lam, step = 0.9, 1.3
    P = cp.Variable(X.shape)
    cp.Problem(cp.Minimize(lam * cp.normNuc(P) + cp.sum_squares(P - X) / (2 * step))).solve(**TIGHT)
    np.testing.assert_allclose(NuclearNorm(lam).prox(X, step), P.value, atol=1e-9)
    assert np.linalg.matrix_rank(NuclearNorm(lam).prox(X, step), tol=1e-9) < 4  # it does shrink


def test_nuclear_norm_moreau_identity_and_conjugate():
    """``X = prox_{γf}(X) + γ prox_{f*/γ}(X/γ)`` with ``f*`` the spectral ball,
    whose projection is checked against CVXPY."""
    rng = RNG(13)
    X = rng.standard_normal((4, 6)) * 2
    lam, step = 0.7, 1.8
    f = NuclearNorm(lam)
    conj = closed_form_conjugate(f)
    assert isinstance(conj, SpectralNormBall) and conj.radius == lam
    assert isinstance(closed_form_conjugate(conj), NuclearNorm)
    Y = cp.Variable(X.shape)  # projection of X/γ onto {‖Y‖₂ ≤ λ}
    cp.Problem(cp.Minimize(cp.sum_squares(Y - X / step)), [cp.sigma_max(Y) <= lam]).solve(
        solver=cp.CLARABEL, tol_gap_abs=1e-11, tol_gap_rel=1e-11, tol_feas=1e-11
    )  # the interior-point SDP solve is accurate to about 1e-7 here
    np.testing.assert_allclose(conj.prox(X / step), Y.value, atol=2e-6)
    np.testing.assert_allclose(f.prox(X, step) + step * Y.value, X, atol=4e-6)
    np.testing.assert_allclose(
        f.prox(X, step) + step * f.conjugate().prox(X / step, 1.0 / step), X, atol=1e-12
    )


def test_spectral_norm_ball_value():
    ball = SpectralNormBall(2.0)
    inside = np.diag([2.0, 1.0])
    assert float(ball.value(inside)) == 0.0
    assert float(ball.value(np.diag([2.1, 0.0]))) == np.inf
    projected = ball.prox(RNG(14).standard_normal((3, 5, 5)) * 10)
    assert float(ball.value(projected)) == 0.0
    assert np.linalg.norm(projected, 2, axis=(-2, -1)).max() == pytest.approx(2.0, rel=1e-12)


def test_nuclear_norm_firmly_nonexpansive():
    f = NuclearNorm(0.6)
    assert_firmly_nonexpansive(lambda X: f.prox(X, 1.2), (2, 4, 3))
    assert_firmly_nonexpansive(lambda X: SpectralNormBall(1.0).prox(X), (4, 3))


def test_nuclear_norm_backends(backend, dtype):
    X = RNG(15).standard_normal((2, 4, 3))
    Xb = backend.asarray(X, dtype)
    tol = 1e-5 if dtype == "float32" else 1e-12
    for f in (NuclearNorm(0.5), SpectralNormBall(1.0)):
        out = f.prox(Xb, 0.8)
        assert out.dtype == backend.dtype(dtype) and device(out) == device(Xb)
        np.testing.assert_allclose(to_numpy(out), f.prox(X, 0.8), atol=tol)
    assert float(to_numpy(NuclearNorm(0.5).value(Xb))) == pytest.approx(
        float(NuclearNorm(0.5).value(X)), rel=tol
    )


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: NuclearNorm(-1.0), ValueError, "lam"),
        (lambda: NuclearNorm(1.0).prox(np.ones(3)), ValueError, r"\bx\b"),
        (lambda: NuclearNorm(1.0).value(np.ones(3)), ValueError, r"\bx\b"),
        (lambda: NuclearNorm(1.0).prox(np.ones((2, 2)), -1.0), ValueError, "step"),
        (lambda: SpectralNormBall(-1.0), ValueError, "radius"),
        (lambda: SpectralNormBall(1.0).prox(np.ones((2, 2), dtype=int)), TypeError, r"\bx\b"),
    ],
)
def test_nuclear_norm_bad_input(build, error, match):
    with pytest.raises(error, match=match):
        build()


# =====================================================================================
# Group lasso
# =====================================================================================
GROUPS = [[4, 0], [2], [5, 7, 1]]  # entries 3 and 6 are in no group
WEIGHTS = [1.0, 0.5, 2.0]


def group_prox_reference(x, groups, lam, weights, step):
    """Block soft thresholding, one group and one row at a time."""
    p = np.array(x, dtype=float, copy=True)
    for row in p.reshape(-1, p.shape[-1]):
        for g, w in zip(groups, weights):
            norm = np.linalg.norm(row[g])
            row[g] = row[g] * max(0.0, 1 - step * lam * w / norm) if norm > 0 else 0.0
    return p


def group_optimality_holds(x, p, groups, lam, weights, step, tol=1e-10):
    """``(x - p)/γ ∈ ∂f(p)``: ``λw_g p_g/‖p_g‖`` where ``p_g ≠ 0``, a vector of
    norm at most ``λw_g`` where ``p_g = 0``, and zero outside every group."""
    G = (x - p) / step
    free = np.setdiff1d(np.arange(x.shape[-1]), np.concatenate(groups))
    for g_row, p_row in zip(G.reshape(-1, x.shape[-1]), p.reshape(-1, x.shape[-1])):
        if np.abs(g_row[free]).max(initial=0.0) > tol:
            return False
        for g, w in zip(groups, weights):
            norm = np.linalg.norm(p_row[g])
            if norm > 0:
                if np.abs(g_row[g] - lam * w * p_row[g] / norm).max() > tol * (1 + lam * w):
                    return False
            elif np.linalg.norm(g_row[g]) > lam * w * (1 + tol):
                return False
    return True


@pytest.mark.parametrize("step", [0.2, 1.0, 3.0])
def test_group_l1_prox_optimality_and_reference(step):
    rng = RNG(16)
    x = rng.standard_normal((3, 4, 8)) * 2
    lam = 0.9
    f = GroupL1(GROUPS, lam, WEIGHTS)
    p = f.prox(x, step)
    assert group_optimality_holds(x, p, GROUPS, lam, WEIGHTS, step)
    np.testing.assert_allclose(p, group_prox_reference(x, GROUPS, lam, WEIGHTS, step), atol=1e-14)
    some_zero = [np.linalg.norm(p[..., g], axis=-1) == 0 for g in GROUPS]
    assert not all(z.all() for z in some_zero)
    assert step < 1 or any(z.any() for z in some_zero)  # both cases of ∂‖·‖ are exercised
    norms = [np.linalg.norm(x[..., g], axis=-1).sum() for g in GROUPS]
    expected = lam * sum(w * n for w, n in zip(WEIGHTS, norms))
    assert float(f.value(x)) == pytest.approx(expected, rel=1e-14)


def test_group_optimality_check_fails_on_broken_answers():
    x = RNG(17).standard_normal((5, 8)) * 2
    lam, step = 0.9, 1.0
    good = GroupL1(GROUPS, lam, WEIGHTS).prox(x, step)
    assert group_optimality_holds(x, good, GROUPS, lam, WEIGHTS, step)
    for wrong in (
        GroupL1(GROUPS, lam).prox(x, step),  # weights ignored
        GroupL1(GROUPS[:2], lam, WEIGHTS[:2], size=8).prox(x, step),  # a group forgotten
        L2(lam).prox(x, step),  # one group for everything
        GroupL1([[4, 0, 2], [5, 7, 1]], lam, [1.0, 2.0]).prox(x, step),  # groups merged
    ):
        assert not group_optimality_holds(x, wrong, GROUPS, lam, WEIGHTS, step)


def test_group_l1_matches_cvxpy():
    rng = RNG(18)
    x = rng.standard_normal(8) * 1.5
    lam, step = 0.7, 1.4
    p = cp.Variable(8)
    penalty = sum(w * cp.norm(p[g], 2) for g, w in zip(GROUPS, WEIGHTS))
    cp.Problem(cp.Minimize(lam * penalty + cp.sum_squares(p - x) / (2 * step))).solve(**TIGHT)
    np.testing.assert_allclose(GroupL1(GROUPS, lam, WEIGHTS).prox(x, step), p.value, atol=1e-7)


def test_group_l1_moreau_identity():
    """``x - prox_{γf}(x)`` is the projection of ``x`` onto the product of the
    balls ``‖y_g‖ ≤ γλw_g`` (zero outside the groups): ``γ prox_{f*/γ}(x/γ)``
    with ``f*`` the indicator of the dual-norm ball."""
    x = RNG(19).standard_normal((4, 8)) * 2
    lam, step = 0.8, 1.5
    projection = np.zeros_like(x)
    for g, w in zip(GROUPS, WEIGHTS):
        norms = np.linalg.norm(x[..., g], axis=-1, keepdims=True)
        projection[..., g] = x[..., g] * np.minimum(1.0, step * lam * w / norms)
    p = GroupL1(GROUPS, lam, WEIGHTS).prox(x, step)
    np.testing.assert_allclose(p + projection, x, atol=1e-14)


def test_group_l1_ways_of_giving_groups_agree():
    x = RNG(20).standard_normal((2, 8)) * 2
    labels = np.full(8, -1)
    for i, g in enumerate(GROUPS):
        labels[g] = i
    expected = GroupL1(GROUPS, 0.9, WEIGHTS).prox(x, 1.0)
    for groups in (labels, [np.array(g) for g in GROUPS], tuple(tuple(g) for g in GROUPS)):
        np.testing.assert_array_equal(GroupL1(groups, 0.9, WEIGHTS).prox(x, 1.0), expected)
    # equal contiguous groups (reshape, no gather) and a 2-D index array
    contiguous = GroupL1(np.arange(8).reshape(4, 2), 0.5)
    shuffled = GroupL1([[6, 7], [2, 3], [0, 1], [4, 5]], 0.5)
    assert contiguous._contiguous and not shuffled._contiguous
    np.testing.assert_array_equal(contiguous.prox(x, 1.0), shuffled.prox(x, 1.0))
    np.testing.assert_allclose(
        contiguous.prox(x, 1.0),
        group_prox_reference(x, [[0, 1], [2, 3], [4, 5], [6, 7]], 0.5, [1.0] * 4, 1.0),
        atol=1e-15,
    )
    # trailing entries in no group need `size`
    f = GroupL1([[0, 1]], 1.0, size=4)
    np.testing.assert_allclose(
        f.prox(np.array([3.0, 4.0, 7.0, -7.0])), [2.4, 3.2, 7.0, -7.0], rtol=1e-15
    )


def test_group_l1_precision_of_small_groups_next_to_large_ones():
    """Group norms are exact row norms: a tiny group after a huge one keeps its
    digits (cumulative sums of squares would round it away)."""
    x = np.array([1e8, 1e8, 3e-4, 4e-4])
    p = GroupL1([[0, 1], [2, 3]], 1e-4).prox(x)
    np.testing.assert_allclose(p[2:], [3e-4 * 0.8, 4e-4 * 0.8], rtol=1e-14)


def test_group_l1_firmly_nonexpansive():
    f = GroupL1(GROUPS, 0.9, WEIGHTS)
    assert_firmly_nonexpansive(lambda x: f.prox(x, 1.3), (3, 8))


def test_group_l1_backends(backend, dtype):
    x = RNG(21).standard_normal((2, 3, 8)) * 2
    labels = np.full(8, -1)
    for i, g in enumerate(GROUPS):
        labels[g] = i
    f = GroupL1(backend.asarray(labels, "int64"), 0.9, WEIGHTS)
    xb = backend.asarray(x, dtype)
    out = f.prox(xb, 1.2)
    assert out.dtype == backend.dtype(dtype) and device(out) == device(xb)
    tol = 1e-5 if dtype == "float32" else 1e-14
    np.testing.assert_allclose(to_numpy(out), GroupL1(GROUPS, 0.9, WEIGHTS).prox(x, 1.2), atol=tol)
    value = to_numpy(f.value(xb))
    assert value.dtype == np.dtype(dtype)
    assert float(value) == pytest.approx(float(GroupL1(GROUPS, 0.9, WEIGHTS).value(x)), rel=tol)


def test_group_l1_indices_must_live_with_x():
    strict = make_backend("strict1")
    f = GroupL1(GROUPS, 1.0)  # NumPy indices
    with pytest.raises((TypeError, ValueError), match="groups"):
        f.prox(strict.asarray(np.ones(8)))
    g = GroupL1(strict.asarray(np.array([0, 0, 1, 1]), "int64"))
    with pytest.raises((TypeError, ValueError), match="groups"):
        g.prox(make_backend("strict0").asarray(np.ones(4)))


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: GroupL1([[0, 1], [1, 2]]), ValueError, r"overlap: index 1 is in groups\[0\]"),
        (lambda: GroupL1([[0, 1], [2, 2]]), ValueError, r"groups\[1\] repeats"),
        (lambda: GroupL1([[0, 1], [-1]]), ValueError, r"groups\[1\] has an index out of range"),
        (lambda: GroupL1([[0, 1], [5]], size=4), ValueError, r"groups\[1\].*out of range"),
        (lambda: GroupL1([[0, 1], []]), ValueError, r"groups\[1\] is empty"),
        (lambda: GroupL1([[0, 1], np.array([], dtype=int)]), ValueError, r"groups\[1\] is empty"),
        (lambda: GroupL1([]), ValueError, "groups must contain"),
        (lambda: GroupL1([[0.5, 1.0]]), TypeError, r"groups\[0\] must hold integers"),
        (lambda: GroupL1(3), TypeError, "groups"),
        (lambda: GroupL1(np.array([-1, -1])), ValueError, "groups has no nonnegative label"),
        (lambda: GroupL1(np.array([0, 1]), size=3), ValueError, "size"),
        (lambda: GroupL1(np.zeros((2, 2, 2), dtype=int)), ValueError, "groups"),
        (lambda: GroupL1([[0], [1]], weights=[1.0]), ValueError, "weights"),
        (lambda: GroupL1([[0], [1]], weights=[1.0, -1.0]), ValueError, "weights"),
        (lambda: GroupL1([[0], [1]], weights=[1.0, np.inf]), ValueError, "weights"),
        (lambda: GroupL1([[0], [1]], lam=-1.0), ValueError, "lam"),
        (lambda: GroupL1([[0], [1]], size=0), ValueError, "size"),
        (lambda: GroupL1([[0], [1]]).prox(np.ones(3)), ValueError, r"\bx\b"),
        (lambda: GroupL1([[0], [1]]).value(np.ones((2, 1))), ValueError, r"\bx\b"),
        (lambda: GroupL1([[0], [1]]).prox(np.ones(2), 0.0), ValueError, "step"),
        (lambda: GroupL1([[0], [1]]).prox(np.ones(2, dtype=int)), TypeError, r"\bx\b"),
    ],
)
def test_group_l1_bad_input(build, error, match):
    with pytest.raises(error, match=match):
        build()


# =====================================================================================
# 1-D total variation
# =====================================================================================
def tv_certificate_holds(y, x, t, tol=1e-9):
    """The dual certificate of ``x = prox_{t TV}(y)`` for every row: the running
    residuals ``r = cumsum(y - x)`` (``r = -u`` for the dual ``u``, ``y - x = Dᵀu``)
    satisfy ``|r_k| ≤ t``, ``r_{n-1} = 0``, and ``r_k = ∓t`` where ``x`` jumps
    up/down; i.e. ``(y - x)/γ ∈ ∂f(x)``."""
    scale = tol * (1.0 + np.abs(y).max()) * y.shape[-1]
    for y_row, x_row in zip(y.reshape(-1, y.shape[-1]), x.reshape(-1, y.shape[-1])):
        r = np.cumsum(y_row - x_row)
        if abs(r[-1]) > scale or np.abs(r[:-1]).max(initial=0) > t + scale:
            return False
        jump = np.diff(x_row)
        up, down = jump > scale, jump < -scale
        if np.abs(r[:-1][up] + t).max(initial=0) > scale:
            return False
        if np.abs(r[:-1][down] - t).max(initial=0) > scale:
            return False
    return True


def tv_dual_reference(y, t):
    """A slow generic reference: the dual box-constrained least squares
    ``min ½‖Dᵀu - y‖²``, ``|u| ≤ t`` by SciPy's BVLS; ``x = y - Dᵀu``."""
    n = y.size
    DT = np.zeros((n, n - 1))
    DT[np.arange(n - 1), np.arange(n - 1)] = -1.0
    DT[np.arange(1, n), np.arange(n - 1)] = 1.0
    u = lsq_linear(DT, y, bounds=(-t, t), method="bvls", tol=1e-15).x
    return y - DT @ u


def tv_signals(seed, n):
    rng = RNG(seed)
    steps = np.repeat(rng.standard_normal(max(n // 8, 1)) * 3, 8)[:n]
    steps = np.pad(steps, (0, n - steps.size))
    return [
        steps + 0.3 * rng.standard_normal(n),  # piecewise constant plus noise
        rng.standard_normal(n),  # pure noise
        np.cumsum(rng.standard_normal(n)),  # random walk: long pieces
        np.where(np.arange(n) % 2 == 0, 1.0, -1.0) * np.arange(n),  # growing alternation
        1e8 + rng.standard_normal(n),  # large offset
    ]


def condat_unbounded(y, t):
    """Condat's algorithm alone (no budget, no fallback)."""
    values, lengths = _condat(list(y), t, budget=10 * y.size**2 + 10)
    return np.repeat(values, lengths)


ALGORITHMS = {
    "prox": lambda y, t: TotalVariation1D(1.0).prox(y, t),
    "condat": condat_unbounded,
    "dynamic_program": lambda y, t: np.array(_dynamic_program(list(y), t)),
}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("t", [0.05, 0.5, 2.0, 50.0])
def test_tv_certificate_and_slow_reference(algorithm, t):
    """Each algorithm alone (Condat's, the dynamic program) and the prox that
    combines them satisfy the dual certificate and agree with SciPy's BVLS."""
    solve = ALGORITHMS[algorithm]
    for seed, n in ((0, 2), (1, 3), (2, 7), (3, 40)):
        for y in tv_signals(seed, n):
            x = solve(y, t)
            assert tv_certificate_holds(y, x, t)
            tol = 1e-8 * (1 + np.abs(y).max())
            np.testing.assert_allclose(x, tv_dual_reference(y, t), atol=tol)


def test_tv_falls_back_to_the_dynamic_program_on_smooth_signals():
    """On a smooth monotone signal Condat's rescans exceed the budget (they
    grow quadratically); the prox then uses the dynamic program, and is right."""
    n = 2000
    y = np.sqrt(np.arange(n, dtype=float))
    assert _condat(list(y - y.mean()), 10.0, budget=5 * n // 2) is None
    x = TotalVariation1D(10.0).prox(y)
    assert tv_certificate_holds(y, x, 10.0)
    np.testing.assert_allclose(x, condat_unbounded(y, 10.0), atol=1e-9)
    noisy = tv_signals(11, n)[0]  # a noisy signal stays within the budget
    assert _condat(list(noisy - noisy.mean()), 1.0, budget=5 * n // 2) is not None


def test_tv_certificate_fails_on_broken_answers():
    y = tv_signals(4, 60)[0]
    good = TotalVariation1D(1.0).prox(y)
    assert tv_certificate_holds(y, good, 1.0)
    assert not tv_certificate_holds(y, TotalVariation1D(0.8).prox(y), 1.0)
    assert not tv_certificate_holds(y, TotalVariation1D(1.25).prox(y), 1.0)
    wrong = good.copy()
    wrong[10] += 1e-4
    assert not tv_certificate_holds(y, wrong, 1.0)
    assert not tv_certificate_holds(y, np.full_like(y, y.mean()), 1.0)


@pytest.mark.parametrize("lam", [0.1, 1.0, 5.0])
def test_tv_matches_cvxpy(lam):
    y = tv_signals(5, 80)[0]
    x = cp.Variable(y.size)
    cp.Problem(cp.Minimize(0.5 * cp.sum_squares(x - y) + lam * cp.norm1(cp.diff(x)))).solve(**TIGHT)
    np.testing.assert_allclose(TotalVariation1D(lam).prox(y), x.value, atol=1e-8)


def test_tv_moreau_identity():
    """``x - prox_{γf}(x)`` is the projection onto ``γC``, ``C = {Dᵀz : |z| ≤ λ}
    = {g : Σg = 0, |cumsum g| ≤ λ}``, the domain of ``f*``; projection by CVXPY."""
    y = tv_signals(6, 50)[2]
    lam, step = 0.7, 1.6
    g = cp.Variable(y.size)
    cs = cp.cumsum(g)
    cp.Problem(
        cp.Minimize(cp.sum_squares(g - y / step)), [cp.sum(g) == 0, cs <= lam, cs >= -lam]
    ).solve(**TIGHT)
    np.testing.assert_allclose(TotalVariation1D(lam).prox(y, step) + step * g.value, y, atol=1e-7)


def test_tv_closed_forms_and_edge_cases():
    f = TotalVariation1D(1.0)
    # n = 2: the two values move towards each other by t, or meet at the mean
    np.testing.assert_allclose(f.prox(np.array([0.0, 5.0])), [1.0, 4.0], atol=1e-15)
    np.testing.assert_allclose(f.prox(np.array([0.0, 1.5])), [0.75, 0.75], atol=1e-15)
    np.testing.assert_array_equal(f.prox(np.array([3.0])), [3.0])  # n = 1: identity
    y = tv_signals(7, 30)[1]
    np.testing.assert_array_equal(TotalVariation1D(0.0).prox(y), y)  # λ = 0: identity
    np.testing.assert_allclose(TotalVariation1D(1e6).prox(y), np.full(30, y.mean()), atol=1e-12)
    np.testing.assert_allclose(f.prox(np.full(9, 2.5)), np.full(9, 2.5), atol=0)
    assert float(f.value(np.array([0.0, 4.0, 4.0, 0.5]))) == 7.5


def test_tv_batched_rows_are_independent():
    rows = np.stack([s for s in tv_signals(8, 25)[:4]]).reshape(2, 2, 25)
    f = TotalVariation1D(0.9)
    p = f.prox(rows, 1.1)
    for idx in np.ndindex(2, 2):
        np.testing.assert_array_equal(p[idx], f.prox(rows[idx], 1.1))
    expected = 0.9 * np.abs(np.diff(rows, axis=-1)).sum()
    assert float(f.value(rows)) == pytest.approx(expected, rel=1e-14)


def test_tv_firmly_nonexpansive():
    f = TotalVariation1D(0.8)
    assert_firmly_nonexpansive(lambda x: f.prox(x, 1.2), (2, 30))


def test_tv_long_signal():
    """``n = 10⁴`` (the benchmark size), noisy and smooth rows: certificate, and
    the two algorithms agree."""
    rng = RNG(9)
    n = 10_000
    y = np.stack(
        [
            np.repeat(rng.standard_normal(100), 100) + 0.5 * rng.standard_normal(n),
            np.cumsum(rng.standard_normal(n)),
            np.exp(-np.arange(n) / 1000.0) * 1e3,
        ]
    )
    x = TotalVariation1D(2.0).prox(y)
    assert tv_certificate_holds(y, x, 2.0)
    assert len(np.unique(x[0])) < n // 10  # it denoises
    np.testing.assert_array_equal(tv1d_denoise(y, 2.0), x)  # the host routine itself
    for row, expected in zip(y, x):
        np.testing.assert_allclose(_dynamic_program(list(row), 2.0), expected, atol=1e-9)


def test_tv_backends(backend, dtype):
    y = np.stack(tv_signals(10, 20)[:3])
    yb = backend.asarray(y, dtype)
    out = TotalVariation1D(0.6).prox(yb, 1.5)
    assert out.dtype == backend.dtype(dtype) and device(out) == device(yb)
    expected = TotalVariation1D(0.6).prox(y.astype(dtype).astype(np.float64), 1.5)
    np.testing.assert_allclose(to_numpy(out), expected.astype(dtype), rtol=1e-6, atol=1e-6)
    value = to_numpy(TotalVariation1D(0.6).value(yb))
    assert float(value) == pytest.approx(0.6 * np.abs(np.diff(y, axis=-1)).sum(), rel=1e-5)


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: TotalVariation1D(-1.0), ValueError, "lam"),
        (lambda: TotalVariation1D(np.nan), ValueError, "lam"),
        (lambda: TotalVariation1D(1.0).prox(np.float64(3.0)), (TypeError, ValueError), r"\bx\b"),
        (lambda: TotalVariation1D(1.0).prox(np.ones(3), 0.0), ValueError, "step"),
        (lambda: TotalVariation1D(1.0).prox(np.ones(3, dtype=int)), TypeError, r"\bx\b"),
        (lambda: TotalVariation1D(1.0).prox([1.0, 2.0]), TypeError, r"\bx\b"),
        (lambda: tv1d_denoise(np.ones(3), -1.0), ValueError, "threshold"),
        (lambda: tv1d_denoise(np.float64(1.0), 1.0), ValueError, r"\by\b"),
    ],
)
def test_tv_bad_input(build, error, match):
    with pytest.raises(error, match=match):
        build()


@pytest.mark.parametrize(
    "f",
    [
        Logistic(np.array([1.0, -1.0, 1.0, 1.0])),
        NuclearNorm(0.5),
        SpectralNormBall(0.5),
        GroupL1([[0, 3], [2]], 0.5),
        TotalVariation1D(0.5),
    ],
    ids=lambda f: type(f).__name__,
)
def test_inputs_are_not_mutated(f):
    x = RNG(23).standard_normal((3, 4)) * 3
    before = x.copy()
    p = f.prox(x, 0.7)
    f.value(x)
    np.testing.assert_array_equal(x, before)
    assert not np.shares_memory(p, x)


def test_public_names():
    for name in ("Logistic", "NuclearNorm", "SpectralNormBall", "GroupL1", "TotalVariation1D"):
        assert getattr(ops.prox, name).__name__ == name
