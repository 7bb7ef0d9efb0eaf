"""One equilibrium for every layer: MonDEQ, gradcheck, bad input, certificates and the
``opsplit check`` / ``opsplit study`` commands on the single-convolution and multi-tier
layers (dense references on tiny images), and the same on CuPy under the ``gpu`` marker."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import BACKEND_PARAMS, make_backend, to_numpy

import opsplit as ops
from opsplit import nn
from opsplit.cli import main
from opsplit.diagnostics import check_lipschitz
from opsplit.nn import certify as certify_module
from opsplit.nn.border import BorderMasked


def conv_case(seed=0):
    layer = nn.MonConv(in_channels=2, channels=3, image_shape=(4, 5), kernel_size=3, m=0.7)
    p = layer.init_params(seed=seed)
    p = p._replace(b=p.b + 0.4, g=np.asarray(1.3), h=np.asarray(-0.8))
    x = np.random.default_rng(seed + 1).standard_normal((2, 2, 4, 5))
    return layer, p, x


def multi_case(seed=0, channels=(2, 3, 2)):
    layer = nn.MonMultiConv(in_channels=2, channels=channels, image_shape=(4, 4), m=0.6)
    p = layer.init_params(seed=seed)
    rng = np.random.default_rng(seed + 1)
    L = layer.depth
    p = p._replace(
        b=p.b + 0.5,
        g=tuple(np.asarray(v) for v in rng.uniform(0.5, 2.0, L)),
        h=tuple(np.asarray(v) for v in rng.uniform(-1.5, 1.5, L)),
        gn=tuple(np.asarray(v) for v in rng.uniform(0.5, 2.0, L - 1)),
    )
    x = rng.standard_normal((2, 2, 4, 4))
    return layer, p, x


CASES = {"conv": conv_case, "multitier": multi_case}


def tiers(z):
    return z if isinstance(z, tuple) else (z,)


def ring(t):
    return np.concatenate([t[..., 0, :].ravel(), t[..., -1, :].ravel(),
                           t[..., :, 0].ravel(), t[..., :, -1].ravel()])


# -- 1. the layer's nonlinearity, applied by MonDEQ ---------------------------------------
@pytest.mark.parametrize("activation", ["relu", "tanh", "softplus"])
@pytest.mark.parametrize("kind", CASES)
def test_mondeq_keeps_the_ring_zero_for_a_plain_activation(kind, activation):
    """Regression: ``MonDEQ(layer, activation="relu")`` applied ReLU on the padding
    ring too (ring values up to 0.14): the layer's border mask was left to the user."""
    layer, p, x = CASES[kind]()
    deq = nn.MonDEQ(layer, activation=activation, tol=1e-12, maxiter=5000)
    user = ops.prox.activations.get_activation(activation)
    assert type(deq.activation) is type(user)  # the user's, unmasked
    assert isinstance(deq.nonlinearity, BorderMasked)
    z, state = deq.forward(p, x)
    assert state.result.success
    for t in tiers(z):
        assert np.all(ring(t) == 0.0)
        assert np.abs(t[..., 1:-1, 1:-1]).max() > 1e-3  # the interior is not
    # the equilibrium of the masked activation: z = σ(W z + U x + b) with σ masked
    sigma = layer.nonlinearity(activation)
    M = layer.monotone(p)
    pre = tuple(zi - mi + qi for zi, mi, qi in
                zip(tiers(z), tiers(M.matvec(z)), tiers(layer.injection(p, x))))
    for zi, vi in zip(tiers(z), pre):
        np.testing.assert_allclose(zi, sigma.activate(vi), atol=1e-9)
    # an explicitly masked activation is not masked twice, and gives the same z
    masked = nn.MonDEQ(layer, activation=layer.nonlinearity(activation), tol=1e-12,
                       maxiter=5000)
    assert type(masked.nonlinearity.activation) is type(user)
    for a, b in zip(tiers(masked.forward(p, x)[0]), tiers(z)):
        np.testing.assert_array_equal(a, b)


def test_the_dense_layer_uses_the_activation_itself():
    layer = nn.MonDense(in_features=3, width=4)
    deq = nn.MonDEQ(layer, activation="tanh")
    assert deq.nonlinearity is deq.activation


