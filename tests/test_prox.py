"""Every proximable function, one registry: optimality, Moreau identity, firm
nonexpansiveness, agreement with a slow SciPy reference, dtypes, parameters."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from array_api_compat import device
from conftest import make_backend
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import minimize, minimize_scalar

from opsplit.prox import (
    L1,
    L2,
    AffineSet,
    Box,
    Conjugate,
    ElasticNet,
    HalfSpace,
    HardTanh,
    Huber,
    L1Ball,
    L2Ball,
    LeakyReLU,
    LInfBall,
    NonNegative,
    ProxFunction,
    ReLU,
    Scaled,
    SeparableSum,
    Sigmoid,
    Simplex,
    Softplus,
    SquaredL2,
    Tanh,
    Translated,
    Zero,
    ZeroOnMask,
    closed_form_conjugate,
)

INF = float("inf")
SHAPE = (3, 4)
MASK = np.array([True, False, False, True])
SHIFT = np.array([0.5, -1.0, 0.0, 2.0])
# data of the sets given by arrays (for rows of length 4): box bounds with open
# sides and a point interval, an affine set {A x = B}, a half-space <NORMAL, x> <= BETA
LOW = np.array([-0.5, -INF, 0.2, -2.0])
HIGH = np.array([1.0, 0.3, 0.2, INF])
A = np.array([[1.0, 2.0, 0.0, -1.0], [0.0, 1.0, 1.0, 1.0]])
B = np.array([0.5, -1.0])
NORMAL = np.array([1.0, -2.0, 0.5, 1.5])
BETA = 0.7


def _mask(backend, dtype):
    return backend.xp.asarray(MASK, device=backend.device)


def _shift(backend, dtype):
    return backend.asarray(SHIFT, dtype)


def _box_array(backend, dtype):
    return Box(backend.asarray(LOW, dtype), backend.asarray(HIGH, dtype))


def _affine(backend, dtype):
    return AffineSet(backend.asarray(A, dtype), backend.asarray(B, dtype))


def _half_space(backend, dtype):
    return HalfSpace(backend.asarray(NORMAL, dtype), BETA)


@dataclass(frozen=True)
class Case:
    """A registry entry: ``make(backend, dtype)`` builds the function.

    ``domain``: interval of a separable function's entries, for the per-entry
    SciPy reference (``None``: no per-entry reference). ``has_value``: False
    when ``value`` is not available (a conjugate without a closed form).
    """

    name: str
    make: object
    domain: tuple | None = (-INF, INF)
    has_value: bool = True


def simple(name, f, domain=(-INF, INF), **kw):
    return Case(name, lambda backend, dtype: f, domain, **kw)


CASES = [
    simple("zero", Zero()),
    simple("nonnegative", NonNegative(), (0.0, INF)),
    simple("box", Box(-0.5, 1.0), (-0.5, 1.0)),
    simple("box_halfline", Box(-INF, 0.3), (-INF, 0.3)),
    Case("zero_on_mask", lambda b, d: ZeroOnMask(_mask(b, d)), None),
    simple("l1", L1(0.7)),
    simple("l2", L2(0.9), None),
    simple("squared_l2", SquaredL2(1.3)),
    simple("elastic_net", ElasticNet(0.5, 0.8)),
    simple("huber", Huber(0.6)),
    simple("l2_ball", L2Ball(1.2), None),
    simple("linf_ball", LInfBall(0.4), (-0.4, 0.4)),
    simple("simplex", Simplex(2.0), None),
    Case("box_array", _box_array, None),
    simple("l1_ball", L1Ball(1.5), None),
    Case("affine", _affine, None),
    Case("half_space", _half_space, None),
    simple("relu", ReLU(), (0.0, INF)),
    simple("leaky_relu", LeakyReLU(0.2)),
    simple("hardtanh", HardTanh(-0.5, 2.0), (-0.5, 2.0)),
    simple("tanh", Tanh(), (-1.0, 1.0)),
    simple("sigmoid", Sigmoid(), (0.0, 1.0)),
    simple("softplus", Softplus(), (0.0, INF)),
    simple("scaled", Scaled(ElasticNet(0.3, 0.5), 2.0)),
    Case("translated", lambda b, d: Translated(L2Ball(1.0), _shift(b, d)), None),
    simple("conjugate_l1", Conjugate(L1(0.7)), (-0.7, 0.7)),
    simple("conjugate_l2", Conjugate(L2(0.9)), None),
    simple("conjugate_huber", Conjugate(Huber(0.6)), None, has_value=False),
    simple("conjugate_tanh", Conjugate(Tanh()), None, has_value=False),
]
IDS = [c.name for c in CASES]
WITH_VALUE = [c for c in CASES if c.has_value]
STEPS = (0.3, 1.0, 2.5)


def tolerance(dtype):
    return 1e-4 if dtype == "float32" else 1e-9


def as64(backend, a):
    return np.asarray(backend.to_numpy(a), dtype=np.float64)


def fvalue(backend, f, a):
    return float(backend.to_numpy(f.value(a)))


# --- the checks (each returns a violation: <= tol passes) -------------------------------


def optimality_violation(backend, f, x, p, step, ys):
    r"""Largest relative violation of the subgradient inequality
    :math:`f(y) \ge f(p) + \langle g, y - p\rangle` with ``g = (x - p)/step``
    over the points ``ys`` of ``dom f`` (for an indicator: ``p`` feasible and
    ``⟨g, y - p⟩ ≤ 0``); ``inf`` when ``p`` is outside the domain. The part of
    ``⟨g, y - p⟩`` that rounding can produce (``p`` carries a few ``eps`` of
    ``‖x‖``, ``y`` of its own size) is not counted: it dominates only when
    ``y`` is very near ``p`` and ``g`` is large."""
    fp = fvalue(backend, f, p)
    if not np.isfinite(fp):
        return np.inf
    eps = np.finfo(backend.to_numpy(p).dtype).eps
    p64, x64 = as64(backend, p), as64(backend, x)
    g = (x64 - p64) / step
    size = np.linalg.norm(x64) + np.linalg.norm(p64)
    worst = -np.inf
    for y in ys:
        fy = fvalue(backend, f, y)
        assert np.isfinite(fy), "test points must lie in the domain"
        y64 = as64(backend, y)
        d = y64 - p64
        rounding = 16 * eps * np.linalg.norm(g) * (size + np.linalg.norm(y64))
        gap = fp + np.sum(g * d) - fy - rounding
        worst = max(worst, gap / (1 + abs(fp) + abs(fy) + np.linalg.norm(g) * np.linalg.norm(d)))
    return worst


def firm_nonexpansive_violation(backend, prox, pairs):
    r"""Largest :math:`(\|p - q\|^2 - \langle p - q, x - y\rangle - e) / \|x - y\|^2`,
    where ``e`` bounds what rounding the two proxes (a few ``eps`` of the
    points' size each) can add: it matters only when ``x - y`` is tiny."""
    worst = -np.inf
    for x, y in pairs:
        p_raw = backend.to_numpy(prox(x))
        eps = np.finfo(p_raw.dtype).eps
        p, q = np.asarray(p_raw, dtype=np.float64), as64(backend, prox(y))
        x64, y64 = as64(backend, x), as64(backend, y)
        dx, dp = x64 - y64, p - q
        size = sum(np.linalg.norm(v) for v in (p, q, x64, y64))
        rounding = 16 * eps * size * (np.linalg.norm(dp) + np.linalg.norm(dx))
        excess = np.sum(dp * dp) - np.sum(dp * dx) - rounding
        worst = max(worst, excess / max(np.sum(dx * dx), 1e-300))
    return worst


def domain_points(backend, dtype, f, p, rng, delta=0.05):
    """Points of ``dom f``: proxes of random points (global), and of ``p ± delta``
    along every coordinate (local: a tiny step keeps them near ``p``, and a
    coordinate step exposes a wrong subgradient entry that a random direction
    would average away)."""
    ys = [f.prox(backend.asarray(rng.normal(0, 3, p.shape), dtype), s) for s in (0.1, 1.0, 5.0)]
    p_np = as64(backend, p)
    for i in np.ndindex(p_np.shape):
        for sign in (-1.0, 1.0):
            z = p_np.copy()
            z[i] += sign * delta
            ys.append(f.prox(backend.asarray(z, dtype), 1e-3))
    return ys


def pairs_of_points(backend, dtype, rng):
    pairs = []
    for scale in (3.0, 3.0, 0.05, 0.05, 0.05):
        x = rng.normal(0, 2, SHAPE)
        pairs.append(
            (backend.asarray(x, dtype), backend.asarray(x + scale * rng.normal(size=SHAPE), dtype))
        )
    return pairs


# --- (a) optimality, (c) firm nonexpansiveness, (e) broken proxes fail ------------------


@pytest.mark.parametrize("case", WITH_VALUE, ids=[c.name for c in WITH_VALUE])
def test_optimality(case, backend, dtype):
    rng = np.random.default_rng(0)
    f = case.make(backend, dtype)
    for step in STEPS:
        x = backend.asarray(rng.normal(0, 2, SHAPE), dtype)
        p = f.prox(x, step)
        ys = domain_points(backend, dtype, f, p, rng)
        assert optimality_violation(backend, f, x, p, step, ys) <= tolerance(dtype)
        # a deliberately broken prox (twice the answer) fails the same check
        wrong = 2 * p
        ys = domain_points(backend, dtype, f, wrong, rng)
        assert optimality_violation(backend, f, x, wrong, step, ys) > 1e-3


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_firm_nonexpansiveness(case, backend, dtype):
    rng = np.random.default_rng(1)
    f = case.make(backend, dtype)
    pairs = pairs_of_points(backend, dtype, rng)
    for step in STEPS:
        violation = firm_nonexpansive_violation(backend, lambda z, s=step: f.prox(z, s), pairs)
        assert violation <= tolerance(dtype)
        # a deliberately broken prox (the sign flipped) fails the same check
        broken = firm_nonexpansive_violation(backend, lambda z, s=step: -f.prox(z, s), pairs)
        assert broken > 1e-2


# --- (b) Moreau identity against independently implemented conjugates -------------------


def numpy_instance(case):
    return case.make(make_backend("numpy"), "float64")


CONJUGATE_PAIRS = [c for c in CASES if closed_form_conjugate(numpy_instance(c)) is not None]


@pytest.mark.parametrize("case", CONJUGATE_PAIRS, ids=[c.name for c in CONJUGATE_PAIRS])
def test_moreau_identity(case, backend, dtype):
    rng = np.random.default_rng(2)
    f = case.make(backend, dtype)
    fstar = closed_form_conjugate(f)
    assert fstar is not None and type(fstar) is not Conjugate
    tol = 10 * tolerance(dtype)
    for step in STEPS:
        x = backend.asarray(rng.normal(0, 2, SHAPE), dtype)
        x_np = as64(backend, x)
        # x = prox_{γ f}(x) + γ prox_{f*/γ}(x/γ), with f*'s own prox
        rebuilt = f.prox(x, step) + step * fstar.prox(x / step, 1.0 / step)
        np.testing.assert_allclose(as64(backend, rebuilt), x_np, rtol=tol, atol=tol)
        # the Moreau-based Conjugate agrees with the closed form, value included
        conj = Conjugate(f)
        q = conj.prox(x, step)
        np.testing.assert_allclose(as64(backend, q), as64(backend, fstar.prox(x, step)), atol=tol)
        assert fvalue(backend, conj, q) == pytest.approx(
            fvalue(backend, fstar, q), rel=tol, abs=tol
        )
        assert conj.conjugate() is f
        # biconjugate: Moreau applied twice gives back prox_f
        twice = Conjugate(conj).prox(x, step)
        np.testing.assert_allclose(as64(backend, twice), as64(backend, f.prox(x, step)), atol=tol)


def test_moreau_identity_check_fails_with_the_wrong_scaling():
    x = np.random.default_rng(3).normal(size=SHAPE)
    f, step = SquaredL2(1.3), 2.5
    fstar = closed_form_conjugate(f)
    wrong = f.prox(x, step) + step * fstar.prox(x, step)
    assert np.max(np.abs(wrong - x)) > 0.1


def support_function_prox(name, y, t):
    r"""``argmin_q t·σ_C(q) + ½‖q - y‖²`` for one row ``y``, by SciPy: the prox
    of ``t·f*`` for the indicator ``f`` of ``C``, whose conjugate is the
    support function :math:`\sigma_C(q) = \sup_{z \in C} \langle q, z\rangle`."""
    n = y.size
    if name == "box_array":  # σ = Σ high·q (q ≥ 0) or low·q (q ≤ 0), +inf across an open side
        out = np.empty(n)
        for j, (lo, hi, yj) in enumerate(zip(LOW, HIGH, y)):
            bounds = (0.0 if np.isinf(lo) else -60.0, 0.0 if np.isinf(hi) else 60.0)
            res = minimize_scalar(
                lambda q, lo=lo, hi=hi, yj=yj: t * (hi * q if q > 0 else lo * q if q < 0 else 0.0)
                + 0.5 * (q - yj) ** 2,
                bounds=bounds, method="bounded", options={"xatol": 1e-12, "maxiter": 2000},
            )  # fmt: skip
            out[j] = res.x
        return out
    if name == "l1_ball":  # σ = r‖q‖∞: epigraph variable s ≥ |q_i|
        sol = constrained_reference(
            lambda z: t * 1.5 * z[-1] + 0.5 * np.sum((z[:-1] - y) ** 2),
            [{"type": "ineq", "fun": lambda z: np.concatenate([z[-1] - z[:-1], z[-1] + z[:-1]])}],
            n + 1,
            x0=np.append(y, np.max(np.abs(y))),
        )
        return sol[:-1]
    if name == "affine":  # σ(Aᵀμ) = ⟨Aᵀμ, x0⟩ for any x0 in C, +inf off the row space
        x0 = np.linalg.lstsq(A, B, rcond=None)[0]
        res = minimize(
            lambda mu: t * (A.T @ mu) @ x0 + 0.5 * np.sum((A.T @ mu - y) ** 2),
            np.zeros(A.shape[0]), method="BFGS", options={"gtol": 1e-12},
        )  # fmt: skip
        return A.T @ res.x
    if name == "half_space":  # σ(λ a) = λ β for λ ≥ 0, +inf elsewhere
        res = minimize_scalar(
            lambda lam: t * lam * BETA + 0.5 * np.sum((lam * NORMAL - y) ** 2),
            bounds=(0.0, 1e3), method="bounded", options={"xatol": 1e-12, "maxiter": 2000},
        )  # fmt: skip
        return res.x * NORMAL
    raise KeyError(name)


SUPPORT_CASES = [c for c in CASES if c.name in ("box_array", "l1_ball", "affine", "half_space")]


@pytest.mark.parametrize("case", SUPPORT_CASES, ids=[c.name for c in SUPPORT_CASES])
def test_moreau_identity_with_the_support_function(case):
    """The sets given by array data have no conjugate in the library, so the
    Moreau identity ``x = P(x) + γ prox_{f*/γ}(x/γ)`` is checked against the
    prox of the support function computed by SciPy; a broken projection
    (twice the answer) fails it."""
    rng = np.random.default_rng(11)
    f = numpy_instance(case)
    for step in STEPS:
        for x in rng.normal(0, 2, (3, 4)):
            q = support_function_prox(case.name, x / step, 1.0 / step)
            p = f.prox(x, step)
            np.testing.assert_allclose(p + step * q, x, atol=1e-5)
            assert np.max(np.abs(2 * p + step * q - x)) > 1e-2


# --- (d) agreement with a slow SciPy reference -------------------------------------------


def scalar_reference(f, x, step, domain):
    """prox by minimize_scalar per entry of f(p) + (p - x)²/(2 step) (f separable)."""
    lo, hi = max(domain[0], -60.0), min(domain[1], 60.0)
    out = np.empty_like(x)
    for i, xi in np.ndenumerate(x):
        res = minimize_scalar(
            lambda t, xi=xi: float(f.value(np.array([t]))) + (t - xi) ** 2 / (2 * step),
            bounds=(lo, hi),
            method="bounded",
            options={"xatol": 1e-12, "maxiter": 2000},
        )
        out[i] = res.x
    return out


def constrained_reference(objective, constraints, n, bounds=None, x0=None):
    res = minimize(
        objective,
        np.zeros(n) if x0 is None else x0,
        method="SLSQP",
        constraints=constraints,
        bounds=bounds,
        options={"ftol": 1e-13, "maxiter": 1000},
    )
    # exit mode 8 ("positive directional derivative in line search") means SLSQP
    # stalled at the precision limit: the point is still compared below
    assert res.status in (0, 8), res.message
    return res.x


def row_reference(name, f, x_row, step):
    n = x_row.size
    if name == "l2":  # epigraph: min lam·t + |p - x|²/(2 step), t² ≥ |p|², t ≥ 0
        sol = constrained_reference(
            lambda z: f.lam * z[-1] + np.sum((z[:-1] - x_row) ** 2) / (2 * step),
            [{"type": "ineq", "fun": lambda z: z[-1] ** 2 - np.sum(z[:-1] ** 2)}],
            n + 1,
            bounds=[(None, None)] * n + [(0, None)],
            x0=np.append(x_row, np.linalg.norm(x_row)),
        )
        return sol[:-1]
    if name in ("l2_ball", "translated", "conjugate_l2"):
        radius = {"l2_ball": 1.2, "translated": 1.0, "conjugate_l2": 0.9}[name]
        center = SHIFT if name == "translated" else np.zeros(n)
        return constrained_reference(
            lambda z: np.sum((z - x_row) ** 2),
            [{"type": "ineq", "fun": lambda z: radius**2 - np.sum((z - center) ** 2)}],
            n,
            x0=center,
        )
    if name == "simplex":
        return constrained_reference(
            lambda z: np.sum((z - x_row) ** 2),
            [{"type": "eq", "fun": lambda z: np.sum(z) - 2.0}],
            n,
            bounds=[(0, None)] * n,
            x0=np.full(n, 2.0 / n),
        )
    if name == "box_array":
        bounds = [(None if np.isinf(lo) else lo, None if np.isinf(hi) else hi)
                  for lo, hi in zip(LOW, HIGH)]  # fmt: skip
        return constrained_reference(lambda z: np.sum((z - x_row) ** 2), [], n, bounds=bounds)
    if name == "l1_ball":  # p = u - v with u, v ≥ 0 and Σ(u + v) ≤ r: a smooth QP
        sol = constrained_reference(
            lambda z: np.sum((z[:n] - z[n:] - x_row) ** 2),
            [{"type": "ineq", "fun": lambda z: 1.5 - np.sum(z)}],
            2 * n,
            bounds=[(0, None)] * (2 * n),
        )
        return sol[:n] - sol[n:]
    if name == "affine":
        return constrained_reference(
            lambda z: np.sum((z - x_row) ** 2), [{"type": "eq", "fun": lambda z: A @ z - B}], n
        )
    if name == "half_space":
        return constrained_reference(
            lambda z: np.sum((z - x_row) ** 2),
            [{"type": "ineq", "fun": lambda z: BETA - NORMAL @ z}],
            n,
        )
    raise KeyError(name)


ROW_CASES = [
    "l2", "l2_ball", "simplex", "translated", "conjugate_l2", "box_array", "l1_ball", "affine",
    "half_space",
]  # fmt: skip
REFERENCE_CASES = [c for c in WITH_VALUE if c.domain is not None or c.name in ROW_CASES]


@pytest.mark.parametrize("case", REFERENCE_CASES, ids=[c.name for c in REFERENCE_CASES])
def test_agrees_with_scipy_reference(case):
    """The slow reference runs once, on NumPy in float64 (the backends are
    compared with NumPy elsewhere)."""
    rng = np.random.default_rng(4)
    f = numpy_instance(case)
    for step in (0.4, 2.0):
        x = rng.normal(0, 2, (2, 4))
        x[0, 0] = 0.05  # an entry that thresholds / clips / stays interior
        p = f.prox(x, step)
        if case.domain is not None:
            ref = scalar_reference(f, x, step, case.domain)
        else:
            ref = np.stack([row_reference(case.name, f, row, step) for row in x])
        np.testing.assert_allclose(p, ref, atol=2e-6)


def test_zero_on_mask_reference(backend, dtype):
    x_np = np.random.default_rng(5).normal(size=SHAPE)
    f = ZeroOnMask(_mask(backend, dtype))
    p = f.prox(backend.asarray(x_np, dtype), 0.7)
    np.testing.assert_array_equal(as64(backend, p), np.where(MASK, 0.0, x_np.astype(dtype)))


# --- hypothesis: the properties on arbitrary inputs (NumPy) ------------------------------

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False)
points = arrays(np.float64, (2, 3), elements=finite)
steps = st.floats(1e-2, 1e2)


