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

The certified accuracy at a radius :math:`\varepsilon` is the fraction of
samples that are classified right and whose radius is at least
:math:`\varepsilon`.

References
----------
E. Winston and J. Z. Kolter, "Monotone operator equilibrium networks",
NeurIPS 2020.  C. Pabbaraju, E. Winston and J. Z. Kolter, "Estimating
Lipschitz constants of monotone deep equilibrium models", ICLR 2021.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from .._backend import namespace, to_numpy
from ..diagnostics import (
    CheckReport,
    Estimate,
    check_monotone,
    opnorm,
    uniqueness_certificate,
)
from ..diagnostics.study import DEFAULT_STEPS, StepStudy, sweep
from ..operators import Dense
from ..splitting import METHODS, method_from_name
from .deq import MonDEQ
from .layers import Flatten
from .mondense import MonDense

__all__ = [
    "DEFAULT_EPS",
    "LayerCertificate",
    "certify_layer",
    "certify_classifier",
    "RobustnessCertificate",
    "robustness_radii",
    "mondeq_step_study",
]


#: Default ℓ2 radii of ``opsplit check``'s certified accuracy, in pixel units of
#: images in ``[0, 1]`` (before standardisation).  Chosen from the radii of the
#: default ``opsplit train`` model on mnist-sample (median about 0.4, largest
#: about 1): the certified accuracy falls across them instead of reading the
#: plain accuracy or zero everywhere.
DEFAULT_EPS = (0.1, 0.25, 0.5, 1.0)


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
    step_limits : dict
        For every registered method (:data:`opsplit.splitting.METHODS`), the
        largest step for which its contraction bound holds
        (forward–backward: :math:`2m/L^2`; ``inf``: every step).
    best_steps : dict
        For every registered method, the step minimizing its bound
        (``None`` where it has none, e.g. forward–backward with ``m = 0``).
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
    step_limits: dict
    best_steps: dict

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
            "steps with a contraction bound: "
            + "; ".join(self._steps(name) for name in self.step_limits),
        ]
        return "\n".join(lines)

    def _steps(self, name) -> str:
        limit, best = self.step_limits[name], self.best_steps[name]
        formula = METHODS[name].step_limit_formula
        text = (f"{name}: every α" if math.isinf(limit)
                else f"{name}: α < {formula or 'its limit'} = {limit:.4g}")
        return text if best is None else f"{text} (bound best at α = {best:.4g})"


def _step_theory(m: float, L: float):
    """Every registered method's step limit and best step for constants ``m``, ``L``."""
    limits, best = {}, {}
    for name in METHODS:
        method = method_from_name(name, step=1.0)
        limits[name] = method.step_limit(m, L)
        try:
            best[name] = method.optimal_step(m, L)
        except ValueError:  # no contraction bound (e.g. forward-backward with m = 0)
            best[name] = None
    return limits, best