def test_classifier_config_stores_the_inner_activation():
    model = nn.Classifier.conv(in_channels=1, channels=3, image_shape=(8, 8),
                               activation=ops.prox.LeakyReLU(slope=0.2))
    assert model.config()["activation"] == {"name": "leaky_relu", "slope": 0.2}
    again = nn.Classifier.from_config(model.config())
    assert again.config() == model.config()
    assert isinstance(again.deq.nonlinearity, BorderMasked)
    assert not isinstance(again.deq.nonlinearity.activation, BorderMasked)


# -- 2. gradcheck on every layer ------------------------------------------------------------
def test_gradcheck_on_the_multi_tier_layer_every_field_and_x():
    layer, p, x = multi_case()
    deq = nn.MonDEQ(layer, activation="relu", method=ops.PeacemanRachford(1.0))
    report = nn.gradcheck(deq, p, x, n_directions=1, seed=1)
    assert report.passed, str(report)
    expected = {"U", "b", "x"} | {f"{f}[{i}]" for f in ("A", "B", "g", "h") for i in range(3)}
    expected |= {f"{f}[{i}]" for f in ("N", "gn") for i in range(2)}
    assert set(report.fields) == expected
    # the tier weights enter nonlinearly: slope 2 where the remainder is above noise
    assert report.fields["A[0]"].taylor_slope == pytest.approx(2.0, abs=0.1)
    # a zero gradient is not judged by the ratio of rounding errors: the last tier
    # (3 × 3 grid, one interior pixel, one active channel) does not feel h[2]
    # (fd = 0 against 1e-19 read as rel_error 1 before the resolution floor)
    field = report.fields["h[2]"]
    assert abs(field.finite_differences[0]) < 1e-12 and abs(field.analytic[0]) < 1e-12
    assert field.passed

    def broken(params, state, grad_z):
        grads, grad_x = deq.with_options(tol=1e-13, maxiter=100_000, backward_tol=1e-13,
                                         backward_maxiter=100_000).backward(params, state, grad_z)
        return grads._replace(N=(1.01 * grads.N[0], grads.N[1])), grad_x

    bad = nn.gradcheck(deq, p, x, n_directions=1, seed=1, backward=broken)
    failed = {name for name, f in bad.fields.items() if not f.passed}
    assert failed == {"N[0]"}, str(bad)
    assert bad.fields["N[0]"].rel_error > 1e-3


def test_gradcheck_on_the_conv_layer_with_a_plain_activation():
    layer, p, x = conv_case()
    deq = nn.MonDEQ(layer, activation="softplus")
    report = nn.gradcheck(deq, p, x, n_directions=1)
    assert report.passed, str(report)
    assert set(report.fields) == {"A", "B", "U", "b", "g", "h", "x"}

    def broken(params, state, grad_z):
        grads, grad_x = deq.exact_backward(params, state, grad_z)
        return grads._replace(h=-grads.h), grad_x

    bad = nn.gradcheck(deq, p, x, n_directions=1, backward=broken)
    assert {n for n, f in bad.fields.items() if not f.passed} == {"h"}


