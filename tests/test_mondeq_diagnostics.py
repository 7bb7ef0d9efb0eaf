"""monDEQ certificates: exact margin, norms, Lipschitz bound, robustness radii
(checked against a brute-force attack), certified accuracy at fixed radii, the
step study and the ``opsplit check`` / ``opsplit study`` commands."""

from __future__ import annotations

import math

import numpy as np
import pytest

import opsplit as ops
from opsplit import nn
from opsplit.cli import main
from opsplit.diagnostics import check_lipschitz
from opsplit.nn import (
    certify_classifier,
    certify_layer,
    mondeq_step_study,
    robustness_radii,
    save_checkpoint,
)


def fb_step_limit(m, L):
    return 2 * m / L**2


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
    L_ref = np.linalg.norm(M, 2)
    assert math.isclose(cert.step_limits["fb"], 2 * m_ref / L_ref**2)
    assert cert.step_limits["pr"] == cert.step_limits["dr"] == math.inf
    assert math.isclose(cert.best_steps["pr"], 1 / L_ref)
    assert math.isclose(cert.best_steps["fb"], m_ref / L_ref**2)
    text = cert.summary()
    for piece in ("λ_min", "OK", "‖I - W‖", "Lipschitz bound", "unique", "fb: α < 2m/L²",
                  "pr: every α", "dr: every α"):
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


def test_certified_accuracy_at_fixed_radii(small):
    """Regression: the summary reported the certified accuracy at the quartiles of
    the radii, so it always read 75 / 50 / 25 % of the correct samples."""
    model, params, x = small
    rc = robustness_radii(model, params, x)
    labels = rc.predictions.copy()
    labels[:4] = (labels[:4] + 1) % 3  # four wrong predictions
    eps = (0.0, float(np.median(rc.radii)), 1e9)
    got = rc.certified_accuracy(labels, eps)
    right = rc.predictions == labels
    expected = [right.mean(), np.mean(right & (rc.radii >= eps[1])), 0.0]
    np.testing.assert_allclose(got, expected)
    # pixel units: a radius r in standardised units is r·std in pixel units
    std = 0.3
    np.testing.assert_allclose(rc.certified_accuracy(labels, [e * std for e in eps], scale=std),
                               expected)
    # the summary reports the chosen radii, not the data's quartiles
    text = rc.summary(labels=labels, eps=(0.01, 1e9))
    assert "accuracy 75.0%" in text and "ε=0.01:" in text and "ε=1e+09: 0.0%" in text
    two = robustness_radii(model, params, x[:2])
    assert two.summary(labels=two.predictions, eps=(1e9,)).endswith("ε=1e+09: 0.0%")
    with pytest.raises(ValueError, match="eps must be finite numbers >= 0"):
        rc.certified_accuracy(labels, [-0.1])
    with pytest.raises(ValueError, match=r"labels must have shape \(16,\)"):
        rc.certified_accuracy(labels[:3], [0.1])


def test_step_study_on_a_layer():
    # Small margin: forward–backward has a narrow safe range, PR converges for every α.
    model = nn.Classifier.dense(in_features=6, width=12, num_classes=3, m=0.5)
    params = model.init_params(seed=2, dtype="float64")
    params = params._replace(deq=params.deq._replace(A=2.0 * params.deq.A,
                                                     B=2.0 * params.deq.B))
    x = np.random.default_rng(3).standard_normal((20, 6))
    study = mondeq_step_study(model, params, x, tol=1e-5, maxiter=800)
    limit = fb_step_limit(study.m, study.L)
    assert study.labels == ("FB", "PR", "DR")
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


