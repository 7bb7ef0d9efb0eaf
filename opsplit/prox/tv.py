r"""The 1-D total variation and its exact prox (Condat's direct algorithm,
with a linear-time dynamic program as its safeguard).

.. math::

    f(x) = \lambda \sum_{i} |x_{i+1} - x_i|, \qquad
    \operatorname{prox}_{\gamma f}(y) = \arg\min_x\;
    \tfrac12 \|x - y\|^2 + \gamma\lambda \sum_i |x_{i+1} - x_i| ,

along the last axis. The prox is computed exactly (up to rounding), in one
call; it is not an iterative approximation. Both algorithms below are
inherently sequential, so the prox runs **on the host**, row after row, in
Python on floats: an input of another library or device is copied to host
NumPy explicitly, solved in float64 and copied back in its library, device
and dtype (one transfer each way per call).

**Condat's direct algorithm** rests on the optimality conditions. With
:math:`t = \gamma\lambda`, :math:`x` is the prox iff the running residuals
:math:`r_k = \sum_{i \le k} (y_i - x_i)` satisfy

.. math::

    |r_k| \le t, \qquad r_{n-1} = 0, \qquad
    r_k = -t \ \text{where}\ x_{k+1} > x_k, \qquad
    r_k = +t \ \text{where}\ x_{k+1} < x_k

(:math:`r = -u` for the dual variable :math:`u \in t\,\partial\|\cdot\|_1(Dx)`
with :math:`y - x = D^T u`). So :math:`x` is piecewise constant, and a piece
:math:`[k_0, k]` with value :math:`v` that starts with residual
:math:`r_{k_0 - 1} \in \{-t, 0, t\}` keeps every :math:`|r_j| \le t` iff
:math:`v` lies in

.. math::

    [v_{\min}, v_{\max}] = \Bigl[\max_{k_0 \le j \le k}
    \frac{r_{k_0-1} + S_j - t}{j - k_0 + 1},\
    \min_{k_0 \le j \le k} \frac{r_{k_0-1} + S_j + t}{j - k_0 + 1}\Bigr],
    \qquad S_j = \sum_{i=k_0}^{j} y_i .

The algorithm extends the current piece one sample at a time, updating both
bounds and the residuals :math:`u_{\min}, u_{\max}` they give at :math:`k`
(and the last indices :math:`k_-, k_+` where each bound was attained). When
:math:`y_{k+1}` would make the interval empty, the piece must end: with a
downward jump at :math:`k_-` and value :math:`v_{\min}` if :math:`y_{k+1}`
is too small, with an upward jump at :math:`k_+` and value :math:`v_{\max}` if
it is too large; the next piece starts after that index (samples after it are
scanned again) with residual :math:`\pm t`. At the end the last piece takes
the value that makes :math:`r_{n-1} = 0`, or, if that value leaves
:math:`[v_{\min}, v_{\max}]`, ends with a jump as above.

Its cost is about ``n`` to ``2n`` steps on noisy signals, but the rescans make
it quadratic on smooth monotone stretches with a large ``t`` (a ramp
``y_i = √i``: 220 ``n`` steps at ``t = 100``, seconds for ``n = 10⁴``). So it
runs with a budget of ``2.5n`` steps, and a row that exceeds it is solved by the
**dynamic program** of Johnson (2013), linear in the worst case (about twice
Condat's typical time). Writing :math:`F_1(b) = \tfrac12(b - y_0)^2` and
:math:`F_{k+1}(b) = \min_{b'} F_k(b') + t|b - b'| + \tfrac12(b - y_k)^2`, the
derivative :math:`F_k'` is continuous, piecewise linear and increasing (slope
:math:`\ge 1`); the inner minimum has derivative
:math:`\operatorname{clip}(F_k', -t, t)`, constant outside the points
:math:`b^-_k < b^+_k` where :math:`F_k' = \mp t`, and its minimizer is
:math:`b' = \operatorname{clip}(b, b^-_k, b^+_k)`. The program keeps the knots of
:math:`F_k'` in a deque with the jumps of its coefficients, finds
:math:`b^\pm_k` by walking in from either end (every knot it walks past is
dropped for good, so the total work is linear), and recovers :math:`x` backwards
from the root of :math:`F_n'` by :math:`x_{k} = \operatorname{clip}(x_{k+1},
b^-_k, b^+_k)`.

References
----------
L. Condat, "A direct algorithm for 1-D total variation denoising", IEEE
Signal Processing Letters 20(11), 2013, pp. 1054-1057. N. A. Johnson, "A
dynamic programming algorithm for the fused lasso and L0-segmentation",
J. Comput. Graph. Statist. 22(2), 2013, pp. 246-260.
"""

