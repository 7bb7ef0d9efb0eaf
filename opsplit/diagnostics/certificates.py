r"""A-posteriori certificates: uniqueness of the zero and error bounds.

Problem: :math:`0 \in A(x) + B(x)` with ``A`` single-valued and
``L``-Lipschitz, ``B`` maximally monotone, ``A + B`` ``m``-strongly monotone
(``m > 0``), and — where stated — ``A`` itself :math:`m_A`-strongly
monotone (:math:`0 \le m_A`).  :math:`x^*` is the zero.  Each bound below
holds for every iterate, converged or not; it needs no contraction of the
iteration, only the constants.

**Uniqueness.** A strongly monotone, maximally monotone operator is
surjective and injective: :math:`0 \in (A + B)(x)` has exactly one
solution (Bauschke & Combettes 2017, Cor. 23.37).

**Forward–backward**, :math:`x^{+} = J_{\alpha B}(x - \alpha A x)`.  By
definition of the resolvent :math:`(x - \alpha A x - x^{+})/\alpha \in B x^{+}`,
so

.. math::

    g = \frac{(x - \alpha A x) - (x^{+} - \alpha A x^{+})}{\alpha}
      \in (A + B)(x^{+}), \qquad 0 \in (A + B)(x^*).

Strong monotonicity and Cauchy–Schwarz give
:math:`m\|x^{+} - x^*\|^2 \le \langle g, x^{+} - x^*\rangle \le \|g\|\,\|x^{+} - x^*\|`,
and :math:`\|(I - \alpha A)u - (I - \alpha A)v\|^2 \le (1 - 2\alpha m_A + \alpha^2 L^2)\|u - v\|^2`,
hence

.. math::

    \|x^{+} - x^*\| \le \frac{\sqrt{1 - 2\alpha m_A + \alpha^2 L^2}}{\alpha\, m}\,
    \|x^{+} - x\| \;\le\; \frac{1/\alpha + L}{m}\,\|x^{+} - x\| .

**Peaceman–Rachford / Douglas–Rachford** with relaxation ``λ`` (PR:
``λ = 2``): :math:`x = J_{\alpha B} u`, :math:`v = J_{\alpha A}(2x - u)`,
:math:`u^{+} = u + \lambda (v - x)`, and the returned point is
:math:`x^{+} = J_{\alpha B} u^{+}`.  Two bounds, the smaller is used.

*(a) From the inclusion.* :math:`(u - x)/\alpha \in B x` and
:math:`(2x - u - v)/\alpha = A v`, so
:math:`g = (x - v)/\alpha + A x - A v \in (A + B)(x)` with
:math:`\|g\| \le (1/\alpha + L)\|x - v\|` and :math:`\|x - v\| = \|u^{+} - u\|/\lambda`;
resolvents are nonexpansive, :math:`\|x^{+} - x\| \le \|u^{+} - u\|`:

.. math::

    \|x^{+} - x^*\| \le \|x^{+} - x\| + \frac{\|g\|}{m}
    \le \Bigl(1 + \frac{1 + \alpha L}{\lambda\,\alpha\, m}\Bigr)\|u^{+} - u\| .

*(b) From the contraction* (needs :math:`m_A > 0`).  :math:`R_{\alpha A}` is
a ``c_PR``-contraction (:func:`~opsplit.diagnostics.pr_contraction` with
:math:`m_A, L`) and :math:`R_{\alpha B}` is nonexpansive, so the map
:math:`T: u \mapsto u^{+}` is a ``c``-contraction with
``c = dr_contraction(m_A, L, α, λ)`` and fixed point :math:`u^*`,
:math:`x^* = J_{\alpha B} u^*`.  From
:math:`\|u^{+} - u^*\| \le c\|u - u^*\| \le c(\|u - u^{+}\| + \|u^{+} - u^*\|)`:

.. math::

    \|x^{+} - x^*\| \le \|u^{+} - u^*\| \le \frac{c}{1 - c}\,\|u^{+} - u\| .

**Computed inclusion residuals** (used as well when ``A`` can be
evaluated; no Lipschitz constant needed).  The derivations above bound
:math:`\|g\|` through ``L``; :func:`inclusion_bound` evaluates it instead.
Forward–backward: :math:`\|x^{+} - x^*\| \le \|g\|/m` with ``g`` as above
(two evaluations of ``A``).  Peaceman–Rachford / Douglas–Rachford: since
:math:`(u^{+} - x^{+})/\alpha \in B x^{+}`,

.. math::

    \|x^{+} - x^*\| \le \frac{\|A x^{+} + (u^{+} - x^{+})/\alpha\|}{m},

and, with one forward–backward step :math:`\hat x = J_{\alpha B}(x^{+} - \alpha A x^{+})`
(whose ``g`` is :math:`\hat g`),
:math:`\|x^{+} - x^*\| \le \|x^{+} - \hat x\| + \|\hat g\|/m`;
the second is far tighter when ``u`` converges more slowly than ``x`` (the
part of ``u`` in a normal cone does not move ``x``).  The smallest of all
available bounds is reported.

References
----------
H. H. Bauschke and P. L. Combettes, *Convex Analysis and Monotone Operator
Theory in Hilbert Spaces*, 2nd ed., Springer 2017.  E. Winston and
J. Z. Kolter, "Monotone operator equilibrium networks", NeurIPS 2020.
"""