@pytest.mark.parametrize("case", WITH_VALUE, ids=[c.name for c in WITH_VALUE])
@settings(max_examples=25, deadline=None)
@given(x=points, y=points, step=steps, seed=st.integers(0, 2**16))
def test_properties_on_arbitrary_inputs(case, x, y, step, seed):
    backend = make_backend("numpy")
    f = case.make(backend, "float64")
    on_three = {  # the cases whose data fixes the row length, on rows of length 3
        "zero_on_mask": lambda: ZeroOnMask(MASK[:3]),
        "translated": lambda: Translated(L2Ball(1.0), SHIFT[:3]),
        "box_array": lambda: Box(LOW[:3], HIGH[:3]),
        "affine": lambda: AffineSet(A[:, :3], B),
        "half_space": lambda: HalfSpace(NORMAL[:3], BETA),
    }
    if case.name in on_three:
        f = on_three[case.name]()
    rng = np.random.default_rng(seed)
    p = f.prox(x, step)
    ys = [f.prox(y, s) for s in (0.1, 1.0)] + domain_points(backend, "float64", f, p, rng)
    assert optimality_violation(backend, f, x, p, step, ys) <= 1e-8
    assert firm_nonexpansive_violation(backend, lambda z: f.prox(z, step), [(x, y)]) <= 1e-8


