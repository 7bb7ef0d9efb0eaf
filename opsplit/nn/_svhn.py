"""SVHN (cropped digits) from the official MATLAB files, read with :func:`scipy.io.loadmat`.

``train_32x32.mat`` (73,257 images) and ``test_32x32.mat`` (26,032) from
http://ufldl.stanford.edu/housenumbers/ each hold ``X``, ``uint8`` of shape
``(32, 32, 3, n)`` (row, column, RGB, image), and ``y`` of shape ``(n, 1)``
with labels 1–10, where 10 stands for the digit 0.  Images are returned as
``(n, 3, 32, 32)`` and labels as the digit, 0–9.  (``extra_32x32.mat`` is not
used: the monDEQ paper trains on ``train`` only.)

The files are identified by the MD5 digests their authors publish.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._channels import check_image_dtype, standardise_split
from ._fetch import require_file
from .dataset import Dataset

__all__ = ["load_svhn", "read_svhn_mat", "SVHN_CHECKSUMS", "SVHN_MIRRORS"]

#: file name -> (algorithm, hex digest): the official MD5s.
SVHN_CHECKSUMS = {
    "train_32x32.mat": ("md5", "e26dedcc434d2e4c54c9b2d4a06d8373"),
    "test_32x32.mat": ("md5", "eb5a983be6a315427106f1b3d3de5d6c"),
}

SVHN_MIRRORS = ("http://ufldl.stanford.edu/housenumbers/",)


def read_svhn_mat(path) -> tuple[np.ndarray, np.ndarray]:
    """Read one SVHN ``.mat`` file: ``(images uint8 (n, 3, 32, 32), digits int64 (n,))``.

    The label 10 becomes the digit 0; labels 1–9 are kept.

    Raises
    ------
    ValueError
        When the file cannot be read as a MATLAB file, lacks ``X`` or ``y``,
        has shapes other than ``(32, 32, 3, n)`` and ``n`` labels, or has a
        label outside 1–10.
    """
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    path = Path(path)
    try:
        content = loadmat(path, variable_names=("X", "y"))
    except (MatReadError, ValueError, OSError, NotImplementedError) as exc:
        raise ValueError(f"{path}: cannot read it as a MATLAB file ({exc})") from exc
    if "X" not in content or "y" not in content:
        raise ValueError(f"{path}: an SVHN file holds variables X and y")
    x, y = content["X"], content["y"]
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise ValueError(f"{path}: X must be uint8 of shape (32, 32, 3, n), got {x.dtype} "
                         f"{x.shape}")
    y = np.asarray(y).reshape(-1)
    if y.shape[0] != x.shape[3]:
        raise ValueError(f"{path}: X holds {x.shape[3]} images but y {y.shape[0]} labels")
    if y.size and (y.min() < 1 or y.max() > 10):
        raise ValueError(f"{path}: labels must be in 1-10 (10 for the digit 0), got "
                         f"{y.min()}..{y.max()}")
    images = np.ascontiguousarray(np.transpose(x, (3, 2, 0, 1)))
    return images, y.astype(np.int64) % 10


def load_svhn(directory=None, *, download: bool = False, mirrors=None,
              checksums=None, dtype="float32"):
    """SVHN cropped digits (73,257 / 26,032 images, shape ``(n, 3, 32, 32)``, labels 0–9).

    Pixels are scaled to ``[0, 1]`` and standardised per channel with the
    training split's mean and standard deviation (on the official files
    ≈ (0.4377, 0.4438, 0.4728) and (0.1980, 0.2010, 0.1970), the constants
    the monDEQ paper's code uses); the same constants are applied to the
    test split.

    Parameters
    ----------
    directory : path, optional
        Where ``train_32x32.mat`` and ``test_32x32.mat`` are, or are
        downloaded to (default :func:`~opsplit.nn.data.default_cache_dir`
        for ``"svhn"``).
    download : bool
        Fetch missing files from ``mirrors``; checksums are verified before
        a file is kept.
    mirrors : sequence of str, optional
        URL prefixes tried in order (default :data:`SVHN_MIRRORS`, the official location).
    checksums : dict, optional
        ``{file name: (algorithm, hex digest)}``; default
        :data:`SVHN_CHECKSUMS` (the official MD5s).
    dtype : str
        ``"float32"`` (default) or ``"float64"``.

    Returns
    -------
    Dataset
        Named ``"svhn"``, 10 classes, per-channel ``mean`` and ``std`` tuples.
    """
    dtype = check_image_dtype(dtype)
    mirrors = SVHN_MIRRORS if mirrors is None else mirrors
    checksums = SVHN_CHECKSUMS if checksums is None else checksums
    splits = {}
    for split in ("train", "test"):
        name = f"{split}_32x32.mat"
        path = require_file(directory, name, dataset="svhn", checksum=checksums[name],
                            download=download, mirrors=mirrors)
        splits[split] = read_svhn_mat(path)
    (x_train, y_train), (x_test, y_test) = splits["train"], splits["test"]
    x_train, x_test, mean, std = standardise_split(x_train, x_test, dtype)
    return Dataset("svhn", x_train, y_train, x_test, y_test, 10, mean, std)
