"""Per-iteration overhead of the splitting methods on the monDEQ inclusion.

The problem is the equilibrium of a dense monDEQ layer (Winston & Kolter,
NeurIPS 2020) for a batch of inputs:

    0 ∈ F(z) + N_{z ≥ 0}(z),   F(z) = (I - W) z - c,
    W = (1 - m) I - AᵀA + B - Bᵀ,

with ``n`` hidden units and a batch of ``batch`` right-hand sides ``c``.
For each method the script measures, in the same run and with interleaved
repetitions (medians over repetitions):

* ``bare``: the work any implementation must do per iteration — one batched
  product ``z @ Mᵀ`` (forward–backward, ``M = I - W``) or ``u @ Rᵀ`` with the
  precomputed resolvent ``R = (I + α M)⁻¹`` (Peaceman–Rachford,
  Douglas–Rachford), plus the prox (ReLU);
* ``update``: ``method.update`` called in a bare Python loop (the method's
  own arithmetic, without the driver);
* ``solve``: :func:`opsplit.solve` with ``maxiter=K`` and a tolerance it
  never reaches, its whole wall time divided by ``K`` (validation, start and
  result included), with residuals copied to the host every iteration
  (``check_every=1``) and once at the end (``check_every=K``), and with
  ``record="checks"`` (``check_every=K``: no residual between checks).

The ratio ``solve / bare`` is the overhead factor (target ≤ 1.2).  The
script also solves to a relative residual of ``--tol`` (1e-8 in float64,
1e-5 in float32, whose machine epsilon is 1.2e-7) and reports iterations and
time per method.

Usage::

    python benchmarks/core.py                      # NumPy, float64, n=1000, batch 256
    python benchmarks/core.py --dtype float32
    python benchmarks/core.py --backend cupy       # needs CuPy and a GPU
    python benchmarks/core.py --n 200 --batch 32 --repeats 3   # quick look
    python benchmarks/core.py --threads 1          # BLAS threads (default: the library's)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

import opsplit as ops
from opsplit._backend import namespace, to_numpy


def get_namespace(backend: str):
    """The array namespace and a synchronisation function for ``backend``."""
    if backend == "numpy":
        return namespace(np.zeros(1)), lambda: None
    if backend == "cupy":
        import cupy

        return namespace(cupy.zeros(1)), cupy.cuda.get_current_stream().synchronize
    raise ValueError(f"backend must be 'numpy' or 'cupy', got {backend!r}")


def mondeq_matrices(n: int, m: float, seed: int):
    """``M = I - W`` (float64, host) for a random monDEQ ``W`` with margin ``m``."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, n)) * (0.5 / np.sqrt(n))
    b = rng.standard_normal((n, n)) * (0.5 / np.sqrt(n))
    w = (1.0 - m) * np.eye(n) - a.T @ a + b - b.T
    return np.eye(n) - w


def build(xp, n: int, batch: int, m: float, dtype: str, seed: int):
    """The inclusion, its matrix ``M`` on the backend and host constants."""
    m_host = mondeq_matrices(n, m, seed)
    lipschitz = float(np.linalg.norm(m_host, 2))
    c_host = np.random.default_rng(seed + 1).standard_normal((batch, n))
    M = xp.asarray(m_host, dtype=getattr(xp, dtype))
    c = xp.asarray(c_host, dtype=getattr(xp, dtype))
    F = ops.LinearMonotone(ops.Dense(M), -c, lipschitz=lipschitz)
    G = ops.Subdifferential(ops.prox.NonNegative())
    return ops.Inclusion(F, G), M, c, lipschitz


def bare_matrix(xp, M, method) -> object:
    """The matrix the bare work multiplies by: ``M`` for a method that evaluates
    ``A`` (forward–backward), ``(I + αM)⁻¹`` for one that applies its resolvent."""
    if not issubclass(method.requires[0], ops.ResolventOperator):
        return M
    eye = xp.eye(M.shape[0], dtype=M.dtype)
    return xp.linalg.inv(eye + method.step * M)


