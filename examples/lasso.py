r"""LASSO by forward–backward, Peaceman–Rachford and Douglas–Rachford.

Solves

.. math::

    \min_x\; \tfrac12\|Kx - b\|^2 + \lambda\|x\|_1
    \iff 0 \in \underbrace{K^\top(Kx - b)}_{A(x)} + \underbrace{\partial(\lambda\|x\|_1)}_{B(x)}

on random data with three methods:

* forward–backward (ISTA): ``A = Gradient(x ↦ Kᵀ(Kx - b))`` evaluated, with
  Lipschitz constant ``‖K‖₂²`` and step ``1/‖K‖₂²`` (below the cocoercivity
  bound ``2/‖K‖₂²``), and ``B = Subdifferential(prox.L1(λ))``, whose
  resolvent is soft thresholding;
* Peaceman–Rachford and Douglas–Rachford: ``A = LinearMonotone(Dense(KᵀK), -Kᵀb)``,
  whose resolvent ``(I + αKᵀK)⁻¹(y + αKᵀb)`` is precomputed once, with the
  step ``α = 1/√(μL)`` (``μ, L`` the extreme eigenvalues of ``KᵀK``).  The data
  have more samples than features, so ``KᵀK`` is positive definite and ``A``
  strongly monotone, which Peaceman–Rachford needs.

It prints the iterations of each method and compares the objective with
scikit-learn's coordinate-descent :class:`sklearn.linear_model.Lasso`
(whose ``alpha`` is ``λ / n_samples``: it scales the quadratic by
``1/n_samples``), then writes a semilog plot of the residual histories.

Usage::

    python examples/lasso.py --out out          # 400 samples, 300 features
    python examples/lasso.py --small --out out  # a few milliseconds

The exit status is 0 when every method converged to scikit-learn's
objective (relative gap below 1e-8), 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import opsplit as ops


def make_data(n_samples: int, n_features: int, seed: int = 0):
    """A Gaussian design, a sparse ground truth and noisy observations."""
    rng = np.random.default_rng(seed)
    K = rng.standard_normal((n_samples, n_features)) / np.sqrt(n_samples)
    x_true = np.zeros(n_features)
    support = rng.choice(n_features, size=max(1, n_features // 10), replace=False)
    x_true[support] = rng.standard_normal(support.size) * 3.0
    b = K @ x_true + 0.05 * rng.standard_normal(n_samples)
    lam = 0.1 * float(np.max(np.abs(K.T @ b)))
    return K, b, lam


def objective(K, b, lam, x) -> float:
    return 0.5 * float(np.sum((K @ x - b) ** 2)) + lam * float(np.sum(np.abs(x)))


def sklearn_solution(K, b, lam):
    """Coordinate descent reference; ``alpha = λ / n_samples`` matches the scaling."""
    from sklearn.linear_model import Lasso

    model = Lasso(alpha=lam / K.shape[0], fit_intercept=False, tol=1e-12, max_iter=100_000)
    return model.fit(K, b).coef_


def solve_all(K, b, lam, *, tol: float, maxiter: int):
    """Run the three methods; return ``{name: (method, result)}``."""
    n = K.shape[1]
    gram = K.T @ K
    eig = np.linalg.eigvalsh(gram)
    mu, lip = float(eig[0]), float(eig[-1])
    l1 = ops.Subdifferential(ops.prox.L1(lam))
    x0 = np.zeros(n)

    smooth = ops.Gradient(lambda x: (x @ K.T - b) @ K, lipschitz=lip, core_shape=(n,))
    fb = ops.ForwardBackward(step=1.0 / lip)
    affine = ops.LinearMonotone(ops.Dense(gram), -(K.T @ b), lipschitz=lip, strong_monotonicity=mu)
    alpha = 1.0 / np.sqrt(mu * lip)
    runs = {
        "forward-backward": (fb, ops.Inclusion(smooth, l1)),
        "Peaceman-Rachford": (ops.PeacemanRachford(step=alpha), ops.Inclusion(affine, l1)),
        "Douglas-Rachford": (ops.DouglasRachford(step=alpha), ops.Inclusion(affine, l1)),
    }
    return {
        name: (method, ops.solve(problem, method, x0, tol=tol, maxiter=maxiter))
        for name, (method, problem) in runs.items()
    }


def plot(results, path: Path, title: str) -> None:
    """Semilog residual histories (:func:`opsplit.plot.residuals`) written to ``path``."""
    runs = [res for _, res in results.values()]
    fig = ops.plot.residuals(runs, labels=list(results), title=title)
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="LASSO by three splitting methods.")
    parser.add_argument("--out", default="out", help="folder for the PNG (created)")
    parser.add_argument("--small", action="store_true", help="a tiny problem (for tests)")
    parser.add_argument("--tol", type=float, default=1e-10, help="relative residual tolerance")
    parser.add_argument("--maxiter", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    n_samples, n_features = (60, 40) if args.small else (400, 300)
    K, b, lam = make_data(n_samples, n_features, args.seed)
    x_ref = sklearn_solution(K, b, lam)
    f_ref = objective(K, b, lam, x_ref)
    print(
        f"LASSO: {n_samples} samples, {n_features} features, lambda = {lam:.4g}; "
        f"scikit-learn objective {f_ref:.10g} ({np.count_nonzero(x_ref)} nonzeros)"
    )

    results = solve_all(K, b, lam, tol=args.tol, maxiter=args.maxiter)
    print(
        f"{'method':<18} {'step':>9} {'iterations':>10} {'status':<18} "
        f"{'objective':>16} {'rel. gap':>9}"
    )
    ok = True
    for name, (method, res) in results.items():
        f = objective(K, b, lam, res.x)
        gap = (f - f_ref) / abs(f_ref)
        ok &= res.success and abs(gap) < 1e-8
        print(
            f"{name:<18} {method.step:>9.3g} {res.iterations:>10d} {res.status.value:<18} "
            f"{f:>16.10g} {gap:>9.1e}"
        )

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "lasso_residuals.png"
    plot(results, path, f"LASSO, {n_samples}×{n_features}")
    print(f"wrote {path}")
    if not ok:
        print("FAILED: a method did not converge to the reference objective")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
