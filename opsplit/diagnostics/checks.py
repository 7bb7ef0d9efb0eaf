r"""Checks of the properties splitting methods rely on, for any user operator.

Each check returns a :class:`~opsplit.diagnostics.CheckReport` (what was
tested, the worst observed value, pass/fail) and raises
:class:`~opsplit.diagnostics.CheckFailed` instead when called with
``raise_on_fail=True``.

Linear and affine operators are checked exactly (:func:`margin`,
:func:`opnorm`): random pairs almost never expose a small negative
eigen-direction.  Nonlinear operators are checked on pairs of points:
sampled first, then the worst pairs are refined by a search
(:mod:`opsplit.diagnostics._search`), and the worst value found is
reported.  A sampled check can prove a violation, never the property.

The quantities, for a pair :math:`(x, y)` and :math:`\Delta = x - y`:

.. math::

    \text{monotone:}\ \frac{\langle A x - A y, \Delta\rangle}{\|\Delta\|^2} \ge m, \qquad
    \text{Lipschitz:}\ \frac{\|A x - A y\|}{\|\Delta\|} \le L, \qquad
    \text{cocoercive:}\ \frac{\langle A x - A y, \Delta\rangle}{\|A x - A y\|^2} \ge \beta,

    \theta\text{-averaged } T:\
    \frac{\|\Delta\|^2 - \|T x - T y\|^2
          - \tfrac{1-\theta}{\theta}\|\Delta - (T x - T y)\|^2}{\|\Delta\|^2} \ge 0 ,

(firmly nonexpansive is ``θ = 1/2``, nonexpansive ``θ = 1``).

References
----------
H. H. Bauschke and P. L. Combettes, *Convex Analysis and Monotone Operator
Theory in Hilbert Spaces*, 2nd ed., Springer 2017, §4.1 (averaged and firmly
nonexpansive maps), §20-23 (monotone operators and resolvents), §24.2
(Moreau decomposition).
"""

from __future__ import annotations

import math

import numpy as np

from .._vectors import is_block_shape, same_shape, shape_of, shape_size, sub, vmap
from ..operators._base import LinearOperator
from ..operators.monotone import (
    ForwardOperator,
    LinearMonotone,
    MonotoneOperator,
    ResolventOperator,
)
from ..operators.spectral import exact_cocoercivity
from ..prox._base import ProxFunction
from ._report import CheckReport, compare, finish
from ._search import PairScore, SearchOptions, _row_scale, batched, search_options, search_pairs
from ._vec import batch_dot, eps_of, host, like_of, random_vector
from .linear import margin, opnorm

__all__ = [
    "check_monotone",
    "check_lipschitz",
    "check_cocoercive",
    "check_averaged",
    "check_firmly_nonexpansive",
    "check_nonexpansive",
    "check_reflected",
    "check_moreau",
    "SearchOptions",
]

_TINY = np.finfo(np.float64).tiny


def _sq(a):
    return host(batch_dot(a, a, 1))


def _dot(a, b):
    return host(batch_dot(a, b, 1))


def _shape_of(x_like):
    if x_like is None:
        raise ValueError("x_like is required: an array shaped like one input of the operator")
    like_of(None, x_like)  # TypeError for non-arrays
    return shape_of(x_like)


def _rtol(like, rtol):
    return 10 * math.sqrt(eps_of(like)) if rtol is None else float(rtol)


def _forward_map(op, is_batched):
    """A batched evaluation of ``op`` (ForwardOperator, LinearOperator or callable)."""
    if isinstance(op, LinearOperator):
        return op.matvec
    if isinstance(op, ForwardOperator):
        return batched(op.evaluate, is_batched)
    if callable(op) and not isinstance(op, MonotoneOperator):
        return batched(op, is_batched)
    raise TypeError(
        f"op must be a ForwardOperator, a LinearOperator or a callable, got {type(op).__name__}"
    )


def _map_of(T, step, is_batched):
    """A batched map from a callable, a ResolventOperator (its resolvent) or a
    ProxFunction (its prox)."""
    if isinstance(T, ProxFunction):
        return batched(lambda x: T.prox(x, step), is_batched)
    if isinstance(T, ResolventOperator):
        return batched(T.resolvent(step), is_batched)
    if isinstance(T, LinearOperator):
        return T.matvec
    if callable(T):
        return batched(T, is_batched)
    raise TypeError(
        f"T must be a callable, a ProxFunction or a ResolventOperator, got {type(T).__name__}"
    )


