"""Checks on user operators: each passes on valid input and fails on a
deliberately broken one, on NumPy and array_api_strict (both devices)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import opsplit as ops
from opsplit.diagnostics import (
    CheckFailed,
    Estimate,
    check_adjoint,
    check_averaged,
    check_cocoercive,
    check_firmly_nonexpansive,
    check_lipschitz,
    check_monotone,
    check_moreau,
    check_nonexpansive,
    check_reflected,
    lanczos,
    margin,
    opnorm,
    pr_contraction,
    symmetric_range,
)
from opsplit.operators.block import BlockDiagonal, BlockLowerTriangular
from opsplit.operators.conv import Conv2dFFT
from opsplit.prox.functions import L1, L2, Box, L2Ball, LInfBall, NonNegative


class WrongAdjoint(ops.Dense):
    """A dense operator whose adjoint forgets the transpose."""

    def rmatvec(self, y):
        return y @ self._matrix_t


def _rand(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _skew_plus(n, diag, seed=0, skew=3.0):
    S = _rand((n, n), seed)
    return np.diag(diag) + skew * (S - S.T) / math.sqrt(n)


# -- adjoint test ---------------------------------------------------------------------


def test_adjoint_passes_on_structured_operators(backend, dtype):
    M = backend.asarray(_rand((5, 7)), dtype)
    K = backend.asarray(_rand((2, 3, 3, 3), 1), dtype)
    block = BlockLowerTriangular([
        [ops.Dense(backend.asarray(_rand((3, 3), 2), dtype))],
        [ops.Dense(backend.asarray(_rand((4, 3), 3), dtype)),
         ops.Diagonal(backend.asarray(_rand((4,), 4), dtype))],
    ])
    for op in (ops.Dense(M), Conv2dFFT(K, (4, 5)), block, 2.0 * ops.Dense(M).H):
        rep = check_adjoint(op)
        assert rep.passed, rep
        assert rep.worst < rep.tolerance


def test_adjoint_fails_on_wrong_adjoint(backend, dtype):
    op = WrongAdjoint(backend.asarray(_rand((4, 4)), dtype))
    rep = check_adjoint(op)
    assert not rep.passed and rep.worst > 0.01
    with pytest.raises(CheckFailed, match="adjoint: FAILED"):
        check_adjoint(op, raise_on_fail=True)


def test_adjoint_identity_needs_like(backend):
    with pytest.raises(ValueError, match="like"):
        check_adjoint(ops.Identity(3))
    assert check_adjoint(ops.Identity(3), backend.asarray(np.zeros(3))).passed


# -- exact margins and norms ----------------------------------------------------------


def test_margin_and_norm_dense_against_numpy(backend, dtype):
    A = _skew_plus(6, np.linspace(-0.5, 2.0, 6))
    op = ops.Dense(backend.asarray(A, dtype))
    m, nrm = margin(op), opnorm(op)
    tol = 1e-5 if dtype == "float32" else 1e-12
    assert isinstance(m, Estimate) and m.exact
    # Reference from the float32-rounded matrix, in float64 NumPy.
    A32 = backend.to_numpy(op.matrix).astype(np.float64)
    assert math.isclose(m, np.linalg.eigvalsh((A32 + A32.T) / 2).min(), abs_tol=tol)
    assert math.isclose(nrm, np.linalg.norm(A32, 2), rel_tol=tol)


def test_margin_of_convolutions_is_exact_per_frequency(backend):
    K = backend.asarray(_rand((3, 3, 3, 3)) * 0.3)
    conv = Conv2dFFT(K, (5, 6))
    D = backend.to_numpy(conv.to_dense())  # applies the operator to every basis vector
    ev = np.linalg.eigvalsh((D + D.T) / 2)
    m = margin(conv)
    assert "FFT symbol" in m.method and m.exact
    assert math.isclose(m, ev.min(), abs_tol=1e-12)
    # I - W: the margin of a sum with the identity is still exact per frequency.
    imw = ops.Identity((3, 5, 6)) - conv
    assert "FFT symbol" in margin(imw).method
    assert math.isclose(margin(imw), 1.0 - ev.max(), abs_tol=1e-12)
    lo, hi = symmetric_range(0.5 * conv.H)
    assert math.isclose(lo, 0.5 * ev.min(), abs_tol=1e-12)
    assert math.isclose(hi, 0.5 * ev.max(), abs_tol=1e-12)
    assert math.isclose(opnorm(imw), np.linalg.norm(np.eye(90) - D, 2), rel_tol=1e-12)
    assert math.isclose(opnorm(conv @ conv.H), np.linalg.norm(D @ D.T, 2), rel_tol=1e-12)


def test_margin_of_block_operators_by_lanczos(backend):
    rows = [[ops.Dense(backend.asarray(_skew_plus(5, np.full(5, 0.2), 1)))],
            [ops.Dense(backend.asarray(_rand((4, 5), 2))),
             ops.Dense(backend.asarray(_skew_plus(4, np.full(4, 0.1), 3)))]]
    L = BlockLowerTriangular(rows)
    D = backend.to_numpy(L.to_dense())
    ref = np.linalg.eigvalsh((D + D.T) / 2).min()
    m = margin(L, method="lanczos")
    assert not m.exact and "Lanczos" in m.method
    assert m >= ref - 1e-10  # a Ritz value never undershoots λ_min
    assert abs(m - ref) <= max(m.error, 1e-9)
    assert math.isclose(margin(L), ref, abs_tol=1e-12)  # small: dense fallback
    nrm = opnorm(L, method="lanczos")
    assert abs(nrm - np.linalg.norm(D, 2)) <= max(nrm.error, 1e-9)
    with pytest.raises(ValueError, match="no exact rule"):
        margin(L, method="exact")
    # Block-diagonal operators are exact block by block.
    bd = BlockDiagonal([ops.Diagonal(backend.asarray(np.array([3.0, -1.0]))), ops.Identity(2)])
    assert margin(bd, method="exact") == -1.0 and opnorm(bd, method="exact") == 3.0


def test_lanczos_accuracy_is_stated():
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.standard_normal((200, 200)))
    ev = np.concatenate([[-1.0], np.linspace(0.0, 10.0, 199)])
    S = (Q * ev) @ Q.T
    r = lanczos(lambda v: S @ v, (200,), S, maxiter=8, tol=1e-14)
    assert r.iterations == 8
    assert r.smallest >= -1.0 - 1e-12  # never below λ_min
    # Each Ritz value has an eigenvalue within its residual.
    assert np.min(np.abs(ev - r.smallest)) <= r.smallest_error + 1e-12
    r = lanczos(lambda v: S @ v, (200,), S, maxiter=200, tol=1e-12)
    assert abs(r.smallest + 1.0) < 1e-9 and abs(r.largest - 10.0) < 1e-9


# -- monotonicity ---------------------------------------------------------------------


def test_linear_margin_catches_one_small_negative_direction(backend):
    # One eigen-direction of the symmetric part at -0.01 among 60 at ~1:
    # random pairs almost never see it; the exact margin does.
    n = 60
    Q, _ = np.linalg.qr(_rand((n, n), 5))
    sym = (Q * np.concatenate([[-0.01], np.ones(n - 1)])) @ Q.T
    bad = ops.Dense(backend.asarray(sym + _skew_plus(n, np.zeros(n), 6)))
    rep = check_monotone(bad)
    assert not rep.passed and math.isclose(rep.worst, -0.01, abs_tol=1e-10)
    assert "exact margin" in rep.method
    good = ops.Dense(backend.asarray(sym + 0.02 * np.eye(n) + _skew_plus(n, np.zeros(n), 6)))
    assert check_monotone(good).passed
    assert not check_monotone(good, strong=0.02).passed  # margin is 0.01
    affine = ops.LinearMonotone(bad, backend.asarray(_rand((n,))))
    assert not check_monotone(affine).passed


def _hidden_violation(xp, n):
    """Monotone except along one coordinate direction near the origin of that
    coordinate: the Jacobian's symmetric part has eigenvalue 1 - 2 sech²(2 s)."""

    def F(x):
        s = x[..., 3:4]
        bump = xp.tanh(2.0 * s)
        return xp.concat([x[..., :3], s - bump, x[..., 4:]], axis=-1)

    return ops.Gradient(F, core_shape=(n,))