# -- 4. bad input at the MonDEQ level ------------------------------------------------------
def _bad_calls(layer, p, x, deq, z, state):
    z_t = tiers(z)
    other = z_t[0][..., :-1] if len(z_t) == 1 else None
    calls = [
        ("image size", lambda: deq.forward(p, x[..., :-1]), ValueError, "x has images of size"),
        ("channels", lambda: deq.forward(p, np.concatenate([x, x], 1)), ValueError,
         "in_channels=2"),
        ("rank", lambda: deq.forward(p, x[:, 0]), ValueError, "x must have shape"),
        ("dtype", lambda: deq.forward(p, x.astype(np.float32)), TypeError, "x has dtype"),
        ("nan", lambda: deq.forward(p, x * np.nan), ValueError, "x contains NaN"),
        ("grad_z dtype", lambda: deq.backward(p, state, tuple(t.astype(np.float32) for t in z_t)
                                              if len(z_t) > 1 else z.astype(np.float32)),
         TypeError, "grad_z"),
        ("grad_z list", lambda: deq.backward(p, state, list(z_t)), TypeError, "grad_z"),
        ("dx shape", lambda: deq.jvp(p, state, None, x[..., :-1]), ValueError, "dx must have"),
        ("state", lambda: deq.backward(p, "state", z), TypeError, "state must be"),
    ]
    if len(z_t) > 1:
        calls += [
            ("grad_z short", lambda: deq.backward(p, state, z_t[:-1]), ValueError,
             r"grad_z must hold 3 arrays"),
            ("grad_z long", lambda: deq.backward(p, state, z_t + z_t[:1]), ValueError,
             r"grad_z must hold 3 arrays"),
            ("grad_z array", lambda: deq.backward(p, state, z_t[0]), TypeError,
             "grad_z must be a tuple of 3 arrays"),
            ("grad_z tier shape", lambda: deq.backward(p, state, (*z_t[:2], z_t[2][:1])),
             ValueError, r"grad_z\[2\] must have the shape of z\[2\]"),
            ("grad_z None", lambda: deq.backward(p, state, (*z_t[:2], None)), TypeError,
             r"grad_z\[2\] must be an array"),
            ("exact grad_z", lambda: deq.exact_backward(p, state, z_t[:-1]), ValueError,
             "grad_z must hold"),
            ("z0 tiers", lambda: deq.forward(p, x, z0=z_t[:2]), ValueError, "z0 must hold"),
            ("dparams tiers", lambda: deq.jvp(p, state, p._replace(A=p.A[:2])), ValueError,
             r"dparams.A must be a tuple of 3"),
            ("params tiers", lambda: deq.forward(p._replace(N=p.N[:1]), x), ValueError,
             r"params.N must hold 2 entries"),
        ]
    else:
        calls += [
            ("grad_z tuple", lambda: deq.backward(p, state, (z,)), TypeError,
             "grad_z must be an array"),
            ("grad_z shape", lambda: deq.backward(p, state, other), ValueError,
             "grad_z must have the shape of z"),
            ("z0 shape", lambda: deq.forward(p, x, z0=other), ValueError, "z0 must have"),
            ("dparams type", lambda: deq.jvp(p, state, tuple(p)), TypeError,
             "dparams must be ConvParams"),
            ("dparams shape", lambda: deq.jvp(p, state, p._replace(U=p.U[:1])), ValueError,
             r"dparams.U must have the shape"),
        ]
    return calls


@pytest.mark.parametrize("kind", CASES)
def test_bad_input_names_the_argument(kind):
    layer, p, x = CASES[kind]()
    deq = nn.MonDEQ(layer, tol=1e-6)
    z, state = deq.forward(p, x)
    for label, call, error, match in _bad_calls(layer, p, x, deq, z, state):
        with pytest.raises(error, match=match):
            call()
            pytest.fail(label)


@pytest.mark.parametrize(
    "cls, kwargs, match",
    [
        (nn.MonConv, {"kernel_size": 4}, "kernel_size must be odd"),
        (nn.MonMultiConv, {"kernel_size": 2}, "kernel_size must be odd"),
        (nn.MonMultiConv, {"image_shape": (6, 6)}, "image_shape .* does not halve"),
        (nn.MonConv, {"image_shape": (4,)}, "image_shape"),
    ],
)
def test_bad_layers_name_the_argument(cls, kwargs, match):
    base = {"in_channels": 1, "channels": (2, 2, 2) if cls is nn.MonMultiConv else 2,
            "image_shape": (8, 8)}
    with pytest.raises(ValueError, match=match):
        cls(**{**base, **kwargs})


# -- 3. certificates ------------------------------------------------------------------------
def _dense_input_map(layer, p, x_shape):
    """The matrix of ``x ↦ U x`` (the injection without ``b``), tiers concatenated."""
    n = int(np.prod(x_shape))
    eye = np.eye(n).reshape(n, *x_shape)
    zero_b = p._replace(b=np.zeros_like(p.b))
    out = tiers(layer.injection(zero_b, eye))
    return np.concatenate([t.reshape(n, -1) for t in out], axis=1).T


