"""Finite-difference operators for total variation: Difference1D and Gradient2D.

References are independent of the operators' code: sparse matrices assembled
with SciPy (``diags`` and Kronecker products), NumPy's ``np.diff``, and the
spectral norm of the dense matrix from ``numpy.linalg.norm(·, 2)``.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from array_api_compat import array_namespace, device
from conftest import rtol_for, to_numpy

import opsplit as ops
from opsplit.operators import Difference1D, Gradient2D, exact_norm, to_scipy
from opsplit.prox import TotalVariation1D


def difference_matrix(n):
    """The ``(n - 1) × n`` forward-difference matrix, from SciPy."""
    return sp.diags([-np.ones(n - 1), np.ones(n - 1)], [0, 1], shape=(n - 1, n)).toarray()


def neumann_matrix(n):
    """``n × n`` forward differences with a zero last row (Neumann boundary)."""
    return np.vstack([difference_matrix(n), np.zeros((1, n))]) if n > 1 else np.zeros((1, 1))


def gradient_matrix(h, w):
    """The ``2HW × HW`` image gradient (row-major pixels): rows then columns."""
    return np.vstack([np.kron(neumann_matrix(h), np.eye(w)), np.kron(np.eye(h), neumann_matrix(w))])


CASES = {
    "diff1d": lambda: Difference1D(7),
    "diff1d_n2": lambda: Difference1D(2),
    "grad2d": lambda: Gradient2D((4, 5)),
    "grad2d_row": lambda: Gradient2D((1, 6)),
    "grad2d_column": lambda: Gradient2D((5, 1)),
}


def reference(op):
    if isinstance(op, Difference1D):
        return difference_matrix(op.n)
    return gradient_matrix(*op.image_shape)


def adjoint_gap(op, x, y):
    """Largest relative ``|⟨Dx, y⟩ - ⟨x, Dᵀy⟩|`` over the batch."""
    b = x.shape[: x.ndim - len(op.in_shape)]
    dx = to_numpy(op @ x).reshape(*b, -1).astype(np.float64)
    dty = to_numpy(op.H @ y).reshape(*b, -1).astype(np.float64)
    xf = to_numpy(x).reshape(*b, -1).astype(np.float64)
    yf = to_numpy(y).reshape(*b, -1).astype(np.float64)
    lhs, rhs = np.sum(dx * yf, -1), np.sum(xf * dty, -1)
    scale = np.linalg.norm(dx, axis=-1) * np.linalg.norm(yf, axis=-1)
    scale += np.linalg.norm(xf, axis=-1) * np.linalg.norm(dty, axis=-1)
    return float(np.max(np.abs(lhs - rhs) / scale))


@pytest.mark.parametrize("name", CASES)
def test_dot_test_batched(name, backend, dtype):
    op = CASES[name]()
    rng = np.random.default_rng(0)
    x = backend.asarray(rng.standard_normal((2, 3, *op.in_shape)), dtype)
    y = backend.asarray(rng.standard_normal((2, 3, *op.out_shape)), dtype)
    assert adjoint_gap(op, x, y) < rtol_for(dtype)


def test_dot_test_detects_a_wrong_adjoint(backend):
    """An adjoint that swaps the two difference directions (shape-valid on a
    square image, and wrong) fails the dot test."""

    class Swapped(Gradient2D):
        def rmatvec(self, y):
            xp = array_namespace(y)
            return super().rmatvec(xp.stack([y[..., 1, :, :], y[..., 0, :, :]], axis=-3))

    rng = np.random.default_rng(1)
    x = backend.asarray(rng.standard_normal((2, 4, 4)))
    y = backend.asarray(rng.standard_normal((2, 2, 4, 4)))
    assert adjoint_gap(Swapped((4, 4)), x, y) > 1e-2
    assert adjoint_gap(Gradient2D((4, 4)), x, y) < 1e-12


@pytest.mark.parametrize("name", CASES)
def test_matches_the_scipy_matrix(name, backend, dtype):
    op = CASES[name]()
    like = backend.asarray(np.zeros(1), dtype)
    dense = to_numpy(op.to_dense(like))
    expected = reference(op)
    assert dense.shape == op.shape == expected.shape
    np.testing.assert_allclose(dense, expected, atol=rtol_for(dtype))
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, *op.in_shape))
    y = rng.standard_normal((3, *op.out_shape))
    dx = to_numpy(op @ backend.asarray(x, dtype)).reshape(3, -1)
    dty = to_numpy(op.H @ backend.asarray(y, dtype)).reshape(3, -1)
    tol = 10 * rtol_for(dtype)
    np.testing.assert_allclose(dx, x.reshape(3, -1) @ expected.T, atol=tol)
    np.testing.assert_allclose(dty, y.reshape(3, -1) @ expected, atol=tol)


def test_difference_is_numpy_diff_and_scipy_round_trip():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 9))
    D = Difference1D(9)
    np.testing.assert_array_equal(D @ x, np.diff(x, axis=-1))
    G = Gradient2D((3, 4))
    img = rng.standard_normal((3, 4))
    g = G @ img
    np.testing.assert_array_equal(g[0, :-1], np.diff(img, axis=0))
    np.testing.assert_array_equal(g[1, :, :-1], np.diff(img, axis=1))
    assert not g[0, -1].any() and not g[1, :, -1].any()
    np.testing.assert_allclose(to_scipy(G) @ img.ravel(), g.ravel(), atol=1e-14)


@pytest.mark.parametrize("n", [2, 3, 4, 7, 16, 100])
def test_exact_norm_1d(n):
    D = Difference1D(n)
    dense = np.linalg.norm(difference_matrix(n), 2)
    assert exact_norm(D) == pytest.approx(dense, rel=1e-13)
    assert exact_norm(D) == pytest.approx(2 * np.cos(np.pi / (2 * n)), rel=1e-15)
    assert exact_norm(D) < 2
    assert exact_norm(D.H) == exact_norm(D)
    assert exact_norm(-3.0 * D) == pytest.approx(3 * dense, rel=1e-13)


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (6, 1), (2, 2), (4, 7), (9, 8)])
def test_exact_norm_2d(shape):
    G = Gradient2D(shape)
    dense = np.linalg.norm(gradient_matrix(*shape), 2)
    assert exact_norm(G) == pytest.approx(dense, rel=1e-13, abs=1e-15)
    assert exact_norm(G) < np.sqrt(8)


def test_exact_norm_is_not_the_crude_bound():
    """The rule gives the exact value, which the crude bounds 2 and √8 are not
    (so the tests above would catch a rule returning the bound)."""
    assert abs(exact_norm(Difference1D(5)) - 2) > 1e-2
    assert abs(exact_norm(Gradient2D((5, 6))) - np.sqrt(8)) > 1e-2


def test_dtype_and_device_preserved(backend, dtype):
    rng = np.random.default_rng(4)
    for op in (Difference1D(5), Gradient2D((3, 4))):
        x = backend.asarray(rng.standard_normal((2, *op.in_shape)), dtype)
        y = backend.asarray(rng.standard_normal((2, *op.out_shape)), dtype)
        for out in (op @ x, op.H @ y):
            assert out.dtype == backend.dtype(dtype)
            assert device(out) == device(x)


def test_total_variation_through_the_operator():
    """``λ‖Dx‖₁`` is TotalVariation1D's value; the isotropic TV of a square
    of side 3 in a 6×6 image is its perimeter measured by forward differences."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 8))
    assert np.sum(np.abs(Difference1D(8) @ x)) * 0.7 == pytest.approx(
        float(TotalVariation1D(0.7).value(x)), rel=1e-14
    )
    img = np.zeros((6, 6))
    img[1:4, 1:4] = 1.0
    g = Gradient2D((6, 6)) @ img
    iso = np.sum(np.sqrt(np.sum(g * g, axis=0)))
    assert iso == pytest.approx(10 + np.sqrt(2), rel=1e-14)  # 5 + 5 edges, one corner pixel


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: Difference1D(1), ValueError, "n must be >= 2"),
        (lambda: Difference1D(3.0), TypeError, "n must be an integer"),
        (lambda: Gradient2D(5), TypeError, "shape"),
        (lambda: Gradient2D((0, 3)), ValueError, r"shape\[0\]"),
        (lambda: Gradient2D((3, 2.5)), TypeError, r"shape\[1\]"),
        (lambda: Difference1D(4) @ np.ones(5), ValueError, r"\bx\b"),
        (lambda: Difference1D(4).H @ np.ones(4), ValueError, r"\by\b"),
        (lambda: Gradient2D((3, 4)) @ np.ones((4, 3)), ValueError, r"\bx\b"),
        (lambda: Gradient2D((3, 4)).H @ np.ones((3, 4)), ValueError, r"\by\b"),
        (lambda: Gradient2D((3, 4)).to_dense(), ValueError, "like"),
    ],
)
def test_bad_input_raises(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_operators_are_public():
    assert ops.operators.Difference1D is Difference1D
    assert ops.operators.Gradient2D is Gradient2D
