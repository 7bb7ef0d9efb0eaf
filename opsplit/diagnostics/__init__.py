"""Verification and study of convergence.

- Checks on any operator (:mod:`~opsplit.diagnostics.adjoint`,
  :mod:`~opsplit.diagnostics.linear`, :mod:`~opsplit.diagnostics.checks`):
  the adjoint (dot) test, monotonicity
  and strong monotonicity (exact margins for linear operators; sampling and
  search for nonlinear ones), operator norms, Lipschitz and cocoercivity
  constants, firm nonexpansiveness and averagedness of resolvents and proxes,
  the Moreau identity.  Each returns a :class:`CheckReport`.
- Certificates attached to every solve (:mod:`~opsplit.diagnostics.certificates`):
  uniqueness and a-posteriori error bounds; :func:`verify` checks the
  declared constants behind them (:mod:`~opsplit.diagnostics.verification`).
- Rates (:mod:`~opsplit.diagnostics.rates`): fitted from histories and
  bounded by theory, with step-size helpers.
- Step-size studies (:mod:`~opsplit.diagnostics.study`).  monDEQ
  certificates live with the networks, in :mod:`opsplit.nn.certify`.
"""

from ..operators.lanczos import lanczos
from ._report import CheckFailed, CheckReport, Estimate
from .adjoint import check_adjoint
from .certificates import (
    fb_error_factor,
    inclusion_bound,
    rachford_error_factor,
    uniqueness_certificate,
)
from .checks import (
    SearchOptions,
    check_averaged,
    check_cocoercive,
    check_firmly_nonexpansive,
    check_lipschitz,
    check_monotone,
    check_moreau,
    check_nonexpansive,
    check_reflected,
    reflection,
)
from .linear import margin, opnorm, symmetric_range
from .rates import (
    RateComparison,
    RateFit,
    compare_rate,
    contraction,
    dr_contraction,
    fb_contraction,
    fb_step_limit,
    fit_rate,
    optimal_step,
    pr_contraction,
    rate_table,
    suggest_step,
)
from .study import StepStudy, step_study
from .verification import verify

__all__ = [
    "CheckReport",
    "CheckFailed",
    "Estimate",
    "SearchOptions",
    "check_adjoint",
    "check_monotone",
    "check_lipschitz",
    "check_cocoercive",
    "check_averaged",
    "check_firmly_nonexpansive",
    "check_nonexpansive",
    "check_reflected",
    "check_moreau",
    "reflection",
    "margin",
    "opnorm",
    "symmetric_range",
    "lanczos",
    "fb_error_factor",
    "rachford_error_factor",
    "inclusion_bound",
    "uniqueness_certificate",
    "verify",
    "RateFit",
    "fit_rate",
    "fb_contraction",
    "pr_contraction",
    "dr_contraction",
    "contraction",
    "optimal_step",
    "suggest_step",
    "fb_step_limit",
    "RateComparison",
    "compare_rate",
    "rate_table",
    "StepStudy",
    "step_study",
]