# --- (f) dtype, device, no mutation; indicator values -----------------------------------


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_dtype_device_and_no_mutation(case, backend, dtype):
    f = case.make(backend, dtype)
    x = backend.asarray(np.random.default_rng(6).normal(0, 2, SHAPE), dtype)
    before = backend.to_numpy(x).copy()
    for step in STEPS:
        p = f.prox(x, step)
        assert p.dtype == backend.dtype(dtype) and p.shape == x.shape
        assert device(p) == device(x)
    np.testing.assert_array_equal(backend.to_numpy(x), before)
    if case.has_value:
        val = f.value(p)
        assert val.shape == () and val.dtype == backend.dtype(dtype) and device(val) == device(x)
        assert np.isfinite(fvalue(backend, f, p))
    else:
        with pytest.raises(NotImplementedError, match="closed form"):
            f.value(p)


INDICATORS = [c for c in CASES if numpy_instance(c).indicator]


@pytest.mark.parametrize("case", INDICATORS, ids=[c.name for c in INDICATORS])
def test_indicator_values(case, backend, dtype):
    f = case.make(backend, dtype)
    x = backend.asarray(np.random.default_rng(7).normal(0, 5, SHAPE), dtype)
    assert fvalue(backend, f, x) == np.inf  # such a spread point is infeasible for all of them
    for step in STEPS:
        assert fvalue(backend, f, f.prox(x, step)) == 0.0
    # projections do not depend on the step
    np.testing.assert_array_equal(
        backend.to_numpy(f.prox(x, 0.1)), backend.to_numpy(f.prox(x, 7.0))
    )


