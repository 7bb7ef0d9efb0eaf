"""The Dask layer of :mod:`opsplit.distributed`: clients, shard pools, traffic counters.

Everything that talks to ``dask.distributed`` lives here, so that the problem
(:mod:`opsplit.distributed.consensus`) only sees three things:

* :func:`local_client` / :func:`connect` -- a ``dask.distributed.Client``;
* :class:`ShardPool` -- "run ``fn(local_object_i, arg_i)`` for every shard ``i`` on
  the worker that holds shard ``i``", where ``local_object_i`` is built *on the worker*
  from a small picklable builder (a path, a loader) and cached there between calls;
* :class:`DistributedError` -- what the engine raises when the cluster fails (a
  scheduler that went away, a timeout), never a hang.

Recovery model. The client owns every iterate; a worker owns only a cache
(the shard's data and its factorizations). A worker that dies takes only its cache
with it: Dask re-runs the lost task on another worker, which finds no cached object
for the shard, the pool sends that worker the shard's builder, the object is rebuilt
there and the call is re-run. The result of the map is therefore the same as if
nothing had happened; :attr:`ShardPool.events` says what happened.

Traffic is measured with Dask's own counters (:meth:`ShardPool.traffic`), not
estimated; see :class:`Traffic` for which counter sees which leg.

dask is an optional dependency: this module imports it lazily, and ``import
opsplit`` never imports it.
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

__all__ = [
    "DistributedError",
    "ShardPool",
    "Traffic",
    "connect",
    "local_client",
]

_INSTALL_HINT = 'opsplit.distributed needs Dask: pip install "opsplit[distributed]"'


def _distributed():
    """Import ``dask.distributed`` lazily, with an install hint when it is missing."""
    try:
        import distributed
    except ImportError as exc:  # pragma: no cover - exercised only without dask
        raise ImportError(_INSTALL_HINT) from exc
    return distributed


class DistributedError(RuntimeError):
    """The cluster failed: the scheduler went away, or a map timed out.

    Parameters
    ----------
    message : str
        What failed, naming the scheduler address.
    last_iterate : object, optional
        The last consistent iterate, set by the problem that catches the error
        before it re-raises (the engine itself knows no iterate).

    Attributes
    ----------
    last_iterate : object or None
        See above.
    """

    def __init__(self, message: str, last_iterate: Any = None):
        super().__init__(message)
        self.last_iterate = last_iterate


# ---------------------------------------------------------------------------
# clients


def local_client(n_workers: int = 2, threads_per_worker: int = 1, **kwargs: Any):
    """Start an embedded ``LocalCluster`` and return a client connected to it.

    The cluster has ``n_workers`` worker *processes* (each with its own nanny, which
    restarts a worker that dies), the dashboard off, logs silenced to errors and work
    stealing off (stealing would move a shard's task away from the worker that caches
    the shard, forcing a needless rebuild). Closing the client closes the cluster.

    Parameters
    ----------
    n_workers : int, default 2
        Number of worker processes.
    threads_per_worker : int, default 1
        Threads per worker process.
    **kwargs
        Passed on to ``dask.distributed.LocalCluster`` (e.g. ``memory_limit``).

    Returns
    -------
    distributed.Client

    Raises
    ------
    ImportError
        If Dask is not installed (``pip install "opsplit[distributed]"``).
    """
    for name, value in (("n_workers", n_workers), ("threads_per_worker", threads_per_worker)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    distributed = _distributed()
    import dask

    options = dict(processes=True, dashboard_address=None, silence_logs=logging.ERROR)
    options.update(kwargs)
    # no dashboard, and the scheduler's HTTP server (health, metrics) on a free port:
    # the default port 8787 may be taken by another cluster, which Dask warns about
    options["scheduler_kwargs"] = {"dashboard": False, "dashboard_address": ":0"} | dict(
        options.get("scheduler_kwargs") or {}
    )
    # a client made without an address starts (and, on close, stops) its own LocalCluster
    with dask.config.set({"distributed.scheduler.work-stealing": False}):
        return distributed.Client(
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            set_as_default=False,
            **options,
        )


def connect(address: str, timeout: float = 10.0):
    """Connect to a running Dask scheduler.

    Parameters
    ----------
    address : str
        The scheduler's address, e.g. ``"tcp://10.0.0.5:8786"``.
    timeout : float, default 10.0
        Seconds to wait for the scheduler before giving up.

    Returns
    -------
    distributed.Client

    Raises
    ------
    ValueError
        If the scheduler at ``address`` cannot be reached within ``timeout`` (the
        message names the address).
    TypeError
        If ``address`` is not a string.
    """
    if not isinstance(address, str):
        raise TypeError(f"address must be a string like 'tcp://host:8786', got {address!r}")
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    distributed = _distributed()
    try:
        return distributed.Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ValueError(
            f"cannot reach the Dask scheduler at address {address!r} within {timeout} s: {exc}"
        ) from exc


# ---------------------------------------------------------------------------
# the worker side

#: Per-process cache of shard objects: {(worker id, pool token, shard index): object}.
#: Lives in the worker's process (module global), so it dies with the process.
_CACHE: dict[tuple[str, str, int], Any] = {}
_MISSING = "__opsplit_shard_missing__"


def _worker_key(token: str, index: int) -> tuple[tuple[str, str, int], str]:
    from distributed import get_worker

    worker = get_worker()
    return (worker.id, token, index), worker.address


def _run_cached(token: str, index: int, fn: Callable, arg: Any):
    """Task: ``fn(cached object, *arg)`` or a miss marker when the object is not cached."""
    key, address = _worker_key(token, index)
    try:
        obj = _CACHE[key]
    except KeyError:
        return _MISSING, address
    return fn(obj, *arg), address


def _build_and_run(token: str, index: int, builder: Callable, fn: Callable | None, arg: Any):
    """Task: build the shard's object, cache it on this worker, then run ``fn`` on it."""
    key, address = _worker_key(token, index)
    obj = builder()
    _CACHE[key] = obj
    return (None if fn is None else fn(obj, *arg)), address


