r"""Step-size rules for forward–backward and FISTA when ``L`` is unknown.

Two rules choose the step :math:`\alpha_k` of the forward–backward step
:math:`x^{+} = J_{\alpha_k B}(y - \alpha_k A y)` as the iteration goes:

``"backtracking"``
    Beck and Teboulle's backtracking (2009, §3): starting from the last
    accepted step, halve :math:`\alpha` until the test (BT)

    .. math::

        2\alpha\,\langle A x^{+} - A y,\; x^{+} - y\rangle \le \|x^{+} - y\|^2

    When ``A`` is the :class:`~opsplit.Subdifferential` of a smooth ``f``
    with a value and ``x`` is one unbatched array, the test is Beck and
    Teboulle's sufficient decrease itself,
    :math:`f(x^{+}) \le f(y) + \langle\nabla f(y), x^{+} - y\rangle +
    \|x^{+} - y\|^2/(2\alpha)`, which every :math:`\alpha \le 1/L` passes.
    Otherwise (BT) needs only evaluations of ``A``: when :math:`A = \nabla f` with
    ``f`` convex, :math:`f(x^{+}) - f(y) - \langle\nabla f(y), x^{+} - y\rangle
    \le \langle \nabla f(x^{+}) - \nabla f(y), x^{+} - y\rangle`, so (BT)
    implies Beck and Teboulle's sufficient decrease
    :math:`f(x^{+}) \le f(y) + \langle\nabla f(y), x^{+} - y\rangle +
    \|x^{+} - y\|^2/(2\alpha)` without a function value (which a batch
    would not give per sample).  An ``L``-Lipschitz gradient passes it for
    every :math:`\alpha \le 1/(2L)`, so the accepted step is at least
    :math:`\min(\text{step}, 1/(4L))`; the price of needing no function
    value is this factor 2 against the test with values (which batches
    cannot use: function values sum over the batch).  The step only
    shrinks, as the :math:`O(1/k^2)` bound of FISTA requires.

``"adaptive"``
    The adaptive proximal-gradient step of Latafat, Themelis, Stella and
    Patrinos (adaPGM, 2024), the proximal successor of Malitsky and
    Mishchenko's "adaptive gradient descent without descent" (2020): with
    :math:`\Delta x = x_k - x_{k-1}`, :math:`\Delta g = A x_k - A x_{k-1}`,
    :math:`\ell_k = \langle\Delta g, \Delta x\rangle/\|\Delta x\|^2` and
    :math:`L_k = \|\Delta g\|/\|\Delta x\|`,

    .. math::

        \alpha_{k+1} = \alpha_k \min\Bigl\{\sqrt{1 + \alpha_k/\alpha_{k-1}},\;
        \frac{1}{2\sqrt{[\alpha_k^2 L_k^2 - \alpha_k \ell_k]_+}}\Bigr\},

    no line search and no extra evaluation of ``A`` (the case of their
    adaPDM rule without a linear operator; the second term is ``+∞`` where
    the bracket vanishes).  The step may grow, by at most
    :math:`\sqrt{1 + \alpha_k/\alpha_{k-1}}` per iteration.

Both rules share one step over a batch (the smallest the samples allow):
resolvents take a Python ``float`` step, so each iteration moves the
step to the host once — the one host synchronization per iteration of
these rules (per *trial* for backtracking, at most 31 trials).  With a
fixed step nothing syncs.

References
----------
A. Beck and M. Teboulle, "A fast iterative shrinkage-thresholding
algorithm for linear inverse problems", SIAM J. Imaging Sci. 2 (2009).
Y. Malitsky and K. Mishchenko, "Adaptive gradient descent without
descent", ICML 2020.
P. Latafat, A. Themelis, L. Stella and P. Patrinos, "Adaptive proximal
algorithms for convex optimization under local Lipschitz continuity of the
gradient", Math. Program. (2024), arXiv:2301.04431, Algorithm 2.1 (adaPGM).
"""

from __future__ import annotations

from .._backend import namespace, to_numpy
from .._vectors import (
    axpy,
    batch_inner,
    batch_sq_norms,
    dtype_of,
    first_array,
    is_tuple,
    sub,
    vmap,
)
from ..prox.monotone import Subdifferential
from ._base import resolvent

__all__ = [
    "STEP_RULES",
    "MAX_HALVINGS",
    "check_step_rule",
    "smooth_value",
    "backtrack",
    "adaptive_step",
]

#: The step rules of forward–backward (FISTA takes the first two).
STEP_RULES = ("fixed", "backtracking", "adaptive")

#: At most this many halvings per backtracking search (31 trials).
MAX_HALVINGS = 30


def check_step_rule(rule, allowed=STEP_RULES) -> str:
    """``rule`` if it is one of ``allowed``; ``ValueError``/``TypeError`` naming ``step_rule``."""
    if not isinstance(rule, str):
        raise TypeError(f"step_rule must be a string among {allowed}, got {type(rule).__name__}")
    if rule not in allowed:
        raise ValueError(f"step_rule must be one of {allowed}, got {rule!r}")
    return rule


