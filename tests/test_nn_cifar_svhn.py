"""CIFAR-10 and SVHN loaders on small synthetic files in the official formats
(no network), and the crop/flip augmentation against an explicit reference."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from opsplit.nn import _cifar as cifar
from opsplit.nn import _svhn as svhn
from opsplit.nn import augment, load_dataset
from opsplit.nn.data import DATASETS

# ------------------------------------------------------------ file writers ---


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _cifar_records(images: np.ndarray, labels: np.ndarray) -> bytes:
    """The documented layout, written plane by plane: label, R, G, B (row-major)."""
    out = bytearray()
    for image, label in zip(images, labels):
        out.append(int(label))
        for channel in range(3):
            out += np.ascontiguousarray(image[channel], dtype=np.uint8).tobytes(order="C")
    return bytes(out)


def _write_cifar(directory: Path, train_sizes=(3, 1, 2, 2, 1), n_test=4, seed=0,
                 records=_cifar_records):
    """cifar-10-binary.tar.gz with a few random records; returns (pixels, labels) per split."""
    rng = np.random.default_rng(seed)
    members, split = {}, {"train": ([], []), "test": ([], [])}
    names = [(f"data_batch_{i + 1}.bin", "train", k) for i, k in enumerate(train_sizes)]
    for name, part, k in names + [("test_batch.bin", "test", n_test)]:
        images = rng.integers(0, 256, (k, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 10, k, dtype=np.uint8)
        members[name] = records(images, labels)
        split[part][0].append(images)
        split[part][1].append(labels)
    members["batches.meta.txt"] = b"airplane\nautomobile\n"
    directory.mkdir(parents=True, exist_ok=True)
    with tarfile.open(directory / "cifar-10-binary.tar.gz", "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return {k: (np.concatenate(v[0]), np.concatenate(v[1])) for k, v in split.items()}


def _cifar_checksum(directory: Path) -> dict:
    return {"cifar-10-binary.tar.gz": ("md5", _md5(directory / "cifar-10-binary.tar.gz"))}


def _write_svhn(directory: Path, n_train=7, n_test=5, seed=1):
    """train_32x32.mat / test_32x32.mat in SVHN's layout: X (32, 32, 3, n), y (n, 1) in 1..10."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    raw = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = rng.integers(1, 11, (n, 1), dtype=np.uint8)
        y[0, 0], y[1, 0] = 10, 3          # the digit 0 and an ordinary digit, always present
        scipy.io.savemat(directory / f"{split}_32x32.mat", {"X": x, "y": y})
        raw[split] = (x, y)
    return raw


def _svhn_checksums(directory: Path) -> dict:
    return {n: ("md5", _md5(directory / n)) for n in ("train_32x32.mat", "test_32x32.mat")}


def _standardised(pixels: np.ndarray, mean, std, dtype=np.float32) -> np.ndarray:
    """Independent reference: (p/255 - mean_c)/std_c in float64, rounded once."""
    m = np.asarray(mean).reshape(1, -1, 1, 1)
    s = np.asarray(std).reshape(1, -1, 1, 1)
    return ((pixels.astype(np.float64) / 255.0 - m) / s).astype(dtype)


