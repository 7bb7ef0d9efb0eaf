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
:func:`load_classifier` needs no template: it rebuilds the trained
:class:`~opsplit.nn.model.Classifier` from the exact configuration that
:func:`opsplit.nn.fit` records.
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
from .model import Classifier
from .optim import tree_items, tree_unflatten

__all__ = [
    "CheckpointError",
    "Checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "load_classifier",
    "FORMAT_VERSION",
]

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
    return np.asarray(to_numpy(leaf), order="C")  # keeps 0-d leaves 0-d (g, h)


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
    params : tree of arrays
        Model parameters (NumPy, CuPy or array-API arrays).
    opt_state : tree of arrays, optional
        Optimizer state (arrays, or Python ints such as Adam's step count).
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


_ZIP_MAGIC = b"PK\x03\x04"


def _read(path: Path) -> dict:
    """Every array of the ``.npz`` at ``path``; a :class:`CheckpointError` naming
    the file for anything that is not a readable ``.npz`` archive."""
    try:
        f = open(path, "rb")  # our handle: closed even when np.load fails
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint {path} does not exist") from None
    except OSError as exc:
        raise CheckpointError(
            f"checkpoint {path} cannot be opened: {exc.strerror or exc}"
        ) from None
    with f:
        head = f.read(len(_ZIP_MAGIC))
        if not head:
            raise CheckpointError(
                f"checkpoint {path} is corrupted or truncated and cannot be read: empty file"
            )
        if head != _ZIP_MAGIC:
            raise CheckpointError(
                f"checkpoint {path} is corrupted or truncated and cannot be read: not an .npz "
                "(zip) archive"
            )
        f.seek(0)
        try:
            with np.load(f, allow_pickle=False) as npz:
                return {name: npz[name] for name in npz.files}
        except ValueError as exc:
            if "pickle" in str(exc):  # numpy's own message would suggest unpickling
                raise CheckpointError(
                    f"checkpoint {path} holds an array of Python objects, which opsplit "
                    "never loads: checkpoints hold numeric arrays only"
                ) from None
            raise CheckpointError(
                f"checkpoint {path} is corrupted or truncated and cannot be read: {exc}"
            ) from exc
        except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
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


def _first_difference(saved, wanted, prefix=""):
    """``(name, saved value, wanted value)`` of the first entry of ``wanted`` that
    ``saved`` lacks (saved value ``KeyError``) or holds differently, nested dicts
    compared entry by entry (``"model.width"``); ``None`` when all agree."""
    for key, value in wanted.items():
        name = f"{prefix}{key}"
        if not isinstance(saved, dict) or key not in saved:
            return name, KeyError, value
        if isinstance(value, dict) and isinstance(saved[key], dict):
            found = _first_difference(saved[key], value, f"{name}.")
            if found is not None:
                return found
        elif saved[key] != value:
            return name, saved[key], value
    return None


def _check_config(path, meta, config):
    found = _first_difference(meta.get("config", {}), config)
    if found is None:
        return
    name, saved, value = found
    if saved is KeyError:
        raise CheckpointError(f"checkpoint {path} records no {name!r} in its config")
    raise CheckpointError(
        f"checkpoint {path} was written with {name}={saved!r}, but this run has {name}={value!r}"
    )


def _unpack(path, stored, meta, params_like, opt_state_like) -> Checkpoint:
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


def load_checkpoint(
    path, params_like, opt_state_like=None, *, config: dict | None = None
) -> Checkpoint:
    """Read and validate a checkpoint written by :func:`save_checkpoint`.

    Parameters
    ----------
    path : str or Path
        The ``.npz`` file.
    params_like : tree
        Template of the parameters (e.g. freshly initialised ones): the
        checkpoint must hold exactly its leaves with the same shapes and
        dtypes; the loaded arrays are placed in the template's library and
        device.
    opt_state_like : tree, optional
        The same for the optimizer state.
    config : dict, optional
        Entries that must equal those of ``meta["config"]`` (e.g. the layer
        width), checked by name; nested dicts entry by entry.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    CheckpointError
        When the file is empty, corrupted or truncated, not an ``.npz``
        archive, not an opsplit checkpoint, or a field is missing, extra, of
        the wrong shape or dtype, or not finite; the message names the file
        and the field.
    """
    path = Path(path)
    stored = _read(path)
    meta = _meta(path, stored)
    if config:
        _check_config(path, meta, config)
    return _unpack(path, stored, meta, params_like, opt_state_like)


def load_classifier(path):
    """The classifier a training checkpoint holds, exactly as it was trained.

    The model is rebuilt with :meth:`Classifier.from_config
    <opsplit.nn.model.Classifier.from_config>` from the configuration the
    checkpoint records (activation, methods, tolerances and every other
    setting), with the step ``α`` that training had reached.

    Parameters
    ----------
    path : str or Path
        A checkpoint written by :func:`opsplit.nn.fit` (``opsplit train``).

    Returns
    -------
    model : Classifier
    params : ClassifierParams
        NumPy arrays in the stored dtype.
    meta : dict
        The checkpoint's metadata (``epoch``, ``config``, ``history``, ...).

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    CheckpointError
        When the file is unreadable, or its model configuration is missing,
        incomplete or invalid (never replaced by defaults).
    """
    path = Path(path)
    stored = _read(path)
    meta = _meta(path, stored)
    config = meta.get("config")
    if not isinstance(config, dict) or "model" not in config:
        raise CheckpointError(
            f"checkpoint {path} records no model configuration (not written by opsplit.nn.fit)"
        )
    try:
        model = Classifier.from_config(config["model"])
        if "alpha" in meta:
            model = model.with_alpha(meta["alpha"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} has an invalid model configuration: {exc}") \
            from exc
    weight = stored.get("params.head.weight")
    if weight is None or weight.dtype.name not in ("float32", "float64"):
        raise CheckpointError(f"checkpoint {path} has no float32 or float64 params.head.weight")
    template = model.init_params(seed=0, dtype=weight.dtype.name)
    ck = _unpack(path, stored, meta, template, None)
    return model, ck.params, meta