def test_traits():
    expected = {  # convex, separable, indicator, smooth
        Zero(): (True, True, False, True),
        NonNegative(): (True, True, True, False),
        Box(): (True, True, True, False),
        ZeroOnMask(MASK): (True, True, True, False),
        L1(): (True, True, False, False),
        L2(): (True, False, False, False),
        SquaredL2(): (True, True, False, True),
        ElasticNet(): (True, True, False, False),
        Huber(): (True, True, False, True),
        L2Ball(): (True, False, True, False),
        LInfBall(): (True, True, True, False),
        Simplex(): (True, False, True, False),
        Box(LOW, HIGH): (True, True, True, False),
        L1Ball(): (True, False, True, False),
        AffineSet(A, B): (True, False, True, False),
        HalfSpace(NORMAL, BETA): (True, False, True, False),
        Scaled(L2Ball(), 3.0): (True, False, True, False),
        Translated(SquaredL2(), 1.0): (True, True, False, True),
        Conjugate(L1()): (True, True, True, False),
        Conjugate(LInfBall()): (True, True, False, False),
        Conjugate(Huber()): (True, True, False, False),
        SeparableSum([NonNegative(), L2Ball()]): (True, False, True, False),
    }
    for f, traits in expected.items():
        assert (f.convex, f.separable, f.indicator, f.smooth) == traits, f


