r"""opsplit against the other splitting libraries, measured in one run.

Four problems (issue 9, section 5):

* LASSO, ``A`` 500×2000 with unit-norm Gaussian columns, ``λ = 0.1‖Aᵀb‖∞``;
* NNLS, ``A`` 1000×500;
* 1-D total-variation denoising, ``n = 10⁴``;
* the monDEQ inclusion ``z = ReLU(Wz + c)``, ``n = 1000``, a batch of 256.

For every contender — opsplit's methods (with Anderson acceleration), the
solvers of PyProximal (``ProximalGradient``, ``AcceleratedProximalGradient``,
``ADMM``, ``LinearizedADMM``, ``PrimalDual``) and pyunlocbox
(``forward_backward`` as ISTA and FISTA, ``douglas_rachford``,
``chambolle_pock``), and scikit-learn's coordinate descent on the LASSO — it
reports the iterations and the time to a relative objective error
``(F(x) − F*)/|F*| ≤ 1e-8`` (for the monDEQ, the relative fixed-point error
``max_b ‖z − ReLU(Wz + c)‖/‖z‖ ≤ 1e-8``), with setup (factorizations, operator
construction) and solve timed separately, on one BLAS thread
(threadpoolctl), everything in one process.

How "time to 1e-8" is measured, the same way for every library:

1. **Iterations.**  An instrumented run evaluates the error after every
   iteration — through the library's callback (opsplit's ``callback``,
   PyProximal's ``callback(x)``) — and records the first iteration ``k`` at
   which it is at most 1e-8.  pyunlocbox has no per-iteration callback: ``k``
   is found by running it with budgets 1, 2, 4, … iterations until the error
   is reached and then bisecting between the last two budgets (each run from
   scratch; the solvers are deterministic).  scikit-learn's ``Lasso`` is run
   with tolerances 1e-2, 1e-3, …, and the loosest that reaches the error is
   kept; its iterations are coordinate-descent epochs (``n_iter_``).
2. **Time.**  An uninstrumented run of exactly ``k`` iterations (no callback,
   no stopping test: opsplit with ``maxiter=k`` and residuals checked only at
   the end), timed with ``time.perf_counter``; the median of ``--repeats``
   runs.  Setup is timed the same way, apart.

Not run: pyunlocbox's ``douglas_rachford`` on the LASSO and NNLS (its
``norm_l2`` prox with a non-orthogonal ``A`` is an inner iteration, not the
exact resolvent), and ``chambolle_pock`` outside TV; PyProximal's solvers on
the monDEQ beyond forward–backward and ADMM (the operator ``I − W`` is not a
gradient: it is given to them as a custom ``ProxOperator`` whose ``grad`` is
the operator and whose ``prox`` is its factorized resolvent).  PyProximal's
``AcceleratedProximalGradient`` warns that it is deprecated in favour of
``ProximalGradient(acceleration=...)``; it is the same algorithm.

``F*`` is the smallest objective found by high-accuracy solves in the same
run (opsplit's Douglas–Rachford / FISTA to a residual of 1e-13, scikit-learn
to ``tol=1e-15``, SciPy's active-set NNLS, the exact 1-D TV prox), and every
contender's error is measured against it.  A contender that does not reach
1e-8 within ``--maxiter`` iterations is reported as such.

Usage::

    python benchmarks/peers.py            # the full sizes (minutes)
    python benchmarks/peers.py --quick    # tiny sizes, a smoke test (seconds)
    python benchmarks/peers.py --only lasso nnls
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

import opsplit as ops
from opsplit.operators import Difference1D

TARGET = 1e-8


# -- contenders -----------------------------------------------------------------------


@dataclass
class Row:
    problem: str
    library: str
    method: str
    setup: float = math.nan
    iterations: int | None = None
    solve: float = math.nan
    note: str = ""

    @property
    def total(self) -> float:
        return self.setup + self.solve

    @property
    def reached(self) -> bool:
        return self.iterations is not None


class Contender:
    """A solver: ``setup()`` returns a context; ``run(ctx, k, callback)`` does ``k`` iterations.

    ``callback(x)`` (or ``None``) is called after every iteration when the
    library offers a hook (``has_callback``); otherwise iterations are found
    by a budget search.
    """

    has_callback = True

    def __init__(self, library, method, setup, run, has_callback=True):
        self.library, self.method = library, method
        self.setup, self.run, self.has_callback = setup, run, has_callback


class StopIterating(Exception):
    """Raised by the instrumented callback once the target error is reached."""


def first_hit_by_callback(contender, ctx, error, maxiter) -> int | None:
    count = 0
    hit = None

    def callback(x):
        nonlocal count, hit
        count += 1
        if hit is None and error(x) <= TARGET:
            hit = count
            raise StopIterating

    try:
        contender.run(ctx, maxiter, callback)
    except StopIterating:
        pass
    return hit


def first_hit_by_budget(contender, ctx, error, maxiter) -> int | None:
    def reached(k):
        return error(contender.run(ctx, k, None)) <= TARGET

    k = 1
    while not reached(k):
        if k >= maxiter:
            return None
        k = min(2 * k, maxiter)
    lo, hi = k // 2, k  # reached(hi), not reached(lo) (lo = 0 trivially)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if reached(mid) else (mid, hi)
    return hi


def timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def measure(problem, contender, error, *, maxiter, repeats) -> Row:
    row = Row(problem, contender.library, contender.method)
    try:
        row.setup, ctx = timed(contender.setup, repeats)
        find = first_hit_by_callback if contender.has_callback else first_hit_by_budget
        k = find(contender, ctx, error, maxiter)
        if k is None:
            row.note = f"not reached in {maxiter} iterations"
            return row
        row.solve, x = timed(lambda: contender.run(ctx, k, None), repeats)
        row.iterations = k
        if error(x) > TARGET:  # the timed run must reproduce the instrumented one
            row.note = f"timed run's error {error(x):.1e}"
    except Exception as exc:  # a peer that fails is reported, not fatal
        row.note = f"failed: {type(exc).__name__}: {str(exc)[:60]}"
        row.iterations = None
    return row


def opsplit_contender(name, problem, method, x0, solution=lambda x: x):
    """opsplit: setup = ``method.prepare``; ``k`` iterations of ``ops.solve``."""

    def run(prepared, k, callback):
        hook = None if callback is None else (lambda it, res, state: callback(
            solution(state.x)))
        res = ops.solve(problem, method, x0, tol=1e-300, maxiter=k, prepared=prepared,
                        callback=hook, check_every=1 if callback else k, record="checks")
        return solution(res.x)

    return Contender("opsplit", name, lambda: method.prepare(problem), run)


def pyproximal_contender(name, make, solver):
    """PyProximal: ``make()`` builds the proximal operators; ``solver(ctx, k, cb)`` runs."""
    return Contender("PyProximal", name, make, solver)


def unloc_contender(name, make, solver):
    return Contender("pyunlocbox", name, make, solver, has_callback=False)


def unloc_solve(functions, x0, solver, k):
    from pyunlocbox import solvers

    ret = solvers.solve(functions, x0, solver, rtol=None, atol=None, dtol=None, xtol=None,
                        maxit=k, verbosity="NONE")
    return ret["sol"]


# -- LASSO ------------------------------------------------------------------------------


def lasso(rows, m, n, *, maxiter, repeats, seed=0):
    from pylops import MatrixMult
    from pyproximal import L1, L2
    from pyproximal.optimization.primal import (
        ADMM,
        AcceleratedProximalGradient,
        LinearizedADMM,
        ProximalGradient,
    )
    from pyproximal.optimization.primaldual import PrimalDual
    from pyunlocbox import acceleration, functions, solvers
    from sklearn.linear_model import Lasso

    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, n))
    A /= np.linalg.norm(A, axis=0)
    x_true = np.zeros(n)
    support = rng.choice(n, size=max(1, n // 20), replace=False)
    x_true[support] = rng.standard_normal(support.size)
    b = A @ x_true + 0.01 * rng.standard_normal(m)
    lam = 0.1 * float(np.max(np.abs(A.T @ b)))
    L = float(np.linalg.norm(A, 2)) ** 2

    def objective(x):
        r = A @ x - b
        return 0.5 * float(r @ r) + lam * float(np.sum(np.abs(x)))

    # The reference: the best of three tight solves.
    f = ops.prox.LeastSquares(A, b)
    problem = ops.Inclusion(ops.Subdifferential(f), ops.Subdifferential(ops.prox.L1(lam)))
    x0 = np.zeros(n)
    candidates = [
        ops.solve(problem, ops.FISTA(step=1 / L), x0, tol=1e-13, maxiter=200_000).x,
        ops.solve(problem, ops.DouglasRachford(step=3 / L), x0, tol=1e-13, maxiter=200_000).x,
        Lasso(alpha=lam / m, fit_intercept=False, tol=1e-15, max_iter=1_000_000).fit(A, b).coef_,
    ]
    f_star = min(objective(x) for x in candidates)

    def error(x):
        return (objective(x) - f_star) / abs(f_star)

    # The DR/ADMM step: A is wide, so there is no strong convexity to balance; a
    # sweep over {0.3, 1, 3, 10}/L gave the fewest DR iterations at 3/L.  The
    # peers' ADMM gets the same ρ = 1/α.
    alpha = 3.0 / L
    contenders = [
        opsplit_contender("forward-backward", problem, ops.ForwardBackward(step=1 / L), x0),
        opsplit_contender("FB, adaptive step", problem,
                          ops.ForwardBackward(step=1 / L, step_rule="adaptive"), x0),
        opsplit_contender("FISTA (restart)", problem, ops.FISTA(step=1 / L), x0),
        opsplit_contender("Douglas-Rachford", problem, ops.DouglasRachford(step=alpha), x0),
        opsplit_contender("Anderson(DR)", problem,
                          ops.Anderson(ops.DouglasRachford(step=alpha), memory=5), x0),
        opsplit_contender("Anderson(FB)", problem,
                          ops.Anderson(ops.ForwardBackward(step=1 / L), memory=5), x0),
        # Working sets: the inner method on the coordinates that matter (its step
        # relative to the restricted Lipschitz constant, so no L is needed).
        opsplit_contender("WorkingSet(FISTA)", problem, ops.WorkingSet(), x0),
        opsplit_contender("WorkingSet(FB)", problem,
                          ops.WorkingSet(ops.ForwardBackward(step=1.0)), x0),
        opsplit_contender("ADMM", ops.Constrained(f, ops.prox.L1(lam)), ops.ADMM(step=alpha),
                          x0),
        # min λ‖x‖₁ + g(Ax), g = ½‖· − b‖²: PyProximal's PrimalDual, same steps.
        opsplit_contender("Chambolle-Pock", ops.Composite(
            f=ops.prox.L1(lam), g=ops.prox.Translated(ops.prox.SquaredL2(), b), K=ops.Dense(A)),
            ops.ChambollePock(step=0.99 / math.sqrt(L), dual_step=0.99 / math.sqrt(L)), x0),
    ]
    Op = MatrixMult(A)

    def pp_pg(accelerated):
        solver = AcceleratedProximalGradient if accelerated else ProximalGradient
        return pyproximal_contender(
            "AcceleratedProximalGradient" if accelerated else "ProximalGradient",
            lambda: (L2(Op=Op, b=b), L1(sigma=lam)),
            lambda ctx, k, cb: solver(ctx[0], ctx[1], x0=np.zeros(n), tau=1 / L, niter=k,
                                      callback=cb))

    contenders += [
        pp_pg(False),
        pp_pg(True),
        pyproximal_contender(
            "ADMM", lambda: (L2(Op=Op, b=b, densesolver="factorize"), L1(sigma=lam)),
            lambda ctx, k, cb: ADMM(ctx[0], ctx[1], x0=np.zeros(n), tau=alpha, niter=k,
                                    callback=cb)[0]),
        pyproximal_contender(
            "LinearizedADMM (τ = 1)", lambda: (L1(sigma=lam), L2(b=b)),
            lambda ctx, k, cb: LinearizedADMM(ctx[0], ctx[1], Op, x0=np.zeros(n), tau=1.0,
                                              mu=0.99 / L, niter=k, callback=cb)[0]),
        pyproximal_contender(
            "LinearizedADMM (τ = α)", lambda: (L1(sigma=lam), L2(b=b)),
            lambda ctx, k, cb: LinearizedADMM(ctx[0], ctx[1], Op, x0=np.zeros(n), tau=alpha,
                                              mu=0.99 * alpha / L, niter=k, callback=cb)[0]),
        pyproximal_contender(
            "PrimalDual", lambda: (L1(sigma=lam), L2(b=b)),
            lambda ctx, k, cb: PrimalDual(ctx[0], ctx[1], Op, x0=np.zeros(n),
                                          tau=0.99 / math.sqrt(L), mu=0.99 / math.sqrt(L),
                                          niter=k, callback=cb)),
    ]

    def unloc_fb(accel, label):
        return unloc_contender(
            label,
            lambda: [functions.norm_l1(lambda_=lam),
                     functions.norm_l2(A=A, y=b, lambda_=0.5)],
            lambda ctx, k, cb: unloc_solve(ctx, np.zeros(n),
                                           solvers.forward_backward(step=1 / L, accel=accel()),
                                           k))

    contenders += [unloc_fb(acceleration.dummy, "forward_backward (ISTA)"),
                   unloc_fb(acceleration.fista, "forward_backward (FISTA)")]
    for c in contenders:
        rows.append(measure("LASSO", c, error, maxiter=maxiter, repeats=repeats))
    rows.append(sklearn_lasso(A, b, lam, error, repeats))


def sklearn_lasso(A, b, lam, error, repeats) -> Row:
    from sklearn.linear_model import Lasso

    row = Row("LASSO", "scikit-learn", "Lasso (coordinate descent)")
    for tol in 10.0 ** -np.arange(2, 16):
        model = Lasso(alpha=lam / A.shape[0], fit_intercept=False, tol=tol, max_iter=100_000)
        if error(model.fit(A, b).coef_) <= TARGET:
            row.setup = 0.0
            row.solve, fitted = timed(lambda m=model: m.fit(A, b), repeats)
            row.iterations = int(fitted.n_iter_)
            row.note = f"tol={tol:.0e}"
            return row
    row.note = "not reached"
    return row


# -- NNLS -------------------------------------------------------------------------------


def nnls(rows, m, n, *, maxiter, repeats, seed=1):
    from pylops import MatrixMult
    from pyproximal import L2, Box
    from pyproximal.optimization.primal import (
        ADMM,
        AcceleratedProximalGradient,
        LinearizedADMM,
        ProximalGradient,
    )
    from pyproximal.optimization.primaldual import PrimalDual
    from pyunlocbox import acceleration, functions, solvers
    from scipy.optimize import nnls as scipy_nnls

    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, n)) / np.sqrt(m)
    b = A @ np.maximum(rng.standard_normal(n), 0.0) + 0.5 * rng.standard_normal(m)
    s = np.linalg.svd(A, compute_uv=False)
    mu, L = float(s[-1]) ** 2, float(s[0]) ** 2

    def objective(x):
        r = A @ np.maximum(x, 0.0) - b  # infeasible iterates are projected first
        return 0.5 * float(r @ r)

    f = ops.prox.LeastSquares(A, b)
    nonneg = ops.prox.NonNegative()
    problem = ops.Inclusion(ops.Subdifferential(f), ops.NormalCone(nonneg))
    x0 = np.zeros(n)
    f_star = min(objective(scipy_nnls(A, b, maxiter=50 * n)[0]),
                 objective(ops.solve(problem, ops.DouglasRachford(step=1 / math.sqrt(mu * L)),
                                     x0, tol=1e-14, maxiter=100_000).x))

    def error(x):
        return (objective(x) - f_star) / abs(f_star)

    alpha = 1.0 / math.sqrt(mu * L)
    contenders = [
        opsplit_contender("forward-backward", problem, ops.ForwardBackward(step=1 / L), x0),
        opsplit_contender("FISTA (restart)", problem, ops.FISTA(step=1 / L), x0),
        opsplit_contender("Peaceman-Rachford", problem, ops.PeacemanRachford(step=alpha), x0),
        opsplit_contender("Douglas-Rachford", problem, ops.DouglasRachford(step=alpha), x0),
        opsplit_contender("Anderson(DR)", problem,
                          ops.Anderson(ops.DouglasRachford(step=alpha), memory=5), x0),
        opsplit_contender("WorkingSet(FISTA)", problem, ops.WorkingSet(), x0),
        opsplit_contender("ADMM", ops.Constrained(f, nonneg), ops.ADMM(step=alpha), x0),
        opsplit_contender("Chambolle-Pock", ops.Composite(
            f=nonneg, g=ops.prox.Translated(ops.prox.SquaredL2(), b), K=ops.Dense(A)),
            ops.ChambollePock(step=0.99 / math.sqrt(L), dual_step=0.99 / math.sqrt(L)), x0),
    ]
    Op = MatrixMult(A)
    box = lambda: Box(lower=0.0)  # noqa: E731
    contenders += [
        pyproximal_contender(
            "ProximalGradient", lambda: (L2(Op=Op, b=b), box()),
            lambda ctx, k, cb: ProximalGradient(ctx[0], ctx[1], x0=np.zeros(n), tau=1 / L,
                                                niter=k, callback=cb)),
        pyproximal_contender(
            "AcceleratedProximalGradient", lambda: (L2(Op=Op, b=b), box()),
            lambda ctx, k, cb: AcceleratedProximalGradient(ctx[0], ctx[1], x0=np.zeros(n),
                                                           tau=1 / L, niter=k, callback=cb)),
        pyproximal_contender(
            "ADMM", lambda: (L2(Op=Op, b=b, densesolver="factorize"), box()),
            lambda ctx, k, cb: ADMM(ctx[0], ctx[1], x0=np.zeros(n), tau=alpha, niter=k,
                                    callback=cb)[0]),
        pyproximal_contender(
            "LinearizedADMM", lambda: (box(), L2(b=b)),
            lambda ctx, k, cb: LinearizedADMM(ctx[0], ctx[1], Op, x0=np.zeros(n), tau=alpha,
                                              mu=0.99 * alpha / L, niter=k, callback=cb)[0]),
        pyproximal_contender(
            "PrimalDual", lambda: (box(), L2(b=b)),
            lambda ctx, k, cb: PrimalDual(ctx[0], ctx[1], Op, x0=np.zeros(n),
                                          tau=0.99 / math.sqrt(L), mu=0.99 / math.sqrt(L),
                                          niter=k, callback=cb)),
    ]

    def unloc_fb(accel, label):
        return unloc_contender(
            label,
            lambda: [functions.proj_positive(), functions.norm_l2(A=A, y=b, lambda_=0.5)],
            lambda ctx, k, cb: unloc_solve(ctx, np.zeros(n),
                                           solvers.forward_backward(step=1 / L, accel=accel()),
                                           k))

    contenders += [unloc_fb(acceleration.dummy, "forward_backward (ISTA)"),
                   unloc_fb(acceleration.fista, "forward_backward (FISTA)")]
    for c in contenders:
        rows.append(measure("NNLS", c, error, maxiter=maxiter, repeats=repeats))


# -- 1-D total variation ----------------------------------------------------------------


def tv1d(rows, n, *, maxiter, repeats, seed=2):
    import scipy.sparse as sp
    from pylops import MatrixMult
    from pyproximal import L1, L2
    from pyproximal.optimization.primal import LinearizedADMM
    from pyproximal.optimization.primaldual import PrimalDual
    from pyunlocbox import functions, solvers

    rng = np.random.default_rng(seed)
    jumps = np.sort(rng.choice(np.arange(1, n), size=max(2, n // 500), replace=False))
    levels = rng.uniform(-2.0, 2.0, jumps.size + 1)
    y = np.repeat(levels, np.diff(np.concatenate([[0], jumps, [n]])))
    y = y + 0.3 * rng.standard_normal(n)
    lam = 2.0

    def objective(x):
        return 0.5 * float(np.sum((x - y) ** 2)) + lam * float(np.sum(np.abs(np.diff(x))))

    x_exact = ops.prox.TotalVariation1D(lam).prox(y)
    f_star = objective(x_exact)

    def error(x):
        return (objective(x) - f_star) / abs(f_star)

    D = Difference1D(n)
    normD2 = D.norm() ** 2
    data = ops.prox.Translated(ops.prox.SquaredL2(), y)
    l1 = ops.prox.L1(lam)
    x0 = np.zeros(n)
    tau = 0.02  # primal step; σ = 0.99/(τ‖D‖²)
    dual_grad = ops.Gradient(lambda u: D @ (D.H @ u - y), lipschitz=normD2, core_shape=(n - 1,))
    dual = ops.Inclusion(dual_grad, ops.NormalCone(ops.prox.LInfBall(lam)))
    contenders = [
        # A direct method: its one "iteration" is the exact prox (the budget search
        # finds k = 1).
        Contender("opsplit", "prox.TotalVariation1D (direct)", lambda: None,
                  lambda ctx, k, cb: ops.prox.TotalVariation1D(lam).prox(y), has_callback=False),
        opsplit_contender("Chambolle-Pock", ops.Composite(f=data, g=l1, K=D),
                          ops.ChambollePock(step=tau), x0),
        opsplit_contender("Condat-Vu", ops.Composite(
            f=ops.prox.Zero(), g=l1, K=D, smooth=ops.Gradient(lambda x: x - y, lipschitz=1.0)),
            ops.CondatVu(step=tau), x0),
        opsplit_contender("ADMM", ops.Constrained(data, l1, A=D, norm_A=D.norm()),
                          ops.ADMM(step=5 * tau), x0),
        opsplit_contender("dual FISTA (restart)", dual, ops.FISTA(step=1 / normD2),
                          np.zeros(n - 1), solution=lambda u: y - D.H @ u),
    ]
    Dsp = sp.diags([-np.ones(n - 1), np.ones(n - 1)], [0, 1], shape=(n - 1, n), format="csr")
    Op = MatrixMult(Dsp)
    sigma = 0.99 / (tau * normD2)
    contenders += [
        pyproximal_contender(
            "PrimalDual", lambda: (L2(b=y), L1(sigma=lam)),
            lambda ctx, k, cb: PrimalDual(ctx[0], ctx[1], Op, x0=np.zeros(n), tau=tau, mu=sigma,
                                          niter=k, callback=cb)),
        pyproximal_contender(
            "LinearizedADMM", lambda: (L2(b=y), L1(sigma=lam)),
            lambda ctx, k, cb: LinearizedADMM(ctx[0], ctx[1], Op, x0=np.zeros(n), tau=5 * tau,
                                              mu=0.99 * 5 * tau / normD2, niter=k,
                                              callback=cb)[0]),
        unloc_contender(
            "chambolle_pock",
            lambda: [functions.norm_l2(y=y, lambda_=0.5), functions.norm_l1(lambda_=lam)],
            lambda ctx, k, cb: unloc_solve(
                ctx, np.zeros(n),
                # pyunlocbox bounds both steps by 2: σ = 2, τ = 0.99/(σ‖D‖²).
                solvers.chambolle_pock(L=lambda x: Dsp @ x, Lt=lambda u: Dsp.T @ u,
                                       tau=0.99 / (2.0 * normD2), sigma=2.0), k)),
    ]
    for c in contenders:
        rows.append(measure("TV 1-D", c, error, maxiter=maxiter, repeats=repeats))


# -- the monDEQ inclusion ---------------------------------------------------------------


def mondeq(rows, n, batch, *, maxiter, repeats, seed=3, margin=0.5):
    import scipy.linalg as sla
    from pyproximal import Box, ProxOperator
    from pyproximal.optimization.primal import ADMM, ProximalGradient
    from pyunlocbox import acceleration, functions, solvers

    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, n)) * (0.5 / np.sqrt(n))
    bm = rng.standard_normal((n, n)) * (0.5 / np.sqrt(n))
    W = (1.0 - margin) * np.eye(n) - a.T @ a + bm - bm.T
    M = np.eye(n) - W
    C = rng.standard_normal((batch, n))
    lip = float(np.linalg.norm(M, 2))
    fb_step = margin / lip**2

    def error(z):
        Z = np.reshape(z, (batch, n))
        r = np.linalg.norm(Z - np.maximum(Z @ W.T + C, 0.0), axis=1)
        return float(np.max(r / np.maximum(np.linalg.norm(Z, axis=1), 1e-300)))

    F = ops.LinearMonotone(ops.Dense(M), -C, lipschitz=lip, strong_monotonicity=margin)
    problem = ops.Inclusion(F, ops.Subdifferential(ops.prox.NonNegative()))
    z0 = np.zeros((batch, n))
    pr, fb = ops.PeacemanRachford(step=1.0), ops.ForwardBackward(step=fb_step)
    contenders = [
        opsplit_contender("forward-backward", problem, fb, z0),
        opsplit_contender("Peaceman-Rachford", problem, pr, z0),
        opsplit_contender("Douglas-Rachford", problem, ops.DouglasRachford(step=1.0), z0),
        opsplit_contender("Anderson(PR)", problem, ops.Anderson(pr, memory=5), z0),
        opsplit_contender("Anderson(FB)", problem, ops.Anderson(fb, memory=5), z0),
    ]

    class Affine(ProxOperator):
        """F(z) = Mz − c on the flattened batch: ``grad`` = F, ``prox`` = its resolvent."""

        def __init__(self, step):
            super().__init__(None, True)
            self.lu = sla.lu_factor(np.eye(n) + step * M) if step else None
            self.step = step

        def __call__(self, x):
            return 0.0

        def grad(self, x):
            return (np.reshape(x, (batch, n)) @ M.T - C).ravel()

        def prox(self, x, tau):
            # (I + τM)⁻¹(x + τc), factorized at setup for τ = step.
            assert tau == self.step
            rhs = np.reshape(x, (batch, n)) + tau * C
            return sla.lu_solve(self.lu, rhs.T).T.ravel()

    zf = np.zeros(batch * n)
    contenders += [
        pyproximal_contender(
            "ProximalGradient", lambda: (Affine(None), Box(lower=0.0)),
            lambda ctx, k, cb: ProximalGradient(ctx[0], ctx[1], x0=zf.copy(), tau=fb_step,
                                                niter=k, callback=cb)),
        pyproximal_contender(
            "ADMM (= Douglas-Rachford)", lambda: (Affine(1.0), Box(lower=0.0)),
            lambda ctx, k, cb: ADMM(ctx[0], ctx[1], x0=zf.copy(), tau=1.0, niter=k,
                                    callback=cb)[0]),
    ]

    class UnlocForward(functions.func):
        """F(z) = Mz − c as pyunlocbox's smooth term (``_grad``)."""

        def _eval(self, x):
            return 0.0

        def _grad(self, x):
            return x @ M.T - C

    class UnlocResolvent(functions.func):
        """The resolvent (I + M)⁻¹(x + c) as pyunlocbox's ``_prox`` (step 1, factorized)."""

        def __init__(self):
            super().__init__()
            self.lu = sla.lu_factor(np.eye(n) + M)

        def _eval(self, x):
            return 0.0

        def _prox(self, x, T):
            assert T == 1.0
            return sla.lu_solve(self.lu, (x + C).T).T

    contenders += [
        unloc_contender(
            "forward_backward (ISTA)",
            lambda: [functions.proj_positive(), UnlocForward()],
            lambda ctx, k, cb: unloc_solve(ctx, np.zeros((batch, n)), solvers.forward_backward(
                step=fb_step, accel=acceleration.dummy()), k)),
        unloc_contender(
            "douglas_rachford",
            lambda: [UnlocResolvent(), functions.proj_positive()],
            lambda ctx, k, cb: unloc_solve(ctx, np.zeros((batch, n)),
                                           solvers.douglas_rachford(step=1.0, lambda_=1.0), k)),
    ]
    for c in contenders:
        rows.append(measure("monDEQ", c, error, maxiter=maxiter, repeats=repeats))


