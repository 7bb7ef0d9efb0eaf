r"""A library of proximable functions: norms, quadratics, indicators of sets.

Every function acts on arrays of any library (NumPy, CuPy, array-API) and
keeps the dtype and device of its input. ``value`` returns a 0-d array of the
input's library (``+inf`` outside the domain) without a host transfer.

Functions that are not separable act on the **last axis** (``L2``,
``L2Ball``, ``Simplex``): leading axes are a batch and the function is the
sum over the batch, so ``prox`` treats every row independently.

References
----------
N. Parikh and S. Boyd, "Proximal Algorithms", Foundations and Trends in
Optimization 1(3), 2014, §6. A. Beck, "First-Order Methods in Optimization",
SIAM, 2017, chapters 6-7.
"""

from __future__ import annotations

from .._backend import check_floating, device, namespace, same_library
from .._validate import check_positive, check_real
from ._base import (
    ProxFunction,
    check_broadcasts,
    check_last_axis,
    check_real_or_array,
    holds,
    like_input,
    membership_tolerance,
    restrict,
    zero_scalar,
)

__all__ = [
    "Zero",
    "NonNegative",
    "Box",
    "ZeroOnMask",
    "L1",
    "L2",
    "SquaredL2",
    "ElasticNet",
    "Huber",
    "L2Ball",
    "LInfBall",
    "L1Ball",
    "Simplex",
    "soft_threshold",
]


def soft_threshold(x, threshold):
    r"""Entrywise soft thresholding :math:`\operatorname{sign}(x)\max(|x| - t, 0)`,
    computed as ``x - clip(x, -t, t)``; ``threshold`` is a float or an array
    ``≥ 0`` that broadcasts against ``x``.

    Examples
    --------
    >>> import numpy as np
    >>> soft_threshold(np.array([-2.0, 0.5, 3.0]), 1.0)
    array([-1.,  0.,  2.])
    """
    xp = namespace(x)
    return x - xp.minimum(xp.maximum(x, -threshold), threshold)


def _row_norms(x, ord=2):
    """``ord``-norms over the last axis, kept as a length-1 axis."""
    check_last_axis(x)
    return namespace(x).linalg.vector_norm(x, axis=-1, keepdims=True, ord=ord)


def _simplex_threshold(u, radius):
    r"""The threshold ``θ`` (kept as a length-1 last axis) with
    ``Σ max(u - θ, 0) = radius`` over every row of ``u``, from the rows sorted
    in decreasing order and their cumulative sums (Held, Wolfe & Crowder,
    1974; Duchi et al., ICML 2008):

    .. math::

        \theta = \max_k \frac{\text{css}_k - r}{k}

    (the maximum is attained at the last ``k`` with ``u_k > (css_k - r)/k``,
    since the ratios increase exactly while that condition holds).
    """
    xp = namespace(u)
    # stable=False: only the sorted values matter, and a stable sort is several
    # times slower on NumPy
    css = xp.cumulative_sum(xp.sort(u, axis=-1, descending=True, stable=False), axis=-1)
    k = xp.arange(1, u.shape[-1] + 1, dtype=u.dtype, device=device(u))
    return xp.max((css - radius) / k, axis=-1, keepdims=True)


class Zero(ProxFunction):
    """``f = 0``; its prox is the identity.

    Examples
    --------
    >>> import numpy as np
    >>> Zero().prox(np.array([1.0, -2.0]), 3.0)
    array([ 1., -2.])
    """

    separable = True
    smooth = True
    lipschitz = 0.0

    def value(self, x):
        return zero_scalar(x)

    def gradient(self, x):
        return namespace(x).zeros_like(x)

    def prox(self, x, step=1.0):
        check_positive(step, "step")
        return x


class NonNegative(ProxFunction):
    """Indicator of the nonnegative orthant ``x ≥ 0``; its prox is ReLU.

    Examples
    --------
    >>> import numpy as np
    >>> NonNegative().prox(np.array([-1.0, 2.0]))
    array([0., 2.])
    """

    separable = True
    indicator = True

    def value(self, x):
        return restrict(zero_scalar(x), x >= 0)

    def prox(self, x, step=1.0):
        check_positive(step, "step")
        return namespace(x).maximum(x, 0.0)

    def reflect(self, x, step=1.0):
        """``2·max(x, 0) - x = |x|``: one pass."""
        check_positive(step, "step")
        return namespace(x).abs(x)


