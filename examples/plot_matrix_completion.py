r"""
Matrix completion with the nuclear norm
=======================================

A low-rank matrix ``M`` is observed on a random set ``Ω`` of its entries;
the nuclear norm (the sum of the singular values, the convex envelope of the
rank on the spectral-norm ball) fills in the rest:

.. math::

    \min_X\; \tfrac12\|P_\Omega(X - M)\|_F^2 + \lambda\|X\|_*
    \iff 0 \in \underbrace{P_\Omega(X - M)}_{A(X)} + \partial(\lambda\|\cdot\|_*)(X),

with :math:`P_\Omega` the mask.  The prox of the nuclear norm soft-thresholds
the singular values (one SVD; :class:`opsplit.prox.NuclearNorm`); ``A`` is
affine, diagonal and 1-Lipschitz, with the resolvent
``(I + αP_Ω)⁻¹(Y + αP_Ω M)``, an entrywise division.

* forward–backward with step 1 ("singular value thresholding" of Cai,
  Candès and Shen, 2010) and FISTA with restart;
* Douglas–Rachford with step 1.

The test (``tests/test_gallery.py``) compares the answer with CVXPY on a
small instance.  Run as a script:
``python examples/plot_matrix_completion.py [--small]``.
"""

from __future__ import annotations

import argparse

import matplotlib.pyplot as plt
import numpy as np

import opsplit as ops

# %%
# A random rank-``r`` matrix, and a mask keeping each entry with probability
# ``observed``.


def make_data(m: int, n: int, rank: int, observed: float, seed: int = 0):
    """``(M, mask)``: a rank-``rank`` ``m × n`` matrix and a 0/1 mask."""
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((m, rank)) @ rng.standard_normal((rank, n))
    mask = (rng.random((m, n)) < observed).astype(np.float64)
    return M, mask


def objective(M, mask, lam, X) -> float:
    """``½‖P_Ω(X − M)‖² + λ‖X‖_*``."""
    return (0.5 * float(np.sum((mask * (X - M)) ** 2))
            + lam * float(np.sum(np.linalg.svd(X, compute_uv=False))))


def solve(M, mask, lam, *, tol=1e-8, maxiter=5000):
    """Every method on the matrix-completion problem: ``{name: SolveResult}``."""
    data = ops.LinearMonotone(ops.Diagonal(mask), -mask * M, lipschitz=1.0)
    problem = ops.Inclusion(data, ops.Subdifferential(ops.prox.NuclearNorm(lam)))
    methods = {
        "forward-backward": ops.ForwardBackward(step=1.0),
        "FISTA (restart)": ops.FISTA(step=1.0),
        "Douglas-Rachford": ops.DouglasRachford(step=1.0),
    }
    X0 = np.zeros_like(M)
    return {name: ops.solve(problem, method, X0, tol=tol, maxiter=maxiter)
            for name, method in methods.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Matrix completion by splitting.")
    parser.add_argument("--small", action="store_true", help="a tiny problem (for tests)")
    args = parser.parse_args(argv)
    m, n, rank = (20, 15, 2) if args.small else (120, 100, 4)
    M, mask = make_data(m, n, rank, observed=0.4)
    lam = 1.0
    results = solve(M, mask, lam)
    best = min(objective(M, mask, lam, r.x) for r in results.values())
    print(f"matrix completion: {m}×{n}, rank {rank}, {int(mask.sum())} observed entries, "
          f"λ = {lam}")
    print(f"{'method':<18} {'iterations':>10} {'time [ms]':>10} {'status':<18} "
          f"{'objective':>14} {'rank':>4} {'rel. error':>10}")
    ok = True
    for name, res in results.items():
        f = objective(M, mask, lam, res.x)
        s = np.linalg.svd(res.x, compute_uv=False)
        err = np.linalg.norm(res.x - M) / np.linalg.norm(M)
        ok &= res.success and abs(f - best) <= 1e-6 * best
        print(f"{name:<18} {res.iterations:>10d} {1e3 * res.wall_time:>10.1f} "
              f"{res.status.value:<18} {f:>14.8g} {int(np.sum(s > 1e-6 * s[0])):>4d} "
              f"{err:>10.2e}")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    ops.plot.residuals(list(results.values()), labels=list(results), ax=ax1,
                       title="residuals")
    X = results["FISTA (restart)"].x
    ax2.semilogy(np.linalg.svd(M, compute_uv=False), "ko", ms=4, label="M")
    ax2.semilogy(np.linalg.svd(X, compute_uv=False), "C3.", label="completed")
    ax2.set_ylim(1e-3, None)
    ax2.set_xlabel("index")
    ax2.set_title("singular values")
    ax2.legend()
    return 0 if ok else 1


if __name__ == "__main__":
    if main():
        raise SystemExit(1)
