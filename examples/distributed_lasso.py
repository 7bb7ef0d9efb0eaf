r"""
A LASSO whose rows live on Dask workers
=======================================

The LASSO

.. math::

    \min_x\; \sum_{i=1}^N \tfrac12\|A_i x - b_i\|_2^2 + \lambda\|x\|_1

with its rows split into ``N`` shards of unequal sizes, each written to a
``.npz`` file, is solved as a :class:`opsplit.distributed.Consensus` problem
on an embedded ``LocalCluster`` of two worker processes: each worker reads
its shards, factorizes :math:`I + \alpha A_i^TA_i` once and applies that prox
at every iteration; the client averages the ``N`` returned vectors and soft
thresholds.  Douglas–Rachford and Anderson-accelerated Douglas–Rachford run
through :func:`opsplit.solve` like on any other problem.  The step is
:math:`\alpha = 1/\sqrt{\mu L}`, with :math:`\mu` and :math:`L` the extreme
eigenvalues of the shards' Gram matrices (the constants of the
product-space operator).

The script prints iterations, time, the distance to scikit-learn's
:class:`~sklearn.linear_model.Lasso` on the stacked rows and the traffic
per iteration read from Dask's counters.  Run it as a script (it starts a
cluster, so it is not part of the documentation's gallery)::

    python examples/distributed_lasso.py [--small] [--workers N]

``--workers 0`` solves in this process without Dask.  The exit status is 0
when every solve matches scikit-learn to ``1e-8`` (relative).  On a real
cluster, pass ``client=dask.distributed.Client(address)`` to
:class:`~opsplit.distributed.Consensus` instead, with shard paths the
workers can read.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import Lasso

import opsplit as ops
from opsplit import distributed


def make_shards(folder: Path, sizes, n: int, seed: int = 0):
    """Write one ``.npz`` per shard; return the paths, the stacked ``(A, b)``
    and ``λ = 0.1‖Aᵀb‖∞``."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((sum(sizes), n)) / np.sqrt(n)
    x_true = np.zeros(n)
    support = rng.choice(n, size=max(2, n // 5), replace=False)
    x_true[support] = 3.0 * rng.standard_normal(support.size)
    b = A @ x_true + 0.05 * rng.standard_normal(A.shape[0])
    paths, start = [], 0
    for i, rows in enumerate(sizes):
        paths.append(folder / f"part-{i}.npz")
        np.savez(paths[-1], A=A[start:start + rows], b=b[start:start + rows])
        start += rows
    return paths, A, b, 0.1 * float(np.max(np.abs(A.T @ b)))


def consensus_step(A, sizes) -> float:
    """``1/√(μL)`` over the shards' Gram matrices."""
    lo, hi, start = np.inf, 0.0, 0
    for rows in sizes:
        block = A[start:start + rows]
        w = np.linalg.eigvalsh(block.T @ block)
        lo, hi, start = min(lo, w[0]), max(hi, w[-1]), start + rows
    return 1.0 / np.sqrt(lo * hi)


def reference(A, b, lam):
    """scikit-learn's coordinate descent; its ``alpha`` is ``λ/rows``."""
    model = Lasso(alpha=lam / A.shape[0], fit_intercept=False, tol=1e-14, max_iter=100_000)
    return model.fit(A, b).coef_


def solve(paths, lam, step, client, tol=1e-12):
    """Douglas–Rachford, plain and with Anderson, on the consensus problem:
    ``{name: (result, traffic per iteration in bytes or None)}``."""
    problem = distributed.Consensus([str(p) for p in paths], loss="least_squares",
                                    regularizer=ops.prox.L1(lam), client=client)
    n = problem.n
    out = {}
    for name, method in (("Douglas-Rachford", ops.DouglasRachford(step=step)),
                         ("Anderson-DR", ops.Anderson(ops.DouglasRachford(step=step),
                                                      memory=5))):
        problem.pool.reset_traffic()
        res = ops.solve(problem, method, np.zeros(n), tol=tol, maxiter=5000)
        t = problem.traffic()
        out[name] = res, (t.total / max(t.maps, 1) if client is not None else None)
    problem.close()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a small instance (seconds)")
    parser.add_argument("--workers", type=int, default=2,
                        help="worker processes of the embedded cluster; 0: no Dask (2)")
    args = parser.parse_args(argv)
    sizes, n = ((40, 60, 80), 10) if args.small else ((4000, 6000, 8000, 10000), 100)
    with tempfile.TemporaryDirectory() as tmp:
        paths, A, b, lam = make_shards(Path(tmp), sizes, n)
        step = consensus_step(A, sizes)
        start = time.perf_counter()
        client = distributed.local_client(n_workers=args.workers) if args.workers else None
        where = (f"{args.workers} local worker processes (started in "
                 f"{time.perf_counter() - start:.1f} s)" if client else "this process")
        try:
            results = solve(paths, lam, step, client)
        finally:
            if client is not None:
                client.close()
    ref = reference(A, b, lam)
    print(f"{len(sizes)} shards of {', '.join(map(str, sizes))} rows x {n} features, "
          f"lambda = {lam:.4g}, step {step:.4g}, on {where}")
    print(f"{'method':<18}{'iterations':>10}  {'status':<12}{'time s':>8}"
          f"{'rel. error':>12}{'kB/iter':>9}")
    ok = True
    for name, (res, traffic) in results.items():
        error = np.linalg.norm(res.x - ref) / np.linalg.norm(ref)
        ok &= res.success and error < 1e-8
        kb = "-" if traffic is None else f"{traffic / 1e3:.1f}"
        print(f"{name:<18}{res.iterations:>10}  {res.status.value:<12}{res.wall_time:>8.2f}"
              f"{error:>12.2e}{kb:>9}")
        if res.message.count(";"):
            print(f"  {res.message}")
    print(f"nonzeros: {np.count_nonzero(ref)} of {n} (scikit-learn)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
