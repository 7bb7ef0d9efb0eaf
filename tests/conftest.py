"""Backends every core test runs on: NumPy, array_api_strict on its default and
on a second (fake) device, and CuPy under the ``gpu`` marker."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest


@dataclass(frozen=True)
class Backend:
    name: str
    xp: object
    device: object = None

    def asarray(self, a, dtype="float64"):
        """Move a NumPy array (or nested list) onto this backend with ``dtype``."""
        a = np.asarray(a)
        target = getattr(self.xp, dtype)
        return self.xp.asarray(a.astype(dtype), dtype=target, device=self.device)

    def dtype(self, name):
        return getattr(self.xp, name)

    def to_numpy(self, x):
        return to_numpy(x)

    def __repr__(self):
        return self.name


def _strict(device_index):
    import array_api_strict as xps

    dev = xps.__array_namespace_info__().devices()[device_index]
    return Backend(f"strict-{dev}", xps, dev)


def _cupy():
    import array_api_compat.cupy as cpx  # the array-API view of CuPy (takes device=)

    return Backend("cupy", cpx, None)


def _gpu_available():
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


BACKEND_PARAMS = [
    pytest.param("numpy", id="numpy"),
    pytest.param("strict0", id="strict"),
    pytest.param("strict1", id="strict-device1"),
    pytest.param(
        "cupy",
        id="cupy",
        marks=[
            pytest.mark.gpu,
            pytest.mark.skipif(not _gpu_available(), reason="needs cupy and a GPU"),
        ],
    ),
]


def make_backend(name):
    if name == "numpy":
        return Backend("numpy", np, None)
    if name == "strict0":
        return _strict(0)
    if name == "strict1":
        return _strict(1)
    return _cupy()


@pytest.fixture(params=BACKEND_PARAMS)
def backend(request):
    return make_backend(request.param)


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    return request.param


def to_numpy(x):
    """A NumPy copy of an array of any backend (independent of opsplit's helpers)."""
    if isinstance(x, (np.ndarray, np.generic)):
        return np.asarray(x)
    if hasattr(x, "get"):  # CuPy
        return x.get()
    return np.from_dlpack(x)


def rtol_for(dtype):
    return 1e-4 if dtype == "float32" else 1e-10


# -- references for the convolutional layers --------------------------------------------
def correlate(kernel, x):
    """Circular cross-correlation, centred kernel, by loops over the kernel taps:
    ``y[..., o, i, j] = Σ_c Σ_pq K[o, c, p, q] x[..., c, i + p - k//2, j + q - k//2]``."""
    c_out, _, kh, kw = kernel.shape
    y = np.zeros((*x.shape[:-3], c_out, *x.shape[-2:]))
    for p in range(kh):
        for q in range(kw):
            shifted = np.roll(x, shift=(-(p - kh // 2), -(q - kw // 2)), axis=(-2, -1))
            y += np.einsum("oc,...cij->...oij", kernel[:, :, p, q], shifted)
    return y


def dense_of(fn, shape):
    """Dense matrix of the linear map ``fn`` (applied to a batch of basis arrays of ``shape``)."""
    n = int(np.prod(shape))
    return fn(np.eye(n).reshape(n, *shape)).reshape(n, -1).T
