r"""
Total-variation denoising of a 1-D signal
=========================================

A piecewise-constant signal ``y`` observed with noise is denoised by

.. math::

    \min_x\; \tfrac12\|x - y\|_2^2 + \lambda\|Dx\|_1,
    \qquad (Dx)_i = x_{i+1} - x_i,

the 1-D total variation (:class:`opsplit.operators.Difference1D`).  The
non-smooth term is ``g(Dx)`` with ``g = λ‖·‖₁``, whose prox is known but not
that of ``g∘D``.  The classical way around is the dual (Chambolle 2004):

.. math::

    x = y - D^\top u,\qquad
    u \in \arg\min_{\|u\|_\infty \le \lambda} \tfrac12\|D^\top u - y\|^2
    \iff 0 \in \underbrace{D(D^\top u - y)}_{A(u)} + N_{\|u\|_\infty \le \lambda}(u),

a box-constrained least-squares problem: forward–backward on it is projected
gradient, step ``1/‖D‖²`` with ``‖D‖ < 2`` known exactly; it needs tens of
thousands of iterations here, and FISTA (with restart), its accelerated form,
about a hundred times fewer.  The primal–dual methods need no dual by hand: on
:class:`opsplit.Composite` ``f(x) + g(Dx)``

* Chambolle–Pock with ``f = ½‖· − y‖²`` and ``g = λ‖·‖₁``, steps
  ``τσ‖D‖² < 1`` (``τ = 0.02``: the default ``τ = σ`` needs ten times more
  iterations here);
* Condat–Vũ with the data term as the smooth part ``h`` (its gradient only);
* ADMM on ``min ½‖x − y‖² + λ‖z‖₁`` subject to ``Dx − z = 0`` (``ρ = 10``),
  with the ``x``-update linearized.

In 1-D the problem has a direct solution: the prox of the total variation,
computed exactly in ``O(n)`` by Condat's algorithm
(:class:`opsplit.prox.TotalVariation1D`), the reference printed here.

The test (``tests/test_gallery.py``) compares the answer with CVXPY.  Run as
a script: ``python examples/plot_tv1d.py [--small]``.
"""

from __future__ import annotations

import argparse
import time

import matplotlib.pyplot as plt
import numpy as np

import opsplit as ops
from opsplit.operators import Difference1D

# %%
# A piecewise-constant signal (a few random jumps) with Gaussian noise.


def make_signal(n: int, seed: int = 0, noise: float = 0.3):
    """``(clean, noisy)``: ``n`` samples, 8 levels, noise of standard deviation ``noise``."""
    rng = np.random.default_rng(seed)
    jumps = np.sort(rng.choice(np.arange(1, n), size=7, replace=False))
    levels = rng.uniform(-2.0, 2.0, 8)
    clean = np.repeat(levels, np.diff(np.concatenate([[0], jumps, [n]])))
    return clean, clean + noise * rng.standard_normal(n)


def objective(y, lam, x) -> float:
    """``½‖x − y‖² + λ‖Dx‖₁``."""
    return 0.5 * float(np.sum((x - y) ** 2)) + lam * float(np.sum(np.abs(np.diff(x))))


# %%
# The methods.  Each returns the denoised signal ``x`` with its solve result.


def solve(y, lam, *, tol=1e-8, maxiter=20_000, tau=0.02):
    """Every method on the TV problem: ``{name: (x, SolveResult)}``."""
    n = y.shape[-1]
    D = Difference1D(n)
    lip = D.norm() ** 2
    data = ops.prox.Translated(ops.prox.SquaredL2(), y)  # ½‖x − y‖²
    l1 = ops.prox.L1(lam)
    x0, u0 = np.zeros(n), np.zeros(n - 1)
    results = {}
    # The dual: u ↦ D(Dᵀu − y) is the gradient of ½‖Dᵀu − y‖².
    dual_grad = ops.Gradient(lambda u: D @ (D.H @ u - y), lipschitz=lip, core_shape=(n - 1,))
    dual = ops.Inclusion(dual_grad, ops.NormalCone(ops.prox.LInfBall(lam)))
    res = ops.solve(dual, ops.FISTA(step=1.0 / lip), u0, tol=tol, maxiter=maxiter)
    results["dual FISTA (restart)"] = (y - D.H @ res.x, res)
    # The primal-dual methods work on g(Dx) directly; a small primal step τ
    # (σ = 0.99/(τ‖D‖²)) suits this problem: f is 1-strongly convex.
    composite = ops.Composite(f=data, g=l1, K=D)
    res = ops.solve(composite, ops.ChambollePock(step=tau), x0, tol=tol,
                    maxiter=maxiter)
    results["Chambolle-Pock"] = (res.x, res)
    smooth = ops.Composite(f=ops.prox.Zero(), g=l1, K=D,
                           smooth=ops.Gradient(lambda x: x - y, lipschitz=1.0))
    res = ops.solve(smooth, ops.CondatVu(step=tau), x0, tol=tol, maxiter=maxiter)
    results["Condat-Vu"] = (res.x, res)
    # ADMM: min ½‖x − y‖² + λ‖z‖₁ subject to Dx − z = 0, with ρ = 1/step.
    constrained = ops.Constrained(data, l1, A=D, norm_A=D.norm())
    res = ops.solve(constrained, ops.ADMM(step=5 * tau), x0, tol=tol, maxiter=maxiter)
    results["ADMM"] = (res.x, res)
    return results


def exact(y, lam):
    """The exact prox of the total variation (Condat's direct algorithm), and its time."""
    tv = ops.prox.TotalVariation1D(lam)
    tv.prox(y[..., :2])  # the first call pays one-off setup costs, not timed
    start = time.perf_counter()
    x = tv.prox(y)
    return x, time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="1-D TV denoising by splitting.")
    parser.add_argument("--small", action="store_true", help="a tiny problem (for tests)")
    args = parser.parse_args(argv)
    n = 200 if args.small else 1000
    clean, y = make_signal(n)
    lam = 2.0
    x_exact, elapsed = exact(y, lam)
    best = objective(y, lam, x_exact)
    print(f"1-D TV denoising, n = {n}, λ = {lam}; noisy error {np.linalg.norm(y - clean):.3g}; "
          f"exact prox: objective {best:.10g} in {1e3 * elapsed:.2f} ms")
    results = solve(y, lam)
    print(f"{'method':<24} {'iterations':>10} {'time [ms]':>10} {'status':<18} "
          f"{'rel. gap':>9} {'‖x − clean‖':>11}")
    ok = True
    for name, (x, res) in results.items():
        f = objective(y, lam, x)
        ok &= res.success and abs(f - best) <= 1e-6 * abs(best)
        print(f"{name:<24} {res.iterations:>10d} {1e3 * res.wall_time:>10.1f} "
              f"{res.status.value:<18} {(f - best) / best:>9.1e} "
              f"{np.linalg.norm(x - clean):>11.3g}")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    x = x_exact
    ax1.plot(y, ".", ms=2, color="0.6", label="noisy")
    ax1.plot(clean, "k", lw=1, label="clean")
    ax1.plot(x, "C3", lw=1.2, label="TV denoised")
    ax1.legend()
    ax1.set_title(f"signal, λ = {lam}")
    ops.plot.residuals([r for _, r in results.values()], labels=list(results), ax=ax2,
                       title="residuals")
    return 0 if ok else 1


if __name__ == "__main__":
    if main():
        raise SystemExit(1)