def _drop(token: str) -> int:
    """Run on every worker: forget the objects of pool ``token``; return how many."""
    stale = [key for key in _CACHE if key[1] == token]
    for key in stale:
        del _CACHE[key]
    return len(stale)


def _worker_counters(dask_worker) -> tuple[int, int]:
    """Run on every worker: (bytes served by get_data, bytes sent on the scheduler stream)."""
    return (
        int(dask_worker.transfer_outgoing_bytes_total),
        int(dask_worker.batched_stream.byte_count),
    )


def _scheduler_counters(dask_scheduler) -> dict[str, int]:
    """Run on the scheduler: bytes sent on its batched stream to each worker."""
    return {addr: int(bs.byte_count) for addr, bs in dask_scheduler.stream_comms.items()}


# ---------------------------------------------------------------------------
# traffic


@dataclass(frozen=True)
class Traffic:
    """Bytes moved by a pool's maps, read from Dask's own counters.

    Each leg is read from the counter that actually sees it:

    * ``client_to_scheduler`` -- ``Client.scheduler_comm.byte_count``: bytes the
      client wrote on its batched stream to the scheduler (the submitted tasks, with
      the per-shard vectors inside them);
    * ``scheduler_to_workers`` -- ``Scheduler.stream_comms[w].byte_count`` summed over
      the workers: bytes the scheduler wrote to the workers (the ``compute-task``
      messages that carry those vectors on to the workers);
    * ``workers_to_scheduler`` -- ``Worker.batched_stream.byte_count`` summed: task
      completion messages;
    * ``workers_to_client`` -- ``Worker.transfer_outgoing_bytes_total`` summed: the
      results served by ``get_data`` when the client gathers them.

    The first three are wire bytes (``comm.write`` return values); the last is
    Dask's ``nbytes`` estimate of the results. Counters of workers that were
    replaced between two readings restart at zero; the new worker's count is added
    whole. On a shared cluster the scheduler/worker counters also see other clients.

    The per-shard vectors travel *inside* the tasks, client -> scheduler -> worker,
    which is why the first two legs are counted. (Sending them with
    ``client.scatter(direct=True)`` instead goes client -> worker, a path no Dask
    counter sees, and measured slower here: ~23 ms against ~15 ms per map of two
    shards.) The relay through the scheduler doubles the scheduler's share of the
    traffic; at 100 workers the scheduler link carries ``2 x workers x 8n`` bytes per
    iteration each way, which is where a cluster-side reduction would pay.

    Attributes
    ----------
    maps : int
        Number of :meth:`ShardPool.map` calls covered.
    seconds : float
        Wall-clock seconds spent inside those maps.
    client_to_scheduler : int
        See above.
    scheduler_to_workers : int
        See above.
    workers_to_scheduler : int
        See above.
    workers_to_client : int
        See above.
    """

    maps: int
    seconds: float
    client_to_scheduler: int
    scheduler_to_workers: int
    workers_to_scheduler: int
    workers_to_client: int

    @property
    def total(self) -> int:
        """All bytes of the four legs."""
        return (
            self.client_to_scheduler
            + self.scheduler_to_workers
            + self.workers_to_scheduler
            + self.workers_to_client
        )

    @property
    def per_map(self) -> dict[str, float]:
        """Every leg (and ``total``, ``seconds``) divided by the number of maps."""
        m = max(self.maps, 1)
        out = {f.name: getattr(self, f.name) / m for f in fields(self) if f.name != "maps"}
        out["total"] = self.total / m
        return out


