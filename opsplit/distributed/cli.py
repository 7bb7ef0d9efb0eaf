"""``opsplit solve-distributed FOLDER``: a sharded LASSO, ℓ₁ logistic or
ℓ₁ Huber regression solved by consensus splitting on Dask workers.

Every ``.npz`` file of ``FOLDER`` (in name order) is one shard holding the
arrays ``A`` (rows × n) and ``b`` (rows,); the problem is

.. math::

    \\min_x\\; \\sum_i \\operatorname{loss}(A_i x, b_i) + \\lambda \\|x\\|_1,

posed as a :class:`~opsplit.distributed.Consensus` and solved by the one
driver :func:`opsplit.solve`.  The workers read their shards themselves
(only the file names travel); ``--workers N`` starts an embedded
``LocalCluster`` of ``N`` processes, ``--scheduler ADDRESS`` uses a running
cluster, and ``--workers 0`` solves in this process without Dask (the
reference solve).  A progress bar follows the residual; the summary gives
the status, iterations, residual, time, objective, the nonzeros of ``x`` and
what happened to lost workers.  ``--out x.npy`` writes the solution
atomically.  Exits with status 0 when the solve converged, 1 when it did
not (or the cluster failed: the last consistent iterate is written to
``--out`` then), 2 on bad arguments or unreadable or inconsistent shards.

Dask is imported only when the command runs (``pip install
'opsplit[distributed]'``).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import numpy as np

from .._io import atomic_write, check_writable_dir
from .._solve import solve
from ..nn._cli import number_type, positive_float, positive_int
from ..prox import L1
from ..splitting import Anderson, method_from_name

__all__ = ["add_arguments", "run", "shard_paths", "summary", "METHODS", "LOSSES"]

#: The values of ``--method``.
METHODS = ("dr", "admm", "anderson-dr")

#: The values of ``--loss``.
LOSSES = ("least_squares", "logistic", "huber")

#: Workers of the embedded cluster when neither ``--workers`` nor ``--scheduler`` is given.
DEFAULT_WORKERS = 2


#: argparse types: an integer >= 0, a finite number >= 0.
_nonnegative_int = number_type(int, 0)
_nonnegative_float = number_type(float, 0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``opsplit solve-distributed`` options to ``parser``."""
    parser.add_argument("folder", type=Path, metavar="FOLDER",
                        help="folder of .npz shards, each holding A (rows x n) and b (rows,)")
    problem = parser.add_argument_group("problem")
    problem.add_argument("--loss", choices=LOSSES, required=True,
                         help="least_squares: 1/2 ||A x - b||^2; logistic: sum log(1 + "
                              "exp(-b * A x)), labels b = +-1; huber: the Huber loss of A x - b")
    problem.add_argument("--l1", type=_nonnegative_float, required=True, metavar="LAM",
                         help="weight of the l1 penalty LAM ||x||_1")
    problem.add_argument("--delta", type=positive_float, default=1.0,
                         help="threshold of the Huber loss (1.0; --loss huber only)")
    solver = parser.add_argument_group("solver")
    solver.add_argument("--method", choices=METHODS, default="dr",
                        help="dr: Douglas-Rachford; admm: ADMM (rho = 1/step); anderson-dr: "
                             "Douglas-Rachford with safeguarded Anderson acceleration "
                             "(memory 5) on the consensus variable (default dr)")
    solver.add_argument("--step", type=positive_float, default=1.0,
                        help="step alpha of the resolvents (1.0); it sets the iteration "
                             "count: for least squares about 1/sqrt(mu L), mu and L the "
                             "extreme eigenvalues of the shards' A_i^T A_i")
    solver.add_argument("--tol", type=positive_float, default=1e-8,
                        help="relative fixed-point residual at which the solve stops (1e-8)")
    solver.add_argument("--maxiter", type=positive_int, default=5000,
                        help="iteration limit (5000)")
    cluster = parser.add_argument_group("cluster")
    cluster.add_argument("--workers", type=_nonnegative_int, default=None,
                         help=f"worker processes of an embedded LocalCluster (default "
                              f"{DEFAULT_WORKERS}); 0: solve in this process, without Dask")
    cluster.add_argument("--scheduler", default=None, metavar="ADDRESS",
                         help="address of a running Dask scheduler (tcp://host:8786) "
                              "instead of an embedded cluster")
    cluster.add_argument("--timeout", type=positive_float, default=60.0,
                         help="seconds to wait for the workers of one iteration before "
                              "giving up (60), and at most 10 for --scheduler to answer")
    out = parser.add_argument_group("output")
    out.add_argument("--out", type=Path, default=None, metavar="NPY",
                     help="write the solution x here (.npy, written atomically)")
    out.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                     help="no progress bar (by default it shows on a terminal only)")


