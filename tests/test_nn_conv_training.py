"""Training the convolutional monDEQs: the pooling head against a loop reference and
finite differences, the classifier's gradient end to end (single convolution and
multi-tier, float64), the exact configuration of every layer kind, seeded
augmentation, bitwise resume, and ``opsplit train --model conv|multitier``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import to_numpy

from opsplit import cli
from opsplit.nn import (
    CHECKPOINT_NAME,
    Adam,
    Classifier,
    Dataset,
    MonConv,
    MonMultiConv,
    StepSchedule,
    blas_threads,
    fit,
    load_classifier,
)
from opsplit.nn import train as train_module
from opsplit.nn.border import BorderMasked
from opsplit.nn.layers import AvgPool2d
from opsplit.nn.optim import tree_items, tree_map


def _leaves(tree):
    return [leaf for _, leaf in tree_items(tree)]


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(_leaves(a), _leaves(b), strict=True))


def _dot(a, b):
    return sum(float(np.sum(x * y)) for x, y in zip(_leaves(a), _leaves(b), strict=True))


def _pool_reference(x, s):
    """Average pooling by explicit loops over windows (floor mode)."""
    n, c, H, W = x.shape
    out = np.zeros((n, c, H // s, W // s))
    for i in range(H // s):
        for j in range(W // s):
            out[:, :, i, j] = x[:, :, s * i:s * i + s, s * j:s * j + s].mean(axis=(2, 3))
    return out


# ------------------------------------------------------------- pooling ----


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (2, 3, 10, 11), (1, 2, 4, 7)])
def test_avg_pool_matches_loops_and_finite_differences(shape):
    rng = np.random.default_rng(0)
    pool = AvgPool2d(4)
    x = rng.standard_normal(shape)
    y, cache = pool.forward(x)
    np.testing.assert_allclose(y, _pool_reference(x, 4), rtol=1e-12, atol=1e-15)
    assert y.shape == (*shape[:2], *pool.output_shape(shape)[-2:])
    w = rng.standard_normal(y.shape)
    grad = pool.backward(cache, w)
    assert grad.shape == x.shape
    for _ in range(3):  # the pooling is linear: central differences are exact up to rounding
        d = rng.standard_normal(shape)
        fd = (np.sum(w * pool.forward(x + 1e-3 * d)[0])
              - np.sum(w * pool.forward(x - 1e-3 * d)[0])) / 2e-3
        assert fd == pytest.approx(float(np.sum(grad * d)), rel=1e-9)
    # the rows and columns beyond the last window get no gradient
    assert not np.any(grad[..., (shape[2] // 4) * 4:, :])
    assert not np.any(grad[..., (shape[3] // 4) * 4:])
    # a backward that forgets the 1/size² fails the same check
    fd = (np.sum(w * pool.forward(x + 1e-3 * d)[0]) - np.sum(w * pool.forward(x - 1e-3 * d)[0]))
    assert fd / 2e-3 != pytest.approx(float(np.sum(16 * grad * d)), rel=1e-3)


def test_avg_pool_on_every_backend(backend, dtype):
    rng = np.random.default_rng(1)
    x64 = rng.standard_normal((2, 3, 9, 9))
    pool = AvgPool2d(4)
    y, cache = pool.forward(backend.asarray(x64, dtype))
    assert y.dtype == backend.dtype(dtype)
    np.testing.assert_allclose(to_numpy(y), _pool_reference(x64, 4), rtol=1e-5, atol=1e-6)
    g = pool.backward(cache, backend.asarray(np.ones((2, 3, 2, 2)), dtype))
    expected = np.zeros((2, 3, 9, 9))
    expected[..., :8, :8] = 1 / 16
    np.testing.assert_allclose(to_numpy(g), expected, rtol=1e-6)


def test_avg_pool_bad_input():
    with pytest.raises(ValueError, match="size must be a positive integer"):
        AvgPool2d(0)
    with pytest.raises(ValueError, match="size=4"):
        AvgPool2d(4).forward(np.zeros((1, 1, 3, 8)))
    with pytest.raises(TypeError, match="x"):
        AvgPool2d(2).forward(np.zeros((1, 1, 4, 4), dtype=int))


# ------------------------------------------------------ the classifier ----


def _tiny(kind, **kw):
    kw.setdefault("tol", 1e-12)
    kw.setdefault("maxiter", 3000)
    channels = 3 if kind == "conv" else (2, 3)
    return Classifier.conv(1, channels, (8, 8), **kw)


def test_heads_follow_the_paper():
    conv = Classifier.conv(1, 54, (28, 28))
    assert conv.kind == "conv" and conv.head.in_features == 54 * 7 * 7  # avg_pool2d(30x30, 4)
    cifar = Classifier.conv(3, 81, (32, 32))
    assert cifar.head.in_features == 81 * 8 * 8
    multi = Classifier.conv(1, (16, 32, 32), (28, 28))
    assert multi.kind == "multitier" and multi.head.in_features == 32 * 9 * 9  # last tier 9x9
    assert isinstance(multi.layer, MonMultiConv) and isinstance(conv.layer, MonConv)
    # the border nonlinearity wraps the activation (once)
    assert isinstance(conv.deq.nonlinearity, BorderMasked)
    assert not isinstance(conv.deq.nonlinearity.activation, BorderMasked)


@pytest.mark.parametrize("kind", ["conv", "multitier"])
def test_loss_and_grad_match_finite_differences(kind):
    """End to end in float64: equilibrium, readout (pooling or last tier) and head."""
    model = _tiny(kind)
    params = model.init_params(seed=0, dtype="float64")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 1, 8, 8))
    labels = np.array([0, 4, 9])

    def loss(p, xx=x):
        return float(model.loss_and_grad(p, xx, labels)[0])

    _, grads, stats = model.loss_and_grad(params, x, labels)
    assert stats.converged
    logits, cache = model.forward(params, x)
    _, grad_x, _ = model.backward(params, cache, np.ones_like(logits) / 3)
    assert grad_x.shape == x.shape
    eps = 1e-6
    for part in ("head", "deq"):
        d = tree_map(lambda a: rng.standard_normal(np.shape(a)), params)
        d = d._replace(**{other: tree_map(np.zeros_like, getattr(d, other))
                          for other in ("head", "deq") if other != part})
        plus = tree_map(lambda p, v: p + eps * v, params, d)
        minus = tree_map(lambda p, v: p - eps * v, params, d)
        fd = (loss(plus) - loss(minus)) / (2 * eps)
        assert fd == pytest.approx(_dot(grads, d), rel=1e-6, abs=1e-10), part
    # the input gradient of sum(logits)/3
    dx = rng.standard_normal(x.shape)
    s_plus = float(np.sum(model.logits(params, x + eps * dx))) / 3
    s_minus = float(np.sum(model.logits(params, x - eps * dx))) / 3
    assert (s_plus - s_minus) / (2 * eps) == pytest.approx(float(np.sum(grad_x * dx)), rel=1e-6)


def test_conv_head_gradient_is_caught_when_wrong(monkeypatch):
    """The same check fails when the pooling's backward is off by its 1/size²."""
    model = _tiny("conv")
    params = model.init_params(seed=0, dtype="float64")
    x = np.random.default_rng(3).standard_normal((2, 1, 8, 8))
    labels = np.array([1, 2])
    _, good, _ = model.loss_and_grad(params, x, labels)
    original = AvgPool2d.backward
    monkeypatch.setattr(AvgPool2d, "backward", lambda self, c, g: 16 * original(self, c, g))
    _, bad, _ = model.loss_and_grad(params, x, labels)
    assert np.array_equal(good.head.weight, bad.head.weight)
    assert not np.allclose(good.deq.U, bad.deq.U, rtol=1e-3)


