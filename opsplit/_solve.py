"""The driver: the one loop that decides when a splitting method stops."""

from __future__ import annotations

import functools
import math
import time

import numpy as np

from ._backend import check_floating, namespace, to_numpy
from ._result import SolveResult, Status
from ._validate import check_positive, check_positive_int, check_real
from ._vectors import batch_sq_norms, dtype_of, is_tuple
from .problems import Inclusion
from .splitting._base import SplittingMethod, State

__all__ = ["solve"]


def _validate_x0(x0):
    parts = x0 if is_tuple(x0) else (x0,)
    if not parts:
        raise ValueError("x0 must not be an empty tuple")
    for i, part in enumerate(parts):
        check_floating(part, "x0" if not is_tuple(x0) else f"x0[{i}]")
    try:
        namespace(*parts)
    except TypeError as exc:
        raise TypeError(f"x0 mixes array libraries: {exc}") from exc
    if len({p.dtype for p in parts}) > 1:
        raise TypeError(f"x0 blocks have different dtypes: {[p.dtype for p in parts]}")


def solve(
    problem,
    method,
    x0,
    *,
    tol: float = 1e-6,
    maxiter: int = 1000,
    relative: bool = True,
    check_every: int | str = 1,
    callback=None,
    state: State | None = None,
    prepared=None,
    divergence_ratio: float = 1e8,
    margin: float | None = None,
) -> SolveResult:
    r"""Solve ``problem`` with ``method`` starting from ``x0``.

    The loop is the same for every method: apply ``method.update`` until the
    fixed-point residual of every sample is at most ``tol``, ``maxiter`` is
    reached, an iterate stops being finite, the residual blows up, or the
    callback asks to stop.  The residual of iteration ``k`` is

    .. math::

        r_k = \frac{\|z_{k} - z_{k-1}\|}{\|z_{k}\| + \epsilon}
        \quad(\text{relative}),\qquad
        r_k = \|z_{k} - z_{k-1}\| \quad(\text{absolute}),

    per sample, with ``z`` the method's governing variable and ``ε`` the
    dtype's machine epsilon; ``history[k]`` is its maximum over the batch.

    Parameters
    ----------
    problem : Inclusion
        What to solve.
    method : SplittingMethod
        How: ``ForwardBackward``, ``PeacemanRachford``, ``DouglasRachford``.
    x0 : array or tuple of arrays
        Starting point (a warm start); its leading axes beyond the
        operators' core shape are batch axes.  Not modified.
    tol : float
        Stopping tolerance on the residual of every sample.
    maxiter : int
        Maximum number of iterations.
    relative : bool
        Relative (default) or absolute residual.
    check_every : int or "auto"
        Residuals stay on the device and are copied to the host every
        ``check_every`` iterations (one transfer each time); stopping is
        decided at those points.  The relative residuals recorded between
        two checks are scaled by ``‖z‖`` at the later check (exact at every
        check, and everywhere when ``check_every=1``).  ``"auto"`` checks at
        iterations 1 and 2, then where the rate measured between the last
        two checks predicts the tolerance is met (at most double the last
        gap, at most 64 iterations apart): few checks, and few iterations
        past convergence, on linearly converging runs.
    callback : callable, optional
        ``callback(iteration, residual, state)`` at each check; a true
        return value stops the solve with status ``CALLBACK``.
    state : State, optional
        A previous result's ``state`` to continue from (then ``x0`` is
        only used for validation).
    prepared : object, optional
        The output of ``method.prepare(problem)``, to reuse precomputation
        across solves.
    divergence_ratio : float
        Declare divergence when the absolute residual exceeds this multiple
        of the smallest one seen.
    margin : float, optional
        Strong-monotonicity margin for the certificates; defaults to what
        the problem's operators declare.

    Returns
    -------
    SolveResult

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> M = np.array([[2.0, 1.0], [-1.0, 2.0]])
    >>> F = ops.LinearMonotone(ops.Dense(M), np.array([-1.0, -1.0]))
    >>> G = ops.Subdifferential(ops.prox.Zero())
    >>> res = ops.solve(ops.Inclusion(F, G), ops.PeacemanRachford(step=1.0), np.zeros(2), tol=1e-12)
    >>> np.allclose(M @ res.x, [1.0, 1.0]), res.status
    (True, <Status.CONVERGED: 'converged'>)
    """
    if not isinstance(problem, Inclusion):
        raise TypeError(f"problem must be an Inclusion, got {type(problem).__name__}")
    if not isinstance(method, SplittingMethod):
        raise TypeError(f"method must be a SplittingMethod, got {type(method).__name__}")
    _validate_x0(x0)
    problem.validate(x0, "x0")
    tol = check_positive(tol, "tol")
    maxiter = check_positive_int(maxiter, "maxiter")
    if check_every != "auto":
        check_every = check_positive_int(check_every, "check_every")
    divergence_ratio = check_positive(divergence_ratio, "divergence_ratio")
    if margin is not None:
        margin = check_real(margin, "margin", minimum=0)
    if callback is not None and not callable(callback):
        raise TypeError("callback must be callable")

    first = x0[0] if is_tuple(x0) else x0
    xp = namespace(first)
    batch_ndim = problem.batch_ndim(x0)
    eps = float(xp.finfo(dtype_of(x0)).eps)

    start = time.perf_counter()
    if prepared is None:
        prepared = method.prepare(problem)
    if state is None:
        state = method.init(prepared, x0)

    history: list[float] = []
    times: list[float] = []
    # Per-sample squared norms stay on the device until a check copies them.
    pending_delta = []
    best_abs = math.inf
    status = Status.MAX_ITER
    per_sample = None
    iteration = 0
    next_check = 1 if check_every == "auto" else check_every
    last_checks: list[tuple[int, float]] = []
    while iteration < maxiter:
        state = method.update(prepared, state)
        iteration += 1
        pending_delta.append(batch_sq_norms(state.delta, batch_ndim))
        if iteration < next_check and iteration < maxiter:
            continue

        # ‖z‖ is taken once per check: exact for the stopping decision, and the
        # scale of the residuals recorded since the last check.
        sq_z = batch_sq_norms(state.z, batch_ndim) if relative else None
        abs_res, rel_res = _residuals_to_host(xp, pending_delta, sq_z, eps)
        pending_delta.clear()
        per_sample = rel_res[-1]
        batch_rel = rel_res.reshape(len(rel_res), -1).max(axis=1)
        batch_abs = abs_res.reshape(len(abs_res), -1).max(axis=1)
        now = time.perf_counter() - start
        if len(batch_rel) == 1:
            times.append(now)
        else:
            prev = times[-1] if times else 0.0
            times.extend(np.linspace(prev, now, len(batch_rel) + 1)[1:].tolist())
        history.extend(batch_rel.tolist())

        if not (np.isfinite(batch_rel).all() and np.isfinite(batch_abs).all()):
            status = Status.NONFINITE
            break
        best_abs = min(best_abs, float(batch_abs.min()))
        if batch_abs[-1] > divergence_ratio * max(best_abs, np.finfo(np.float64).tiny):
            status = Status.DIVERGED
            break
        if batch_rel[-1] <= tol:
            status = Status.CONVERGED
            break
        state = method.complete(prepared, state)
        if callback is not None and callback(iteration, float(batch_rel[-1]), state):
            status = Status.CALLBACK
            break
        if check_every == "auto":
            last_checks = [*last_checks[-1:], (iteration, float(batch_rel[-1]))]
            next_check = iteration + _predicted_gap(last_checks, tol)
        else:
            next_check = iteration + check_every

    state = method.complete(prepared, state)
    wall = time.perf_counter() - start
    history_arr = np.asarray(history, dtype=np.float64)
    residuals = per_sample if per_sample is not None else np.zeros(())
    result = SolveResult(
        x=method.solution(state),
        status=status,
        message=_message(status, iteration, history_arr, tol),
        iterations=iteration,
        history=history_arr,
        times=np.asarray(times, dtype=np.float64),
        residuals=residuals,
        wall_time=wall,
        state=state,
    )
    _certify(result, problem, method, margin, batch_ndim)
    return result


