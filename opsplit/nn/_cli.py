"""What the ``opsplit`` commands of :mod:`opsplit.nn` share: argument types,
the options that name data and threads, and the test batch of a checkpoint."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from .data import DATASETS, Dataset, load_dataset

__all__ = [
    "number_type",
    "positive_int",
    "positive_float",
    "threads_type",
    "add_data_arguments",
    "add_threads_argument",
    "add_checkpoint_arguments",
    "load_test_batch",
    "pixel_scale",
]


def number_type(kind, minimum, *, strict=False):
    """An argparse type: a finite ``kind`` (``int`` or ``float``) at least
    ``minimum`` (above it when ``strict``), with one message for each failure."""
    what = "an integer" if kind is int else "a finite number"
    bound = f"{what} {'>' if strict else '>='} {minimum}"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text!r}") from None
        if not math.isfinite(value) or value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value

    return parse


#: argparse types: an integer >= 1, a finite number > 0.
positive_int = number_type(int, 1)
positive_float = number_type(float, 0, strict=True)


def threads_type(text: str):
    """argparse type of ``--threads``: ``auto`` or an integer >= 1."""
    return "auto" if text == "auto" else positive_int(text)


def add_data_arguments(group) -> None:
    """``--data-dir`` and ``--download`` (for the data sets that are not shipped
    with a package)."""
    group.add_argument("--data-dir", type=Path, default=None,
                       help="directory of the mnist, cifar10 or svhn files (default: "
                            "$OPSPLIT_DATA, else ~/.cache/opsplit/<data set>)")
    group.add_argument("--download", action="store_true",
                       help="download the missing mnist, cifar10 or svhn files into --data-dir "
                            "(checksums verified)")


def add_threads_argument(group) -> None:
    group.add_argument("--threads", type=threads_type, default="auto", metavar="N",
                       help="BLAS threads: a count, or auto (default: one thread for models "
                            "whose batch products are small, where more threads only wait on "
                            "each other; see opsplit.nn.blas_threads)")


def add_checkpoint_arguments(parser) -> None:
    """The checkpoint and test-batch options of ``opsplit check`` and ``opsplit study``."""
    parser.add_argument("checkpoint", metavar="CHECKPOINT", type=Path,
                        help="a checkpoint written by `opsplit train` (.npz)")
    data = parser.add_argument_group("data")
    data.add_argument("--data", choices=DATASETS, default=None,
                      help="data set of the test batch (default: the one recorded in the "
                           "checkpoint)")
    add_data_arguments(data)
    data.add_argument("--samples", type=positive_int, default=None,
                      help="number of test samples to use")
    add_threads_argument(parser)


def load_test_batch(model, meta, args, default: int):
    """The first ``args.samples`` (else ``default``) test images and labels of the
    data set ``args.data`` (else the one the checkpoint records), checked
    against ``model``.

    Returns
    -------
    x : numpy.ndarray
        In the dtype of the parameters (``meta`` does not say; float32 images).
    y : numpy.ndarray
    data : Dataset
    """
    config = meta.get("config", {})
    name = args.data or config.get("dataset")
    if name is None:
        raise ValueError(f"checkpoint {args.checkpoint} records no data set; pass --data")
    data = load_dataset(name, data_dir=args.data_dir, download=args.download)
    model.check_sample_shape(data.x_test.shape[1:], f"--data {name}")
    if data.num_classes != model.num_classes:
        raise ValueError(f"--data {name} has {data.num_classes} classes but the model in "
                         f"{args.checkpoint} has {model.num_classes}")
    n = default if args.samples is None else args.samples
    return data.x_test[:n], data.y_test[:n], data


def pixel_scale(data: Dataset) -> float:
    """The size of one standardised input unit in pixel units of ``[0, 1]`` images:
    the standardisation's ``std`` (the smallest, for per-channel values), so that
    a radius in input units times it is a radius in pixel units (a lower bound
    with several channels)."""
    return float(np.min(data.std))
