r"""
Nonnegative least squares
=========================

.. math::

    \min_{x \ge 0}\; \tfrac12\|Kx - b\|_2^2
    \iff 0 \in \underbrace{K^\top(Kx - b)}_{A(x)} + \underbrace{N_{x \ge 0}(x)}_{B(x)},

whose resolvent of ``B`` is the projection ``max(x, 0)``.  With more rows than
columns ``KᵀK`` is positive definite, so ``A`` is ``μ``-strongly monotone and
``L``-Lipschitz (``μ``, ``L`` the extreme eigenvalues of ``KᵀK``):

* forward–backward (projected gradient) and FISTA with restart, step ``1/L``;
* Peaceman–Rachford and Douglas–Rachford with ``α = 1/√(μL)``: the resolvent
  of ``A`` is a Cholesky solve with ``I + αKᵀK``, factorized once
  (:class:`opsplit.prox.LeastSquares`), and Douglas–Rachford with
  safeguarded Anderson acceleration (memory 5);
* ADMM on ``min f(x) + ι₊(z)`` subject to ``x = z``, with ``ρ = 1/α``.

The reference is the active-set method of Lawson and Hanson,
:func:`scipy.optimize.nnls`.  Run as a script:
``python examples/plot_nnls.py [--small]``.
"""

from __future__ import annotations

import argparse
import time

import matplotlib.pyplot as plt
import numpy as np
from scipy.optimize import nnls

import opsplit as ops

# %%
# A Gaussian design, and a right-hand side from a nonnegative vector plus
# noise, so that the constraint is active on some coordinates.


def make_data(n_rows: int, n_cols: int, seed: int = 0):
    """``K`` (``n_rows × n_cols``, Gaussian) and ``b``."""
    rng = np.random.default_rng(seed)
    K = rng.standard_normal((n_rows, n_cols)) / np.sqrt(n_rows)
    x_true = np.maximum(rng.standard_normal(n_cols), 0.0)
    b = K @ x_true + 0.5 * rng.standard_normal(n_rows)
    return K, b


def objective(K, b, x) -> float:
    r = K @ x - b
    return 0.5 * float(r @ r)


def solve(K, b, *, tol=1e-10, maxiter=20_000):
    """Every method on the NNLS problem: ``{name: SolveResult}``."""
    f = ops.prox.LeastSquares(K, b)
    nonneg = ops.prox.NonNegative()
    problem = ops.Inclusion(ops.Subdifferential(f), ops.NormalCone(nonneg))
    s = np.linalg.svd(K, compute_uv=False)
    mu, lip = float(s[-1]) ** 2, float(s[0]) ** 2
    alpha = 1.0 / np.sqrt(mu * lip)
    runs = {
        "forward-backward": (problem, ops.ForwardBackward(step=1.0 / lip)),
        "FISTA (restart)": (problem, ops.FISTA(step=1.0 / lip)),
        "Peaceman-Rachford": (problem, ops.PeacemanRachford(step=alpha)),
        "Douglas-Rachford": (problem, ops.DouglasRachford(step=alpha)),
        "Anderson(DR)": (problem, ops.Anderson(ops.DouglasRachford(step=alpha), memory=5)),
        "ADMM": (ops.Constrained(f, nonneg), ops.ADMM(step=alpha)),
    }
    x0 = np.zeros(K.shape[1])
    return {name: ops.solve(prob, m, x0, tol=tol, maxiter=maxiter)
            for name, (prob, m) in runs.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="NNLS by splitting.")
    parser.add_argument("--small", action="store_true", help="a tiny problem (for tests)")
    args = parser.parse_args(argv)
    shape = (80, 40) if args.small else (1000, 500)
    K, b = make_data(*shape)
    start = time.perf_counter()
    x_ref, _ = nnls(K, b, maxiter=50 * shape[1])
    elapsed = time.perf_counter() - start
    f_ref = objective(K, b, x_ref)
    print(f"NNLS {shape[0]}×{shape[1]}: scipy.optimize.nnls objective {f_ref:.12g} "
          f"in {1e3 * elapsed:.1f} ms ({np.count_nonzero(x_ref)} positive entries)")
    results = solve(K, b)
    print(f"{'method':<18} {'iterations':>10} {'time [ms]':>10} {'status':<18} "
          f"{'rel. gap':>9} {'max |x - x_ref|':>15}")
    ok = True
    for name, res in results.items():
        gap = (objective(K, b, res.x) - f_ref) / f_ref
        err = float(np.max(np.abs(res.x - x_ref)))
        ok &= res.success and abs(gap) < 1e-9
        print(f"{name:<18} {res.iterations:>10d} {1e3 * res.wall_time:>10.1f} "
              f"{res.status.value:<18} {gap:>9.1e} {err:>15.2e}")
    fig, ax = plt.subplots(figsize=(6.0, 4.0), layout="constrained")
    ops.plot.residuals(list(results.values()), labels=list(results), ax=ax,
                       title=f"NNLS, {shape[0]}×{shape[1]}")
    return 0 if ok else 1


if __name__ == "__main__":
    if main():
        raise SystemExit(1)
