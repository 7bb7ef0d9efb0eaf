"""``opsplit solve-distributed``: the command reads a folder of shards, solves
the consensus problem and gets scikit-learn's answer.

The command runs in-process (``opsplit.cli.main``) on 3 small shards of
unequal sizes: without Dask (``--workers 0``), on a module-scoped
``LocalCluster`` of 2 worker processes reached through ``--scheduler``, and
once on its own embedded cluster (``--workers 2``).  The solutions are
checked against :class:`sklearn.linear_model.Lasso` and
:class:`~sklearn.linear_model.LogisticRegression` (ℓ₁, liblinear) fitted on
the stacked rows; the printed objective and nonzeros against values computed
here from ``x``.  Errors the user can fix exit with status 2 and one line.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys

import numpy as np
import pytest
from sklearn.linear_model import Lasso, LogisticRegression
from tqdm import tqdm

from opsplit.cli import main
from opsplit.distributed import cli

N_FEATURES = 8
SIZES = (20, 30, 40)  # unequal shards
LAM = 2.0


def stacked(loss="least_squares", seed=0):
    """Rows of all shards, a sparse ground truth, targets or ±1 labels."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((sum(SIZES), N_FEATURES))
    x_true = np.zeros(N_FEATURES)
    x_true[:3] = [1.5, -2.0, 3.0]
    z = A @ x_true + 0.1 * rng.standard_normal(A.shape[0])
    b = z if loss == "least_squares" else np.where(z >= 0, 1.0, -1.0)
    return A, b


def write_shards(folder, A, b):
    folder.mkdir(exist_ok=True)
    start = 0
    for i, rows in enumerate(SIZES):
        np.savez(folder / f"part{i}.npz", A=A[start:start + rows], b=b[start:start + rows])
        start += rows
    return folder


def lasso_reference(A, b, lam):
    """scikit-learn minimizes (1/2m)‖Ax − b‖² + α‖x‖₁: α = λ/m."""
    model = Lasso(alpha=lam / A.shape[0], fit_intercept=False, tol=1e-14, max_iter=100_000)
    return model.fit(A, b).coef_


def lasso_step(A):
    """1/√(μL) over the shards' Gram matrices: few iterations."""
    lo, hi, start = np.inf, 0.0, 0
    for rows in SIZES:
        w = np.linalg.eigvalsh(A[start:start + rows].T @ A[start:start + rows])
        lo, hi, start = min(lo, w[0]), max(hi, w[-1]), start + rows
    return 1.0 / np.sqrt(lo * hi)


def summary_value(text, key):
    match = re.search(rf"^{key}: (.+)$", text, re.MULTILINE)
    assert match, f"no '{key}:' line in\n{text}"
    return match[1]