def _descent(d, dF, ratio, lip, like):
    r"""A step of the (shifted) power iteration :math:`d \leftarrow d - \tau (J d - q d)`
    towards the most negative direction of the Rayleigh quotient, with the
    difference quotient standing in for the Jacobian product and
    :math:`\tau = 1/(\ell + |q|)`."""
    tau = 1.0 / np.maximum(lip + np.abs(ratio), _TINY)
    return vmap(
        lambda a, b, c: a - b + c,
        d,
        _row_scale(dF, tau, like),
        _row_scale(d, tau * ratio, like),
    )


def _sampled_report(name, quantity, outcome, required, tol, better, sampled_how):
    worst = outcome.worst if better == "higher" else -outcome.worst
    return compare(
        name, worst, required, tol, better, quantity, sampled_how, outcome.evaluations
    )


def _searched(score, x_like, options):
    """Search pairs shaped like ``x_like``; returns the outcome and the reference array."""
    like = like_of(None, x_like)
    return search_pairs(score, _shape_of(x_like), like, options), like


# -- monotonicity ---------------------------------------------------------------------


def check_monotone(
    op,
    x_like=None,
    *,
    strong: float = 0.0,
    rtol: float | None = None,
    step: float = 1.0,
    batched: bool = True,
    raise_on_fail: bool = False,
    options: SearchOptions | None = None,
    **search,
) -> CheckReport:
    r"""Check that ``op`` is monotone (``strong = 0``) or ``strong``-strongly monotone.

    - A :class:`~opsplit.LinearOperator`, or a
      :class:`~opsplit.LinearMonotone` ``x ↦ Lx + c``: the exact margin
      :math:`\lambda_{\min}(\tfrac12(L + L^{H}))` (see :func:`margin`).
    - A :class:`~opsplit.ForwardOperator` or a callable: the smallest
      :math:`\langle Ax - Ay, x - y\rangle / \|x - y\|^2` over sampled pairs,
      refined by a search from the worst pairs.
    - A :class:`~opsplit.ResolventOperator` that cannot be evaluated (e.g. a
      subdifferential): the same ratio on points of its graph,
      :math:`(J y,\ (y - J y)/\text{step})` with :math:`J = J_{\text{step}\,A}`.

    Parameters
    ----------
    op : LinearOperator, MonotoneOperator or callable
    x_like : array or tuple of arrays
        Shaped like one input (library, dtype and device too); optional for
        operators that hold an array.
    strong : float
        The required margin ``m`` (0 for plain monotonicity).
    rtol : float, optional
        Rounding allowance relative to the operator's size (default
        ``10·sqrt(eps)``).
    step : float
        Resolvent step for operators checked through their resolvent.
    batched : bool
        Whether ``op`` accepts leading batch axes (else it is applied row by row).
    raise_on_fail : bool
        Raise :class:`~opsplit.diagnostics.CheckFailed` on failure.
    options : SearchOptions, optional
        How pairs are sampled and searched (see :class:`SearchOptions`).
    **search
        Fields of :class:`SearchOptions` overriding those of ``options``.

    Returns
    -------
    CheckReport
        ``worst``: the smallest observed :math:`\langle Ax - Ay, x - y\rangle/\|x - y\|^2`
        (the exact margin for linear operators).

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> ops.diagnostics.check_monotone(ops.Dense(np.array([[1.0, 5.0], [-5.0, 0.1]]))).passed
    True
    >>> rep = ops.diagnostics.check_monotone(ops.Dense(np.array([[1.0, 3.0], [0.0, 1.0]])))
    >>> rep.passed, round(rep.worst, 6)
    (False, -0.5)
    """
    name = "strongly monotone" if strong > 0 else "monotone"
    quantity = "min <Ax - Ay, x - y>/|x - y|^2"
    linear = op.op if isinstance(op, LinearMonotone) else op
    if isinstance(linear, LinearOperator):
        m = margin(linear, x_like)
        size = opnorm(linear, x_like)
        tol = _rtol(like_of(linear, x_like), rtol) * max(float(size), _TINY) + m.error
        report = compare(name, m, strong, tol, "higher", quantity, "exact margin: " + m.method)
        return finish(report, raise_on_fail)

    opts = search_options(options, **search)
    shape = _shape_of(x_like)
    like = like_of(None, x_like)
    if isinstance(op, ResolventOperator) and not isinstance(op, ForwardOperator):
        J = _map_of(op, step, batched)

        def score(X, Y):
            JX, JY = J(X), J(Y)
            dJ = sub(JX, JY)
            dA = vmap(lambda a: a / step, sub(sub(X, JX), sub(Y, JY)))
            sq = np.maximum(_sq(dJ), _TINY)
            return PairScore(_dot(dA, dJ) / sq, np.sqrt(_sq(dA) / sq))

        how = "graph points of the resolvent: " + opts.describe()
    else:
        F = _forward_map(op, batched)

        def score(X, Y):
            d, dF = sub(X, Y), sub(F(X), F(Y))
            sq = np.maximum(_sq(d), _TINY)
            ratio, lip = _dot(dF, d) / sq, np.sqrt(_sq(dF) / sq)
            return PairScore(ratio, lip, _descent(d, dF, ratio, lip, like))

        how = opts.describe()
    outcome = search_pairs(score, shape, like, opts)
    tol = _rtol(like, rtol) * max(outcome.magnitude, _TINY)
    report = _sampled_report(name, quantity, outcome, strong, tol, "higher", how)
    return finish(report, raise_on_fail)