def test_step_study_keeps_the_models_own_hyperparameters():
    dr = ops.DouglasRachford(step=1.0, relaxation=1.7)
    model = nn.Classifier.dense(in_features=6, width=8, num_classes=3, method=dr)
    params = model.init_params(seed=2, dtype="float64")
    x = np.random.default_rng(3).standard_normal((4, 6))
    study = mondeq_step_study(model, params, x, methods=("dr", "pr"), steps=(0.5,), tol=1e-6)
    def iterations(method):
        ref = model.deq.with_options(method=method, tol=1e-6, maxiter=500, check_every=1)
        return ref.forward(params.deq, x)[1].result.iterations

    relaxed = iterations(ops.DouglasRachford(step=0.5, relaxation=1.7))
    assert relaxed != iterations(ops.DouglasRachford(step=0.5))  # the relaxation matters here
    assert study.results[("DR", 0.5)].iterations == relaxed
    assert study.results[("PR", 0.5)].iterations == iterations(ops.PeacemanRachford(step=0.5))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A checkpoint written by training (one epoch on digits), with a leaky ReLU
    of slope 0.3 and Douglas–Rachford with relaxation 1.7."""
    ds = nn.load_dataset("digits").subset(train=128, test=64)
    model = nn.Classifier.dense(
        in_features=ds.features, width=16, m=1.0,
        activation=ops.prox.LeakyReLU(slope=0.3),
        method=ops.DouglasRachford(step=1.0, relaxation=1.7), tol=1e-3,
    )
    directory = tmp_path_factory.mktemp("ck")
    history = nn.fit(model, model.init_params(seed=0), ds, epochs=1, batch_size=64,
                     checkpoint_dir=directory, progress=False, config={"dataset": "digits"})
    return directory / nn.CHECKPOINT_NAME, history.model, history.params


def test_check_command(checkpoint, capsys):
    path, model, params = checkpoint
    assert main(["check", str(path), "--samples", "20"]) == 0
    out = capsys.readouterr().out
    cert = certify_classifier(model, params)
    assert f"{float(cert.margin):.6g}" in out and "declared m = 1: OK" in out
    assert f"{cert.lipschitz_bound:.6g}" in out
    assert "unique zero" in out and "certified l2 radii over 20 samples" in out
    assert "first 20 test images of digits" in out
    # the model as trained, not rebuilt from defaults (regression: slope 0.01, relaxation 1)
    assert "activation leaky_relu(slope=0.3)" in out
    assert "relaxation=1.7" in out and "tol 0.001" in out
    # the certified accuracy at the requested radii, in pixel units, from the same radii
    x, y = nn.load_dataset("digits").x_test[:20], nn.load_dataset("digits").y_test[:20]
    rc = robustness_radii(model, params, x)
    std = nn.load_dataset("digits").std
    assert main(["check", str(path), "--samples", "20", "--eps", "0", "0.05"]) == 0
    out = capsys.readouterr().out
    fractions = rc.certified_accuracy(y, (0.0, 0.05), scale=std)
    assert f"ε=0: {fractions[0]:.1%}, ε=0.05: {fractions[1]:.1%}" in out


def test_study_command(checkpoint, capsys, tmp_path):
    path, _, _ = checkpoint
    out_png = tmp_path / "study.png"
    assert main(["study", str(path), "--samples", "16", "--steps", "4", "--maxiter", "200",
                 "--plot", str(out_png)]) == 0
    out = capsys.readouterr().out
    assert "method" in out and "1/8" in out and "PR at its best α" in out
    assert "relaxation=1.7" in out
    assert out_png.stat().st_size > 1000
    # by default the figure goes next to the checkpoint, like the training plot
    assert main(["study", str(path), "--samples", "8", "--steps", "2", "--methods", "pr,DR"]) == 0
    assert (path.parent / "study.png").stat().st_size > 1000
    out = capsys.readouterr().out
    assert "FB" not in out.split("method")[1].split("iterations")[0]
    assert main(["study", str(path), "--methods", "simplex"]) == 2
    assert "unknown method 'simplex'" in capsys.readouterr().err


def _unreadable(tmp_path):
    good = tmp_path / "good.npz"
    save_checkpoint(good, (np.ones(3),), epoch=1)
    files = {
        "empty.npz": b"",
        "notes.txt": b"this is a text file, not a checkpoint\n",
        "garbage.npz": bytes(range(256)),
        "truncated.npz": good.read_bytes()[:150],
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    return [tmp_path / name for name in files]


@pytest.mark.parametrize("command", ["check", "study"])
def test_commands_report_unreadable_checkpoints_in_one_line(tmp_path, capsys, command):
    assert main([command, str(tmp_path / "missing.npz")]) == 2
    err = capsys.readouterr().err
    missing = tmp_path / "missing.npz"
    assert err == f"opsplit {command}: error: checkpoint {missing} does not exist\n"
    for path in _unreadable(tmp_path):
        assert main([command, str(path)]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err == (f"opsplit {command}: error: checkpoint {path} is corrupted or "
                                f"truncated and cannot be read: "
                                + captured.err.split("cannot be read: ")[1])
        assert captured.err.count("\n") == 1 and "pickle" not in captured.err
    # a readable .npz that is not a training checkpoint
    assert main([command, str(tmp_path / "good.npz")]) == 2
    assert "records no model configuration" in capsys.readouterr().err


def test_commands_validate_arguments_before_any_work(checkpoint, capsys, tmp_path):
    path, _, _ = checkpoint
    with pytest.raises(SystemExit) as exit_:
        main(["check", str(path), "--data", "foo"])
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "invalid choice: 'foo'" in captured.err
    # a data set that does not fit the model is rejected before the certificate is printed
    assert main(["check", str(path), "--data", "mnist-sample"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "--data mnist-sample has 784 features per sample" in captured.err
    for bad in (["--samples", "0"], ["--eps", "x"]):
        with pytest.raises(SystemExit):
            main(["check", str(path), *bad])
        assert capsys.readouterr().out == ""
    assert main(["check", str(path), "--eps", "-1"]) == 2
    assert "--eps must be finite numbers >= 0" in capsys.readouterr().err
    # study on the full MNIST files without them: the advice names a flag study has
    empty = tmp_path / "mnist"
    empty.mkdir()
    assert main(["study", str(path), "--data", "mnist", "--data-dir", str(empty)]) == 2
    err = capsys.readouterr().err
    assert "--download" in err
    with pytest.raises(SystemExit):
        main(["study", "--help"])
    assert "--download" in capsys.readouterr().out
    # an unwritable figure location fails before the study runs
    (tmp_path / "file").write_text("")
    assert main(["study", str(path), "--plot", str(tmp_path / "file" / "s.png")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "not a writable directory" in captured.err
