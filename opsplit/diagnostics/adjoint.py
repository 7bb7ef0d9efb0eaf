"""The dot test of a linear operator's adjoint."""

from __future__ import annotations

import numpy as np

from ..operators._base import check_linear
from ._report import compare, finish
from ._vec import batch_dot, eps_of, host, like_of, random_vector

__all__ = ["check_adjoint"]


def check_adjoint(L, like=None, *, trials=3, rtol=None, seed=0, raise_on_fail=False):
    r"""The dot test :math:`\langle L x, y\rangle = \langle x, L^{H} y\rangle`.

    On ``trials`` random pairs (one batched application each way), the
    relative mismatch

    .. math::

        \frac{|\langle Lx, y\rangle - \langle x, L^{H}y\rangle|}
             {\max(\|Lx\|\,\|y\|,\ \|x\|\,\|L^{H}y\|)}

    must stay below ``rtol`` (default ``1000·eps`` of the dtype).

    Parameters
    ----------
    L : LinearOperator
    like : array, optional
        Gives library, dtype and device when ``L`` holds no array.
    trials : int
        Number of random pairs.
    rtol : float, optional
    seed : int
    raise_on_fail : bool
        Raise :class:`~opsplit.diagnostics.CheckFailed` when the test fails.

    Returns
    -------
    CheckReport
        ``worst`` is the largest relative mismatch.

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> ops.diagnostics.check_adjoint(ops.Dense(np.arange(6.0).reshape(2, 3))).passed
    True
    """
    check_linear(L, "L")
    if not isinstance(trials, int) or trials < 1:
        raise ValueError(f"trials must be a positive integer, got {trials!r}")
    ref = like_of(L, like)
    tol = 1000 * eps_of(ref) if rtol is None else float(rtol)
    rng = np.random.default_rng(seed)
    x = random_vector(L.in_shape, ref, rng, batch=(trials,))
    y = random_vector(L.out_shape, ref, rng, batch=(trials,))
    Lx, Lhy = L.matvec(x), L.rmatvec(y)
    lhs, rhs = host(batch_dot(Lx, y, 1)), host(batch_dot(x, Lhy, 1))
    nLx, ny = np.sqrt(host(batch_dot(Lx, Lx, 1))), np.sqrt(host(batch_dot(y, y, 1)))
    nx, nLhy = np.sqrt(host(batch_dot(x, x, 1))), np.sqrt(host(batch_dot(Lhy, Lhy, 1)))
    scale = np.maximum(np.maximum(nLx * ny, nx * nLhy), np.finfo(np.float64).tiny)
    worst = float(np.max(np.abs(lhs - rhs) / scale))
    quantity = "relative mismatch |<Lx,y> - <x,L^H y>|"
    how = f"dot test on {trials} random pairs"
    report = compare("adjoint", worst, 0.0, tol, "lower", quantity, how, trials)
    return finish(report, raise_on_fail)
