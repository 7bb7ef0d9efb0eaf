r"""Training a monDEQ classifier: step-size tuning and the loop.

:func:`fit` runs seeded epochs of mini-batch training of a
:class:`~opsplit.nn.model.Classifier` with any ``init``/``update`` optimizer
and learning-rate schedule, tunes the splitting step ``α`` as the monDEQ
paper does (:func:`tune_alpha`), evaluates the test accuracy after every
epoch, and writes a checkpoint after every completed epoch so that
``resume=True`` continues an interrupted run exactly.  The checkpoint records
the model's exact configuration (:meth:`Classifier.config
<opsplit.nn.model.Classifier.config>`), so :func:`~opsplit.nn.load_classifier`
rebuilds the model that was trained.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from .._backend import device, from_host, namespace, to_numpy
from .._io import check_writable_dir
from .._validate import check_positive_int
from .augment import random_crop_flip
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .data import Dataset
from .layers import accuracy_count
from .model import Classifier, ClassifierParams
from .optim import Adam, ConstantSchedule

__all__ = [
    "tune_alpha",
    "EpochRecord",
    "FitHistory",
    "fit",
    "blas_threads",
    "CHECKPOINT_NAME",
]

#: File name of the checkpoint written after every completed epoch.
CHECKPOINT_NAME = "last.npz"

#: Below this many multiply-adds per batch product (``batch · width · max(width,
#: in_features)``) one BLAS thread is fastest; see :func:`blas_threads`.
THREADS_WORK_THRESHOLD = 10**8


def blas_threads(threads, model: Classifier, batch_size: int) -> int | None:
    """The BLAS thread count for training ``model`` with batches of ``batch_size``.

    Parameters
    ----------
    threads : int, "auto" or None
        An explicit count (returned as is); ``None`` to leave the BLAS
        library's own setting; ``"auto"`` to choose by problem size: for a
        dense layer one thread when a batch product has fewer than
        :data:`THREADS_WORK_THRESHOLD` multiply-adds, the library's default
        (``None``) above; one thread for the convolutional layers, whose
        products are thousands of small per-frequency ``C × C`` blocks.
    model : Classifier
    batch_size : int

    Returns
    -------
    int or None
        What :func:`threadpoolctl.threadpool_limits` receives as ``limits``.

    Notes
    -----
    Each solver iteration of a small model is a few products of a few
    microseconds: a second OpenBLAS thread costs more to wake and join than
    it saves, and on a machine whose cores are busy with other work it
    waits for a core.  Measured with :func:`fit` on 2,000 mnist-sample
    images (one epoch, median of three; a 2-core machine, NumPy 2.4 with
    OpenBLAS 0.3.31, shared with other jobs): width 87, batch 128: 0.09 s
    with one thread, 0.76 s with two; width 300: 0.28 s against 5.2 s;
    width 1000, batch 256 (2.6·10⁸ multiply-adds): 2.2 s against 1.3 s, where
    two threads pay off — unless a busy loop holds one of the cores (2.3 s
    against 6.6 s).  The single-convolution MNIST model (54 channels, batch
    128 of mnist-sample, one forward and backward pass, the machine shared
    with other jobs at a load of 5–8): 6.8 s and 11.4 s with one thread,
    89 s and 58 s with two.

    Examples
    --------
    >>> model = Classifier.dense(784, 87)
    >>> blas_threads("auto", model, 128), blas_threads(3, model, 128)
    (1, 3)
    >>> blas_threads("auto", Classifier.dense(784, 1000), 256) is None
    True
    """
    if threads is None:
        return None
    if threads == "auto":
        if model.kind != "dense":
            return 1
        layer = model.layer
        work = batch_size * layer.width * max(layer.width, layer.in_features)
        return 1 if work < THREADS_WORK_THRESHOLD else None
    return check_positive_int(threads, "threads")


def tune_alpha(model: Classifier, params: ClassifierParams, x, *, max_alpha: float = 1.0,
               min_alpha: float = 1e-4):
    r"""Choose the splitting step ``α`` on a batch as the monDEQ paper does.

    Starting from ``max_alpha``, halve ``α`` while the number of forward
    iterations on ``x`` does not rise, and keep the last ``α`` whose count
    did not rise (Winston & Kolter 2020, ``run_tune_alpha`` in the authors'
    code).  When no tried ``α`` converges within ``maxiter``, the model's
    current ``α`` is kept.

    Parameters
    ----------
    model : Classifier
        The model whose forward solve is probed.
    params : ClassifierParams
        Its current parameters.
    x : array
        A batch of inputs.
    max_alpha : float
        The first (largest) step tried.
    min_alpha : float
        Halving stops below this step.

    Returns
    -------
    alpha : float
        The chosen step.
    trace : list of (alpha, iterations)
        Every probe, in order.
    """
    inputs = model.equilibrium_input(x)

    def probe(alpha):
        _, state = model.deq.with_step(alpha).forward(params.deq, inputs)
        return state.result.iterations

    alpha = float(max_alpha)
    best_alpha, best_iters = alpha, probe(alpha)
    trace = [(alpha, best_iters)]
    while alpha / 2 >= min_alpha:
        alpha /= 2
        iters = probe(alpha)
        trace.append((alpha, iters))
        if iters > best_iters:
            break
        best_alpha, best_iters = alpha, iters
    if best_iters >= model.deq.maxiter:
        return model.alpha, trace
    return best_alpha, trace


class EpochRecord(NamedTuple):
    """Figures of one completed epoch (``epoch`` counts from 1).

    ``loss`` and ``train_acc`` are running means over the epoch's mini-batches
    (as the parameters changed); ``test_acc`` is measured after the epoch.
    Iterations and times are means per training batch; ``fwd_curve`` and
    ``bwd_curve`` are the residual histories of the epoch's last batch, one
    entry per iteration (``None`` where the solve recorded none: between
    its checks).
    """

    epoch: int
    loss: float
    train_acc: float
    test_acc: float
    fwd_iters: float
    bwd_iters: float
    fwd_time: float
    bwd_time: float
    alpha: float
    lr: float
    wall_time: float
    nonconverged: int
    fwd_curve: tuple
    bwd_curve: tuple

    def to_json(self) -> dict:
        d = self._asdict()
        d["fwd_curve"] = list(self.fwd_curve)
        d["bwd_curve"] = list(self.bwd_curve)
        return d

    @classmethod
    def from_json(cls, d: dict) -> EpochRecord:
        d = dict(d)
        d["fwd_curve"] = tuple(d["fwd_curve"])
        d["bwd_curve"] = tuple(d["bwd_curve"])
        return cls(**d)


def _curve(history) -> tuple:
    """A residual history per iteration as JSON-ready floats, ``None`` for NaN."""
    return tuple(None if math.isnan(v) else float(v) for v in history)


_COLUMNS = (
    ("epoch", "{:>5d}", "epoch"),
    ("loss", "{:>7.4f}", "loss"),
    ("train", "{:>6.2%}", "train_acc"),
    ("test", "{:>6.2%}", "test_acc"),
    ("fwd it", "{:>6.1f}", "fwd_iters"),
    ("bwd it", "{:>6.1f}", "bwd_iters"),
    ("fwd ms", "{:>7.2f}", "fwd_time"),
    ("bwd ms", "{:>7.2f}", "bwd_time"),
    ("alpha", "{:>8.4g}", "alpha"),
    ("lr", "{:>8.2g}", "lr"),
    ("time s", "{:>7.1f}", "wall_time"),
)


@dataclass
class FitHistory:
    """What :func:`fit` returns: one :class:`EpochRecord` per completed epoch,
    the final parameters, optimizer state and model (with its tuned ``α``)."""

    records: list = field(default_factory=list)
    params: Any = None
    opt_state: Any = None
    model: Classifier | None = None
    resumed_from: int = 0

    @property
    def test_accuracy(self) -> float:
        """Test accuracy after the last epoch."""
        return self.records[-1].test_acc if self.records else float("nan")

    def column(self, name: str) -> np.ndarray:
        """One figure across epochs, e.g. ``history.column("test_acc")``."""
        return np.asarray([getattr(r, name) for r in self.records])

    @staticmethod
    def header() -> str:
        widths = [len(fmt.format(0 if key == "epoch" else 0.0)) for _, fmt, key in _COLUMNS]
        return "  ".join(f"{title:>{w}}" for (title, _, _), w in zip(_COLUMNS, widths))

    @staticmethod
    def row(record: EpochRecord) -> str:
        values = []
        for _, fmt, key in _COLUMNS:
            value = getattr(record, key)
            if key in ("fwd_time", "bwd_time"):
                value = 1e3 * value
            values.append(fmt.format(value))
        return "  ".join(values)

    def table(self) -> str:
        """The per-epoch table as text."""
        return "\n".join([self.header()] + [self.row(r) for r in self.records])


def _evaluate(model, params, x_dev, y_dev, batch_size) -> float:
    xp = namespace(x_dev)
    n = x_dev.shape[0]
    correct = xp.asarray(0, dtype=xp.int64, device=device(x_dev))
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        correct = correct + accuracy_count(
            model.logits(params, x_dev[start:stop, ...]), y_dev[start:stop]
        )
    return int(to_numpy(correct)) / max(n, 1)


def fit(
    model: Classifier,
    params: ClassifierParams,
    data: Dataset,
    *,
    epochs: int,
    batch_size: int = 128,
    optimizer=None,
    schedule=None,
    seed: int = 0,
    tune: bool = True,
    max_alpha: float = 1.0,
    checkpoint_dir=None,
    resume: bool = False,
    progress: bool | None = None,
    eval_batch_size: int = 1000,
    config: dict | None = None,
    threads="auto",
    augment: bool = False,
    log=None,
) -> FitHistory:
    """Train ``model`` from ``params`` on ``data`` for ``epochs`` epochs.

    Parameters
    ----------
    model : Classifier
        The model; its configuration (:meth:`Classifier.config
        <opsplit.nn.model.Classifier.config>`) is recorded in the checkpoint.
    params : ClassifierParams
        Initial parameters; their library, device and dtype are used for
        the whole run (the data are copied there once).
    data : Dataset
        Host arrays whose samples fit the model
        (:meth:`Classifier.check_sample_shape
        <opsplit.nn.model.Classifier.check_sample_shape>`).
    epochs : int
        Total number of epochs, ``>= 1`` (with ``resume``, including those
        already done).
    batch_size : int
        Mini-batch size (the last batch of an epoch may be smaller).
    optimizer : object with ``init``/``update``
        Default ``Adam(lr=1e-3)``.
    schedule : callable ``epoch -> lr``
        Evaluated at ``epoch + batch/num_batches`` (epochs from 0); default
        the optimizer's constant rate.  The paper's MNIST schedule is
        ``StepSchedule(1e-3, milestones=(10,))``.
    seed : int
        Seed of the shuffling generator: the same seed gives the same run.
    tune : bool
        Tune ``α`` with :func:`tune_alpha` on the training batch at positions
        30 and ``num_batches // 2`` of every epoch, as the paper does.
    max_alpha : float
        Largest ``α`` tried by the tuning.
    checkpoint_dir : path, optional
        Write ``last.npz`` there (atomically) after every completed epoch.
        It is created, and checked to be writable, before training starts.
    resume : bool
        Continue from ``checkpoint_dir/last.npz`` when it exists (parameters,
        optimizer state, ``α``, shuffling generator, history); a fresh run
        otherwise.
    progress : bool or None
        Show a tqdm progress bar over each epoch's batches: ``None`` (the
        default) only when standard error is a terminal.
    eval_batch_size : int
        Batch size of the test-set evaluation.
    config : dict, optional
        Extra run settings recorded in the checkpoint beside the model's
        configuration (under ``"model"``) and the seed, and required to match
        on resume (the CLI records the data set and batch size).
    threads : int, "auto" or None
        BLAS threads during the run (see :func:`blas_threads`): ``"auto"``
        (default) chooses one thread for small models, ``None`` leaves the
        library's setting.  Restored when :func:`fit` returns.
    augment : bool
        Augment every training batch as the monDEQ paper does for its large
        CIFAR-10 models: a random crop of the image padded by 4 pixels and a
        horizontal flip with probability 1/2
        (:func:`~opsplit.nn.augment.random_crop_flip`), the padding black
        before standardisation (``-mean/std`` per channel), drawn from the
        run's seeded generator after the batch's shuffle, so that the same
        seed, and a resumed run, give the same batches bit for bit.
    log : callable, optional
        Called with each line of the per-epoch table (``print`` for the CLI).

    Returns
    -------
    FitHistory
    """
    if not isinstance(model, Classifier):
        raise TypeError(f"model must be a Classifier, got {type(model).__name__}")
    if not isinstance(data, Dataset):
        raise TypeError(f"data must be a Dataset, got {type(data).__name__}")
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    eval_batch_size = check_positive_int(eval_batch_size, "eval_batch_size")
    model.check_sample_shape(data.image_shape, "data")
    if augment and len(data.image_shape) != 3:
        raise ValueError(f"augment needs images (channels, H, W), data has samples of shape "
                         f"{data.image_shape}")
    if data.num_classes != model.num_classes:
        raise ValueError(
            f"data has {data.num_classes} classes but the model has {model.num_classes}"
        )
    if data.x_train.shape[0] == 0:
        raise ValueError("data has no training samples")
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs a checkpoint_dir")
    extra = dict(config or {})
    reserved = sorted({"model", "seed", "augment"} & set(extra))
    if reserved:
        raise ValueError(f"config must not set {reserved}: fit records them itself")
    model.layer.check_params(params.deq)
    model.head.check_params(params.head, "params.head")
    limit = blas_threads(threads, model, batch_size)
    if checkpoint_dir is not None:
        check_writable_dir(checkpoint_dir, "checkpoint_dir")
    with threadpool_limits(limits=limit, user_api="blas"):
        return _fit(model, params, data, epochs=epochs, batch_size=batch_size,
                    optimizer=Adam() if optimizer is None else optimizer, schedule=schedule,
                    seed=seed, tune=tune, max_alpha=max_alpha, checkpoint_dir=checkpoint_dir,
                    resume=resume, progress=progress, eval_batch_size=eval_batch_size,
                    fill=_black(data) if augment else None,
                    run_config={"model": model.config(), **extra, "seed": seed,
                                "augment": bool(augment)},
                    say=log if log is not None else (lambda line: None))


def _black(data: Dataset):
    """The standardised value of a black pixel, per channel: the augmentation's padding."""
    channels = data.image_shape[0]
    mean = np.broadcast_to(np.asarray(data.mean, dtype=np.float64), (channels,))
    std = np.broadcast_to(np.asarray(data.std, dtype=np.float64), (channels,))
    return -mean / std