# --- calculus specifics -----------------------------------------------------------------


def test_scaled_and_translated_closed_forms(backend, dtype):
    x_np = np.random.default_rng(8).normal(0, 2, SHAPE)
    x = backend.asarray(x_np, dtype)
    tol = 10 * tolerance(dtype)
    p = Scaled(L1(0.5), 3.0).prox(x, 0.4)
    np.testing.assert_allclose(as64(backend, p), L1(1.5).prox(x_np, 0.4), rtol=tol, atol=tol)
    assert fvalue(backend, Scaled(L1(0.5), 3.0), x) == pytest.approx(
        1.5 * np.abs(x_np).sum(), rel=tol
    )
    shift = _shift(backend, dtype)
    t = Translated(NonNegative(), shift)
    np.testing.assert_allclose(
        as64(backend, t.prox(x)), np.maximum(x_np, SHIFT), rtol=tol, atol=tol
    )
    assert fvalue(backend, Translated(SquaredL2(2.0), shift), x) == pytest.approx(
        np.sum((x_np - SHIFT) ** 2), rel=tol
    )


def test_separable_sum_on_tuples(backend, dtype):
    rng = np.random.default_rng(9)
    a_np, b_np = rng.normal(size=(2, 3)), rng.normal(size=(5,))
    a, b = backend.asarray(a_np, dtype), backend.asarray(b_np, dtype)
    f = SeparableSum([L1(0.3), L2Ball(0.5)])
    pa, pb = f.prox((a, b), 2.0)
    tol = 10 * tolerance(dtype)
    np.testing.assert_allclose(as64(backend, pa), L1(0.3).prox(a_np, 2.0), rtol=tol, atol=tol)
    np.testing.assert_allclose(as64(backend, pb), L2Ball(0.5).prox(b_np), rtol=tol, atol=tol)
    assert fvalue(backend, f, (pa, pb)) == pytest.approx(
        0.3 * np.abs(as64(backend, pa)).sum(), rel=tol
    )
    assert fvalue(backend, f, (a, 10 * b)) == np.inf
    with pytest.raises(ValueError, match="tuple of 2"):
        f.prox((a,))
    with pytest.raises(ValueError, match="tuple of 2"):
        f.value(a)


