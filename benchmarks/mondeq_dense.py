"""Dense monDEQ forward/backward speed against the bare work of one iteration.

For the paper's MNIST layer (784 -> 87, batch 128, Peaceman-Rachford) this
prints, measured in one run on one backend:

- forward and backward wall time per batch and iteration counts at the
  training tolerance (``--tol``, default 1e-2);
- the time of one forward and one backward *iteration*, as the slope of wall
  time against a fixed number of iterations (two solves with ``tol`` too small
  to stop them, ``--iters-low`` and ``--iters-high`` iterations), so set-up
  costs (the inverse, the injection ``Ux + b``, input checks) cancel;
- the *bare work* of one iteration: one batched product with the precomputed
  resolvent ``(I + α(I - W))⁻¹`` plus the activation, timed in a tight loop
  on the same arrays;
- the ratios (per-iteration time) / (bare work): the driver's and the
  method's overhead per iteration.  The target is ``<= 1.5``.

Usage::

    python benchmarks/mondeq_dense.py                    # NumPy, host
    python benchmarks/mondeq_dense.py --backend cupy     # GPU (synchronised timings)
    python benchmarks/mondeq_dense.py --threads 2        # as on a 2-core CI machine

``--threads`` sets the BLAS thread count through the environment before NumPy
is imported.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def _check_every(text):
    return text if text == "auto" else int(text)


def _parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=("numpy", "cupy"), default="numpy")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--width", type=int, default=87)
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--tol", type=float, default=1e-2)
    p.add_argument("--iters-low", type=int, default=20)
    p.add_argument("--iters-high", type=int, default=120)
    p.add_argument("--repeat", type=int, default=15, help="timing repetitions (median)")
    p.add_argument("--threads", type=int, default=None, help="BLAS threads")
    p.add_argument("--check-every", type=_check_every, default="auto",
                   help="MonDEQ check_every: an integer or 'auto' (the default)")
    p.add_argument("--random-input", action="store_true",
                   help="use Gaussian x instead of mnist-sample digits")
    return p.parse_args()


ARGS = _parse()
if ARGS.threads is not None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402

import opsplit as ops  # noqa: E402
from opsplit import nn  # noqa: E402
from opsplit.nn.layers import to_backend  # noqa: E402


def _backend():
    if ARGS.backend == "numpy":
        return np, (lambda: None), None
    import cupy

    def sync():
        cupy.cuda.Device().synchronize()

    return cupy, sync, cupy.zeros((), dtype=ARGS.dtype)


XP, SYNC, LIKE = _backend()


def timed(fn, repeat=ARGS.repeat):
    """Median wall time of ``fn()`` over ``repeat`` runs (after one warm-up),
    synchronising the device before and after each run."""
    fn()
    times = []
    for _ in range(repeat):
        SYNC()
        t0 = time.perf_counter()
        fn()
        SYNC()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def batch_input(in_features):
    if ARGS.random_input or in_features != 784:
        x = np.random.default_rng(1).standard_normal((ARGS.batch, in_features))
    else:
        data = nn.load_dataset("mnist-sample")
        x = data.x_train[np.random.default_rng(1).permutation(4000)[: ARGS.batch]]
        x = x.reshape(ARGS.batch, -1)
    return to_backend(x, ARGS.dtype, LIKE)


def main() -> int:
    layer = nn.MonDense(in_features=784, width=ARGS.width, m=1.0)
    params = layer.init_params(seed=0, dtype=ARGS.dtype, like=LIKE)
    x = batch_input(784)
    method = ops.PeacemanRachford(step=ARGS.alpha)

    def deq(tol, maxiter):
        return nn.MonDEQ(layer, activation="relu", method=method, tol=tol, maxiter=maxiter,
                         check_every=ARGS.check_every)

    # -- the training setting: wall time per batch and iteration counts --------
    train = deq(ARGS.tol, 300)
    z, state = train.forward(params, x)
    grad_z = to_backend(
        np.random.default_rng(2).standard_normal(tuple(z.shape)) / ARGS.batch, ARGS.dtype, LIKE
    )
    _, _, bw = train.backward(params, state, grad_z, return_result=True)
    fwd_wall = timed(lambda: train.forward(params, x))
    bwd_wall = timed(lambda: train.backward(params, state, grad_z))

    # -- per-iteration slopes ------------------------------------------------------
    lo, hi = ARGS.iters_low, ARGS.iters_high
    tiny = 1e-30
    ops_ = train.prepare(params)

    def fwd_at(n):
        d = deq(tiny, n)
        return timed(lambda: d.forward(params, x, operators=ops_))

    def bwd_at(n):
        d = deq(tiny, n)
        return timed(lambda: d.backward(params, state, grad_z))

    fwd_lo, fwd_hi = fwd_at(lo), fwd_at(hi)
    bwd_lo, bwd_hi = bwd_at(lo), bwd_at(hi)
    fwd_iter = (fwd_hi - fwd_lo) / (hi - lo)
    bwd_iter = (bwd_hi - bwd_lo) / (hi - lo)

    # -- bare work of one iteration: product with the resolvent + activation ---
    resolvent = layer.operators(params, [ARGS.alpha]).inverse(ARGS.alpha)[1]
    # the rows of I are mapped to the rows of Rᵀ: applying R to a row batch v is v @ Rᵀ
    R_T = resolvent.matvec(XP.eye(ARGS.width, dtype=z.dtype))
    u = z + 0.1

    def bare(n=100):
        v = u
        for _ in range(n):
            v = XP.maximum(XP.matmul(v, R_T), 0.0)
        return v

    bare_iter = timed(bare) / 100

    device = ARGS.backend if ARGS.backend == "numpy" else f"cupy ({_gpu_name()})"
    threads = ARGS.threads if ARGS.threads is not None else "default"
    print(f"dense monDEQ 784 -> {ARGS.width}, batch {ARGS.batch}, {ARGS.dtype}, "
          f"Peaceman-Rachford alpha={ARGS.alpha}, backend {device}, BLAS threads {threads}")
    print(f"input: {'Gaussian' if ARGS.random_input else 'mnist-sample digits'}; "
          f"median of {ARGS.repeat} runs; check_every={ARGS.check_every}")
    print()
    print(f"at tol {ARGS.tol:g}:")
    print(f"  {'':10s} {'iterations':>10s} {'ms/batch':>10s}")
    print(f"  {'forward':10s} {state.result.iterations:>10d} {1e3 * fwd_wall:>10.3f}")
    print(f"  {'backward':10s} {bw.iterations:>10d} {1e3 * bwd_wall:>10.3f}")
    print()
    print(f"per iteration (slope between {lo} and {hi} iterations):")
    print(f"  {'':22s} {'us/iter':>9s} {'ratio':>7s}")
    print(f"  {'bare work (R x, relu)':22s} {1e6 * bare_iter:>9.2f} {1.0:>7.2f}")
    print(f"  {'forward iteration':22s} {1e6 * fwd_iter:>9.2f} {fwd_iter / bare_iter:>7.2f}")
    print(f"  {'backward iteration':22s} {1e6 * bwd_iter:>9.2f} {bwd_iter / bare_iter:>7.2f}")
    print()
    worst = max(fwd_iter, bwd_iter) / bare_iter
    verdict = "meets" if worst <= 1.5 else "misses"
    print(f"worst ratio {worst:.2f}: {verdict} the target <= 1.5")
    return 0


def _gpu_name():
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"]
    return name.decode() if isinstance(name, bytes) else name


if __name__ == "__main__":
    sys.exit(main())
