r"""Per-shard losses :math:`f_i(x) = \sum_j \ell(a_j^T x, b_j)` and their proxes, on a worker.

A shard is a matrix :math:`A_i` (rows × n, dense or SciPy sparse) and a
vector :math:`b_i` (rows,).  :class:`ShardBuilder` loads it (from a ``.npz``
path or a loader function), checks it and returns a :class:`ShardLoss`, the
object a worker keeps between iterations together with its factorizations.

The proxes :math:`\operatorname{prox}_{\alpha f_i}(v) = \arg\min_x f_i(x) +
\tfrac{1}{2\alpha}\|x - v\|^2`:

- ``"least_squares"``, :math:`\ell(z, b) = \tfrac12 (z - b)^2`: exact, by
  one factorization of :math:`I + \alpha A_i^TA_i` (or of
  :math:`I + \alpha A_iA_i^T` for a wide shard) per step, kept on the worker
  (:class:`opsplit.prox.LeastSquares`);
- ``"logistic"``, :math:`\ell(z, b) = \log(1 + e^{-bz})` (labels
  :math:`b = \pm 1`), and ``"huber"``, :math:`\ell(z, b) = h_\delta(z - b)`:
  by a damped (semismooth, for Huber) Newton method on the strongly convex
  :math:`\varphi(x) = f_i(x) + \tfrac1{2\alpha}\|x - v\|^2`,

  .. math::

      H = A_i^T \operatorname{diag}(\ell''(A_ix, b))\,A_i + \tfrac1\alpha I,
      \qquad x^{+} = x - t\,H^{-1}\nabla\varphi(x),

  with :math:`t` halved until the Armijo condition holds, stopped when the
  step is below :data:`NEWTON_TOL` (or 4 units of roundoff of the dtype,
  when larger: float32) relative to :math:`\max(1, \|x\|)` (at
  most :data:`NEWTON_MAXITER` steps: Newton's local quadratic convergence
  reaches rounding level a few steps after that, and Huber's piecewise
  quadratic model is exact once the active set settles).  This bounded inner
  loop is the one loop outside :func:`opsplit.solve`.  The prox is therefore
  exact only to that tolerance: a solve's residual and certificates are
  those of the iteration with this inexact resolvent, meaningful down to
  about ``1e-13`` relative, not below.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, field

import numpy as np

from .._backend import device, from_host, namespace, to_numpy
from ..prox import LeastSquares

__all__ = ["LOSSES", "ShardBuilder", "ShardLoss", "describe", "prox", "shard_name",
           "NEWTON_TOL", "NEWTON_MAXITER"]

#: The losses a shard may carry.
LOSSES = ("least_squares", "logistic", "huber")

#: Relative size of the last Newton step at which a logistic or Huber prox stops.
NEWTON_TOL = 1e-14

#: Newton steps at most per prox.
NEWTON_MAXITER = 100


def shard_name(index: int, source) -> str:
    """``"shard 3 ('/data/part-3.npz')"`` or ``"shard 3 (loader load_part)"``,
    the name every error about a shard carries."""
    if callable(source):
        label = getattr(source, "__qualname__", None) or type(source).__name__
        return f"shard {index} (loader {label})"
    return f"shard {index} ({os.fspath(source)!r})"


def _is_sparse(A) -> bool:
    return hasattr(A, "tocsr") and hasattr(A, "nnz")


def _load(source, name: str):
    """``(A, b)`` from a ``.npz`` path (arrays ``A`` and ``b``) or a loader."""
    if callable(source):
        try:
            out = source()
        except Exception as exc:
            raise ValueError(f"{name}: the loader raised {type(exc).__name__}: {exc}") from exc
        if not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError(f"{name}: the loader must return a tuple (A, b), got "
                            f"{type(out).__name__}")
        return out
    try:
        with np.load(os.fspath(source), allow_pickle=False) as data:
            missing = {"A", "b"} - set(data.files)
            if missing:
                raise ValueError(f"{name}: the file holds arrays {sorted(data.files)}, not "
                                 f"{sorted(missing)} (expected A: rows × n and b: rows)")
            return data["A"], data["b"]
    except (OSError, EOFError) as exc:  # missing, unreadable or not a .npz file
        raise ValueError(f"{name}: cannot read the shard: {exc}") from exc


def _check(A, b, loss: str, name: str):
    """Raise ``ValueError``/``TypeError`` naming the shard unless ``(A, b)`` is
    one; return ``A`` (CSR when sparse) and ``b`` in ``A``'s dtype and library."""
    if _is_sparse(A):
        A = A.tocsr()
        values = A.data
        b = np.asarray(b)
    else:
        if not hasattr(A, "__array_namespace__"):
            A = np.asarray(A)
        values = A
        b = _like(b, A)
    xp = namespace(values)
    if A.ndim != 2:
        raise ValueError(f"{name}: A must be 2-D (rows × n), got shape {tuple(A.shape)}")
    if b.ndim != 1 or b.shape[0] != A.shape[0]:
        raise ValueError(f"{name}: b must have shape ({A.shape[0]},) to match A "
                         f"{tuple(A.shape)}, got {tuple(b.shape)}")
    if A.shape[0] == 0:
        raise ValueError(f"{name}: the shard is empty (0 rows)")
    if A.shape[1] == 0:
        raise ValueError(f"{name}: A has no columns (0 features)")
    if not xp.isdtype(values.dtype, "real floating"):
        raise TypeError(f"{name}: A must be real floating, got dtype {values.dtype}")
    bx = namespace(b)
    if not bx.isdtype(b.dtype, ("real floating", "integral")):
        raise TypeError(f"{name}: b must be real, got dtype {b.dtype}")
    b = bx.astype(b, values.dtype)
    for label, arr, ns in (("A", values, xp), ("b", b, bx)):
        bad = int(ns.sum(ns.astype(~ns.isfinite(arr), ns.int64)))
        if bad:
            raise ValueError(f"{name}: {label} holds {bad} non-finite value(s) (NaN or Inf)")
    if loss == "logistic" and not bool(bx.all(bx.abs(b) == 1)):
        raise ValueError(f"{name}: logistic labels b must be ±1, got values "
                         f"{np.unique(to_numpy(b))[:5].tolist()}")
    return A, b