def test_nonlinear_violation_needs_the_search(backend):
    n = 100
    op = _hidden_violation(backend.xp, n)
    x_like = backend.asarray(np.zeros(n))
    found = check_monotone(op, x_like)
    assert not found.passed and found.worst < -0.9  # the true minimum is -1
    if backend.name == "numpy":
        # The same number of random pairs without the search misses it.
        blind = check_monotone(op, x_like, samples=found.evaluations, search_steps=0)
        assert blind.passed and blind.worst > 0.5


def test_nonlinear_monotone_passes(backend):
    xp = backend.xp
    op = ops.Gradient(lambda x: x + xp.tanh(x), lipschitz=2.0, core_shape=(8,))
    x_like = backend.asarray(np.zeros(8))
    rep = check_monotone(op, x_like, strong=1.0, scale=3.0)
    assert rep.passed and 1.0 <= rep.worst < 1.5
    assert not check_monotone(op, x_like, strong=1.2, scale=3.0).passed
    assert check_lipschitz(op, x_like).passed
    assert not check_lipschitz(op, x_like, lipschitz=1.5).passed


class _ExpansiveResolvent(ops.ResolventOperator):
    """A 'resolvent' that scales by 1.5: it belongs to A = -(1/3)·I, not monotone."""

    def resolvent(self, step):
        return lambda x: 1.5 * x