def time_loop(fn, k: int, sync) -> float:
    """Seconds per call of ``fn`` over ``k`` calls, synchronised at both ends."""
    sync()
    t0 = time.perf_counter()
    for _ in range(k):
        fn()
    sync()
    return (time.perf_counter() - t0) / k


def measure(xp, sync, problem, method, M, c, *, iters: int, repeats: int):
    """Median per-iteration seconds of bare work, update loop and solve, and
    the median of the paired ratios solve/bare."""
    prepared = method.prepare(problem)
    x0 = xp.zeros_like(c)
    mat_t = xp.matrix_transpose(bare_matrix(xp, M, method))

    def bare():
        xp.maximum(xp.matmul(c, mat_t), 0.0)

    def update_loop():
        state = method.init(prepared, x0)
        for _ in range(iters):
            state = method.update(prepared, state)

    def solve(check_every, record="every"):
        return ops.solve(
            problem,
            method,
            x0,
            tol=1e-300,
            maxiter=iters,
            prepared=prepared,
            check_every=check_every,
            record=record,
            divergence_ratio=1e300,
        )

    for warm in (bare, update_loop, lambda: solve(1)):  # warm-up
        warm()
    samples = {"bare": [], "update": [], "solve1": [], "solveK": [], "solveKc": []}
    for _ in range(repeats):
        samples["bare"].append(time_loop(bare, iters, sync))
        samples["update"].append(time_loop(update_loop, 1, sync) / iters)
        samples["solve1"].append(time_loop(lambda: solve(1), 1, sync) / iters)
        samples["solveK"].append(time_loop(lambda: solve(iters), 1, sync) / iters)
        samples["solveKc"].append(time_loop(lambda: solve(iters, "checks"), 1, sync) / iters)
    med = {k: statistics.median(v) for k, v in samples.items()}
    for key in ("update", "solve1", "solveK", "solveKc"):
        med["ratio_" + key] = statistics.median(
            s / b for s, b in zip(samples[key], samples["bare"], strict=True)
        )
    return med, prepared


def time_to_tol(xp, sync, problem, method, c, *, tol: float, maxiter: int, repeats: int):
    """Solve to ``tol`` ``repeats`` times; return the last result, the median
    seconds of the solve (precomputation excluded) and of the precomputation."""
    t_solve, t_prepare = [], []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        prepared = method.prepare(problem)
        sync()
        t1 = time.perf_counter()
        res = ops.solve(
            problem, method, xp.zeros_like(c), tol=tol, maxiter=maxiter, prepared=prepared
        )
        sync()
        t_solve.append(time.perf_counter() - t1)
        t_prepare.append(t1 - t0)
        if not res.success:  # no point in repeating a solve that hits maxiter
            break
    return res, statistics.median(t_solve), statistics.median(t_prepare)


def fixed_point_error(xp, M, c, z) -> float:
    """``max |z - ReLU(W z + c)|`` with ``W z = z - M z``: the monDEQ equation."""
    w_z = z - xp.matmul(z, xp.matrix_transpose(M))
    return float(to_numpy(xp.max(xp.abs(z - xp.maximum(w_z + c, 0.0)))))


def profile_ops(xp, sync, M, c, *, iters: int, repeats: int):
    """Median milliseconds of the primitive operations an iteration is made of."""
    a, b = c, xp.maximum(c, 0.0)
    mat_t = xp.matrix_transpose(M)
    batch = xp.ones(c.shape[0], dtype=c.dtype)
    ops_to_time = {
        "matmul z @ Mᵀ": lambda: xp.matmul(a, mat_t),
        "prox (ReLU)": lambda: xp.maximum(a, 0.0),
        "a - b": lambda: a - b,
        "2a - b (reflect)": lambda: 2.0 * a - b,
        "s·a + b (axpy)": lambda: 0.5 * a + b,
        "row norms² (vecdot)": lambda: xp.vecdot(a, b, axis=-1),
        "batch sqrt/div/max": lambda: xp.max(xp.sqrt(batch) / (xp.sqrt(batch) + 1e-16)),
        "host copy of 2 scalars": lambda: to_numpy(xp.stack([xp.max(batch), xp.min(batch)])),
    }
    samples = {name: [] for name in ops_to_time}
    for _ in range(repeats):
        for name, fn in ops_to_time.items():
            samples[name].append(time_loop(fn, iters, sync) * 1e3)
    return {name: statistics.median(v) for name, v in samples.items()}