def run_cli(argv, capsys):
    rc = main(["solve-distributed", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def lasso_data(tmp_path_factory):
    A, b = stacked()
    folder = write_shards(tmp_path_factory.mktemp("lasso"), A, b)
    return folder, A, b, lasso_reference(A, b, LAM), lasso_step(A)


def check_lasso(out, path, A, b, ref):
    x = np.load(path)
    assert x.shape == (N_FEATURES,)
    np.testing.assert_allclose(x, ref, rtol=1e-7, atol=1e-8)
    assert summary_value(out, "status") == "converged"
    objective = 0.5 * np.sum((A @ x - b) ** 2) + LAM * np.sum(np.abs(x))
    np.testing.assert_allclose(float(summary_value(out, "objective")), objective, rtol=1e-9)
    assert summary_value(out, "nonzeros") == f"{np.count_nonzero(x)} of {N_FEATURES}"
    return x


def test_reference_is_discriminating(lasso_data):
    # The comparison would catch a wrong λ or a wrong scaling of the loss: the
    # reference moves by far more than the tolerance, and is neither 0 nor dense.
    _, A, b, ref, _ = lasso_data
    assert 0 < np.count_nonzero(ref) < N_FEATURES
    assert np.max(np.abs(lasso_reference(A, b, 1.1 * LAM) - ref)) > 1e-3
    assert np.max(np.abs(lasso_reference(A, b * 2, LAM) / 2 - ref)) > 1e-3


@pytest.mark.parametrize("method", cli.METHODS)
def test_in_process_lasso_matches_sklearn(lasso_data, tmp_path, capsys, method):
    folder, A, b, ref, step = lasso_data
    out_path = tmp_path / "x.npy"
    rc, out, err = run_cli([folder, "--loss", "least_squares", "--l1", LAM, "--workers", 0,
                            "--method", method, "--step", step, "--tol", 1e-12,
                            "--out", out_path, "--no-progress"], capsys)
    assert rc == 0, err
    check_lasso(out, out_path, A, b, ref)
    assert "3 shards" in out and "90 rows x 8 features" in out
    assert int(summary_value(out, "iterations")) < 500
    assert not list(tmp_path.glob(".x.npy.*"))  # the atomic writer left no temporary file


def test_in_process_logistic_matches_sklearn(tmp_path, capsys):
    A, b = stacked("logistic", seed=1)
    folder = write_shards(tmp_path / "shards", A, b)
    lam = 1.0
    # liblinear with fit_intercept=False minimizes ‖w‖₁ + C Σ log(1 + e^{-b aᵀw}).
    ref = LogisticRegression(C=1.0 / lam, l1_ratio=1.0, solver="liblinear",
                             fit_intercept=False, tol=1e-12, max_iter=100_000).fit(A, b).coef_[0]
    rc, out, err = run_cli([folder, "--loss", "logistic", "--l1", lam, "--workers", 0,
                            "--method", "anderson-dr", "--step", 0.5, "--tol", 1e-11,
                            "--out", tmp_path / "x.npy"], capsys)
    assert rc == 0, err
    x = np.load(tmp_path / "x.npy")
    # liblinear stops on its own tolerance; the objective decides between the two.
    np.testing.assert_allclose(x, ref, rtol=1e-4, atol=1e-5)

    def objective(w):
        return np.sum(np.logaddexp(0.0, -b * (A @ w))) + lam * np.sum(np.abs(w))

    assert objective(x) <= objective(ref) + 1e-9
    np.testing.assert_allclose(float(summary_value(out, "objective")), objective(x), rtol=1e-9)


def test_in_process_huber_matches_cvxpy(tmp_path, capsys):
    cp = pytest.importorskip("cvxpy")
    A, b = stacked(seed=2)
    b[::7] += 20.0  # outliers, so that the linear part of the Huber loss is active
    folder = write_shards(tmp_path / "shards", A, b)
    delta, lam = 0.5, 1.0
    # cvxpy's huber(r, M) is 2 h_M(r): r² inside, 2M|r| - M² outside.
    w = cp.Variable(N_FEATURES)
    cp.Problem(cp.Minimize(0.5 * cp.sum(cp.huber(A @ w - b, delta)) + lam * cp.norm1(w))).solve()
    rc, out, err = run_cli([folder, "--loss", "huber", "--delta", delta, "--l1", lam,
                            "--workers", 0, "--method", "anderson-dr", "--step", 0.2,
                            "--tol", 1e-11, "--out", tmp_path / "x.npy"], capsys)
    assert rc == 0, err
    x = np.load(tmp_path / "x.npy")
    r = np.abs(A @ x - b)
    huber = np.where(r <= delta, 0.5 * r**2, delta * (r - 0.5 * delta))
    assert np.sum(r > delta) >= len(b) // 7  # the outliers are in the linear part
    np.testing.assert_allclose(x, w.value, rtol=1e-5, atol=1e-6)
    objective = np.sum(huber) + lam * np.sum(np.abs(x))
    np.testing.assert_allclose(float(summary_value(out, "objective")), objective, rtol=1e-9)
    # ... and with the default threshold (1.0) the answer is another one.
    rc, _, _ = run_cli([folder, "--loss", "huber", "--l1", lam, "--workers", 0, "--step", 0.2,
                        "--tol", 1e-11, "--out", tmp_path / "x1.npy"], capsys)
    assert rc == 0 and np.max(np.abs(np.load(tmp_path / "x1.npy") - x)) > 1e-3


def test_not_converged_exits_1_and_still_writes_x(lasso_data, tmp_path, capsys):
    folder, *_ = lasso_data
    rc, out, _ = run_cli([folder, "--loss", "least_squares", "--l1", LAM, "--workers", 0,
                          "--maxiter", 3, "--out", tmp_path / "x.npy"], capsys)
    assert rc == 1
    assert summary_value(out, "status") == "maximum iterations"
    assert summary_value(out, "iterations") == "3"
    assert np.load(tmp_path / "x.npy").shape == (N_FEATURES,)


def test_progress_callback_drives_the_bar():
    stream = io.StringIO()
    bar = tqdm(total=100, file=stream, disable=False)
    callback = cli._progress_callback(bar)
    assert callback(7, np.array(3e-4), None) is False
    assert callback(12, np.array(1e-5), None) is False
    assert bar.n == 12
    bar.close()
    assert "residual 1.00e-05" in stream.getvalue()


# -- errors the user can fix: one line, exit status 2 ---------------------------------


def test_empty_folder(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("no shards here")
    rc, out, err = run_cli([tmp_path, "--loss", "least_squares", "--l1", 1, "--workers", 0],
                           capsys)
    assert rc == 2
    assert err.count("\n") == 1 and "holds no .npz shard" in err and str(tmp_path) in err


def test_missing_folder(tmp_path, capsys):
    rc, _, err = run_cli([tmp_path / "nowhere", "--loss", "huber", "--l1", 1], capsys)
    assert rc == 2 and "is not a directory" in err


def test_shard_with_other_feature_count(tmp_path, capsys):
    A, b = stacked()
    folder = write_shards(tmp_path / "shards", A, b)
    np.savez(folder / "part1.npz", A=A[20:50, :5], b=b[20:50])
    rc, _, err = run_cli([folder, "--loss", "least_squares", "--l1", 1, "--workers", 0],
                         capsys)
    assert rc == 2
    assert "shard 1" in err and "part1.npz" in err and "5 features" in err


def test_unwritable_out_fails_before_solving(lasso_data, tmp_path, capsys):
    folder, *_ = lasso_data
    blocker = tmp_path / "file"
    blocker.write_text("")
    rc, out, err = run_cli([folder, "--loss", "least_squares", "--l1", 1, "--workers", 0,
                            "--out", blocker / "x.npy"], capsys)
    assert rc == 2 and "--out" in err and "status:" not in out


def test_workers_and_scheduler_together(lasso_data, capsys):
    folder, *_ = lasso_data
    rc, _, err = run_cli([folder, "--loss", "least_squares", "--l1", 1, "--workers", 2,
                          "--scheduler", "tcp://127.0.0.1:1"], capsys)
    assert rc == 2 and "not both" in err


def test_unreachable_scheduler(lasso_data, capsys):
    pytest.importorskip("distributed", reason='needs Dask: pip install "opsplit[distributed]"')
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{sock.getsockname()[1]}"
    folder, *_ = lasso_data
    rc, out, err = run_cli([folder, "--loss", "least_squares", "--l1", 1, "--scheduler",
                            address, "--timeout", 1], capsys)
    assert rc == 2 and address in err and err.count("\n") == 1 and "status:" not in out


def test_parser_does_not_import_dask():
    code = ("import sys, opsplit.cli; opsplit.cli.build_parser(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


# -- on a real cluster -----------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("distributed", reason='needs Dask: pip install "opsplit[distributed]"')
    from opsplit.distributed import local_client

    client = local_client(n_workers=2)
    yield client
    client.close()


def test_cluster_lasso_matches_sklearn(cluster, lasso_data, tmp_path, capsys):
    folder, A, b, ref, step = lasso_data
    address = cluster.scheduler.address
    rc, out, err = run_cli([folder, "--loss", "least_squares", "--l1", LAM, "--scheduler",
                            address, "--step", step, "--tol", 1e-12, "--out",
                            tmp_path / "x.npy"], capsys)
    assert rc == 0, err
    check_lasso(out, tmp_path / "x.npy", A, b, ref)
    assert f"scheduler {address}" in out
    # The command closed its own client only: the cluster still answers.
    assert len(cluster.scheduler_info()["workers"]) == 2


def test_cluster_failure_exits_1_with_last_iterate(cluster, lasso_data, tmp_path, capsys,
                                                  monkeypatch):
    from opsplit.distributed import DistributedError

    last = np.arange(N_FEATURES, dtype=float)

    def scheduler_gone(*args, **kwargs):
        raise DistributedError("a map over the shards failed on the Dask cluster at "
                               "tcp://gone:8786", last_iterate=last)

    monkeypatch.setattr(cli, "solve", scheduler_gone)
    folder, *_ = lasso_data
    rc, out, err = run_cli([folder, "--loss", "least_squares", "--l1", LAM, "--scheduler",
                            cluster.scheduler.address, "--out", tmp_path / "x.npy"], capsys)
    assert rc == 1
    assert "tcp://gone:8786" in err and "last consistent iterate" in out
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), last)


def test_embedded_cluster(lasso_data, tmp_path, capsys):
    folder, A, b, ref, step = lasso_data
    rc, out, err = run_cli([folder, "--loss", "least_squares", "--l1", LAM, "--workers", 2,
                            "--method", "anderson-dr", "--step", step, "--tol", 1e-12,
                            "--out", tmp_path / "x.npy"], capsys)
    assert rc == 0, err
    assert "2 local worker processes" in out
    check_lasso(out, tmp_path / "x.npy", A, b, ref)


# -- the example and the benchmark -----------------------------------------------------


def test_example_matches_sklearn_in_process(capsys):
    from test_examples import load_script

    example = load_script("examples/distributed_lasso.py")
    assert example.main(["--small", "--workers", "0"]) == 0
    out = capsys.readouterr().out
    rows = re.findall(r"^(Douglas-Rachford|Anderson-DR)\s+(\d+)\s+converged\s+\S+\s+(\S+)",
                      out, re.MULTILINE)
    assert [r[0] for r in rows] == ["Douglas-Rachford", "Anderson-DR"]
    assert all(float(r[2]) < 1e-8 for r in rows)
    assert int(rows[1][1]) < int(rows[0][1])  # Anderson needs fewer iterations


def test_benchmark_quick():
    # Run as users run it: a script, whose task function the workers receive by value.
    from test_examples import ROOT

    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "distributed.py"),
                           "--quick", "--loss", "least_squares"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    rows = {}
    for line in out.splitlines():
        fields = line.split()
        if fields and fields[0] == "least_squares" and fields[1] in ("strong", "weak"):
            rows[fields[1], int(fields[2])] = fields
    assert set(rows) == {("strong", 1), ("strong", 2), ("weak", 1), ("weak", 2)}
    # Strong scaling runs the same problem: the same iterates, the same count.
    assert rows["strong", 1][6] == rows["strong", 2][6]
    assert all(f[7] == "converged" for f in rows.values())
    # Traffic from Dask's counters is O(shards × n): 2 shards move twice the bytes of 1.
    ratio = float(rows["weak", 2][-1]) / float(rows["weak", 1][-1])
    assert 1.7 < ratio < 2.3
    per_feature = float(re.search(r"\+ (\S+) bytes x n", out)[1])
    assert 16 <= per_feature <= 32  # 8-byte floats on 2 to 4 legs, not estimated


def test_guide_examples_run():
    # The ``>>>`` examples of docs/guide/distributed.rst (in-process: no cluster).
    import doctest

    from test_examples import ROOT

    result = doctest.testfile(str(ROOT / "docs" / "guide" / "distributed.rst"),
                              module_relative=False, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 10 and result.failed == 0