def _assert_channel_stats(ds, train_pixels):
    p = train_pixels.astype(np.float64) / 255.0
    np.testing.assert_allclose(ds.mean, p.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(ds.std, p.std(axis=(0, 2, 3)), rtol=1e-12)
    # the standardised training split has mean 0 and std 1 in every channel
    x = ds.x_train.astype(np.float64)
    np.testing.assert_allclose(x.mean(axis=(0, 2, 3)), 0, atol=1e-6)
    np.testing.assert_allclose(x.std(axis=(0, 2, 3)), 1, rtol=1e-6)


# ----------------------------------------------------------------- CIFAR-10 ---


def test_cifar10_and_svhn_are_registered():
    assert "cifar10" in DATASETS and "svhn" in DATASETS


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cifar10_reads_the_binary_records_exactly(tmp_path, dtype):
    raw = _write_cifar(tmp_path)
    ds = cifar.load_cifar10(tmp_path, checksums=_cifar_checksum(tmp_path), dtype=dtype)
    (train_px, train_y), (test_px, test_y) = raw["train"], raw["test"]
    assert ds.name == "cifar10" and ds.num_classes == 10
    assert ds.x_train.shape == (9, 3, 32, 32) and ds.x_test.shape == (4, 3, 32, 32)
    assert ds.x_train.dtype == np.dtype(dtype) and ds.y_train.dtype == np.int64
    # batches 1..5 in order, then the test batch; labels as written
    assert np.array_equal(ds.y_train, train_y) and np.array_equal(ds.y_test, test_y)
    _assert_channel_stats(ds, train_px)
    # both splits standardised with the *training* statistics, value for value
    assert np.array_equal(ds.x_train, _standardised(train_px, ds.mean, ds.std, dtype))
    assert np.array_equal(ds.x_test, _standardised(test_px, ds.mean, ds.std, dtype))
    # and the pixels come back exactly
    back = np.rint((ds.x_test * np.reshape(ds.std, (1, 3, 1, 1))
                    + np.reshape(ds.mean, (1, 3, 1, 1))) * 255)
    assert np.array_equal(back, test_px)
    # a reader with the channels interleaved (HWC) would not match
    hwc = test_px.reshape(4, 3072).reshape(4, 32, 32, 3).transpose(0, 3, 1, 2)
    assert not np.array_equal(ds.x_test, _standardised(hwc, ds.mean, ds.std, dtype))


def test_cifar10_missing_archive_names_download(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cifar-10-binary\.tar\.gz.*--download"):
        load_dataset("cifar10", data_dir=tmp_path / "empty")


def test_cifar10_checksum_is_verified(tmp_path):
    _write_cifar(tmp_path)
    # the synthetic archive is not the official one
    with pytest.raises(ValueError, match="MD5 checksum .* does not match the official cifar10"):
        load_dataset("cifar10", data_dir=tmp_path)
    # a corrupted byte changes the digest recorded for the good file
    sums = _cifar_checksum(tmp_path)
    path = tmp_path / "cifar-10-binary.tar.gz"
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="does not match"):
        cifar.load_cifar10(tmp_path, checksums=sums)


def test_cifar10_download_from_a_file_mirror(tmp_path):
    mirror = tmp_path / "mirror"
    raw = _write_cifar(mirror)
    sums = _cifar_checksum(mirror)
    target = tmp_path / "cache"
    ds = cifar.load_cifar10(target, download=True, mirrors=(mirror.as_uri() + "/",),
                            checksums=sums)
    assert np.array_equal(ds.y_test, raw["test"][1])
    assert [p.name for p in target.iterdir()] == ["cifar-10-binary.tar.gz"]
    # a mirror serving the wrong bytes: refused, nothing kept under the name
    bad = {"cifar-10-binary.tar.gz": ("md5", "0" * 32)}
    with pytest.raises(FileNotFoundError, match="checksum mismatch"):
        cifar.load_cifar10(tmp_path / "cache2", download=True,
                           mirrors=(mirror.as_uri() + "/",), checksums=bad)
    assert not any((tmp_path / "cache2").iterdir())


def test_load_dataset_downloads_into_the_default_cache(tmp_path, monkeypatch):
    """``load_dataset(name, download=True)`` with the module's mirrors and
    checksums pointed at a local mirror: the path ``--download`` takes."""
    mirror = tmp_path / "mirror"
    _write_cifar(mirror)
    raw = _write_svhn(mirror)
    monkeypatch.setattr(cifar, "CIFAR10_MIRRORS", (mirror.as_uri() + "/",))
    monkeypatch.setattr(cifar, "CIFAR10_CHECKSUMS", _cifar_checksum(mirror))
    monkeypatch.setattr(svhn, "SVHN_MIRRORS", (mirror.as_uri() + "/",))
    monkeypatch.setattr(svhn, "SVHN_CHECKSUMS", _svhn_checksums(mirror))
    monkeypatch.delenv("OPSPLIT_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    with pytest.raises(FileNotFoundError, match="--download"):
        load_dataset("svhn")
    assert load_dataset("cifar10", download=True).x_train.shape == (9, 3, 32, 32)
    ds = load_dataset("svhn", download=True)
    assert np.array_equal(ds.y_test, raw["test"][1][:, 0] % 10)
    assert (tmp_path / "xdg/opsplit/cifar10/cifar-10-binary.tar.gz").is_file()
    assert (tmp_path / "xdg/opsplit/svhn/train_32x32.mat").is_file()
    # $OPSPLIT_DATA names one directory for every data set
    monkeypatch.setenv("OPSPLIT_DATA", str(mirror))
    assert load_dataset("cifar10").x_test.shape == (4, 3, 32, 32)
    with pytest.raises(TypeError, match="mirrors must be a non-empty sequence"):
        cifar.load_cifar10(tmp_path / "none", download=True, mirrors="http://example.org/")


def test_cifar10_rejects_malformed_archives(tmp_path):
    def short_records(images, labels):
        return _cifar_records(images, labels)[:-1]

    _write_cifar(tmp_path / "short", records=short_records)
    with pytest.raises(ValueError, match="not a whole number of 3073-byte"):
        cifar.load_cifar10(tmp_path / "short", checksums=_cifar_checksum(tmp_path / "short"))

    def bad_label(images, labels):
        return _cifar_records(images, np.full_like(labels, 10))

    _write_cifar(tmp_path / "label", records=bad_label)
    with pytest.raises(ValueError, match="label byte 10"):
        cifar.load_cifar10(tmp_path / "label", checksums=_cifar_checksum(tmp_path / "label"))

    d = tmp_path / "notgz"
    d.mkdir()
    (d / "cifar-10-binary.tar.gz").write_bytes(b"not an archive")
    with pytest.raises(ValueError, match="cannot read the archive"):
        cifar.load_cifar10(d, checksums=_cifar_checksum(d))

    d = tmp_path / "incomplete"
    d.mkdir()
    with tarfile.open(d / "cifar-10-binary.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-bin/data_batch_1.bin")
        info.size = 3073
        tar.addfile(info, io.BytesIO(bytes(3073)))
    with pytest.raises(ValueError, match="no regular file cifar-10-batches-bin/data_batch_2"):
        cifar.load_cifar10(d, checksums=_cifar_checksum(d))


def test_bad_dtype_is_refused_before_reading(tmp_path):
    with pytest.raises(ValueError, match="dtype must be"):
        cifar.load_cifar10(tmp_path, dtype="float16")
    with pytest.raises(ValueError, match="dtype must be"):
        svhn.load_svhn(tmp_path, dtype="int8")


# --------------------------------------------------------------------- SVHN ---


def test_svhn_reads_the_mat_layout_and_maps_10_to_0(tmp_path):
    raw = _write_svhn(tmp_path)
    ds = svhn.load_svhn(tmp_path, checksums=_svhn_checksums(tmp_path))
    (x_tr, y_tr), (x_te, y_te) = raw["train"], raw["test"]
    assert ds.name == "svhn"
    assert ds.x_train.shape == (7, 3, 32, 32) and ds.x_test.shape == (5, 3, 32, 32)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    # label 10 is the digit 0, 1..9 unchanged
    assert ds.y_train[0] == 0 and ds.y_train[1] == 3
    expected = np.where(y_tr[:, 0] == 10, 0, y_tr[:, 0])
    assert np.array_equal(ds.y_train, expected)
    assert np.array_equal(ds.y_test, np.where(y_te[:, 0] == 10, 0, y_te[:, 0]))
    # image n, channel c, row i, column j is X[i, j, c, n]
    train_px = np.stack([np.stack([x_tr[:, :, c, n] for c in range(3)]) for n in range(7)])
    test_px = np.stack([np.stack([x_te[:, :, c, n] for c in range(3)]) for n in range(5)])
    assert ds.x_train[2, 1, 5, 9] == _standardised(
        np.full((1, 3, 1, 1), x_tr[5, 9, 1, 2]), ds.mean, ds.std)[0, 1, 0, 0]
    _assert_channel_stats(ds, train_px)
    assert np.array_equal(ds.x_train, _standardised(train_px, ds.mean, ds.std))
    assert np.array_equal(ds.x_test, _standardised(test_px, ds.mean, ds.std))
    # rows and columns swapped would not match
    swapped = np.transpose(train_px, (0, 1, 3, 2))
    assert not np.array_equal(ds.x_train, _standardised(swapped, ds.mean, ds.std))


def test_svhn_through_load_dataset_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train_32x32\.mat.*--download"):
        load_dataset("svhn", data_dir=tmp_path / "empty")
    _write_svhn(tmp_path)
    with pytest.raises(ValueError, match="MD5 checksum .* does not match the official svhn"):
        load_dataset("svhn", data_dir=tmp_path)
    (tmp_path / "test_32x32.mat").unlink()
    with pytest.raises(FileNotFoundError, match=r"test_32x32\.mat.*--download"):
        svhn.load_svhn(tmp_path, checksums={
            "train_32x32.mat": ("md5", _md5(tmp_path / "train_32x32.mat")),
            "test_32x32.mat": ("md5", "0" * 32),
        })


def test_svhn_download_from_a_file_mirror(tmp_path):
    mirror = tmp_path / "mirror"
    raw = _write_svhn(mirror)
    target = tmp_path / "cache"
    ds = svhn.load_svhn(target, download=True, mirrors=(mirror.as_uri() + "/",),
                        checksums=_svhn_checksums(mirror))
    assert ds.y_test.shape == (5,) and ds.y_test[0] == 0
    assert sorted(p.name for p in target.iterdir()) == ["test_32x32.mat", "train_32x32.mat"]
    assert np.array_equal(ds.y_train, raw["train"][1][:, 0] % 10)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[1], [11]], np.uint8)},
         "labels must be in 1-10"),
        ({"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[0], [1]], np.uint8)},
         "labels must be in 1-10"),
        ({"X": np.zeros((3, 32, 32, 2), np.uint8), "y": np.array([[1], [2]], np.uint8)},
         r"X must be uint8 of shape \(32, 32, 3, n\)"),
        ({"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[1]], np.uint8)},
         "holds 2 images but y 1 labels"),
        ({"X": np.zeros((32, 32, 3, 2), np.uint8)}, "holds variables X and y"),
    ],
)
def test_svhn_rejects_malformed_files(tmp_path, content, message):
    scipy.io.savemat(tmp_path / "bad.mat", content)
    with pytest.raises(ValueError, match=message):
        svhn.read_svhn_mat(tmp_path / "bad.mat")