def _predicted_gap(checks, tol, longest=64):
    """Iterations until the next check: where the geometric rate between the
    last two checks reaches ``tol``, at most twice the last gap (and at most
    ``longest``), at least 1; twice the last gap when the residual did not
    decrease."""
    if len(checks) < 2:
        return 1
    (k0, r0), (k1, r1) = checks
    gap = k1 - k0
    if not (0 < r1 < r0):
        # Not contracting: stagnation at rounding level, or growth that the
        # divergence test will catch; back off rather than check every step.
        return min(2 * gap, longest)
    per_iteration = math.log(r1 / r0) / gap
    needed = math.ceil(math.log(tol / r1) / per_iteration) if r1 > tol else 1
    return max(1, min(needed, 2 * gap, longest))


def _residuals_to_host(xp, sq_delta, sq_z, eps):
    """Copy the pending per-sample squared norms (and ``‖z‖²``) to the host in
    one transfer; return the absolute and relative residuals, shape
    (iterations, *batch)."""
    parts = sq_delta if sq_z is None else [*sq_delta, sq_z]
    host = np.sqrt(to_numpy(xp.stack(parts)).astype(np.float64))
    if sq_z is None:
        return host, host
    abs_res = host[:-1]
    return abs_res, abs_res / (host[-1] + eps)


