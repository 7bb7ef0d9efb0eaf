"""The monDEQ example script, the user guide's code and the core benchmark still run.

The example is run in-process on its ``--small`` problem with ``--out`` in a
temporary folder; the test reads the PNG back and parses the printed table
of iterations, checking it against what the theory and the independent
reference (the fixed-point equation) say.  The other gallery examples are
tested in ``test_gallery.py``.
"""

from __future__ import annotations

import doctest
import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("forward-backward", "Peaceman-Rachford", "Douglas-Rachford")
ROW = re.compile(
    r"^(?P<name>forward-backward|Peaceman-Rachford|Douglas-Rachford)\s+"
    r"(?P<step>\S+)\s+(?P<iterations>\d+)\s+(?P<status>[a-z ]+?)\s{2,}"
    r"(?P<time>\S+)\s+(?P<rest>.*)$"
)


def load_script(relpath: str):
    """Import a script by path (examples/ and benchmarks/ are not packages)."""
    path = ROOT / relpath
    name = "_opsplit_" + path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs: dataclasses look their module up by name.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def parse_rows(text: str) -> dict:
    """``{method: {"step", "iterations", "status", "numbers"}}`` from a printed table."""
    rows = {}
    for line in text.splitlines():
        match = ROW.match(line)
        if match:
            rows[match["name"]] = {
                "step": float(match["step"]),
                "iterations": int(match["iterations"]),
                "status": match["status"].strip(),
                "numbers": [float(v) for v in match["rest"].split()],
            }
    return rows


def check_table(rows: dict, *, maxiter: int, error_column: int, error_tol: float) -> None:
    """Raise ``AssertionError`` unless every method converged sanely."""
    assert set(rows) == set(METHODS), f"methods printed: {sorted(rows)}"
    for name, row in rows.items():
        assert row["status"] == "converged", f"{name}: {row['status']}"
        assert 2 <= row["iterations"] < maxiter, f"{name}: {row['iterations']} iterations"
        assert row["step"] > 0
        error = abs(row["numbers"][error_column])
        assert error < error_tol, f"{name}: error {error:g} >= {error_tol:g}"


def check_png(path: Path) -> None:
    import matplotlib.image

    assert path.is_file(), f"{path} was not written"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    # Not a blank canvas: curves and labels leave many distinct colours.
    assert np.unique(image.reshape(-1, image.shape[2]), axis=0).shape[0] > 10


def test_inclusion_example(tmp_path, capsys):
    inclusion = load_script("examples/plot_mondeq.py")
    assert inclusion.main(["--small", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = parse_rows(out)
    # Columns after the status: fixed-point error, error bound.
    check_table(rows, maxiter=5000, error_column=0, error_tol=1e-6)
    # Theory: forward-backward at half its step bound is the slowest here, and
    # Douglas-Rachford (relaxation 1) averages Peaceman-Rachford with the identity.
    its = {name: row["iterations"] for name, row in rows.items()}
    assert its["Peaceman-Rachford"] < its["Douglas-Rachford"] < its["forward-backward"]
    bound = float(re.search(r"2m/L² = (\S+)", out).group(1))
    assert rows["forward-backward"]["step"] < bound
    assert "unique zero" in out
    check_png(tmp_path / "inclusion_residuals.png")


def test_inclusion_example_fails_on_unsafe_step(tmp_path, capsys):
    inclusion = load_script("examples/plot_mondeq.py")
    assert inclusion.main(["--small", "--out", str(tmp_path), "--fb-step", "3.0"]) == 1
    out = capsys.readouterr().out
    rows = parse_rows(out)
    assert rows["forward-backward"]["status"] == "diverged"
    with pytest.raises(AssertionError, match="forward-backward: diverged"):
        check_table(rows, maxiter=5000, error_column=0, error_tol=1e-6)


@pytest.mark.parametrize("page, least", [("inclusions.rst", 20), ("mondeq.rst", 40)])
def test_user_guide_examples_run(page, least):
    result = doctest.testfile(
        str(ROOT / "docs" / "guide" / page),
        module_relative=False,
        optionflags=doctest.NORMALIZE_WHITESPACE,
        verbose=False,
    )
    assert result.attempted > least
    assert result.failed == 0


def test_core_benchmark_smoke(capsys):
    bench = load_script("benchmarks/core.py")
    argv = ["--n", "30", "--batch", "4", "--iters", "3", "--repeats", "1", "--profile"]
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if re.match(r"^\| (FB|PR|DR) \|", line)]
    assert len(table) == 3
    for line in table:
        cells = [c.strip() for c in line.strip("|").split("|")]
        bare, update, solve, ratio = (float(v) for v in cells[2:6])
        assert min(bare, update, solve, ratio) > 0
        assert float(cells[-1]) < 1e-6  # fixed-point error of the 1e-8 solve
    assert "matmul" in out
