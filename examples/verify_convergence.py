r"""
Verifying and studying convergence
==================================

The figures of ``docs/verifying.rst``, in four parts, each printing what it checks:

1. **Checks on operators** — the adjoint test, exact margins (dense and FFT
   convolution), monotonicity of a nonlinear map by sampling and search,
   firm nonexpansiveness of a prox, each on a valid and a broken input.
2. **Certificates** — a random strongly monotone problem solved by
   forward–backward, Peaceman–Rachford and Douglas–Rachford at a loose
   tolerance: the a-posteriori error bound next to the true error.
3. **Rates** — the fitted rate of each run next to its theoretical bound,
   and the residual curves (``verify_residuals.png``, ``verify_rates.png``).
4. **monDEQ** — a classifier trained for a few epochs on the mnist-sample
   data (or read from ``--checkpoint``): its certificate, certified
   robustness radii, and the step-size study of Winston & Kolter's Figure 3
   (``verify_sweep.png``).

Usage::

    python examples/verify_convergence.py                   # figures in docs/_static
    python examples/verify_convergence.py --out /tmp/figs --epochs 1
    python examples/verify_convergence.py --checkpoint runs/last.npz

The exit status is 0 when every check behaved as expected (valid inputs
pass, broken inputs fail, every bound holds), 1 otherwise.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from pathlib import Path

if __name__ == "__main__":
    # Single-threaded BLAS: the matrices here are small, and threaded BLAS on a
    # busy machine is orders of magnitude slower for them.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import opsplit as ops  # noqa: E402
from opsplit import diagnostics as dg  # noqa: E402
from opsplit import plot  # noqa: E402
from opsplit.operators.conv import Conv2dFFT  # noqa: E402
from opsplit.prox.functions import L1, NonNegative  # noqa: E402

FAILURES: list[str] = []


def expect(ok: bool, what: str) -> None:
    print(f"  [{'ok' if ok else 'UNEXPECTED'}] {what}")
    if not ok:
        FAILURES.append(what)


def part1_checks(rng) -> None:
    print("\n1. Checks on operators")
    M = rng.standard_normal((6, 6))

    class WrongAdjoint(ops.Dense):
        def rmatvec(self, y):
            return y @ self.matrix.T  # forgets the transpose

    expect(dg.check_adjoint(ops.Dense(M)).passed, "dot test passes on Dense")
    expect(not dg.check_adjoint(WrongAdjoint(M)).passed, "dot test fails on a wrong adjoint")

    K = 0.3 * rng.standard_normal((2, 2, 3, 3))
    conv = Conv2dFFT(K, (8, 8))
    imw = ops.Identity((2, 8, 8)) - conv
    m = dg.margin(imw)
    D = imw.to_dense()
    print(f"  margin of I - W (W a 2-channel 8x8 convolution): {m.describe()}")
    expect(
        abs(m - np.linalg.eigvalsh((D + D.T) / 2).min()) < 1e-10,
        "per-frequency margin equals eigvalsh of the 128x128 dense matrix",
    )
    print(f"  norm: {dg.opnorm(imw).describe()}")

    n = 60
    v = np.zeros(n)
    v[7] = 1.0

    def bumpy(x):  # monotone except along v near x·v = 0
        return x - np.tanh(2.0 * (x @ v))[..., None] * v

    op = ops.Gradient(bumpy, core_shape=(n,))
    found = dg.check_monotone(op, np.zeros(n))
    blind = dg.check_monotone(op, np.zeros(n), samples=found.evaluations, search_steps=0)
    print(f"  sampling + search: {found}")
    print(f"  sampling alone, same budget: {blind}")
    expect(not found.passed and blind.passed, "the search finds the hidden non-monotonicity")

    def expansive(x):
        return 1.2 * L1(0.3).prox(x)

    expect(
        dg.check_firmly_nonexpansive(L1(0.3), np.zeros(8)).passed,
        "prox of 0.3·‖x‖₁ is firmly nonexpansive",
    )
    expect(
        not dg.check_firmly_nonexpansive(expansive, np.zeros(8)).passed,
        "1.2 × soft thresholding is not",
    )


def random_problem(rng, n=40, batch=8):
    G = rng.standard_normal((n, n)) / math.sqrt(n)
    S = rng.standard_normal((n, n)) / math.sqrt(n)
    M = 0.2 * np.eye(n) + 0.5 * G.T @ G + 1.5 * (S - S.T)
    op = ops.Dense(M)
    m, L = float(dg.margin(op)), float(dg.opnorm(op))
    c = rng.standard_normal((batch, n))
    F = ops.LinearMonotone(op, c, lipschitz=L, strong_monotonicity=m)
    return ops.Inclusion(F, ops.Subdifferential(NonNegative())), m, L


def part2_certificates(rng):
    print("\n2. Certificates")
    prob, m, L = random_problem(rng)
    x0 = np.zeros((8, 40))
    ref = ops.solve(prob, ops.PeacemanRachford(1 / L), x0, tol=1e-14, maxiter=20000).x
    methods = {
        "FB": ops.ForwardBackward(dg.suggest_step(m, L, "fb")),
        "PR": ops.PeacemanRachford(dg.suggest_step(m, L, "pr")),
        "DR": ops.DouglasRachford(dg.suggest_step(m, L, "dr")),
    }
    print(
        f"  m = {m:.3f}, L = {L:.3f}; steps from suggest_step: "
        + ", ".join(f"{k} {meth.step:.4g}" for k, meth in methods.items())
    )
    runs = {}
    for label, meth in methods.items():
        res = ops.solve(prob, meth, x0, tol=1e-5, maxiter=5000)
        err = np.linalg.norm(res.x - ref, axis=-1)
        runs[label] = (meth, res)
        print(
            f"  {label}: {res.iterations:4d} iterations, max error {err.max():.2e}, "
            f"max bound {res.error_bound.max():.2e} (bound/error ≤ "
            f"{np.max(res.error_bound / err):.1f})"
        )
        expect(bool(np.all(err <= res.error_bound)), f"{label} error bound holds per sample")
    print(f"  {runs['PR'][1].uniqueness}")
    return prob, m, L, runs


def part3_rates(prob, m, L, runs, out: Path):
    print("\n3. Rates")
    x0 = np.zeros((8, 40))
    # Long runs (to 1e-12, not part 2's 1e-5) so that the fit sees a long tail.
    long_runs = {
        label: (meth, ops.solve(prob, meth, x0, tol=1e-12, maxiter=20000))
        for label, (meth, _) in runs.items()
    }
    comparisons = [
        dg.compare_rate(res, meth, m, L, label=k) for k, (meth, res) in long_runs.items()
    ]
    # The same runs judged against a margin overstated ten times: the measured
    # rates are slower than that margin's worst case, which contradicts it.
    wrong = [
        dg.compare_rate(res, meth, min(L, 10 * m), L, label=f"{k}, m×10")
        for k, (meth, res) in long_runs.items()
    ]
    print("  " + dg.rate_table(comparisons + wrong).replace("\n", "\n  "))
    expect(all(c.consistent for c in comparisons), "every measured rate is at most its bound")
    expect(not all(c.consistent for c in wrong), "an overstated margin is flagged")

    # Forward-backward far above its safe range 2m/L²: shown failing, not hidden.
    fb_big = ops.ForwardBackward(2.0 / L)
    big = ops.solve(prob, fb_big, x0, tol=1e-5, maxiter=500)
    expect(not big.success, f"FB at α = 2/L = {fb_big.step:.3g} fails ({big.status.value})")
    results = [runs[k][1] for k in runs] + [big]
    labels = [f"{k} (α={runs[k][0].step:.3g})" for k in runs] + [f"FB (α={fb_big.step:.3g})"]
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    plot.residuals(results, labels, ax=ax1, title="against iterations")
    plot.residuals(results, labels, against="time", ax=ax2, title="against time")
    fig.savefig(out / "verify_residuals.png", dpi=100)
    plot.rates(comparisons + wrong, title="measured vs. theoretical rate").savefig(
        out / "verify_rates.png", dpi=100
    )


def part4_mondeq(args, out: Path) -> None:
    from opsplit import nn
    from opsplit.nn.cli_study import findings, step_grid

    print("\n4. monDEQ")
    data = nn.load_dataset("mnist-sample")
    if args.checkpoint:
        model, params, _ = nn.load_classifier(args.checkpoint)
    else:
        model = nn.Classifier.dense(in_features=data.features, width=87)
        params = model.init_params(seed=0, dtype="float32")
        with tempfile.TemporaryDirectory() as tmp:
            hist = nn.fit(
                model,
                params,
                data,
                epochs=args.epochs,
                checkpoint_dir=tmp,
                progress=False,
                config={"dataset": "mnist-sample"},
            )
        model, params = hist.model, hist.params
        print(f"  trained {args.epochs} epochs: test accuracy {hist.test_accuracy:.1%}")
    cert = nn.certify_classifier(model, params)
    print("  " + cert.summary().replace("\n", "\n  "))
    expect(cert.margin_check.passed, "λ_min(sym(I - W)) >= m")
    x, y = data.x_test[:256], data.y_test[:256]
    rc = nn.robustness_radii(model, params, x, cert=cert)
    print("  " + rc.summary(labels=y, scale=data.std, unit="pixel units").replace("\n", "\n  "))
    # The paper's α ∈ {1, ..., 1/64}, extended past twice FB's bound 2m/L².
    steps = step_grid(7, None, float(cert.margin), float(cert.lipschitz))
    study = nn.mondeq_step_study(
        model, params, x[:128], steps=steps, tol=1e-4, maxiter=500, cert=cert
    )
    print("  " + study.table().replace("\n", "\n  "))
    for line in findings(study):
        print(f"  {line}")
    (_, n_pr), (_, n_fb) = study.best("PR"), study.best("FB")
    expect(
        n_pr is not None and n_fb is not None and n_pr < n_fb,
        "PR at its best α needs fewer iterations than FB at its best α",
    )
    expect(study.failure_threshold("FB") is not None, "FB fails above a threshold")
    plot.step_sweep(study, title="iterations to 1e-4, trained monDEQ (mnist-sample)").savefig(
        out / "verify_sweep.png", dpi=100
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("=")[0].strip())
    parser.add_argument(
        "--out",
        default=str(Path(__file__).parent.parent / "docs" / "_static"),
        help="directory for the figures (default docs/_static)",
    )
    parser.add_argument("--epochs", type=int, default=3, help="training epochs (default 3)")
    parser.add_argument(
        "--checkpoint", default=None, help="use this trained checkpoint instead of training"
    )
    parser.add_argument("--skip-mondeq", action="store_true", help="parts 1-3 only")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    part1_checks(rng)
    prob, m, L, runs = part2_certificates(rng)
    part3_rates(prob, m, L, runs, out)
    if not args.skip_mondeq:
        part4_mondeq(args, out)
    print(f"\nfigures written to {out}")
    if FAILURES:
        print(f"{len(FAILURES)} unexpected outcome(s): {FAILURES}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
