"""Verification and study of convergence.

- Checks on any operator (:mod:`~opsplit.diagnostics.linear`,
  :mod:`~opsplit.diagnostics.checks`): the adjoint (dot) test, monotonicity
  and strong monotonicity (exact margins for linear operators; sampling and
  search for nonlinear ones), operator norms, Lipschitz and cocoercivity
  constants, firm nonexpansiveness and averagedness of resolvents and proxes,
  the Moreau identity.  Each returns a :class:`CheckReport`.
- Certificates attached to every solve (:mod:`~opsplit.diagnostics.certificates`):
  uniqueness and a-posteriori error bounds.
- Rates (:mod:`~opsplit.diagnostics.rates`): fitted from histories and
  bounded by theory, with step-size helpers.
- Step-size studies (:mod:`~opsplit.diagnostics.study`) and monDEQ
  certificates (:mod:`~opsplit.diagnostics.mondeq`).
"""

from ._report import CheckFailed, CheckReport, Estimate
from .certificates import (
    fb_error_factor,
    inclusion_bound,
    rachford_error_factor,
    uniqueness_certificate,
)
from .checks import (
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
from .linear import check_adjoint, dense_matrix, lanczos, margin, opnorm, symmetric_range
from .mondeq import (
    LayerCertificate,
    RobustnessCertificate,
    certify_classifier,
    certify_layer,
    mondeq_step_study,
    robustness_radii,
)
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

__all__ = [
    "CheckReport",
    "CheckFailed",
    "Estimate",
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
    "dense_matrix",
    "fb_error_factor",
    "rachford_error_factor",
    "inclusion_bound",
    "uniqueness_certificate",
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
    "LayerCertificate",
    "certify_layer",
    "certify_classifier",
    "RobustnessCertificate",
    "robustness_radii",
    "mondeq_step_study",
]