def _host_float(x) -> float:
    return float(to_numpy(x))


def smooth_value(problem):
    """``f.value`` when ``A`` is the gradient of a smooth function ``f`` with
    a value (a :class:`~opsplit.Subdifferential`), else ``None``."""
    A = problem.A
    return A.function.value if isinstance(A, Subdifferential) else None


def backtrack(problem, y, Ay, step: float, batch_ndim: int, value=None):
    r"""The forward–backward step from ``y`` with the largest
    :math:`\alpha = \text{step}/2^j` (:math:`j \le` :data:`MAX_HALVINGS`)
    that passes the test for every sample.

    The test is Beck and Teboulle's sufficient decrease with the values of
    ``f`` when ``value`` (``f.value``, see :func:`smooth_value`) is given
    and ``y`` is one unbatched array (values sum over a batch), else (BT).
    Each trial is one resolvent, one evaluation of ``A`` (or of ``f``) and
    one host transfer of a boolean (whether some sample failed).  A NaN in
    the test counts as a failure (a too long step that overflowed).  When
    :data:`MAX_HALVINGS` halvings find no step, the samples that still fail
    get a NaN iterate, which the driver reports (``NONFINITE``): a step of
    ``step/2³⁰`` would move ``x`` so little that the solve would read as
    converged.  The tests allow the rounding errors of their two
    sides (a few ulps of the terms they subtract), so that a converged
    iteration does not halve the step on rounding noise.

    Returns
    -------
    tuple
        ``(x⁺, w, A x⁺, α)`` with ``w = y - α A y`` the forward step;
        ``A x⁺`` is ``None`` when the value test did not need it.
    """
    xp = namespace(first_array(y))
    ulps = 8.0 * float(xp.finfo(dtype_of(y)).eps)
    norm_Ay = xp.sqrt(batch_sq_norms(Ay, batch_ndim))
    use_value = value is not None and batch_ndim == 0 and not is_tuple(y)
    fy = value(y) if use_value else None
    for trial in range(MAX_HALVINGS + 1):
        w = axpy(-step, Ay, y)
        x_new = resolvent(problem.B, step, "B")(w)
        d = sub(x_new, y)
        sq = batch_sq_norms(d, batch_ndim)
        if use_value:
            Ax_new = None
            fx = value(x_new)
            slack = ulps * (xp.abs(fx) + xp.abs(fy) + norm_Ay * xp.sqrt(sq))
            excess = fx - fy - batch_inner(Ay, d, batch_ndim) - slack
        else:
            Ax_new = problem.A.evaluate(x_new)
            slack = ulps * (xp.sqrt(batch_sq_norms(Ax_new, batch_ndim)) + norm_Ay) * xp.sqrt(sq)
            excess = batch_inner(sub(Ax_new, Ay), d, batch_ndim) - slack
        # NaN fails: "not (passes)" rather than "fails".
        failed = xp.logical_not(2.0 * step * excess <= sq)
        if not bool(to_numpy(xp.any(failed))):
            break
        if trial == MAX_HALVINGS:
            # No step passed: the samples that failed get NaN, which the driver
            # reports, rather than a step so short that x⁺ ≈ y reads as converged.
            x_new = vmap(lambda p, bad=failed: xp.where(_expand(bad, p), xp.nan, p), x_new)
            break
        step = step / 2.0
    return x_new, w, Ax_new, step


def _expand(mask, part):
    """A batch-shaped ``mask`` with singleton axes for ``part``'s core axes."""
    return namespace(mask).reshape(mask, (*mask.shape, *(1,) * (part.ndim - mask.ndim)))


def adaptive_step(x, x_prev, Ax, Ax_prev, step: float, step_prev: float, batch_ndim: int):
    r"""The adaPGM step :math:`\alpha_{k+1}` (see the module) from
    :math:`x_k, x_{k-1}, A x_k, A x_{k-1}, \alpha_k, \alpha_{k-1}`, the
    smallest over the batch, as a Python float (one host transfer).

    Where :math:`x_k = x_{k-1}` (a sample at its solution) only the growth
    bound applies."""
    xp = namespace(first_array(x))
    dx, dg = sub(x, x_prev), sub(Ax, Ax_prev)
    sq = batch_sq_norms(dx, batch_ndim)
    moved = sq > 0
    safe = xp.where(moved, sq, xp.ones_like(sq))
    lip_sq = batch_sq_norms(dg, batch_ndim) / safe  # L_k²
    curv = batch_inner(dg, dx, batch_ndim) / safe  # ℓ_k
    bracket = xp.where(moved, step * step * lip_sq - step * curv, xp.zeros_like(sq))
    growth = (1.0 + step / step_prev) ** 0.5
    # 1/(2·sqrt(bracket)) where the bracket is positive, else +inf (no bound).
    positive = bracket > 0
    limit = xp.where(positive, 0.5 / xp.sqrt(xp.where(positive, bracket, xp.ones_like(sq))),
                     xp.full_like(sq, xp.inf))
    factor = xp.min(xp.minimum(limit, xp.full_like(sq, growth)))
    return step * _host_float(factor)
