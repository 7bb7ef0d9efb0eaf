r"""
LASSO and elastic net
=====================

The LASSO and the elastic net,

.. math::

    \min_x\; \tfrac12\|Kx - b\|_2^2 + \lambda_1\|x\|_1 + \tfrac{\lambda_2}{2}\|x\|_2^2
    \iff 0 \in \underbrace{K^\top(Kx - b)}_{A(x)}
    + \underbrace{\partial\bigl(\lambda_1\|x\|_1 + \tfrac{\lambda_2}{2}\|x\|_2^2\bigr)}_{B(x)},

(``λ₂ = 0``: the LASSO) are solved on a Gaussian design by

* forward–backward (ISTA): ``A`` evaluated, step ``1/L`` with ``L = ‖K‖₂²``
  (below the cocoercivity bound ``2/L``), and the resolvent of ``B``, soft
  thresholding; also with the adaptive step of Malitsky and Mishchenko,
  which needs no ``L``;
* FISTA with adaptive (gradient) restart, step ``1/L``;
* Peaceman–Rachford and Douglas–Rachford: the resolvent of ``A``,
  ``(I + αKᵀK)⁻¹(y + αKᵀb)``, factorized once, with ``α = 1/√(μL)`` (``μ``
  and ``L`` the extreme eigenvalues of ``KᵀK``: the step that balances the
  two resolvents).  The design has more samples than features, so ``A`` is
  strongly monotone, which Peaceman–Rachford needs;
* Douglas–Rachford with safeguarded Anderson acceleration (memory 5);
* ADMM on ``min f(x) + g(z)`` subject to ``x = z``, with ``ρ = 1/α``;
* for the elastic net, also Davis–Yin on three operators, the two penalties'
  proxes apart and the gradient of the data term, step ``1/L < 2/L``.

The script prints the iterations, time and objective of each method next to
scikit-learn's coordinate descent (:class:`sklearn.linear_model.Lasso` and
:class:`~sklearn.linear_model.ElasticNet`, whose ``alpha`` scales the
quadratic by ``1/n_samples``), and draws the residual curves.

Run it as a script: ``python examples/plot_lasso.py [--small] [--out DIR]``;
the exit status is 0 when every method reaches scikit-learn's objective
(relative gap below 1e-8).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.linear_model import ElasticNet, Lasso

import opsplit as ops

# %%
# The data: a Gaussian design with normalized columns, a sparse ground truth
# and noisy observations; ``λ₁`` is a tenth of ``‖Kᵀb‖∞``, the smallest value
# at which the solution is zero.


def make_data(n_samples: int, n_features: int, seed: int = 0):
    """``K`` (unit-norm columns), ``b`` and ``λ₁ = 0.1‖Kᵀb‖∞``."""
    rng = np.random.default_rng(seed)
    K = rng.standard_normal((n_samples, n_features))
    K /= np.linalg.norm(K, axis=0)
    x_true = np.zeros(n_features)
    support = rng.choice(n_features, size=max(1, n_features // 10), replace=False)
    x_true[support] = rng.standard_normal(support.size) * 3.0
    b = K @ x_true + 0.05 * rng.standard_normal(n_samples)
    lam = 0.1 * float(np.max(np.abs(K.T @ b)))
    return K, b, lam


def objective(K, b, l1, l2, x) -> float:
    """``½‖Kx − b‖² + λ₁‖x‖₁ + (λ₂/2)‖x‖²``."""
    r = K @ x - b
    return 0.5 * float(r @ r) + l1 * float(np.sum(np.abs(x))) + 0.5 * l2 * float(x @ x)


# %%
# The splitting methods.  The smooth part is :class:`opsplit.prox.LeastSquares`:
# its subdifferential both evaluates (the gradient, for forward–backward and
# FISTA) and resolves (through a Cholesky factorization of ``I + αKᵀK`` done
# once, for the Rachford methods and ADMM).


def solve(K, b, l1, l2=0.0, *, tol=1e-10, maxiter=20_000):
    """Every method on ``½‖Kx − b‖² + λ₁‖x‖₁ + (λ₂/2)‖x‖²``: ``{name: SolveResult}``."""
    f = ops.prox.LeastSquares(K, b)
    g = ops.prox.ElasticNet(l1, l2) if l2 > 0 else ops.prox.L1(l1)
    problem = ops.Inclusion(ops.Subdifferential(f), ops.Subdifferential(g))
    s = np.linalg.svd(K, compute_uv=False)
    mu, lip = float(s[-1]) ** 2, float(s[0]) ** 2
    alpha = 1.0 / np.sqrt(max(mu, 1e-3 * lip) * lip)
    runs = {
        "forward-backward": (problem, ops.ForwardBackward(step=1.0 / lip)),
        "FB, adaptive step": (problem, ops.ForwardBackward(step=1.0 / lip, step_rule="adaptive")),
        "FISTA (restart)": (problem, ops.FISTA(step=1.0 / lip, restart=True)),
        "Peaceman-Rachford": (problem, ops.PeacemanRachford(step=alpha)),
        "Douglas-Rachford": (problem, ops.DouglasRachford(step=alpha)),
        "Anderson(DR)": (problem, ops.Anderson(ops.DouglasRachford(step=alpha), memory=5)),
        # min f(x) + g(z) subject to x - z = 0; ADMM's step is 1/ρ.
        "ADMM": (ops.Constrained(f, g), ops.ADMM(step=alpha)),
    }
    if l2 > 0:
        # Three operators: the two proxes apart and the gradient of f (1/L-cocoercive).
        three = ops.Inclusion(ops.Subdifferential(ops.prox.L1(l1)),
                              ops.Subdifferential(ops.prox.SquaredL2(l2)),
                              ops.Subdifferential(f))
        runs["Davis-Yin"] = (three, ops.DavisYin(step=1.0 / lip))
    x0 = np.zeros(K.shape[1])
    return {name: ops.solve(prob, method, x0, tol=tol, maxiter=maxiter)
            for name, (prob, method) in runs.items()}


# %%
# The reference: scikit-learn's coordinate descent, with its scaling undone
# (``alpha·ρ = λ₁/n_samples``, ``alpha·(1 − ρ) = λ₂/n_samples``).


def sklearn_solution(K, b, l1, l2=0.0):
    """scikit-learn's LASSO (``l2 = 0``) or elastic net, converged tightly."""
    n = K.shape[0]
    if l2 == 0:
        model = Lasso(alpha=l1 / n, fit_intercept=False, tol=1e-14, max_iter=200_000)
    else:
        model = ElasticNet(alpha=(l1 + l2) / n, l1_ratio=l1 / (l1 + l2), fit_intercept=False,
                           tol=1e-14, max_iter=200_000)
    return model.fit(K, b).coef_