from __future__ import annotations

import math

import numpy as np

from .._vectors import axpy, lincomb, scale, sub
from ..operators.monotone import ForwardOperator
from ..splitting import DouglasRachford, ForwardBackward, PeacemanRachford
from ._vec import batch_norm, host
from .rates import dr_contraction

__all__ = [
    "fb_error_factor",
    "rachford_error_factor",
    "inclusion_bound",
    "uniqueness_certificate",
]


def _check(step, margin, lipschitz, monotonicity):
    if not step > 0:
        raise ValueError(f"step must be > 0, got {step}")
    if not margin > 0:
        raise ValueError(f"margin must be > 0 for an error bound, got {margin}")
    if not lipschitz >= 0:
        raise ValueError(f"lipschitz must be >= 0, got {lipschitz}")
    if not monotonicity >= 0:
        raise ValueError(f"monotonicity must be >= 0, got {monotonicity}")


def fb_error_factor(step: float, margin: float, lipschitz: float, monotonicity: float = 0.0):
    r"""``c`` with :math:`\|x^{+} - x^*\| \le c\,\|x^{+} - x\|` after a forward–backward step.

    :math:`c = \sqrt{1 - 2\alpha m_A + \alpha^2 L^2}/(\alpha m)`, at most
    :math:`(1/\alpha + L)/m`; see the module docstring for the derivation.

    Parameters
    ----------
    step : float
        ``α``.
    margin : float
        ``m > 0``, strong monotonicity of ``A + B``.
    lipschitz : float
        ``L``, Lipschitz constant of ``A``.
    monotonicity : float
        :math:`m_A \ge 0`, strong monotonicity of ``A`` alone (0 if unknown).

    Examples
    --------
    >>> from opsplit.diagnostics import fb_error_factor
    >>> fb_error_factor(0.5, 1.0, 2.0) <= (1 / 0.5 + 2.0) / 1.0
    True
    """
    _check(step, margin, lipschitz, monotonicity)
    lip = math.sqrt(max(0.0, 1.0 - 2.0 * step * monotonicity + (step * lipschitz) ** 2))
    return lip / (step * margin)


