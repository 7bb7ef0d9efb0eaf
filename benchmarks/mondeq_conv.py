"""Convolutional monDEQ forward/backward speed and memory per batch.

For the paper's MNIST models (``nn.MonConv`` with 54 channels on the 30×30
padded grid, and ``nn.MonMultiConv`` with tiers (16, 32, 32)), batch 128,
Peaceman-Rachford with step 1 and tolerance 1e-2 (the training setting), this
prints, measured in one run for each dtype asked for (``--dtype``, default
float32 and float64), at a fixed BLAS thread count (``--threads``, default 1,
set with threadpoolctl) and with the load average before and after:

- ``MonDEQ.prepare`` (the per-frequency inverses, once per parameter
  update), forward and backward wall time per batch and iterations per pass;
- the time of one forward and one backward *iteration* of the conv model, as
  the slope of wall time between two solves that cannot stop early
  (``--iters-low``, ``--iters-high`` iterations), so set-up costs cancel;
- the *bare work* of one iteration: ``rfft2``, one batched per-frequency
  product with the precomputed inverse, ``irfft2`` and the border ReLU,
  written out with no library around it in the layout that needs no
  transpose at all (``(H, W, C, batch)``, the transforms along its first
  axes), timed in a tight loop; and, as a floor below it, the sum of the four
  pieces each timed alone on a contiguous array in its own natural layout
  (``rfft2`` and ``irfft2`` of ``(batch, C, H, W)``, the product on
  ``(F, C, batch)``), i.e. with every transpose for free;
- the ratios (per-iteration time) / (bare work), target ``<= 1.3``, and the
  same over the floor;
- forward + backward per batch against the original PyTorch implementation's
  about 1.1 s + 1.8 s on a 2-core CPU: opsplit should take at most half
  (``<= 1.45 s``);
- the peak memory of one forward + backward (tracemalloc, which sees NumPy's
  allocations) for both models, next to the size of one array of
  ``batch × frequencies × C × C`` complex numbers, which must never be formed.

Timings are interleaved over ``--repeat`` rounds and every figure is a median
(ratios: the median of the per-round ratios), so a change of machine load
during the run affects both sides alike.  Each is measured twice: wall time,
and the process's CPU time (``time.process_time``; the work is single-threaded
at one BLAS thread, so on a machine shared with other jobs the CPU time is the
figure that load distorts least, and the ratios use it).

Every iteration allocates a few arrays of the state's size (about 25 MiB in
float32); with glibc's defaults the kernel hands them fresh pages again and
again.  To see the figures without that cost, keep freed memory in the process::

    MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296 \
        python benchmarks/mondeq_conv.py

Usage::

    python benchmarks/mondeq_conv.py
    python benchmarks/mondeq_conv.py --dtype float32 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import tracemalloc

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

import opsplit as ops
from opsplit import nn
from opsplit._backend import from_host
from opsplit.nn import _fourier as fourier

TARGET_RATIO = 1.3
TORCH_FORWARD, TORCH_BACKWARD = 1.1, 1.8  # s per batch, original code, 2-core CPU
TARGET_PASS = 0.5 * (TORCH_FORWARD + TORCH_BACKWARD)


def _parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dtype", choices=("float32", "float64"), action="append")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--channels", type=int, default=54)
    p.add_argument("--tiers", default="16,32,32", help="multi-tier channels ('' to skip)")
    p.add_argument("--tol", type=float, default=1e-2)
    p.add_argument("--iters-low", type=int, default=2)
    p.add_argument("--iters-high", type=int, default=10)
    p.add_argument("--repeat", type=int, default=5, help="interleaved rounds (median)")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (threadpoolctl)")
    args = p.parse_args(argv)
    args.dtype = args.dtype or ["float32", "float64"]
    return args


def _time(fn):
    """``(wall, cpu)`` seconds of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def _medians(samples, key):
    """Medians of the wall and CPU samples of ``key``: ``{"wall": .., "cpu": ..}``."""
    return {k: statistics.median(s[i] for s in samples[key]) for i, k in enumerate(("wall", "cpu"))}