def test_resolvent_only_operators_checked_on_their_graph(backend):
    x_like = backend.asarray(np.zeros(6))
    assert check_monotone(ops.Subdifferential(L1(0.5)), x_like).passed
    assert check_monotone(ops.NormalCone(L2Ball(1.0)), x_like).passed
    rep = check_monotone(_ExpansiveResolvent(), x_like)
    assert not rep.passed and math.isclose(rep.worst, -1.0 / 3.0, rel_tol=1e-6)


# -- Lipschitz, cocoercivity ----------------------------------------------------------


def test_lipschitz_linear_is_exact(backend):
    A = _rand((4, 4))
    op = ops.LinearMonotone(ops.Dense(backend.asarray(A)))
    L = np.linalg.norm(A, 2)
    assert check_lipschitz(op, lipschitz=L).passed
    rep = check_lipschitz(op, lipschitz=0.99 * L)
    assert not rep.passed and math.isclose(rep.worst, L, rel_tol=1e-12)
    with pytest.raises(ValueError, match="lipschitz is required"):
        check_lipschitz(op)


def test_cocoercive_linear_exact():
    # Symmetric PSD M is 1/λ_max-cocoercive; a rotation is not cocoercive at all.
    M = np.diag([0.5, 1.0, 4.0])
    assert math.isclose(check_cocoercive(ops.Dense(M), beta=0.25).worst, 0.25, rel_tol=1e-9)
    assert not check_cocoercive(ops.Dense(M), beta=0.3).passed
    rot = ops.Dense(np.array([[0.0, 1.0], [-1.0, 0.0]]))
    rep = check_cocoercive(rot, beta=0.01)
    assert not rep.passed and abs(rep.worst) < 1e-9


def test_cocoercive_nonlinear(backend):
    xp = backend.xp
    grad = ops.Gradient(lambda x: 2.0 * xp.tanh(x), lipschitz=2.0, core_shape=(5,))
    x_like = backend.asarray(np.zeros(5))
    assert check_cocoercive(grad, x_like).passed  # Baillon–Haddad: 1/L
    rep = check_cocoercive(grad, x_like, beta=0.6)
    assert not rep.passed and rep.worst < 0.55


# -- resolvents, proxes, averagedness -------------------------------------------------


@pytest.mark.parametrize("f", [L1(0.3), NonNegative(), Box(-0.5, 1.0), L2(0.7), L2Ball(1.0)],
                         ids=repr)
def test_proxes_are_firmly_nonexpansive(backend, dtype, f):
    rep = check_firmly_nonexpansive(f, backend.asarray(np.zeros(6), dtype), step=0.7)
    assert rep.passed, rep


def test_expansive_prox_fails(backend):
    xp = backend.xp
    x_like = backend.asarray(np.zeros(6))

    def bad_prox(x):
        return 1.2 * xp.sign(x) * xp.maximum(xp.abs(x) - 0.3, 0.0)

    rep = check_firmly_nonexpansive(bad_prox, x_like)
    assert not rep.passed and rep.worst < -0.1
    with pytest.raises(CheckFailed):
        check_firmly_nonexpansive(bad_prox, x_like, raise_on_fail=True)
    # Soft thresholding scaled by 0.9 is still firmly nonexpansive.
    assert check_firmly_nonexpansive(lambda x: 0.9 * L1(0.3).prox(x), x_like).passed


def test_resolvent_of_linear_monotone(backend):
    A = ops.LinearMonotone(ops.Dense(backend.asarray(_skew_plus(5, np.full(5, 0.3)))))
    x_like = backend.asarray(np.zeros(5))
    assert check_firmly_nonexpansive(A, x_like, step=0.8).passed
    B = ops.LinearMonotone(ops.Dense(backend.asarray(_skew_plus(5, np.full(5, -0.3)))))
    assert not check_firmly_nonexpansive(B, x_like, step=0.8).passed


