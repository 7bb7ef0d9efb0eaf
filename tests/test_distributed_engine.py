"""The Dask layer (opsplit.distributed._engine): shard pools on a real LocalCluster.

One module-scoped cluster of 2 worker processes (1 thread each) serves every test
but the scheduler-loss test, which needs a cluster of its own to destroy.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("distributed", reason='needs Dask: pip install "opsplit[distributed]"')

import cloudpickle  # noqa: E402  (a dependency of distributed)
from distributed import Client, LocalCluster  # noqa: E402

from opsplit.distributed._engine import (  # noqa: E402
    DistributedError,
    ShardPool,
    Traffic,
    connect,
    local_client,
)

# Worker processes cannot import this test module by name: ship its functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


# ---------------------------------------------------------------------------
# shard builders and map functions (run on the workers)


def make_shard(rows, n, seed):
    """A shard's local object: its matrix, and the pid of the process that built it."""
    rng = np.random.default_rng(seed)
    return {"A": rng.standard_normal((rows, n)), "pid": os.getpid()}


def shard_matrix(rows, n, seed):
    return np.random.default_rng(seed).standard_normal((rows, n))


def normal_matvec(obj, v):
    """AᵀA v: O(rows·n) work on the worker, an n-vector back."""
    A = obj["A"]
    return A.T @ (A @ v)


def where_built(obj):
    return obj["pid"], id(obj), os.getpid()


def has_stealing(dask_scheduler):
    return "stealing" in dask_scheduler.extensions


def describe(obj):
    return obj["A"].shape


def bad_builder():
    raise ValueError("shard 1 holds a non-finite value")


def failing_fn(obj, v):
    raise ValueError("bad call on a shard")


def kill_once(obj, v, marker, victim):
    """Kill the worker process running this call (SIGKILL), the first time only."""
    if victim and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return normal_matvec(obj, v)


def sleep_then(obj, v, seconds):
    time.sleep(seconds)
    return v


def builders(sizes, n):
    return [functools.partial(make_shard, rows, n, seed) for seed, rows in enumerate(sizes)]


def reference(sizes, n, vs):
    """The same products computed here, in the test process (independent of Dask)."""
    return [
        shard_matrix(rows, n, seed).T @ (shard_matrix(rows, n, seed) @ v)
        for (seed, rows), v in zip(enumerate(sizes), vs)
    ]


@pytest.fixture(scope="module")
def client():
    c = local_client(n_workers=2, threads_per_worker=1)
    c.wait_for_workers(2, timeout=30)
    yield c
    c.close()


@pytest.fixture
def healthy(client):
    """The shared client, with its two workers back (a test may have killed one)."""
    client.wait_for_workers(2, timeout=30)
    return client


def worker_pids(client):
    return client.run(os.getpid)


# ---------------------------------------------------------------------------
# maps: values, placement, caching


def test_map_returns_each_shards_result_in_order(healthy):
    sizes, n = (7, 30, 12), 5
    pool = ShardPool(healthy, builders(sizes, n))
    assert pool.build(describe) == [(r, n) for r in sizes]
    rng = np.random.default_rng(0)
    vs = [rng.standard_normal(n) for _ in sizes]
    out = pool.map(normal_matvec, [(v,) for v in vs])
    for got, want in zip(out, reference(sizes, n, vs), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-13)
    assert pool.events == []
    pool.close()


def test_shards_pinned_round_robin_and_objects_cached_on_their_worker(healthy):
    sizes, n = (4, 4, 4, 4), 3
    pool = ShardPool(healthy, builders(sizes, n))
    pool.build()
    pids = worker_pids(healthy)
    assert len(set(pool.placement)) == 2  # both workers hold shards
    assert pool.placement[0] == pool.placement[2] != pool.placement[1] == pool.placement[3]
    first = pool.map(where_built, [()] * 4)
    second = pool.map(where_built, [()] * 4)
    assert first == second  # same object (id) in the same process: built once, cached
    for i, (built_pid, _, run_pid) in enumerate(first):
        assert built_pid == run_pid == pids[pool.placement[i]]
    assert pool.n_maps == 2 and pool.events == []
    # local_client turns work stealing off (it would move shards off their cache)
    assert not healthy.run_on_scheduler(has_stealing)
    pool.close()
    # after close the cache is gone: the next map rebuilds (an event, since it was built)
    pool.map(where_built, [()] * 4)
    assert len(pool.events) == 4 and all("rebuilt" in e for e in pool.events)


