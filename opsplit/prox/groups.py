r"""The group lasso penalty on arbitrary non-overlapping groups of the last axis.

.. math::

    f(x) = \lambda \sum_g w_g \|x_g\|_2, \qquad
    \operatorname{prox}_{\gamma f}(x)_g =
    \max\Bigl(0,\ 1 - \frac{\gamma\lambda w_g}{\|x_g\|_2}\Bigr)\, x_g,

block soft thresholding of every group; entries in no group are left as they
are. The groups are laid out once, at construction, as index arrays on the
device: the groups of each distinct size ``k`` form one gather into a dense
``(…, G_k, k)`` block whose rows are the groups, so the group norms are exact
row norms (no cumulative-sum differences, which would lose the digits of
small groups after large ones) and the prox costs one gather per distinct
size, one norm, one scaling and one inverse permutation, with no loop over
groups and no host transfer.

References
----------
M. Yuan and Y. Lin, "Model selection and estimation in regression with grouped
variables", J. R. Stat. Soc. B 68(1), 2006. F. Bach, R. Jenatton, J. Mairal and
G. Obozinski, "Optimization with sparsity-inducing penalties", Foundations and
Trends in Machine Learning 4(1), 2012, §3.3.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from .._backend import (
    check_floating,
    from_host,
    namespace,
    same_library,
    sum_of_squares,
    to_numpy,
)
from .._validate import check_positive, check_positive_int, check_real
from ._base import ProxFunction, check_last_axis

__all__ = ["GroupL1"]


@dataclass(frozen=True)
class _Bucket:
    """The groups of one size ``k``: ``index`` (``G·k`` entries, group after
    group) and their ``weights`` (shape ``(G,)``), on the groups' device."""

    size: int
    count: int
    index: object
    weights: object


def _host_indices(group, name: str) -> np.ndarray:
    """One group as a 1-D NumPy int64 array, checked."""
    if isinstance(group, (list, tuple, range)):
        values = np.asarray(group)
    else:
        try:
            namespace(group)
        except TypeError as exc:
            raise TypeError(
                f"{name} must be a sequence or an array of indices, got {type(group).__name__}"
            ) from exc
        values = to_numpy(group)
    if values.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {values.shape}")
    if values.size == 0:
        raise ValueError(f"{name} is empty: every group needs at least one index")
    if not np.issubdtype(values.dtype, np.integer) or values.dtype == np.bool_:
        raise TypeError(f"{name} must hold integers, got dtype {values.dtype}")
    return values.astype(np.int64)


def _parse_groups(groups, size):
    """``(index lists, size, like)``: the groups as host int64 arrays, the
    length of the last axis, and an array of the groups' library (or None)."""
    try:
        xp = namespace(groups)
    except TypeError:
        xp = None
    if xp is not None and groups.ndim == 1:  # one label per entry
        labels = _host_indices(groups, "groups")
        if size is not None and size != labels.size:
            raise ValueError(f"size={size} does not match the {labels.size} labels in groups")
        members = np.flatnonzero(labels >= 0)
        if members.size == 0:
            raise ValueError("groups has no nonnegative label: no entry is in a group")
        members = members[np.argsort(labels[members], kind="stable")]  # by label, then index
        starts = np.flatnonzero(np.diff(labels[members])) + 1
        return np.split(members, starts), labels.size, groups
    if xp is not None:  # 2-D: one group per row
        if groups.ndim != 2:
            raise ValueError(
                f"groups must be a 1-D label array or a 2-D index array, got shape "
                f"{tuple(groups.shape)}"
            )
        rows = to_numpy(groups)
        lists = [_host_indices(row, f"groups[{i}]") for i, row in enumerate(rows)]
        like = groups
    else:
        if isinstance(groups, (str, bytes)) or not hasattr(groups, "__iter__"):
            raise TypeError(
                "groups must be an integer label array or a sequence of index arrays, "
                f"got {type(groups).__name__}"
            )
        groups = list(groups)
        if not groups:
            raise ValueError("groups must contain at least one group")
        lists = [_host_indices(g, f"groups[{i}]") for i, g in enumerate(groups)]
        arrays = [g for g in groups if not isinstance(g, (list, tuple, range, np.ndarray))]
        like = arrays[0] if arrays else None
        if arrays:
            try:
                namespace(*arrays)
            except TypeError as exc:
                raise TypeError(f"groups mixes array libraries or devices: {exc}") from exc
    if not lists:
        raise ValueError("groups must contain at least one group")
    flat = np.concatenate(lists)
    owner = np.repeat(np.arange(len(lists)), [g.size for g in lists])
    bad = (flat < 0) if size is None else (flat < 0) | (flat >= size)
    if bad.any():
        bound = "" if size is None else f" < size={size}"
        i = int(owner[np.argmax(bad)])
        raise ValueError(f"groups[{i}] has an index out of range (indices must be >= 0{bound})")
    size = int(flat.max()) + 1 if size is None else size
    counts = np.bincount(flat, minlength=size)
    if counts.max() > 1:
        k = int(np.argmax(counts > 1))
        i, j = (int(g) for g in owner[flat == k][:2])
        if i == j:
            raise ValueError(f"groups[{i}] repeats index {k}")
        raise ValueError(f"groups overlap: index {k} is in groups[{i}] and groups[{j}]")
    return lists, size, like


def _parse_weights(weights, count: int) -> np.ndarray:
    if weights is None:
        return np.ones(count)
    if isinstance(weights, numbers.Real) and not isinstance(weights, bool):
        values = np.full(count, check_real(weights, "weights", minimum=0.0))
    else:
        try:
            namespace(weights)
            values = to_numpy(weights)
        except TypeError:
            values = np.asarray(weights)
        if values.dtype.kind not in "fiu":
            raise TypeError(f"weights must be real numbers, got dtype {values.dtype}")
        values = values.astype(np.float64)
    if values.shape != (count,):
        raise ValueError(
            f"weights must have one entry per group ({count}), got shape {values.shape}"
        )
    if not (np.all(np.isfinite(values)) and np.all(values >= 0)):
        raise ValueError("weights must be finite and >= 0")
    return values