def test_conjugate_by_moreau_matches_a_hand_derived_prox(backend, dtype):
    """Huber* = |y|²/2 + indicator(|y| ≤ delta) has no registered closed form,
    so its prox goes through the Moreau identity; by hand it is
    clip(x / (1 + step), -delta, delta)."""
    x_np = np.random.default_rng(10).normal(0, 2, SHAPE)
    x = backend.asarray(x_np, dtype)
    tol = 10 * tolerance(dtype)
    for step in STEPS:
        q = Conjugate(Huber(0.6)).prox(x, step)
        expected = np.clip(x_np / (1 + step), -0.6, 0.6)
        np.testing.assert_allclose(as64(backend, q), expected, rtol=tol, atol=tol)


def test_conjugate_value_without_closed_form_raises():
    with pytest.raises(NotImplementedError, match="Huber"):
        Huber().conjugate().value(np.zeros(2))


def test_simplex_projection_batch_and_ties():
    x = np.array([[0.5, 0.5, 0.5], [10.0, 0.0, 0.0], [-1.0, -1.0, 5.0], [0.2, 0.3, 0.5]])
    p = Simplex().prox(x)
    np.testing.assert_allclose(p, [[1 / 3, 1 / 3, 1 / 3], [1, 0, 0], [0, 0, 1], [0.2, 0.3, 0.5]])


