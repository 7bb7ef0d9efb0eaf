"""monDEQ certificates: exact margin, norms, Lipschitz bound, robustness radii
(checked against a brute-force attack), the step study and the commands."""

from __future__ import annotations

import math

import numpy as np
import pytest

from opsplit import nn
from opsplit.cli import main
from opsplit.diagnostics import (
    certify_classifier,
    certify_layer,
    check_lipschitz,
    mondeq_step_study,
    robustness_radii,
)
from opsplit.diagnostics.rates import fb_step_limit
from opsplit.nn.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def small():
    model = nn.Classifier.dense(in_features=4, width=8, num_classes=3, m=0.5, tol=1e-10,
                                maxiter=2000)
    params = model.init_params(seed=1, dtype="float64")
    x = np.random.default_rng(0).standard_normal((16, 4))
    return model, params, x


def test_layer_certificate_against_numpy(small):
    model, params, _ = small
    cert = certify_classifier(model, params)
    M = model.layer.monotone_matrix(params.deq)
    m_ref = np.linalg.eigvalsh((M + M.T) / 2).min()
    assert cert.margin.exact and math.isclose(cert.margin, m_ref, rel_tol=1e-12)
    assert cert.margin >= model.layer.m and cert.margin_check.passed
    assert math.isclose(cert.lipschitz, np.linalg.norm(M, 2), rel_tol=1e-12)
    bound = np.linalg.norm(params.head.weight, 2) * np.linalg.norm(params.deq.U, 2) / m_ref
    assert math.isclose(cert.lipschitz_bound, bound, rel_tol=1e-12)
    assert cert.unique and "unique" in cert.uniqueness
    assert math.isclose(cert.fb_step_limit, 2 * m_ref / np.linalg.norm(M, 2) ** 2)
    text = cert.summary()
    for piece in ("λ_min", "OK", "‖I - W‖", "Lipschitz bound", "unique"):
        assert piece in text


def test_broken_layer_fails_the_margin_check():
    # Weight normalization with a negative scale g breaks I - W ⪰ m I.
    layer = nn.MonDense(in_features=3, width=6, m=0.5, weight_norm=True)
    p = layer.init_params(seed=0)
    bad = p._replace(g=-3.0 * p.g)
    cert = certify_layer(layer, bad)
    assert not cert.margin_check.passed and cert.margin < 0.5
    assert "VIOLATED" in cert.summary()
    assert certify_layer(layer, p).margin_check.passed


def test_lipschitz_bound_holds_on_sampled_and_searched_pairs(small):
    model, params, x = small
    cert = certify_classifier(model, params)
    rep = check_lipschitz(lambda v: model.logits(params, v), x[0], cert.lipschitz_bound,
                          samples=32, search_steps=10, keep=4)
    assert rep.passed and rep.worst <= cert.lipschitz_bound


def _margin_and_grad(model, params, X, c):
    """Per row: (y_c - max_{j≠c} y_j, its gradient with respect to the input)."""
    logits, cache = model.forward(params, X)
    rows = np.arange(X.shape[0])
    masked = logits.copy()
    masked[rows, c] = -np.inf
    j = masked.argmax(1)
    g = np.zeros_like(logits)
    g[rows, c], g[rows, j] = 1.0, -1.0
    _, gx, _ = model.backward(params, cache, g)
    return logits[rows, c] - logits[rows, j], gx


def _attack(model, params, x, c, radius, rng, steps=25, restarts=2, nrand=100):
    """Brute force in the ℓ2 balls: random points on the spheres, then projected
    gradient descent on the logit margin.  Returns a bool per sample: flipped."""
    n, d = x.shape
    flipped = np.zeros(n, bool)
    dirs = rng.standard_normal((n, nrand, d))
    dirs *= radius[:, None, None] / np.linalg.norm(dirs, axis=2, keepdims=True)
    pts = (x[:, None, :] + dirs).reshape(-1, d)
    pred = model.logits(params, pts).argmax(1).reshape(n, nrand)
    flipped |= np.any(pred != c[:, None], axis=1)
    for _ in range(restarts):
        delta = rng.standard_normal((n, d))
        delta *= 0.5 * radius[:, None] / np.linalg.norm(delta, axis=1, keepdims=True)
        for _ in range(steps):
            gap, grad = _margin_and_grad(model, params, x + delta, c)
            flipped |= gap < 0
            delta -= 0.3 * radius[:, None] * grad / (np.linalg.norm(grad, axis=1,
                                                                     keepdims=True) + 1e-300)
            norm = np.linalg.norm(delta, axis=1, keepdims=True)
            delta *= np.minimum(1.0, radius[:, None] / norm)
        flipped |= _margin_and_grad(model, params, x + delta, c)[0] < 0
    return flipped