def shard_paths(folder) -> list[Path]:
    """The ``.npz`` files of ``folder`` in name order.

    Raises
    ------
    ValueError
        When ``folder`` is not a directory or holds no ``.npz`` file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"FOLDER {folder} is not a directory")
    paths = sorted(p for p in folder.iterdir() if p.suffix == ".npz" and p.is_file())
    if not paths:
        raise ValueError(f"FOLDER {folder} holds no .npz shard (each shard: arrays A and b)")
    return paths


def _method(name: str, step: float):
    if name == "anderson-dr":
        return Anderson(method_from_name("dr", step=step), memory=5)
    return method_from_name(name, step=step)


def _distributed():
    try:
        from .. import distributed
    except ImportError as exc:  # dask is an optional extra
        raise ValueError("opsplit solve-distributed needs Dask: "
                         "pip install 'opsplit[distributed]'") from exc
    return distributed


@contextlib.contextmanager
def _client(args, distributed):
    """The Dask client the options ask for (``None`` for ``--workers 0``),
    closed (with its embedded cluster) on exit."""
    if args.scheduler is not None:
        if args.workers is not None:
            raise ValueError("give --workers (an embedded cluster) or --scheduler "
                             "(a running one), not both")
        client = distributed.connect(args.scheduler, timeout=min(args.timeout, 10.0))
        where = f"scheduler {args.scheduler}"
    elif args.workers == 0:
        yield None, "this process (no Dask)"
        return
    else:
        n = DEFAULT_WORKERS if args.workers is None else args.workers
        client = distributed.local_client(n_workers=n)
        where = f"{n} local worker process{'es' if n > 1 else ''}"
    try:
        yield client, where
    finally:
        client.close()  # an embedded cluster closes with its client


def _progress_callback(bar):
    def callback(iteration, residual, state):
        bar.update(iteration - bar.n)
        bar.set_postfix_str(f"residual {float(np.max(residual)):.2e}", refresh=False)
        return False

    return callback


def _write(path: Path, x) -> None:
    with atomic_write(path) as f:
        np.save(f, np.asarray(x))


def summary(res, objective: float, x) -> str:
    """The result's account: status, iterations, residual, time, objective,
    nonzeros, and the message (which carries the lost-worker notes)."""
    last = float(res.history[-1]) if res.history.size else float("nan")
    x = np.asarray(x)
    lines = [
        f"status: {res.status.value}",
        f"message: {res.message}",
        f"iterations: {res.iterations}",
        f"residual: {last:.3e}",
        f"time: {res.wall_time:.3f} s",
        f"objective: {objective:.10g}",
        f"nonzeros: {int(np.count_nonzero(x))} of {x.size}",
    ]
    return "\n".join(lines)


def run(args) -> int:
    """Run ``opsplit solve-distributed`` with parsed ``args``; return the exit status."""
    from tqdm.auto import tqdm

    paths = shard_paths(args.folder)
    if args.out is not None:
        check_writable_dir(args.out.parent, "the directory of --out")
    method = _method(args.method, args.step)
    distributed = _distributed()
    with _client(args, distributed) as (client, where):
        start = time.perf_counter()
        # Absolute paths: a cluster's workers need not share this working directory.
        problem = distributed.Consensus([str(p.resolve()) for p in paths], loss=args.loss,
                                        regularizer=L1(args.l1), client=client,
                                        delta=args.delta, timeout=args.timeout)
        n = problem.n
        print(f"opsplit solve-distributed: {len(paths)} shards of {args.folder}, "
              f"{sum(problem.rows)} rows x {n} features, loss {args.loss} + {args.l1:g}*||x||_1; "
              f"{type(method).__name__} step {args.step:g}, tol {args.tol:g}; "
              f"on {where} (set-up {time.perf_counter() - start:.2f} s)", flush=True)
        bar = tqdm(total=args.maxiter, desc="solve", unit="it", leave=False,
                   disable=None if args.progress is None else not args.progress)
        # The cluster failing (scheduler gone, timeout) is no argument error: status 1,
        # with the last consistent iterate kept.
        cluster_errors = () if client is None else (distributed.DistributedError,)
        try:
            with bar:
                res = solve(problem, method, np.zeros(n), tol=args.tol, maxiter=args.maxiter,
                            callback=_progress_callback(bar))
            x = np.asarray(res.x)
            objective = float(problem.objective(res.x))
        except cluster_errors as exc:
            print(f"opsplit solve-distributed: error: {exc}", file=sys.stderr, flush=True)
            last = getattr(exc, "last_iterate", None)
            if last is not None and args.out is not None:
                _write(args.out, last)
                print(f"last consistent iterate: {args.out}")
            return 1
        finally:
            problem.close()  # a shared cluster's workers drop the shards
    print(summary(res, objective, x))
    if args.out is not None:
        _write(args.out, x)
        print(f"x: {args.out}")
    return 0 if res.success else 1
