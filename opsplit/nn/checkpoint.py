"""Training checkpoints: ``.npz`` files without pickle, written atomically.

A checkpoint holds one array per leaf of the parameter tree
(``params.deq.A``, ``params.head.weight``, ...) and of the optimizer state
(``opt.count``, ``opt.mu.deq.A``, ...), plus ``meta.json``: a UTF-8 JSON
document stored as a ``uint8`` array (format name and version, the completed
epoch, and whatever else the trainer records — configuration, RNG state,
step size, history).  Nothing is pickled: files are read with
``allow_pickle=False``.

Writing goes to a temporary file in the target's directory, which is
flushed, synced and then renamed over the target (:func:`os.replace`), so a
crash or a full disk never leaves a half-written checkpoint under the
target name and the previous checkpoint stays intact.

Loading checks the file against *templates* — freshly initialised trees
of the model that will receive it — and raises :class:`CheckpointError`
naming the first field whose presence, shape, dtype or values do not fit.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from array_api_compat import device as _device

from .._backend import namespace, to_numpy
from .._io import atomic_write
from .optim import tree_items, tree_unflatten

__all__ = ["CheckpointError", "Checkpoint", "save_checkpoint", "load_checkpoint", "FORMAT_VERSION"]

FORMAT_NAME = "opsplit.nn checkpoint"
FORMAT_VERSION = 1
_META = "meta.json"


class CheckpointError(ValueError):
    """A checkpoint file is unreadable or does not fit the model loading it."""


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` returns.

    Attributes
    ----------
    params : tree of arrays
        In the library, device and dtype of the template.
    opt_state : tree or None
        The optimizer state (``None`` when no template was given).
    epoch : int
        Number of completed epochs.
    meta : dict
        The JSON metadata (``format``, ``version``, ``epoch`` and the
        trainer's own entries).
    """

    params: Any
    opt_state: Any
    epoch: int
    meta: dict = field(default_factory=dict)


def _host(leaf) -> np.ndarray:
    if isinstance(leaf, (bool, np.bool_)):
        raise TypeError("boolean leaves are not supported in checkpoints")
    if isinstance(leaf, int):
        return np.asarray(leaf, dtype=np.int64)
    if isinstance(leaf, float):
        return np.asarray(leaf, dtype=np.float64)
    return np.ascontiguousarray(to_numpy(leaf))


def _arrays(params, opt_state) -> dict:
    out = {}
    for prefix, tree in (("params", params), ("opt", opt_state)):
        for name, leaf in tree_items(tree, prefix):
            arr = _host(leaf)
            if arr.dtype.kind not in "biuf":
                raise TypeError(f"{name} has dtype {arr.dtype}, which cannot be stored")
            out[name] = arr
    return out


def save_checkpoint(path, params, opt_state=None, *, epoch: int, meta: dict | None = None) -> Path:
    """Write a checkpoint to ``path`` atomically.

    Parameters
    ----------
    path : str or Path
        Target file (``.npz``); its directory is created if needed.
    params, opt_state : trees of arrays
        Model parameters and optimizer state (NumPy, CuPy or array-API
        arrays, or Python ints such as Adam's step count).
    epoch : int
        Number of completed epochs.
    meta : dict, optional
        Extra JSON-serialisable metadata.

    Returns
    -------
    Path

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "last.npz")
    >>> _ = save_checkpoint(path, (np.ones(2),), epoch=3, meta={"alpha": 0.5})
    >>> ck = load_checkpoint(path, (np.zeros(2),))
    >>> ck.params[0], ck.epoch, ck.meta["alpha"]
    (array([1., 1.]), 3, 0.5)
    """
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise ValueError(f"epoch must be an integer >= 0, got {epoch!r}")
    path = Path(path)
    document = dict(meta or {})
    document.update(format=FORMAT_NAME, version=FORMAT_VERSION, epoch=epoch)
    try:
        text = json.dumps(document, allow_nan=True)
    except TypeError as exc:
        raise TypeError(f"meta must be JSON-serialisable: {exc}") from exc
    arrays = _arrays(params, opt_state)
    arrays[_META] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)

    with atomic_write(path) as f:
        np.savez(f, **arrays)
    return path


