"""LeastSquares (½‖Ax − b‖²): value, gradient, Lipschitz constant, the prox by one
factorization per step, the smooth subdifferential (forward and backward), and the
LASSO against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from conftest import to_numpy

import opsplit as ops
from opsplit.prox import smooth

SHAPES = {"tall": (30, 12), "wide": (12, 30), "square": (15, 15)}


def problem(kind, dtype="float64", seed=0, batch=()):
    rng = np.random.default_rng(seed)
    m, n = SHAPES[kind]
    A = rng.standard_normal((m, n)).astype(dtype)
    b = rng.standard_normal((*batch, m)).astype(dtype)
    x = rng.standard_normal((*batch, n)).astype(dtype)
    return A, b, x


def prox_reference(A, b, x, step):
    """argmin_p ½‖Ap − b‖² + ‖p − x‖²/(2·step) as the least-squares problem
    [A; I/√step] p ≈ [b; x/√step] (numpy.linalg.lstsq, float64), row by row."""
    A = np.asarray(A, dtype=np.float64)
    n = A.shape[1]
    stacked = np.vstack([A, np.eye(n) / np.sqrt(step)])
    b2, x2 = np.broadcast_arrays(np.atleast_2d(b), np.atleast_2d(x)[..., :1])[0], np.atleast_2d(x)
    rows = [np.linalg.lstsq(stacked, np.concatenate([bb, xx / np.sqrt(step)]), rcond=None)[0]
            for bb, xx in zip(np.broadcast_to(b2, (x2.shape[0], A.shape[0])), x2)]
    return np.reshape(np.array(rows), np.shape(x))


FORMS = {
    "array": lambda A: A,
    "Dense": lambda A: ops.Dense(A),
    "scipy sparse": lambda A: sp.csr_matrix(A),
    "Sparse": lambda A: ops.operators.Sparse(sp.csc_matrix(A)),
    "LinearOperator": lambda A: ops.Dense(A) @ ops.Identity(A.shape[1]),  # no stored matrix
}


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("kind", sorted(SHAPES))
def test_prox_matches_lstsq_and_optimality(kind, form):
    A, b, x = problem(kind, batch=(3,))
    step = 0.7
    f = ops.prox.LeastSquares(FORMS[form](A), b)
    p = f.prox_map(step)(x)
    np.testing.assert_allclose(p, prox_reference(A, b, x, step), atol=1e-10)
    # optimality: Aᵀ(Ap − b) + (p − x)/α = 0 on every row
    residual = (p @ A.T - b) @ A + (p - x) / step
    assert np.abs(residual).max() < 1e-10
    np.testing.assert_allclose(f.prox(x, step), p, atol=1e-12)  # prox factorizes itself
    np.testing.assert_allclose(f.reflect_map(step)(x), 2 * p - x, atol=1e-12)


def test_prox_reference_detects_a_wrong_prox():
    """The checks above fail for a prox with a wrong step."""
    A, b, x = problem("wide")
    p = ops.prox.LeastSquares(A, b).prox(x, 0.5)
    assert np.abs(p - prox_reference(A, b, x, 0.7)).max() > 1e-3


@pytest.mark.parametrize("kind", sorted(SHAPES))
def test_value_gradient_lipschitz_against_references(kind):
    A, b, x = problem(kind)
    f = ops.prox.LeastSquares(A, b)
    assert float(f.value(x)) == pytest.approx(0.5 * np.sum((A @ x - b) ** 2), rel=1e-12)
    grad = scipy.optimize.approx_fprime(x, lambda v: 0.5 * np.sum((A @ v - b) ** 2), 1e-7)
    np.testing.assert_allclose(f.gradient(x), grad, atol=1e-4)
    sigma = np.linalg.svd(A, compute_uv=False)
    assert f.lipschitz == pytest.approx(sigma[0] ** 2, rel=1e-12)
    if kind == "wide":
        assert f.strong_convexity == 0.0
    else:
        assert f.strong_convexity == pytest.approx(sigma[-1] ** 2, rel=1e-8)


def test_rank_deficient_tall_matrix_is_not_strongly_convex():
    A, b, _ = problem("tall")
    A[:, 1] = A[:, 0]
    assert ops.prox.LeastSquares(A, b).strong_convexity == 0.0


def test_float32_stays_float32():
    for kind in ("tall", "wide"):
        A, b, x = problem(kind, "float32", batch=(2,))
        f = ops.prox.LeastSquares(A, b)
        for out in (f.prox_map(0.5)(x), f.gradient(x), f.value(x)):
            assert out.dtype == np.float32
        np.testing.assert_allclose(f.prox(x, 0.5), prox_reference(A, b, x, 0.5), atol=1e-4)


def test_batched_right_hand_sides():
    """One b per sample: each row of the batch is its own prox."""
    A, b, x = problem("wide", batch=(4,))
    f = ops.prox.LeastSquares(A, b)
    p = f.prox(x, 1.3)
    for i in range(4):
        row = ops.prox.LeastSquares(A, b[i]).prox(x[i], 1.3)
        np.testing.assert_allclose(p[i], row, atol=1e-12)


@pytest.mark.parametrize("kind", ["tall", "wide"])
def test_backends(backend, kind):
    """array_api_strict (no triangular solve: the explicit inverse of the small
    matrix) and the second device agree with the NumPy reference."""
    A, b, x = problem(kind, batch=(2,))
    f = ops.prox.LeastSquares(backend.asarray(A), backend.asarray(b))
    p = f.prox_map(0.9)(backend.asarray(x))
    np.testing.assert_allclose(to_numpy(p), prox_reference(A, b, x, 0.9), atol=1e-10)
    np.testing.assert_allclose(to_numpy(f.gradient(backend.asarray(x))),
                               (x @ A.T - b) @ A, atol=1e-10)


@pytest.mark.parametrize(
    ("make", "error", "name"),
    [
        (lambda A, b: ops.prox.LeastSquares(A, b[:-1]), ValueError, "b"),
        (lambda A, b: ops.prox.LeastSquares(A[0], b), ValueError, "A"),
        (lambda A, b: ops.prox.LeastSquares(np.where(A > 1, np.nan, A), b), ValueError, "A"),
        (lambda A, b: ops.prox.LeastSquares(np.where(A > 1, np.inf, A), b), ValueError, "A"),
        (lambda A, b: ops.prox.LeastSquares(sp.csr_matrix(np.where(A > 1, np.inf, A)), b),
         ValueError, "A"),
        (lambda A, b: ops.prox.LeastSquares(A, np.where(b > 0, np.inf, b)), ValueError, "b"),
        (lambda A, b: ops.prox.LeastSquares(A, b.astype(np.float32)), TypeError, "b"),
        (lambda A, b: ops.prox.LeastSquares(A.astype(int), b), TypeError, "A"),
        (lambda A, b: ops.prox.LeastSquares([[1.0]], b), TypeError, "A"),
        (lambda A, b: ops.prox.LeastSquares(A, b).prox(np.zeros(3), 1.0), ValueError, "x"),
        (lambda A, b: ops.prox.LeastSquares(A, b).prox_map(1.0)(np.zeros(A.shape[1] + 1)),
         ValueError, "x"),
        (lambda A, b: ops.prox.LeastSquares(A, b).gradient(np.zeros(2)), ValueError, "x"),
        (lambda A, b: ops.prox.LeastSquares(A, b).prox_map(-1.0), ValueError, "step"),
    ],
)
def test_bad_input_names_the_argument(make, error, name):
    A, b, _ = problem("tall")
    with pytest.raises(error, match=rf"\b{name}\b"):
        make(A, b)


def test_reflect_map_refuses_a_foreign_prox_map():
    A, b, _ = problem("tall")
    f = ops.prox.LeastSquares(A, b)
    with pytest.raises(ValueError, match="prox_map"):
        f.reflect_map(1.0, f.prox_map(2.0))


# -- the smooth subdifferential -------------------------------------------------------


def test_subdifferential_of_a_smooth_function_is_forward_and_backward():
    A, b, x = problem("tall")
    G = ops.Subdifferential(ops.prox.LeastSquares(A, b))
    assert isinstance(G, ops.ForwardOperator) and isinstance(G, ops.ResolventOperator)
    np.testing.assert_allclose(G(x), A.T @ (A @ x - b), atol=1e-12)
    L = np.linalg.norm(A, 2) ** 2
    assert G.lipschitz == pytest.approx(L) and G.cocoercivity == pytest.approx(1 / L)
    assert not isinstance(ops.Subdifferential(ops.prox.L1(1.0)), ops.ForwardOperator)


def test_gradient_of_a_nonsmooth_function_is_a_type_error():
    with pytest.raises(TypeError, match="L1 is not smooth"):
        ops.prox.L1(1.0).gradient(np.ones(2))


SMOOTH = {
    "Zero": (ops.prox.Zero(), 0.0),
    "SquaredL2": (ops.prox.SquaredL2(2.5), 2.5),
    "Huber": (ops.prox.Huber(0.7), 1.0),
    "LeakyReLU": (ops.prox.LeakyReLU(0.25), 3.0),
    "Scaled": (ops.prox.Scaled(ops.prox.Huber(0.5), 3.0), 3.0),
    "Translated": (ops.prox.Translated(ops.prox.SquaredL2(2.0), 0.3), 2.0),
    "Conjugate": (ops.prox.Conjugate(ops.prox.SquaredL2(4.0)), 0.25),
}


@pytest.mark.parametrize("name", sorted(SMOOTH))
def test_smooth_functions_have_their_gradient(name):
    """Every function that claims ``smooth`` has a gradient (central differences of
    its value) with the stated Lipschitz constant, so its Subdifferential evaluates."""
    f, lipschitz = SMOOTH[name]
    assert f.smooth and f.lipschitz == pytest.approx(lipschitz)
    x = np.random.default_rng(3).standard_normal(7) * 2
    grad = scipy.optimize.approx_fprime(x, lambda v: float(f.value(v)), 1e-7)
    np.testing.assert_allclose(f.gradient(x), grad, atol=1e-5)
    np.testing.assert_allclose(ops.Subdifferential(f)(x), grad, atol=1e-5)
    # Lipschitz: no pair of points exceeds it
    rng = np.random.default_rng(4)
    for _ in range(50):
        u, v = rng.standard_normal((2, 7)) * 3
        gap = np.linalg.norm(f.gradient(u) - f.gradient(v))
        assert gap <= lipschitz * np.linalg.norm(u - v) * (1 + 1e-12) + 1e-15


def test_separable_sum_gradient_is_blockwise():
    f = ops.prox.SeparableSum([ops.prox.SquaredL2(2.0), ops.prox.Huber(1.0)])
    x = (np.array([1.0, -2.0]), np.array([0.5, 3.0]))
    g = f.gradient(x)
    np.testing.assert_allclose(g[0], [2.0, -4.0])
    np.testing.assert_allclose(g[1], [0.5, 1.0])
    assert f.lipschitz == 2.0


def test_forward_backward_on_least_squares_matches_lstsq():
    """FB evaluates the subdifferential (forward) and converges to the unconstrained
    least-squares solution with B = ∂0."""
    A, b, _ = problem("tall")
    f = ops.prox.LeastSquares(A, b)
    prob = ops.Inclusion(ops.Subdifferential(f), ops.Subdifferential(ops.prox.Zero()))
    res = ops.solve(prob, ops.ForwardBackward(step=1.0 / f.lipschitz), np.zeros(12),
                    tol=1e-12, maxiter=20000)
    assert res.success
    np.testing.assert_allclose(res.x, np.linalg.lstsq(A, b, rcond=None)[0], atol=1e-9)


# -- LASSO: DR with the factorized resolvent against scikit-learn ----------------------


def lasso(m=40, n=100, seed=5):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, n))
    A /= np.linalg.norm(A, axis=0)
    b = rng.standard_normal(m)
    lam = 0.1 * np.abs(A.T @ b).max()
    return A, b, lam


@pytest.mark.parametrize("method", [ops.DouglasRachford(step=1.0), ops.PeacemanRachford(step=1.0),
                                    ops.DouglasRachford(step=0.3, relaxation=1.5)])
def test_lasso_matches_scikit_learn(method):
    sklearn = pytest.importorskip("sklearn.linear_model")
    A, b, lam = lasso()
    f = ops.prox.LeastSquares(A, b)
    prob = ops.Inclusion(ops.Subdifferential(f), ops.Subdifferential(ops.prox.L1(lam)))
    res = ops.solve(prob, method, np.zeros(A.shape[1]), tol=1e-10)
    assert res.success
    # scikit-learn minimizes ‖y − Xw‖²/(2·n_samples) + α‖w‖₁: α = λ/m
    reference = sklearn.Lasso(alpha=lam / A.shape[0], fit_intercept=False, tol=1e-14,
                              max_iter=100000).fit(A, b).coef_
    np.testing.assert_allclose(res.x, reference, atol=1e-6)
    assert np.count_nonzero(reference) < A.shape[1]  # the l1 term is active


@pytest.mark.parametrize(("method", "expected"), [
    (ops.DouglasRachford(step=1.0), 1),
    (ops.PeacemanRachford(step=1.0), 1),
    (ops.ForwardBackward(step=0.1), 0),   # evaluates ∂f only
])
def test_one_factorization_per_solve(monkeypatch, method, expected):
    calls = []
    original = smooth.factorize

    def counting(matrix):
        calls.append(matrix.shape)
        return original(matrix)

    monkeypatch.setattr(smooth, "factorize", counting)
    A, b, lam = lasso()
    f = ops.prox.LeastSquares(A, b)
    prob = ops.Inclusion(ops.Subdifferential(f), ops.Subdifferential(ops.prox.L1(lam)))
    res = ops.solve(prob, method, np.zeros(A.shape[1]), tol=1e-8, maxiter=5000)
    assert res.iterations > 10
    assert len(calls) == expected
    assert all(shape == (A.shape[0], A.shape[0]) for shape in calls)  # wide: I + αAAᵀ
    # the counter sees every factorization: prox alone factorizes per call
    calls.clear()
    for _ in range(3):
        f.prox(np.zeros(A.shape[1]), 1.0)
    assert len(calls) == 3


def test_resolvents_share_one_factorization(monkeypatch):
    calls = []
    original = smooth.factorize
    monkeypatch.setattr(smooth, "factorize", lambda M: calls.append(1) or original(M))
    A, b, x = problem("tall")
    G = ops.Subdifferential(ops.prox.LeastSquares(A, b))
    J, R = G.resolvents(0.5)
    assert len(calls) == 1
    np.testing.assert_allclose(R(x), 2 * J(x) - x, atol=1e-12)
    np.testing.assert_allclose(J(x), prox_reference(A, b, x, 0.5), atol=1e-10)


def test_sparse_float32_and_large_sparse_spectrum():
    """A float32 sparse A keeps float32; a sparse Gram matrix beyond the dense
    limit gets ‖A‖² by Lanczos (checked against ARPACK's svds on A itself)."""
    A, b, x = problem("wide", "float32")
    f = ops.prox.LeastSquares(sp.csr_matrix(A), b)
    p = f.prox(x, 0.5)
    assert p.dtype == np.float32
    np.testing.assert_allclose(p, prox_reference(A, b, x, 0.5), atol=1e-4)
    rng = np.random.default_rng(9)
    big = sp.random(2100, 2200, density=2e-3, random_state=rng, format="csr") + sp.eye(2100, 2200)
    bb = rng.standard_normal(2100)
    f = ops.prox.LeastSquares(big, bb)
    top = spla.svds(big, k=1, return_singular_vectors=False, tol=0)[0]
    assert f.lipschitz == pytest.approx(top**2, rel=1e-10)
    assert f.strong_convexity == 0.0  # wide
    xx = rng.standard_normal(2200)
    p = f.prox(xx, 0.8)
    residual = big.T @ (big @ p - bb) + (p - xx) / 0.8
    assert np.abs(residual).max() < 1e-9