class Box(ProxFunction):
    r"""Indicator of the box ``low ≤ x ≤ high`` (entrywise); its prox is clipping.

    Parameters
    ----------
    low : float or array
        Lower bound; ``-inf`` leaves the side open. An array broadcasts
        against the trailing axes of ``x`` (shape ``(n,)`` for ``x`` of shape
        ``(..., n)``) and must come from ``x``'s library and device; it is
        used in ``x``'s dtype.
    high : float or array
        Upper bound, as ``low``, with ``low <= high`` everywhere.

    Examples
    --------
    >>> import numpy as np
    >>> Box(-1.0, 1.0).prox(np.array([-3.0, 0.5, 2.0]))
    array([-1. ,  0.5,  1. ])
    >>> Box(np.array([0.0, -1.0]), 2.0).prox(np.array([[-3.0, -3.0], [3.0, 1.0]]))
    array([[ 0., -1.],
           [ 2.,  1.]])
    """

    separable = True
    indicator = True

    def __init__(self, low=-1.0, high=1.0):
        self.low = check_real_or_array(low, "low", finite=False)
        self.high = check_real_or_array(high, "high", finite=False)
        if not isinstance(self.low, float) and not isinstance(self.high, float):
            same_library(self.low, self.high, "low", "high")
            if not _broadcast_together(self.low.shape, self.high.shape):
                raise ValueError(
                    "low and high must broadcast together, got shapes "
                    f"{tuple(self.low.shape)} and {tuple(self.high.shape)}"
                )
        if not holds(self.low <= self.high):
            got = (
                f"low={self.low}, high={self.high}"
                if isinstance(self.low, float) and isinstance(self.high, float)
                else "low > high at some entries"
            )
            raise ValueError(f"low must be <= high everywhere, got {got}")
        if holds(self.low == float("inf"), any) or holds(self.high == -float("inf"), any):
            raise ValueError("low must be < +inf and high must be > -inf (empty box)")

    def _bounds(self, x):
        """``(low, high)`` ready to combine with ``x``: floats as they are,
        arrays checked against ``x`` and cast to its dtype."""
        bounds = []
        for bound, name in ((self.low, "low"), (self.high, "high")):
            if not isinstance(bound, float):
                check_broadcasts(bound, x, name)
                bound = like_input(bound, x, name)
            bounds.append(bound)
        return bounds

    def value(self, x):
        low, high = self._bounds(x)
        return restrict(zero_scalar(x), (x >= low) & (x <= high))

    def prox(self, x, step=1.0):
        check_positive(step, "step")
        low, high = self._bounds(x)
        xp = namespace(x)
        return xp.minimum(xp.maximum(x, low), high)


def _broadcast_together(a: tuple, b: tuple) -> bool:
    """Whether arrays of shapes ``a`` and ``b`` broadcast against each other."""
    return all(s == t or 1 in (s, t) for s, t in zip(reversed(a), reversed(b)))


class ZeroOnMask(ProxFunction):
    """Indicator of ``{x : x = 0 where mask is True}`` ("border zeroing").

    Its prox sets the masked entries to zero and keeps the others.

    Parameters
    ----------
    mask : boolean array
        Broadcast against ``x`` (so it usually has ``x``'s trailing shape);
        it must live on the library and device of the arrays it is applied to.

    Examples
    --------
    >>> import numpy as np
    >>> ZeroOnMask(np.array([True, False, True])).prox(np.array([1.0, 2.0, 3.0]))
    array([0., 2., 0.])
    """

    separable = True
    indicator = True

    def __init__(self, mask):
        try:
            xp = namespace(mask)
        except TypeError as exc:
            raise TypeError(f"mask must be an array, got {type(mask).__name__}") from exc
        if not xp.isdtype(mask.dtype, "bool"):
            raise TypeError(f"mask must have a boolean dtype, got {mask.dtype}")
        self.mask = mask

    def value(self, x):
        return restrict(zero_scalar(x), ~self.mask | (x == 0))

    def prox(self, x, step=1.0):
        check_positive(step, "step")
        xp = namespace(x)
        return xp.where(self.mask, xp.zeros_like(x), x)


class L1(ProxFunction):
    r"""``lam·‖x‖₁``; its prox is soft thresholding at ``lam·step``.

    Examples
    --------
    >>> import numpy as np
    >>> L1(0.5).prox(np.array([-2.0, 0.2, 1.0]), 2.0)
    array([-1.,  0.,  0.])
    """

    separable = True

    def __init__(self, lam=1.0):
        self.lam = check_real(lam, "lam", minimum=0.0)

    def value(self, x):
        xp = namespace(x)
        return self.lam * xp.sum(xp.abs(x))

    def prox(self, x, step=1.0):
        check_positive(step, "step")
        return soft_threshold(x, self.lam * step)