@pytest.mark.parametrize("kind", ["conv", "multitier"])
def test_a_few_steps_decrease_the_loss(kind):
    rng = np.random.default_rng(0)
    model = _tiny(kind, tol=1e-3, maxiter=100)
    params = model.init_params(seed=0)
    x = rng.standard_normal((32, 1, 8, 8)).astype(np.float32)
    labels = (x[:, 0, 2:6, 2:6].mean(axis=(1, 2)) > 0).astype(np.int64)  # learnable
    opt = Adam(lr=1e-2)
    state = opt.init(params)
    losses = []
    for _ in range(15):
        loss, grads, _ = model.loss_and_grad(params, x, labels)
        losses.append(float(loss))
        params, state = opt.update(params, grads, state)
    assert params.deq.U.dtype == np.float32
    assert losses[-1] < 0.7 * losses[0], losses


# -------------------------------------------------------- configuration ----


_MODELS = {
    "dense": lambda: Classifier.dense(64, 9, m=0.5, weight_norm=True, tol=1e-3),
    "conv": lambda: Classifier.conv(3, 5, (8, 12), kernel_size=5, m=0.7, method="dr",
                                    alpha=0.5, activation="leaky_relu"),
    "multitier": lambda: Classifier.conv(1, (2, 3, 4), (8, 16), m=2.0, tol=1e-4,
                                         maxiter=77, backward_tol=1e-3, num_classes=3),
}