def test_map_without_build_builds_on_first_use(healthy):
    pool = ShardPool(healthy, builders((3, 5), 4))
    v = np.arange(4.0)
    out = pool.map(normal_matvec, [(v,), (v,)])
    for got, want in zip(out, reference((3, 5), 4, [v, v]), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-13)
    assert pool.events == []  # a first build is not a loss
    pool.close()


def test_user_errors_reach_the_caller_unchanged(healthy):
    pool = ShardPool(healthy, [functools.partial(make_shard, 2, 2, 0), bad_builder])
    with pytest.raises(ValueError, match="shard 1 holds a non-finite value"):
        pool.build()
    good = ShardPool(healthy, builders((2,), 2))
    with pytest.raises(ValueError, match="bad call on a shard"):
        good.map(failing_fn, [(np.zeros(2),)])
    good.close()


def test_bad_arguments(healthy):
    with pytest.raises(TypeError, match="client"):
        ShardPool("tcp://127.0.0.1:8786", builders((2,), 2))
    with pytest.raises(ValueError, match="builders"):
        ShardPool(healthy, [])
    with pytest.raises(TypeError, match=r"builders\[1\]"):
        ShardPool(healthy, [functools.partial(make_shard, 2, 2, 0), "shard.npz"])
    with pytest.raises(ValueError, match="timeout"):
        ShardPool(healthy, builders((2,), 2), timeout=0)
    pool = ShardPool(healthy, builders((2, 2), 2))
    with pytest.raises(ValueError, match="args"):
        pool.map(normal_matvec, [(np.zeros(2),)])
    with pytest.raises(ValueError, match="n_workers"):
        local_client(n_workers=0)


# ---------------------------------------------------------------------------
# failures of the cluster


def test_worker_killed_mid_map_loses_nothing(healthy, tmp_path):
    sizes, n = (20, 9), 6
    pool = ShardPool(healthy, builders(sizes, n))
    pool.build()
    victim = pool.placement[0]
    pids_before = worker_pids(healthy)
    rng = np.random.default_rng(1)
    vs = [rng.standard_normal(n) for _ in sizes]
    marker = str(tmp_path / "killed")
    # shard 0's call SIGKILLs its worker process in the middle of the map
    out = pool.map(kill_once, [(vs[0], marker, True), (vs[1], marker, False)])
    assert os.path.exists(marker)  # the kill did happen
    for got, want in zip(out, reference(sizes, n, vs), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-13)
    assert pool.placement[0] != victim
    assert len(pool.events) == 1
    assert f"worker {victim} was lost" in pool.events[0]
    assert "shard 0 rebuilt" in pool.events[0] and pool.placement[0] in pool.events[0]
    # the shard now lives (and is cached) where it was rebuilt; later maps are plain
    healthy.wait_for_workers(2, timeout=30)
    assert victim not in worker_pids(healthy) or worker_pids(healthy)[victim] != pids_before[victim]
    out = pool.map(normal_matvec, [(v,) for v in vs])
    for got, want in zip(out, reference(sizes, n, vs), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-13)
    assert len(pool.events) == 1
    pool.close()


def slow_matvec(obj, v, seconds):
    time.sleep(seconds)
    return normal_matvec(obj, v)


def test_worker_process_killed_from_outside_while_a_map_runs(healthy):
    sizes, n = (15, 8), 4
    pool = ShardPool(healthy, builders(sizes, n), timeout=30)
    pool.build()
    victim = pool.placement[1]
    pid = worker_pids(healthy)[victim]
    vs = [np.full(n, 2.0), np.arange(n, dtype=float)]
    # SIGKILL the process of shard 1's worker while both shards are computing
    threading.Timer(0.4, os.kill, (pid, signal.SIGKILL)).start()
    out = pool.map(slow_matvec, [(v, 1.0) for v in vs])
    for got, want in zip(out, reference(sizes, n, vs), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-13)
    assert pool.placement[1] != victim
    assert [e for e in pool.events if f"worker {victim} was lost" in e and "shard 1 rebuilt" in e]
    pool.close()


