"""Shifted inverses of sparse matrices (sparse LU) and of operators known only by
their products (Krylov solves to a stated tolerance), and an error bound that stays
honest when the resolvent is inexact."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from conftest import make_backend

import opsplit as ops
from opsplit.operators import KrylovInverse, Sparse, SparseLU, inverse_tolerance, shifted_inverse
from opsplit.operators.scipy_interop import ScipyOperator, from_scipy


def laplacian(n=60, shift=0.2):
    """The 1-D Laplacian plus ``shift·I``: symmetric positive definite, sparse."""
    main = (2.0 + shift) * np.ones(n)
    return sp.diags([-np.ones(n - 1), main, -np.ones(n - 1)], [-1, 0, 1]).tocsr()


def advection(n=60, seed=0):
    """A nonsymmetric monotone sparse matrix: the Laplacian plus a skew part."""
    rng = np.random.default_rng(seed)
    skew = sp.random(n, n, density=0.05, random_state=rng)
    return (laplacian(n) + 3.0 * (skew - skew.T)).tocsr()


def dense_inverse(M, a, b):
    M = M.toarray() if sp.issparse(M) else M
    return np.linalg.inv(a * np.eye(M.shape[0]) + b * M)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("make", [laplacian, advection])
def test_sparse_lu_inverse_matches_dense(make, dtype):
    M = make().astype(dtype)
    op = Sparse(M)
    inv = shifted_inverse(op, 0.5, 1.7)
    assert isinstance(inv, SparseLU) and inv.tolerance == 0.0
    reference = dense_inverse(M.astype(np.float64), 0.5, 1.7)
    y = np.random.default_rng(1).standard_normal((3, M.shape[0])).astype(dtype)
    tol = 1e-4 if dtype == "float32" else 1e-11
    out = inv @ y
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out, y @ reference.T, atol=tol * np.abs(reference).max() * 10)
    np.testing.assert_allclose(inv.H @ y, y @ reference, atol=tol * np.abs(reference).max() * 10)
    # the reference itself tells a wrong shift apart
    assert np.abs(out - y @ dense_inverse(M.astype(np.float64), 0.5, 1.0).T).max() > 1e-2


def test_sparse_operator_matches_its_matrix():
    M = advection()
    op = from_scipy(M)
    assert isinstance(op, Sparse)
    x = np.random.default_rng(2).standard_normal((2, 3, M.shape[1]))
    np.testing.assert_allclose(op @ x, x @ M.toarray().T, atol=1e-12)
    np.testing.assert_allclose(op.H @ x, x @ M.toarray(), atol=1e-12)
    np.testing.assert_array_equal(op.to_dense(), M.toarray())
    shifted = ops.operators.shifted_operator(op, 1.0, -0.5)
    assert isinstance(shifted, Sparse)
    np.testing.assert_allclose(shifted.to_dense(), np.eye(M.shape[0]) - 0.5 * M.toarray())


@pytest.mark.parametrize(
    ("make", "solver"),
    [(laplacian, "cg"), (laplacian, "minres"), (advection, "gmres")],
)
@pytest.mark.parametrize("tol", [1e-4, 1e-10])
def test_krylov_inverse_meets_its_tolerance(make, solver, tol):
    """Each row solves to relative residual tol: the error is at most tol·‖y‖/a."""
    M = make()
    a, b = 1.0, 0.8
    inv = shifted_inverse(Sparse(M, solver=solver, tol=tol), a, b)
    assert isinstance(inv, KrylovInverse) and inv.tolerance == tol
    y = np.random.default_rng(3).standard_normal((2, M.shape[0]))
    x = inv @ y
    shifted = a * np.eye(M.shape[0]) + b * M.toarray()
    residual = np.linalg.norm(y - x @ shifted.T, axis=-1)
    assert np.all(residual <= tol * np.linalg.norm(y, axis=-1) * 1.01)
    error = np.linalg.norm(x - y @ np.linalg.inv(shifted).T, axis=-1)
    assert np.all(error <= tol * np.linalg.norm(y, axis=-1) / a)
    if tol == 1e-10:
        xt = inv.H @ y
        np.testing.assert_allclose(xt, y @ np.linalg.inv(shifted), atol=1e-8)


def test_scipy_linear_operator_gets_a_krylov_inverse():
    M = advection()
    linop = spla.LinearOperator(M.shape, matvec=lambda v: M @ v, rmatvec=lambda v: M.T @ v,
                                matmat=lambda V: M @ V, rmatmat=lambda V: M.T @ V,
                                dtype=np.float64)
    op = from_scipy(linop, tol=1e-12)
    assert isinstance(op, ScipyOperator) and inverse_tolerance(op) == 1e-12
    assert inverse_tolerance(2.0 * op.H) == 1e-12
    assert inverse_tolerance(Sparse(M)) == 0.0 and inverse_tolerance(ops.Dense(np.eye(2))) == 0.0
    y = np.random.default_rng(4).standard_normal((2, M.shape[0]))
    reference = dense_inverse(M, 1.0, 0.5)
    np.testing.assert_allclose(shifted_inverse(op, 1.0, 0.5) @ y, y @ reference.T, atol=1e-9)


def test_unconverged_krylov_solve_raises():
    inv = shifted_inverse(Sparse(advection(), solver="gmres", tol=1e-12, maxiter=1), 1.0, 1.0)
    with pytest.raises(ArithmeticError, match="maxiter=1"):
        inv @ np.ones(60)


@pytest.mark.parametrize(
    ("make", "error", "name"),
    [
        (lambda: Sparse(np.eye(3)), TypeError, "matrix"),
        (lambda: Sparse(sp.eye(3, dtype=int)), TypeError, "matrix"),
        (lambda: Sparse(sp.csr_matrix(np.array([[np.nan, 0.0], [0.0, 1.0]]))), ValueError,
         "matrix"),
        (lambda: Sparse(sp.eye(3), solver="lu"), ValueError, "solver"),
        (lambda: Sparse(sp.eye(3), solver="cg", tol=2.0), ValueError, "tol"),
        (lambda: from_scipy(sp.eye(3), solver="qr"), ValueError, "solver"),
        (lambda: Sparse(sp.eye(3)) @ np.ones(4), ValueError, "x"),
        (lambda: shifted_inverse(Sparse(sp.eye(3)), 1.0, -1.0) @ np.ones(3), ValueError,
         "singular"),
        (lambda: Sparse(sp.eye(3)) @ make_backend("strict0").asarray(np.ones(3)), TypeError,
         "NumPy"),
    ],
)
def test_bad_input(make, error, name):
    with pytest.raises(error, match=name):
        make()


def test_douglas_rachford_with_a_sparse_resolvent_matches_dense():
    M = advection()
    c = np.random.default_rng(5).standard_normal(M.shape[0])
    G = ops.Subdifferential(ops.prox.NonNegative())
    method = ops.DouglasRachford(step=1.0)
    dense = ops.solve(ops.Inclusion(ops.LinearMonotone(ops.Dense(M.toarray()), c), G), method,
                      np.zeros(M.shape[0]), tol=1e-12, maxiter=5000)
    for op in (Sparse(M), Sparse(M, solver="gmres", tol=1e-13)):
        res = ops.solve(ops.Inclusion(ops.LinearMonotone(op, c), G), method,
                        np.zeros(M.shape[0]), tol=1e-12, maxiter=5000)
        assert res.success
        np.testing.assert_allclose(res.x, dense.x, atol=1e-9)
    # the solution satisfies the inclusion: x ≥ 0, Mx + c ≥ 0, complementarity
    x, g = dense.x, M @ dense.x + c
    assert x.min() >= 0 and g.min() > -1e-9 and np.abs(x * g).max() < 1e-9


def test_error_bound_stays_honest_with_a_loose_cg_tolerance():
    """With CG to relative residual 1e-3 Douglas–Rachford settles on the fixed point
    of a perturbed map: its step ‖δ‖ vanishes while x stays ~1e-2 away from x*.  The
    a-priori factor bound (which assumes exact resolvents) would claim ~1e-9; the
    reported bound must hold."""
    M = laplacian(200)
    eigenvalues = np.linalg.eigvalsh(M.toarray())
    m, L = float(eigenvalues.min()), float(eigenvalues.max())
    c = np.random.default_rng(1).standard_normal(200)
    G = ops.Subdifferential(ops.prox.NonNegative())
    method = ops.DouglasRachford(step=1.0)

    def solve(op, tol):
        F = ops.LinearMonotone(op, c, lipschitz=L, strong_monotonicity=m)
        return ops.solve(ops.Inclusion(F, G), method, np.zeros(200), tol=tol, maxiter=400)

    exact = solve(Sparse(M), 1e-13)
    assert exact.success and exact.error_bound is not None
    loose = solve(Sparse(M, solver="cg", tol=1e-3), 1e-12)
    error = np.linalg.norm(loose.x - exact.x)
    assert error > 1e-3                        # the perturbation is real ...
    factor_bound = method.error_factor(m, L, m) * np.linalg.norm(loose.state.delta)
    assert factor_bound < error                # ... and the exact-resolvent bound misses it
    assert loose.error_bound is not None and error <= float(loose.error_bound)
    # with the factorized (exact) resolvent the bound still holds and is tight
    assert np.linalg.norm(exact.x - solve(Sparse(M), 1e-13).x) <= float(exact.error_bound)


def test_inexact_resolvent_of_b_claims_no_bound():
    M = laplacian(50)
    ev = np.linalg.eigvalsh(M.toarray())
    F = ops.LinearMonotone(Sparse(M, solver="cg", tol=1e-6), np.ones(50),
                           lipschitz=float(ev.max()), strong_monotonicity=float(ev.min()))
    prob = ops.Inclusion(ops.Subdifferential(ops.prox.Zero()), F)
    res = ops.solve(prob, ops.DouglasRachford(step=1.0), np.zeros(50), tol=1e-8, maxiter=500)
    assert res.unique and res.error_bound is None


@pytest.mark.gpu
def test_cupy_sparse_inverses():
    cupy = pytest.importorskip("cupy")
    if cupy.cuda.runtime.getDeviceCount() == 0:  # pragma: no cover
        pytest.skip("needs a GPU")
    import cupyx.scipy.sparse as csp

    M = advection()
    y = np.random.default_rng(6).standard_normal((2, M.shape[0]))
    reference = y @ dense_inverse(M, 1.0, 0.5).T
    for solver in ("splu", "gmres"):
        op = Sparse(csp.csr_matrix(M), solver=solver, tol=1e-10)
        out = shifted_inverse(op, 1.0, 0.5) @ cupy.asarray(y)
        np.testing.assert_allclose(cupy.asnumpy(out), reference, atol=1e-8)
    A = np.random.default_rng(7).standard_normal((20, 50))
    b = np.random.default_rng(8).standard_normal(20)
    f = ops.prox.LeastSquares(cupy.asarray(A), cupy.asarray(b))
    p = cupy.asnumpy(f.prox(cupy.zeros(50), 0.5))
    np.testing.assert_allclose(p, np.linalg.solve(np.eye(50) + 0.5 * A.T @ A, 0.5 * A.T @ b),
                               atol=1e-10)