def report(results, value, f_ref) -> bool:
    """Print iterations, time, objective and gap per method; all within 1e-8?"""
    print(f"{'method':<20} {'iterations':>10} {'time [ms]':>10} {'status':<18} "
          f"{'objective':>16} {'rel. gap':>9}")
    ok = True
    for name, res in results.items():
        f = value(res.x)
        gap = (f - f_ref) / abs(f_ref)
        ok &= res.success and abs(gap) < 1e-8
        print(f"{name:<20} {res.iterations:>10d} {1e3 * res.wall_time:>10.1f} "
              f"{res.status.value:<18} {f:>16.10g} {gap:>9.1e}")
    return ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="LASSO and elastic net by splitting.")
    parser.add_argument("--small", action="store_true", help="a tiny problem (for tests)")
    parser.add_argument("--out", default=None, help="also save the figure in this folder")
    args = parser.parse_args(argv)
    shape = (60, 40) if args.small else (400, 300)
    K, b, lam = make_data(*shape)

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    ok = True
    for ax, (label, l1, l2) in zip(axes, [("LASSO", lam, 0.0), ("elastic net", lam, lam)]):
        start = time.perf_counter()
        x_ref = sklearn_solution(K, b, l1, l2)
        elapsed = time.perf_counter() - start
        f_ref = objective(K, b, l1, l2, x_ref)
        print(f"\n{label}: {shape[0]}×{shape[1]}, λ₁ = {l1:.4g}, λ₂ = {l2:.4g}; scikit-learn "
              f"objective {f_ref:.10g} in {1e3 * elapsed:.1f} ms "
              f"({np.count_nonzero(x_ref)} nonzeros)")
        results = solve(K, b, l1, l2)
        ok &= report(results, lambda x, l1=l1, l2=l2: objective(K, b, l1, l2, x), f_ref)
        ops.plot.residuals(list(results.values()), labels=list(results), ax=ax, title=label)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        fig.savefig(Path(args.out) / "lasso_residuals.png", dpi=100)
    if not ok:
        print("FAILED: a method did not reach scikit-learn's objective")
    return 0 if ok else 1


if __name__ == "__main__":
    if main():
        raise SystemExit(1)