# ---------------------------------------------------------------------------
# the pool

_DASK_FAILURES: tuple[type[BaseException], ...] | None = None


def _dask_failures() -> tuple[type[BaseException], ...]:
    """Exception types that mean "the cluster failed", as opposed to a user error."""
    global _DASK_FAILURES
    if _DASK_FAILURES is None:
        import asyncio
        import concurrent.futures

        distributed = _distributed()
        from distributed.client import ClosedClientError, FutureCancelledError
        from distributed.comm.core import CommClosedError

        _DASK_FAILURES = (
            OSError,
            TimeoutError,
            asyncio.TimeoutError,
            asyncio.CancelledError,
            concurrent.futures.CancelledError,
            FutureCancelledError,
            ClosedClientError,
            CommClosedError,
            distributed.TimeoutError,
            distributed.scheduler.KilledWorker,
        )
    return _DASK_FAILURES


class ShardPool:
    """Shards whose objects live on Dask workers, and a parallel map over them.

    ``builders[i]`` is a small picklable zero-argument callable (e.g. a
    ``functools.partial`` of a loader and a path) that returns shard ``i``'s *local
    object* -- its data, factorizations, whatever the map function needs. The
    object is built on a worker and cached there, in that worker's process; it never
    travels. Shard ``i`` is pinned to a worker (round robin over the workers
    present when the pool is made). Tasks carry ``allow_other_workers=True``, so when
    the pinned worker dies, Dask re-runs the shard's task elsewhere; the pool then
    sends the builder there, rebuilds the object, re-pins the shard and records the
    event in :attr:`events`. Builders travel only when an object must be (re)built;
    a map sends only its per-shard arguments.

    Parameters
    ----------
    client : distributed.Client
        A connected client (:func:`local_client`, :func:`connect`).
    builders : sequence of callables
        ``builders[i]()`` returns shard ``i``'s local object; it runs on a worker.
    timeout : float, default 60.0
        Seconds one :meth:`map` (or :meth:`build`) may take before
        :class:`DistributedError` is raised. It bounds how long a vanished scheduler
        can block a call.
    workers : sequence of str, optional
        Worker addresses to pin shards to (round robin); default all workers.

    Attributes
    ----------
    events : list of str
        Human-readable record of lost workers and rebuilt or moved shards, in order.
    placement : list of str
        ``placement[i]`` is the address of the worker currently holding shard ``i``.
    n_maps : int
        Number of completed :meth:`map` calls.
    token : str
        Unique id of this pool (the workers' cache key).

    Notes
    -----
    Exceptions raised by a builder or by the map function (e.g. ``ValueError`` for
    a bad shard) reach the caller unchanged; failures of the cluster (scheduler gone,
    timeout, a task that killed too many workers) raise :class:`DistributedError`.
    """

    def __init__(
        self,
        client,
        builders: Sequence[Callable[[], Any]],
        *,
        timeout: float = 60.0,
        workers: Sequence[str] | None = None,
    ):
        distributed = _distributed()
        if not isinstance(client, distributed.Client):
            raise TypeError(
                f"client must be a dask.distributed.Client, got {type(client).__name__}"
            )
        builders = list(builders)
        if not builders:
            raise ValueError("builders must hold at least one shard builder")
        for i, b in enumerate(builders):
            if not callable(b):
                raise TypeError(f"builders[{i}] must be a zero-argument callable, got {b!r}")
        if not (isinstance(timeout, (int, float)) and timeout > 0):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.client = client
        self._address = str(getattr(client.scheduler, "address", None) or "<unknown scheduler>")
        self.builders = builders
        self.timeout = float(timeout)
        self.token = uuid.uuid4().hex
        self.events: list[str] = []
        self.n_maps = 0
        self._built = [False] * len(builders)
        self._counter = itertools.count()
        pool = list(workers) if workers is not None else self._workers()
        if not pool:  # e.g. a cluster still starting: wait for one worker, within timeout
            try:
                client.wait_for_workers(1, timeout=self.timeout)
            except _dask_failures() as exc:
                raise self._fail("waiting for a worker", exc) from exc
            pool = self._workers()
        self.placement = [pool[i % len(pool)] for i in range(len(builders))]
        self._baseline = self._read_counters()
        self._maps_since = 0
        self._seconds_since = 0.0

    # -- small helpers -----------------------------------------------------

    @property
    def address(self) -> str:
        """The scheduler's address (for messages)."""
        return self._address

    def __len__(self) -> int:
        return len(self.builders)

    def __repr__(self) -> str:
        return f"ShardPool({len(self)} shards on {self.address})"

    def _workers(self) -> list[str]:
        try:
            info = self.client.scheduler_info(n_workers=-1)
        except TypeError:  # older distributed: no n_workers argument
            info = self.client.scheduler_info()
        except _dask_failures() as exc:
            raise DistributedError(
                f"the Dask scheduler at {self.address} is unreachable: {exc}"
            ) from exc
        return sorted(info["workers"])

    def _fail(self, what: str, exc: BaseException) -> DistributedError:
        status = str(getattr(self.client, "status", "running"))
        lost = (
            ""
            if status == "running"
            else f" (the client's connection to the scheduler is {status})"
        )
        return DistributedError(
            f"{what} failed on the Dask cluster at {self.address}{lost}: "
            f"{type(exc).__name__}: {exc or 'no detail'}"
        )

    def _submit(self, func, *args, index: int):
        import dask

        # the per-shard vectors travel inside the task by design (O(n) each); Dask's
        # "large graph" warning (10 MB by default, n > 1.25e6) would only be noise here
        with dask.config.set({"distributed.admin.large-graph-warning-threshold": "1TB"}):
            return self._submit_now(func, *args, index=index)

    def _submit_now(self, func, *args, index: int):
        return self.client.submit(
            func,
            *args,
            key=f"opsplit-shard-{index}-{self.token[:8]}-{next(self._counter)}",
            workers=[self.placement[index]],
            allow_other_workers=True,
            pure=False,
        )

    def _gather(self, futures: list, deadline: float, what: str) -> list:
        distributed = _distributed()
        try:
            with self.client.as_current():
                distributed.wait(futures, timeout=max(deadline - time.monotonic(), 0.001))
            return self.client.gather(futures)
        except _dask_failures() as exc:
            for f in futures:
                f.release()
            if isinstance(exc, (TimeoutError, distributed.TimeoutError)):
                exc = TimeoutError(f"no answer within {self.timeout} s")
            raise self._fail(what, exc) from exc
        except Exception:
            for f in futures:
                f.release()
            raise

    def _record(self, index: int, address: str, rebuilt: bool) -> None:
        """Update the placement of shard ``index`` after a task ran on ``address``."""
        old = self.placement[index]
        if address == old and not rebuilt:
            return
        where = f"map {self.n_maps}"
        if address != old:
            gone = old not in set(self._workers())
            cause = f"worker {old} was lost" if gone else f"the scheduler moved it off {old}"
            self.events.append(
                f"{where}: {cause}; shard {index} "
                + ("rebuilt" if rebuilt else "ran")
                + f" on {address} and its call re-run"
            )
        else:
            self.events.append(
                f"{where}: shard {index}'s cache was missing on {address} "
                "(worker restarted); shard rebuilt there and its call re-run"
            )
        self.placement[index] = address

    # -- public API ---------------------------------------------------------

    def build(self, describe: Callable[[Any], Any] | None = None) -> list:
        """Build every shard's object on its worker (once) and describe it.

        Parameters
        ----------
        describe : callable, optional
            ``describe(local_object)`` runs on the worker right after the build; its
            (small) return value -- e.g. the shard's shape -- comes back. Default: None
            for every shard.

        Returns
        -------
        list
            ``describe(object_i)`` for every shard ``i``, in order.

        Raises
        ------
        DistributedError
            If the cluster fails or the build takes longer than ``timeout``.
        Exception
            Whatever a builder or ``describe`` raises, unchanged.
        """
        deadline = time.monotonic() + self.timeout
        futures = [
            self._submit(_build_and_run, self.token, i, b, describe, (), index=i)
            for i, b in enumerate(self.builders)
        ]
        results = self._gather(futures, deadline, "building the shards")
        out = []
        for i, (value, address) in enumerate(results):
            if address != self.placement[i]:
                self._record(i, address, rebuilt=True)
            self._built[i] = True
            out.append(value)
        return out

    def map(self, fn: Callable, args: Sequence[Any]) -> list:
        """Run ``fn(object_i, *args[i])`` on shard ``i``'s worker for every shard, in parallel.

        Parameters
        ----------
        fn : callable
            Picklable function (module level, for speed) ``fn(local_object, *arg)``.
        args : sequence
            ``args[i]`` is the tuple of extra arguments for shard ``i`` (e.g.
            ``(v_i, step)``); it is what travels to the worker -- keep it O(n).

        Returns
        -------
        list
            ``fn``'s results, in shard order.

        Raises
        ------
        DistributedError
            If the scheduler went away, the map took longer than ``timeout``, or a
            task kept killing workers; never a hang.
        Exception
            Whatever ``fn`` or a builder raises, unchanged.
        """
        args = [tuple(a) for a in args]
        if len(args) != len(self):
            raise ValueError(f"args must hold one tuple per shard ({len(self)}), got {len(args)}")
        start = time.monotonic()
        deadline = start + self.timeout
        try:
            futures = [
                self._submit(_run_cached, self.token, i, fn, a, index=i) for i, a in enumerate(args)
            ]
        except _dask_failures() as exc:
            raise self._fail("submitting a map", exc) from exc
        results = self._gather(futures, deadline, "a map over the shards")
        misses = [
            i
            for i, (value, _) in enumerate(results)
            if isinstance(value, str) and value == _MISSING
        ]
        if misses:
            futures = [
                self._submit(_build_and_run, self.token, i, self.builders[i], fn, args[i], index=i)
                for i in misses
            ]
            for i, (value, address) in zip(
                misses, self._gather(futures, deadline, "rebuilding lost shards"), strict=True
            ):
                results[i] = (value, address)
                if self._built[i]:
                    self._record(i, address, rebuilt=True)
                else:  # first use without build(): not an event
                    self.placement[i] = address
                self._built[i] = True
        for i, (_, address) in enumerate(results):
            if i not in misses and address != self.placement[i]:
                self._record(i, address, rebuilt=False)
        self.n_maps += 1
        self._maps_since += 1
        self._seconds_since += time.monotonic() - start
        return [value for value, _ in results]

    def _read_counters(self) -> dict[str, Any]:
        client = self.client
        try:
            # a worker that dies (or is still starting) while we read is left out
            workers = client.run(_worker_counters, on_error="ignore")
            scheduler = client.run_on_scheduler(_scheduler_counters)
        except _dask_failures() as exc:
            raise self._fail("reading the traffic counters", exc) from exc
        return {
            "client": int(client.scheduler_comm.byte_count),
            "scheduler": scheduler,
            "workers": workers,
        }

    def reset_traffic(self) -> None:
        """Start counting :meth:`traffic` from now."""
        self._baseline = self._read_counters()
        self._maps_since = 0
        self._seconds_since = 0.0

    def traffic(self) -> Traffic:
        """Bytes moved since the pool was made (or :meth:`reset_traffic`), by Dask's counters.

        Returns
        -------
        Traffic
            Totals of each leg, the number of maps covered and their wall time; use
            ``.per_map`` for the per-iteration figures. Reading the counters costs one
            ``client.run`` and one ``run_on_scheduler``; call it between maps, not in
            every iteration.
        """
        now = self._read_counters()
        base = self._baseline

        def delta(new: dict, old: dict, pick) -> int:
            return sum(pick(v) - (pick(old[k]) if k in old else 0) for k, v in new.items())

        return Traffic(
            maps=self._maps_since,
            seconds=self._seconds_since,
            client_to_scheduler=now["client"] - base["client"],
            scheduler_to_workers=delta(now["scheduler"], base["scheduler"], lambda v: v),
            workers_to_scheduler=delta(now["workers"], base["workers"], lambda v: v[1]),
            workers_to_client=delta(now["workers"], base["workers"], lambda v: v[0]),
        )

    def __enter__(self) -> ShardPool:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Drop this pool's cached objects from every worker (best effort)."""
        try:
            self.client.run(_drop, self.token)
        except Exception:  # noqa: BLE001 - the cluster may already be gone
            pass