def _message(status, iteration, history, tol):
    last = history[-1] if history.size else float("nan")
    return {
        Status.CONVERGED: f"converged in {iteration} iterations: "
        f"residual {last:.3e} <= tol {tol:.1e}",
        Status.MAX_ITER: f"did not converge: residual {last:.3e} > tol {tol:.1e} "
        f"after {iteration} iterations",
        Status.NONFINITE: f"iterate became non-finite (NaN or Inf) at iteration {iteration}",
        Status.DIVERGED: f"diverged: residual grew to {last:.3e} by iteration {iteration}; "
        "the step size may be above the method's safe range",
        Status.CALLBACK: f"stopped by the callback at iteration {iteration} (residual {last:.3e})",
    }[status]


def _certify(result, problem, method, margin, batch_ndim):
    """Attach uniqueness and a-posteriori error certificates when constants allow.

    ``margin`` (of ``A + B``) is the user's, else the problem's declared one;
    the error bound is the smallest of the method's ``error_factor``·‖delta‖
    (Lipschitz constant and own strong monotonicity of ``A``) and the bounds
    from computed inclusion residuals (derivations in
    :mod:`opsplit.diagnostics.certificates`).
    """
    from .diagnostics.certificates import uniqueness_certificate

    if margin is not None:
        m, source = float(margin), "supplied to solve"
    elif problem.margin is not None:
        m, source = float(problem.margin), "supplied with the problem"
    else:
        m, source = problem.strong_monotonicity(), "declared by the operators"
    result.margin = m
    result.unique, result.uniqueness = uniqueness_certificate(m, source)
    if m is None or not m > 0 or result.state is None or result.state.delta is None:
        return
    result._error_bound_fn = functools.partial(
        _error_bound, problem, method, result.state, m, batch_ndim
    )


def _error_bound(problem, method, state, m, batch_ndim):
    """The smallest available bound on ‖x - x*‖ per sample, or ``None``."""
    from .diagnostics.certificates import inclusion_bound
    from .operators.monotone import ForwardOperator

    bounds = []
    lip = problem.A.lipschitz if isinstance(problem.A, ForwardOperator) else None
    factor = method.error_factor(m, lip, problem.A.strong_monotonicity or 0.0)
    if factor is not None:
        xp = namespace(state.delta)
        step_norm = to_numpy(xp.sqrt(batch_sq_norms(state.delta, batch_ndim)))
        bounds.append(factor * step_norm.astype(np.float64))
    computed = inclusion_bound(problem, method, state, m, batch_ndim)
    if computed is not None:
        bounds.append(computed)
    if not bounds:
        return None
    bound = np.minimum.reduce(bounds) if len(bounds) > 1 else bounds[0]
    return np.where(np.isfinite(bound), bound, np.inf)