# -- Lipschitz and cocoercivity -------------------------------------------------------


def check_lipschitz(
    op,
    x_like=None,
    lipschitz: float | None = None,
    *,
    rtol: float | None = None,
    batched: bool = True,
    raise_on_fail: bool = False,
    options: SearchOptions | None = None,
    **search,
) -> CheckReport:
    r"""Check :math:`\|Ax - Ay\| \le L\,\|x - y\|`.

    For a linear (or affine :class:`~opsplit.LinearMonotone`) operator the
    exact norm :func:`opnorm` is compared with ``L``; otherwise the largest
    ratio over sampled and searched pairs (a lower bound of the best
    constant).

    Parameters
    ----------
    op : LinearOperator, ForwardOperator or callable
    x_like : array or tuple of arrays
        Shaped like one input.
    lipschitz : float, optional
        The claimed constant; defaults to ``op.lipschitz``.
    rtol : float, optional
        Rounding allowance relative to the operator's size (default
        ``10·sqrt(eps)``).
    batched : bool
        Whether the map accepts leading batch axes (else it is applied row by row).
    raise_on_fail : bool
        Raise :class:`~opsplit.diagnostics.CheckFailed` on failure.
    options : SearchOptions, optional
        How pairs are sampled and searched (see :class:`SearchOptions`).
    **search
        Fields of :class:`SearchOptions` overriding those of ``options``.

    Returns
    -------
    CheckReport
        ``worst``: the largest observed ratio (the exact norm for linear maps).

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> tanh = ops.Gradient(np.tanh, lipschitz=1.0)
    >>> ops.diagnostics.check_lipschitz(tanh, np.zeros(3)).passed
    True
    >>> ops.diagnostics.check_lipschitz(tanh, np.zeros(3), lipschitz=0.5).passed
    False
    """
    opts = search_options(options, **search)
    if lipschitz is None:
        lipschitz = getattr(op, "lipschitz", None)
        if lipschitz is None or callable(lipschitz):
            raise ValueError("lipschitz is required: op declares no Lipschitz constant")
    if not lipschitz >= 0:
        raise ValueError(f"lipschitz must be >= 0, got {lipschitz}")
    quantity = "max |Ax - Ay|/|x - y|"
    linear = op.op if isinstance(op, LinearMonotone) else op
    if isinstance(linear, LinearOperator):
        nrm = opnorm(linear, x_like)
        tol = _rtol(like_of(linear, x_like), rtol) * max(float(nrm), _TINY) + nrm.error
        how = "exact norm: " + nrm.method
        report = compare("Lipschitz", nrm, lipschitz, tol, "lower", quantity, how)
        return finish(report, raise_on_fail)
    F = _forward_map(op, batched)

    def score(X, Y):
        d, dF = sub(X, Y), sub(F(X), F(Y))
        ratio = np.sqrt(_sq(dF) / np.maximum(_sq(d), _TINY))
        # Proposal: a power-iteration step (when the map preserves the shape).
        return PairScore(-ratio, ratio, dF if same_shape(dF, d) else None)

    outcome, like = _searched(score, x_like, opts)
    tol = _rtol(like, rtol) * max(outcome.magnitude, _TINY)
    how = opts.describe()
    report = _sampled_report("Lipschitz", quantity, outcome, lipschitz, tol, "lower", how)
    return finish(report, raise_on_fail)


