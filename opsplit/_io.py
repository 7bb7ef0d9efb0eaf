"""Files: atomic writes (a reader sees the old file or the new one, never half of
one), with the permissions the user's umask gives, and writability checks."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write", "save_figure", "check_writable_dir", "current_umask"]


def current_umask() -> int:
    """The process's file-creation mask (read without changing it for long)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb"):
    """Yield a file open on a temporary name beside ``path``; when the block
    ends without error it is flushed, synced and renamed over ``path``.

    The file gets the permissions an ordinary ``open(path, "w")`` would give,
    ``0o666 & ~umask`` (the temporary file starts private, ``0o600``).  On an
    exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def check_writable_dir(directory, name: str) -> Path:
    """Create ``directory`` if needed and check that a file can be written in it.

    Call it before long work whose results go there, so that a bad path
    fails at once rather than after the work.

    Raises
    ------
    ValueError
        Naming ``name`` and the directory, when it cannot be created or
        written to.
    """
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ValueError(f"{name} {directory} is not a writable directory: {reason}") from exc
    return directory


def save_figure(fig, path, **savefig_kwargs) -> Path:
    """Write a matplotlib figure atomically; the format follows the suffix."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    with atomic_write(path) as f:
        fig.savefig(f, format=fmt, **savefig_kwargs)
    return path