@pytest.mark.parametrize("kind", sorted(_MODELS))
def test_config_round_trip_is_exact_for_every_layer(kind):
    model = _MODELS[kind]()
    config = model.config()
    assert config["layer"]["name"] == kind
    text = json.dumps(config)  # JSON-ready: tuples became lists
    again = Classifier.from_config(json.loads(text))
    assert again.config() == config and again.layer == model.layer
    assert again.deq.method == model.deq.method and again.head.in_features == model.features
    assert repr(again.deq.activation) == repr(model.deq.activation)
    for field, value in config["layer"].items():  # every field is recorded and used
        if field == "name":
            continue
        broken = json.loads(text)
        del broken["layer"][field]
        with pytest.raises(ValueError, match=rf"missing \['{field}'\]"):
            Classifier.from_config(broken)
        changed = json.loads(text)
        changed["layer"]["unknown"] = value
        with pytest.raises(ValueError, match=r"unknown \['unknown'\]"):
            Classifier.from_config(changed)


def test_config_records_every_conv_field():
    layer = _MODELS["conv"]().config()["layer"]
    assert layer == {"name": "conv", "in_channels": 3, "channels": 5, "image_shape": [8, 12],
                     "kernel_size": 5, "m": 0.7}
    multi = _MODELS["multitier"]().config()
    assert multi["layer"]["channels"] == [2, 3, 4] and multi["num_classes"] == 3
    assert _MODELS["conv"]().config()["activation"] == {"name": "leaky_relu", "slope": 0.01}
    # invalid values in a stored config are errors, never defaults
    bad = _MODELS["multitier"]().config()
    bad["layer"]["image_shape"] = [6, 6]  # does not halve twice
    with pytest.raises(ValueError, match="image_shape"):
        Classifier.from_config(bad)
    bad = _MODELS["conv"]().config()
    bad["layer"]["kernel_size"] = 4
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        Classifier.from_config(bad)


def test_classifier_bad_arguments():
    with pytest.raises(ValueError, match="scale applies to dense layers only"):
        _tiny("conv").init_params(seed=0, scale=0.5)
    model = _tiny("conv")
    with pytest.raises(ValueError, match=r"data has samples of shape \(1, 8, 9\) but the model "
                                         r"expects \(in_channels, H, W\) = \(1, 8, 8\)"):
        model.check_sample_shape((1, 8, 9), "data")
    with pytest.raises(ValueError, match="in_channels"):
        model.logits(model.init_params(0), np.zeros((2, 2, 8, 8), np.float32))
    assert blas_threads("auto", model, 128) == 1


# ------------------------------------------------------------------ fit ----


def _images(n_train=64, n_test=32, shape=(1, 8, 8), seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_train + n_test, *shape)).astype(np.float32)
    y = (x[:, 0, 2:6, 2:6].mean(axis=(1, 2)) > 0).astype(np.int64)
    return Dataset("synthetic", x[:n_train], y[:n_train], x[n_train:], y[n_train:], 10,
                   (0.5,) * shape[0], (0.25,) * shape[0])


def _fit(model, data, tmp=None, **kw):
    params = model.init_params(seed=0)
    return fit(model, params, data, batch_size=32, progress=False, checkpoint_dir=tmp,
               optimizer=Adam(1e-2), schedule=StepSchedule(1e-2, milestones=(1,)), **kw)


def test_resume_is_bitwise_for_a_conv_model_with_augmentation(tmp_path):
    data = _images()
    model = _tiny("conv", tol=1e-2, maxiter=50)
    full = _fit(model, data, epochs=2, augment=True)
    _fit(model, data, tmp_path, epochs=1, augment=True)
    resumed = _fit(model, data, tmp_path, epochs=2, augment=True, resume=True)
    assert resumed.resumed_from == 1
    assert _same(full.params, resumed.params) and _same(full.opt_state, resumed.opt_state)
    # the augmentation is seeded: same seed same run, and it changes the run
    again = _fit(model, data, epochs=2, augment=True)
    plain = _fit(model, data, epochs=2)
    assert _same(full.params, again.params) and not _same(full.params, plain.params)
    # a resumed run must augment as the checkpoint did
    with pytest.raises(ValueError, match="augment"):
        _fit(model, data, tmp_path, epochs=3, resume=True)
    # the checkpoint rebuilds the trained conv model exactly
    loaded, params, meta = load_classifier(tmp_path / CHECKPOINT_NAME)
    assert loaded.config() == resumed.model.config() and meta["config"]["augment"] is True
    x = data.x_test[:4]
    np.testing.assert_array_equal(loaded.logits(params, x), resumed.model.logits(resumed.params,
                                                                                 x))