def check_cocoercive(
    op,
    x_like=None,
    beta: float | None = None,
    *,
    rtol: float | None = None,
    batched: bool = True,
    dense_limit: int = 512,
    raise_on_fail: bool = False,
    options: SearchOptions | None = None,
    **search,
) -> CheckReport:
    r"""Check that ``op`` is ``β``-cocoercive: :math:`\langle Ax - Ay, x - y\rangle
    \ge \beta\,\|Ax - Ay\|^2`.

    Forward–backward converges for steps below ``2β`` with a cocoercive
    forward operator.  A small linear operator is checked exactly (bisection
    on :math:`\lambda_{\min}(\tfrac12(L + L^H) - \beta L^H L)`), everything
    else on sampled and searched pairs.

    Parameters
    ----------
    op : LinearOperator, ForwardOperator or callable
    x_like : array
        Shaped like one input.
    beta : float, optional
        The claimed constant; defaults to ``op.cocoercivity``.
    dense_limit : int
        Linear operators with at most this many unknowns are checked exactly.
    rtol : float, optional
        Rounding allowance relative to the operator's size (default
        ``10·sqrt(eps)``).
    batched : bool
        Whether the map accepts leading batch axes (else it is applied row by row).
    raise_on_fail : bool
        Raise :class:`~opsplit.diagnostics.CheckFailed` on failure.
    options : SearchOptions, optional
        How pairs are sampled and searched (see :class:`SearchOptions`).
    **search
        Fields of :class:`SearchOptions` overriding those of ``options``.

    Returns
    -------
    CheckReport
        ``worst``: the smallest observed :math:`\langle \Delta A, \Delta x\rangle/\|\Delta A\|^2`.

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> grad = ops.Gradient(lambda x: 2.0 * x, lipschitz=2.0)     # 1/2-cocoercive
    >>> ops.diagnostics.check_cocoercive(grad, np.zeros(4)).passed
    True
    >>> ops.diagnostics.check_cocoercive(grad, np.zeros(4), beta=1.0).passed
    False
    """
    opts = search_options(options, **search)
    if beta is None:
        beta = getattr(op, "cocoercivity", None)
        if beta is None:
            raise ValueError("beta is required: op declares no cocoercivity constant")
    quantity = "min <Ax - Ay, x - y>/|Ax - Ay|^2"
    linear = op.op if isinstance(op, LinearMonotone) else op
    if (
        isinstance(linear, LinearOperator)
        and not is_block_shape(linear.in_shape)
        and shape_size(linear.in_shape) <= dense_limit
    ):
        ref = like_of(linear, x_like)
        value = exact_cocoercivity(linear, dense_limit)
        tol = _rtol(ref, rtol) * max(abs(value) if math.isfinite(value) else 1.0, 1.0)
        how = "exact: from the dense matrix's SVD"
        report = compare("cocoercive", value, beta, tol, "higher", quantity, how)
        return finish(report, raise_on_fail)
    F = _forward_map(op, batched)

    def score(X, Y):
        d, dF = sub(X, Y), sub(F(X), F(Y))
        sqF = _sq(dF)
        ratio = np.where(sqF > _TINY, _dot(dF, d) / np.maximum(sqF, _TINY), np.inf)
        return PairScore(ratio, np.sqrt(_sq(d) / np.maximum(sqF, _TINY)), dF)

    outcome, like = _searched(score, x_like, opts)
    finite = outcome.magnitude if math.isfinite(outcome.magnitude) else 1.0
    tol = _rtol(like, rtol) * max(min(finite, abs(beta) + 1.0), _TINY)
    how = opts.describe()
    report = _sampled_report("cocoercive", quantity, outcome, beta, tol, "higher", how)
    return finish(report, raise_on_fail)


# -- averaged maps, resolvents and proxes ---------------------------------------------