def _fit(model, params, data, *, epochs, batch_size, optimizer, schedule, seed, tune, max_alpha,
         checkpoint_dir, resume, progress, eval_batch_size, fill, run_config,
         say) -> FitHistory:
    schedule = ConstantSchedule(optimizer.lr) if schedule is None else schedule
    like = params.head.weight
    x_train = from_host(data.x_train, like)
    x_test = from_host(data.x_test, like)
    xp = namespace(like)
    y_train = from_host(data.y_train, like, "int64")
    y_test = from_host(data.y_test, like, "int64")

    rng = np.random.default_rng(seed)
    opt_state = optimizer.init(params)
    history = FitHistory(model=model)
    path = None if checkpoint_dir is None else Path(checkpoint_dir) / CHECKPOINT_NAME
    if resume and path.exists():
        ck = load_checkpoint(path, params, opt_state, config=run_config)
        params, opt_state = ck.params, ck.opt_state
        try:
            rng.bit_generator.state = ck.meta["rng"]
            model = model.with_alpha(ck.meta["alpha"])
            history.records = [EpochRecord.from_json(r) for r in ck.meta["history"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"checkpoint {path} lacks a valid training state (rng, alpha, history): {exc!r}"
            ) from exc
        if len(history.records) != ck.epoch:
            raise CheckpointError(
                f"checkpoint {path} is at epoch {ck.epoch} but records "
                f"{len(history.records)} epochs of history"
            )
        history.resumed_from = ck.epoch
        say(f"resuming from {path} after epoch {ck.epoch} (alpha {model.alpha:g})")
    elif resume:
        say(f"no checkpoint at {path}; starting a fresh run")

    n = x_train.shape[0]
    num_batches = math.ceil(n / batch_size)
    tune_at = {num_batches // 2, 30} if tune else set()
    say(FitHistory.header())
    for r in history.records:
        say(FitHistory.row(r))
    for epoch in range(len(history.records), epochs):
        start = time.perf_counter()
        order = rng.permutation(n)
        sums = dict(loss=0.0, correct=0, fwd_iters=0, bwd_iters=0, fwd_time=0.0, bwd_time=0.0)
        nonconverged = 0
        # disable=None: tqdm shows the bar only when its output is a terminal.
        bar = tqdm(total=num_batches, desc=f"epoch {epoch + 1}/{epochs}",
                   disable=None if progress is None else not progress, leave=False, unit="batch")
        lr = schedule(epoch)
        stats = None
        for b in range(num_batches):
            rows = from_host(order[b * batch_size:(b + 1) * batch_size], like, "int64")
            xb = xp.take(x_train, rows, axis=0)
            yb = xp.take(y_train, rows, axis=0)
            if fill is not None:
                xb = random_crop_flip(xb, rng, padding=4, fill=fill)
            if b in tune_at:
                model = model.with_alpha(tune_alpha(model, params, xb, max_alpha=max_alpha)[0])
            lr = schedule(epoch + b / num_batches)
            _, grads, stats = model.loss_and_grad(params, xb, yb)
            params, opt_state = optimizer.update(params, grads, opt_state, lr=lr)
            for key in sums:
                sums[key] += getattr(stats, key) * (rows.shape[0] if key == "loss" else 1)
            nonconverged += not stats.converged
            bar.update(1)
            bar.set_postfix(loss=f"{stats.loss:.3f}", fwd=stats.fwd_iters, bwd=stats.bwd_iters,
                            alpha=f"{model.alpha:.3g}")
        bar.close()
        test_acc = _evaluate(model, params, x_test, y_test, eval_batch_size)
        record = EpochRecord(
            epoch=epoch + 1,
            loss=sums["loss"] / n,
            train_acc=sums["correct"] / n,
            test_acc=test_acc,
            fwd_iters=sums["fwd_iters"] / num_batches,
            bwd_iters=sums["bwd_iters"] / num_batches,
            fwd_time=sums["fwd_time"] / num_batches,
            bwd_time=sums["bwd_time"] / num_batches,
            alpha=model.alpha,
            lr=lr,
            wall_time=time.perf_counter() - start,
            nonconverged=nonconverged,
            fwd_curve=_curve(stats.fwd_history),
            bwd_curve=_curve(stats.bwd_history),
        )
        history.records.append(record)
        say(FitHistory.row(record))
        if nonconverged:
            say(f"  note: {nonconverged} of {num_batches} batches stopped before tol "
                f"(maxiter {model.deq.maxiter})")
        if path is not None:
            save_checkpoint(
                path, params, opt_state, epoch=epoch + 1,
                meta={
                    "alpha": model.alpha,
                    "rng": rng.bit_generator.state,
                    "config": run_config,
                    "history": [r.to_json() for r in history.records],
                },
            )
    history.params, history.opt_state, history.model = params, opt_state, model
    return history
