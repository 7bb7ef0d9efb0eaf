"""The rate table on docs/verifying.rst is what examples/verify_convergence.py prints."""

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^\s*(FB|PR|DR)(, m×10)?\s+(\S+)\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(.+?)\s*$")


def _rows(text):
    """``{label: (step, iters, measured, r2, bound, verdict)}`` of a rate table."""
    rows = {}
    for line in text.splitlines():
        match = ROW.match(line)
        if match:
            name, wrong, *cells = match.groups()
            rows[name + (wrong or "")] = tuple(cells)
    return rows


def _example_rows(tmp_path, capsys):
    path = ROOT / "examples" / "verify_convergence.py"
    spec = importlib.util.spec_from_file_location("_opsplit_verify_rates", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--out", str(tmp_path), "--skip-mondeq"]) == 0
    out = capsys.readouterr().out
    return _rows(out[out.index("3. Rates"):])


def test_overstated_margin_rows_judge_the_same_runs(tmp_path, capsys):
    rows = _example_rows(tmp_path, capsys)
    assert sorted(rows) == ["DR", "DR, m×10", "FB", "FB, m×10", "PR", "PR, m×10"]
    for name in ("FB", "PR", "DR"):
        step, iters, measured, r2, bound, verdict = rows[name]
        wrong = rows[f"{name}, m×10"]
        # same run: same step, iterations, fitted rate and r²; only the bound moves
        assert wrong[:4] == (step, iters, measured, r2)
        assert float(wrong[4]) < float(bound)
        assert verdict == "ok"
        assert float(measured) <= float(bound) + 0.01
        # a rate slower than the overstated margin's worst case contradicts it
        assert float(wrong[2]) > float(wrong[4])
        assert wrong[5] == "measured rate is slower than the worst case: the stated m or L is wrong"


def test_page_table_matches_the_example(tmp_path, capsys):
    printed = _example_rows(tmp_path, capsys)
    page = (ROOT / "docs" / "verifying.rst").read_text(encoding="utf-8")
    start = page.index("method    step     iters")
    shown = _rows(page[start:page.index(".. figure::", start)])
    assert sorted(shown) == sorted(printed)
    for name, cells in printed.items():
        step, iters, measured, r2, bound, verdict = shown[name]
        assert (step, verdict) == (cells[0], cells[5])
        # numbers as printed, up to BLAS-dependent last digits
        assert abs(int(iters) - int(cells[1])) <= max(2, int(cells[1]) // 50)
        for a, b in zip((measured, r2, bound), (cells[2], cells[3], cells[4])):
            assert abs(float(a) - float(b)) <= 2e-3
