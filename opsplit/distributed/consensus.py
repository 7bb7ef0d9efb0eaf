r"""Consensus problems :math:`\min_x \sum_i f_i(x) + g(x)` whose :math:`f_i` live on workers.

The problem is posed as a monotone inclusion on the product space, so every
method that takes two resolvents (Douglas–Rachford, Peaceman–Rachford, ADMM,
Anderson on top of them) runs on it unchanged through :func:`opsplit.solve`;
see :class:`Consensus`.
"""

from __future__ import annotations

import os
import time

import numpy as np

from .._backend import check_floating, from_host
from .._validate import check_positive, check_real
from ..operators.monotone import ResolventOperator
from ..problems import Inclusion
from ..prox import ProxFunction, Zero
from . import losses
from ._engine import Traffic
from .losses import LOSSES, ShardBuilder, shard_name

__all__ = ["Consensus", "LocalPool"]


class LocalPool:
    """The in-process stand-in of :class:`~opsplit.distributed.ShardPool`:
    the same per-shard objects and the same ``build``/``map``/``events``/
    ``traffic`` surface, run one shard after the other in this process (no
    Dask).

    Parameters
    ----------
    builders : sequence of callable
        ``builders[i]()`` returns shard ``i``'s local object, built once, at
        first use.

    Attributes
    ----------
    events : list of str
        Always empty: no worker can be lost in-process.
    n_maps : int
        Number of completed :meth:`map` calls.

    Examples
    --------
    >>> pool = LocalPool([lambda: 2, lambda: 3])
    >>> pool.map(lambda obj, x: obj * x, [(10,), (100,)])
    [20, 300]
    >>> pool.traffic().total                 # nothing crosses a process boundary
    0
    """

    def __init__(self, builders):
        self._builders = list(builders)
        self._objects = [None] * len(self._builders)
        self.events: list[str] = []
        self.n_maps = 0
        self._maps_since = 0
        self._seconds_since = 0.0

    def __len__(self) -> int:
        return len(self._builders)

    def _object(self, i):
        if self._objects[i] is None:
            self._objects[i] = self._builders[i]()
        return self._objects[i]

    def build(self, describe=None) -> list:
        """Build every shard now (raising the first shard's error) and return
        ``describe(object_i)`` for each (``None`` without ``describe``)."""
        objects = [self._object(i) for i in range(len(self._builders))]
        return [None if describe is None else describe(obj) for obj in objects]

    def map(self, fn, args) -> list:
        """``[fn(object_i, *args[i]) for every shard i]``, in order."""
        start = time.perf_counter()
        out = [fn(self._object(i), *a) for i, a in enumerate(args)]
        self.n_maps += 1
        self._maps_since += 1
        self._seconds_since += time.perf_counter() - start
        return out

    def reset_traffic(self) -> None:
        """Start counting :meth:`traffic` from now."""
        self._maps_since, self._seconds_since = 0, 0.0

    def close(self) -> None:
        """Drop the shards' objects (built again at next use)."""
        self._objects = [None] * len(self._builders)

    def traffic(self) -> Traffic:
        """The maps and their time since the pool was made; zero bytes moved."""
        return Traffic(self._maps_since, self._seconds_since, 0, 0, 0, 0)


class _Session:
    """What the problem's two operators share: the pool, the consensus
    iterate last formed (returned with an engine error) and where the
    current solve's events start."""

    def __init__(self, pool, shards, engine_error):
        self.pool = pool
        self.shards = shards
        self.engine_error = engine_error
        self.last_x = None
        self.events_from = 0
        self.closed = False

    def prox(self, step: float, v: tuple) -> tuple:
        try:
            out = self.pool.map(losses.prox, [(step, vi) for vi in v])
        except self.engine_error as exc:
            exc.last_iterate = self.last_x
            raise
        return tuple(out)


class _ShardLosses(ResolventOperator):
    r""":math:`A(u) = (\partial f_1(u_1), \dots, \partial f_N(u_N))`: the resolvent
    is the shards' proxes, each applied on the worker that holds the shard."""

    def __init__(self, session: _Session, strong_monotonicity):
        self._session = session
        self.strong_monotonicity = strong_monotonicity

    def resolvent(self, step):
        step = check_positive(step, "step")
        return lambda v: self._session.prox(step, v)


class _ConsensusRegularizer(ResolventOperator):
    r""":math:`B = \partial(\iota_D + G)`, :math:`G(u) = \tfrac1N\sum_i g(u_i)`: the
    resolvent broadcasts :math:`\operatorname{prox}_{(\alpha/N) g}` of the mean."""

    def __init__(self, session: _Session, regularizer: ProxFunction, count: int):
        self._session = session
        self.regularizer = regularizer
        self.count = count

    def resolvent(self, step):
        step = check_positive(step, "step")
        g_step = step / self.count

        def resolvent(v):
            total = v[0]
            for part in v[1:]:
                total = total + part
            x = self.regularizer.prox(total / self.count, g_step)
            self._session.last_x = x
            return (x,) * self.count

        return resolvent