def test_svhn_rejects_a_non_mat_file(tmp_path):
    (tmp_path / "bad.mat").write_bytes(b"definitely not MATLAB" * 10)
    with pytest.raises(ValueError, match="cannot read it as a MATLAB file"):
        svhn.read_svhn_mat(tmp_path / "bad.mat")


# ------------------------------------------------------------- augmentation ---


def _reference_crop_flip(x, offsets, flips, padding, fill):
    """Pad explicitly, slice, reverse: one image at a time."""
    n, c, h, w = x.shape
    fill = np.broadcast_to(np.asarray(fill, dtype=x.dtype), (c,))
    out = np.empty_like(x)
    for k in range(n):
        padded = np.empty((c, h + 2 * padding, w + 2 * padding), dtype=x.dtype)
        padded[...] = fill[:, None, None]
        padded[:, padding:padding + h, padding:padding + w] = x[k]
        r, s = offsets[k]
        crop = padded[:, r:r + h, s:s + w]
        out[k] = crop[:, :, ::-1] if flips[k] else crop
    return out


@pytest.mark.parametrize("fill", [0.0, (-1.5, 0.25, 2.0)])
def test_crop_flip_matches_explicit_padding_for_every_offset(backend, dtype, fill):
    p, h, w = 2, 5, 6
    grid = [(r, s, f) for r in range(2 * p + 1) for s in range(2 * p + 1) for f in (0, 1)]
    offsets = np.array([g[:2] for g in grid])
    flips = np.array([bool(g[2]) for g in grid])
    x = np.random.default_rng(0).standard_normal((len(grid), 3, h, w)).astype(dtype)
    xb = backend.asarray(x, dtype)
    out = augment.crop_flip(xb, offsets, flips, padding=p, fill=fill)
    assert out.dtype == xb.dtype and out.shape == xb.shape
    got = backend.to_numpy(out)
    ref = _reference_crop_flip(x, offsets, flips, p, fill)
    assert np.array_equal(got, ref)                       # exact copies, no rounding
    assert np.array_equal(backend.to_numpy(xb), x)        # input untouched
    # the reference is sensitive: flipping before cropping differs for asymmetric shifts
    other = _reference_crop_flip(x[:, :, :, ::-1], offsets, np.zeros_like(flips), p, fill)
    assert not np.array_equal(got, other)


