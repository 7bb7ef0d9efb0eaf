"""Training: model pieces against finite differences, optimizers against hand
computations, the classifier's gradient and exact configuration, α tuning,
fit (reproducible, resumable, BLAS threads, progress bars) and the
``opsplit train`` command."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from typing import Any, NamedTuple

import numpy as np
import pytest
import threadpoolctl
from scipy.special import log_softmax

import opsplit as ops
from opsplit import cli
from opsplit.nn import (
    CHECKPOINT_NAME,
    SGD,
    Adam,
    CheckpointError,
    Classifier,
    Flatten,
    Linear,
    MonDEQ,
    OneCycleSchedule,
    StepSchedule,
    blas_threads,
    fit,
    load_checkpoint,
    load_dataset,
    save_checkpoint,
    softmax_cross_entropy,
    tune_alpha,
)
from opsplit.nn.layers import LinearParams, accuracy_count
from opsplit.nn.optim import tree_items, tree_map
from opsplit.prox import activations as act_mod
from opsplit.splitting import inclusion_methods, method_config


def _fd_directional(f, params, direction, eps=1e-6):
    """Central difference of the scalar ``f`` along ``direction`` (trees of arrays)."""
    plus = tree_map(lambda p, d: p + eps * d, params, direction)
    minus = tree_map(lambda p, d: p - eps * d, params, direction)
    return (f(plus) - f(minus)) / (2 * eps)


def _dot(a, b):
    return sum(float(np.sum(x * y)) for (_, x), (_, y) in zip(tree_items(a), tree_items(b)))


def _random_like(tree, rng):
    return tree_map(lambda a: rng.standard_normal(np.shape(a)), tree)


# ---------------------------------------------------------------- pieces ----


def test_linear_backward_matches_finite_differences():
    rng = np.random.default_rng(0)
    lin = Linear(5, 3)
    params = lin.init_params(seed=1)
    x = rng.standard_normal((4, 5))
    w = rng.standard_normal((4, 3))  # loss = <w, y>

    def loss(p, xx=x):
        return float(np.sum(w * lin.forward(p, xx)[0]))

    y, cache = lin.forward(params, x)
    np.testing.assert_allclose(y, x @ params.weight.T + params.bias, rtol=1e-14)
    grads, gx = lin.backward(params, cache, w)
    for _ in range(3):
        d = _random_like(params, rng)
        assert _fd_directional(loss, params, d) == pytest.approx(_dot(grads, d), rel=1e-7)
        dx = rng.standard_normal(x.shape)
        fd_x = (loss(params, x + 1e-6 * dx) - loss(params, x - 1e-6 * dx)) / 2e-6
        assert fd_x == pytest.approx(float(np.sum(gx * dx)), rel=1e-7)
    # a deliberately wrong backward (weight gradient transposed the other way) fails
    wrong = LinearParams((x.T @ w).T[:, ::-1], grads.bias)
    d = _random_like(params, rng)
    assert abs(_fd_directional(loss, params, d) - _dot(wrong, d)) > 1e-3


def test_softmax_cross_entropy_reference_and_gradient():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((6, 4)) * 3
    labels = np.array([0, 3, 1, 1, 2, 0])
    loss, grad = softmax_cross_entropy(logits, labels)
    ref = -np.mean(log_softmax(logits, axis=1)[np.arange(6), labels])
    assert float(loss) == pytest.approx(ref, rel=1e-13)
    for _ in range(3):
        d = rng.standard_normal(logits.shape)
        fd = _fd_directional(lambda z: float(softmax_cross_entropy(z, labels)[0]), logits, d)
        assert fd == pytest.approx(float(np.sum(grad * d)), rel=1e-7)
    # a gradient that forgets the 1/n of the mean is caught by the same check
    assert fd != pytest.approx(float(np.sum(grad * 6 * d)), rel=1e-3)
    # stable for huge logits (a naive exp overflows to inf/nan)
    big = np.array([[1e4, 0.0, -1e4]], np.float32)
    loss, grad = softmax_cross_entropy(big, np.array([1]))
    assert float(loss) == pytest.approx(1e4) and np.all(np.isfinite(grad))
    assert loss.dtype == np.float32 and grad.dtype == np.float32


def test_pieces_on_every_backend(backend, dtype):
    rng = np.random.default_rng(0)
    lin = Linear(6, 3)
    p64 = lin.init_params(seed=0)
    x64 = rng.standard_normal((2, 1, 2, 3))
    labels = np.array([2, 0])
    params = LinearParams(*(backend.asarray(a, dtype) for a in p64))
    x = backend.asarray(x64, dtype)
    flat, shape = Flatten().forward(x)
    logits, cache = lin.forward(params, flat)
    lab = backend.xp.asarray(labels, device=backend.device)
    loss, g = softmax_cross_entropy(logits, lab)
    grads, gflat = lin.backward(params, cache, g)
    gx = Flatten().backward(shape, gflat)
    # reference: the same pieces on NumPy float64
    ref_logits, ref_cache = lin.forward(p64, x64.reshape(2, 6))
    ref_loss, ref_g = softmax_cross_entropy(ref_logits, labels)
    ref_grads, ref_gx = lin.backward(p64, ref_cache, ref_g)
    tol = 1e-5 if dtype == "float32" else 1e-12
    assert gx.dtype == x.dtype and tuple(gx.shape) == (2, 1, 2, 3)
    np.testing.assert_allclose(backend.to_numpy(loss), ref_loss, rtol=tol)
    np.testing.assert_allclose(backend.to_numpy(grads.weight), ref_grads.weight, rtol=tol, atol=tol)
    np.testing.assert_allclose(backend.to_numpy(gx), ref_gx.reshape(2, 1, 2, 3), rtol=tol, atol=tol)
    assert int(backend.to_numpy(accuracy_count(logits, lab))) == int(
        np.sum(ref_logits.argmax(1) == labels)
    )


def test_piece_input_errors():
    lin = Linear(3, 2)
    p = lin.init_params()
    with pytest.raises(ValueError, match="x must have 3 features"):
        lin.forward(p, np.ones((2, 4)))
    with pytest.raises(ValueError, match="in_features must be a positive integer"):
        Linear(0, 2)
    with pytest.raises(TypeError, match="labels must have an integer dtype"):
        softmax_cross_entropy(np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match=r"labels must have shape \(2,\)"):
        softmax_cross_entropy(np.zeros((2, 3)), np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match=r"params.head.bias must have shape \(2,\)"):
        lin.check_params(LinearParams(p.weight, np.zeros(3)), "params.head")


# ------------------------------------------------------------- optimizers ----


class P(NamedTuple):
    a: Any
    b: Any
    c: Any = None


def test_adam_matches_hand_computed_steps():
    p0 = P(np.array([1.0, -2.0]), np.array(0.5))
    g1 = P(np.array([0.1, -0.3]), np.array(2.0))
    g2 = P(np.array([-0.2, 0.1]), np.array(1.0))
    opt = Adam(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8)
    state = opt.init(p0)
    p1, state = opt.update(p0, g1, state)
    p2, state = opt.update(p1, g2, state, lr=0.005)
    # by hand, leaf a, element 0: m and v after two steps
    m1, v1 = 0.1 * 0.1, 0.001 * 0.1**2
    m2, v2 = 0.9 * m1 + 0.1 * -0.2, 0.999 * v1 + 0.001 * 0.04
    a1 = 1.0 - 0.01 * (m1 / 0.1) / (math.sqrt(v1 / 0.001) + 1e-8)
    a2 = a1 - 0.005 * (m2 / (1 - 0.9**2)) / (math.sqrt(v2 / (1 - 0.999**2)) + 1e-8)
    assert p1.a[0] == pytest.approx(a1, rel=1e-14) and p2.a[0] == pytest.approx(a2, rel=1e-14)
    assert state.count == 2 and p2.c is None
    assert p0.a[0] == 1.0 and g1.a[0] == 0.1  # inputs untouched
    # a float32 tree stays float32
    q, _ = opt.update(P(np.ones(2, np.float32), np.ones((), np.float32)),
                      P(np.ones(2, np.float32), np.ones((), np.float32)),
                      opt.init(P(np.ones(2, np.float32), np.ones((), np.float32))))
    assert q.a.dtype == np.float32


def test_sgd_momentum_and_nesterov_by_hand():
    p = P(np.array([1.0]), np.array([0.0]))
    g = P(np.array([2.0]), np.array([-1.0]))
    for nesterov, expected in ((False, 1 - 0.1 * 2 - 0.1 * (0.5 * 2 + 2)),
                               (True, 1 - 0.1 * (2 + 0.5 * 2) - 0.1 * (2 + 0.5 * 3))):
        opt = SGD(lr=0.1, momentum=0.5, nesterov=nesterov)
        q, s = opt.update(p, g, opt.init(p))
        q, s = opt.update(q, g, s)
        assert q.a[0] == pytest.approx(expected, rel=1e-14)
    with pytest.raises(ValueError, match="momentum must be in"):
        SGD(momentum=1.0)
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        Adam(lr=0.0)


def test_schedules():
    step = StepSchedule(1e-3, milestones=(10, 15), gamma=0.1)
    assert [step(e) for e in (0, 9.99, 10, 14, 15, 30)] == pytest.approx(
        [1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5]
    )
    cyc = OneCycleSchedule(1e-2, epochs=20, base_lr=1e-3, cooldown=5, final_lr=1e-4)
    # knots (0, 7.5, 15, 20) -> (1e-3, 1e-2, 1e-3, 1e-4), linear in between
    for t, lr in ((0, 1e-3), (3.75, 5.5e-3), (7.5, 1e-2), (15, 1e-3), (17.5, 5.5e-4), (20, 1e-4)):
        assert cyc(t) == pytest.approx(lr, rel=1e-12)
    with pytest.raises(ValueError, match="milestones must be increasing"):
        StepSchedule(1e-3, milestones=(10, 5))
    with pytest.raises(ValueError, match="cooldown must be"):
        OneCycleSchedule(1e-2, epochs=5, cooldown=5)


# --------------------------------------------------------------- the model ---


def _tiny_model(tol=1e-11, **kw):
    return Classifier.dense(in_features=12, width=6, tol=tol, maxiter=2000, num_classes=3, **kw)


def test_classifier_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    model = _tiny_model()
    params = model.init_params(seed=3, dtype="float64", scale=0.8)
    x = rng.standard_normal((5, 1, 3, 4))
    y = np.array([0, 2, 1, 1, 0])

    def loss(p):
        return float(model.loss_and_grad(p, x, y)[0])

    _, grads, stats = model.loss_and_grad(params, x, y)
    assert stats.converged and grads.deq.A.shape == (6, 6)
    for _ in range(3):
        d = _random_like(params, rng)
        assert _fd_directional(loss, params, d, eps=1e-5) == pytest.approx(
            _dot(grads, d), rel=1e-6, abs=1e-9
        )
    # the gradient of x, through the equilibrium and the flatten
    logits, cache = model.forward(params, x)
    _, gl = softmax_cross_entropy(logits, y)
    _, gx, _ = model.backward(params, cache, gl)
    dx = rng.standard_normal(x.shape)
    fd = (float(model.loss_and_grad(params, x + 1e-5 * dx, y)[0])
          - float(model.loss_and_grad(params, x - 1e-5 * dx, y)[0])) / 2e-5
    assert fd == pytest.approx(float(np.sum(gx * dx)), rel=1e-6)


def test_classifier_bad_input():
    model = _tiny_model()
    params = model.init_params(dtype="float64")
    y = np.zeros(2, dtype=int)
    with pytest.raises(ValueError, match="x has 13 features but the layer expects in_features=12"):
        model.loss_and_grad(params, np.zeros((2, 13)), y)
    for bad in (np.nan, np.inf):
        x = np.zeros((2, 12))
        x[1, 3] = bad
        with pytest.raises(ValueError, match="x contains NaN or Inf"):
            model.loss_and_grad(params, x, y)
    with pytest.raises(ValueError, match="m must be > 0"):
        Classifier.dense(12, 6, m=0.0)
    with pytest.raises(ValueError, match="m must be > 0"):
        Classifier.dense(12, 6, m=-1.0)
    with pytest.raises(ValueError, match="unknown method 'simplex'"):
        Classifier.dense(12, 6, method="simplex")


# ------------------------------------------------------- the configuration ---

#: One instance per registered method, every hyperparameter away from its default.
METHOD_CASES = {
    "fb": ops.ForwardBackward(step=0.37, step_rule="adaptive"),
    "fista": ops.FISTA(step=0.29, restart=False, step_rule="backtracking"),
    "pr": ops.PeacemanRachford(step=0.61),
    "dr": ops.DouglasRachford(step=0.43, relaxation=1.7),
    "tseng": ops.Tseng(step=0.27),
    "admm": ops.ADMM(step=0.53, relaxation=1.3, balance=True, balance_every=500,
                     balance_mu=5.0, balance_tau=3.0, balance_until=600),
}

#: Every registered activation, every parameter away from its default.
ACTIVATION_CASES = {
    "relu": {},
    "leaky_relu": {"slope": 0.3},
    "hardtanh": {"low": -0.5, "high": 2.0},
    "tanh": {},
    "sigmoid": {},
    "softplus": {},
}

#: The MonDEQ options and the model's own, away from their defaults.
OPTIONS = {
    "m": 0.7, "weight_norm": True, "tol": 1e-3, "maxiter": 77, "num_classes": 4,
    "backward_method": ops.DouglasRachford(step=0.29, relaxation=0.6),
    "backward_tol": 2e-3, "backward_maxiter": 55, "check_every": 3, "record": "every",
}


def _registered_activations():
    return {cls.name for cls in vars(act_mod).values()
            if isinstance(cls, type) and issubclass(cls, act_mod.Activation)
            and getattr(cls, "name", None)}


def test_the_cases_cover_every_method_activation_and_option():
    assert set(METHOD_CASES) == set(inclusion_methods(2))  # those a MonDEQ can use
    for name, method in METHOD_CASES.items():
        for f in dataclasses.fields(method):
            assert getattr(method, f.name) != f.default, (name, f.name)
    assert set(ACTIVATION_CASES) == _registered_activations()
    for name, params in ACTIVATION_CASES.items():
        act = act_mod.get_activation(name, **params)
        assert set(params) == set(act.config_fields), name
        default = act_mod.get_activation(name)
        assert all(getattr(act, k) != getattr(default, k) for k in params), name
    deq_fields = {f.name for f in dataclasses.fields(MonDEQ)}
    assert deq_fields - {"layer", "activation", "method"} <= set(OPTIONS)
    defaults = Classifier.dense(12, 6).config()
    built = _model("dr", "leaky_relu", OPTIONS).config()
    for key, value in OPTIONS.items():
        where = built["layer"] if key in ("m", "weight_norm") else built
        before = defaults["layer"] if key in ("m", "weight_norm") else defaults
        expected = method_config(value) if key == "backward_method" else value
        assert where[key] == expected != before[key], key


def _model(method, activation, options):
    options = dict(options)
    return Classifier.dense(
        12, 5, method=METHOD_CASES[method],
        activation=act_mod.get_activation(activation, **ACTIVATION_CASES[activation]),
        m=options.pop("m", 1.0), weight_norm=options.pop("weight_norm", False),
        tol=options.pop("tol", 1e-2), maxiter=options.pop("maxiter", 300),
        num_classes=options.pop("num_classes", 10), **options,
    )


@pytest.mark.parametrize("options", [{}, OPTIONS], ids=["defaults", "all-options"])
@pytest.mark.parametrize("activation", sorted(ACTIVATION_CASES))
@pytest.mark.parametrize("method", sorted(METHOD_CASES))
def test_config_round_trip_is_exact(method, activation, options):
    model = _model(method, activation, options)
    config = model.config()
    back = Classifier.from_config(json.loads(json.dumps(config)))
    assert back.config() == config
    # field by field against the model that was built, not only against config()
    for f in dataclasses.fields(MonDEQ):
        if f.name != "activation":
            assert getattr(back.deq, f.name) == getattr(model.deq, f.name), f.name
    assert type(back.deq.activation) is type(model.deq.activation)
    for key in ACTIVATION_CASES[activation]:
        assert getattr(back.deq.activation, key) == ACTIVATION_CASES[activation][key]
    assert back.num_classes == model.num_classes
    # and the rebuilt model computes the same thing
    params = model.init_params(seed=1, dtype="float64")
    x = np.random.default_rng(0).standard_normal((3, 12))
    np.testing.assert_array_equal(back.logits(params, x), model.logits(params, x))


def test_from_config_never_falls_back_to_a_default():
    config = _model("dr", "leaky_relu", OPTIONS).config()
    Classifier.from_config(config)

    def broken(edit):
        c = copy.deepcopy(config)
        edit(c)
        return c

    cases = [
        (r"model config is not exact: missing \['tol'\]", lambda c: c.pop("tol")),
        (r"unknown \['colour'\]", lambda c: c.update(colour="red")),
        (r"activation 'leaky_relu'.*missing \['slope'\]", lambda c: c["activation"].pop("slope")),
        (r"DouglasRachford is not exact: missing \['relaxation'\]",
         lambda c: c["method"].pop("relaxation")),
        (r"unknown method 'simplex'", lambda c: c["method"].update(name="simplex")),
        (r"MonDense is not exact: missing \[\], unknown \['depth'\]",
         lambda c: c["layer"].update(depth=3)),
        (r"missing \['weight_norm'\]", lambda c: c["layer"].pop("weight_norm")),
        (r"layer config must name one of \['conv', 'dense', 'multitier'\], got 'lstm'",
         lambda c: c["layer"].update(name="lstm")),
        (r"layer config for MonConv is not exact: missing \['in_channels'",
         lambda c: c["layer"].update(name="conv")),
        (r"method config has no 'name'", lambda c: c["backward_method"].pop("name")),
        (r"unknown activation 'swish'", lambda c: c["activation"].update(name="swish")),
        (r"slope must be in \(0, 1\]", lambda c: c["activation"].update(slope=3.0)),
    ]
    for message, edit in cases:
        with pytest.raises(ValueError, match=message):
            Classifier.from_config(broken(edit))
    with pytest.raises(ValueError, match="model config must be a dict"):
        Classifier.from_config([("tol", 1e-3)])


def test_tune_alpha_follows_the_halving_rule():
    rng = np.random.default_rng(0)
    model = _tiny_model(tol=1e-6)
    params = model.init_params(seed=0, dtype="float64", scale=1.5)
    x = rng.standard_normal((8, 12))
    alpha, trace = tune_alpha(model, params, x, max_alpha=4.0)
    # independent reference: forward iteration counts at 4, 2, 1, ...
    counts = [(a, model.with_alpha(a).forward(params, x)[1][1].result.iterations)
              for a in (4.0 / 2**k for k in range(len(trace)))]
    assert trace == counts
    rising = next((k for k in range(1, len(counts)) if counts[k][1] > counts[k - 1][1]), None)
    last_good = counts[(rising if rising is not None else len(counts)) - 1][0]
    assert alpha == last_good
    # the rule stops halving as soon as the count rises
    its = [c for _, c in trace]
    assert all(its[k] <= its[k - 1] for k in range(1, len(its) - 1))
    # when no step converges within maxiter the current alpha is kept
    stuck = dataclasses.replace(model, deq=model.deq.with_options(tol=1e-30, maxiter=3))
    assert tune_alpha(stuck.with_alpha(0.3), params, x)[0] == 0.3


# -------------------------------------------------------------------- fit ---


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits").subset(train=192, test=100)


def _fit(model, data, tmp=None, **kw):
    params = model.init_params(seed=0)
    kw.setdefault("epochs", 1)
    return fit(model, params, data, batch_size=64, seed=kw.pop("seed", 0), progress=False,
               checkpoint_dir=tmp, schedule=StepSchedule(1e-2, milestones=(1,)),
               optimizer=Adam(1e-2), **kw)


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(_leaves(a), _leaves(b)))


def _leaves(tree):
    return [leaf for _, leaf in tree_items(tree)]


def test_fit_learns_and_is_reproducible(digits):
    model = Classifier.dense(64, 16)
    h1 = _fit(model, digits, epochs=2)
    h2 = _fit(model, digits, epochs=2)
    assert _same(h1.params, h2.params) and _same(h1.opt_state, h2.opt_state)
    untimed = ("fwd_time", "bwd_time", "wall_time")
    assert [r._replace(**dict.fromkeys(untimed, 0.0)) for r in h1.records] == [
        r._replace(**dict.fromkeys(untimed, 0.0)) for r in h2.records
    ]
    h3 = _fit(model, digits, epochs=2, seed=1)
    assert not _same(h1.params, h3.params)
    rec = h1.records
    assert [r.epoch for r in rec] == [1, 2] and rec[1].loss < rec[0].loss
    assert rec[1].test_acc > 0.6 and rec[1].lr == pytest.approx(1e-3)
    assert rec[0].fwd_iters >= 1 and rec[0].bwd_iters >= 1 and rec[0].alpha > 0
    assert len(rec[0].fwd_curve) >= 1 and h1.params.head.weight.dtype == np.float32
    assert "test" in h1.table().splitlines()[0] and len(h1.table().splitlines()) == 3


def test_resume_continues_exactly(digits, tmp_path):
    model = Classifier.dense(64, 16)
    full = _fit(model, digits, epochs=2)
    _fit(model, digits, tmp_path, epochs=1)
    resumed = _fit(model, digits, tmp_path, epochs=2, resume=True)
    assert resumed.resumed_from == 1 and [r.epoch for r in resumed.records] == [1, 2]
    assert _same(full.params, resumed.params) and _same(full.opt_state, resumed.opt_state)
    assert resumed.records[1].test_acc == full.records[1].test_acc
    # a checkpoint from another model is refused, naming the field
    with pytest.raises(CheckpointError, match="written with model.layer.width=16, "
                                              "but this run has model.layer.width=8"):
        _fit(Classifier.dense(64, 8), digits, tmp_path, epochs=3, resume=True)
    # so is one whose activation parameter differs (it used to be recorded by class name only)
    leaky = Classifier.dense(64, 16, activation=ops.prox.LeakyReLU(slope=0.3))
    _fit(leaky, digits, tmp_path, epochs=1)
    with pytest.raises(CheckpointError, match=r"model.activation.slope=0.3, but this run has "
                                              r"model.activation.slope=0.01"):
        _fit(Classifier.dense(64, 16, activation="leaky_relu"), digits, tmp_path, epochs=2,
             resume=True)


def test_resume_from_a_corrupted_checkpoint_fails_and_keeps_it(digits, tmp_path):
    model = Classifier.dense(64, 8)
    _fit(model, digits, tmp_path, epochs=1)
    path = tmp_path / CHECKPOINT_NAME
    path.write_bytes(path.read_bytes()[:300])
    damaged = path.read_bytes()
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        _fit(model, digits, tmp_path, epochs=2, resume=True)
    assert path.read_bytes() == damaged
    # arrays of the wrong dtype are named
    _fit(model, digits, tmp_path, epochs=1)
    wrong_dtype = "params.deq.A has dtype float32, the model needs float64"
    with pytest.raises(CheckpointError, match=wrong_dtype):
        fit(model, model.init_params(0, dtype="float64"), digits, epochs=2,
            checkpoint_dir=tmp_path, resume=True, progress=False)
    # a checkpoint without the trainer's state (rng, alpha, history) is refused
    ck = load_checkpoint(path, model.init_params(0), Adam().init(model.init_params(0)))
    save_checkpoint(path, ck.params, ck.opt_state, epoch=1, meta={"config": ck.meta["config"]})
    with pytest.raises(CheckpointError, match="lacks a valid training state"):
        _fit(model, digits, tmp_path, epochs=2, resume=True)


def test_fit_rejects_mismatched_data(digits):
    with pytest.raises(ValueError, match="data has 64 features per sample"):
        _fit(Classifier.dense(784, 8), digits)
    with pytest.raises(ValueError, match="resume=True needs a checkpoint_dir"):
        _fit(Classifier.dense(64, 8), digits, resume=True)


def test_fit_checks_its_arguments_and_outputs_before_training(digits, tmp_path):
    model = Classifier.dense(64, 8)
    lines = []
    with pytest.raises(ValueError, match="epochs must be > 0"):
        _fit(model, digits, epochs=0, log=lines.append)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ValueError, match=f"checkpoint_dir {blocker / 'ck'} is not a writable"):
        _fit(model, digits, blocker / "ck", log=lines.append)
    with pytest.raises(ValueError, match=r"config must not set \['seed'\]"):
        _fit(model, digits, config={"seed": 3}, log=lines.append)
    assert lines == []  # no epoch began


def _blas_threads():
    return [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]


def test_fit_limits_blas_threads_during_the_run_only(digits):
    before = _blas_threads()
    seen = []
    model = Classifier.dense(64, 8)
    _fit(model, digits.subset(64, 16), threads=1, log=lambda line: seen.append(_blas_threads()))
    assert seen and all(counts == [1] * len(before) for counts in seen)
    assert _blas_threads() == before
    seen.clear()
    _fit(model, digits.subset(64, 16), threads=None, log=lambda line: seen.append(_blas_threads()))
    assert all(counts == before for counts in seen)
    # "auto": one thread for small products, the library's choice for large ones
    assert blas_threads("auto", model, 128) == 1
    assert blas_threads("auto", Classifier.dense(784, 1000), 256) is None
    assert blas_threads(2, model, 128) == 2
    with pytest.raises(ValueError, match="threads must be > 0"):
        blas_threads(0, model, 128)


def test_progress_bars_only_on_a_terminal(digits, capsys):
    small = digits.subset(64, 16)
    model = Classifier.dense(64, 8)
    fit(model, model.init_params(0), small, epochs=1, batch_size=32)  # stderr is captured
    assert "epoch 1/1" not in capsys.readouterr().err
    fit(model, model.init_params(0), small, epochs=1, batch_size=32, progress=True)
    assert "epoch 1/1" in capsys.readouterr().err


def test_fit_on_array_api_strict_matches_numpy(digits):
    """Training keeps the parameters' library and device (array_api_strict's
    second device) and follows the NumPy run."""
    xps = pytest.importorskip("array_api_strict")
    dev = xps.__array_namespace_info__().devices()[1]
    model = Classifier.dense(64, 8)
    small = digits.subset(train=64, test=32)
    ref = fit(model, model.init_params(0), small, epochs=1, batch_size=32, progress=False)
    params = model.init_params(0, like=xps.asarray(0.0, device=dev))
    out = fit(model, params, small, epochs=1, batch_size=32, progress=False)
    from array_api_compat import device

    assert device(out.params.deq.A) == dev
    for a, b in zip(_leaves(ref.params), _leaves(out.params)):
        np.testing.assert_allclose(np.from_dlpack(b), a, rtol=1e-4, atol=1e-5)


# -------------------------------------------------------------------- CLI ---


def test_cli_train_end_to_end(tmp_path, capsys):
    ck = tmp_path / "ck"
    argv = ["train", "--dataset", "digits", "--epochs", "1", "--width", "8",
            "--train-limit", "256", "--test-limit", "100", "--no-progress",
            "--checkpoint-dir", str(ck), "--plot", str(tmp_path / "res.png"),
            "--out", str(tmp_path / "h.json"), "--seed", "3"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "test accuracy:" in out and "after 1 epochs" in out
    assert (tmp_path / "res.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    hist = json.loads((tmp_path / "h.json").read_text())
    assert hist["config"]["model"]["layer"]["width"] == 8 and hist["config"]["seed"] == 3
    assert len(hist["epochs"]) == 1 and 0 <= hist["epochs"][0]["test_acc"] <= 1
    assert (ck / CHECKPOINT_NAME).is_file()
    assert not (ck / "residuals.png").exists()  # --plot went elsewhere
    # without --plot the curves go next to the checkpoint; --no-plot writes none
    default = argv[:argv.index("--plot")] + argv[argv.index("--plot") + 2:]
    assert cli.main(default + ["--checkpoint-dir", str(tmp_path / "d")]) == 0
    assert (tmp_path / "d" / "residuals.png").is_file()
    assert cli.main(default + ["--checkpoint-dir", str(tmp_path / "e"), "--no-plot"]) == 0
    assert not (tmp_path / "e" / "residuals.png").exists()
    capsys.readouterr()
    # --resume continues to epoch 2 from the checkpoint
    assert cli.main(argv[:4] + ["2", "--resume"] + argv[5:]) == 0
    out = capsys.readouterr().out
    assert "resuming from" in out and "after 2 epochs" in out
    # bad values are clear errors (exit status 2), found before any training
    assert cli.main(argv[:4] + ["1", "--m", "0"] + argv[5:]) == 2
    assert "m must be > 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv[:4] + ["0"] + argv[5:])
    assert exit_.value.code == 2
    assert "--epochs: must be an integer >= 1, got 0" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    blocked = argv[:argv.index("--checkpoint-dir") + 1] + [str(tmp_path / "file" / "ck")]
    assert cli.main(blocked + argv[argv.index("--checkpoint-dir") + 2:]) == 2
    captured = capsys.readouterr()
    assert "--checkpoint-dir" in captured.err and "not a writable directory" in captured.err
    assert "epoch" not in captured.out  # failed before the first epoch
    assert cli.main(argv[:4] + ["1", "--threads", "1", "--no-checkpoint"] + argv[5:]) == 0
    capsys.readouterr()
    (ck / CHECKPOINT_NAME).write_bytes(b"garbage")
    assert cli.main(argv + ["--resume"]) == 2
    assert "corrupted or truncated" in capsys.readouterr().err
    assert (ck / CHECKPOINT_NAME).read_bytes() == b"garbage"