class Consensus(Inclusion):
    r"""Minimize :math:`\sum_{i=1}^N f_i(x) + g(x)`, each :math:`f_i(x) = \sum_j
    \ell(a_j^T x, b_j)` on the rows of shard :math:`i`, held by a worker.

    The problem is the monotone inclusion :math:`0 \in A(u) + B(u)` on the
    product space :math:`u = (u_1, \dots, u_N) \in (\mathbb{R}^n)^N`
    (consensus form; Boyd et al. 2011, §7.1; Combettes and Pesquet 2011):

    .. math::

        A(u) = \bigl(\partial f_1(u_1), \dots, \partial f_N(u_N)\bigr), \qquad
        B = \partial(\iota_D + G), \quad G(u) = \tfrac1N \sum_{i=1}^N g(u_i),

    with :math:`D = \{u : u_1 = \dots = u_N\}` the diagonal.  The resolvents
    at step :math:`\alpha` are

    .. math::

        J_{\alpha A}(v)_i = \operatorname{prox}_{\alpha f_i}(v_i), \qquad
        J_{\alpha B}(v) = (x, \dots, x), \quad
        x = \operatorname{prox}_{(\alpha/N)\, g}\Bigl(\frac1N \sum_{i=1}^N v_i\Bigr),

    the second because on :math:`D`, :math:`G(x, \dots, x) +
    \tfrac1{2\alpha}\sum_i \|x - v_i\|^2 = g(x) + \tfrac{N}{2\alpha}\|x -
    \bar v\|^2 + \text{const}`.  At :math:`u = (x, \dots, x)`,
    :math:`B(u) = \{w : \sum_i w_i \in \partial g(x)\}`, so :math:`0 \in
    A(u) + B(u)` exactly when :math:`0 \in \sum_i \partial f_i(x) + \partial
    g(x)`: the zeros are the consensus copies of the minimizers.

    Each iteration sends :math:`v_i` (``n`` numbers) to the worker of shard
    ``i`` and receives :math:`\operatorname{prox}_{\alpha f_i}(v_i)`: the
    traffic is :math:`O(N n)` per iteration, and the client forms the mean
    and the prox of :math:`g`.  The workers keep the shard and its
    factorizations (one per step) between iterations; the iterates live on
    the client, so a lost worker loses only a cache, which is rebuilt from
    the shard's path or loader on another worker, and the iteration is
    re-run there with the same inputs: the solve continues exactly.  The
    result's message says when that happened.

    Methods: :class:`~opsplit.DouglasRachford` (any convex losses),
    :class:`~opsplit.ADMM` and :class:`~opsplit.Anderson` on top of them
    take this problem like any :class:`~opsplit.Inclusion`.
    :class:`~opsplit.PeacemanRachford` needs :math:`A` strongly monotone:
    every shard least squares with full column rank (:math:`\sigma_{\min}(A_i)
    > 0`, so at least ``n`` rows each); :math:`A`'s margin is then
    :math:`\min_i \sigma_{\min}(A_i)^2`, computed on the workers before
    iterating.  The logistic and Huber proxes are computed by Newton's
    method to a relative step of :data:`~opsplit.distributed.losses.NEWTON_TOL`
    (see :mod:`opsplit.distributed.losses`): residuals and certificates hold
    for the iteration with that inexact resolvent.

    ``ops.solve(problem, method, x0)`` takes ``x0`` of shape ``(n,)`` (it is
    copied to every shard) and returns ``res.x`` of shape ``(n,)``; the
    method's state (``res.state``) holds the ``N`` blocks.  The client-side
    iterates are NumPy arrays.

    Parameters
    ----------
    shards : sequence of str, os.PathLike or callable
        Shard ``i``: a ``.npz`` file holding arrays ``A`` (rows × n) and ``b``
        (rows), or a picklable zero-argument loader returning ``(A, b)``
        (``A`` dense or SciPy sparse).  Each is loaded on a worker; a lost
        worker's shard is loaded again elsewhere.
    loss : {"least_squares", "logistic", "huber"}
        :math:`\ell(z, b)`: :math:`\tfrac12(z - b)^2`, :math:`\log(1 +
        e^{-bz})` with labels :math:`b = \pm 1`, or the Huber function
        :math:`h_\delta(z - b)`.
    regularizer : ProxFunction, optional
        :math:`g`, applied on the client through its prox (default: zero).
    client : dask.distributed.Client or str, optional
        The engine: a client (e.g. :func:`~opsplit.distributed.local_client`),
        a scheduler address to connect to, or ``None`` (the default): every
        shard in this process, one after the other, with the same code (no
        Dask needed).
    delta : float
        Huber's threshold :math:`\delta` (``loss="huber"`` only).
    timeout : float
        Seconds an iteration's map may take before the engine gives up with
        :class:`~opsplit.distributed.DistributedError` (which carries the
        last consensus iterate in ``last_iterate``).
    margin : float, optional
        A strong-monotonicity constant of :math:`A + B` known to the user.

    Raises
    ------
    ValueError
        Before iterating, naming the shard (index and path or loader): an
        unreadable file, an empty shard, a non-finite value, labels other
        than ±1 for the logistic loss, feature counts that differ between
        shards; or an unknown ``loss``.
    TypeError
        A shard of another dtype than the first one, a non-floating ``A``, a
        ``regularizer`` that is not a :class:`~opsplit.prox.ProxFunction`.

    References
    ----------
    S. Boyd, N. Parikh, E. Chu, B. Peleato and J. Eckstein, "Distributed
    optimization and statistical learning via the alternating direction
    method of multipliers", Found. Trends Mach. Learn. 3(1), 2011, §7.1.
    P. L. Combettes and J.-C. Pesquet, "Proximal splitting methods in signal
    processing", in *Fixed-Point Algorithms for Inverse Problems*, Springer,
    2011, §9 (product-space formulation).

    Examples
    --------
    Two shards of unequal sizes, solved in-process (``client=None``), against
    the single-process solve of the stacked problem:

    >>> import numpy as np, opsplit as ops
    >>> from opsplit import distributed
    >>> rng = np.random.default_rng(0)
    >>> A, b = rng.standard_normal((30, 4)), rng.standard_normal(30)
    >>> shards = [lambda: (A[:12], b[:12]), lambda: (A[12:], b[12:])]
    >>> problem = distributed.Consensus(shards, loss="least_squares",
    ...                                 regularizer=ops.prox.L1(2.0))
    >>> res = ops.solve(problem, ops.DouglasRachford(step=0.1), np.zeros(4), tol=1e-12)
    >>> stacked = ops.Inclusion(ops.Subdifferential(ops.prox.LeastSquares(A, b)),
    ...                         ops.Subdifferential(ops.prox.L1(2.0)))
    >>> ref = ops.solve(stacked, ops.DouglasRachford(step=0.1), np.zeros(4), tol=1e-12)
    >>> res.success, res.x.shape, bool(np.allclose(res.x, ref.x, rtol=1e-9, atol=1e-12))
    (True, (4,), True)
    """

    def __init__(self, shards, loss: str = "least_squares", regularizer=None, *, client=None,
                 delta: float = 1.0, timeout: float = 60.0, margin: float | None = None):
        if isinstance(shards, (str, os.PathLike)) or callable(shards):
            raise TypeError("shards must be a sequence of paths or loaders (one per shard), "
                            f"got a single {type(shards).__name__}")
        shards = tuple(shards)
        if not shards:
            raise ValueError("shards must not be empty")
        for i, source in enumerate(shards):
            if not (isinstance(source, (str, os.PathLike)) or callable(source)):
                raise TypeError(f"shards[{i}] must be a path or a loader returning (A, b), "
                                f"got {type(source).__name__}")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        regularizer = Zero() if regularizer is None else regularizer
        if not isinstance(regularizer, ProxFunction):
            raise TypeError(f"regularizer must be a ProxFunction (e.g. ops.prox.L1(lam)), got "
                            f"{type(regularizer).__name__}")
        delta = check_real(delta, "delta", minimum=0.0, strict=True)
        timeout = check_positive(timeout, "timeout")
        builders = [ShardBuilder(i, source, loss, delta) for i, source in enumerate(shards)]
        pool, engine_error = _pool(client, builders, timeout)
        session = _Session(pool, shards, engine_error)
        rows, n, dtype, m = _checked_shards(pool, shards)
        object.__setattr__(self, "loss", loss)
        object.__setattr__(self, "regularizer", regularizer)
        object.__setattr__(self, "shards", shards)
        object.__setattr__(self, "rows", rows)
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "dtype", dtype)
        object.__setattr__(self, "pool", pool)
        object.__setattr__(self, "_session", session)
        object.__setattr__(self, "A", _ShardLosses(session, m))
        object.__setattr__(self, "B", _ConsensusRegularizer(session, regularizer, len(shards)))
        object.__setattr__(self, "C", None)
        object.__setattr__(self, "margin", margin)
        self.__post_init__()

    def __repr__(self) -> str:
        engine = "in-process" if isinstance(self.pool, LocalPool) else "dask"
        return (f"Consensus({len(self.shards)} shards, {sum(self.rows)} rows × {self.n}, "
                f"loss={self.loss!r}, regularizer={self.regularizer!r}, {engine})")

    # Identity, not the fields': two problems over the same files are distinct sessions.
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def core_shape(self):
        """``N`` blocks of shape ``(n,)``: the product space the method iterates on."""
        return ((self.n,),) * len(self.shards)

    def validate(self, x, name="x0") -> None:
        """Raise unless ``x`` is a floating vector of shape ``(n,)`` (or ``N`` of them)."""
        parts = x if isinstance(x, tuple) else (x,)
        if isinstance(x, tuple) and len(x) != len(self.shards):
            raise ValueError(f"{name} has {len(x)} blocks but the problem has "
                             f"{len(self.shards)} shards")
        for part in parts:
            check_floating(part, name)
            if tuple(part.shape) != (self.n,):
                raise ValueError(f"{name} must have shape ({self.n},) (the shards have {self.n} "
                                 f"features; batched consensus solves are not supported), got "
                                 f"{tuple(part.shape)}")

    def lift(self, x0):
        """``(x0, …, x0)``, one copy per shard (a tuple is kept as it is)."""
        if self._session.closed:
            raise ValueError("this Consensus problem was closed (its shards were dropped from "
                             "the workers): make a new one to solve again")
        self._session.events_from = len(self.pool.events)
        return x0 if isinstance(x0, tuple) else (x0,) * len(self.shards)

    def result(self, x):
        """The consensus vector: the common block of ``x`` (the mean when the
        blocks differ)."""
        if not isinstance(x, tuple):
            return x
        if all(part is x[0] for part in x):
            return x[0]
        total = x[0]
        for part in x[1:]:
            total = total + part
        return total / len(x)

    def report(self) -> str:
        """The engine's events since the solve started (lost workers, rebuilt
        shards), ``""`` when none: e.g. ``"recovered on the cluster (the
        iterates are unaffected): map 5: worker tcp://… was lost; shard 0
        rebuilt on tcp://… and its call re-run"``."""
        events = self.pool.events[self._session.events_from:]
        if not events:
            return ""
        return "recovered on the cluster (the iterates are unaffected): " + "; ".join(events)

    def objective(self, x) -> float:
        r""":math:`\sum_i f_i(x) + g(x)` at a vector ``x`` of shape ``(n,)``
        (one map over the shards)."""
        self.validate(x, "x")
        values = self.pool.map(_value, [(x,)] * len(self.shards))
        return float(sum(values)) + float(self.regularizer.value(x))

    def close(self) -> None:
        """Drop the shards' cached objects (data, factorizations) from the
        workers; the problem cannot be solved after that (make a new one)."""
        self._session.closed = True
        self.pool.close()

    def traffic(self):
        """The engine's transfer counters since the problem was made: a
        :class:`~opsplit.distributed.Traffic` (see :meth:`ShardPool.traffic
        <opsplit.distributed.ShardPool.traffic>`; zero bytes in-process)."""
        return self.pool.traffic()


