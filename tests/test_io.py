"""Atomic writes: the old file survives a failed write and no temporary is left;
files get the user's umask; writable directories are checked up front."""

from __future__ import annotations

import os
import stat

import pytest
from matplotlib.figure import Figure

from opsplit._io import atomic_write, check_writable_dir, save_figure


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as f:
            f.write(b"half of the new")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_successful_write_replaces_and_creates_parents(tmp_path):
    target = tmp_path / "a" / "b" / "out.txt"
    with atomic_write(target, "w") as f:
        f.write("new")
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_save_figure_writes_a_png(tmp_path):
    fig = Figure()
    fig.subplots().plot([0, 1], [1, 0])
    path = save_figure(fig, tmp_path / "fig.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_files_get_the_permissions_of_the_users_umask(tmp_path, umask):
    """Regression: atomic writes left every file private (0o600) whatever the umask."""
    old = os.umask(umask)
    try:
        with atomic_write(tmp_path / "new.txt", "w") as f:
            f.write("x")
        with open(tmp_path / "plain.txt", "w") as f:  # what an ordinary write gives
            f.write("x")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "new.txt").stat().st_mode)
    assert mode == 0o666 & ~umask == stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)


def test_check_writable_dir(tmp_path):
    assert check_writable_dir(tmp_path / "a" / "b", "--out") == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir() and not list((tmp_path / "a" / "b").iterdir())
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match=f"--out {tmp_path / 'file' / 'x'} is not a writable"):
        check_writable_dir(tmp_path / "file" / "x", "--out")
