"""Sets given by array data: a box with array bounds, the L1 ball, an affine set
and a half-space. The properties every prox shares (optimality, Moreau, firm
nonexpansiveness, SciPy references, dtype and device) run on them in
test_prox.py; here: closed-form references, batching, where the data may live,
and the errors for bad data."""

from __future__ import annotations

import numpy as np
import pytest
from array_api_compat import device
from conftest import make_backend

import opsplit as ops
from opsplit.prox import AffineSet, Box, Conjugate, HalfSpace, L1Ball, closed_form_conjugate

INF = float("inf")


def as64(backend, a):
    return np.asarray(backend.to_numpy(a), dtype=np.float64)


def fvalue(backend, f, a):
    return float(backend.to_numpy(f.value(a)))


def tolerance(dtype):
    return 1e-5 if dtype == "float32" else 1e-12


# --- Box with array bounds ---------------------------------------------------------------


@pytest.mark.parametrize("bounds_shape", [(4,), (1, 4), (3, 4)])
def test_box_array_bounds_broadcast_against_trailing_axes(backend, dtype, bounds_shape):
    """Rejected before (``low must be a real number``); now clipping entry by
    entry, in ``x``'s dtype and on its device, equal to ``np.clip``."""
    rng = np.random.default_rng(0)
    low = rng.uniform(-1.0, 0.0, bounds_shape)
    high = low + rng.uniform(0.0, 1.0, bounds_shape)
    low[..., 1], high[..., 2] = -INF, INF
    f = Box(backend.asarray(low, dtype), backend.asarray(high, dtype))
    x_np = rng.normal(0, 2, (3, 4))
    x = backend.asarray(x_np, dtype)
    p = f.prox(x, 0.7)
    assert p.dtype == x.dtype and p.shape == x.shape and device(p) == device(x)
    lo32, hi32 = low.astype(dtype), high.astype(dtype)  # the bounds in x's dtype
    np.testing.assert_array_equal(as64(backend, p), np.clip(x_np.astype(dtype), lo32, hi32))
    assert fvalue(backend, f, p) == 0.0 and fvalue(backend, f, 5 * x) == INF
    # a scalar bound with an array bound
    g = Box(-1.0, backend.asarray(high, dtype))
    expected = np.clip(x_np.astype(dtype), -1.0, hi32)
    np.testing.assert_array_equal(as64(backend, g.prox(x)), expected)


def test_float64_data_keeps_float32_input_float32(backend):
    """The data is used in x's dtype: a float32 x gives a float32 answer."""
    x_np = np.array([[-3.0, 0.5], [2.0, -2.0]])
    x = backend.asarray(x_np, "float32")
    data = backend.asarray([1.0, 2.0], "float64")
    cases = [
        (Box(backend.asarray([-1.0, 0.0], "float64"), 1.0), [[-1.0, 0.5], [1.0, 0.0]]),
        (AffineSet(backend.xp.reshape(data, (1, 2)), backend.asarray([1.0], "float64")),
         x_np - np.outer((x_np @ [1.0, 2.0] - 1.0) / 5.0, [1.0, 2.0])),
        (HalfSpace(data, 1.0),
         x_np - np.outer(np.maximum(x_np @ [1.0, 2.0] - 1.0, 0) / 5.0, [1.0, 2.0])),
    ]  # fmt: skip
    for f, expected in cases:
        p = f.prox(x)
        assert p.dtype == backend.dtype("float32") and device(p) == device(x), f
        np.testing.assert_allclose(as64(backend, p), expected, rtol=1e-6, atol=1e-6)
        assert fvalue(backend, f, p) == 0.0


def test_box_array_conjugate_goes_through_moreau():
    low, high = np.array([-1.0, 0.0, -2.0]), np.array([1.0, 3.0, -1.0])
    f = Box(low, high)
    assert closed_form_conjugate(f) is None  # no array-weighted support function in the library
    x = np.random.default_rng(1).normal(0, 3, (2, 3))
    for step in (0.5, 2.0):
        # prox of step·σ with σ(y) = Σ max(low·y, high·y) (the support function),
        # worked out by hand: a shift by step·high above, by step·low below, 0 between
        up, down = step * high, step * low
        expected = np.where(x > up, x - up, np.where(x < down, x - down, 0.0))
        np.testing.assert_allclose(Conjugate(f).prox(x, step), expected, atol=1e-12)


def test_box_bounds_must_come_from_the_library_and_device_of_x():
    numpy_box = Box(np.zeros(3), np.ones(3))
    strict0, strict1 = make_backend("strict0"), make_backend("strict1")
    with pytest.raises(TypeError, match="low and x come from different array libraries"):
        numpy_box.prox(strict0.asarray(np.zeros(3)))
    box1 = Box(strict1.asarray(np.zeros(3)), 1.0)
    with pytest.raises(ValueError, match="low is on device"):
        box1.prox(strict0.asarray(np.zeros(3)))
    with pytest.raises(TypeError, match="low and high"):
        Box(np.zeros(3), strict0.asarray(np.ones(3)))
    with pytest.raises(ValueError, match="low is on device .* but high is on"):
        Box(strict0.asarray(np.zeros(3)), strict1.asarray(np.ones(3)))


