r"""Certificates and studies for trained monDEQ layers and classifiers.

For a layer :math:`z^* = \sigma(W z^* + U x + b)` with
:math:`I - W \succeq m I` and a linear head :math:`y = W_{\text{out}} z^* + b_{\text{out}}`:

- the margin :math:`\lambda_{\min}(\tfrac12((I - W) + (I - W)^\top)) \ge m`,
  checked exactly (eigenvalues of the symmetric part), and :math:`\|I - W\|_2`;
- uniqueness of the equilibrium (the inclusion
  :math:`0 \in (I - W)z - (Ux + b) + \partial f(z)` is strongly monotone);
- the Lipschitz bound of the input-to-logits map.  For two inputs, monotonicity
  of :math:`\partial f` gives
  :math:`\langle (I - W)\Delta z - U\Delta x, \Delta z\rangle \le 0`, so
  :math:`m\|\Delta z\|^2 \le \|U\|\,\|\Delta x\|\,\|\Delta z\|` and

  .. math::

      \|\Delta y\| \le \frac{\|W_{\text{out}}\|\,\|U\|}{m}\,\|\Delta x\| = \ell\,\|\Delta x\|

  (Pabbaraju, Winston & Kolter, ICLR 2021);
- per sample, the certified :math:`\ell_2` robustness radius: a perturbation
  changes a logit difference :math:`y_c - y_j` by at most
  :math:`\|e_c - e_j\|\,\|\Delta y\| = \sqrt2\,\ell\,\|\Delta x\|`, so the
  prediction cannot change within

  .. math::

      r = \frac{(y_c - \max_{j \ne c} y_j) - \sqrt2\,\|W_{\text{out}}\|\,\varepsilon}{\sqrt2\,\ell},

  where :math:`\varepsilon` is the a-posteriori error bound of the computed
  equilibrium (:attr:`opsplit.SolveResult.error_bound`), so the radius holds
  for the exact network, not only for the approximate solve.

References
----------
E. Winston and J. Z. Kolter, "Monotone operator equilibrium networks",
NeurIPS 2020.  C. Pabbaraju, E. Winston and J. Z. Kolter, "Estimating
Lipschitz constants of monotone deep equilibrium models", ICLR 2021.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._backend import namespace, to_numpy
from ..operators.basic import Dense
from ._report import CheckReport, Estimate
from .checks import check_monotone
from .linear import opnorm
from .rates import fb_step_limit, optimal_step
from .study import DEFAULT_STEPS, METHODS, StepStudy, sweep

__all__ = [
    "LayerCertificate",
    "certify_layer",
    "certify_classifier",
    "RobustnessCertificate",
    "robustness_radii",
    "mondeq_step_study",
]


@dataclass(frozen=True)
class LayerCertificate:
    """What :func:`certify_layer` establishes about a trained monDEQ layer.

    Attributes
    ----------
    declared_m : float
        The layer's parametrization margin ``m``.
    margin : Estimate
        The exact :math:`\\lambda_{\\min}` of the symmetric part of ``I - W``.
    margin_check : CheckReport
        ``margin >= declared_m`` (up to rounding).
    lipschitz : Estimate
        :math:`\\|I - W\\|_2`.
    u_norm : Estimate
        :math:`\\|U\\|_2`.
    head_norm : Estimate or None
        :math:`\\|W_{\\text{out}}\\|_2` when a head is given.
    lipschitz_bound : float or None
        :math:`\\|W_{\\text{out}}\\|\\,\\|U\\|/m` (input to logits), or
        :math:`\\|U\\|/m` (input to equilibrium) without a head; ``m`` is the
        exact margin.
    unique : bool
    uniqueness : str
    fb_step_limit : float
        Forward–backward's safe range :math:`\\alpha < 2m/L^2`.
    pr_step : float
        The step :math:`1/L` minimizing the Peaceman–Rachford bound.
    """

    declared_m: float
    margin: Estimate
    margin_check: CheckReport
    lipschitz: Estimate
    u_norm: Estimate
    head_norm: Estimate | None
    lipschitz_bound: float | None
    unique: bool
    uniqueness: str
    fb_step_limit: float
    pr_step: float

    def summary(self) -> str:
        """The certificate as printed by ``opsplit check``."""
        lines = [
            f"margin   λ_min(sym(I - W)) = {self.margin.describe()}  "
            f"(declared m = {self.declared_m:g}: {'OK' if self.margin_check else 'VIOLATED'})",
            f"norm     ‖I - W‖₂ = {self.lipschitz.describe()}",
            f"         ‖U‖₂ = {float(self.u_norm):.6g}"
            + ("" if self.head_norm is None else f", ‖W_out‖₂ = {float(self.head_norm):.6g}"),
        ]
        if self.lipschitz_bound is not None:
            what = "input -> logits" if self.head_norm is not None else "input -> equilibrium"
            lines.append(f"Lipschitz bound ({what}): {self.lipschitz_bound:.6g}")
        lines += [
            f"uniqueness: {self.uniqueness}",
            f"steps: forward-backward needs α < 2m/L² = {self.fb_step_limit:.4g}; "
            f"Peaceman-Rachford converges for every α (bound best at 1/L = {self.pr_step:.4g})",
        ]
        return "\n".join(lines)


def _check_layer(layer, params):
    from ..nn.mondense import MonDense

    if not isinstance(layer, MonDense):
        raise TypeError(f"layer must be a MonDense, got {type(layer).__name__}")
    layer.check_params(params)


def certify_layer(layer, params, head_weight=None) -> LayerCertificate:
    """Margin, norms, Lipschitz bound and uniqueness of a monDEQ layer.

    Parameters
    ----------
    layer : opsplit.nn.MonDense
    params : opsplit.nn.DenseParams
    head_weight : array, shape (classes, width), optional
        ``W_out`` of a linear head; gives the input-to-logits bound.

    Returns
    -------
    LayerCertificate

    Examples
    --------
    >>> from opsplit import nn
    >>> from opsplit.diagnostics import certify_layer
    >>> layer = nn.MonDense(in_features=3, width=6, m=0.5)
    >>> cert = certify_layer(layer, layer.init_params(seed=0))
    >>> cert.margin >= 0.5 - 1e-12, cert.margin_check.passed, cert.unique
    (True, True, True)
    """
    from .certificates import uniqueness_certificate

    _check_layer(layer, params)
    monotone = Dense(layer.monotone_matrix(params))
    check = check_monotone(monotone, strong=layer.m)
    margin = Estimate(check.worst, method=check.method.removeprefix("exact margin: "),
                      exact=True)
    lip = opnorm(monotone)
    u_norm = opnorm(Dense(params.U))
    head = None if head_weight is None else opnorm(Dense(head_weight))
    m = float(margin)
    bound = None
    if m > 0:
        bound = float(u_norm) / m * (1.0 if head is None else float(head))
    unique, why = uniqueness_certificate(m, "exact margin of I - W")
    return LayerCertificate(
        declared_m=layer.m,
        margin=margin,
        margin_check=check,
        lipschitz=lip,
        u_norm=u_norm,
        head_norm=head,
        lipschitz_bound=bound,
        unique=bool(unique),
        uniqueness=why,
        fb_step_limit=fb_step_limit(max(m, 0.0), float(lip)),
        pr_step=optimal_step("pr", max(m, 0.0), float(lip)),
    )


def certify_classifier(model, params) -> LayerCertificate:
    """:func:`certify_layer` for an :class:`opsplit.nn.Classifier` (its head included)."""
    return certify_layer(model.layer, params.deq, params.head.weight)


@dataclass(frozen=True)
class RobustnessCertificate:
    """Certified :math:`\\ell_2` radii of a batch (host arrays).

    Attributes
    ----------
    radii : numpy.ndarray
        Per sample: no perturbation of norm below it changes the prediction
        (0 when the logit gap does not exceed the solve's error).
    predictions : numpy.ndarray
        Predicted classes.
    gaps : numpy.ndarray
        Top-1 minus top-2 logit.
    lipschitz_bound : float
        Input-to-logits bound used.
    error_bounds : numpy.ndarray
        The equilibrium solve's per-sample error bound.
    """

    radii: np.ndarray
    predictions: np.ndarray
    gaps: np.ndarray
    lipschitz_bound: float
    error_bounds: np.ndarray

    def summary(self, labels=None) -> str:
        """Min / median / max radius, and the certified accuracy at a few radii
        when ``labels`` are given."""
        r = self.radii
        lines = [
            f"certified l2 radii over {r.size} samples: min {r.min():.4g}, "
            f"median {np.median(r):.4g}, max {r.max():.4g} "
            f"(Lipschitz bound {self.lipschitz_bound:.4g})"
        ]
        if labels is not None:
            labels = np.asarray(labels)
            right = self.predictions == labels
            eps = [q for q in np.quantile(r, [0.25, 0.5, 0.75]) if q > 0]
            parts = [f"accuracy {right.mean():.1%}"]
            parts += [f"certified at ε={e:.3g}: {(right & (r >= e)).mean():.1%}" for e in eps]
            lines.append("; ".join(parts))
        return "\n".join(lines)


def robustness_radii(model, params, x, *, cert: LayerCertificate | None = None,
                     tol: float | None = None, maxiter: int = 5000) -> RobustnessCertificate:
    r"""Per-sample certified :math:`\ell_2` robustness radii of a monDEQ classifier.

    The equilibrium is solved to ``tol`` (default ``100·eps`` of the dtype)
    and its a-posteriori error bound is subtracted from the logit gap (see
    the module docstring), so the radii hold for the exact network.

    Parameters
    ----------
    model : opsplit.nn.Classifier
    params : ClassifierParams
    x : array
        A batch of inputs, in the parameters' library, dtype and device.
    cert : LayerCertificate, optional
        From :func:`certify_classifier` (computed when absent).
    tol, maxiter : float, int
        Equilibrium solve settings.

    Returns
    -------
    RobustnessCertificate

    Examples
    --------
    >>> import numpy as np
    >>> from opsplit import nn
    >>> from opsplit.diagnostics import robustness_radii
    >>> model = nn.Classifier.dense(in_features=4, width=6, num_classes=3)
    >>> params = model.init_params(seed=0, dtype="float64")
    >>> x = np.random.default_rng(0).standard_normal((5, 4))
    >>> rc = robustness_radii(model, params, x)
    >>> rc.radii.shape, bool(np.all(rc.radii >= 0))
    ((5,), True)
    """
    if cert is None:
        cert = certify_classifier(model, params)
    if cert.lipschitz_bound is None or cert.head_norm is None:
        raise ValueError("cert must come from certify_classifier with a positive margin")
    if tol is None:
        tol = 100 * float(namespace(params.head.weight).finfo(params.head.weight.dtype).eps)
    from ..nn.layers import Flatten

    flat, _ = Flatten().forward(x)
    deq = model.deq.with_options(tol=tol, maxiter=maxiter)
    z, state = deq.forward(params.deq, flat)
    logits, _ = model.head.forward(params.head, z)
    y = np.asarray(to_numpy(logits), dtype=np.float64)
    order = np.argsort(y, axis=1)
    rows = np.arange(y.shape[0])
    pred = order[:, -1]
    gap = y[rows, pred] - y[rows, order[:, -2]]
    err = state.result.error_bound
    if err is None:
        raise ValueError("the equilibrium solve gave no error bound (no margin declared)")
    err = np.broadcast_to(np.asarray(err, dtype=np.float64), gap.shape)
    s2 = math.sqrt(2.0)
    radii = np.maximum(gap - s2 * float(cert.head_norm) * err, 0.0) / (s2 * cert.lipschitz_bound)
    return RobustnessCertificate(radii, pred, gap, cert.lipschitz_bound, np.array(err))


def mondeq_step_study(model, params, x, *, methods=("FB", "PR", "DR"), steps=DEFAULT_STEPS,
                      tol: float = 1e-4, maxiter: int = 500,
                      cert: LayerCertificate | None = None) -> StepStudy:
    r"""The paper's Figure 3: iterations of each method and step on a batch.

    Every solve goes through :meth:`opsplit.nn.MonDEQ.forward` with the
    method replaced, exactly as in training.

    Parameters
    ----------
    model : opsplit.nn.Classifier or opsplit.nn.MonDEQ
    params : ClassifierParams or DenseParams
    x : array
        A batch of inputs.
    methods, steps, tol, maxiter
        As in :func:`~opsplit.diagnostics.study.step_study`.
    cert : LayerCertificate, optional
        Gives ``m`` and ``L`` for the bounds (computed when absent).

    Returns
    -------
    StepStudy
    """
    from ..nn.deq import MonDEQ
    from ..nn.layers import Flatten

    deq, deq_params = (model, params) if isinstance(model, MonDEQ) else (model.deq, params.deq)
    if cert is None:
        cert = certify_layer(deq.layer, deq_params)
    flat, _ = Flatten().forward(x)

    def run(label, step):
        solver = deq.with_options(method=METHODS[label](step=step), tol=tol, maxiter=maxiter,
                                  check_every=1)
        return solver.forward(deq_params, flat)[1].result

    return sweep(run, methods=methods, steps=steps, tol=tol, maxiter=maxiter,
                 m=float(cert.margin), L=float(cert.lipschitz))