class GroupL1(ProxFunction):
    r"""The group lasso ``lam·Σ_g w_g‖x_g‖₂`` over non-overlapping groups of the
    last axis (leading axes are a batch; the value is summed over it).

    .. math::

        \operatorname{prox}_{\gamma f}(x)_g =
        \max\Bigl(0,\ 1 - \frac{\gamma\,\text{lam}\,w_g}{\|x_g\|_2}\Bigr)\, x_g,

    entries in no group unchanged (see the module docstring for the layout).

    Parameters
    ----------
    groups : array or sequence of arrays
        Either a 1-D integer array of labels, one per entry of the last axis
        (entries with the same label ``>= 0`` form a group, in increasing
        label order; a negative label leaves the entry in no group), or a
        sequence of 1-D integer index arrays (lists or arrays), one per group
        (a 2-D integer array is read as one group per row). Groups must be
        nonempty, disjoint and within range. The index arrays are built on the
        library and device of ``groups`` (NumPy for Python lists), where ``x``
        must live.
    lam : float
        ``lam >= 0``.
    weights : float or sequence of float, optional
        One weight ``w_g >= 0`` per group (a scalar for all); default 1. The
        usual normalization is ``sqrt(len(group))``.
    size : int, optional
        The length ``n`` of the last axis; default: the number of labels, or
        one more than the largest index (entries beyond every group are then
        only allowed when ``size`` says so).

    Examples
    --------
    >>> import numpy as np
    >>> f = GroupL1([[0, 2], [1]], lam=1.0)
    >>> x = np.array([3.0, 0.5, 4.0])
    >>> float(f.value(x))
    5.5
    >>> f.prox(x)
    array([2.4, 0. , 3.2])
    >>> GroupL1(np.array([0, 0, 1, -1])).prox(np.array([3.0, 4.0, 0.5, 9.0]))
    array([2.4, 3.2, 0. , 9. ])
    """

    def __init__(self, groups, lam=1.0, weights=None, *, size=None):
        size = None if size is None else check_positive_int(size, "size")
        lists, self.size, like = _parse_groups(groups, size)
        self.lam = check_real(lam, "lam", minimum=0.0)
        self.weights = _parse_weights(weights, len(lists))
        self.group_sizes = tuple(int(g.size) for g in lists)

        def to_device(host, dtype):
            return from_host(host, dtype=dtype) if like is None else from_host(host, like, dtype)

        by_size: dict[int, list[int]] = {}
        for i, k in enumerate(self.group_sizes):
            by_size.setdefault(k, []).append(i)
        buckets, order = [], []
        for k, members in sorted(by_size.items()):
            index = np.concatenate([lists[i] for i in members])
            order.append(index)
            buckets.append(
                _Bucket(
                    k,
                    len(members),
                    to_device(index, "int64"),
                    to_device(self.weights[members], "float64"),
                )
            )
        grouped = np.concatenate(order)
        free = np.setdiff1d(np.arange(self.size), grouped)
        permutation = np.concatenate([grouped, free])
        self._buckets = tuple(buckets)
        self._free = to_device(free, "int64") if free.size else None
        # identity layout (equal contiguous groups in order): reshape, no gathers
        self._contiguous = (
            len(buckets) == 1
            and free.size == 0
            and bool(np.all(permutation == np.arange(self.size)))
        )
        self._inverse = to_device(np.argsort(permutation), "int64")

    @property
    def num_groups(self) -> int:
        """The number of groups."""
        return len(self.group_sizes)

    def _gathered(self, x):
        """``(bucket, values, norms)`` per bucket: the bucket's entries of ``x``
        group after group (``(…, G·k)``) and the group norms (``(…, G)``)."""
        check_floating(x, "x")
        check_last_axis(x, self.size)
        same_library(self._inverse, x, "groups", "x")
        xp = namespace(x)
        batch = tuple(x.shape[:-1])
        out = []
        for b in self._buckets:
            values = x if self._contiguous else xp.take(x, b.index, axis=-1)
            blocks = xp.reshape(values, (*batch, b.count, b.size))
            out.append((b, values, xp.sqrt(sum_of_squares(xp, blocks))))
        return out

    def value(self, x):
        xp = namespace(x)
        total = None
        for bucket, _, norms in self._gathered(x):
            term = xp.sum(xp.astype(bucket.weights, x.dtype) * norms)
            total = term if total is None else total + term
        return self.lam * total

    def prox(self, x, step=1.0):
        step = check_positive(step, "step")
        xp = namespace(x)
        threshold = self.lam * step
        parts = []
        for bucket, values, norms in self._gathered(x):
            cut = threshold * xp.astype(bucket.weights, x.dtype)
            shrink = xp.maximum(norms - cut, 0.0) / xp.where(norms > 0, norms, 1.0)
            # one factor per entry: a broadcast against a short last axis of
            # length k is several times slower on NumPy than a repeat
            parts.append(xp.repeat(shrink, bucket.size, axis=-1) * values)
        if self._contiguous:
            return parts[0]
        if self._free is not None:
            parts.append(xp.take(x, self._free, axis=-1))
        return xp.take(xp.concat(parts, axis=-1), self._inverse, axis=-1)

    def __repr__(self) -> str:
        return (
            f"GroupL1(num_groups={self.num_groups}, size={self.size}, lam={self.lam}, "
            f"group sizes {min(self.group_sizes)}..{max(self.group_sizes)})"
        )
