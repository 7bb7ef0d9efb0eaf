"""Anderson acceleration against the plain methods: iterations and time.

LASSO with ``A`` of size 500 × 2000 (normalized Gaussian columns,
``λ = 0.1‖Aᵀb‖∞``), posed as ``0 ∈ AᵀA x − Aᵀb + λ∂‖x‖₁``, solved to relative
fixed-point residual ``--tol`` (1e-10) by Douglas–Rachford, Peaceman–Rachford
and forward–backward, each plain and inside ``ops.Anderson(memory=5)``.  The
precomputation (``method.prepare``) is timed apart; solve times are medians
of ``--repeats`` interleaved runs.
Target: Anderson–DR in at most half of DR's iterations and in less time.

``--mondeq`` instead counts the forward and backward (adjoint) iterations of
a random dense monDEQ layer (``--width`` 300 units, 784 inputs, batch 128) to
``--tol`` for PR, DR and FB (step m/L²), plain and accelerated: where
``opsplit train --anderson`` pays.

Usage::

    python benchmarks/anderson.py                 # 500 × 2000, one BLAS thread
    python benchmarks/anderson.py --m 100 --n 400 --repeats 1   # quick look
    python benchmarks/anderson.py --mondeq --tol 1e-8
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import opsplit as ops


def lasso(m, n, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, n))
    A /= np.linalg.norm(A, axis=0)
    b = rng.standard_normal(m)
    lam = 0.1 * np.abs(A.T @ b).max()
    try:  # the structured resolvent, where it exists
        smooth = ops.Subdifferential(ops.prox.LeastSquares(A, b))
    except AttributeError:
        smooth = ops.LinearMonotone(ops.Dense(A.T @ A), -A.T @ b)
    return ops.Inclusion(smooth, ops.Subdifferential(ops.prox.L1(lam))), np.linalg.norm(A, 2) ** 2


def mondeq(width, tol):
    from opsplit import nn

    layer = nn.MonDense(in_features=784, width=width, m=1.0)
    params = layer.init_params(seed=0)
    x = np.random.default_rng(1).standard_normal((128, 784))
    inner = {"PR": ops.PeacemanRachford(step=1.0), "DR": ops.DouglasRachford(step=1.0),
             "FB": ops.ForwardBackward(step=layer.m / layer.lipschitz(params) ** 2)}
    print(f"monDEQ dense layer, {width} units, batch 128, tol {tol:g}: iterations")
    print(f"{'method':>8} {'forward':>14} {'backward':>14}")
    for label, method in inner.items():
        counts = []
        for meth in (method, ops.Anderson(method, memory=5)):
            deq = nn.MonDEQ(layer, method=meth, tol=tol, maxiter=5000, check_every=1)
            z, state = deq.forward(params, x)
            *_, back = deq.backward(params, state, np.cos(z), return_result=True)
            counts.append((state.result.iterations, back.iterations))
        fwd = f"{counts[0][0]} -> {counts[1][0]}"
        bwd = f"{counts[0][1]} -> {counts[1][1]}"
        print(f"{label:>8} {fwd:>14} {bwd:>14}")

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=500)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--tol", type=float, default=1e-10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (1)")
    parser.add_argument("--mondeq", action="store_true",
                        help="count monDEQ iterations instead (see the module docstring)")
    parser.add_argument("--width", type=int, default=300)
    args = parser.parse_args(argv)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    except ImportError:
        pass
    if args.mondeq:
        mondeq(args.width, args.tol)
        return
    problem, L = lasso(args.m, args.n)
    x0 = np.zeros(args.n)
    inner = {
        "DR": ops.DouglasRachford(step=1.0),
        "PR": ops.PeacemanRachford(step=1.0),
        "FB": ops.ForwardBackward(step=1.0 / L),
    }
    print(f"LASSO {args.m} x {args.n}, tol {args.tol:g}, {args.threads} BLAS thread(s)")
    print(f"{'method':>12} {'setup s':>8} {'iters':>6} {'solve s':>8} {'ms/iter':>8}")
    for label, method in inner.items():
        runs, setup = {}, {}
        for name, meth in ((label, method), (f"AA-{label}", ops.Anderson(method, memory=5))):
            start = time.perf_counter()
            runs[name] = (meth, meth.prepare(problem))
            setup[name] = time.perf_counter() - start
        times = {name: [] for name in runs}
        iters = {}
        for _ in range(args.repeats):
            for name, (meth, prepared) in runs.items():
                t = time.perf_counter()
                res = ops.solve(problem, meth, x0, tol=args.tol, maxiter=50000,
                                prepared=prepared)
                times[name].append(time.perf_counter() - t)
                iters[name] = res.iterations if res.success else res.status.value
        for name in runs:
            med = float(np.median(times[name]))
            it = iters[name]
            per = med / it * 1e3 if isinstance(it, int) else float("nan")
            print(f"{name:>12} {setup[name]:8.3f} {it!s:>6} {med:8.3f} {per:8.3f}")

if __name__ == "__main__":
    main()
