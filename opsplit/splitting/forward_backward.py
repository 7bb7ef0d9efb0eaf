"""Forward–backward splitting."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from .._vectors import sub
from ..operators.monotone import ForwardOperator, ResolventOperator
from ._base import SplittingMethod, State, require

__all__ = ["ForwardBackward"]


class _FBMaps(NamedTuple):
    forward_step: Callable  # x ↦ x - α A(x)
    resolvent: Callable


@dataclass(frozen=True)
class ForwardBackward(SplittingMethod):
    r"""Forward–backward splitting for :math:`0 \in A(x) + B(x)`.

    Each step is an explicit (forward) step on ``A`` followed by an implicit
    (backward) step on ``B``:

    .. math::

        x^{+} = J_{\alpha B}\bigl(x - \alpha\, A(x)\bigr),
        \qquad \alpha = \text{step}.

    With ``A`` ``m``-strongly monotone and ``L``-Lipschitz it converges
    linearly for ``0 < step < 2m/L²``; with ``A`` ``β``-cocoercive, for
    ``step < 2β``.  Outside those ranges it may diverge, which
    :func:`opsplit.solve` reports.

    Parameters
    ----------
    step : float
        The step size ``α > 0``.

    References
    ----------
    P. L. Combettes and V. R. Wajs, "Signal recovery by proximal
    forward-backward splitting", Multiscale Model. Simul. 4 (2005).
    E. Winston and J. Z. Kolter, "Monotone operator equilibrium networks",
    NeurIPS 2020, Algorithm 1.

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> F = ops.LinearMonotone(ops.Dense(np.eye(2)), np.array([-1.0, 1.0]))
    >>> G = ops.Subdifferential(ops.prox.NonNegative())
    >>> res = ops.solve(ops.Inclusion(F, G), ops.ForwardBackward(step=0.5), np.zeros(2), tol=1e-12)
    >>> res.x, res.success
    (array([1., 0.]), True)
    """

    def prepare(self, problem):
        require(problem.A, ForwardOperator, "A", "ForwardBackward")
        require(problem.B, ResolventOperator, "B", "ForwardBackward")
        return _FBMaps(problem.A.forward_step(self.step), problem.B.resolvent(self.step))

    def init(self, prepared, x0):
        return State(z=x0, x=x0)

    def update(self, prepared, state):
        x = state.x
        x_new = prepared.resolvent(prepared.forward_step(x))
        return State(z=x_new, x=x_new, delta=sub(x_new, x))

    def error_factor(self, margin, lipschitz, monotonicity=0.0):
        r"""``c`` with :math:`\|x^{+} - x^*\| \le c\,\|x^{+} - x\|`:
        :math:`\sqrt{1 - 2\alpha m_A + \alpha^2 L^2}/(\alpha m)`
        (:func:`~opsplit.diagnostics.fb_error_factor`, derived in
        :mod:`opsplit.diagnostics.certificates`), with ``m = margin`` of
        ``A + B``, ``L = lipschitz`` and :math:`m_A` = ``monotonicity`` of ``A``."""
        from ..diagnostics.certificates import fb_error_factor

        if not margin or margin <= 0 or lipschitz is None:
            return None
        return fb_error_factor(self.step, margin, lipschitz, monotonicity or 0.0)
