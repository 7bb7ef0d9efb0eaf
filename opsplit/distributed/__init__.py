"""Consensus solves whose data live on the workers of a Dask cluster.

:class:`Consensus` poses :math:`\\min_x \\sum_i f_i(x) + g(x)`, one
:math:`f_i` per shard of rows, as a monotone inclusion that
:func:`opsplit.solve` runs with any two-resolvent method; the shards' proxes
run on the workers (:class:`ShardPool`, on a ``dask.distributed.Client``:
:func:`local_client` starts an embedded ``LocalCluster``, :func:`connect`
joins a running scheduler), or in this process with ``client=None``
(:class:`LocalPool`).

Dask (``pip install "opsplit[distributed]"``) is imported only when a
client is made or used; ``import opsplit`` never imports this package.
"""

from __future__ import annotations

from ._engine import DistributedError, ShardPool, Traffic, connect, local_client
from .consensus import Consensus, LocalPool

__all__ = ["Consensus", "LocalPool", "local_client", "connect", "ShardPool", "Traffic",
           "DistributedError"]