# --- (g) parameters ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: L1(-1.0),
        lambda: L2(-0.1),
        lambda: SquaredL2(float("nan")),
        lambda: ElasticNet(-1.0, 1.0),
        lambda: ElasticNet(1.0, -1.0),
        lambda: Huber(0.0),
        lambda: Box(1.0, 0.0),
        lambda: Box(INF, INF),
        lambda: L2Ball(-1.0),
        lambda: LInfBall(INF),
        lambda: Simplex(0.0),
        lambda: Scaled(L1(), 0.0),
        lambda: Translated(L1(), float("nan")),
        lambda: Translated(L1(), np.array([0.0, np.inf])),
        lambda: L1Ball(-1.0),
        lambda: SeparableSum([]),
        lambda: L2().prox(np.array(1.0)),
        lambda: Simplex().prox(np.array(1.0)),
    ],
)
def test_bad_parameters_raise_value_error(make):
    with pytest.raises(ValueError):
        make()


@pytest.mark.parametrize(
    "make",
    [
        lambda: L1("1"),
        lambda: ZeroOnMask(np.ones(3)),
        lambda: ZeroOnMask([True]),
        lambda: Scaled("f", 1.0),
        lambda: Translated(L1(), "a"),
        lambda: Translated(L1(), np.array([1, 2])),
        lambda: SeparableSum([L1(), 3]),
        lambda: Conjugate(np.abs),
    ],
)
def test_bad_types_raise_type_error(make):
    with pytest.raises(TypeError):
        make()


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_bad_step(case):
    f = numpy_instance(case)
    with pytest.raises(ValueError, match="step"):
        f.prox(np.zeros(SHAPE), 0.0)
    assert isinstance(f, ProxFunction)
