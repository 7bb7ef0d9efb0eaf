r"""Certificates the driver attaches to a solve: uniqueness and error bounds.

A strongly monotone, maximally monotone operator has exactly one zero
(Bauschke & Combettes 2017, Cor. 23.37), so a margin ``m > 0`` of ``A + B``
certifies uniqueness — as far as ``m`` can be trusted.  Where it comes from
is part of the certificate:

- *computed*: the exact margin of an affine operator's linear part, from its
  structure (dense, diagonal, FFT; :func:`opsplit.operators.exact_margin`);
  the certificate is then ``verified``;
- *declared* (a constant given to an operator) or *supplied* (``margin=`` to
  :func:`opsplit.solve` or to the :class:`~opsplit.Inclusion`): believed, not
  verified; :func:`opsplit.diagnostics.verify` checks it and withdraws the
  certificate when it is refuted.

The error bounds are the methods' own (``error_factor``,
``inclusion_bound``); the derivations are in
:mod:`opsplit.diagnostics.certificates`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._backend import namespace, to_numpy
from ._vectors import batch_sq_norms, first_array
from .operators.monotone import ForwardOperator, LinearMonotone, ResolventOperator
from .operators.shifted import inverse_tolerance
from .operators.spectral import exact_range

__all__ = [
    "Certificate", "certify", "make_certificate", "withdrawn", "error_bound", "operator_margin",
    "resolvent_tolerance",
]

#: Computed margins within this fraction of the spectrum's scale count as zero.
_ROUNDING = 1e-10


@dataclass(frozen=True)
class Certificate:
    """Whether the zero of ``A + B`` is unique, and why.

    Attributes
    ----------
    margin : float or None
        The strong-monotonicity margin of ``A + B`` used (``None``: unknown).
    unique : bool or None
        ``True`` when ``margin > 0`` proves the zero unique; ``False`` when
        uniqueness is not certified (a margin ``<= 0``, or a refuted
        constant); ``None`` when nothing is known.
    verified : bool
        ``True`` when every constant behind ``margin`` was computed or checked,
        ``False`` when one was declared or supplied and believed.
    reason : str
        The certificate in words, with the source of the margin.
    """

    margin: float | None
    unique: bool | None
    verified: bool
    reason: str


def operator_margin(op) -> tuple[float | None, str]:
    """``(m, how)`` for one operator: the exact margin of an affine operator's
    linear part when its structure gives one (``how == "computed"``), else its
    declared constant (``"declared"``), else ``(None, "unknown")``."""
    if isinstance(op, LinearMonotone):
        found = exact_range(op.op)
        if found is not None:
            lo, hi = float(found[0]), float(found[1])
            scale = max(abs(lo), abs(hi))
            return (0.0 if abs(lo) <= _ROUNDING * scale else lo), "computed"
    if op.strong_monotonicity is not None:
        return float(op.strong_monotonicity), "declared"
    return None, "unknown"


def certify(problem, margin: float | None = None) -> Certificate:
    """The uniqueness certificate of ``problem`` (``margin``: the user's, to
    :func:`opsplit.solve`)."""
    if margin is not None:
        return make_certificate(float(margin), "supplied to solve", verified=False)
    if problem.margin is not None:
        return make_certificate(float(problem.margin), "supplied with the problem", verified=False)
    parts = [operator_margin(op) for op in problem.operators]
    if all(m is None for m, _ in parts):
        return make_certificate(None, "", verified=False)
    total = sum(m for m, _ in parts if m is not None)
    declared = [role for role, (m, how) in zip("ABC", parts) if how == "declared" and m]
    computed = [role for role, (_, how) in zip("ABC", parts) if how == "computed"]
    if declared:
        source = "declared by " + " and ".join(declared)
        if computed:
            source += ", computed exactly for " + " and ".join(computed)
    else:
        source = "computed exactly from the structure of " + " and ".join(computed)
    return make_certificate(total, source, verified=not declared)


def make_certificate(m: float | None, source: str, verified: bool) -> Certificate:
    """The certificate for margin ``m`` of ``A + B`` from ``source``."""
    if m is None:
        return Certificate(None, None, False,
                           "uniqueness not certified: no strong-monotonicity margin is known")
    trust = "" if verified else "; declared, not verified (ops.diagnostics.verify checks it)"
    if m > 0:
        return Certificate(m, True, verified, (
            f"unique zero: A + B is {m:.4g}-strongly monotone ({source}){trust}; a strongly "
            "monotone, maximally monotone operator has exactly one zero"
        ))
    return Certificate(m, False, verified, (
        f"uniqueness not certified: the margin {m:.4g} ({source}) is not positive{trust}"
    ))


def withdrawn(certificate: Certificate, why: str) -> Certificate:
    """``certificate`` with its claim withdrawn because a constant was refuted."""
    return Certificate(certificate.margin, False, True,
                       f"uniqueness not certified: {why}")


def resolvent_tolerance(op) -> float:
    """The relative residual of ``op``'s resolvent: nonzero for an affine
    operator whose shifted inverse is a Krylov solve
    (:func:`~opsplit.operators.inverse_tolerance`), else 0 (exact up to rounding)."""
    return inverse_tolerance(op.op) if isinstance(op, LinearMonotone) else 0.0


def error_bound(problem, method, state, m: float, batch_ndim: int):
    """The smallest available bound on ‖x - x*‖ per sample (host NumPy), or ``None``:
    the method's ``error_factor``·‖delta‖ (declared Lipschitz constant and own
    strong monotonicity of ``A``) and its computed ``inclusion_bound``.

    Both derivations assume exact resolvents.  When the method applies an
    inexact one (a Krylov solve to a tolerance, :func:`resolvent_tolerance`),
    the factor bound is dropped: its error would add a term the factor does
    not contain.  The computed bound evaluates ``A`` and applies ``B``'s
    resolvent at the returned point only, so it stays exact when only ``A``'s
    resolvent is inexact (it is available whenever the factor bound is: both
    need ``A`` evaluable); with an inexact resolvent of ``B`` (or ``C``) no
    bound is claimed.
    """
    if state is None or state.delta is None or not m > 0:
        return None
    inexact = [role for role, op, need in zip("ABC", problem.operators, method.requires)
               if need is ResolventOperator and resolvent_tolerance(op) > 0]
    if any(role != "A" for role in inexact):
        return None
    bounds = []
    A = problem.operators[0] if problem.operators else None
    lip = A.lipschitz if isinstance(A, ForwardOperator) else None
    factor = None
    if A is not None and not inexact:
        factor = method.error_factor(m, lip, A.strong_monotonicity or 0.0)
    xp = namespace(first_array(state.delta))
    if factor is not None:
        step_norm = to_numpy(xp.sqrt(batch_sq_norms(state.delta, batch_ndim)))
        bounds.append(factor * step_norm.astype(np.float64))
    computed = method.inclusion_bound(problem, state, m, batch_ndim)
    if computed is not None:
        bounds.append(to_numpy(computed).astype(np.float64))
    if not bounds:
        return None
    bound = np.minimum.reduce(bounds) if len(bounds) > 1 else bounds[0]
    return np.where(np.isfinite(bound), bound, np.inf)
