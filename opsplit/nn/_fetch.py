"""Checksummed data files: find one in a directory, or download it when asked.

Shared by the MNIST, CIFAR-10 and SVHN loaders.  A file is identified by its
name and a ``(algorithm, hex digest)`` pair; a download is written under a
temporary name and renamed only once its digest matches, so a failed or
tampered download never takes the file's name.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

from .._io import atomic_write

__all__ = ["default_cache_dir", "file_digest", "require_file"]

_BLOCK = 1 << 20


def default_cache_dir(name: str) -> Path:
    """``$OPSPLIT_DATA`` or ``$XDG_CACHE_HOME/opsplit/<name>`` (``~/.cache/opsplit/<name>``).

    ``$OPSPLIT_DATA`` names one directory for every data set (their file
    names differ).
    """
    if os.environ.get("OPSPLIT_DATA"):
        return Path(os.environ["OPSPLIT_DATA"])
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "opsplit" / name


def _hasher(algorithm: str):
    # MD5 is what the data sets' authors publish; it identifies the file, it
    # is not a security claim (hence usedforsecurity=False on FIPS builds).
    return hashlib.new(algorithm, usedforsecurity=False)


def file_digest(path, algorithm: str) -> str:
    """The hex digest of the file at ``path`` (``algorithm``: ``"md5"``, ``"sha256"``...)."""
    h = _hasher(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def _download(name: str, target: Path, mirrors, algorithm: str, digest: str) -> None:
    errors = []
    for mirror in mirrors:
        try:
            with atomic_write(target) as out, urllib.request.urlopen(
                mirror + name, timeout=60
            ) as response:
                h = _hasher(algorithm)
                for block in iter(lambda: response.read(_BLOCK), b""):
                    h.update(block)
                    out.write(block)
                if h.hexdigest() != digest:
                    raise ValueError(f"checksum mismatch ({algorithm.upper()} {h.hexdigest()})")
            return
        except (OSError, ValueError) as exc:
            errors.append(f"{mirror}{name}: {exc}")
    raise FileNotFoundError(f"could not download {name}:\n  " + "\n  ".join(errors))


def require_file(directory, name: str, *, dataset: str, checksum: tuple[str, str],
                 download: bool, mirrors) -> Path:
    """The path of ``name`` in ``directory``, verified against ``checksum``.

    Parameters
    ----------
    directory : path or None
        Where the file is (or is to be downloaded to); ``None`` for
        :func:`default_cache_dir` of ``dataset``.
    name : str
        The file name, as published.
    dataset : str
        The data set's name, for the messages and the default directory.
    checksum : tuple of str
        ``(algorithm, hex digest)`` the file must have.
    download : bool
        Fetch the file from the first mirror that serves it when it is missing.
    mirrors : sequence of str
        URL prefixes (ending in ``/``) tried in order; ``prefix + name`` is fetched.

    Raises
    ------
    FileNotFoundError
        When the file is missing and ``download`` is false (the message names
        ``--download``), or when no mirror served a file with the right digest.
    ValueError
        When the file present has another digest.
    """
    if isinstance(mirrors, (str, bytes)) or not mirrors:
        raise TypeError(f"mirrors must be a non-empty sequence of URL prefixes, got {mirrors!r}")
    algorithm, digest = checksum
    if directory is None:
        directory = default_cache_dir(dataset)
    path = Path(directory) / name
    if not path.is_file():
        if not download:
            raise FileNotFoundError(
                f"dataset {dataset!r} needs {name} in {path.parent}: put the official "
                f"file there, or pass download=True (--download) to fetch it from "
                f"{mirrors[0]}{name} when a network is available"
            )
        _download(name, path, mirrors, algorithm, digest)
    got = file_digest(path, algorithm)
    if got != digest:
        raise ValueError(
            f"{path}: {algorithm.upper()} checksum {got} does not match the official "
            f"{dataset} file ({digest}); delete it and download it again (--download)"
        )
    return path
