"""Sampling pairs of points, then searching from the worst ones.

Random pairs alone rarely expose a property that fails only along a few
directions or in a small region; the search below refines the worst pairs
by a (1+1) evolution strategy (accept a random perturbation when it lowers
the score; grow the step on success, shrink it on failure — the 1/5th rule),
all pairs advancing together as one batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from array_api_compat import device

from .._backend import namespace
from .._vectors import is_tuple, vmap
from ._vec import batch_dot, eps_of, host, put_rows, random_vector, take, vector_size

__all__ = ["PairScore", "search_pairs", "batched"]


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


def search_pairs(score, shape, like, *, samples=64, steps=40, keep=8, scale=1.0, seed=0):
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

    Returns
    -------
    SearchOutcome
        The smallest value found, the largest magnitude seen, the number of
        pairs evaluated, and the worst pair ``(x, y)``.
    """
    rng = np.random.default_rng(seed)
    n = vector_size(shape)
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

    for _ in range(steps):
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
