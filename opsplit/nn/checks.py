r"""Gradient checks for the hand-derived monDEQ gradients.

:func:`gradcheck` takes the random linear loss :math:`\ell(p, x) = \langle c,
z^*(p, x)\rangle` and compares, for every parameter field and for the input,

* **central differences** along random unit directions ``d`` (float64):

  .. math::

      \text{fd} = \frac{\ell(p + \varepsilon d) - \ell(p - \varepsilon d)}{2\varepsilon},
      \qquad
      \text{rel\_error} = \frac{|\text{fd} - \langle\nabla\ell, d\rangle|}
                               {\max(|\text{fd}|, |\langle\nabla\ell, d\rangle|,
                                      \text{noise}/\varepsilon)} ,

  where :math:`\text{noise}/\varepsilon` is the resolution of the differences
  (``noise``: the loss's solver noise, see :func:`gradcheck`), so that a
  gradient that is zero along ``d`` (e.g. a tier whose states are
  insensitive to a field) is not judged by the ratio of two rounding errors;

* a **Taylor test**: the remainder
  :math:`R(\varepsilon) = |\ell(p + \varepsilon d) - \ell(p) - \varepsilon
  \langle\nabla\ell, d\rangle|` must fall like :math:`\varepsilon^2` (slope 2 in
  log–log) where it is above the solver's noise, while a wrong gradient
  leaves an :math:`O(\varepsilon)` remainder (slope 1).  Piecewise-linear
  activations (ReLU) give a remainder at noise level for small ``ε``, which
  passes as "linear to noise".

References
----------
P. E. Farrell, D. A. Ham, S. W. Funke and M. E. Rognes, "Automated
derivation of the adjoint of high-level transient finite element programs",
SIAM J. Sci. Comput. 35 (2013), Section 5 (the Taylor test).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from .._backend import device, namespace, to_numpy
from .._vectors import vmap
from .deq import MonDEQ

__all__ = ["gradcheck", "GradcheckReport", "FieldCheck", "taylor_verdict"]


class FieldCheck(NamedTuple):
    """The checks of one parameter field (or of the input ``"x"``).

    Attributes
    ----------
    name : str
        The checked parameter field (``"A"``; ``"A[1]"`` for entry 1 of a
        tuple field such as a multi-tier layer's), or ``"x"`` for the input.
    rel_error : float
        Largest central-difference relative error over the directions.
    finite_differences : numpy.ndarray
        The central-difference directional derivatives ``fd``, one per
        random direction.
    analytic : numpy.ndarray
        The hand-derived directional derivatives ``⟨∇ℓ, d⟩``, one per random
        direction (same order as ``finite_differences``).
    taylor_eps : numpy.ndarray
        The Taylor test's steps ``ε``, halving from the ``taylor_eps``
        argument of :func:`gradcheck`.
    taylor_remainders : numpy.ndarray
        The remainders ``R(ε)`` along the first direction, one per entry of
        ``taylor_eps``.
    taylor_slope : float
        Log–log slope of ``R`` over the smallest ``ε`` above noise; ``nan``
        when the remainder is at noise level (linear to noise).
    taylor_passed : bool
        Whether the Taylor test passed: a log–log slope of at least 1.8 above
        the noise, or a remainder at noise level (see :func:`taylor_verdict`).
    passed : bool
        ``rel_error <= rtol`` and ``taylor_passed``.
    """

    name: str
    rel_error: float
    finite_differences: np.ndarray
    analytic: np.ndarray
    taylor_eps: np.ndarray
    taylor_remainders: np.ndarray
    taylor_slope: float
    taylor_passed: bool
    passed: bool


@dataclass
class GradcheckReport:
    """What :func:`gradcheck` returns.

    Attributes
    ----------
    fields : dict of str to FieldCheck
        One entry per parameter field and ``"x"``.
    rtol : float
        The relative tolerance used.
    converged : bool
        Whether every forward solve and the backward solve converged.
    messages : list of str
        Why a solve did not converge, if any did not.
    """

    fields: dict
    rtol: float
    converged: bool = True
    messages: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.converged and all(f.passed for f in self.fields.values())

    @property
    def max_rel_error(self) -> float:
        return max(f.rel_error for f in self.fields.values())

    def __str__(self) -> str:
        lines = [f"{'field':>6} {'rel_error':>10} {'slope':>6}  passed"]
        for f in self.fields.values():
            slope = "linear" if math.isnan(f.taylor_slope) else f"{f.taylor_slope:.2f}"
            lines.append(f"{f.name:>6} {f.rel_error:10.2e} {slope:>6}  {f.passed}")
        lines.append(f"passed: {self.passed} (rtol {self.rtol:.0e})")
        lines.extend(self.messages)
        return "\n".join(lines)


def _as_float64(a):
    """``a`` (an array, a tuple of arrays or ``None``) in float64."""
    if a is None:
        return None

    def cast(v):
        xp = namespace(v)
        return xp.astype(v, xp.float64)

    return vmap(cast, a)


def _on_backend(host, like):
    xp = namespace(like)
    return xp.asarray(np.asarray(host, dtype=np.float64), dtype=xp.float64, device=device(like))


def _random_like(rng, like):
    """Standard normal values shaped like ``like`` (array or tuple), on its backend."""
    return vmap(lambda v: _on_backend(rng.standard_normal(tuple(v.shape)), v), like)


def _sum(value) -> float:
    """Host float of a 0-d array or the sum of a tuple of them."""
    parts = value if isinstance(value, tuple) else (value,)
    return float(sum(float(to_numpy(p)) for p in parts))


def _vdot(a, b) -> float:
    return _sum(vmap(lambda u, v: namespace(u).sum(u * v), a, b))


def _leaves(params):
    """``{label: (field, index)}`` for every array of a parameter ``NamedTuple``:
    ``index`` is ``None`` for an array field, the entry for a tuple field
    (label ``"A[1]"``); absent (``None``) fields are skipped."""
    out = {}
    for name, value in params._asdict().items():
        if isinstance(value, tuple):
            out.update({f"{name}[{i}]": (name, i) for i in range(len(value))})
        elif value is not None:
            out[name] = (name, None)
    return out


def _get(params, field_, index):
    value = getattr(params, field_)
    return value if index is None or value is None else value[index]


def _replaced(params, field_, index, new):
    if index is None:
        return params._replace(**{field_: new})
    entries = list(getattr(params, field_))
    entries[index] = new
    return params._replace(**{field_: tuple(entries)})


def taylor_verdict(eps, remainders, noise, min_slope=1.8):
    """Slope and verdict of a Taylor test.

    ``eps`` decreasing; returns ``(slope, passed)``.  Points whose remainder
    is at most ``noise`` carry no information.  When the smallest ``ε`` is at
    noise level the first-order model is exact to noise there (passed, slope
    ``nan``); otherwise the slope is fitted over the (up to three) smallest
    ``ε`` above noise and must be at least ``min_slope``.
    """
    eps = np.asarray(eps, dtype=np.float64)
    rem = np.asarray(remainders, dtype=np.float64)
    if not np.all(np.isfinite(rem)):
        return float("nan"), False
    if rem[-1] <= noise:
        return float("nan"), True
    above = np.flatnonzero(rem > noise)[-3:]
    if above.size < 2:
        return float("nan"), False
    slope = float(np.polyfit(np.log(eps[above]), np.log(rem[above]), 1)[0])
    return slope, slope >= min_slope


def gradcheck(
    deq: MonDEQ,
    params,
    x,
    *,
    seed: int = 0,
    n_directions: int = 3,
    eps: float = 1e-5,
    taylor_eps: float = 1e-3,
    n_taylor: int = 5,
    rtol: float = 1e-6,
    tol: float = 1e-13,
    maxiter: int = 100_000,
    noise: float | None = None,
    backward=None,
) -> GradcheckReport:
    r"""Check ``deq``'s hand-derived gradients against finite differences.

    Parameters
    ----------
    deq : MonDEQ
        The layer, activation and methods to check; its tolerances are
        replaced by ``tol``/``maxiter`` for every solve.
    params : parameters of ``deq.layer``
        Point of the check (converted to float64): a ``NamedTuple`` whose
        fields are arrays, tuples of arrays (one check per entry, named
        ``"A[1]"``) or ``None`` (not checked).
    x : array
        Input, shape ``(batch, ...)`` as the layer takes it (converted to
        float64).
    seed : int
        Seed of the loss weights ``c`` and of the directions.
    n_directions : int
        Random unit directions per field for the central differences.
    eps : float
        Central-difference step.
    taylor_eps : float
        Largest step of the Taylor test, whose steps are
        ``ε = taylor_eps·2⁻ᵏ``, ``k = 0 … n_taylor-1``.
    n_taylor : int
        Number of Taylor-test steps (at least 2, to measure a slope).
    rtol : float
        Largest accepted relative error.
    tol : float
        Residual tolerance of the forward and backward solves (≤ 1e-12 to
        make differences meaningful).
    maxiter : int
        Iteration limit of the forward and backward solves.
    noise : float, optional
        Absolute noise level of ``ℓ`` for the Taylor test; by default
        ``100·(tol + 1e-14)·Σ|c ⊙ z*|`` (summed over the tiers of a tuple state).
    backward : callable, optional
        ``backward(params, state, grad_z) -> (grads, grad_x)`` to check
        instead of ``deq.backward`` (e.g. ``deq.exact_backward``, or a
        deliberately broken one).

    Returns
    -------
    GradcheckReport

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> from opsplit import nn
    >>> layer = nn.MonDense(in_features=3, width=4, m=1.0)
    >>> params = layer.init_params(seed=0)
    >>> x = np.random.default_rng(0).standard_normal((2, 3))
    >>> deq = nn.MonDEQ(layer, method=ops.PeacemanRachford(1.0))
    >>> nn.gradcheck(deq, params, x, n_directions=1).passed
    True
    """
    if not isinstance(deq, MonDEQ):
        raise TypeError(f"deq must be a MonDEQ, got {type(deq).__name__}")
    for name, value in (("n_directions", n_directions), ("n_taylor", n_taylor)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if n_taylor < 2:
        raise ValueError("n_taylor must be >= 2 to measure a slope")
    for name, value in (("eps", eps), ("taylor_eps", taylor_eps), ("rtol", rtol), ("tol", tol)):
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value}")

    deq = deq.with_options(tol=tol, maxiter=maxiter, backward_tol=tol, backward_maxiter=maxiter)
    deq.layer.check_params(params)
    params = type(params)(**{k: _as_float64(v) for k, v in params._asdict().items()})
    x = _as_float64(x)
    rng = np.random.default_rng(seed)
    messages: list[str] = []

    z0, state = deq.forward(params, x)
    if not state.result.success:
        messages.append(f"forward: {state.result.message}")
    c = _random_like(rng, z0)
    loss0 = _vdot(c, z0)
    if backward is None:
        grads, grad_x, bw = deq.backward(params, state, c, return_result=True)
        if not bw.success:
            messages.append(f"backward: {bw.message}")
    else:
        grads, grad_x = backward(params, state, c)
    if noise is None:
        noise = 100.0 * (tol + 1e-14) * _sum(
            vmap(lambda u, v: namespace(u).sum(namespace(u).abs(u * v)), c, z0)
        )

    def loss(p, xx):
        # perturbing only x keeps the parameters' precomputed operators
        prepared = state.prepared if p is params else None
        z, st = deq.forward(p, xx, prepared=prepared, z0=z0)
        if not st.result.success:
            messages.append(f"perturbed forward: {st.result.message}")
        return _vdot(c, z)

    leaves = _leaves(params)
    targets = {
        label: (_get(params, *where), _get(grads, *where)) for label, where in leaves.items()
    }
    targets["x"] = (x, grad_x)

    def shifted(name, value, step, direction):
        moved = value + step * direction
        if name == "x":
            return params, moved
        return _replaced(params, *leaves[name], moved), x

    resolution = noise / eps
    taylor_steps = [float(taylor_eps) * 0.5**k for k in range(n_taylor)]
    checks = {}
    for name, (value, grad) in targets.items():
        if grad is None:
            raise ValueError(f"the backward pass returned no gradient for {name!r}")
        fds, ans = [], []
        directions = []
        for _ in range(n_directions):
            host = rng.standard_normal(tuple(value.shape))
            host /= max(np.linalg.norm(host), np.finfo(np.float64).tiny)
            d = _on_backend(host, value)
            directions.append(d)
            fd = loss(*shifted(name, value, eps, d)) - loss(*shifted(name, value, -eps, d))
            fds.append(fd / (2.0 * eps))
            ans.append(_vdot(grad, d))
        fds, ans = np.asarray(fds), np.asarray(ans)
        # below the differences' resolution (noise/eps) a derivative counts as zero
        scale = np.maximum(np.maximum(np.abs(fds), np.abs(ans)), resolution)
        errs = np.where(scale > 0, np.abs(fds - ans) / np.where(scale > 0, scale, 1.0), 0.0)
        rel_error = float(np.max(errs))

        d = directions[0]
        remainders = np.asarray(
            [abs(loss(*shifted(name, value, t, d)) - loss0 - t * ans[0]) for t in taylor_steps]
        )
        slope, taylor_ok = taylor_verdict(taylor_steps, remainders, noise)
        checks[name] = FieldCheck(
            name=name,
            rel_error=rel_error,
            finite_differences=fds,
            analytic=ans,
            taylor_eps=np.asarray(taylor_steps),
            taylor_remainders=remainders,
            taylor_slope=slope,
            taylor_passed=taylor_ok,
            passed=bool(rel_error <= rtol and taylor_ok),
        )

    return GradcheckReport(
        fields=checks, rtol=rtol, converged=not messages, messages=sorted(set(messages))
    )
