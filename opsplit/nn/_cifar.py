"""CIFAR-10 from the official *binary* archive, read without pickle.

``cifar-10-binary.tar.gz`` (Krizhevsky, https://www.cs.toronto.edu/~kriz/cifar.html)
holds ``cifar-10-batches-bin/data_batch_1.bin`` … ``data_batch_5.bin`` (50,000
training images) and ``test_batch.bin`` (10,000).  Each file is a sequence of
fixed-size records of 3,073 bytes: one label byte (0–9), then the 32×32 red,
green and blue planes, row-major, one byte per pixel.  The members are read
straight out of the archive (nothing is extracted to disk) and decoded with
``np.frombuffer``.

The archive is identified by the MD5 digest its author publishes.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np

from ._channels import check_image_dtype, standardise_split
from ._fetch import require_file
from .dataset import Dataset

__all__ = ["load_cifar10", "read_cifar_batch", "CIFAR10_ARCHIVE", "CIFAR10_CHECKSUMS",
           "CIFAR10_MIRRORS"]

CIFAR10_ARCHIVE = "cifar-10-binary.tar.gz"

#: file name -> (algorithm, hex digest): the MD5 published on the CIFAR page.
CIFAR10_CHECKSUMS = {CIFAR10_ARCHIVE: ("md5", "c32a1d4ab5d03f1284b67883e8d87530")}

CIFAR10_MIRRORS = ("https://www.cs.toronto.edu/~kriz/",)

_FOLDER = "cifar-10-batches-bin"
_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
_TEST = ("test_batch.bin",)
_SIDE, _CHANNELS = 32, 3
_RECORD = 1 + _CHANNELS * _SIDE * _SIDE  # 3073 bytes


def read_cifar_batch(raw: bytes, name: str = "batch") -> tuple[np.ndarray, np.ndarray]:
    """Decode one CIFAR-10 binary batch: ``(images uint8 (n, 3, 32, 32), labels uint8 (n,))``.

    Raises
    ------
    ValueError
        When the length is not a whole number of 3,073-byte records or a
        label byte is not in 0–9.

    Examples
    --------
    >>> record = bytes([7]) + bytes(range(256)) * 12
    >>> images, labels = read_cifar_batch(record)
    >>> images.shape, labels, images[0, 0, 0, :3], int(images[0, 2, 31, -1])
    ((1, 3, 32, 32), array([7], dtype=uint8), array([0, 1, 2], dtype=uint8), 255)
    """
    if len(raw) == 0 or len(raw) % _RECORD:
        raise ValueError(
            f"{name}: {len(raw)} bytes is not a whole number of {_RECORD}-byte CIFAR-10 records"
        )
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, _RECORD)
    labels = records[:, 0].copy()
    if labels.max() > 9:
        raise ValueError(f"{name}: label byte {int(labels.max())} is not in 0-9")
    images = records[:, 1:].reshape(-1, _CHANNELS, _SIDE, _SIDE).copy()
    return images, labels


def _read_split(archive: tarfile.TarFile, path: Path, names) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for name in names:
        member = f"{_FOLDER}/{name}"
        try:
            f = archive.extractfile(member)
        except KeyError:
            f = None
        if f is None:
            raise ValueError(f"{path}: the archive has no regular file {member}")
        with f:
            x, y = read_cifar_batch(f.read(), f"{path}:{member}")
        images.append(x)
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels).astype(np.int64)


def load_cifar10(directory=None, *, download: bool = False, mirrors=None,
                 checksums=None, dtype="float32"):
    """CIFAR-10 (50,000 / 10,000 images, shape ``(n, 3, 32, 32)``) from the binary archive.

    Pixels are scaled to ``[0, 1]`` and standardised per channel with the
    training split's mean and standard deviation (on the official files
    these are ≈ (0.4914, 0.4822, 0.4465) and (0.2470, 0.2435, 0.2616), the
    constants the monDEQ paper's code uses); the same constants are applied
    to the test split.

    Parameters
    ----------
    directory : path, optional
        Where ``cifar-10-binary.tar.gz`` is, or is downloaded to (default
        :func:`~opsplit.nn.data.default_cache_dir` for ``"cifar10"``).
    download : bool
        Fetch a missing archive from ``mirrors``; its checksum is verified
        before it is kept.
    mirrors : sequence of str, optional
        URL prefixes tried in order (default :data:`CIFAR10_MIRRORS`, the official location).
    checksums : dict, optional
        ``{file name: (algorithm, hex digest)}``; default
        :data:`CIFAR10_CHECKSUMS` (the official MD5).  Tests pass the digest
        of a synthetic archive here.
    dtype : str
        ``"float32"`` (default) or ``"float64"``.

    Returns
    -------
    Dataset
        Named ``"cifar10"``, 10 classes, per-channel ``mean`` and ``std`` tuples.
    """
    dtype = check_image_dtype(dtype)
    mirrors = CIFAR10_MIRRORS if mirrors is None else mirrors
    checksums = CIFAR10_CHECKSUMS if checksums is None else checksums
    path = require_file(directory, CIFAR10_ARCHIVE, dataset="cifar10",
                        checksum=checksums[CIFAR10_ARCHIVE], download=download,
                        mirrors=mirrors)
    try:
        with tarfile.open(path, "r:gz") as archive:
            x_train, y_train = _read_split(archive, path, _TRAIN)
            x_test, y_test = _read_split(archive, path, _TEST)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ValueError(f"{path}: cannot read the archive ({exc})") from exc
    x_train, x_test, mean, std = standardise_split(x_train, x_test, dtype)
    return Dataset("cifar10", x_train, y_train, x_test, y_test, 10, mean, std)