def check_averaged(
    T,
    x_like,
    theta: float = 0.5,
    *,
    step: float = 1.0,
    rtol: float | None = None,
    batched: bool = True,
    raise_on_fail: bool = False,
    name: str | None = None,
    options: SearchOptions | None = None,
    **search,
) -> CheckReport:
    r"""Check that the map ``T`` is ``θ``-averaged.

    ``T`` is ``θ``-averaged (:math:`0 < \theta \le 1`) when
    :math:`T = (1 - \theta) I + \theta N` with ``N`` nonexpansive, equivalently

    .. math::

        \|T x - T y\|^2 \le \|x - y\|^2
          - \frac{1 - \theta}{\theta}\,\|(I - T)x - (I - T)y\|^2 .

    ``θ = 1/2``: firmly nonexpansive (every resolvent and prox);
    ``θ = 1``: nonexpansive (every reflected resolvent).  The reported
    quantity is the slack of this inequality divided by
    :math:`\|x - y\|^2`, minimized over sampled and searched pairs.

    Parameters
    ----------
    T : callable, ProxFunction or ResolventOperator
        The map; for a ProxFunction its ``prox(·, step)``, for a
        ResolventOperator its ``resolvent(step)``.
    x_like : array or tuple of arrays
        Shaped like one input.
    theta : float
        The averagedness constant in ``(0, 1]``.
    step : float
        Step of the prox or resolvent.
    rtol : float, optional
        Rounding allowance relative to the operator's size (default
        ``10·sqrt(eps)``).
    batched : bool
        Whether the map accepts leading batch axes (else it is applied row by row).
    raise_on_fail : bool
        Raise :class:`~opsplit.diagnostics.CheckFailed` on failure.
    options : SearchOptions, optional
        How pairs are sampled and searched (see :class:`SearchOptions`).
    **search
        Fields of :class:`SearchOptions` overriding those of ``options``.
    name : str, optional
        Name used in the report.

    Returns
    -------
    CheckReport

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> ops.diagnostics.check_averaged(ops.prox.L1(0.3), np.zeros(5), 0.5).passed
    True
    >>> ops.diagnostics.check_averaged(lambda x: 1.1 * x, np.zeros(5), 1.0).passed
    False
    """
    opts = search_options(options, **search)
    if not 0 < theta <= 1:
        raise ValueError(f"theta must be in (0, 1], got {theta}")
    F = _map_of(T, step, batched)
    k = (1.0 - theta) / theta

    def score(X, Y):
        d, dT = sub(X, Y), sub(F(X), F(Y))
        sq = np.maximum(_sq(d), _TINY)
        slack = sq - _sq(dT) - k * _sq(sub(d, dT))
        return PairScore(slack / sq, np.ones_like(sq))

    outcome, like = _searched(score, x_like, opts)
    tol = _rtol(like, rtol)
    label = name or f"{theta:g}-averaged"
    quantity = "min slack of the averagedness inequality / |x - y|^2"
    how = opts.describe()
    report = _sampled_report(label, quantity, outcome, 0.0, tol, "higher", how)
    return finish(report, raise_on_fail)


def check_firmly_nonexpansive(T, x_like, **options) -> CheckReport:
    r"""Check :math:`\|Tx - Ty\|^2 \le \langle Tx - Ty, x - y\rangle` — what every
    resolvent :math:`J_{\alpha A}` of a monotone ``A`` and every prox satisfies.

    Same as :func:`check_averaged` with ``θ = 1/2``; ``options`` are passed on.

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> ops.diagnostics.check_firmly_nonexpansive(ops.prox.NonNegative(), np.zeros(4)).passed
    True
    >>> ops.diagnostics.check_firmly_nonexpansive(lambda x: 2.0 * x, np.zeros(4)).passed
    False
    """
    options.setdefault("name", "firmly nonexpansive")
    return check_averaged(T, x_like, 0.5, **options)


def check_nonexpansive(T, x_like, **options) -> CheckReport:
    r"""Check :math:`\|Tx - Ty\| \le \|x - y\|` (:func:`check_averaged` with ``θ = 1``)."""
    options.setdefault("name", "nonexpansive")
    return check_averaged(T, x_like, 1.0, **options)


def reflection(J):
    """The reflected map ``2J - I`` of a map ``J`` (arrays or tuples)."""
    return lambda x: vmap(lambda j, v: 2.0 * j - v, J(x), x)


