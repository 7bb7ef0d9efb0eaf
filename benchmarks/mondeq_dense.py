"""Dense monDEQ forward/backward speed against the bare work of one iteration.

For the paper's MNIST layer (784 -> 87, batch 128, Peaceman-Rachford) this
prints, measured in one run on one backend, for each BLAS thread count asked
for (``--threads``, default ``1,2``; set with threadpoolctl):

- forward and backward wall time per batch and iteration counts at the
  training tolerance (``--tol``, default 1e-2);
- the time of one forward and one backward *iteration*, as the slope of wall
  time against a fixed number of iterations (two solves with ``tol`` too small
  to stop them, ``--iters-low`` and ``--iters-high`` iterations), so set-up
  costs (the injection ``Ux + b``, input checks, the shift of the affine
  steps) cancel; the precomputation (``MonDEQ.prepare``: the inverse and its
  Cayley matrix) is made once, outside the timings, as in training;
- the *bare work* of one iteration: one batched product with the precomputed
  resolvent ``(I + α(I - W))⁻¹`` plus the activation, timed in a tight loop
  on the same arrays;
- the ratios (per-iteration time) / (bare work): the driver's and the
  method's overhead per iteration.  The target is ``<= 1.1``.

The solves use ``MonDEQ(record="checks")`` (the default): residuals only at
the host checks, so an iteration between checks is the method's work alone;
``--record every`` measures the full history (one difference and one norm
more per iteration, the "floor" lines).

The timings are interleaved (bare work, short and long solves in turn,
``--repeat`` times) and every ratio is the median of the ratios of one
round, so a change of machine load during the run affects both sides alike.
The load average is printed before and after: on a shared machine the
figures are only comparable at similar load.

Usage::

    python benchmarks/mondeq_dense.py                    # NumPy, 1 and 2 BLAS threads
    python benchmarks/mondeq_dense.py --threads 4
    python benchmarks/mondeq_dense.py --backend cupy     # GPU (synchronised timings)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

import opsplit as ops
from opsplit import nn
from opsplit._backend import from_host

TARGET = 1.1


def _check_every(text):
    return text if text == "auto" else int(text)


def _threads(text):
    values = [int(t) for t in text.split(",")]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("--threads takes positive integers, e.g. 1,2")
    return values


def _parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=("numpy", "cupy"), default="numpy")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--width", type=int, default=87)
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--tol", type=float, default=1e-2)
    p.add_argument("--iters-low", type=int, default=20)
    p.add_argument("--iters-high", type=int, default=120)
    p.add_argument("--repeat", type=int, default=15, help="interleaved rounds (median)")
    p.add_argument("--threads", type=_threads, default=[1, 2],
                   help="BLAS thread counts to measure, comma separated (default 1,2)")
    p.add_argument("--check-every", type=_check_every, default="auto",
                   help="MonDEQ check_every: an integer or 'auto' (the default)")
    p.add_argument("--record", choices=("checks", "every"), default="checks",
                   help="MonDEQ record: residuals at the checks only (the default) or at "
                        "every iteration")
    p.add_argument("--random-input", action="store_true",
                   help="use Gaussian x instead of mnist-sample digits")
    return p.parse_args(argv)


def _backend(args):
    if args.backend == "numpy":
        return np, (lambda: None), None
    import cupy

    def sync():
        cupy.cuda.Device().synchronize()

    return cupy, sync, cupy.zeros((), dtype=args.dtype)


def _once(fn, sync):
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


def batch_input(args, like, in_features):
    if args.random_input or in_features != 784:
        x = np.random.default_rng(1).standard_normal((args.batch, in_features))
    else:
        data = nn.load_dataset("mnist-sample")
        x = data.x_train[np.random.default_rng(1).permutation(4000)[: args.batch]]
        x = x.reshape(args.batch, -1)
    return from_host(x, like, args.dtype)


def measure(args, xp, sync, like):
    """The figures at the current BLAS thread count, as a dict."""
    layer = nn.MonDense(in_features=784, width=args.width, m=1.0)
    params = layer.init_params(seed=0, dtype=args.dtype, like=like)
    x = batch_input(args, like, 784)
    method = ops.PeacemanRachford(step=args.alpha)

    def deq(tol, maxiter):
        return nn.MonDEQ(layer, activation="relu", method=method, tol=tol, maxiter=maxiter,
                         check_every=args.check_every, record=args.record)

    # -- the training setting: wall time per batch and iteration counts --------
    train = deq(args.tol, 300)
    prepared = train.prepare(params)
    z, state = train.forward(params, x, prepared=prepared)
    grad_z = from_host(
        np.random.default_rng(2).standard_normal(tuple(z.shape)) / args.batch, like, args.dtype
    )
    _, _, bw = train.backward(params, state, grad_z, return_result=True)

    # -- per-iteration slopes and the bare work, interleaved -----------------------
    lo, hi = args.iters_low, args.iters_high
    short, long = deq(1e-30, lo), deq(1e-30, hi)
    _, state_short = short.forward(params, x, prepared=prepared)
    _, state_long = long.forward(params, x, prepared=prepared)
    # the rows of I are mapped to the rows of Rᵀ: applying R to a row batch v is v @ Rᵀ
    R_T = prepared.forward.inverse.matvec(xp.eye(args.width, dtype=z.dtype))
    u = z + 0.1
    n_bare = 100

    def bare():
        v = u
        for _ in range(n_bare):
            v = xp.maximum(xp.matmul(v, R_T), 0.0)
        return v

    # The same arithmetic as one forward / backward Peaceman-Rachford iteration
    # with its per-sample residual norm, written out without the library: the
    # floor that any implementation recording a residual per iteration pays
    # (record="every"; record="checks" skips the difference and the norm).
    C_T = xp.asarray(prepared.forward.cayley.matvec(xp.eye(args.width, dtype=z.dtype)))
    C = xp.matrix_transpose(C_T)
    shift = 0.5 * u
    gain = 2.0 * xp.astype(z > 0, z.dtype) - 1.0  # the backward reflection: elementwise affine

    def floor_forward():
        v = u
        for _ in range(n_bare):
            v_new = xp.matmul(xp.abs(v), C_T) - shift
            d = v_new - v
            norms = xp.vecdot(d, d, axis=-1)
            v = v_new
        return v, norms

    def floor_backward():
        v = u
        for _ in range(n_bare):
            v_new = xp.matmul(gain * v + shift, C)
            d = v_new - v
            norms = xp.vecdot(d, d, axis=-1)
            v = v_new
        return v, norms

    work = {
        "train_fwd": lambda: train.forward(params, x, prepared=prepared),
        "train_bwd": lambda: train.backward(params, state, grad_z),
        "bare": bare,
        "floor_fwd": floor_forward,
        "floor_bwd": floor_backward,
        "fwd_lo": lambda: short.forward(params, x, prepared=prepared),
        "fwd_hi": lambda: long.forward(params, x, prepared=prepared),
        "bwd_lo": lambda: short.backward(params, state_short, grad_z),
        "bwd_hi": lambda: long.backward(params, state_long, grad_z),
    }
    for fn in work.values():  # warm-up
        fn()
    samples = {name: [] for name in work}
    for _ in range(args.repeat):
        for name, fn in work.items():
            samples[name].append(_once(fn, sync))
    bare_iter = [t / n_bare for t in samples["bare"]]
    fwd_iter = [(b - a) / (hi - lo) for a, b in zip(samples["fwd_lo"], samples["fwd_hi"])]
    bwd_iter = [(b - a) / (hi - lo) for a, b in zip(samples["bwd_lo"], samples["bwd_hi"])]
    floor_fwd = [t / n_bare for t in samples["floor_fwd"]]
    floor_bwd = [t / n_bare for t in samples["floor_bwd"]]
    med = statistics.median
    return {
        "floor_fwd": med(floor_fwd),
        "floor_bwd": med(floor_bwd),
        "floor_fwd_ratio": med(f / b for f, b in zip(floor_fwd, bare_iter)),
        "floor_bwd_ratio": med(f / b for f, b in zip(floor_bwd, bare_iter)),
        "fwd_iters": state.result.iterations,
        "bwd_iters": bw.iterations,
        "fwd_wall": med(samples["train_fwd"]),
        "bwd_wall": med(samples["train_bwd"]),
        "bare": med(bare_iter),
        "fwd": med(fwd_iter),
        "bwd": med(bwd_iter),
        "fwd_ratio": med(f / b for f, b in zip(fwd_iter, bare_iter)),
        "bwd_ratio": med(f / b for f, b in zip(bwd_iter, bare_iter)),
    }


def _blas_libraries():
    names = sorted({f"{i['internal_api']} {i.get('version') or ''}".strip()
                    for i in threadpool_info() if i["user_api"] == "blas"})
    return ", ".join(names) or "none found"


def main(argv=None) -> int:
    args = _parse(argv)
    xp, sync, like = _backend(args)
    device = args.backend if args.backend == "numpy" else f"cupy ({_gpu_name()})"
    load_before = os.getloadavg()
    print(f"dense monDEQ 784 -> {args.width}, batch {args.batch}, {args.dtype}, "
          f"Peaceman-Rachford alpha={args.alpha}, backend {device}")
    print(f"input: {'Gaussian' if args.random_input else 'mnist-sample digits'}; "
          f"{args.repeat} interleaved rounds (medians); check_every={args.check_every}, "
          f"record={args.record}")
    print(f"BLAS: {_blas_libraries()}; {os.cpu_count()} CPUs; "
          f"load average {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")
    worst = 0.0
    for threads in args.threads:
        with threadpool_limits(limits=threads, user_api="blas"):
            r = measure(args, xp, sync, like)
        worst = max(worst, r["fwd_ratio"], r["bwd_ratio"])
        print()
        print(f"== BLAS threads {threads} ==")
        print(f"at tol {args.tol:g}:")
        print(f"  {'':10s} {'iterations':>10s} {'ms/batch':>10s}")
        print(f"  {'forward':10s} {r['fwd_iters']:>10d} {1e3 * r['fwd_wall']:>10.3f}")
        print(f"  {'backward':10s} {r['bwd_iters']:>10d} {1e3 * r['bwd_wall']:>10.3f}")
        print(f"per iteration (slope between {args.iters_low} and {args.iters_high} iterations):")
        print(f"  {'':22s} {'us/iter':>9s} {'ratio':>7s}")
        print(f"  {'bare work (R x, relu)':22s} {1e6 * r['bare']:>9.2f} {1.0:>7.2f}")
        print(f"  {'forward iteration':22s} {1e6 * r['fwd']:>9.2f} {r['fwd_ratio']:>7.2f}")
        print(f"  {'backward iteration':22s} {1e6 * r['bwd']:>9.2f} {r['bwd_ratio']:>7.2f}")
        print("  floor of record='every': the same arithmetic with a residual norm per "
              "iteration, no library")
        print(f"  {'  forward':22s} {1e6 * r['floor_fwd']:>9.2f} {r['floor_fwd_ratio']:>7.2f}")
        print(f"  {'  backward':22s} {1e6 * r['floor_bwd']:>9.2f} {r['floor_bwd_ratio']:>7.2f}")
    load_after = os.getloadavg()
    print()
    print(f"load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    verdict = "meets" if worst <= TARGET else "misses"
    print(f"worst ratio {worst:.2f}: {verdict} the target <= {TARGET}")
    return 0


def _gpu_name():
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"]
    return name.decode() if isinstance(name, bytes) else name


if __name__ == "__main__":
    sys.exit(main())