def test_crop_flip_centre_is_identity_and_flip_is_exact():
    x = np.random.default_rng(1).standard_normal((4, 3, 32, 32)).astype(np.float32)
    centre = np.full((4, 2), 4)
    same = augment.crop_flip(x, centre, np.zeros(4, bool))
    assert np.array_equal(same, x)
    mirrored = augment.crop_flip(x, centre, np.ones(4, bool))
    assert np.array_equal(mirrored, x[..., ::-1])
    # a shift by one column to the right: new column 0 is padding, the rest is x
    right = augment.crop_flip(x, np.tile([4, 3], (4, 1)), np.zeros(4, bool))
    assert np.array_equal(right[..., 1:], x[..., :-1]) and not right[..., 0].any()


def test_random_crop_flip_is_seeded_and_follows_its_documented_draws():
    x = np.random.default_rng(2).standard_normal((64, 3, 32, 32)).astype(np.float32)
    a = augment.random_crop_flip(x, np.random.default_rng(7))
    b = augment.random_crop_flip(x, np.random.default_rng(7))
    c = augment.random_crop_flip(x, np.random.default_rng(8))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    rng = np.random.default_rng(7)
    offsets = rng.integers(0, 9, size=(64, 2))
    flips = rng.random(64) < 0.5
    assert np.array_equal(a, _reference_crop_flip(x, offsets, flips, 4, 0.0))
    assert 0 < flips.sum() < 64 and not np.array_equal(a, x)
    # flip=False draws no flips
    d = augment.random_crop_flip(x, np.random.default_rng(7), flip=False)
    offsets = np.random.default_rng(7).integers(0, 9, size=(64, 2))
    assert np.array_equal(d, _reference_crop_flip(x, offsets, np.zeros(64, bool), 4, 0.0))