class L2(ProxFunction):
    r"""``lam·‖x‖₂`` over the last axis (the norm, not its square).

    For a batch ``x`` of shape ``(..., n)`` the value is the sum of the row
    norms (a group lasso with the rows as groups). The prox is block soft
    thresholding of every row:

    .. math::

        \operatorname{prox}(x) = \max\Bigl(0,\, 1 - \frac{t}{\|x\|}\Bigr)\, x,
        \qquad t = \text{lam}\cdot\text{step}.

    Examples
    --------
    >>> import numpy as np
    >>> L2(1.0).prox(np.array([[3.0, 4.0], [0.3, 0.4]]))
    array([[2.4, 3.2],
           [0. , 0. ]])
    """

    def __init__(self, lam=1.0):
        self.lam = check_real(lam, "lam", minimum=0.0)

    def value(self, x):
        return self.lam * namespace(x).sum(_row_norms(x))

    def prox(self, x, step=1.0):
        check_positive(step, "step")
        xp = namespace(x)
        norms = _row_norms(x)
        shrink = xp.maximum(norms - self.lam * step, 0.0) / xp.where(norms > 0, norms, 1.0)
        return shrink * x


class SquaredL2(ProxFunction):
    r"""``(lam/2)·‖x‖₂²``; its prox is the scaling ``x / (1 + lam·step)``.

    Examples
    --------
    >>> import numpy as np
    >>> SquaredL2(1.0).prox(np.array([2.0, -4.0]), 1.0)
    array([ 1., -2.])
    """

    separable = True
    smooth = True

    def __init__(self, lam=1.0):
        self.lam = check_real(lam, "lam", minimum=0.0)

    lipschitz = strong_convexity = property(lambda self: self.lam)

    def value(self, x):
        return 0.5 * self.lam * namespace(x).sum(x * x)

    def gradient(self, x):
        return self.lam * x

    def prox(self, x, step=1.0):
        check_positive(step, "step")
        return x / (1.0 + self.lam * step)


class ElasticNet(ProxFunction):
    r"""``l1·‖x‖₁ + (l2/2)·‖x‖₂²``.

    .. math::

        \operatorname{prox}(x) = \frac{\operatorname{soft}(x,\ \text{l1}\cdot\text{step})}
        {1 + \text{l2}\cdot\text{step}}

    Examples
    --------
    >>> import numpy as np
    >>> ElasticNet(1.0, 1.0).prox(np.array([-3.0, 0.5, 5.0]))
    array([-1.,  0.,  2.])
    """

    separable = True

    def __init__(self, l1=1.0, l2=1.0):
        self.l1 = check_real(l1, "l1", minimum=0.0)
        self.l2 = check_real(l2, "l2", minimum=0.0)

    def value(self, x):
        xp = namespace(x)
        return self.l1 * xp.sum(xp.abs(x)) + 0.5 * self.l2 * xp.sum(x * x)

    def prox(self, x, step=1.0):
        check_positive(step, "step")
        return soft_threshold(x, self.l1 * step) / (1.0 + self.l2 * step)


class Huber(ProxFunction):
    r"""The Huber function, summed over entries:
    ``t²/2`` for ``|t| ≤ delta`` and ``delta·(|t| - delta/2)`` beyond.

    .. math::

        \operatorname{prox}(x) =
        \begin{cases} x / (1 + \text{step}) & |x| \le \text{delta}\,(1 + \text{step}) \\
        x - \text{step}\cdot\text{delta}\cdot\operatorname{sign}(x) & \text{otherwise.}
        \end{cases}

    Examples
    --------
    >>> import numpy as np
    >>> Huber(1.0).prox(np.array([1.0, 4.0]), 1.0)
    array([0.5, 3. ])
    """

    separable = True
    smooth = True
    lipschitz = 1.0

    def __init__(self, delta=1.0):
        self.delta = check_real(delta, "delta", minimum=0.0, strict=True)

    def gradient(self, x):
        xp = namespace(x)
        return xp.minimum(xp.maximum(x, -self.delta), self.delta)

    def value(self, x):
        xp = namespace(x)
        a = xp.abs(x)
        d = self.delta
        return xp.sum(xp.where(a <= d, 0.5 * x * x, d * (a - 0.5 * d)))

    def prox(self, x, step=1.0):
        check_positive(step, "step")
        xp = namespace(x)
        inner = xp.abs(x) <= self.delta * (1.0 + step)
        return xp.where(inner, x / (1.0 + step), x - (step * self.delta) * xp.sign(x))


class L2Ball(ProxFunction):
    r"""Indicator of ``‖x‖₂ ≤ radius`` over the last axis (every row in the ball).

    The prox is the projection :math:`x \min(1, r/\|x\|)` of every row.
    Membership in :meth:`value` allows a relative slack ``sqrt(eps)``
    (:func:`~opsplit.prox._base.membership_tolerance`) so that the value of a
    projected point is 0.

    Examples
    --------
    >>> import numpy as np
    >>> L2Ball(1.0).prox(np.array([3.0, 4.0]))
    array([0.6, 0.8])
    """

    indicator = True

    def __init__(self, radius=1.0):
        self.radius = check_real(radius, "radius", minimum=0.0)

    def value(self, x):
        slack = self.radius * (1.0 + membership_tolerance(x))
        return restrict(zero_scalar(x), _row_norms(x) <= slack)

    def prox(self, x, step=1.0):
        check_positive(step, "step")
        xp = namespace(x)
        norms = _row_norms(x)
        return x * (self.radius / xp.maximum(norms, self.radius))