def test_box_bounds_that_do_not_fit_x_raise():
    f = Box(np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match=r"low of shape \(3,\) does not broadcast to x's shape"):
        f.prox(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="high of shape"):
        Box(-1.0, np.ones((2, 3))).prox(np.zeros(3))  # would enlarge x
    with pytest.raises(ValueError, match="low"):
        f.value(np.zeros(2))


@pytest.mark.parametrize(
    "low, high, error, match",
    [
        (np.array([0.0, 2.0]), np.array([1.0, 1.0]), ValueError, "low must be <= high everywhere"),
        (np.array([0.0, np.nan]), 1.0, ValueError, "low must not contain nan"),
        (0.0, np.array([1.0, np.nan]), ValueError, "high must not contain nan"),
        (np.zeros(2), np.ones(3), ValueError, "low and high must broadcast together"),
        (np.array([0.0, INF]), INF, ValueError, "empty box"),
        (-INF, np.array([-INF, 1.0]), ValueError, "empty box"),
        (np.array([0, 1]), 2.0, TypeError, "low must have a real floating dtype"),
        ([0.0, 1.0], 2.0, TypeError, "low must be a real number or a real floating array"),
        (0.0, "1", TypeError, "high"),
    ],
)
def test_box_bad_bounds(low, high, error, match):
    with pytest.raises(error, match=match):
        Box(low, high)


# --- L1 ball -----------------------------------------------------------------------------


def l1_projection_by_bisection(row, radius):
    """Projection on the L1 ball by bisection on the threshold θ of
    Σ max(|x| - θ, 0) = r (an algorithm independent of the sort-based one)."""
    if np.abs(row).sum() <= radius:
        return row.copy()
    lo, hi = 0.0, np.abs(row).max()
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if np.maximum(np.abs(row) - mid, 0).sum() > radius else (lo, mid)
    return np.sign(row) * np.maximum(np.abs(row) - 0.5 * (lo + hi), 0)


def test_l1_ball_batched_over_leading_axes_matches_bisection(backend, dtype):
    rng = np.random.default_rng(2)
    x_np = rng.normal(0, 1, (2, 3, 6))
    x_np[0, 0] *= 0.05  # a row inside the ball: unchanged
    x_np[1, 2] = [1.0, -1.0, 1.0, 0.5, -0.5, 0.0]  # ties in |x|
    x = backend.asarray(x_np, dtype)
    p = L1Ball(1.5).prox(x)
    assert p.dtype == x.dtype and device(p) == device(x)
    x64 = x_np.astype(dtype).astype(np.float64)
    expected = np.stack([[l1_projection_by_bisection(row, 1.5) for row in block] for block in x64])
    tol = tolerance(dtype)
    np.testing.assert_allclose(as64(backend, p), expected, rtol=tol, atol=tol)
    np.testing.assert_array_equal(as64(backend, p)[0, 0], x64[0, 0])
    assert np.all(np.abs(as64(backend, p)).sum(axis=-1) <= 1.5 * (1 + 10 * tol))


def test_l1_ball_radius_zero_and_one_entry_rows():
    np.testing.assert_array_equal(L1Ball(0.0).prox(np.array([[3.0, -1.0]])), [[0.0, 0.0]])
    np.testing.assert_array_equal(L1Ball(2.0).prox(np.array([[-5.0], [1.0]])), [[-2.0], [1.0]])
    with pytest.raises(ValueError, match="at least one axis"):
        L1Ball(1.0).prox(np.array(1.0))
    with pytest.raises(ValueError, match="radius"):
        L1Ball(-1.0)


# --- affine set --------------------------------------------------------------------------


def test_affine_projection_matches_the_normal_equations(backend, dtype):
    rng = np.random.default_rng(3)
    a_np, b_np = rng.normal(size=(3, 5)), rng.normal(size=3)
    f = AffineSet(backend.asarray(a_np, dtype), backend.asarray(b_np, dtype))
    x_np = rng.normal(0, 2, (4, 5))
    x = backend.asarray(x_np, dtype)
    p = f.prox(x, 3.0)
    assert p.dtype == x.dtype and p.shape == x.shape and device(p) == device(x)
    residual = x_np @ a_np.T - b_np
    expected = x_np - np.linalg.solve(a_np @ a_np.T, residual.T).T @ a_np
    tol = 1e3 * tolerance(dtype)
    np.testing.assert_allclose(as64(backend, p), expected, rtol=tol, atol=tol)
    np.testing.assert_allclose(as64(backend, p) @ a_np.T, np.tile(b_np, (4, 1)), atol=tol)
    assert fvalue(backend, f, p) == 0.0 and fvalue(backend, f, x) == INF
    one = f.prox(x[0, :])  # a single row
    np.testing.assert_allclose(as64(backend, one), expected[0], rtol=tol, atol=tol)