def _peak(fn) -> int:
    """Peak traced memory (bytes) above the level at the start of ``fn``."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak - base


def _sample(work, repeat):
    """``{name: [(wall, cpu), ...]}``: each callable of ``work`` timed ``repeat``
    times, interleaved so that drifts in machine load hit every one alike."""
    samples = {name: [] for name in work}
    for _ in range(repeat):
        for name, fn in work.items():
            samples[name].append(_time(fn))
    return samples


def _training_setting(layer, args, dtype, x):
    """``(params, train, prepared, z, state, grad_z, backward_result)``: the solver
    at the training tolerance and one forward and backward pass on ``x``."""
    params = layer.init_params(seed=0, dtype=dtype)
    train = _deq(layer, args.tol, 300)
    prepared = train.prepare(params)
    z, state = train.forward(params, x, prepared=prepared)
    grad_z = _grad_like(z)
    _, _, bw = train.backward(params, state, grad_z, return_result=True)
    return params, train, prepared, z, state, grad_z, bw


def _pass_work(train, params, x, prepared, state, grad_z):
    """The timed passes of one batch: prepare, forward, backward."""
    return {
        "prepare": lambda: train.prepare(params),
        "fwd": lambda: train.forward(params, x, prepared=prepared),
        "bwd": lambda: train.backward(params, state, grad_z),
    }


def _one_batch(train, params, x, grad_z):
    """One training batch: prepare, forward, backward (for the memory peak)."""
    prepared = train.prepare(params)
    _, state = train.forward(params, x, prepared=prepared)
    train.backward(params, state, grad_z)


def _images(batch, dtype):
    data = nn.load_dataset("mnist-sample")
    x = data.x_train[np.random.default_rng(1).permutation(len(data.x_train))[:batch]]
    return from_host(np.reshape(x, (batch, 1, 28, 28)), None, dtype)


def _grad_like(z, seed=2):
    rng = np.random.default_rng(seed)
    if isinstance(z, tuple):
        return tuple(_grad_like(part, seed + i) for i, part in enumerate(z))
    return (rng.standard_normal(z.shape) / z.shape[0]).astype(z.dtype)


def _deq(layer, tol, maxiter):
    return nn.MonDEQ(layer, activation="relu", method=ops.PeacemanRachford(step=1.0),
                     tol=tol, maxiter=maxiter)


def bare_iteration(inverse_symbol, v, grid):
    """One iteration's arithmetic with nothing around it: ``rfft2``, the batched
    product with the inverse's symbol, ``irfft2``, border ReLU, on a state laid
    out ``(H, W, C, batch)`` so that nothing is transposed."""
    fft = fourier.fft_module(np)
    n1, n2 = grid
    spec = fft.rfftn(v, axes=(0, 1))
    f, c, b = inverse_symbol.shape[0], v.shape[2], v.shape[3]
    out = np.matmul(inverse_symbol, np.reshape(spec, (f, c, b)))
    y = fft.irfftn(np.reshape(out, (n1, n2 // 2 + 1, c, b)), s=grid, axes=(0, 1))
    y = np.maximum(y, 0.0)
    y[0], y[-1], y[:, 0], y[:, -1] = 0.0, 0.0, 0.0, 0.0
    return y


def measure_conv(args, dtype, x):
    layer = nn.MonConv(in_channels=1, channels=args.channels, image_shape=(28, 28),
                       kernel_size=3, m=1.0)
    params, train, prepared, z, state, grad_z, bw = _training_setting(layer, args, dtype, x)

    lo, hi = args.iters_low, args.iters_high
    short, long = _deq(layer, 1e-30, lo), _deq(layer, 1e-30, hi)
    _, st_lo = short.forward(params, x, prepared=prepared)
    _, st_hi = long.forward(params, x, prepared=prepared)
    symbol = prepared.forward.inverse.symbol
    v0 = np.ascontiguousarray(np.permute_dims(z, (2, 3, 1, 0)))
    n_bare = 4

    def bare():
        v = v0
        for _ in range(n_bare):
            v = bare_iteration(symbol, v, layer.grid)

    fft = fourier.fft_module(np)
    spec_bchw = fft.rfftn(z, axes=(-2, -1))
    spec_fcb = np.reshape(np.permute_dims(spec_bchw, (2, 3, 1, 0)), (symbol.shape[0], -1, len(z)))

    def floor():
        for _ in range(n_bare):
            fft.rfftn(z, axes=(-2, -1))
            np.matmul(symbol, spec_fcb)
            y = fft.irfftn(spec_bchw, s=layer.grid, axes=(-2, -1))
            y = np.maximum(y, 0.0)
            y[..., 0, :], y[..., -1, :], y[..., 0], y[..., -1] = 0.0, 0.0, 0.0, 0.0

    work = {
        **_pass_work(train, params, x, prepared, state, grad_z),
        "bare": bare,
        "floor": floor,
        "fwd_lo": lambda: short.forward(params, x, prepared=prepared),
        "fwd_hi": lambda: long.forward(params, x, prepared=prepared),
        "bwd_lo": lambda: short.backward(params, st_lo, grad_z),
        "bwd_hi": lambda: long.backward(params, st_hi, grad_z),
    }
    for fn in work.values():  # warm-up
        fn()
    samples = _sample(work, args.repeat)
    cpu = {name: [t[1] for t in ts] for name, ts in samples.items()}
    bare_it = [t / n_bare for t in cpu["bare"]]
    floor_it = [t / n_bare for t in cpu["floor"]]
    fwd_it = [(b - a) / (hi - lo) for a, b in zip(cpu["fwd_lo"], cpu["fwd_hi"])]
    bwd_it = [(b - a) / (hi - lo) for a, b in zip(cpu["bwd_lo"], cpu["bwd_hi"])]
    med = statistics.median

    return {
        **_pass_figures(samples),
        "fwd_iters": state.result.iterations,
        "bwd_iters": bw.iterations,
        "bare": med(bare_it),
        "floor": med(floor_it),
        "fwd_floor": med(f / b for f, b in zip(fwd_it, floor_it)),
        "bwd_floor": med(f / b for f, b in zip(bwd_it, floor_it)),
        "fwd_it": med(fwd_it),
        "bwd_it": med(bwd_it),
        "fwd_ratio": med(f / b for f, b in zip(fwd_it, bare_it)),
        "bwd_ratio": med(f / b for f, b in zip(bwd_it, bare_it)),
        "peak": _peak(lambda: _one_batch(train, params, x, grad_z)),
        "dense_size": x.shape[0] * symbol.shape[0] * symbol.shape[1] ** 2 * symbol.itemsize,
    }


def _pass_figures(samples):
    """Medians (wall, CPU) of prepare, forward, backward and forward + backward."""
    both = [(f[0] + b[0], f[1] + b[1]) for f, b in zip(samples["fwd"], samples["bwd"])]
    return {
        "prepare": _medians(samples, "prepare"),
        "fwd": _medians(samples, "fwd"),
        "bwd": _medians(samples, "bwd"),
        "pass": _medians({"pass": both}, "pass"),
    }


def measure_multitier(args, dtype, x, tiers):
    layer = nn.MonMultiConv(in_channels=1, channels=tiers, image_shape=(28, 28),
                            kernel_size=3, m=1.0)
    params, train, prepared, _, state, grad_z, bw = _training_setting(layer, args, dtype, x)
    samples = _sample(_pass_work(train, params, x, prepared, state, grad_z), args.repeat)
    return {
        **_pass_figures(samples),
        "fwd_iters": state.result.iterations,
        "bwd_iters": bw.iterations,
        "peak": _peak(lambda: _one_batch(train, params, x, grad_z)),
    }


def _blas():
    found = [i for i in threadpool_info() if i["user_api"] == "blas"]
    return ", ".join(f"{i['internal_api']} {i.get('version') or ''}".strip() for i in found)


def _load():
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _print_passes(r):
    def ms(fig):
        return f"{1e3 * fig['wall']:7.1f} / {1e3 * fig['cpu']:7.1f}"

    print(f"  prepare             {ms(r['prepare'])}")
    print(f"  forward             {ms(r['fwd'])}   ({r['fwd_iters']} iterations)")
    print(f"  backward            {ms(r['bwd'])}   ({r['bwd_iters']} iterations)")
    print(f"  forward + backward  {ms(r['pass'])}")


def main(argv=None) -> int:
    args = _parse(argv)
    tiers = tuple(int(c) for c in args.tiers.split(",")) if args.tiers else ()
    print(f"conv monDEQ: batch {args.batch}, {args.channels} channels on 30x30 "
          f"(28x28 MNIST padded), multi-tier {tiers or 'skipped'}; Peaceman-Rachford "
          f"step 1, tol {args.tol:g}; {args.repeat} interleaved rounds (medians)")
    print(f"BLAS: {_blas() or 'none found'}, {args.threads} thread(s) (threadpoolctl); "
          f"FFT: {fourier.fft_module(np).__name__}; {os.cpu_count()} CPUs; "
          f"load average {_load()}")
    ok = True
    with threadpool_limits(limits=args.threads, user_api="blas"):
        for dtype in args.dtype:
            x = _images(args.batch, dtype)
            r = measure_conv(args, dtype, x)
            print(f"\n== MonConv, {dtype} ==   (wall ms / CPU ms)")
            _print_passes(r)
            if dtype == "float32":  # the original ran in PyTorch's default float32
                verdict = "meets" if r["pass"]["cpu"] <= TARGET_PASS else "misses"
                print(f"  original PyTorch (float32) {TORCH_FORWARD + TORCH_BACKWARD:.1f} s: "
                      f"{verdict} <= {TARGET_PASS:.2f} s (CPU time)")
                ok &= r["pass"]["cpu"] <= TARGET_PASS
            print(f"  per iteration, CPU (slope {args.iters_low}..{args.iters_high}):"
                  "     ms   ratio   over floor")
            print(f"    bare work           {1e3 * r['bare']:6.1f}    1.00")
            print(f"    floor (free transposes) {1e3 * r['floor']:6.1f}")
            print(f"    forward             {1e3 * r['fwd_it']:6.1f}    {r['fwd_ratio']:.2f}"
                  f"    {r['fwd_floor']:.2f}")
            print(f"    backward            {1e3 * r['bwd_it']:6.1f}    {r['bwd_ratio']:.2f}"
                  f"    {r['bwd_floor']:.2f}")
            print(f"  peak memory (prepare + forward + backward) {r['peak'] / 2**20:.0f} MiB; "
                  f"batch x F x C x C complex would be {r['dense_size'] / 2**20:.0f} MiB")
            ok &= max(r["fwd_ratio"], r["bwd_ratio"]) <= TARGET_RATIO
            if tiers:
                t = measure_multitier(args, dtype, x, tiers)
                print(f"== MonMultiConv {tiers}, {dtype} ==   (wall ms / CPU ms)")
                _print_passes(t)
                print(f"  peak memory (prepare + forward + backward) {t['peak'] / 2**20:.0f} MiB")
    print(f"\nload average after: {_load()}")
    print(f"targets (ratio <= {TARGET_RATIO}; float32 forward + backward "
          f"<= {TARGET_PASS:.2f} s CPU): {'met' if ok else 'missed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
