r"""
A matrix game by Tseng's method
===============================

Two players choose mixed strategies ``x ∈ Δₘ`` and ``y ∈ Δₙ`` (probability
simplices); the first pays ``xᵀAy`` to the second.  A Nash equilibrium is a
saddle point of

.. math::

    \min_{x \in \Delta_m} \max_{y \in \Delta_n}\; x^\top A y
    \iff 0 \in \underbrace{\begin{pmatrix} 0 & A \\ -A^\top & 0 \end{pmatrix}
    \begin{pmatrix} x \\ y \end{pmatrix}}_{F(z)}
    + N_{\Delta_m \times \Delta_n}(z).

``F`` is monotone and ``‖A‖``-Lipschitz but skew: ``⟨F(z) − F(w), z − w⟩ = 0``,
so it is not cocoercive and forward–backward does not converge (it circles
the saddle point).  Tseng's forward–backward–forward method corrects the
forward step with a second evaluation of ``F``,

.. math::

    \bar z = P\bigl(z - \alpha F(z)\bigr),\qquad
    z^{+} = \bar z - \alpha\bigl(F(\bar z) - F(z)\bigr),

and converges for ``α < 1/‖A‖``.  The same saddle point is
``min_x ι_Δ(x) + g(Aᵀx)`` with ``g(v) = max_j v_j``, the conjugate of the
simplex's indicator: Chambolle–Pock solves that form.

The value of the game is checked against the linear program
``min t : Aᵀx ≤ t, x ∈ Δ`` (:func:`scipy.optimize.linprog`).  Run as a
script: ``python examples/plot_matrix_game.py [--small]``.
"""

from __future__ import annotations

import argparse

import matplotlib.pyplot as plt
import numpy as np
from scipy.optimize import linprog

import opsplit as ops

# %%
# A random payoff matrix, and the product of two simplices as one proximable
# function on the stacked vector ``z = (x, y)``.


def make_game(m: int, n: int, seed: int = 0):
    """A Gaussian ``m × n`` payoff matrix."""
    return np.random.default_rng(seed).standard_normal((m, n))


class TwoSimplices(ops.prox.ProxFunction):
    """Indicator of ``Δₘ × Δₙ`` on ``z = (x, y)`` stacked; its prox projects each part."""

    indicator = True

    def __init__(self, m: int):
        self.m = m
        self.simplex = ops.prox.Simplex()

    def value(self, z):
        return self.simplex.value(z[..., : self.m]) + self.simplex.value(z[..., self.m:])

    def prox(self, z, step=1.0):
        return np.concatenate([self.simplex.prox(z[..., : self.m]),
                               self.simplex.prox(z[..., self.m:])], axis=-1)


def game_value(A) -> float:
    """The value ``min_x max_y xᵀAy`` by linear programming."""
    m, n = A.shape
    # Variables (x, t): minimize t subject to Aᵀx - t ≤ 0, Σx = 1, x ≥ 0.
    c = np.r_[np.zeros(m), 1.0]
    res = linprog(c, A_ub=np.c_[A.T, -np.ones(n)], b_ub=np.zeros(n),
                  A_eq=np.r_[np.ones(m), 0.0][None], b_eq=[1.0],
                  bounds=[(0, None)] * m + [(None, None)], method="highs")
    return float(res.fun)


def duality_gap(A, x, y) -> float:
    """``max_j (Aᵀx)_j − min_i (Ay)_i ≥ 0``, zero exactly at an equilibrium."""
    return float(np.max(x @ A) - np.min(A @ y))


def solve(A, *, tol=1e-8, maxiter=20_000):
    """Tseng's method and Chambolle–Pock: ``{name: ((x, y), SolveResult)}``."""
    m, n = A.shape
    norm = float(np.linalg.norm(A, 2))
    skew = np.block([[np.zeros((m, m)), A], [-A.T, np.zeros((n, n))]])
    F = ops.LinearMonotone(ops.Dense(skew), np.zeros(m + n), lipschitz=norm)
    problem = ops.Inclusion(F, ops.NormalCone(TwoSimplices(m)))
    z0 = np.r_[np.full(m, 1.0 / m), np.full(n, 1.0 / n)]
    res = ops.solve(problem, ops.Tseng(step=0.95 / norm), z0, tol=tol, maxiter=maxiter)
    results = {"Tseng, α = 0.95/‖A‖": ((res.x[:m], res.x[m:]), res)}
    # min_x ι_Δ(x) + max_j (Aᵀx)_j: K = Aᵀ, g = (ι_Δ)*, the dual variable is y.
    composite = ops.Composite(f=ops.prox.Simplex(), g=ops.prox.Conjugate(ops.prox.Simplex()),
                              K=ops.Dense(A.T))
    res = ops.solve(composite, ops.ChambollePock(), z0[:m], tol=tol, maxiter=maxiter)
    results["Chambolle-Pock"] = ((res.x, ops.ChambollePock.dual(res.state)), res)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="A matrix game by Tseng's method.")
    parser.add_argument("--small", action="store_true", help="a tiny game (for tests)")
    args = parser.parse_args(argv)
    m, n = (8, 6) if args.small else (30, 20)
    A = make_game(m, n)
    value = game_value(A)
    print(f"matrix game {m}×{n}: value by linear programming {value:.10f}")
    results = solve(A)
    print(f"{'method':<20} {'iterations':>10} {'time [ms]':>10} {'status':<18} "
          f"{'value':>13} {'duality gap':>11}")
    ok = True
    for name, ((x, y), res) in results.items():
        gap = duality_gap(A, x, y)
        ok &= res.success and abs(x @ A @ y - value) < 1e-6 and gap < 1e-6
        print(f"{name:<20} {res.iterations:>10d} {1e3 * res.wall_time:>10.1f} "
              f"{res.status.value:<18} {x @ A @ y:>13.10f} {gap:>11.1e}")
    fig, ax = plt.subplots(figsize=(6.0, 4.0), layout="constrained")
    ops.plot.residuals([r for _, r in results.values()], labels=list(results), ax=ax,
                       title=f"matrix game {m}×{n}")
    return 0 if ok else 1


if __name__ == "__main__":
    if main():
        raise SystemExit(1)
