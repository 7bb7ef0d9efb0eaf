"""What ``opsplit check`` and ``opsplit study`` share: reading a training
checkpoint back into a classifier, and picking a batch of test data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["add_common_arguments", "load_classifier", "load_test_batch"]

# Class names recorded in checkpoint configs -> activation names of MonDEQ.
_ACTIVATIONS = {
    "ReLU": "relu",
    "LeakyReLU": "leaky_relu",
    "HardTanh": "hardtanh",
    "Tanh": "tanh",
    "Sigmoid": "sigmoid",
    "Softplus": "softplus",
}
_METHODS = {"PeacemanRachford": "pr", "DouglasRachford": "dr", "ForwardBackward": "fb"}


def add_common_arguments(parser) -> None:
    parser.add_argument("checkpoint", metavar="CHECKPOINT",
                        help="a checkpoint written by `opsplit train` (.npz)")
    parser.add_argument("--data", default=None,
                        help="data set of the test batch (default: the one recorded in the "
                             "checkpoint, else mnist-sample)")
    parser.add_argument("--samples", type=int, default=None,
                        help="number of test samples to use")


def _read_meta(path: Path):
    """The checkpoint's JSON metadata and the dtype of its parameters."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            meta = json.loads(bytes(stored["meta.json"]).decode("utf-8"))
            dtype = str(stored["params.deq.U"].dtype)
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"{path} is not a readable opsplit checkpoint: {exc}") from exc
    return meta, dtype


def load_classifier(path):
    """Rebuild the classifier, its parameters and metadata from a checkpoint.

    Returns
    -------
    model : opsplit.nn.Classifier
        With the step ``α`` the training ended with.
    params : ClassifierParams
        NumPy arrays in the stored dtype.
    meta : dict
    """
    from ..nn.checkpoint import load_checkpoint
    from ..nn.train import Classifier

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    meta, dtype = _read_meta(path)
    cfg = meta.get("config", {})
    if cfg.get("model", "dense") != "dense":
        raise ValueError(f"checkpoint {path} holds a {cfg.get('model')!r} model; "
                         "only dense monDEQ classifiers are supported")
    try:
        model = Classifier.dense(
            in_features=int(cfg["in_features"]),
            width=int(cfg["width"]),
            m=float(cfg["m"]),
            method=_METHODS.get(cfg.get("method", "PeacemanRachford"), "pr"),
            alpha=float(meta.get("alpha", 1.0)),
            activation=_ACTIVATIONS.get(cfg.get("activation", "ReLU"), "relu"),
            num_classes=int(cfg.get("num_classes", 10)),
        )
    except KeyError as exc:
        raise ValueError(f"checkpoint {path} records no {exc.args[0]!r} in its config") from exc
    template = model.init_params(seed=0, dtype=dtype)
    ck = load_checkpoint(path, template)
    return model, ck.params, meta


def load_test_batch(meta, name=None, samples=None, default=256):
    """The first ``samples`` test images and labels of the data set ``name``
    (default: the one the checkpoint records, else ``"mnist-sample"``)."""
    from ..nn.data import load_dataset

    cfg = meta.get("config", {})
    name = name or cfg.get("dataset") or cfg.get("data") or "mnist-sample"
    data = load_dataset(name)
    n = default if samples is None else int(samples)
    if n < 1:
        raise ValueError(f"--samples must be >= 1, got {n}")
    return data.x_test[:n], data.y_test[:n], name