def test_reflected_resolvent_contracts_as_the_theory_says(backend):
    M = _skew_plus(5, np.linspace(0.5, 1.5, 5), 2)
    m = np.linalg.eigvalsh((M + M.T) / 2).min()
    L = np.linalg.norm(M, 2)
    A = ops.LinearMonotone(ops.Dense(backend.asarray(M)))
    x_like = backend.asarray(np.zeros(5))
    for step in (0.1, 1.0 / L, 2.0):
        c = pr_contraction(m, L, step)
        assert check_reflected(A, x_like, step=step, factor=c).passed
    # The true factor of this linear map (exact norm) is below the bound;
    # claiming less than the true factor fails.
    R = 2 * np.linalg.inv(np.eye(5) + M) - np.eye(5)
    true = np.linalg.norm(R, 2)
    assert true <= pr_contraction(m, L, 1.0)
    assert not check_reflected(A, x_like, step=1.0, factor=0.95 * true).passed
    nonmono = ops.LinearMonotone(ops.Dense(backend.asarray(_skew_plus(5, np.full(5, -0.2)))))
    assert not check_reflected(nonmono, x_like).passed


def test_peaceman_rachford_map_averagedness(backend):
    # T = R_A R_B is nonexpansive; (I + T)/2 (Douglas–Rachford) is firmly nonexpansive.
    M = _skew_plus(4, np.full(4, 0.0), 4)  # monotone (skew), not strongly
    A = ops.LinearMonotone(ops.Dense(backend.asarray(M))).resolvent(1.0)
    B = ops.Subdifferential(NonNegative()).resolvent(1.0)

    def pr(u):
        w = 2.0 * B(u) - u
        return 2.0 * A(w) - w

    x_like = backend.asarray(np.zeros(4))
    assert check_nonexpansive(pr, x_like).passed
    assert check_averaged(lambda u: 0.5 * (u + pr(u)), x_like, 0.5).passed
    assert not check_averaged(pr, x_like, 0.5).passed  # rotation-like: not firmly


def test_moreau_identity(backend, dtype):
    x_like = backend.asarray(np.zeros(5), dtype)
    for step in (0.5, 2.0):
        assert check_moreau(L1(0.7), x_like, step=step, conjugate=LInfBall(0.7)).passed
        assert check_moreau(L2(0.7), x_like, step=step, conjugate=L2Ball(0.7)).passed
    rep = check_moreau(L1(0.7), x_like, conjugate=LInfBall(0.5))
    assert not rep.passed and rep.worst > 0.01


def test_report_reads_well():
    rep = check_monotone(ops.Dense(np.array([[1.0, 0.0], [0.0, -2.0]])))
    text = str(rep)
    assert "FAILED" in text and "-2" in text and not rep
    assert Estimate(1.5, error=0.1, method="Lanczos").describe() == "1.5 ± 0.1 (Lanczos)"


def test_bad_arguments():
    with pytest.raises(ValueError, match="x_like is required"):
        check_monotone(ops.Gradient(lambda x: x))
    with pytest.raises(TypeError, match="op must be"):
        check_monotone(object(), np.zeros(2))
    with pytest.raises(ValueError, match="theta"):
        check_averaged(lambda x: x, np.zeros(2), 1.5)
    with pytest.raises(ValueError, match="samples"):
        check_monotone(ops.Gradient(lambda x: x), np.zeros(2), samples=0)
    with pytest.raises(TypeError, match="L must be a LinearOperator"):
        margin(np.eye(2))
    with pytest.raises(ValueError, match="square"):
        margin(ops.Dense(np.ones((2, 3))))


def test_unbatched_callables_are_applied_row_by_row():
    def per_sample(x):
        assert x.ndim == 1, "called with a batch"
        return x + np.tanh(x)

    assert check_monotone(per_sample, np.zeros(5), strong=1.0, batched=False).passed
    rep = check_lipschitz(per_sample, np.zeros(5), 1.5, batched=False, search_steps=5)
    assert not rep.passed and 1.5 < rep.worst <= 2.0


def test_search_options_object_and_keywords_are_one_thing():
    from opsplit.diagnostics import SearchOptions

    op = ops.Gradient(lambda x: x - 2.0 * np.sin(x))  # not monotone near 0
    x_like = np.zeros(3)
    quick = SearchOptions(samples=8, search_steps=3, keep=2, seed=4)
    by_object = check_monotone(op, x_like, options=quick)
    by_keywords = check_monotone(op, x_like, samples=8, search_steps=3, keep=2, seed=4)
    assert by_object.worst == by_keywords.worst and not by_object.passed
    assert by_object.evaluations == by_keywords.evaluations
    overridden = check_monotone(op, x_like, options=quick, seed=5)  # keywords win
    assert overridden.worst != by_object.worst
    with pytest.raises(TypeError, match="'sample'"):
        check_monotone(op, x_like, sample=8)
    with pytest.raises(TypeError, match="options"):
        check_monotone(op, x_like, options={"samples": 8})
    for bad in (dict(keep=0), dict(samples=1.5), dict(scale=0.0), dict(search_steps=-1)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            SearchOptions(**bad)
