"""The driver: the one loop that decides when a splitting method stops."""

from __future__ import annotations

import functools
import math
import time

import numpy as np

from ._backend import check_floating, namespace, to_numpy
from ._certify import certify, error_bound, operator_margin
from ._result import SolveResult, Status
from ._validate import check_positive, check_positive_int, check_real
from ._vectors import batch_sq_norms, dtype_of, first_array, is_tuple, sub
from .operators.spectral import operator_lipschitz
from .problems import Inclusion, Problem
from .splitting import SplittingMethod, State

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
    record: str = "every",
    callback=None,
    state: State | None = None,
    prepared=None,
    divergence_ratio: float = 1e8,
    margin: float | None = None,
    verify=None,
) -> SolveResult:
    r"""Solve ``problem`` with ``method`` starting from ``x0``.

    The loop is the same for every method: apply ``method.update`` until the
    fixed-point residual of every sample is at most ``tol``, ``maxiter`` is
    reached, an iterate stops being finite, the residual blows up, or the
    callback asks to stop.  Whatever the reason, a non-finite solution or
    operator output in the last step (one a projection mapped back to finite
    iterates) makes the status ``NONFINITE``.  The residual of iteration
    ``k`` is

    .. math::

        r_k = \frac{\|z_{k} - z_{k-1}\|}{\|z_{k}\| + \epsilon}
        \quad(\text{relative}),\qquad
        r_k = \|z_{k} - z_{k-1}\| \quad(\text{absolute}),

    per sample, with ``z`` the method's governing variable and ``ε`` the
    dtype's machine epsilon; ``history`` holds its maximum over the batch
    and ``history_abs`` that of the absolute residual (kept beside the
    relative one: a diverging run shows in it), at the iterations
    ``history_iterations`` (every iteration, or only the checked ones with
    ``record="checks"``).

    Where the governing variable may oscillate while the solution converges
    (Peaceman–Rachford when no positive margin is known), the solve also
    stops when the solution's own residual
    :math:`\|x - J_{\alpha B}(x - \alpha A x)\|` (relative like
    :math:`r_k`), evaluated every 16 iterations, is at most ``tol``.

    Parameters
    ----------
    problem : Problem
        What to solve: an :class:`~opsplit.Inclusion`, a
        :class:`~opsplit.Composite`, a :class:`~opsplit.Constrained`, a
        :class:`~opsplit.FixedPoint`, or a distributed
        :class:`~opsplit.distributed.Consensus`; the method must solve its type.
    method : SplittingMethod
        How: any method of :mod:`opsplit.splitting` (``ForwardBackward``,
        ``FISTA``, ``PeacemanRachford``, ``DouglasRachford``, ``DavisYin``,
        ``Tseng``, ``ChambollePock``, ``CondatVu``, ``ADMM``,
        ``KrasnoselskiiMann``), or a wrapper around one (``Anderson``,
        ``WorkingSet``).
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
    record : {"every", "checks"}
        Which residuals to compute: at every iteration (``"every"``, the
        full history for rate studies and plots), or only at the checks and
        the last iteration (``"checks"``: between checks the iteration does
        no work beyond the method's own, since :math:`z_k - z_{k-1}` is
        formed from the previous ``z``, kept by reference, only when a check
        needs it).  Convergence, non-finite values and the callback are
        decided on the same residuals, so a converging solve ends with the
        same solution, iteration count and status; divergence is judged
        against the smallest residual *recorded*, so it may be declared at a
        later check.  ``history`` then holds the residuals of the checked
        iterations.
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
        Strong-monotonicity margin for the certificates; defaults to the
        exact margin of affine operators whose structure gives it, and to
        what the other operators declare.
    verify : callable, optional
        ``verify(problem, result) -> Certificate``, run after the solve to
        check declared constants, e.g. :func:`opsplit.diagnostics.verify`;
        its certificate replaces the believed one.

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
    >>> res.unique, res.verified       # margin 2, computed from the dense matrix
    (True, True)
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a Problem (e.g. ops.Inclusion), got "
                        f"{type(problem).__name__}")
    if not isinstance(method, SplittingMethod):
        raise TypeError(f"method must be a SplittingMethod, got {type(method).__name__}")
    method.check_problem(problem)
    _validate_x0(x0)
    problem.validate(x0, "x0")
    x0 = problem.lift(x0)
    tol = check_positive(tol, "tol")
    maxiter = check_positive_int(maxiter, "maxiter")
    if check_every != "auto":
        check_every = check_positive_int(check_every, "check_every")
    if record not in ("every", "checks"):
        raise ValueError(f"record must be 'every' or 'checks', got {record!r}")
    divergence_ratio = check_positive(divergence_ratio, "divergence_ratio")
    if margin is not None:
        margin = check_real(margin, "margin", minimum=0)
    if callback is not None and not callable(callback):
        raise TypeError("callback must be callable")
    if verify is not None and not callable(verify):
        raise TypeError("verify must be callable, e.g. ops.diagnostics.verify")

    xp = namespace(first_array(x0))
    batch_ndim = problem.batch_ndim(x0)
    eps = float(xp.finfo(dtype_of(x0)).eps)
    known_margin = margin if margin is not None else problem.strong_monotonicity()
    # Methods whose governing variable may oscillate while x converges (Peaceman–
    # Rachford without strong monotonicity) also stop on the solution's own
    # residual, computed every _SOLUTION_CHECK_GAP iterations at most.
    solution_checks = method.needs_solution_residual(known_margin)

    start = time.perf_counter()
    if prepared is None:
        prepared = method.prepare(problem)
    if state is None:
        state = method.init(prepared, x0)

    history: list[float] = []
    history_abs: list[float] = []
    recorded: list[int] = []  # the iteration of each history entry
    times: list[float] = []
    # Per-sample squared norms stay on the device until a check copies them.
    pending_delta = []
    every = record == "every"
    best_abs, best_at = math.inf, 0
    status = Status.MAX_ITER
    per_sample = None
    iteration = 0
    detail = ""
    next_check = 1 if check_every == "auto" else check_every
    next_solution_check = 1
    last_checks: list[tuple[int, float]] = []
    while iteration < maxiter:
        previous = state.z  # a reference: z_k - z_{k-1} is formed only when needed
        state = method.update(prepared, state)
        iteration += 1
        at_check = iteration >= next_check or iteration >= maxiter
        if every or at_check:
            delta = state.delta
            if delta is None:  # a method that forms z_k - z_{k-1} only for the residual
                delta = sub(state.z, previous)
            pending_delta.append(batch_sq_norms(delta, batch_ndim))
        if not at_check:
            continue
        if state.delta is None:  # the final state carries it (certificates, bounds)
            state = state._replace(delta=delta)

        # ‖z‖ is taken once per check: exact for the stopping decision, and the
        # scale of the residuals recorded since the last check.
        sq_z = batch_sq_norms(state.z, batch_ndim) if relative else None
        abs_res, rel_res = _residuals_to_host(xp, pending_delta, sq_z, eps)
        recorded.extend(range(iteration - len(pending_delta) + 1, iteration + 1))
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
        history_abs.extend(batch_abs.tolist())

        if not (np.isfinite(batch_rel).all() and np.isfinite(batch_abs).all()):
            status = Status.NONFINITE
            break
        k = int(np.argmin(batch_abs))
        if batch_abs[k] < best_abs:
            best_abs, best_at = float(batch_abs[k]), recorded[len(recorded) - len(batch_abs) + k]
        if batch_abs[-1] > divergence_ratio * max(best_abs, np.finfo(np.float64).tiny):
            status = Status.DIVERGED
            growth = batch_abs[-1] / max(best_abs, np.finfo(np.float64).tiny)
            detail = (f"absolute residual {batch_abs[-1]:.3g} is {growth:.3g} × the smallest "
                      f"seen, {best_abs:.3g} at iteration {best_at}")
            break
        if batch_rel[-1] <= tol:
            status = Status.CONVERGED
            break
        state = method.complete(prepared, state)
        if solution_checks and iteration >= next_solution_check:
            next_solution_check = iteration + _SOLUTION_CHECK_GAP
            own = _solution_residual(xp, method, prepared, state, batch_ndim, relative, eps)
            if own is not None and own.max() <= tol:
                status, per_sample = Status.CONVERGED, own
                detail = (f"converged in {iteration} iterations: the solution's own residual "
                          f"‖x - J_αB(x - αA x)‖ {own.max():.3e} <= tol {tol:.1e}, while "
                          f"{type(method).__name__}'s governing variable still moves "
                          f"(residual {batch_rel[-1]:.3e}; without strong monotonicity it "
                          "need not converge)")
                break
        if callback is not None and callback(iteration, float(batch_rel[-1]), state):
            status = Status.CALLBACK
            break
        if check_every == "auto":
            last_checks = [*last_checks[-1:], (iteration, float(batch_rel[-1]))]
            next_check = iteration + _predicted_gap(last_checks, tol)
        else:
            next_check = iteration + check_every

    state = method.complete(prepared, state)
    # Every stop passes here: a projection may have mapped an infinite operator
    # output (kept in state.w) back to finite iterates, which must not converge.
    if status is not Status.NONFINITE:
        if state.w is not None and not _all_finite(xp, state.w):
            status, detail = Status.NONFINITE, (
                "an operator returned NaN or Inf inside the step (found when the solve "
                f"stopped at iteration {iteration}; the iterates stayed finite)")
        elif not _all_finite(xp, state.x):
            status, detail = Status.NONFINITE, (
                f"the returned solution is non-finite (NaN or Inf) at iteration {iteration}")
    wall = time.perf_counter() - start
    history_arr = np.asarray(history, dtype=np.float64)
    residuals = per_sample if per_sample is not None else np.zeros(())
    message = _message(status, iteration, history_arr, tol, detail,
                       _hint(status, problem, method, known_margin))
    report = problem.report()
    result = SolveResult(
        x=problem.result(method.solution(state)),
        status=status,
        message=f"{message}; {report}" if report else message,
        iterations=iteration,
        history=history_arr,
        history_abs=np.asarray(history_abs, dtype=np.float64),
        history_iterations=np.asarray(recorded, dtype=np.int64),
        times=np.asarray(times, dtype=np.float64),
        residuals=residuals,
        wall_time=wall,
        state=state,
    )
    result._certify_fn = functools.partial(certify, problem, margin)
    if verify is not None:
        result.certificate = verify(problem, result)
    result._error_bound_fn = functools.partial(error_bound, problem, method, state,
                                               batch_ndim=batch_ndim)
    return result


#: Iterations between two evaluations of the solution's own residual (when needed).
_SOLUTION_CHECK_GAP = 16


def _all_finite(xp, x) -> bool:
    """One reduction and one transfer per block, at the end of a solve."""
    return all(bool(to_numpy(xp.all(xp.isfinite(p)))) for p in (x if is_tuple(x) else (x,)))


def _solution_residual(xp, method, prepared, state, batch_ndim, relative, eps):
    """Per-sample (relative) norm of ``method.solution_residual``, on the host."""
    r = method.solution_residual(prepared, state)
    if r is None:
        return None
    sq = [batch_sq_norms(r, batch_ndim)]
    if relative:
        sq.append(batch_sq_norms(state.x, batch_ndim))
    host = np.sqrt(to_numpy(xp.stack(sq)).astype(np.float64))
    return host[0] / (host[1] + eps) if relative else host[0]


def _hint(status, problem, method, margin):
    """What the user should know about a run that failed."""
    if status is Status.MAX_ITER:
        return method.stall_hint(margin)
    if status is not Status.DIVERGED:
        return ""
    for role, op in zip("ABC", problem.operators):
        m, how = operator_margin(op)
        if how == "computed" and m < 0:
            return (f"{role} is not monotone (margin {m:.4g}); splitting methods need "
                    "maximally monotone operators")
    if not isinstance(problem, Inclusion):
        return method.divergence_hint(problem, None, None)
    m_A, _ = operator_margin(problem.A)
    return method.divergence_hint(problem, m_A, operator_lipschitz(problem.A))


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


def _message(status, iteration, history, tol, detail, hint):
    last = history[-1] if history.size else float("nan")
    text = {
        Status.CONVERGED: detail
        or f"converged in {iteration} iterations: residual {last:.3e} <= tol {tol:.1e}",
        Status.MAX_ITER: f"did not converge: residual {last:.3e} > tol {tol:.1e} "
        f"after {iteration} iterations",
        Status.NONFINITE: detail
        or f"iterate became non-finite (NaN or Inf) at iteration {iteration}",
        Status.DIVERGED: f"diverged at iteration {iteration}: {detail}",
        Status.CALLBACK: f"stopped by the callback at iteration {iteration} (residual {last:.3e})",
    }[status]
    return f"{text}; {hint}" if hint else text
