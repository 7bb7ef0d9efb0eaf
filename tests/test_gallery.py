"""The gallery examples (``examples/plot_*.py``) give the right answers.

Each example's ``solve`` is run on a small instance and its answer compared
with an independent reference: scikit-learn (LASSO, elastic net, ℓ₁ logistic
regression), SciPy (NNLS, the matrix game's linear program), CVXPY (box QP,
1-D and 2-D total variation, matrix completion) or a dense linear solve (the
monDEQ equilibrium on its support).  Each comparison is also shown to fail
on a wrong answer.  ``main(["--small"])`` of every example must succeed, and
every example must carry the title sphinx-gallery needs.
"""

from __future__ import annotations

import ast

import numpy as np
import pytest
import scipy.linalg  # noqa: F401  (loads SciPy's BLAS before threadpool_limits)
from test_examples import ROOT, load_script
from threadpoolctl import threadpool_limits

EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("plot_*.py"))


@pytest.fixture(autouse=True)
def _one_thread_and_no_figures():
    # The examples' matrices are small; threaded BLAS on a busy machine is
    # orders of magnitude slower.  pyplot figures the examples draw are closed.
    import matplotlib.pyplot as plt

    with threadpool_limits(1):
        yield
    plt.close("all")


def example(name: str):
    return load_script(f"examples/{name}.py")


def test_every_planned_example_exists():
    expected = {
        "plot_lasso.py", "plot_nnls.py", "plot_box_qp.py", "plot_tv1d.py", "plot_tv2d.py",
        "plot_logistic.py", "plot_matrix_completion.py", "plot_matrix_game.py",
        "plot_mondeq.py",
    }
    assert expected <= set(EXAMPLES)


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_has_a_gallery_title(name):
    doc = ast.get_docstring(ast.parse((ROOT / "examples" / name).read_text()))
    assert doc is not None, f"{name} has no docstring"
    title, underline = doc.splitlines()[:2]
    assert title.strip() and set(underline) == {"="} and len(underline) >= len(title)


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs_small(name, capsys):
    import matplotlib.pyplot as plt

    module = load_script(f"examples/{name}")
    assert module.main(["--small"]) == 0
    out = capsys.readouterr().out
    assert "iterations" in out and "time [ms]" in out
    figures = [plt.figure(n) for n in plt.get_fignums()]
    assert figures and any(ax.lines for fig in figures for ax in fig.axes)


# -- LASSO and elastic net ------------------------------------------------------------


@pytest.mark.parametrize("l2_factor", [0.0, 1.0])
def test_lasso_and_elastic_net_match_sklearn(l2_factor):
    lasso = example("plot_lasso")
    K, b, lam = lasso.make_data(60, 40, seed=3)
    l2 = l2_factor * lam
    x_ref = lasso.sklearn_solution(K, b, lam, l2)
    f_ref = lasso.objective(K, b, lam, l2, x_ref)
    results = lasso.solve(K, b, lam, l2, tol=1e-12)
    assert len(results) >= 6
    for name, res in results.items():
        assert res.success, name
        np.testing.assert_allclose(res.x, x_ref, atol=1e-6, err_msg=name)
        assert lasso.objective(K, b, lam, l2, res.x) == pytest.approx(f_ref, rel=1e-9)
    # The comparison can fail: another regularization gives another answer.
    assert not np.allclose(lasso.sklearn_solution(K, b, 2 * lam, l2), x_ref, atol=1e-6)


# -- NNLS -----------------------------------------------------------------------------


def test_nnls_matches_scipy():
    from scipy.optimize import nnls

    mod = example("plot_nnls")
    K, b = mod.make_data(80, 40, seed=1)
    x_ref, _ = nnls(K, b)
    assert 0 < np.count_nonzero(x_ref) < 40  # the constraint is active somewhere
    for name, res in mod.solve(K, b, tol=1e-12).items():
        assert res.success, name
        np.testing.assert_allclose(res.x, x_ref, atol=1e-7, err_msg=name)
    # Without the constraint (least squares) the answer differs.
    assert not np.allclose(np.linalg.lstsq(K, b, rcond=None)[0], x_ref, atol=1e-3)