class LInfBall(ProxFunction):
    """Indicator of ``max|x_i| ≤ radius``; its prox clips to ``[-radius, radius]``.

    Examples
    --------
    >>> import numpy as np
    >>> LInfBall(1.0).prox(np.array([-3.0, 0.5]))
    array([-1. ,  0.5])
    """

    separable = True
    indicator = True

    def __init__(self, radius=1.0):
        self.radius = check_real(radius, "radius", minimum=0.0)

    def value(self, x):
        return restrict(zero_scalar(x), namespace(x).abs(x) <= self.radius)

    def prox(self, x, step=1.0):
        check_positive(step, "step")
        xp = namespace(x)
        return xp.minimum(xp.maximum(x, -self.radius), self.radius)


class L1Ball(ProxFunction):
    r"""Indicator of ``‖x‖₁ ≤ radius`` over the last axis (every row in the ball).

    A row outside the ball is soft-thresholded at the ``θ > 0`` that puts
    ``|x|`` on the simplex of that radius (Duchi et al., ICML 2008, §4), with
    the sort-based threshold of :class:`Simplex`, batched over leading axes:

    .. math::

        \operatorname{prox}(x) = \operatorname{sign}(x)\max(|x| - \theta_+, 0),
        \qquad \theta = \max_k \frac{\text{css}_k(|x|) - r}{k},

    where ``css(|x|)`` are the cumulative sums of ``|x|`` sorted in
    decreasing order; ``θ ≤ 0`` exactly when the row is already inside, so
    ``θ₊ = max(θ, 0)`` leaves it unchanged. One sort per row, ``O(n log n)``.
    Membership in :meth:`value` allows a relative slack ``sqrt(eps)``.

    Parameters
    ----------
    radius : float
        ``radius >= 0``.

    Examples
    --------
    >>> import numpy as np
    >>> L1Ball(1.5).prox(np.array([[2.0, -1.5, 0.25], [0.2, 0.3, -0.1]]))
    array([[ 1. , -0.5,  0. ],
           [ 0.2,  0.3, -0.1]])
    """

    indicator = True

    def __init__(self, radius=1.0):
        self.radius = check_real(radius, "radius", minimum=0.0)

    def value(self, x):
        slack = self.radius * (1.0 + membership_tolerance(x))
        return restrict(zero_scalar(x), _row_norms(x, ord=1) <= slack)

    def prox(self, x, step=1.0):
        check_positive(step, "step")
        check_floating(x, "x")
        check_last_axis(x)
        xp = namespace(x)
        theta = xp.maximum(_simplex_threshold(xp.abs(x), self.radius), 0.0)
        return soft_threshold(x, theta)


class Simplex(ProxFunction):
    r"""Indicator of the simplex ``{p ≥ 0, Σ p = radius}`` over the last axis.

    The projection is the sort-based algorithm of Held, Wolfe & Crowder
    (1974) / Duchi et al. (ICML 2008), vectorized over rows: with ``u`` the
    row sorted in decreasing order and ``css`` its cumulative sums,

    .. math::

        \theta = \max_k \frac{\text{css}_k - r}{k}, \qquad
        \operatorname{prox}(x) = \max(x - \theta, 0)

    (the maximum is attained at the last ``k`` with ``u_k > (css_k - r)/k``,
    since the ratios increase exactly while that condition holds).
    It costs one sort per row, ``O(n log n)``.
    Membership in :meth:`value` allows a relative slack ``sqrt(eps)`` in the sum.

    Examples
    --------
    >>> import numpy as np
    >>> Simplex().prox(np.array([0.5, 1.5, -1.0]))
    array([0., 1., 0.])
    """

    indicator = True

    def __init__(self, radius=1.0):
        self.radius = check_real(radius, "radius", minimum=0.0, strict=True)

    def value(self, x):
        check_last_axis(x)
        xp = namespace(x)
        slack = membership_tolerance(x) * self.radius
        total = xp.sum(x, axis=-1)
        inside = xp.all(x >= 0, axis=-1) & (xp.abs(total - self.radius) <= slack)
        return restrict(zero_scalar(x), inside)

    def prox(self, x, step=1.0):
        check_positive(step, "step")
        check_floating(x, "x")
        check_last_axis(x)
        return namespace(x).maximum(x - _simplex_threshold(x, self.radius), 0.0)
