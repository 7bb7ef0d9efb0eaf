"""Checkpoints: round trips, validation against the model, atomic writes, clear
errors for unreadable files, and the trained model reloaded exactly."""

from __future__ import annotations

import json
import os
import zipfile
from typing import Any, NamedTuple

import numpy as np
import pytest

import opsplit as ops
from opsplit import nn
from opsplit.nn import CheckpointError, load_checkpoint, load_classifier, save_checkpoint
from opsplit.nn import checkpoint as ck_mod
from opsplit.nn.optim import Adam


class Inner(NamedTuple):
    w: Any
    b: Any
    g: Any = None


class Params(NamedTuple):
    deq: Inner
    head: Inner


def _params(seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return Params(
        Inner(rng.standard_normal((3, 4)).astype(dtype), rng.standard_normal(3).astype(dtype)),
        Inner(rng.standard_normal((2, 3)).astype(dtype), rng.standard_normal(2).astype(dtype)),
    )


def _state(params):
    opt = Adam(lr=0.1)
    state = opt.init(params)
    _, state = opt.update(params, params, state)
    return state


def test_round_trip_is_exact(tmp_path):
    params = _params()
    state = _state(params)
    path = save_checkpoint(tmp_path / "last.npz", params, state, epoch=2,
                           meta={"alpha": 0.25, "config": {"width": 3}})
    out = load_checkpoint(path, _params(seed=1), _state(_params(seed=1)), config={"width": 3})
    assert out.epoch == 2 and out.meta["alpha"] == 0.25
    assert isinstance(out.params, Params) and out.params.deq.g is None
    for a, b in zip(np.concatenate([np.ravel(v) for v in _leaves(params)]),
                    np.concatenate([np.ravel(v) for v in _leaves(out.params)])):
        assert a == b
    assert out.opt_state.count == 1 and isinstance(out.opt_state.count, int)
    assert np.array_equal(out.opt_state.nu.head.w, state.nu.head.w)
    # the file holds no pickled object and only the documented names
    with zipfile.ZipFile(path) as z:
        names = sorted(n[:-4] for n in z.namelist())
    assert names == sorted(
        ["meta.json", "opt.count"]
        + [f"{p}.{part}.{f}" for p in ("params", "opt.mu", "opt.nu")
           for part in ("deq", "head") for f in ("w", "b")]
    )


def _leaves(p):
    return [p.deq.w, p.deq.b, p.head.w, p.head.b]


def test_loads_onto_the_templates_backend(tmp_path, backend):
    params = _params(dtype=np.float64)
    save_checkpoint(tmp_path / "c.npz", params, epoch=1)
    template = Params(*(Inner(*(backend.asarray(np.zeros_like(a)) for a in part[:2]))
                        for part in params))
    out = load_checkpoint(tmp_path / "c.npz", template)
    assert type(out.params.deq.w) is type(template.deq.w)
    from array_api_compat import device

    assert device(out.params.head.b) == device(template.head.b)
    np.testing.assert_array_equal(backend.to_numpy(out.params.head.w), params.head.w)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (lambda p: p._replace(deq=p.deq._replace(w=np.zeros((4, 4), np.float32))),
         r"params\.deq\.w has shape \(3, 4\), the model needs \(4, 4\)"),
        (lambda p: p._replace(head=p.head._replace(b=np.zeros(2, np.float64))),
         r"params\.head\.b has dtype float32, the model needs float64"),
        (lambda p: p._replace(deq=p.deq._replace(g=np.zeros((), np.float32))),
         r"has no array 'params\.deq\.g'"),
        (lambda p: p._replace(deq=Inner(p.deq.w, None)),
         r"arrays the model does not use: \['params\.deq\.b'\]"),
    ],
)
def test_mismatch_names_the_field(tmp_path, template, message):
    params = _params()
    save_checkpoint(tmp_path / "c.npz", params, epoch=1)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(tmp_path / "c.npz", template(_params()))


def test_nonfinite_values_and_config_mismatch(tmp_path):
    params = _params()
    bad = params._replace(head=params.head._replace(b=np.array([1.0, np.nan], np.float32)))
    save_checkpoint(tmp_path / "nan.npz", bad, epoch=1)
    with pytest.raises(CheckpointError, match=r"params\.head\.b contains NaN"):
        load_checkpoint(tmp_path / "nan.npz", params)
    save_checkpoint(tmp_path / "c.npz", params, epoch=1, meta={"config": {"width": 3, "m": 1.0}})
    with pytest.raises(CheckpointError, match="written with width=3, but this run has width=5"):
        load_checkpoint(tmp_path / "c.npz", params, config={"width": 5})
    with pytest.raises(CheckpointError, match="records no 'dataset'"):
        load_checkpoint(tmp_path / "c.npz", params, config={"dataset": "digits"})
    # the matching config loads
    assert load_checkpoint(tmp_path / "c.npz", params, config={"m": 1.0}).epoch == 1