def check_reflected(
    J, x_like, *, step: float = 1.0, factor: float = 1.0, batched: bool = True, **options
):
    r"""Check that the reflected resolvent :math:`R = 2J - I` is ``factor``-Lipschitz.

    With ``factor = 1`` (default) this is the nonexpansiveness of
    :math:`R_{\alpha A}` for any monotone ``A`` — the property that makes
    Peaceman–Rachford's :math:`R_{\alpha A} R_{\alpha B}` nonexpansive and
    Douglas–Rachford's :math:`\tfrac12(I + R_{\alpha A} R_{\alpha B})` firmly
    nonexpansive.  With ``A`` ``m``-strongly monotone and ``L``-Lipschitz,
    pass ``factor=pr_contraction(m, L, step)``: the reflection is then a
    contraction.

    Parameters
    ----------
    J : callable, ProxFunction or ResolventOperator
        The resolvent (or the operator or function whose resolvent/prox it is).
    x_like : array
    step : float
        The resolvent step ``α``.
    factor : float
        The claimed Lipschitz constant of ``2J - I``.
    **options
        Passed to :func:`check_lipschitz`.

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> from opsplit.diagnostics import check_reflected, pr_contraction
    >>> A = ops.LinearMonotone(ops.Dense(np.array([[2.0, 1.0], [-1.0, 2.0]])))
    >>> c = pr_contraction(2.0, np.sqrt(5.0), 0.5)
    >>> check_reflected(A, np.zeros(2), step=0.5, factor=c).passed
    True
    >>> check_reflected(A, np.zeros(2), step=0.5, factor=0.2).passed   # true factor 0.2425
    False
    """
    R = reflection(_map_of(J, step, batched))
    report = check_lipschitz(R, x_like, factor, **options)
    return CheckReport(**{**report.__dict__, "name": "reflected resolvent Lipschitz"})


def check_moreau(
    f,
    x_like,
    *,
    step: float = 1.0,
    conjugate=None,
    rtol: float | None = None,
    raise_on_fail: bool = False,
    options: SearchOptions | None = None,
    **search,
) -> CheckReport:
    r"""Check the Moreau identity of a prox and its conjugate's prox:

    .. math::

        x = \operatorname{prox}_{\gamma f}(x)
            + \gamma\, \operatorname{prox}_{f^*/\gamma}(x / \gamma),
        \qquad \gamma = \text{step}.

    Parameters
    ----------
    f : ProxFunction
    x_like : array
        Shaped like one input.
    step : float
        ``γ``.
    conjugate : ProxFunction, optional
        An independent implementation of :math:`f^*` (for example
        ``LInfBall(λ)`` for ``L1(λ)``); defaults to ``f.conjugate()``.
    rtol : float, optional
        The tolerance on the relative mismatch (default ``1000·eps``).
    raise_on_fail : bool
        Raise :class:`~opsplit.diagnostics.CheckFailed` on failure.
    options : SearchOptions, optional
        Its ``samples`` (random points, default 16), ``scale`` and ``seed``
        are used; no search.
    **search
        Fields of :class:`SearchOptions` overriding those of ``options``.

    Returns
    -------
    CheckReport
        ``worst``: the largest :math:`\|x - p - \gamma q\| / \max(\|x\|, 1)`.

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> from opsplit.prox.functions import L1, LInfBall
    >>> ops.diagnostics.check_moreau(L1(0.5), np.zeros(4), conjugate=LInfBall(0.5)).passed
    True
    >>> ops.diagnostics.check_moreau(L1(0.5), np.zeros(4), conjugate=LInfBall(0.4)).passed
    False
    """
    if not isinstance(f, ProxFunction):
        raise TypeError(f"f must be a ProxFunction, got {type(f).__name__}")
    g = f.conjugate() if conjugate is None else conjugate
    if not isinstance(g, ProxFunction):
        raise TypeError(f"conjugate must be a ProxFunction, got {type(g).__name__}")
    if not step > 0:
        raise ValueError(f"step must be > 0, got {step}")
    opts = search_options(SearchOptions(samples=16) if options is None else options, **search)
    samples = opts.samples
    like = like_of(None, x_like)
    rng = np.random.default_rng(opts.seed)
    X = random_vector(_shape_of(x_like), like, rng, batch=(samples,), scale=opts.scale)
    p = f.prox(X, step)
    q = g.prox(vmap(lambda a: a / step, X), 1.0 / step)
    r = vmap(lambda a, b, c: a - b - step * c, X, p, q)
    worst = float(np.max(np.sqrt(_sq(r)) / np.maximum(np.sqrt(_sq(X)), 1.0)))
    tol = 1000 * eps_of(like) if rtol is None else float(rtol)
    quantity = "max |x - prox_{gf}(x) - g prox_{f*/g}(x/g)| / max(|x|, 1)"
    how = f"{samples} random points"
    report = compare("Moreau identity", worst, 0.0, tol, "lower", quantity, how, samples)
    return finish(report, raise_on_fail)