# -- report -----------------------------------------------------------------------------


def table(rows) -> str:
    """The measured rows as a Markdown table."""
    lines = ["| problem | library | method | setup [s] | iterations | solve [s] | total [s] "
             "| note |", "|---|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        its = str(r.iterations) if r.reached else "—"
        solve = f"{r.solve:.4f}" if r.reached else "—"
        total = f"{r.total:.4f}" if r.reached else "—"
        lines.append(f"| {r.problem} | {r.library} | {r.method} | {r.setup:.4f} | {its} | "
                     f"{solve} | {total} | {r.note} |")
    return "\n".join(lines)


def ratios(rows) -> str:
    """opsplit's best total time against each peer's (> 1: opsplit is faster)."""
    lines = ["| problem | opsplit best | time [s] | peer | peer time [s] | peer / opsplit |",
             "|---|---|---:|---|---:|---:|"]
    for problem in dict.fromkeys(r.problem for r in rows):
        mine = [r for r in rows if r.problem == problem and r.library == "opsplit" and r.reached]
        if not mine:
            continue
        best = min(mine, key=lambda r: r.total)
        for r in rows:
            if r.problem == problem and r.library != "opsplit" and r.reached:
                lines.append(f"| {problem} | {best.method} | {best.total:.4f} | {r.library} "
                             f"{r.method} | {r.total:.4f} | {r.total / best.total:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--only", nargs="*", default=["lasso", "nnls", "tv", "mondeq"],
                        choices=["lasso", "nnls", "tv", "mondeq"])
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (median)")
    parser.add_argument("--maxiter", type=int, default=None)
    args = parser.parse_args(argv)
    quick = args.quick
    repeats = args.repeats or (1 if quick else 3)
    maxiter = args.maxiter or (3000 if quick else 20_000)
    rows: list[Row] = []
    # threadpoolctl limits the BLAS libraries loaded when it is called: load the
    # peers' (SciPy's own OpenBLAS among them) first.
    import pylops  # noqa: F401
    import pyproximal  # noqa: F401
    import pyunlocbox  # noqa: F401
    import scipy.linalg  # noqa: F401
    import scipy.optimize  # noqa: F401
    import sklearn.linear_model  # noqa: F401

    with threadpool_limits(1), warnings.catch_warnings():
        # Peers warn about, e.g., their own deprecations; opsplit's warnings stay visible.
        warnings.filterwarnings("ignore", module="pyproximal|pylops|pyunlocbox|sklearn")
        print(f"Time to relative error {TARGET:g} (monDEQ: fixed-point error), one BLAS "
              f"thread, median of {repeats} timed run(s); "
              f"{'quick sizes' if quick else 'full sizes'}.", flush=True)
        problems = {
            "lasso": lambda: lasso(rows, *((50, 200) if quick else (500, 2000)),
                                   maxiter=maxiter, repeats=repeats),
            "nnls": lambda: nnls(rows, *((100, 50) if quick else (1000, 500)),
                                 maxiter=maxiter, repeats=repeats),
            "tv": lambda: tv1d(rows, 300 if quick else 10_000, maxiter=maxiter,
                               repeats=repeats),
            "mondeq": lambda: mondeq(rows, *((40, 8) if quick else (1000, 256)),
                                     maxiter=maxiter, repeats=repeats),
        }
        start = time.perf_counter()
        for name in args.only:
            before = len(rows)
            try:
                problems[name]()
            except Exception as exc:  # a failed problem must not lose the others
                print(f"\n{name}: failed: {type(exc).__name__}: {exc}", flush=True)
            # Each problem's rows as soon as they are measured.
            print("\n" + table(rows[before:]), flush=True)
        elapsed = time.perf_counter() - start
    print("\nopsplit's best method against each peer (total = setup + solve):\n")
    print(ratios(rows))
    print(f"\nbenchmark wall time {elapsed:.1f} s")
    return 0 if any(r.library == "opsplit" and r.reached for r in rows) else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