def rachford_error_factor(
    step: float, margin: float, lipschitz: float, monotonicity: float = 0.0,
    relaxation: float = 2.0,
):
    r"""``c`` with :math:`\|x^{+} - x^*\| \le c\,\|u^{+} - u\|` after a Peaceman–Rachford
    (``relaxation = 2``) or Douglas–Rachford step, returning :math:`x^{+} = J_{\alpha B}u^{+}`.

    The smaller of :math:`1 + (1 + \alpha L)/(\lambda\alpha m)` and, when
    :math:`m_A > 0`, :math:`c/(1 - c)` with ``c = dr_contraction(m_A, L, α, λ)``.

    Parameters
    ----------
    step, margin, lipschitz, monotonicity
        As in :func:`fb_error_factor`.
    relaxation : float
        ``λ ∈ (0, 2]``.

    Examples
    --------
    >>> from opsplit.diagnostics import rachford_error_factor
    >>> round(rachford_error_factor(1.0, 1.0, 1.0), 6)      # 1 + 2/2
    2.0
    >>> round(rachford_error_factor(1.0, 1.0, 1.0, monotonicity=1.0), 6)  # c = 0
    0.0
    """
    _check(step, margin, lipschitz, monotonicity)
    if not 0 < relaxation <= 2:
        raise ValueError(f"relaxation must be in (0, 2], got {relaxation}")
    factor = 1.0 + (1.0 + step * lipschitz) / (relaxation * step * margin)
    if monotonicity > 0 and lipschitz >= monotonicity:
        c = dr_contraction(monotonicity, lipschitz, step, relaxation)
        if c < 1.0:
            factor = min(factor, c / (1.0 - c))
    return factor


def uniqueness_certificate(margin: float | None, source: str) -> tuple[bool | None, str]:
    """``(unique, why)`` for a problem whose ``A + B`` has strong-monotonicity ``margin``.

    ``source`` says where the margin comes from (e.g. ``"supplied by the user"``).

    Examples
    --------
    >>> from opsplit.diagnostics import uniqueness_certificate
    >>> uniqueness_certificate(0.5, "declared by the operators")[0]
    True
    """
    if margin is None:
        return None, "uniqueness not certified: no strong-monotonicity margin is known"
    if margin > 0:
        return True, (
            f"unique zero: A + B is {margin:.4g}-strongly monotone ({source}); a strongly "
            "monotone, maximally monotone operator has exactly one zero"
        )
    return False, (
        f"uniqueness not certified: the margin {margin:.4g} ({source}) is not positive"
    )


def _norms(v, batch_ndim):
    return host(batch_norm(v, batch_ndim))


def _fb_element(A_x, A_xn, x, x_new, step):
    """``g = (x - x⁺)/α - (A x - A x⁺) ∈ (A + B)(x⁺)`` for ``x⁺ = J_{αB}(x - αAx)``."""
    return sub(scale(1.0 / step, sub(x, x_new)), sub(A_x, A_xn))


def inclusion_bound(problem, method, state, margin: float, batch_ndim: int):
    r"""Per-sample bound on :math:`\|x^{+} - x^*\|` from computed elements of
    :math:`(A + B)` (see the module docstring), or ``None``.

    Needs ``A`` to be evaluable and ``method`` to be forward–backward,
    Peaceman–Rachford or Douglas–Rachford; costs two evaluations of ``A``
    (and, for the Rachford methods, one application of
    :math:`J_{\alpha B}`).

    Parameters
    ----------
    problem : Inclusion
    method : SplittingMethod
    state : State
        The final state of the solve (``x`` the returned point, ``z`` the
        governing variable, ``delta`` its last change).
    margin : float
        ``m > 0``, strong monotonicity of ``A + B``.
    batch_ndim : int
        Number of leading batch axes.

    Returns
    -------
    numpy.ndarray or None
        Shape: the batch shape.
    """
    A = problem.A
    if not isinstance(A, ForwardOperator) or state is None or state.delta is None:
        return None
    if not margin > 0:
        return None
    step = method.step
    x_new = state.x
    if isinstance(method, ForwardBackward):
        x = sub(x_new, state.delta)
        g = _fb_element(A.evaluate(x), A.evaluate(x_new), x, x_new, step)
        return _norms(g, batch_ndim) / margin
    if isinstance(method, (PeacemanRachford, DouglasRachford)):
        A_xn = A.evaluate(x_new)
        direct = _norms(axpy(1.0 / step, sub(state.z, x_new), A_xn), batch_ndim) / margin
        x_hat = problem.B.resolvent(step)(lincomb(1.0, x_new, -step, A_xn))
        g_hat = _fb_element(A_xn, A.evaluate(x_hat), x_new, x_hat, step)
        natural = _norms(sub(x_new, x_hat), batch_ndim) + _norms(g_hat, batch_ndim) / margin
        return np.minimum(direct, natural)
    return None
