"""Sampling pairs of points, then searching from the worst ones.

Random pairs alone rarely expose a property that fails only along a few
directions or in a small region; the search below refines the worst pairs
by a (1+1) evolution strategy (accept a random perturbation when it lowers
the score; grow the step on success, shrink it on failure — the 1/5th rule),
all pairs advancing together as one batch.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields, replace

import numpy as np
from array_api_compat import device

from .._backend import namespace
from .._vectors import is_tuple, shape_size, vmap
from ._vec import batch_dot, eps_of, host, put_rows, random_vector, take

__all__ = ["SearchOptions", "search_options", "PairScore", "search_pairs", "batched"]


@dataclass(frozen=True)
class SearchOptions:
    """How a sampled check looks for a violation: ``samples`` random pairs, then
    ``search_steps`` rounds of refinement from the ``keep`` worst.

    Parameters
    ----------
    samples : int
        Number of random pairs (at least 1).
    search_steps : int
        Rounds of the search from the worst pairs (0: sampling only).
    keep : int
        Number of worst pairs refined (at least 1).
    scale : float
        Typical magnitude of the points (> 0).
    seed : int
        Seed of the random generator.

    Notes
    -----
    Every sampled check (:func:`~opsplit.diagnostics.check_monotone`,
    :func:`~opsplit.diagnostics.check_lipschitz`,
    :func:`~opsplit.diagnostics.check_cocoercive`,
    :func:`~opsplit.diagnostics.check_averaged`, ...) takes ``options`` (default
    ``SearchOptions()``) and, as keyword arguments, any of these fields, which
    override those of ``options``: ``check_monotone(op, x, samples=16)`` is
    ``check_monotone(op, x, options=SearchOptions(samples=16))``; any other
    keyword is a ``TypeError``.

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> quick = ops.diagnostics.SearchOptions(samples=16, search_steps=5)
    >>> ops.diagnostics.check_monotone(ops.Gradient(np.tanh), np.zeros(3), options=quick).passed
    True
    """

    samples: int = 64
    search_steps: int = 40
    keep: int = 8
    scale: float = 1.0
    seed: int = 0

    def __post_init__(self):
        for name, least in (("samples", 1), ("search_steps", 0), ("keep", 1), ("seed", 0)):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < least:
                raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
        if not isinstance(self.scale, numbers.Real) or not self.scale > 0:
            raise ValueError(f"scale must be a real number > 0, got {self.scale!r}")

    def describe(self) -> str:
        """How the pairs were found, for a report."""
        return (
            f"{self.samples} sampled pairs, then {self.search_steps} search rounds "
            f"from the {self.keep} worst"
        )


_FIELDS = frozenset(f.name for f in fields(SearchOptions))


def search_options(options: SearchOptions | None = None, **overrides) -> SearchOptions:
    """``options`` (default ``SearchOptions()``) with the named fields replaced;
    a ``TypeError`` names any keyword that is not a field."""
    if options is None:
        options = SearchOptions()
    elif not isinstance(options, SearchOptions):
        raise TypeError(f"options must be a SearchOptions, got {type(options).__name__}")
    unknown = sorted(set(overrides) - _FIELDS)
    if unknown:
        raise TypeError(
            f"unexpected keyword argument {unknown[0]!r} (search options are {sorted(_FIELDS)})"
        )
    return replace(options, **overrides) if overrides else options


@dataclass(frozen=True)
class PairScore:
    """Per-pair values of a checked quantity (lower is worse), their
    magnitudes (for the rounding tolerance), both host arrays, and optionally
    a proposed new half-difference ``(x - y)/2`` per pair (a batch of
    vectors) that the score expects to be worse — e.g. a power-iteration step
    towards the most negative direction."""

    values: np.ndarray
    magnitudes: np.ndarray
    proposal: object = None


@dataclass(frozen=True)
class SearchOutcome:
    worst: float
    magnitude: float
    evaluations: int
    pair: tuple


def batched(fn, is_batched: bool):
    """``fn`` applied to a batch of vectors (leading axis): directly when it
    accepts batches, else row by row."""
    if is_batched:
        return fn

    def rows(x):
        n = x[0].shape[0] if is_tuple(x) else x.shape[0]
        outs = [fn(vmap(lambda a, i=i: a[i, ...], x)) for i in range(n)]
        if is_tuple(outs[0]):
            return tuple(_stack([o[k] for o in outs]) for k in range(len(outs[0])))
        return _stack(outs)

    return rows


def _concat(parts):
    return namespace(parts[0]).concat(parts, axis=0)


def _stack(parts):
    return namespace(parts[0]).stack(parts, axis=0)


def _concat_rows(batches):
    """Concatenate batches of vectors along the leading axis."""
    if len(batches) == 1:
        return batches[0]
    if is_tuple(batches[0]):
        return tuple(_concat([b[i] for b in batches]) for i in range(len(batches[0])))
    return _concat(batches)


def _row_scale(v, factors, like):
    """Multiply row ``i`` of a batch of vectors by the host scalar ``factors[i]``."""
    xp = namespace(like)
    f = xp.asarray(np.asarray(factors, dtype=np.float64), dtype=like.dtype, device=device(like))

    def one(a):
        return a * xp.reshape(f, (f.shape[0],) + (1,) * (a.ndim - 1))

    return vmap(one, v)


def search_pairs(score, shape, like, options: SearchOptions):
    r"""Minimize ``score(X, Y)`` over pairs of points; return the worst found.

    Pairs are sampled as :math:`X \sim \text{scale}\cdot\mathcal N(0, I)` and
    :math:`Y = X + t\,\text{scale}\sqrt n\,d` with a unit direction ``d`` and
    relative separations ``t`` log-uniform in :math:`[10\sqrt{\epsilon}, 2]`
    (local and global behaviour both).  Then the ``keep`` worst pairs are
    refined for ``steps`` rounds: centre and half-difference are perturbed
    (the separation stays within the same range), and a perturbation is
    kept when it lowers the score.

    Parameters
    ----------
    score : callable
        ``score(X, Y) -> PairScore`` for batches ``X``, ``Y`` (leading axis).
    shape : tuple
        Trailing shape of one point (block shapes for tuples).
    like : array
        Library, dtype and device.
    options : SearchOptions
        ``samples``, ``search_steps`` (the rounds), ``keep``, ``scale``, ``seed``.

    Returns
    -------
    SearchOutcome
        The smallest value found, the largest magnitude seen, the number of
        pairs evaluated, and the worst pair ``(x, y)``.
    """
    samples, keep, scale = options.samples, options.keep, options.scale
    rng = np.random.default_rng(options.seed)
    n = shape_size(shape)
    unit = scale * math.sqrt(n)
    lo, hi = 10 * math.sqrt(eps_of(like)), 2.0

    X = random_vector(shape, like, rng, batch=(samples,), scale=scale)
    D = random_vector(shape, like, rng, batch=(samples,))
    dn = np.sqrt(host(batch_dot(D, D, 1)))
    t = np.exp(rng.uniform(math.log(lo), math.log(hi), samples))
    Y = vmap(lambda a, b: a + b, X, _row_scale(D, t * unit / dn, like))
    first = score(X, Y)
    magnitude = float(np.max(first.magnitudes, initial=0.0))
    order = np.argsort(first.values)[: min(keep, samples)]
    X, Y = take(X, order), take(Y, order)
    proposal = None if first.proposal is None else take(first.proposal, order)
    best = first.values[order]
    evaluations = samples
    k = len(order)
    sigma = np.full(k, 0.3)
    tiny = np.finfo(np.float64).tiny

    def norms(v):
        return np.sqrt(host(batch_dot(v, v, 1)))

    for _ in range(options.search_steps):
        C = vmap(lambda a, b: 0.5 * (a + b), X, Y)
        H = vmap(lambda a, b: 0.5 * (a - b), X, Y)
        hn = norms(H)
        # Candidate 1: a random perturbation of centre, direction and separation.
        noise_c = random_vector(shape, like, rng, batch=(k,))
        noise_h = random_vector(shape, like, rng, batch=(k,))
        C2 = vmap(lambda a, b: a + b, C, _row_scale(noise_c, sigma * scale, like))
        H2 = vmap(lambda a, b: a + b, H, _row_scale(noise_h, sigma * hn / norms(noise_h), like))
        target = np.clip(hn * np.exp(sigma * rng.standard_normal(k)), 0.5 * lo * unit,
                         0.5 * hi * unit)
        H2 = _row_scale(H2, target / np.maximum(norms(H2), tiny), like)
        cands_c, cands_h = [C2], [H2]
        # Candidate 2: the score's own proposal (same centre and separation).
        if proposal is not None:
            cands_c.append(C)
            cands_h.append(_row_scale(proposal, hn / np.maximum(norms(proposal), tiny), like))
        Cc, Hc = _concat_rows(cands_c), _concat_rows(cands_h)
        trial = score(vmap(lambda a, b: a + b, Cc, Hc), vmap(lambda a, b: a - b, Cc, Hc))
        evaluations += k * len(cands_c)
        magnitude = max(magnitude, float(np.max(trial.magnitudes, initial=0.0)))
        vals = trial.values.reshape(len(cands_c), k)
        pick = np.argmin(vals, axis=0)
        chosen = vals[pick, np.arange(k)]
        rows = pick * k + np.arange(k)
        better = chosen < best
        newC, newH = take(Cc, rows), take(Hc, rows)
        X = put_rows(X, vmap(lambda a, b: a + b, newC, newH), better)
        Y = put_rows(Y, vmap(lambda a, b: a - b, newC, newH), better)
        if proposal is not None and trial.proposal is not None:
            proposal = put_rows(proposal, take(trial.proposal, rows), better)
        best = np.where(better, chosen, best)
        es_won = better & (pick == 0)
        sigma = np.clip(np.where(es_won, sigma * 1.5, sigma * 0.9), 1e-4, 2.0)

    i = int(np.argmin(best))
    return SearchOutcome(float(best[i]), magnitude, evaluations, (take(X, [i]), take(Y, [i])))