def test_no_perturbation_inside_the_radius_flips_the_prediction(small):
    model, params, x = small
    rc = robustness_radii(model, params, x)
    assert rc.radii.shape == (16,) and np.all(rc.radii > 0)
    np.testing.assert_array_equal(rc.predictions, model.logits(params, x).argmax(1))
    assert np.all(rc.error_bounds < 1e-8)  # the equilibrium solve is certified too
    rng = np.random.default_rng(1)
    inside = _attack(model, params, x, rc.predictions, 0.999 * rc.radii, rng)
    assert not inside.any()
    # The attack is strong enough to matter: it flips every sample within 64 radii
    # (measured: 4 to 64 times the certified radius).
    flipped = np.zeros(16, bool)
    for k in (2, 4, 8, 16, 32, 64):
        flipped |= _attack(model, params, x, rc.predictions, k * rc.radii, rng, steps=15,
                           restarts=1, nrand=30)
    assert flipped.all()


def test_radius_accounts_for_the_solve_error(small):
    model, params, x = small
    tight = robustness_radii(model, params, x)
    loose = robustness_radii(model, params, x, tol=1e-2, maxiter=3)
    assert np.all(loose.error_bounds > tight.error_bounds)
    assert np.all(loose.radii <= tight.radii + 1e-12)
    text = tight.summary(labels=tight.predictions)
    assert "certified l2 radii over 16 samples" in text and "accuracy 100.0%" in text


def test_step_study_on_a_layer():
    # Small margin: forward–backward has a narrow safe range, PR converges for every α.
    model = nn.Classifier.dense(in_features=6, width=12, num_classes=3, m=0.5)
    params = model.init_params(seed=2, dtype="float64")
    params = params._replace(deq=params.deq._replace(A=2.0 * params.deq.A,
                                                     B=2.0 * params.deq.B))
    x = np.random.default_rng(3).standard_normal((20, 6))
    study = mondeq_step_study(model, params, x, tol=1e-5, maxiter=800)
    limit = fb_step_limit(study.m, study.L)
    fb, pr = study.labels.index("FB"), study.labels.index("PR")
    for j, a in enumerate(study.steps):
        if a < limit:
            assert study.converged[fb, j], a  # guaranteed by the contraction bound
    assert study.converged[pr].all()
    assert not study.converged[fb].all()
    assert study.failure_threshold("FB") >= limit
    assert study.best("PR")[1] < study.best("FB")[1]
    cert = certify_classifier(model, params)
    assert math.isclose(study.m, cert.margin) and math.isclose(study.L, cert.lipschitz)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from opsplit.nn.data import load_dataset

    ds = load_dataset("digits")
    model = nn.Classifier.dense(in_features=ds.features, width=16, m=1.0)
    params = model.init_params(seed=0, dtype="float32")
    path = tmp_path_factory.mktemp("ck") / "last.npz"
    save_checkpoint(path, params, epoch=1,
                    meta={"alpha": 0.5, "config": {**model.config(), "dataset": "digits"}})
    return path, model, params


def test_check_command(checkpoint, capsys):
    path, model, params = checkpoint
    assert main(["check", str(path), "--samples", "20"]) == 0
    out = capsys.readouterr().out
    cert = certify_classifier(model, params)
    assert f"{float(cert.margin):.6g}" in out and "declared m = 1: OK" in out
    assert f"{cert.lipschitz_bound:.6g}" in out
    assert "unique zero" in out and "certified l2 radii over 20 samples" in out
    assert "first 20 test images of digits" in out


def test_study_command(checkpoint, capsys, tmp_path):
    path, _, _ = checkpoint
    out_png = tmp_path / "study.png"
    assert main(["study", str(path), "--samples", "16", "--steps", "4", "--maxiter", "200",
                 "--out", str(out_png)]) == 0
    out = capsys.readouterr().out
    assert "method" in out and "1/8" in out and "PR at its best α" in out
    assert out_png.stat().st_size > 1000


def test_commands_report_bad_input(tmp_path, capsys):
    assert main(["check", str(tmp_path / "missing.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    assert main(["study", str(bad)]) == 2
    assert "not a readable opsplit checkpoint" in capsys.readouterr().err
