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

from .._backend import to_numpy
from .._certify import make_certificate
from ..splitting import fb_error_factor, rachford_error_factor

__all__ = [
    "fb_error_factor",
    "rachford_error_factor",
    "inclusion_bound",
    "uniqueness_certificate",
]


def uniqueness_certificate(
    margin: float | None, source: str, *, verified: bool = True
) -> tuple[bool | None, str]:
    """``(unique, why)`` for a problem whose ``A + B`` has strong-monotonicity ``margin``.

    Parameters
    ----------
    margin : float or None
        The margin of ``A + B`` (``None``: unknown).
    source : str
        Where the margin comes from (e.g. ``"exact margin of I - W"``).
    verified : bool
        ``False`` when the margin is a declared constant that nothing
        checked: the text then says so.

    Returns
    -------
    tuple (bool or None, str)

    Examples
    --------
    >>> from opsplit.diagnostics import uniqueness_certificate
    >>> uniqueness_certificate(0.5, "computed from the matrix")[0]
    True
    >>> "declared, not verified" in uniqueness_certificate(0.5, "declared", verified=False)[1]
    True
    """
    cert = make_certificate(None if margin is None else float(margin), source, verified)
    return cert.unique, cert.reason


def inclusion_bound(problem, method, state, margin: float, batch_ndim: int):
    r"""Per-sample bound on :math:`\|x^{+} - x^*\|` from computed elements of
    :math:`(A + B)` (see the module docstring), or ``None``.

    The method computes it (:meth:`SplittingMethod.inclusion_bound
    <opsplit.SplittingMethod.inclusion_bound>`): forward–backward with two
    evaluations of ``A``; Peaceman–Rachford and Douglas–Rachford with two
    evaluations of ``A`` and one application of :math:`J_{\alpha B}`.

    Parameters
    ----------
    problem : Inclusion
        The problem solved.
    method : SplittingMethod
        The method that solved it.
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
    bound = method.inclusion_bound(problem, state, margin, batch_ndim)
    return None if bound is None else to_numpy(bound)