def _value(shard, x):
    return shard.value(from_host(np.asarray(x), like=shard.b))


def _pool(client, builders, timeout):
    """The in-process pool for ``client=None``, else a Dask ShardPool; with the
    engine's error type (``()`` in-process: nothing to catch)."""
    if client is None:
        return LocalPool(builders), ()
    from . import _engine  # Dask is needed from here on only

    if isinstance(client, str):
        client = _engine.connect(client, timeout=timeout)
    return _engine.ShardPool(client, builders, timeout=timeout), _engine.DistributedError


def _checked_shards(pool, shards):
    """Load every shard (on its worker) and check they agree: ``(rows per
    shard, n, dtype, A's margin or None)``."""
    info = pool.build(losses.describe)
    rows = tuple(r for r, _, _, _ in info)
    _, n, dtype, _ = info[0]
    first = shard_name(0, shards[0])
    for i, (_, n_i, dtype_i, _) in enumerate(info[1:], start=1):
        if n_i != n:
            raise ValueError(f"{shard_name(i, shards[i])} has {n_i} features (columns of A) but "
                             f"{first} has {n}: every shard must have the same features")
        if dtype_i != dtype:
            raise TypeError(f"{shard_name(i, shards[i])} has dtype {dtype_i} but {first} has "
                            f"{dtype}: give every shard one dtype")
    margins = [m for _, _, _, m in info]
    if any(m is None for m in margins):
        margin = 0.0  # convex losses: monotone, no strong monotonicity known
    else:
        margin = float(min(margins))
    return rows, n, dtype, margin