def test_augmentation_uses_the_loop_generator_with_black_padding(monkeypatch):
    calls = []
    original = train_module.random_crop_flip

    def spy(x, rng, **kw):
        calls.append((rng, kw, x.shape))
        return original(x, rng, **kw)

    monkeypatch.setattr(train_module, "random_crop_flip", spy)
    data = _images(shape=(2, 8, 8))
    model = Classifier.conv(2, 2, (8, 8), tol=1e-2)
    _fit(model, data, epochs=1, augment=True, tune=False)
    assert len(calls) == 2  # one per training batch, none for the test set
    rng, kw, shape = calls[0]
    assert isinstance(rng, np.random.Generator) and rng is calls[1][0]
    assert kw["padding"] == 4 and shape == (32, 2, 8, 8)
    np.testing.assert_allclose(kw["fill"], [-2.0, -2.0])  # -mean/std: black before scaling
    with pytest.raises(ValueError, match="augment needs images"):
        flat = Dataset("flat", data.x_train.reshape(64, -1), data.y_train,
                       data.x_test.reshape(32, -1), data.y_test, 10, 0.5, 0.25)
        _fit(Classifier.dense(128, 4), flat, epochs=1, augment=True)


def test_multitier_fit_learns(tmp_path):
    data = _images(128, 64)
    model = _tiny("multitier", tol=1e-2, maxiter=50)
    history = _fit(model, data, tmp_path, epochs=3)
    assert history.records[-1].loss < history.records[0].loss
    assert history.records[-1].train_acc > history.records[0].train_acc
    with pytest.raises(ValueError, match=r"data has samples of shape \(1, 8, 8\)"):
        _fit(Classifier.conv(1, 2, (4, 4)), data, epochs=1)


# ------------------------------------------------------------------ CLI ----


def test_cli_train_conv_and_multitier(tmp_path, capsys):
    base = ["train", "--dataset", "digits", "--epochs", "1", "--train-limit", "128",
            "--test-limit", "50", "--no-progress", "--no-plot", "--seed", "1"]
    ck = tmp_path / "conv"
    assert cli.main(base + ["--model", "conv", "--channels", "3", "--checkpoint-dir",
                            str(ck), "--out", str(tmp_path / "h.json")]) == 0
    out = capsys.readouterr().out
    assert "single-convolution monDEQ 1x8x8 -> channels 3" in out and "test accuracy:" in out
    layer = json.loads((tmp_path / "h.json").read_text())["config"]["model"]["layer"]
    assert layer == {"name": "conv", "in_channels": 1, "channels": 3, "image_shape": [8, 8],
                     "kernel_size": 3, "m": 1.0}
    model, _, _ = load_classifier(ck / CHECKPOINT_NAME)
    assert model.kind == "conv"
    # --resume continues the conv run
    assert cli.main(base[:4] + ["2"] + base[5:] + ["--model", "conv", "--channels", "3",
                                                    "--checkpoint-dir", str(ck), "--resume"]) == 0
    assert "after 2 epochs" in capsys.readouterr().out
    assert cli.main(base + ["--model", "multitier", "--channels", "2", "3", "--no-checkpoint",
                            "--augment"]) == 0
    out = capsys.readouterr().out
    assert "multi-tier monDEQ 1x8x8 -> channels (2, 3)" in out and "augmented" in out
    # options that do not fit the model are errors before training
    for extra, message in ((["--model", "dense", "--channels", "3"], "--channels applies"),
                           (["--model", "conv", "--width", "3"], "--width applies"),
                           (["--model", "conv", "--channels", "2", "3"], "one number"),
                           (["--model", "multitier", "--channels", "2", "3", "4", "5", "6"],
                            "image_shape")):
        assert cli.main(base + extra + ["--no-checkpoint"]) == 2
        captured = capsys.readouterr()
        assert message in captured.err and "epoch" not in captured.out


def test_presets_are_the_papers():
    from opsplit.nn.cli_train import preset

    assert preset("conv", "mnist-sample").size == 54
    assert preset("multitier", "mnist").size == (16, 32, 32)
    assert preset("multitier", "mnist").lr == 1e-3  # the paper's, on full MNIST
    assert preset("multitier", "mnist-sample").lr == 2e-3  # 32 batches per epoch
    assert preset("conv", "cifar10").size == 81 and preset("conv", "svhn").step == 25
    assert preset("multitier", "cifar10").size == (16, 32, 60)
    assert preset("multitier", "cifar10").lr == 1e-2 and preset("multitier", "svhn").lr == 1e-3
    large = preset("conv-large", "cifar10")
    assert (large.size, large.schedule, large.augment) == (200, "onecycle", True)
    assert preset("multitier-large", "cifar10").size == (64, 128, 128)
    assert preset("dense", "mnist-sample").size == 87