def test_affine_projection_is_accurate_for_an_ill_conditioned_a():
    """The QR of Aᵀ keeps the error at cond(A)·eps where (AAᵀ)⁻¹ would square it."""
    rng = np.random.default_rng(4)
    u, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    v, _ = np.linalg.qr(rng.normal(size=(6, 3)))
    a = u @ np.diag([1.0, 1e-4, 1e-7]) @ v.T  # cond(A) = 1e7
    b = a @ rng.normal(size=6)
    x = rng.normal(size=(5, 6))
    p = AffineSet(a, b).prox(x)
    # the projection is x minus its component in the row space v: compare with v directly
    xs = np.linalg.lstsq(a, b, rcond=None)[0]
    expected = x - (x - xs) @ v @ v.T
    np.testing.assert_allclose(p, expected, atol=1e-8)


@pytest.mark.parametrize(
    "a, b, match",
    [
        (np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0]]), np.ones(2), "full row rank.*rank is 1 < 2"),
        (np.eye(3)[:, :2], np.ones(3), "3 rows in 2 columns"),
        (np.array([[1.0, np.inf]]), np.ones(1), "A must be finite"),
        (np.eye(2), np.array([1.0, np.nan]), "b must be finite"),
        (np.eye(2), np.ones(3), "b must have 2 entries"),
        (np.ones(3), np.ones(1), "A must have 2 axes"),
        (np.zeros((0, 3)), np.zeros(0), "at least one row"),
    ],
)
def test_affine_bad_data_raises_value_error(a, b, match):
    with pytest.raises(ValueError, match=match):
        AffineSet(a, b)


def test_affine_bad_types_and_x():
    with pytest.raises(TypeError, match="A must"):
        AffineSet([[1.0, 0.0]], np.ones(1))
    with pytest.raises(TypeError, match="A must have a real floating dtype"):
        AffineSet(np.eye(2, dtype=int), np.ones(2))
    f = AffineSet(np.eye(2), np.ones(2))
    with pytest.raises(ValueError, match="x must have 2 entries on its last axis"):
        f.prox(np.zeros((3, 4)))
    with pytest.raises(TypeError, match="A and x"):
        f.prox(make_backend("strict0").asarray(np.zeros(2)))


# --- half-space --------------------------------------------------------------------------


def test_half_space_closed_form(backend, dtype):
    rng = np.random.default_rng(5)
    a_np = np.array([2.0, -1.0, 0.0, 0.5])
    x_np = rng.normal(0, 2, (6, 4))
    f = HalfSpace(backend.asarray(a_np, dtype), -0.3)
    x = backend.asarray(x_np, dtype)
    p = f.prox(x)
    assert p.dtype == x.dtype and device(p) == device(x)
    x64 = x_np.astype(dtype).astype(np.float64)
    excess = (x64 @ a_np + 0.3) / (a_np @ a_np)
    expected = x64 - np.maximum(excess, 0)[:, None] * a_np
    assert np.any(excess < 0) and np.any(excess > 0)  # both sides are exercised
    tol = 10 * tolerance(dtype)
    np.testing.assert_allclose(as64(backend, p), expected, rtol=tol, atol=tol)
    np.testing.assert_array_equal(as64(backend, p)[excess < 0], x64[excess < 0])
    assert fvalue(backend, f, p) == 0.0 and fvalue(backend, f, x) == INF


@pytest.mark.parametrize(
    "a, beta, error, match",
    [
        (np.zeros(3), 0.0, ValueError, "a must be nonzero"),
        (np.array([1.0, np.inf]), 0.0, ValueError, "a must be finite"),
        (np.ones((2, 2)), 0.0, ValueError, "a must have 1 axes"),
        (np.ones(2), np.nan, ValueError, "beta"),
        (np.ones(2), "0", TypeError, "beta"),
        ([1.0, 2.0], 0.0, TypeError, "a must be an array"),
    ],
)
def test_half_space_bad_data(a, beta, error, match):
    with pytest.raises(error, match=match):
        HalfSpace(a, beta)


# --- they are sets: the normal cone takes them, and a splitting method meets them -----------


def test_intersection_by_douglas_rachford():
    """A point of {A x = b} ∩ {‖x‖₁ ≤ r} ∩ box, found as a zero of the sum of two
    normal cones; checked against the sets themselves."""
    rng = np.random.default_rng(6)
    a, xs = rng.normal(size=(2, 5)), rng.uniform(-0.2, 0.2, 5)
    affine = AffineSet(a, a @ xs)
    ball = L1Ball(1.0)
    for f in (affine, ball, HalfSpace(np.ones(5), 1.0), Box(np.full(5, -1.0), 1.0)):
        assert f.indicator
        ops.NormalCone(f)  # accepted
    problem = ops.Inclusion(ops.NormalCone(affine), ops.NormalCone(ball))
    result = ops.solve(problem, ops.DouglasRachford(step=1.0), rng.normal(0, 3, 5), tol=1e-12)
    assert result.success
    x = result.x
    assert np.abs(x).sum() <= 1.0 + 1e-9
    np.testing.assert_allclose(a @ x, a @ xs, atol=1e-6)