def test_foreign_and_future_files_are_refused(tmp_path):
    params = _params()
    np.savez(tmp_path / "plain.npz", **{"params.deq.w": params.deq.w})
    with pytest.raises(CheckpointError, match="no meta.json: not an opsplit checkpoint"):
        load_checkpoint(tmp_path / "plain.npz", params)
    meta = json.dumps({"format": ck_mod.FORMAT_NAME, "version": 99, "epoch": 1}).encode()
    np.savez(tmp_path / "future.npz", **{"meta.json": np.frombuffer(meta, np.uint8)})
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(tmp_path / "future.npz", params)
    # an object array would need pickle: refused, never unpickled, never advised to
    np.savez(tmp_path / "obj.npz", **{"meta.json": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(CheckpointError, match="array of Python objects") as err:
        load_checkpoint(tmp_path / "obj.npz", params)
    assert "pickle" not in str(err.value)
    with pytest.raises(FileNotFoundError, match="missing.npz does not exist"):
        load_checkpoint(tmp_path / "missing.npz", params)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip"])
def test_corrupted_file_is_a_clear_error(tmp_path, damage):
    params = _params()
    path = save_checkpoint(tmp_path / "last.npz", params, _state(params), epoch=3)
    raw = path.read_bytes()
    broken = tmp_path / "broken.npz"
    if damage == "truncate":
        broken.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        broken.write_bytes(os.urandom(len(raw)))
    else:  # flip bytes inside the first stored array: the zip CRC catches it
        data = bytearray(raw)
        data[100:108] = bytes(b ^ 0xFF for b in data[100:108])
        broken.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        load_checkpoint(broken, params, _state(params))
    assert path.read_bytes() == raw  # the good checkpoint is untouched


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    params = _params()
    path = save_checkpoint(tmp_path / "last.npz", params, epoch=1)
    before = path.read_bytes()

    def crash(f, **arrays):
        f.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(ck_mod.np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, _params(seed=5), epoch=2)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.npz"]  # no temp file left
    assert load_checkpoint(path, params).epoch == 1


def test_bad_arguments():
    with pytest.raises(ValueError, match="epoch must be an integer >= 0"):
        save_checkpoint("x.npz", _params(), epoch=-1)
    with pytest.raises(TypeError, match="meta must be JSON-serialisable"):
        save_checkpoint("x.npz", _params(), epoch=0, meta={"f": object()})
    assert not os.path.exists("x.npz")


UNREADABLE = {
    "empty": b"",
    "text": b"width=87\nm=1.0\n",          # numpy's loader calls this pickled data
    "npy": None,                            # a bare .npy, not an archive
    "truncated": "truncate",
    "garbage": bytes(range(256)) * 4,
}


@pytest.mark.parametrize("kind", sorted(UNREADABLE))
def test_every_unreadable_file_gets_the_same_clear_error(tmp_path, kind):
    params = _params()
    path = tmp_path / "bad.npz"
    content = UNREADABLE[kind]
    if content is None:
        with open(path, "wb") as f:
            np.save(f, np.ones(3))
    elif content == "truncate":
        good = save_checkpoint(tmp_path / "good.npz", params, epoch=1)
        path.write_bytes(good.read_bytes()[:200])
    else:
        path.write_bytes(content)
    for load in (lambda: load_checkpoint(path, params), lambda: load_classifier(path)):
        with pytest.raises(CheckpointError) as err:
            load()
        message = str(err.value)
        assert message.startswith(f"checkpoint {path} is corrupted or truncated and cannot be read")
        assert "pickle" not in message and "\n" not in message
    with pytest.raises(CheckpointError, match="cannot be opened"):
        load_checkpoint(tmp_path, params)  # a directory


# ------------------------------------------------------ the trained model ---


@pytest.fixture(scope="module")
def digits():
    return nn.load_dataset("digits").subset(train=64, test=16)


def _train(model, data, directory):
    params = model.init_params(seed=0)
    return nn.fit(model, params, data, epochs=1, batch_size=32, checkpoint_dir=directory,
                  progress=False, config={"dataset": "digits"})


def test_the_issue_model_reloads_exactly(digits, tmp_path):
    """Regression: LeakyReLU(slope=0.3), DouglasRachford(relaxation=1.7) and
    tol=1e-3 came back as slope 0.01, relaxation 1.0 and tol 0.01."""
    model = nn.Classifier.dense(
        digits.features, 8, activation=ops.prox.LeakyReLU(slope=0.3),
        method=ops.DouglasRachford(step=1.0, relaxation=1.7), tol=1e-3,
    )
    history = _train(model, digits, tmp_path)
    loaded, params, meta = load_classifier(tmp_path / nn.CHECKPOINT_NAME)
    deq = loaded.deq
    assert isinstance(deq.activation, ops.prox.LeakyReLU) and deq.activation.slope == 0.3
    assert deq.method == ops.DouglasRachford(step=history.model.alpha, relaxation=1.7)
    assert deq.tol == 1e-3 and deq.maxiter == 300
    assert loaded.config() == history.model.config() and meta["epoch"] == 1
    for name, leaf in ck_mod.tree_items(history.params):
        np.testing.assert_array_equal(dict(ck_mod.tree_items(params))[name], leaf)


def test_a_checkpoint_without_an_exact_model_config_is_refused(digits, tmp_path):
    model = nn.Classifier.dense(digits.features, 8)
    _train(model, digits, tmp_path)
    path = tmp_path / nn.CHECKPOINT_NAME
    ck = load_checkpoint(path, model.init_params(0))
    config = ck.meta["config"]
    broken = {**config, "model": {k: v for k, v in config["model"].items() if k != "tol"}}
    save_checkpoint(path, ck.params, epoch=1, meta={**ck.meta, "config": broken})
    with pytest.raises(CheckpointError, match=r"invalid model configuration: .*missing \['tol'\]"):
        load_classifier(path)
    # the format before model configurations (flat, activation by class name)
    old = {"model": "dense", "in_features": 64, "width": 8, "m": 1.0, "weight_norm": False,
           "num_classes": 10, "method": "DouglasRachford", "activation": "LeakyReLU"}
    save_checkpoint(path, ck.params, epoch=1, meta={"alpha": 1.0, "config": old})
    with pytest.raises(CheckpointError, match="invalid model configuration"):
        load_classifier(path)
    save_checkpoint(path, ck.params, epoch=1, meta={"alpha": 1.0})
    with pytest.raises(CheckpointError, match="records no model configuration"):
        load_classifier(path)