def _like(b, A):
    """``b`` as an array of ``A``'s library and device (copied through the host
    when it comes from another library, or is a list)."""
    if hasattr(b, "__array_namespace__"):
        try:
            namespace(A, b)
            return b
        except TypeError:
            b = to_numpy(b)
    host = np.asarray(b)
    if host.dtype.kind not in "fi":
        host = host.astype(np.float64)
    return from_host(host, like=A, dtype=host.dtype.name)


@dataclass(frozen=True)
class ShardBuilder:
    """Zero-argument, picklable: loads and checks shard ``index`` and returns
    its :class:`ShardLoss` (run on the worker that holds the shard, and again
    on another one when that worker is lost).

    Parameters
    ----------
    index : int
        The shard's position in the problem.
    source : str, os.PathLike or callable
        A ``.npz`` file holding ``A`` and ``b``, or a loader returning ``(A, b)``.
    loss : str
        One of :data:`LOSSES`.
    delta : float
        Huber's threshold (unused by the other losses).
    """

    index: int
    source: object
    loss: str
    delta: float = 1.0

    def __call__(self) -> ShardLoss:
        name = shard_name(self.index, self.source)
        A, b = _check(*_load(self.source, name), self.loss, name)
        return ShardLoss(A, b, self.loss, self.delta, name)