def _readout_reference(model, head):
    """``W_out R`` by explicit loops: 4 × 4 windows (conv) or the last tier."""
    layer = model.layer
    if model.kind == "conv":
        C, n1, n2 = layer.state_shape
        R = np.zeros((C * (n1 // 4) * (n2 // 4), C * n1 * n2))
        row = 0
        for c in range(C):
            for i in range(n1 // 4):
                for j in range(n2 // 4):
                    block = np.zeros((C, n1, n2))
                    block[c, 4 * i:4 * i + 4, 4 * j:4 * j + 4] = 1 / 16
                    R[row] = block.ravel()
                    row += 1
        return head @ R
    sizes = [int(np.prod(s)) for s in layer.state_shapes]
    return np.concatenate([np.zeros((head.shape[0], sum(sizes[:-1]))), head], axis=1)


@pytest.mark.parametrize("channels", [3, (2, 3)], ids=["conv", "multitier"])
def test_certificate_of_conv_classifiers_against_dense_references(channels):
    model = nn.Classifier.conv(in_channels=1, channels=channels, image_shape=(8, 8),
                               num_classes=3, m=0.5, tol=1e-10, maxiter=3000)
    params = model.init_params(seed=1, dtype="float64")
    cert = nn.certify_classifier(model, params)
    M = model.layer.monotone_matrix(params.deq)
    sym = (M + M.T) / 2
    assert cert.margin.exact and math.isclose(cert.margin, np.linalg.eigvalsh(sym).min(),
                                              rel_tol=1e-10)
    assert cert.margin_check.passed and cert.unique
    assert math.isclose(cert.lipschitz, np.linalg.norm(M, 2), rel_tol=1e-10)
    x_shape = (1, 8, 8)
    U = _dense_input_map(model.layer, params.deq, x_shape)
    assert cert.u_norm >= np.linalg.norm(U, 2) * (1 - 1e-12)  # an upper bound
    assert cert.u_norm <= 1.5 * np.linalg.norm(U, 2)  # and not a loose one here
    head = _readout_reference(model, params.head.weight)
    assert math.isclose(cert.head_norm, np.linalg.norm(head, 2), rel_tol=1e-10)
    assert math.isclose(cert.lipschitz_bound, cert.head_norm * cert.u_norm / cert.margin)
    if isinstance(channels, tuple):  # per tier: the exact margins of the diagonal blocks
        sizes = np.cumsum([0] + [int(np.prod(s)) for s in model.layer.state_shapes])
        for i, t in enumerate(cert.tier_margins):
            block = sym[sizes[i]:sizes[i + 1], sizes[i]:sizes[i + 1]]
            assert t.exact and math.isclose(t, np.linalg.eigvalsh(block).min(), rel_tol=1e-10)
        assert "per tier" in cert.summary()
    else:
        assert cert.tier_margins is None
    # the bound holds on sampled and searched pairs of images
    x = np.random.default_rng(0).standard_normal((1, *x_shape))
    rep = check_lipschitz(lambda v: model.logits(params, v), x[0], cert.lipschitz_bound,
                          samples=8, search_steps=3, keep=2)
    assert rep.passed
    # radii: no sampled perturbation inside flips a prediction; far outside some do
    xs = np.random.default_rng(2).standard_normal((4, *x_shape))
    rc = nn.robustness_radii(model, params, xs, cert=cert)
    assert np.all(rc.radii > 0)
    np.testing.assert_array_equal(rc.predictions, model.logits(params, xs).argmax(1))
    rng = np.random.default_rng(3)
    for k, sample in enumerate(xs):
        d = rng.standard_normal((64, *x_shape))
        d *= 0.999 * rc.radii[k] / np.linalg.norm(d.reshape(64, -1), axis=1)[:, None, None, None]
        assert np.all(model.logits(params, sample + d).argmax(1) == rc.predictions[k])


@pytest.mark.parametrize("channels", [3, (2, 3)], ids=["conv", "multitier"])
def test_broken_conv_layers_fail_the_margin_check(channels):
    model = nn.Classifier.conv(in_channels=1, channels=channels, image_shape=(8, 8),
                               num_classes=3, m=0.5)
    params = model.init_params(seed=1, dtype="float64")
    deq = params.deq
    # g < 0 breaks I - W ⪰ m I (g_0 of a multi-tier layer enters no square root)
    bad = (deq._replace(g=(-4.0 * deq.g[0], *deq.g[1:])) if isinstance(channels, tuple)
           else deq._replace(g=-4.0 * deq.g))
    assert nn.certify_layer(model.layer, deq).margin_check.passed
    cert = nn.certify_layer(model.layer, bad)
    assert not cert.margin_check.passed and cert.margin < 0.5
    assert "VIOLATED" in cert.summary()


def test_large_multi_tier_layer_uses_the_parametrization_bound(monkeypatch):
    model = nn.Classifier.conv(in_channels=1, channels=(2, 3), image_shape=(8, 8),
                               num_classes=3, m=0.5)
    params = model.init_params(seed=1, dtype="float64")
    exact = nn.certify_classifier(model, params)
    monkeypatch.setattr(certify_module, "DENSE_LIMIT", 10)  # as for MNIST-sized layers
    cert = nn.certify_classifier(model, params)
    assert not cert.margin.exact and float(cert.margin) == 0.5
    assert exact.margin >= cert.margin  # a lower bound
    assert cert.margin_check.passed
    assert cert.margin_check.worst == pytest.approx(min(exact.tier_margins))
    assert cert.lipschitz >= exact.lipschitz * (1 - 1e-12)  # an upper bound
    assert cert.lipschitz == pytest.approx(model.layer.lipschitz(params.deq))
    text = cert.summary()
    assert "≥ 0.5 (lower bound from the parametrization" in text and "‖I - W‖₂ ≤" in text
    bad = params.deq._replace(g=(-4.0 * params.deq.g[0], *params.deq.g[1:]))
    assert not nn.certify_layer(model.layer, bad).margin_check.passed


@pytest.mark.parametrize("channels", [3, (2, 3)], ids=["conv", "multitier"])
def test_step_study_on_conv_classifiers(channels):
    model = nn.Classifier.conv(in_channels=1, channels=channels, image_shape=(8, 8),
                               num_classes=3, m=0.2)
    params = model.init_params(seed=2, dtype="float64")
    x = np.random.default_rng(3).standard_normal((4, 1, 8, 8))
    cert = nn.certify_classifier(model, params)
    limit = 2 * float(cert.margin) / float(cert.lipschitz) ** 2
    steps = (4 * limit, 2 * limit, 0.9 * limit, 0.25, 1.0)
    study = nn.mondeq_step_study(model, params, x, steps=steps, tol=1e-6, maxiter=400,
                                 cert=cert)
    pr = study.labels.index("PR")
    assert study.converged[pr].all()
    # below forward-backward's bound 2m/L² it contracts (slowly: m = 0.2)
    history = study.results[("FB", 0.9 * limit)].history
    assert np.all(np.isfinite(history)) and history[-1] < 1e-2 * history[0]
    # the study solves what MonDEQ.forward solves
    ref = model.deq.with_options(method=ops.PeacemanRachford(step=0.25), tol=1e-6,
                                 maxiter=400, check_every=1)
    assert study.results[("PR", 0.25)].iterations == ref.forward(params.deq, x)[1].result.iterations


@pytest.fixture(scope="module")
def conv_checkpoints(tmp_path_factory):
    """Checkpoints of a single-convolution and a multi-tier model trained one epoch on
    digits (8 × 8 images)."""
    ds = nn.load_dataset("digits").subset(train=64, test=32)
    out = {}
    for kind, channels in (("conv", 3), ("multitier", (2, 3))):
        model = nn.Classifier.conv(in_channels=1, channels=channels, image_shape=(8, 8),
                                   activation=ops.prox.LeakyReLU(slope=0.3), tol=1e-3)
        directory = tmp_path_factory.mktemp(kind)
        history = nn.fit(model, model.init_params(seed=0), ds, epochs=1, batch_size=32,
                         checkpoint_dir=directory, progress=False, config={"dataset": "digits"})
        out[kind] = (directory / nn.CHECKPOINT_NAME, history.model, history.params)
    return out


@pytest.mark.parametrize("kind", ["conv", "multitier"])
def test_check_and_study_commands_on_conv_checkpoints(conv_checkpoints, kind, capsys):
    path, model, params = conv_checkpoints[kind]
    assert main(["check", str(path), "--samples", "8"]) == 0
    out = capsys.readouterr().out
    cert = nn.certify_classifier(model, params)
    assert f"{float(cert.margin):.6g}" in out and "declared m = 1: OK" in out
    assert f"{cert.lipschitz_bound:.6g}" in out
    assert ("per tier" in out) == (kind == "multitier")
    assert "certified l2 radii over 8 samples" in out
    assert "leaky_relu(slope=0.3)" in out
    x = nn.load_dataset("digits").x_test[:8]
    rc = nn.robustness_radii(model, params, x, cert=cert)
    std = float(np.min(nn.load_dataset("digits").std))
    assert f"median {np.median(rc.radii * std):.4g}" in out
    assert main(["study", str(path), "--samples", "4", "--steps", "2", "--maxiter", "100",
                 "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "step-size study on 4 test images of digits" in out and "PR" in out
    # a data set of another image size is refused before any work
    assert main(["check", str(path), "--data", "mnist-sample"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "(in_channels, H, W) = (1, 8, 8)" in captured.err


# -- 5. CuPy (gpu marker) --------------------------------------------------------------------
GPU = [p for p in BACKEND_PARAMS if p.id == "cupy"]
PORTABLE = [p for p in BACKEND_PARAMS if p.id in ("strict-device1", "cupy")]


def _to(backend, p):
    def put(v):
        if v is None:
            return None
        return tuple(put(a) for a in v) if isinstance(v, tuple) else backend.asarray(v)

    return type(p)(*(put(v) for v in p))


@pytest.mark.parametrize("backend_name", PORTABLE)
@pytest.mark.parametrize("kind", CASES)
def test_forward_backward_and_exact_reference_off_numpy(kind, backend_name):
    """Forward (ring zero), backward against the exact dense solve and the NumPy
    results, on the second array_api_strict device and on CuPy."""
    backend = make_backend(backend_name)
    layer, p, x = CASES[kind]()
    deq = nn.MonDEQ(layer, activation="relu", tol=1e-12, maxiter=5000)
    z_ref, st_ref = deq.forward(p, x)
    c = tuple(np.random.default_rng(5).standard_normal(t.shape) for t in tiers(z_ref))
    c = c if isinstance(z_ref, tuple) else c[0]
    g_ref, gx_ref = deq.backward(p, st_ref, c)
    pb, xb = _to(backend, p), backend.asarray(x)
    z, state = deq.forward(pb, xb)
    assert state.result.success
    for a, b in zip(tiers(z), tiers(z_ref)):
        assert np.all(ring(to_numpy(a)) == 0)
        np.testing.assert_allclose(to_numpy(a), b, atol=1e-9)
    cb = tuple(backend.asarray(t) for t in tiers(c))
    cb = cb if isinstance(z_ref, tuple) else cb[0]
    grads, grad_x = deq.backward(pb, state, cb)
    exact, exact_x = deq.exact_backward(pb, state, cb)
    np.testing.assert_allclose(to_numpy(grad_x), gx_ref, atol=1e-8)
    np.testing.assert_allclose(to_numpy(exact_x), gx_ref, atol=1e-8)
    for name, value in g_ref.arrays().items():
        np.testing.assert_allclose(to_numpy(grads.arrays()[name]), value, atol=1e-8)
        np.testing.assert_allclose(to_numpy(exact.arrays()[name]), value, atol=1e-8)


@pytest.mark.parametrize(
    "kind, backend_name",
    [pytest.param("conv", p.values[0], marks=p.marks, id=f"conv-{p.id}") for p in PORTABLE]
    + [pytest.param("multitier", p.values[0], marks=p.marks, id=f"multitier-{p.id}")
       for p in GPU],
)
def test_gradcheck_off_numpy(kind, backend_name):
    backend = make_backend(backend_name)
    layer, p, x = CASES[kind]()
    deq = nn.MonDEQ(layer, activation="relu")
    report = nn.gradcheck(deq, _to(backend, p), backend.asarray(x), n_directions=1)
    assert report.passed, str(report)


@pytest.mark.parametrize("backend_name", GPU)
def test_certificate_on_cupy(backend_name):
    backend = make_backend(backend_name)
    model = nn.Classifier.conv(in_channels=1, channels=(2, 3), image_shape=(8, 8),
                               num_classes=3, m=0.5)
    params = model.init_params(seed=1, dtype="float64")
    ref = nn.certify_classifier(model, params)
    on = nn.ClassifierParams(_to(backend, params.deq), _to(backend, params.head))
    cert = nn.certify_classifier(model, on)
    assert cert.margin == pytest.approx(ref.margin, rel=1e-10)
    assert cert.lipschitz_bound == pytest.approx(ref.lipschitz_bound, rel=1e-10)