# -- box-constrained QP ---------------------------------------------------------------


def test_box_qp_matches_cvxpy():
    cp = pytest.importorskip("cvxpy")
    mod = example("plot_box_qp")
    Q, q, low, high = mod.make_data(30, seed=2, condition=1e3)
    x = cp.Variable(30)
    prob = cp.Problem(cp.Minimize(0.5 * cp.quad_form(x, cp.psd_wrap(Q)) + q @ x),
                      [x >= low, x <= high])
    prob.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    x_ref = x.value
    for name, res in mod.solve(Q, q, low, high, tol=1e-12).items():
        assert res.success, name
        np.testing.assert_allclose(res.x, x_ref, atol=1e-6, err_msg=name)
        assert mod.optimality_error(Q, q, low, high, res.x) < 1e-8
    # The optimality measure sees a wrong answer.
    assert mod.optimality_error(Q, q, low, high, np.clip(x_ref + 1e-2, low, high)) > 1e-4


# -- total variation ------------------------------------------------------------------


def test_tv1d_matches_cvxpy():
    cp = pytest.importorskip("cvxpy")
    mod = example("plot_tv1d")
    _, y = mod.make_signal(200, seed=4)
    lam = 1.0
    x = cp.Variable(200)
    cp.Problem(cp.Minimize(0.5 * cp.sum_squares(x - y) + lam * cp.norm1(cp.diff(x)))).solve(
        solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    x_ref = x.value
    f_ref = mod.objective(y, lam, x_ref)
    x_exact, _ = mod.exact(y, lam)
    np.testing.assert_allclose(x_exact, x_ref, atol=1e-6)
    for name, (x_opsplit, res) in mod.solve(y, lam, tol=1e-10, maxiter=50_000).items():
        assert res.success, name
        np.testing.assert_allclose(x_opsplit, x_ref, atol=1e-4, err_msg=name)
        assert mod.objective(y, lam, x_opsplit) == pytest.approx(f_ref, rel=1e-7)
    # The comparison can fail: half the regularization is another answer.
    assert not np.allclose(mod.exact(y, lam / 2)[0], x_ref, atol=1e-4)


def test_tv2d_matches_cvxpy_on_a_crop():
    cp = pytest.importorskip("cvxpy")
    from opsplit.operators import Gradient2D

    mod = example("plot_tv2d")
    clean = mod.load_image(4, crop=(slice(40, 60), slice(60, 80)))
    assert clean.shape == (20, 20) and 0.0 <= clean.min() < clean.max() <= 1.0
    y = clean + 0.1 * np.random.default_rng(5).standard_normal(clean.shape)
    lam = 0.08
    G = Gradient2D(y.shape)
    N = y.size
    # Gradient2D as a dense (2N × N) matrix, column by column.
    Gmat = np.stack([(G @ e.reshape(y.shape)).ravel() for e in np.eye(N)], axis=1)
    x = cp.Variable(N)
    g = Gmat @ x
    tv = cp.sum(cp.norm(cp.vstack([g[:N], g[N:]]), 2, axis=0))
    cp.Problem(cp.Minimize(0.5 * cp.sum_squares(x - y.ravel()) + lam * tv)).solve(
        solver=cp.CLARABEL, tol_gap_abs=1e-11, tol_gap_rel=1e-11, tol_feas=1e-11)
    x_ref = x.value.reshape(y.shape)
    f_ref = mod.objective(y, lam, x_ref)
    for name, (x_opsplit, res) in mod.solve(y, lam, tol=1e-9, maxiter=50_000).items():
        assert res.success, name
        np.testing.assert_allclose(x_opsplit, x_ref, atol=1e-4, err_msg=name)
        assert mod.objective(y, lam, x_opsplit) == pytest.approx(f_ref, rel=1e-7)
    # The anisotropic total variation is a different problem.
    x_aniso = cp.Variable(N)
    ga = Gmat @ x_aniso
    cp.Problem(cp.Minimize(0.5 * cp.sum_squares(x_aniso - y.ravel()) + lam * cp.norm1(ga))).solve(
        solver=cp.CLARABEL)
    assert not np.allclose(x_aniso.value.reshape(y.shape), x_ref, atol=1e-4)


# -- sparse logistic regression -------------------------------------------------------


def test_logistic_matches_sklearn():
    mod = example("plot_logistic")
    A, y = mod.load_data(150)
    lam = 2.0
    x_ref = mod.sklearn_solution(A, y, lam)
    f_ref = mod.objective(A, y, lam, x_ref)
    results = mod.solve(A, y, lam, tol=1e-11, maxiter=50_000)
    for name in ("FB, adaptive step", "FISTA (restart)"):
        res = results[name]
        assert res.success, name
        assert mod.objective(A, y, lam, res.x) == pytest.approx(f_ref, rel=1e-9), name
        np.testing.assert_allclose(res.x, x_ref, atol=1e-5, err_msg=name)
        np.testing.assert_array_equal(res.x != 0, x_ref != 0)
    # scikit-learn's C is 1/λ: the unscaled C gives a different model.
    assert not np.allclose(mod.sklearn_solution(A, y, 1.0 / lam), x_ref, atol=1e-3)


# -- matrix completion ----------------------------------------------------------------


def test_matrix_completion_matches_cvxpy():
    cp = pytest.importorskip("cvxpy")
    mod = example("plot_matrix_completion")
    M, mask = mod.make_data(12, 10, rank=2, observed=0.5, seed=6)
    lam = 0.5
    X = cp.Variable(M.shape)
    cp.Problem(cp.Minimize(0.5 * cp.sum_squares(cp.multiply(mask, X - M))
                           + lam * cp.normNuc(X))).solve(solver=cp.CLARABEL)
    f_ref = mod.objective(M, mask, lam, X.value)
    for name, res in mod.solve(M, mask, lam, tol=1e-10, maxiter=20_000).items():
        assert res.success, name
        # Clarabel's SDP answer is accurate to about 1e-7 relative.
        assert mod.objective(M, mask, lam, res.x) <= f_ref * (1 + 1e-7), name
        assert mod.objective(M, mask, lam, res.x) == pytest.approx(f_ref, rel=1e-6), name
        np.testing.assert_allclose(res.x, X.value, atol=1e-4, err_msg=name)
    # Completion changes the unobserved entries: the masked data is no solution.
    assert mod.objective(M, mask, lam, mask * M) > f_ref * 1.01


# -- matrix game (Tseng) --------------------------------------------------------------


def test_game_value_by_linprog_on_known_games():
    mod = example("plot_matrix_game")
    assert mod.game_value(np.array([[1.0, -1.0], [-1.0, 1.0]])) == pytest.approx(0.0, abs=1e-12)
    # Rock-paper-scissors scaled, plus a constant: value = the constant.
    rps = np.array([[0.0, 1.0, -1.0], [-1.0, 0.0, 1.0], [1.0, -1.0, 0.0]])
    assert mod.game_value(2 * rps + 0.3) == pytest.approx(0.3, abs=1e-12)


def test_matrix_game_matches_linprog():
    mod = example("plot_matrix_game")
    A = mod.make_game(9, 7, seed=7)
    value = mod.game_value(A)
    for name, ((x, y), res) in mod.solve(A, tol=1e-11, maxiter=100_000).items():
        assert res.success, name
        assert np.all(x >= 0) and x.sum() == pytest.approx(1.0)
        assert np.all(y >= 0) and y.sum() == pytest.approx(1.0)
        assert x @ A @ y == pytest.approx(value, abs=1e-8), name
        assert 0 <= mod.duality_gap(A, x, y) < 1e-8, name
    # Uniform strategies are not an equilibrium of this game.
    assert mod.duality_gap(A, np.full(9, 1 / 9), np.full(7, 1 / 7)) > 1e-2


# -- monDEQ equilibrium ---------------------------------------------------------------


def test_mondeq_equilibrium_matches_a_dense_solve_on_its_support():
    mod = example("plot_mondeq")
    m = 0.5
    W = mod.mondeq_matrix(30, m, seed=8)
    c = np.random.default_rng(9).standard_normal((3, 30))
    results, _ = mod.solve_all(W, c, m, fb_step=None, tol=1e-12, maxiter=5000)
    M = np.eye(30) - W
    for name, (_, res) in results.items():
        assert res.success, name
        for z, ci in zip(res.x, c):
            support = z > 1e-8
            assert 0 < support.sum() < 30
            z_dense = np.zeros(30)
            z_dense[support] = np.linalg.solve(M[np.ix_(support, support)], ci[support])
            np.testing.assert_allclose(z, z_dense, atol=1e-9, err_msg=name)
            # Complementarity off the support: (Wz + c)_i ≤ 0 where z_i = 0.
            assert np.all((W @ z_dense + ci)[~support] <= 1e-9)
            # A wrong support breaks the dense solve's consistency.
            wrong = support.copy()
            wrong[np.argmax(~support)] = True
            z_wrong = np.zeros(30)
            z_wrong[wrong] = np.linalg.solve(M[np.ix_(wrong, wrong)], ci[wrong])
            assert np.min(z_wrong[wrong]) < 0 or np.max(np.abs(z_wrong - z)) > 1e-6


# -- benchmarks/peers.py --------------------------------------------------------------


def test_peers_benchmark_quick_counts_iterations_alike(capsys):
    """The same algorithm in three libraries takes the same iterations to 1e-8.

    Forward–backward with step ``1/L`` is opsplit's ``ForwardBackward``,
    PyProximal's ``ProximalGradient`` and pyunlocbox's ISTA; Douglas–Rachford
    with step 1 is PyProximal's ADMM with ``f``'s prox the resolvent.  Their
    iterates coincide, so the iterations the benchmark counts — through
    callbacks (opsplit, PyProximal) or a budget search (pyunlocbox) — must too.
    """
    pytest.importorskip("pyproximal")
    pytest.importorskip("pyunlocbox")
    peers = load_script("benchmarks/peers.py")
    argv = ["--quick", "--only", "nnls", "mondeq", "--repeats", "1"]
    assert peers.main(argv) == 0
    out = capsys.readouterr().out
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 8 and cells[0] in ("NNLS", "monDEQ"):
            rows[cells[0], cells[1], cells[2]] = cells
    its = {key: int(cells[4]) for key, cells in rows.items() if cells[4].isdigit()}
    for problem in ("NNLS", "monDEQ"):
        fb = its[problem, "opsplit", "forward-backward"]
        assert its[problem, "PyProximal", "ProximalGradient"] == fb
        assert its[problem, "pyunlocbox", "forward_backward (ISTA)"] == fb
        assert 2 < fb < 3000
    dr = its["monDEQ", "opsplit", "Douglas-Rachford"]
    assert its["monDEQ", "PyProximal", "ADMM (= Douglas-Rachford)"] == dr
    assert its["monDEQ", "pyunlocbox", "douglas_rachford"] == dr
    # Faster methods take fewer iterations: PR contracts faster than DR and FB here.
    assert its["monDEQ", "opsplit", "Peaceman-Rachford"] < dr < its["monDEQ", "opsplit",
                                                                     "forward-backward"]
    assert "peer / opsplit" in out


def test_peers_budget_search_finds_the_first_iteration():
    peers = load_script("benchmarks/peers.py")
    # A fake solver whose error after k iterations is 10^(-k/10): 1e-8 first at k = 80.
    fake = peers.Contender("fake", "geometric", lambda: None,
                           lambda ctx, k, cb: 10.0 ** (-k / 10), has_callback=False)
    assert peers.first_hit_by_budget(fake, None, lambda e: e, maxiter=1000) == 80
    assert peers.first_hit_by_budget(fake, None, lambda e: e, maxiter=50) is None

    def run(ctx, k, cb):
        for i in range(1, k + 1):
            if cb is not None:
                cb(10.0 ** (-i / 10))
        return 10.0 ** (-k / 10)

    hooked = peers.Contender("fake", "geometric", lambda: None, run)
    assert peers.first_hit_by_callback(hooked, None, lambda e: e, maxiter=1000) == 80