@dataclass(eq=False)
class ShardLoss:
    r"""One shard's loss :math:`f_i(x) = \sum_j \ell(a_j^T x, b_j)` with its
    prox maps, one per step, cached (the worker keeps them between
    iterations).

    Parameters
    ----------
    A : array or scipy sparse matrix
        rows × n: a NumPy, CuPy (one GPU per worker) or other array-API
        array, or a SciPy sparse matrix.
    b : array
        rows, in ``A``'s library and dtype; labels ±1 for ``"logistic"``.
    loss : str
        One of :data:`LOSSES`.
    delta : float
        Huber's threshold.
    name : str
        The shard's name, for errors.
    """

    A: object
    b: object
    loss: str
    delta: float
    name: str
    _maps: dict = field(default_factory=dict, repr=False)

    @functools.cached_property
    def least_squares(self) -> LeastSquares:
        """The shard as an :class:`opsplit.prox.LeastSquares` (its Gram matrix is
        formed once, at first use)."""
        return LeastSquares(self.A, self.b)

    @property
    def n(self) -> int:
        return int(self.A.shape[1])

    @property
    def xp(self):
        """The array namespace of the shard's vectors (NumPy for a sparse ``A``)."""
        return namespace(self.b)

    def value(self, x):
        """:math:`f_i(x)`, a Python float."""
        xp, z = self.xp, self.A @ x
        if self.loss == "least_squares":
            return 0.5 * float(xp.sum((z - self.b) ** 2))
        if self.loss == "logistic":
            return float(xp.sum(xp.logaddexp(xp.zeros_like(z), -self.b * z)))
        r = xp.abs(z - self.b)
        d = self.delta
        return float(xp.sum(xp.where(r <= d, 0.5 * r * r, d * (r - 0.5 * d))))

    def gradient(self, x):
        r""":math:`\nabla f_i(x) = A_i^T \ell'(A_i x, b_i)`."""
        return self.A.T @ self._derivatives(self.A @ x)[0]

    def _derivatives(self, z):
        """``ℓ'`` and ``ℓ''`` at ``z = A x``, entrywise."""
        xp = self.xp
        if self.loss == "logistic":
            s = 0.5 * (1.0 + xp.tanh(0.5 * self.b * z))  # σ(b z), overflow-free
            return -self.b * (1.0 - s), s * (1.0 - s)
        r = z - self.b
        inside = xp.abs(r) <= self.delta
        return xp.clip(r, -self.delta, self.delta), xp.astype(inside, z.dtype)

    def prox_map(self, step: float):
        """The map :math:`v \\mapsto \\operatorname{prox}_{\\text{step}\\,f_i}(v)`,
        built (factorized) once per step and cached."""
        found = self._maps.get(step)
        if found is None:
            if self.loss == "least_squares":
                found = self.least_squares.prox_map(step)
            else:
                found = _NewtonProx(self, step)
            self._maps[step] = found
        return found


@dataclass(frozen=True, eq=False)
class _NewtonProx:
    """Damped Newton for the prox of a logistic or Huber shard (module docstring)."""

    shard: ShardLoss
    step: float

    def _phi(self, x, v):
        xp = self.shard.xp
        return self.shard.value(x) + float(xp.sum((x - v) ** 2)) / (2.0 * self.step)

    def __call__(self, v):
        xp = self.shard.xp
        if v.ndim > 1:  # a batch of points (leading axes): one Newton solve each
            flat = xp.reshape(v, (-1, v.shape[-1]))
            rows = [self(flat[k, :]) for k in range(flat.shape[0])]
            return xp.reshape(xp.stack(rows), v.shape)
        A, alpha = self.shard.A, self.step
        sparse = _is_sparse(A)
        eps = float(xp.finfo(v.dtype).eps)
        eye = xp.eye(self.shard.n, dtype=v.dtype, device=device(v)) / alpha
        x, phi = v, self._phi(v, v)
        for _ in range(NEWTON_MAXITER):
            d1, d2 = self.shard._derivatives(A @ x)
            grad = A.T @ d1 + (x - v) / alpha
            if sparse:
                curvature = (A.T @ A.multiply(d2[:, None])).toarray()
            else:
                curvature = A.T @ (A * d2[:, None])
            direction = xp.linalg.solve(eye + curvature, grad)
            slope = float(xp.sum(grad * direction))
            longest = float(xp.max(xp.abs(direction)))
            scale = max(1.0, float(xp.max(xp.abs(x))))
            t = 1.0
            for _ in range(60):  # Armijo backtracking; φ is strongly convex
                trial = x - t * direction
                phi_trial = self._phi(trial, v)
                if phi_trial <= phi - 1e-4 * t * slope or t * longest <= eps * scale:
                    break
                t *= 0.5
            x, phi = trial, phi_trial
            size = t * math.sqrt(float(xp.sum(direction * direction)))
            if size <= max(NEWTON_TOL, 4 * eps) * max(1.0, math.sqrt(float(xp.sum(x * x)))):
                break
        return x


def describe(shard: ShardLoss):
    """What the client checks before iterating: ``(rows, n, dtype name, strong
    convexity)`` of a shard (the strong convexity :math:`\\sigma_{\\min}(A_i)^2`
    of a least-squares shard, else ``None``)."""
    m = None
    if shard.loss == "least_squares":
        m = shard.least_squares.strong_convexity
    return int(shard.A.shape[0]), shard.n, str(shard.A.dtype), m


def prox(shard: ShardLoss, step: float, v):
    r""":math:`\operatorname{prox}_{\text{step}\,f_i}(v)` for a NumPy ``v`` (what
    travels), computed in the shard's library, device and dtype, and returned
    as NumPy in ``v``'s dtype (run on the worker holding the shard)."""
    v = np.asarray(v)
    out = shard.prox_map(step)(from_host(v, like=shard.b))
    return to_numpy(out).astype(v.dtype, copy=False)
