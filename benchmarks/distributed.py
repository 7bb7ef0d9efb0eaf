"""Consensus solves on Dask: strong and weak scaling, and where the time goes.

The problems are a LASSO (``--loss least_squares``) and an ℓ₁ logistic
regression (``--loss logistic``) on Gaussian designs with ``n`` features,
``λ = 0.1‖Aᵀb‖∞``, split into shards of ``--rows`` rows each, written as
``.npz`` files that the workers read themselves:

* strong scaling: the same 2 shards (fixed data, the same iterates) on 1 and
  on 2 worker processes;
* weak scaling: ``W`` shards of ``--rows`` rows each on ``W = 1, 2`` workers
  (the 2-worker run is the strong-scaling one).

Each configuration is solved by :func:`opsplit.solve` with
:class:`~opsplit.distributed.Consensus` and Douglas–Rachford (step
``1/√(μL)`` from the shards' Gram matrices for least squares) to relative
residual ``--tol``: iterations and wall time per iteration.  Then
``--probe`` iterations of the same Douglas–Rachford map are replayed on a
:class:`~opsplit.distributed.ShardPool` over the same shards, timed by
phase (medians over the iterations):

* ``local``: the resolvent of the slowest worker, timed on the worker inside
  the task (its shards' proxes, one after the other on its one thread);
* ``comm``: the map's wall time on the client minus ``local``: submitting,
  scheduling, moving ``v_i`` out and ``prox(v_i)`` back, gathering;
* ``reduce``: the client's mean of the ``N`` vectors, the prox of ``g`` and
  the Douglas–Rachford vector updates;

and the bytes per iteration from Dask's own counters
(:meth:`~opsplit.distributed.ShardPool.traffic`).  For least squares the
script also prints the contraction bound of Douglas–Rachford
(:func:`opsplit.diagnostics.dr_contraction` with the shards' extreme Gram
eigenvalues) and the iterations it predicts, beside the measured ones.
A sweep on the 2-worker cluster then replays the map on ``N = 2, 8, 32``
tiny shards with ``n = 200`` and ``2000`` features and fits the
communication time per iteration, ``c0 + c1·N``, and the traffic per shard
per iteration, ``a + b·n`` (what docs/guide/distributed.rst projects to 100
workers).  ``setup`` is the first
map: reading the shard and forming the Gram matrix and its factorization
(least squares) on the worker.  BLAS runs on one thread everywhere (Dask's
nanny sets it on the workers; ``threadpoolctl`` on the client).

Usage::

    python benchmarks/distributed.py            # LS: n = 200, 100,000 rows; logistic: 50, 10,000
    python benchmarks/distributed.py --quick        # a smoke run, < 15 s
    python benchmarks/distributed.py --loss least_squares --rows 50000 --n 100
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

if __name__ == "__main__":  # this file's folder on sys.path would shadow Dask's ``distributed``
    _here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]

import numpy as np
from threadpoolctl import threadpool_limits

import opsplit as ops
from opsplit import distributed
from opsplit.diagnostics import dr_contraction
from opsplit.distributed.losses import ShardBuilder
from opsplit.distributed.losses import prox as shard_prox

#: Full-run sizes per loss: (features, rows per shard).
SIZES = {"least_squares": (200, 100_000), "logistic": (50, 10_000)}
QUICK = {"least_squares": (20, 2_000), "logistic": (10, 1_000)}


def make_shards(folder: Path, loss: str, shards: int, rows: int, n: int, seed: int = 0):
    """Write ``shards`` files of ``rows`` rows each; return their paths and ``λ``.

    Gaussian rows scaled by ``1/√n``, a sparse ground truth (a tenth of the
    features), noisy targets (least squares) or labels ``sign(a·x + noise)``.
    """
    rng = np.random.default_rng(seed)
    x_true = np.zeros(n)
    support = rng.choice(n, size=max(1, n // 10), replace=False)
    x_true[support] = 3.0 * rng.standard_normal(support.size)
    paths, atb = [], np.zeros(n)
    for i in range(shards):
        A = rng.standard_normal((rows, n)) / np.sqrt(n)
        noise = 0.1 * rng.standard_normal(rows)
        if loss == "least_squares":
            b = A @ x_true + noise
            atb += A.T @ b
        else:
            b = np.where(A @ x_true + noise >= 0, 1.0, -1.0)
            atb += A.T @ (b / 2.0)  # the logistic gradient at 0: -Aᵀb/2
        path = folder / f"{loss}-{shards}x{rows}-{i}.npz"
        np.savez(path, A=A, b=b)
        paths.append(path)
    return paths, 0.1 * float(np.max(np.abs(atb)))


def lasso_step(paths) -> float:
    """``1/√(μL)`` with ``μ`` the smallest and ``L`` the largest eigenvalue of
    the shards' Gram matrices (the constants of the product-space operator)."""
    lo, hi = np.inf, 0.0
    for p in paths:
        with np.load(p) as d:
            w = np.linalg.eigvalsh(d["A"].T @ d["A"])
        lo, hi = min(lo, w[0]), max(hi, w[-1])
    return 1.0 / np.sqrt(lo * hi), float(lo), float(hi)


