"""The :class:`Dataset` value every loader returns (its own module, so that the
loaders in :mod:`opsplit.nn.data`, ``opsplit.nn._cifar`` and
``opsplit.nn._svhn`` all import it one way)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Dataset"]


@dataclass(frozen=True)
class Dataset:
    """A train/test split of images and integer labels (host NumPy arrays).

    Attributes
    ----------
    name : str
        The source, one of :data:`~opsplit.nn.data.DATASETS`.
    x_train : numpy.ndarray
        The standardised training images, ``float32`` of shape
        ``(n_train, C, H, W)`` (``C = 1`` for the MNIST sources and
        ``digits``, 3 for ``cifar10`` and ``svhn``).
    y_train : numpy.ndarray
        The training labels, ``int64`` of shape ``(n_train,)``, in
        ``[0, num_classes)``.
    x_test : numpy.ndarray
        The standardised test images, ``float32`` of shape
        ``(n_test, C, H, W)`` (the training images' ``C, H, W``).
    y_test : numpy.ndarray
        The test labels, ``int64`` of shape ``(n_test,)``, in
        ``[0, num_classes)``.
    num_classes : int
        Number of classes (10 for every source of :func:`load_dataset`).
    mean : float or tuple of float
        The value subtracted after scaling pixels to ``[0, 1]`` (a tuple: one
        value per channel, for ``cifar10`` and ``svhn``).
    std : float or tuple of float
        The value then divided by, with the same convention as ``mean``.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    mean: float
    std: float

    def __post_init__(self):
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.shape[0] != y.shape[0]:
                raise ValueError(
                    f"x_{split} has {x.shape[0]} rows but y_{split} has {y.shape[0]}"
                )
            if not np.all(np.isfinite(x)):
                raise ValueError(f"x_{split} contains NaN or Inf")
            if y.size and (y.min() < 0 or y.max() >= self.num_classes):
                raise ValueError(f"y_{split} has labels outside [0, {self.num_classes})")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(
                f"train images have shape {self.x_train.shape[1:]} but test images "
                f"{self.x_test.shape[1:]}"
            )

    @property
    def image_shape(self) -> tuple:
        return tuple(self.x_train.shape[1:])

    @property
    def features(self) -> int:
        return int(np.prod(self.image_shape))

    def subset(self, train: int | None = None, test: int | None = None) -> Dataset:
        """The first ``train`` / ``test`` rows of each split (for quick runs)."""
        return Dataset(
            self.name,
            self.x_train[:train],
            self.y_train[:train],
            self.x_test[:test],
            self.y_test[:test],
            self.num_classes,
            self.mean,
            self.std,
        )

    def __repr__(self):
        return (
            f"Dataset({self.name!r}, train={self.x_train.shape[0]}, "
            f"test={self.x_test.shape[0]}, image_shape={self.image_shape})"
        )