def _check_layer(layer, params):
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
    >>> layer = nn.MonDense(in_features=3, width=6, m=0.5)
    >>> cert = nn.certify_layer(layer, layer.init_params(seed=0))
    >>> cert.margin >= 0.5 - 1e-12, cert.margin_check.passed, cert.unique
    (True, True, True)
    """
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
    limits, best = _step_theory(max(m, 0.0), float(lip))
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
        step_limits=limits,
        best_steps=best,
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

    def certified_accuracy(self, labels, eps, *, scale: float = 1.0) -> np.ndarray:
        """Fraction of samples predicted right with a certified radius ``>= ε``.

        Parameters
        ----------
        labels : array of int
            True classes of the samples.
        eps : float or sequence of float
            Perturbation sizes :math:`\\varepsilon \\ge 0` (ℓ2), in units where one
            model-input unit is ``scale``.
        scale : float
            The size of one model-input unit in the units of ``eps``: for
            images standardised as ``(pixel - mean) / std`` with pixels in
            ``[0, 1]``, ``scale=std`` measures ``eps`` in pixel units.

        Returns
        -------
        numpy.ndarray
            One fraction per ``eps``; ``eps = 0`` gives the plain accuracy.
        """
        labels = np.asarray(labels)
        if labels.shape != self.predictions.shape:
            raise ValueError(f"labels must have shape {self.predictions.shape}, "
                             f"got {labels.shape}")
        eps = np.atleast_1d(np.asarray(eps, dtype=np.float64))
        if not np.all(eps >= 0) or not np.all(np.isfinite(eps)):
            raise ValueError(f"eps must be finite numbers >= 0, got {eps.tolist()}")
        if not scale > 0 or not math.isfinite(scale):
            raise ValueError(f"scale must be a finite number > 0, got {scale}")
        right = self.predictions == labels
        radii = self.radii * scale
        return np.array([np.mean(right & ((e == 0) | (radii >= e))) for e in eps])

    def summary(self, labels=None, *, eps=DEFAULT_EPS, scale: float = 1.0,
                unit: str = "input units") -> str:
        """Min / median / max radius and, with ``labels``, the accuracy and the
        certified accuracy at each ``eps`` (see :meth:`certified_accuracy`;
        ``unit`` names the units of ``eps`` in the text)."""
        r = self.radii * scale
        lines = [
            f"certified l2 radii over {r.size} samples ({unit}): min {r.min():.4g}, "
            f"median {np.median(r):.4g}, max {r.max():.4g} "
            f"(Lipschitz bound {self.lipschitz_bound:.4g})"
        ]
        if labels is not None:
            eps = tuple(float(e) for e in np.atleast_1d(eps))
            fractions = self.certified_accuracy(labels, (0.0, *eps), scale=scale)
            parts = [f"accuracy {fractions[0]:.1%}"]
            parts += [f"ε={e:g}: {f:.1%}" for e, f in zip(eps, fractions[1:])]
            lines.append(f"{parts[0]}; certified accuracy at l2 radius "
                         + ", ".join(parts[1:]))
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
    tol : float, optional
        Residual tolerance of the equilibrium solve (default ``100·eps`` of
        the dtype); its a-posteriori error bound is subtracted from the gaps.
    maxiter : int
        Iteration limit of the equilibrium solve.

    Returns
    -------
    RobustnessCertificate

    Examples
    --------
    >>> import numpy as np
    >>> from opsplit import nn
    >>> model = nn.Classifier.dense(in_features=4, width=6, num_classes=3)
    >>> params = model.init_params(seed=0, dtype="float64")
    >>> x = np.random.default_rng(0).standard_normal((5, 4))
    >>> rc = nn.robustness_radii(model, params, x)
    >>> rc.radii.shape, bool(np.all(rc.radii >= 0))
    ((5,), True)
    """
    if cert is None:
        cert = certify_classifier(model, params)
    if cert.lipschitz_bound is None or cert.head_norm is None:
        raise ValueError("cert must come from certify_classifier with a positive margin")
    if tol is None:
        tol = 100 * float(namespace(params.head.weight).finfo(params.head.weight.dtype).eps)
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


def mondeq_step_study(model, params, x, *, methods=("fb", "pr", "dr"), steps=DEFAULT_STEPS,
                      tol: float = 1e-4, maxiter: int = 500,
                      cert: LayerCertificate | None = None) -> StepStudy:
    r"""The paper's Figure 3: iterations of each method and step on a batch.

    Every solve goes through :meth:`opsplit.nn.MonDEQ.forward` with the
    method replaced, exactly as in training.  The model's own method keeps
    its other hyperparameters (e.g. a Douglas–Rachford relaxation); the other
    methods are built from their registered names with default
    hyperparameters.

    Parameters
    ----------
    model : opsplit.nn.Classifier or opsplit.nn.MonDEQ
        The model whose equilibrium is solved.
    params : ClassifierParams or DenseParams
        Its parameters.
    x : array
        A batch of inputs.
    methods : sequence of str
        Registered method names (:data:`opsplit.splitting.METHODS`).
    steps : sequence of float
        Step sizes.
    tol : float
        Relative residual to reach.
    maxiter : int
        Iterations after which a run counts as failed.
    cert : LayerCertificate, optional
        Gives ``m`` and ``L`` for the bounds (computed when absent).

    Returns
    -------
    StepStudy
    """
    deq, deq_params = (model, params) if isinstance(model, MonDEQ) else (model.deq, params.deq)
    if cert is None:
        cert = certify_layer(deq.layer, deq_params)
    flat, _ = Flatten().forward(x)
    own = deq.method

    def method(label, step):
        built = method_from_name(label, step=step)
        return dataclasses.replace(own, step=step) if type(built) is type(own) else built

    def run(label, step):
        solver = deq.with_options(method=method(label, step), tol=tol, maxiter=maxiter,
                                  check_every=1)
        return solver.forward(deq_params, flat)[1].result

    return sweep(run, methods=methods, steps=steps, tol=tol, maxiter=maxiter,
                 m=float(cert.margin), L=float(cert.lipschitz))