def test_augment_bad_arguments_name_them():
    x = np.zeros((2, 1, 4, 4), np.float32)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="x must have shape"):
        augment.random_crop_flip(x[0], rng)
    with pytest.raises(TypeError, match="x must have a real floating dtype"):
        augment.random_crop_flip(np.zeros((2, 1, 4, 4), np.uint8), rng)
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        augment.random_crop_flip(x, 0)
    with pytest.raises(ValueError, match="padding must be >= 0"):
        augment.random_crop_flip(x, rng, padding=-1)
    with pytest.raises(TypeError, match="padding must be an integer"):
        augment.random_crop_flip(x, rng, padding=2.0)
    with pytest.raises(ValueError, match="fill must be a number or one value per channel"):
        augment.random_crop_flip(x, rng, fill=(0.0, 1.0))
    with pytest.raises(ValueError, match="fill must be finite"):
        augment.random_crop_flip(x, rng, fill=float("nan"))
    with pytest.raises(ValueError, match=r"offsets must lie in 0\.\.8"):
        augment.crop_flip(x, [[0, 9], [0, 0]], [False, False])
    with pytest.raises(ValueError, match=r"offsets must be integers of shape \(2, 2\)"):
        augment.crop_flip(x, [[0, 1]], [False, False])
    with pytest.raises(ValueError, match=r"flips must be booleans of shape \(2,\)"):
        augment.crop_flip(x, [[0, 1], [1, 1]], [0, 1])