def methods(m: float, lipschitz: float):
    fb_step = m / lipschitz**2  # half the bound 2m/L²
    return [
        ("FB", ops.ForwardBackward(step=fb_step)),
        ("PR", ops.PeacemanRachford(step=1.0)),
        ("DR", ops.DouglasRachford(step=1.0)),
    ]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1000, help="hidden units (default 1000)")
    p.add_argument("--batch", type=int, default=256, help="batch size (default 256)")
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    p.add_argument("--margin", type=float, default=0.5, help="monotonicity margin m")
    p.add_argument("--iters", type=int, default=50, help="iterations K per timing")
    p.add_argument("--repeats", type=int, default=9, help="interleaved repetitions")
    p.add_argument(
        "--tol", type=float, default=None, help="target relative residual (1e-8; 1e-5 in float32)"
    )
    p.add_argument("--maxiter", type=int, default=5000, help="for the solve to --tol")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", action="store_true", help="also time the primitive operations")
    p.add_argument("--threads", type=int, default=None,
                   help="BLAS threads (threadpoolctl); default: the library's own")
    args = p.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be >= 1")
    with threadpool_limits(limits=args.threads, user_api="blas"):
        return run(args)


def _blas_threads() -> str:
    counts = sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})
    return ", ".join(map(str, counts)) or "no BLAS found"


def run(args) -> int:
    if args.tol is None:
        args.tol = 1e-8 if args.dtype == "float64" else 1e-5

    xp, sync = get_namespace(args.backend)
    problem, M, c, lipschitz = build(xp, args.n, args.batch, args.margin, args.dtype, args.seed)
    print(
        f"monDEQ inclusion: n={args.n}, batch={args.batch}, {args.dtype}, backend={args.backend}, "
        f"m={args.margin}, L=‖I-W‖₂={lipschitz:.3f}; K={args.iters} iterations, "
        f"{args.repeats} interleaved repetitions (medians); "
        f"opsplit from {Path(ops.__file__).parent}"
    )
    load = os.getloadavg()
    print(f"BLAS threads {_blas_threads()}; {os.cpu_count()} CPUs; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    header = (
        "| method | step | bare ms | update ms | solve ms | ratio solve/bare | "
        "ratio (check_every=K) | ratio (check_every=K, record=checks) | ratio update/bare | "
        f"iterations to {args.tol:g} | time to {args.tol:g} (s) | prepare (s) | "
        "fixed-point error |"
    )
    rows = [header, "|" + "---|" * (header.count("|") - 1)]
    worst = 0.0
    for name, method in methods(args.margin, lipschitz):
        med, prepared = measure(
            xp, sync, problem, method, M, c, iters=args.iters, repeats=args.repeats
        )
        res, t_solve, t_prep = time_to_tol(
            xp,
            sync,
            problem,
            method,
            c,
            tol=args.tol,
            maxiter=args.maxiter,
            repeats=max(1, min(3, args.repeats)),
        )
        converged = "" if res.success else f" ({res.status.value})"
        worst = max(worst, med["ratio_solve1"])
        rows.append(
            f"| {name} | {method.step:.4g} | {med['bare'] * 1e3:.3f} | "
            f"{med['update'] * 1e3:.3f} | {med['solve1'] * 1e3:.3f} | "
            f"{med['ratio_solve1']:.3f} | {med['ratio_solveK']:.3f} | {med['ratio_solveKc']:.3f} | "
            f"{med['ratio_update']:.3f} | {res.iterations}{converged} | {t_solve:.3f} | "
            f"{t_prep:.3f} | {fixed_point_error(xp, M, c, res.x):.1e} |"
        )
    print("\n".join(rows))
    print(f"worst overhead ratio (check_every=1): {worst:.3f} (target <= 1.2)")
    if args.profile:
        print("\n| operation (one batched application) | ms |\n|---|---|")
        for name, ms in profile_ops(xp, sync, M, c, iters=args.iters, repeats=args.repeats).items():
            print(f"| {name} | {ms:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