def _read(path: Path) -> dict:
    with open(path, "rb") as f:  # our handle: closed even when np.load fails
        try:
            with np.load(f, allow_pickle=False) as npz:
                return {name: npz[name] for name in npz.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
            raise CheckpointError(
                f"checkpoint {path} is corrupted or truncated and cannot be read: {exc}"
            ) from exc


def _meta(path: Path, stored: dict) -> dict:
    raw = stored.pop(_META, None)
    if raw is None:
        raise CheckpointError(f"checkpoint {path} has no {_META}: not an opsplit checkpoint")
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise CheckpointError(f"checkpoint {path}: {_META} must be a 1-d uint8 array")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint {path}: {_META} is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise CheckpointError(f"checkpoint {path} is not an {FORMAT_NAME}")
    if meta.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {meta.get('version')!r}; "
            f"this opsplit reads version {FORMAT_VERSION}"
        )
    epoch = meta.get("epoch")
    if not isinstance(epoch, int) or epoch < 0:
        raise CheckpointError(f"checkpoint {path}: epoch must be an integer >= 0, got {epoch!r}")
    return meta


def _restore(path, stored, prefix, template):
    leaves = []
    for name, like in tree_items(template, prefix):
        if name not in stored:
            raise CheckpointError(f"checkpoint {path} has no array {name!r}")
        arr = stored.pop(name)
        want = _host(like)
        if arr.shape != want.shape:
            raise CheckpointError(
                f"checkpoint {path}: {name} has shape {arr.shape}, the model needs {want.shape}"
            )
        if arr.dtype != want.dtype:
            raise CheckpointError(
                f"checkpoint {path}: {name} has dtype {arr.dtype}, the model needs {want.dtype}"
            )
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise CheckpointError(f"checkpoint {path}: {name} contains NaN or Inf")
        if isinstance(like, int):
            leaves.append(int(arr))
        else:
            xp = namespace(like)
            leaves.append(xp.asarray(arr, device=_device(like)))
    return tree_unflatten(template, leaves)


def load_checkpoint(
    path, params_like, opt_state_like=None, *, config: dict | None = None
) -> Checkpoint:
    """Read and validate a checkpoint written by :func:`save_checkpoint`.

    Parameters
    ----------
    path : str or Path
    params_like, opt_state_like : trees
        Templates (e.g. freshly initialised parameters and optimizer state):
        the checkpoint must hold exactly their leaves with the same shapes
        and dtypes; the loaded arrays are placed in the templates' library
        and device.
    config : dict, optional
        Entries that must equal those of ``meta["config"]`` (e.g. the layer
        width), checked by name.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    CheckpointError
        When the file is corrupted or truncated, is not an opsplit
        checkpoint, or a field is missing, extra, of the wrong shape or
        dtype, or not finite; the message names the field.
    """
    path = Path(path)
    stored = _read(path)
    meta = _meta(path, stored)
    if config:
        saved = meta.get("config", {})
        for key, value in config.items():
            if key not in saved:
                raise CheckpointError(f"checkpoint {path} records no {key!r} in its config")
            if saved[key] != value:
                raise CheckpointError(
                    f"checkpoint {path} was written with {key}={saved[key]!r}, "
                    f"but this run has {key}={value!r}"
                )
    params = _restore(path, stored, "params", params_like)
    opt_state = None
    if opt_state_like is not None:
        opt_state = _restore(path, stored, "opt", opt_state_like)
    else:
        stored = {k: v for k, v in stored.items() if not k.startswith("opt.")}
    if stored:
        raise CheckpointError(
            f"checkpoint {path} has arrays the model does not use: {sorted(stored)}"
        )
    return Checkpoint(params, opt_state, meta["epoch"], meta)