def _timed_prox(shard, step, v):
    """Worker task: the shard's prox at ``v`` and the seconds it took there."""
    start = time.perf_counter()
    out = shard_prox(shard, step, v)
    return out, time.perf_counter() - start, os.getpid()


@dataclass
class Row:
    """One configuration's figures."""

    loss: str
    scaling: str
    workers: int
    shards: int
    rows: int
    n: int
    iterations: int
    status: str
    per_iter: float  # seconds per iteration of the real solve
    setup: float
    local: float
    comm: float
    reduce: float
    bytes_per_iter: float

    def line(self) -> str:
        return (f"{self.loss:<14}{self.scaling:<8}{self.workers:>3}{self.shards:>4}"
                f"{self.rows:>10}{self.n:>5}{self.iterations:>6}  {self.status:<10}"
                f"{1e3 * self.per_iter:>9.2f}{self.setup:>8.2f}{1e3 * self.local:>9.2f}"
                f"{1e3 * self.comm:>8.2f}{1e3 * self.reduce:>8.3f}"
                f"{self.bytes_per_iter / 1e3:>9.1f}")


HEADER = (f"{'loss':<14}{'scaling':<8}{'W':>3}{'N':>4}{'rows/shard':>10}{'n':>5}"
          f"{'iters':>6}  {'status':<10}{'ms/iter':>9}{'setup s':>8}{'local ms':>9}"
          f"{'comm ms':>8}{'red. ms':>8}{'kB/iter':>9}")


def probe(client, paths, loss: str, step: float, lam: float, n: int, iterations: int):
    """Replay ``iterations`` Douglas–Rachford steps on a ShardPool, timed by
    phase; return (setup, local, comm, reduce, bytes per iteration) (medians)."""
    builders = [ShardBuilder(i, str(p), loss) for i, p in enumerate(paths)]
    pool = distributed.ShardPool(client, builders)
    try:
        start = time.perf_counter()
        pool.build()  # reads and checks the shards
        N = len(paths)
        g = ops.prox.L1(lam)
        u = [np.zeros(n) for _ in range(N)]
        x = g.prox(np.zeros(n), step / N)
        pool.map(_timed_prox, [(step, 2 * x - ui) for ui in u])  # Gram, factorization
        setup = time.perf_counter() - start
        pool.reset_traffic()
        local, comm, reduce = [], [], []
        for _ in range(iterations):
            start = time.perf_counter()
            out = pool.map(_timed_prox, [(step, 2 * x - ui) for ui in u])
            wall = time.perf_counter() - start
            per_worker: dict[int, float] = {}
            for _, seconds, pid in out:
                per_worker[pid] = per_worker.get(pid, 0.0) + seconds
            slowest = max(per_worker.values())
            start = time.perf_counter()
            u = [ui + yi - x for ui, (yi, _, _) in zip(u, out, strict=True)]
            x = g.prox(sum(u) / N, step / N)
            reduce.append(time.perf_counter() - start)
            local.append(slowest)
            comm.append(wall - slowest)
        traffic = pool.traffic()
    finally:
        pool.close()
    return (setup, statistics.median(local), statistics.median(comm),
            statistics.median(reduce), traffic.total / max(traffic.maps, 1))


def solve(client, paths, loss: str, step: float, lam: float, n: int, tol: float, maxiter: int):
    problem = distributed.Consensus([str(p) for p in paths], loss=loss,
                                    regularizer=ops.prox.L1(lam), client=client)
    try:
        return ops.solve(problem, ops.DouglasRachford(step=step), np.zeros(n), tol=tol,
                         maxiter=maxiter)
    finally:
        problem.close()  # the workers drop the shards


def sweep(client, folder: Path, counts, features, iterations: int, log):
    """Communication against the number of shards ``N`` and features ``n`` on
    one cluster: tiny wide shards (50 rows), so that the map is all overhead.
    Returns ``[(N, n, comm seconds, bytes per iteration)]``."""
    out = []
    for n in features:
        for count in counts:
            paths, lam = make_shards(folder, "least_squares", count, 50, n, seed=1)
            _, _, comm, _, nbytes = probe(client, paths, "least_squares", 1.0, lam, n,
                                          iterations)
            log(f"  sweep: N = {count:>3} shards, n = {n:>5}: comm {1e3 * comm:7.2f} ms, "
                f"{nbytes / 1e3:8.1f} kB per iteration")
            out.append((count, n, comm, nbytes))
    return out


def fit_sweep(points) -> str:
    """Least-squares fits ``comm = c0 + c1 N`` (at the smallest ``n``) and
    ``bytes = N (a + b n)``: the per-shard latency and the bytes per feature."""
    n0 = min(p[1] for p in points)
    N = np.array([p[0] for p in points if p[1] == n0], dtype=float)
    comm = np.array([p[2] for p in points if p[1] == n0])
    c1, c0 = np.polyfit(N, comm, 1)
    per_shard = np.array([p[3] / p[0] for p in points])
    n = np.array([p[1] for p in points], dtype=float)
    b, a = np.polyfit(n, per_shard, 1)
    return (f"communication per iteration = {1e3 * c0:.2f} ms + {1e3 * c1:.3f} ms x shards; "
            f"traffic per shard per iteration = {a / 1e3:.2f} kB + {b:.1f} bytes x n")