from __future__ import annotations

import numpy as np

from .._backend import check_floating, from_host, namespace, to_numpy
from .._validate import check_positive, check_real
from ._base import ProxFunction, check_last_axis

__all__ = ["TotalVariation1D", "tv1d_denoise"]


def _condat(y: list, t: float, budget: int):
    """Values and lengths of the pieces of ``prox_{t TV}(y)`` for one row
    (a Python list of floats, ``t > 0``), or ``None`` after ``budget`` steps."""
    values, lengths = [], []
    last = len(y) - 1
    k = k0 = k_minus = k_plus = 0
    v_min, v_max = y[0] - t, y[0] + t
    u_min, u_max = t, -t
    while budget > 0:
        budget -= 1
        if k == last:
            if u_min < 0.0:  # the mean of the piece is below v_min: jump down at k_minus
                jump = -1
            elif u_max > 0.0:  # above v_max: jump up at k_plus
                jump = 1
            else:
                values.append(v_min + u_min / (k - k0 + 1))
                lengths.append(k - k0 + 1)
                return values, lengths
        else:
            y_next = y[k + 1]
            if y_next + u_min < v_min - t:
                jump = -1
            elif y_next + u_max > v_max + t:
                jump = 1
            else:  # no jump: extend the piece to k + 1
                k += 1
                u_min += y_next - v_min
                u_max += y_next - v_max
                if u_min >= t:
                    v_min += (u_min - t) / (k - k0 + 1)
                    u_min, k_minus = t, k
                if u_max <= -t:
                    v_max += (u_max + t) / (k - k0 + 1)
                    u_max, k_plus = -t, k
                continue
        if jump < 0:  # piece [k0, k_minus] at v_min; the next starts with residual +t
            values.append(v_min)
            lengths.append(k_minus - k0 + 1)
            k = k0 = k_minus = k_plus = k_minus + 1
            v_min, v_max = y[k], y[k] + 2.0 * t
        else:  # piece [k0, k_plus] at v_max; the next starts with residual -t
            values.append(v_max)
            lengths.append(k_plus - k0 + 1)
            k = k0 = k_minus = k_plus = k_plus + 1
            v_min, v_max = y[k] - 2.0 * t, y[k]
        u_min, u_max = t, -t
    return None


def _dynamic_program(y: list, t: float) -> list:
    """``prox_{t TV}(y)`` for one row by the linear-time dynamic program (see
    the module docstring); a Python list of floats in and out, ``t > 0``.

    The derivative ``F'`` is ``a·b + c`` on each piece: ``(a_left, c_left)``
    left of every knot, ``(a_right, c_right)`` right of every knot, and
    crossing knot ``j`` (at ``knot[j]``, ``lo ≤ j ≤ hi``) from left to right
    adds ``(slope[j], offset[j])``.
    """
    n = len(y)
    knot, slope, offset = [0.0] * (2 * n), [0.0] * (2 * n), [0.0] * (2 * n)
    lower, upper = [0.0] * n, [0.0] * n
    lo, hi = n, n - 1  # an empty deque, room for n - 1 pushes on either side
    a_left = a_right = 1.0
    c_left = c_right = -y[0]
    for k in range(n - 1):
        a, c = a_left, c_left  # walk right to where F' reaches -t
        while lo <= hi and a * knot[lo] + c <= -t:
            a += slope[lo]
            c += offset[lo]
            lo += 1
        b_minus = (-t - c) / a
        lo -= 1  # new knot: F' is -t on its left
        knot[lo], slope[lo], offset[lo] = b_minus, a, c + t
        a, c = a_right, c_right  # walk left to where F' reaches +t
        while hi >= lo and a * knot[hi] + c >= t:
            a -= slope[hi]
            c -= offset[hi]
            hi -= 1
        b_plus = (t - c) / a
        hi += 1  # new knot: F' is +t on its right
        knot[hi], slope[hi], offset[hi] = b_plus, -a, t - c
        lower[k], upper[k] = b_minus, b_plus
        # add the derivative b - y[k + 1] of the next quadratic to the end pieces
        a_left, c_left = 1.0, -t - y[k + 1]
        a_right, c_right = 1.0, t - y[k + 1]
    a, c = a_left, c_left  # the root of the last F'
    while lo <= hi and a * knot[lo] + c <= 0.0:
        a += slope[lo]
        c += offset[lo]
        lo += 1
    b = -c / a
    x = [0.0] * n
    x[n - 1] = b
    for k in range(n - 2, -1, -1):
        b = min(max(b, lower[k]), upper[k])
        x[k] = b
    return x


