r"""Certificates and studies for trained monDEQ layers and classifiers.

For a layer :math:`z^* = \sigma(W z^* + U x + b)` with
:math:`I - W \succeq m I` (dense, single-convolution or multi-tier: any
:class:`~opsplit.nn.protocol.MonotoneLayer`) and a linear head
:math:`y = W_{\text{out}} R z^* + b_{\text{out}}` (``R`` the classifier's
readout: the identity, ``4 × 4`` average pooling, or the last tier):

- the margin :math:`\lambda_{\min}(\tfrac12((I - W) + (I - W)^\top)) \ge m`,
  checked exactly where the operator's structure allows (eigenvalues of the
  dense symmetric part; of the per-frequency ``C × C`` symbols of a
  convolution; of the whole dense matrix of a small multi-tier layer).  A
  large multi-tier layer's symmetric part
  :math:`mI + \mathcal A^\top\mathcal A` couples its tiers through grids of
  different sizes, so its margin is bounded below by ``m`` (the
  parametrization) and each diagonal block (tier) is checked exactly per
  frequency; and :math:`\|I - W\|_2` (exact, or the layer's upper bound);
- uniqueness of the equilibrium (the inclusion
  :math:`0 \in (I - W)z - (Ux + b) + \partial f(z)` is strongly monotone);
- the Lipschitz bound of the input-to-logits map.  For two inputs, monotonicity
  of :math:`\partial f` gives
  :math:`\langle (I - W)\Delta z - U\Delta x, \Delta z\rangle \le 0`, so
  :math:`m\|\Delta z\|^2 \le \|U\|\,\|\Delta x\|\,\|\Delta z\|` and

  .. math::

      \|\Delta y\| \le \frac{\|W_{\text{out}} R\|\,\|U\|}{m}\,\|\Delta x\|
      = \ell\,\|\Delta x\|

  (``m`` a lower bound of the margin, ``‖U‖`` an upper bound of the input
  map's norm, :meth:`~opsplit.nn.protocol.MonotoneLayer.input_norm`)

  (Pabbaraju, Winston & Kolter, ICLR 2021);
- per sample, the certified :math:`\ell_2` robustness radius: a perturbation
  changes a logit difference :math:`y_c - y_j` by at most
  :math:`\|e_c - e_j\|\,\|\Delta y\| = \sqrt2\,\ell\,\|\Delta x\|`, so the
  prediction cannot change within

  .. math::

      r = \frac{(y_c - \max_{j \ne c} y_j)
               - \sqrt2\,\|W_{\text{out}} R\|\,\varepsilon}{\sqrt2\,\ell},

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

from .._backend import device, namespace, to_numpy
from .._vectors import shape_size
from ..diagnostics import (
    CheckReport,
    Estimate,
    check_monotone,
    opnorm,
    uniqueness_certificate,
)
from ..diagnostics._report import compare
from ..diagnostics.linear import margin as exact_or_dense_margin
from ..diagnostics.study import DEFAULT_STEPS, StepStudy, sweep
from ..operators import BlockLowerTriangular, Dense
from ..operators.spectral import exact_range
from ..splitting import METHODS, inclusion_methods, method_from_name
from .deq import MonDEQ
from .protocol import MonotoneLayer

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
        The exact :math:`\\lambda_{\\min}` of the symmetric part of ``I - W``
        (``exact=True``), or, for a multi-tier layer too large for its dense
        matrix, the parametrization's lower bound ``m`` (``exact=False``).
    margin_check : CheckReport
        ``margin >= declared_m`` (up to rounding); for the large multi-tier
        layers, every tier's exact block margin ``>= declared_m``.
    lipschitz : Estimate
        :math:`\\|I - W\\|_2` (exact, or the layer's upper bound for large
        multi-tier layers).
    u_norm : Estimate
        An upper bound on the input map's norm :math:`\\|U\\|_2` (exact for
        dense layers).
    head_norm : Estimate or None
        :math:`\\|W_{\\text{out}} R\\|_2` (head and readout) when a head is given.
    lipschitz_bound : float or None
        :math:`\\|W_{\\text{out}} R\\|\\,\\|U\\|/m` (input to logits), or
        :math:`\\|U\\|/m` (input to equilibrium) without a head; ``m`` is
        :attr:`margin`.
    unique : bool
    uniqueness : str
    step_limits : dict
        For every registered method that can solve the layer's inclusion
        (:func:`opsplit.splitting.inclusion_methods`), the largest step for
        which its contraction bound holds (forward–backward: :math:`2m/L^2`; ``inf``: every step).
    best_steps : dict
        For every registered method, the step minimizing its bound
        (``None`` where it has none, e.g. forward–backward with ``m = 0``).
    tier_margins : tuple of Estimate or None
        For a multi-tier layer, the exact margin of each diagonal block
        :math:`(I - W)_{ii}` (per frequency of its polyphase symbol); ``None``
        for single-block layers.
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
    tier_margins: tuple | None = None

    def summary(self) -> str:
        """The certificate as printed by ``opsplit check``."""
        lines = [
            f"margin   λ_min(sym(I - W)) {_bounded(self.margin, '≥')}  "
            f"(declared m = {self.declared_m:g}: {'OK' if self.margin_check else 'VIOLATED'})",
        ]
        if self.tier_margins is not None:
            lines.append("         per tier (diagonal blocks, exact): " + ", ".join(
                f"{i}: {float(t):.6g}" for i, t in enumerate(self.tier_margins)))
        lines += [
            f"norm     ‖I - W‖₂ {_bounded(self.lipschitz, '≤')}",
            f"         ‖U‖₂ ≤ {float(self.u_norm):.6g}"
            + ("" if self.head_norm is None else
               f", ‖W_out R‖₂ = {float(self.head_norm):.6g} (head after the readout)"),
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


def _bounded(value: Estimate, relation: str) -> str:
    """``= value (exact: how)``, or ``relation value (how)`` for a bound."""
    if value.exact:
        return f"= {value.describe()}"
    return f"{relation} {float(value):.6g} ({value.method})"


def _step_theory(m: float, L: float):
    """Every registered contracting method's step limit and best step for
    constants ``m``, ``L`` (FISTA's limit bounds an objective, not a contraction)."""
    limits, best = {}, {}
    for name in inclusion_methods(2):
        method = method_from_name(name, step=1.0)
        if not method.contracts:
            continue
        limits[name] = method.step_limit(m, L)
        try:
            best[name] = method.optimal_step(m, L)
        except ValueError:  # no contraction bound (e.g. forward-backward with m = 0)
            best[name] = None
    return limits, best


#: Largest number of hidden units for which a margin or norm without a
#: structural exact rule is computed from the dense matrix (small multi-tier
#: layers); larger ones use the layer's bounds.
DENSE_LIMIT = 2048


def _check_layer(layer, params):
    if not isinstance(layer, MonotoneLayer):
        raise TypeError(
            "layer must be a MonotoneLayer (nn.MonDense, nn.MonConv, nn.MonMultiConv), "
            f"got {type(layer).__name__}"
        )
    layer.check_params(params)


def _tier_margins(monotone) -> tuple | None:
    """The exact margins of the diagonal blocks of a block operator (one per tier)."""
    if not isinstance(monotone, BlockLowerTriangular):
        return None
    return tuple(exact_or_dense_margin(row[i], method="exact")
                 for i, row in enumerate(monotone.blocks))


def _margin(layer, monotone, tiers) -> tuple[Estimate, CheckReport]:
    """The margin (exact, else the parametrization's lower bound) and its check."""
    exact = exact_range(monotone) is not None or shape_size(monotone.in_shape) <= DENSE_LIMIT
    if exact:
        check = check_monotone(monotone, strong=layer.m)
        how = check.method.removeprefix("exact margin: ")
        return Estimate(check.worst, method=how, exact=True), check
    # Too large for a dense matrix and no single Fourier basis: the symmetric part
    # is m I + 𝒜ᵀ𝒜 ⪰ m I by construction; check each tier's diagonal block exactly
    # (a necessary condition: the margin is at most the smallest block margin).
    worst = min(tiers)
    tol = 1e-8 * max(1.0, abs(float(worst)))
    check = compare("strongly monotone", float(worst), layer.m, tol, "higher",
                    "min over tiers of the diagonal block's exact margin",
                    "per-tier exact margins: " + worst.method)
    bound = Estimate(layer.m, method="lower bound from the parametrization "
                                     "(sym(I - W) = m I + 𝒜ᵀ𝒜)")
    return bound, check


def _norm(layer, params, monotone) -> Estimate:
    """``‖I - W‖₂``: exact where the structure or the size allows, else the
    layer's upper bound."""
    exact = (exact_range(monotone) is not None or isinstance(monotone, Dense)
             or shape_size(monotone.in_shape) <= DENSE_LIMIT)
    if exact:
        return opnorm(monotone, dense_limit=DENSE_LIMIT)
    return Estimate(layer.lipschitz(params), method="upper bound (layer.lipschitz)")


def certify_layer(layer, params, head_weight=None) -> LayerCertificate:
    """Margin, norms, Lipschitz bound and uniqueness of a monDEQ layer.

    Parameters
    ----------
    layer : MonotoneLayer
        :class:`~opsplit.nn.MonDense`, :class:`~opsplit.nn.MonConv` or
        :class:`~opsplit.nn.MonMultiConv`.
    params : the layer's parameters
    head_weight : array, shape (classes, state size), optional
        The matrix of the linear map from the (flattened) equilibrium to the
        logits: ``W_out`` of a head reading ``z`` itself, or ``W_out R`` with a
        readout ``R`` (:func:`certify_classifier` forms it); gives the
        input-to-logits bound.

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
    monotone = layer.monotone(params)
    tiers = _tier_margins(monotone)
    margin, check = _margin(layer, monotone, tiers)
    lip = _norm(layer, params, monotone)
    u_norm = Estimate(layer.input_norm(params), method="layer.input_norm")
    head = None
    if head_weight is not None:
        xp = namespace(head_weight)
        head = opnorm(Dense(xp.reshape(head_weight, (head_weight.shape[0], -1))))
    m = float(margin)
    bound = None
    if m > 0:
        bound = float(u_norm) / m * (1.0 if head is None else float(head))
    what = "exact margin of I - W" if margin.exact else "margin bound of I - W"
    unique, why = uniqueness_certificate(m, what)
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
        tier_margins=tiers,
    )


def _readout_matrix(model, params):
    """The matrix ``W_out R`` of the map from the equilibrium (flattened, tiers
    concatenated) to the logits: the readout's adjoint applied to each row of
    ``W_out`` (exact; ``classes × state size``)."""
    weight = params.head.weight
    xp = namespace(weight)
    layer = model.layer
    n = weight.shape[0]
    shape = (n, layer.in_features) if model.kind == "dense" else (
        n, layer.in_channels, *layer.image_shape)
    x0 = xp.zeros(shape, dtype=weight.dtype, device=device(weight))
    z = layer.injection(params.deq, model.equilibrium_input(x0))  # any state of the right shape
    _, cache = model.readout(z)
    rows = model.readout_backward(z, cache, weight)
    parts = rows if isinstance(rows, tuple) else (rows,)
    return xp.concat([xp.reshape(r, (n, -1)) for r in parts], axis=1)


def certify_classifier(model, params) -> LayerCertificate:
    """:func:`certify_layer` for an :class:`opsplit.nn.Classifier`: its head and
    readout (pooling, last tier) included, as the exact matrix ``W_out R``."""
    return certify_layer(model.layer, params.deq, _readout_matrix(model, params))


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
    deq = model.deq.with_options(tol=tol, maxiter=maxiter)
    z, state = deq.forward(params.deq, model.equilibrium_input(x))
    logits, _ = model.head.forward(params.head, model.readout(z)[0])
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
    params : ClassifierParams, or the layer's parameters for a MonDEQ
        Its parameters.
    x : array
        A batch of inputs: images for a classifier (flattened for a dense
        layer), the layer's own inputs for a :class:`~opsplit.nn.MonDEQ`.
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
    if isinstance(model, MonDEQ):
        deq, deq_params, inputs = model, params, x
    else:
        deq, deq_params, inputs = model.deq, params.deq, model.equilibrium_input(x)
    if cert is None:
        cert = certify_layer(deq.layer, deq_params)
    own = deq.method

    def method(label, step):
        built = method_from_name(label, step=step)
        return dataclasses.replace(own, step=step) if type(built) is type(own) else built

    def run(label, step):
        solver = deq.with_options(method=method(label, step), tol=tol, maxiter=maxiter,
                                  check_every=1)
        return solver.forward(deq_params, inputs)[1].result

    return sweep(run, methods=methods, steps=steps, tol=tol, maxiter=maxiter,
                 m=float(cert.margin), L=float(cert.lipschitz))