def run_loss(loss, clients, folder, n, rows, tol, maxiter, probe_iters, log):
    """The three configurations of one loss: 2 shards on 1 and 2 workers, 1 shard on 1."""
    two, lam = make_shards(folder, loss, 2, rows, n)
    one, lam_one = make_shards(folder, loss, 1, rows, n)
    if loss == "least_squares":
        step2, mu, L = lasso_step(two)
        step1, _, _ = lasso_step(one)
        c = dr_contraction(mu, L, step2)
        log(f"  {loss}: shards' Gram spectrum [{mu:.4g}, {L:.4g}], step 1/sqrt(mu L) = "
            f"{step2:.4g}; DR contraction bound {c:.3f}: about "
            f"{math.ceil(math.log(tol) / math.log(c))} iterations to tol {tol:g}")
    else:
        step2 = step1 = 4.0 * n / rows  # ~ 1/(curvature of a shard), labels at the margin
    rows_out = []
    for scaling, workers, paths, step, lam_ in (("strong", 1, two, step2, lam),
                                               ("strong", 2, two, step2, lam),
                                               ("weak", 1, one, step1, lam_one)):
        client = clients[workers]
        res = solve(client, paths, loss, step, lam_, n, tol, maxiter)
        setup, local, comm, reduce, nbytes = probe(
            client, paths, loss, step, lam_, n, min(probe_iters, max(res.iterations, 3)))
        row = Row(loss, scaling, workers, len(paths), rows, n, res.iterations,
                  res.status.value, res.wall_time / max(res.iterations, 1), setup, local,
                  comm, reduce, nbytes)
        log(row.line())
        rows_out.append(row)
        if scaling == "strong" and workers == 2:
            rows_out.append(Row(**{**row.__dict__, "scaling": "weak"}))
            log(rows_out[-1].line())
    return rows_out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--loss", choices=tuple(SIZES), nargs="+", default=list(SIZES))
    parser.add_argument("--n", type=int, default=None, help="features (per loss default)")
    parser.add_argument("--rows", type=int, default=None, help="rows per shard")
    parser.add_argument("--tol", type=float, default=1e-8)
    parser.add_argument("--maxiter", type=int, default=2000)
    parser.add_argument("--probe", type=int, default=None,
                        help="iterations replayed phase by phase (20; 5 with --quick)")
    parser.add_argument("--no-sweep", action="store_true",
                        help="skip the sweep of communication against shards and features")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else SIZES
    if args.probe is None:
        args.probe = 5 if args.quick else 20
    logging.getLogger("distributed").setLevel(logging.ERROR)  # the scheduler runs here
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f}; 1 BLAS thread; Python {sys.version.split()[0]}", flush=True)
    rows, fit = [], None

    def log(line):
        print(line, flush=True)

    with threadpool_limits(1), tempfile.TemporaryDirectory() as tmp:
        clients = {w: distributed.local_client(n_workers=w) for w in (1, 2)}
        try:
            print(HEADER, flush=True)
            for loss in args.loss:
                n, m = sizes[loss]
                rows += run_loss(loss, clients, Path(tmp), args.n or n, args.rows or m,
                                 args.tol, args.maxiter, args.probe, log)
            if not args.no_sweep:
                counts, features = ((2, 4), (20, 200)) if args.quick else ((2, 8, 32),
                                                                           (200, 2000))
                fit = fit_sweep(sweep(clients[2], Path(tmp), counts, features, args.probe,
                                      log))
        finally:
            for client in reversed(clients.values()):  # nested: the log levels are restored
                client.close()
    print(summary(rows))
    if fit:
        print(fit)
    return 0 if all(r.status == "converged" for r in rows) else 1


def summary(rows) -> str:
    """Speed-ups of the strong-scaling pairs and efficiencies of the weak ones."""
    out = []
    for loss in dict.fromkeys(r.loss for r in rows):
        get = {(r.scaling, r.workers): r for r in rows if r.loss == loss}
        s1, s2, w1 = get[("strong", 1)], get[("strong", 2)], get[("weak", 1)]
        out.append(f"{loss}: strong scaling 1 -> 2 workers: {s1.per_iter / s2.per_iter:.2f}x "
                   f"per iteration (local {s1.local / s2.local:.2f}x); weak scaling "
                   f"efficiency {w1.per_iter / s2.per_iter:.2f} (iterations {w1.iterations} "
                   f"-> {s2.iterations}); traffic {s2.bytes_per_iter / s2.shards / 1e3:.2f} kB "
                   f"per shard per iteration; one shard on one worker: local "
                   f"{1e6 * w1.local / w1.rows:.3g} us per row per iteration, set-up "
                   f"{1e12 * w1.setup / (w1.rows * w1.n**2):.3g} ps per row x feature^2")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