def tv1d_denoise(y: np.ndarray, threshold: float) -> np.ndarray:
    r"""The exact solution of :math:`\min_x \tfrac12\|x - y\|^2 + t\sum_i|x_{i+1} - x_i|`
    for every row (last axis) of the host array ``y``, by Condat's direct
    algorithm or, past its budget of ``2.5n`` steps, the linear-time dynamic
    program (see the module docstring); float64 NumPy in and out.

    Parameters
    ----------
    y : numpy.ndarray
        Signals along the last axis (float64; leading axes are a batch).
    threshold : float
        ``t >= 0``.

    Returns
    -------
    numpy.ndarray
        Same shape as ``y``.

    Examples
    --------
    >>> import numpy as np
    >>> tv1d_denoise(np.array([0.0, 0.0, 3.0, 3.0]), 0.5)
    array([0.25, 0.25, 2.75, 2.75])
    """
    threshold = check_real(threshold, "threshold", minimum=0.0)
    y = np.asarray(y, dtype=np.float64)
    check_last_axis(y, name="y")
    if threshold == 0.0 or y.shape[-1] < 2:
        return y.copy()
    n = y.shape[-1]
    rows = y.reshape(-1, n)
    means = rows.mean(axis=-1, keepdims=True)  # the prox commutes with shifts
    out = np.empty_like(rows)
    for i, row in enumerate((rows - means).tolist()):
        pieces = _condat(row, threshold, budget=5 * n // 2)
        if pieces is None:
            out[i] = _dynamic_program(row, threshold)
        else:
            out[i] = np.repeat(*pieces)
    return (out + means).reshape(y.shape)


class TotalVariation1D(ProxFunction):
    r"""``lam·Σ_i |x_{i+1} - x_i|`` along the last axis (summed over leading
    axes), with its exact prox.

    The prox is one call of :func:`tv1d_denoise` (Condat's direct algorithm,
    safeguarded by a linear-time dynamic program; see the module docstring),
    an explicit **host** computation: NumPy arrays are read in place, other
    libraries are copied to the host and back (``x``'s library, device and
    dtype are kept; float32 is solved in float64 and rounded once). Measured
    on one core for ``n = 10⁴``: 3.5-7 ms on noisy signals, at most about
    30 ms on smooth ones (where the dynamic program takes over).

    Parameters
    ----------
    lam : float
        ``lam >= 0``.

    Examples
    --------
    >>> import numpy as np
    >>> f = TotalVariation1D(1.0)
    >>> x = np.array([0.0, 4.0, 4.0, 0.5])
    >>> float(f.value(x))
    7.5
    >>> f.prox(x)
    array([1. , 3. , 3. , 1.5])
    """

    def __init__(self, lam=1.0):
        self.lam = check_real(lam, "lam", minimum=0.0)

    def value(self, x):
        check_floating(x, "x")
        check_last_axis(x)
        xp = namespace(x)
        return self.lam * xp.sum(xp.abs(x[..., 1:] - x[..., :-1]))

    def prox(self, x, step=1.0):
        step = check_positive(step, "step")
        check_floating(x, "x")
        check_last_axis(x)
        result = tv1d_denoise(to_numpy(x), self.lam * step)
        return from_host(result, like=x)