def test_scheduler_that_goes_away_raises_distributed_error_not_a_hang():
    cluster = LocalCluster(
        n_workers=1,
        processes=False,
        protocol="tcp",
        threads_per_worker=1,
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": ":0"},
    )
    c = Client(cluster, set_as_default=False)
    try:
        address = cluster.scheduler_address
        pool = ShardPool(c, builders((3,), 2), timeout=5)
        pool.build()
        # the scheduler (and its worker) vanish while a map is running
        threading.Timer(0.5, cluster.close).start()
        start = time.monotonic()
        with pytest.raises(DistributedError, match=address) as info:
            pool.map(sleep_then, [(np.zeros(2), 2.0)])
        assert time.monotonic() - start < 5 + 3
        assert info.value.last_iterate is None  # the engine knows no iterate
        # and a map on a dead cluster fails as fast
        start = time.monotonic()
        with pytest.raises(DistributedError, match=address) as info:
            pool.map(sleep_then, [(np.zeros(2), 0.0)])
        assert time.monotonic() - start < 5 + 3
    finally:
        c.close()
        cluster.close()


def test_map_timeout_raises_distributed_error(healthy):
    pool = ShardPool(healthy, builders((2,), 2), timeout=0.5)
    pool.build()
    start = time.monotonic()
    with pytest.raises(DistributedError, match="within 0.5 s"):
        pool.map(sleep_then, [(np.zeros(2), 1.5)])
    assert time.monotonic() - start < 2.5


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connect_unreachable_address_is_a_fast_value_error():
    address = f"tcp://127.0.0.1:{_free_port()}"
    start = time.monotonic()
    with pytest.raises(ValueError, match=address):
        connect(address, timeout=1)
    assert time.monotonic() - start < 5
    with pytest.raises(TypeError, match="address"):
        connect(8786)
    with pytest.raises(ValueError, match="timeout"):
        connect(address, timeout=-1)


def test_connect_reaches_a_running_scheduler(healthy):
    c = connect(healthy.scheduler.address, timeout=5)
    try:
        assert c.run(os.getpid) == healthy.run(os.getpid)
    finally:
        c.close()


# ---------------------------------------------------------------------------
# traffic, from Dask's own counters


def per_map_traffic(client, sizes, n, maps=4):
    pool = ShardPool(client, builders(sizes, n))
    pool.build()
    vs = [(np.ones(n),) for _ in sizes]
    pool.map(normal_matvec, vs)  # warm-up outside the count
    pool.reset_traffic()
    for _ in range(maps):
        pool.map(normal_matvec, vs)
    traffic = pool.traffic()
    pool.close()
    assert isinstance(traffic, Traffic) and traffic.maps == maps
    return traffic.per_map


def test_traffic_is_order_workers_times_n_and_independent_of_rows(healthy):
    n_small, n_big = 1_000, 8_000
    small = per_map_traffic(healthy, (50, 50), n_small)
    big = per_map_traffic(healthy, (50, 50), n_big)
    tall = per_map_traffic(healthy, (2_000, 2_000), n_small)
    one = per_map_traffic(healthy, (50,), n_small)
    for t, shards, n in (
        (small, 2, n_small),
        (big, 2, n_big),
        (tall, 2, n_small),
        (one, 1, n_small),
    ):
        payload = 8 * n * shards  # one float64 n-vector per shard, each way
        # every leg that carries the vectors sees at least the vectors, plus a bounded
        # per-task overhead (task spec, key, pickled function reference)
        for leg in ("client_to_scheduler", "scheduler_to_workers", "workers_to_client"):
            assert payload <= t[leg] <= payload + 4_000 * shards, (leg, t[leg], payload)
        assert t["workers_to_scheduler"] <= 1_000 * shards  # completion messages only
    # linear in n: 8x the features, ~8x the bytes
    assert 7.0 < big["total"] / small["total"] < 8.2
    # independent of the rows of a shard (the data never travels)
    assert abs(tall["total"] - small["total"]) < 0.02 * small["total"]
    # linear in the number of shards (= workers here)
    assert 1.8 < small["total"] / one["total"] < 2.2


# ---------------------------------------------------------------------------
# packaging


def test_import_opsplit_does_not_import_dask():
    code = (
        "import sys, opsplit\n"
        "assert not {'dask', 'distributed'} & set(sys.modules), 'dask imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_dask_gives_the_install_hint(monkeypatch):
    from opsplit.distributed import _engine

    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r'pip install "opsplit\[distributed\]"'):
        _engine.local_client()
