r"""The monDEQ equilibrium and its implicit, hand-derived backward pass.

Both passes are monotone inclusions solved by :func:`opsplit.solve` with the
same splitting methods (Winston & Kolter 2020, Theorems 1–3).

**Forward.**  With :math:`\sigma = \operatorname{prox}_f` the equilibrium
:math:`z = \sigma(W z + U x + b)` is the zero of

.. math::

    0 \in \underbrace{(I - W) z - (U x + b)}_{F(z)} + \partial f(z),

``F`` being ``m``-strongly monotone; forward–backward uses
:math:`\operatorname{prox}_{\alpha f}`, Peaceman–Rachford and Douglas–Rachford
also :math:`(I + \alpha(I - W))^{-1}` and its Cayley map
:math:`2(I + \alpha(I - W))^{-1} - I`; :meth:`MonDEQ.prepare` computes them
once per parameter value, and the backward and tangent problems use the
same value (the adjoint problem through transposed views).

**Backward.**  Let :math:`v = W z + U x + b` be the pre-activation at the
equilibrium and :math:`J = \operatorname{diag}\sigma'(v)` (entries in
:math:`[0, 1]` because a prox is firmly nonexpansive).  Differentiating
:math:`z = \sigma(v)` gives :math:`dz = (I - JW)^{-1} J\,dq` for a change
:math:`dq` of :math:`q = Wz + Ux + b` at fixed ``z``, so for a loss with
:math:`g = \partial\ell/\partial z`

.. math::

    \frac{\partial \ell}{\partial q} = r = J u,
    \qquad u = (I - J W)^{-\top} g = (I - W^\top J)^{-1} g .

Writing :math:`D = J^{-1} - I` (so :math:`D \succeq 0`), ``r`` is the zero of
the monotone inclusion (Theorem 3)

.. math::

    0 \in \underbrace{(I - W^\top) r}_{\tilde F(r)} + \underbrace{D r - g}_{\tilde G(r)},

since :math:`(I - W^\top) J u + (I - J) u - g = (I - W^\top J) u - g = 0`.
The resolvent of :math:`\alpha\tilde G` is elementwise

.. math::

    (I + \alpha \tilde G)^{-1}(y) = \frac{y + \alpha g}{1 + \alpha D}
    = \frac{J\,(y + \alpha g)}{J + \alpha (1 - J)},

with denominator :math:`1 + \alpha D_{ii}` (a printed version of the paper
shows :math:`1 + \alpha(1 + D_{ii})`, which is wrong); the second form sets
the entries with :math:`J_{ii} = 0` (:math:`D_{ii} = \infty`) directly to
``r_i = 0`` and never divides by zero.  The resolvent of
:math:`\alpha\tilde F` is :math:`((I + \alpha(I - W))^{-1})^\top`, the
forward pass's inverse, transposed.  Gradients of ``A, B, U, b`` (``g, h``)
and ``x`` follow from ``r`` (the layer's ``grads``, e.g. :meth:`MonDense.grads
<opsplit.nn.mondense.MonDense.grads>`).

The tangent (forward-mode) problem is the same with :math:`I - W` in place of
:math:`I - W^\top`: :math:`dz` is the zero of :math:`(I - W)dz + D\,dz - dq`.

References
----------
E. Winston and J. Z. Kolter, "Monotone operator equilibrium networks",
NeurIPS 2020, Theorems 1–3 and Appendix C.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, NamedTuple

from .._backend import check_floating, device, namespace
from .._result import SolveResult
from .._solve import solve
from .._validate import check_positive, check_positive_int
from .._vectors import add, first_array, scale, shape_of, sub, vmap
from ..operators import (
    LinearMonotone,
    LinearOperator,
    LinearSteps,
    ResolventOperator,
    flatten,
    precompute,
    unflatten,
)
from ..problems import Inclusion
from ..prox import Subdifferential
from ..splitting import PeacemanRachford, SplittingMethod
from .protocol import MonotoneLayer

__all__ = ["MonDEQ", "EquilibriumState", "PreparedOperators", "LinearizedActivation"]


class PreparedOperators(NamedTuple):
    r"""The operators of one parameter value: computed once per parameter update.

    :meth:`MonDEQ.prepare` returns it; :meth:`MonDEQ.forward` takes it as
    ``prepared=`` and leaves it in the :class:`EquilibriumState`, from which
    :meth:`MonDEQ.backward` and :meth:`MonDEQ.jvp` reuse it.  Nothing in it
    is computed again: the adjoint (backward) problem uses ``backward.H``,
    transposed views of the same operators.

    Attributes
    ----------
    monotone : LinearOperator
        :math:`I - W` (the layer's :meth:`~opsplit.nn.protocol.MonotoneLayer.monotone`).
    margin : float
        Its strong-monotonicity margin ``m``.
    forward : LinearSteps
        :func:`~opsplit.operators.precompute` of :math:`I - W` at the forward
        method's step, holding the maps the method applies
        (:attr:`~opsplit.SplittingMethod.applies_A`): the inverse
        :math:`(I + \alpha(I - W))^{-1}`, its Cayley map, the forward step
        :math:`I - \alpha(I - W)`.
    backward : LinearSteps
        The same at the backward method's step; the very same object as
        ``forward`` when the two steps agree.
    """

    monotone: LinearOperator
    margin: float
    forward: LinearSteps
    backward: LinearSteps


class EquilibriumState(NamedTuple):
    """What :meth:`MonDEQ.forward` leaves for the backward pass.

    Attributes
    ----------
    x : array
        The input, shape ``(batch, ...)``.
    z : array or tuple of arrays
        The equilibrium :math:`z^*` (a hidden state, batch axis first).
    pre_activation : array or tuple of arrays
        :math:`v = W z^* + U x + b`, where :math:`\\sigma'` is evaluated.
    prepared : PreparedOperators
        :math:`I - W` and its precomputed steps, shared with the backward pass.
    result : SolveResult
        The forward solve (``result.iterations``, ``result.history``,
        ``result.success``, ``result.message``).
    """

    x: Any
    z: Any
    pre_activation: Any
    prepared: PreparedOperators
    result: SolveResult


class LinearizedActivation(ResolventOperator):
    r"""The monotone operator :math:`\tilde G(r) = D r - c` with :math:`D = 1/J - 1`.

    ``J`` (the activation's derivative at the equilibrium, entries in
    ``[0, 1]``) and ``c`` have the batch's shape (arrays, or tuples of arrays
    for block states); entries with ``J = 0`` force ``r = 0``.  Its
    resolvent is elementwise

    .. math::

        (I + \alpha\tilde G)^{-1}(y) = \frac{J\,(y + \alpha c)}{J + \alpha(1 - J)}
        = \frac{y + \alpha c}{1 + \alpha D} .

    Parameters
    ----------
    jac : array or tuple of arrays
        The diagonal :math:`J`.
    rhs : array or tuple of arrays
        The constant ``c``, of ``jac``'s shape.

    Examples
    --------
    >>> import numpy as np
    >>> G = LinearizedActivation(np.array([1.0, 0.5, 0.0]), np.array([1.0, 1.0, 1.0]))
    >>> G.resolvent(1.0)(np.zeros(3))     # D = (0, 1, inf): (0 + 1)/(1 + D)
    array([1. , 0.5, 0. ])
    """

    def __init__(self, jac, rhs):
        if shape_of(jac) != shape_of(rhs):
            raise ValueError(f"jac {shape_of(jac)} and rhs {shape_of(rhs)} differ")
        self.jac, self.rhs = jac, rhs

    def validate(self, x, name="x"):
        if shape_of(x) != shape_of(self.jac):
            raise ValueError(f"{name} has shape {shape_of(x)}, expected {shape_of(self.jac)}")

    def _affine(self, step, scale_, offset):
        """``y ↦ gain·y + shift`` with ``gain = scale·factor + offset`` and
        ``shift = scale·factor·α c``, precomputed (two passes per application)."""
        step = check_positive(step, "step")

        def parts(jac, rhs):
            factor = jac / (jac + step * (1.0 - jac))
            return scale_ * factor + offset, (scale_ * step) * (factor * rhs)

        if isinstance(self.jac, tuple):
            pairs = tuple(parts(j, c) for j, c in zip(self.jac, self.rhs))
            gains, shifts = tuple(g for g, _ in pairs), tuple(s for _, s in pairs)
            return lambda y: tuple(g * part + s for g, part, s in zip(gains, y, shifts))
        gain, shift = parts(self.jac, self.rhs)
        return lambda y: gain * y + shift

    def resolvent(self, step):
        return self._affine(step, 1.0, 0.0)

    def reflected_resolvent(self, step):
        # 2J - I is elementwise affine too.
        return self._affine(step, 2.0, -1.0)

    def resolvents(self, step):
        return self.resolvent(step), self.reflected_resolvent(step)


def _check_like(value, like, name, what):
    """Raise ``TypeError``/``ValueError`` naming ``name`` unless ``value`` has the
    block structure, shapes and dtypes of ``like`` (an array or a tuple of arrays,
    ``what`` in the message) and is of its library."""
    if isinstance(like, tuple):
        if not isinstance(value, tuple):
            raise TypeError(
                f"{name} must be a tuple of {len(like)} arrays (one per tier) like {what}, "
                f"got {type(value).__name__}"
            )
        if len(value) != len(like):
            raise ValueError(
                f"{name} must hold {len(like)} arrays (one per tier) like {what}, "
                f"got {len(value)}"
            )
        for i, (v, ref) in enumerate(zip(value, like)):
            _check_like(v, ref, f"{name}[{i}]", f"{what}[{i}]")
        return
    if isinstance(value, tuple):
        raise TypeError(f"{name} must be an array like {what}, got a tuple")
    check_floating(value, name)
    if tuple(value.shape) != tuple(like.shape):
        raise ValueError(
            f"{name} must have the shape of {what} {tuple(like.shape)}, got {tuple(value.shape)}"
        )
    if value.dtype != like.dtype:
        raise TypeError(f"{name} has dtype {value.dtype} but {what} has {like.dtype}")
    try:
        namespace(value, like)
    except TypeError as exc:
        raise TypeError(f"{name} and {what} come from different libraries: {exc}") from exc
    if device(value) != device(like):
        raise ValueError(f"{name} is on device {device(value)!r} but {what} is on {device(like)!r}")


def _check_state(state):
    if not isinstance(state, EquilibriumState):
        raise TypeError(f"state must be the EquilibriumState of MonDEQ.forward, got "
                        f"{type(state).__name__}")


def _resolve_activation(activation):
    from ..prox.activations import get_activation

    return get_activation(activation)


#: The attribute of LinearSteps holding each map a method may apply (its ``applies_A``).
_STEP_MAPS = {"resolvent": "inverse", "reflection": "cayley", "forward": "forward"}


@dataclass(frozen=True)
class MonDEQ:
    r"""A monotone operator equilibrium network layer: forward, backward, JVP.

    Parameters
    ----------
    layer : MonotoneLayer
        The parametrization of ``W``, ``U``, ``b``: :class:`~opsplit.nn.MonDense`
        or any :class:`~opsplit.nn.protocol.MonotoneLayer`.
    activation : str or activation
        ``"relu"`` (default), ``"leaky_relu"``, ``"hardtanh"``, ``"tanh"``,
        ``"sigmoid"``, ``"softplus"``, or an activation object from
        :mod:`opsplit.prox.activations` (a proximal function with
        ``derivative``); used through its :math:`\operatorname{prox}^\alpha`,
        inside the layer's :meth:`~opsplit.nn.protocol.MonotoneLayer.nonlinearity`
        (the convolutional layers keep the padding ring at zero whatever the
        activation; see :attr:`nonlinearity`).
    method : SplittingMethod
        Forward solver: ``ops.PeacemanRachford(step=1.0)`` (default),
        ``ops.DouglasRachford`` or ``ops.ForwardBackward`` (needs
        :math:`\alpha < 2m/L^2`, see
        :meth:`MonDense.lipschitz <opsplit.nn.mondense.MonDense.lipschitz>`).
    tol : float
        Forward stopping tolerance (relative fixed-point residual, see
        :func:`opsplit.solve`).
    maxiter : int
        Forward iteration limit.
    backward_method : SplittingMethod, optional
        Solver of the backward (and tangent) problem; defaults to ``method``.
    backward_tol : float, optional
        Its tolerance; defaults to ``tol``.
    backward_maxiter : int, optional
        Its iteration limit; defaults to ``maxiter``.
    check_every : int or "auto"
        Host checks of the residual: every ``check_every`` iterations, or
        where the measured rate predicts convergence (``"auto"``, the
        default; see :func:`opsplit.solve`).
    record : {"checks", "every"}
        Which residuals the forward and backward solves compute:
        ``"checks"`` (default) only at the host checks, so an iteration does
        the method's work and nothing else (``state.result.history`` holds
        the checked iterations' residuals, at
        ``state.result.history_iterations``); ``"every"`` at every
        iteration (see :func:`opsplit.solve`).  The solutions are the same.

    Notes
    -----
    A solve that does not converge is not an error: ``state.result.success``
    and ``state.result.message`` say so (training loops log it).  Arrays stay
    in their library, device and dtype (float32 in, float32 out).

    The precomputation is one value per parameter update
    (:meth:`prepare`): per distinct step size, only the maps of :math:`I - W`
    the methods apply (the inverse :math:`(I + \alpha(I - W))^{-1}` for
    Douglas–Rachford, its Cayley map for Peaceman–Rachford, the forward-step
    matrix for forward–backward); the backward problem uses their
    transposes.

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> from opsplit import nn
    >>> layer = nn.MonDense(in_features=3, width=5, m=1.0)
    >>> params = layer.init_params(seed=0)
    >>> deq = nn.MonDEQ(layer, method=ops.PeacemanRachford(step=1.0), tol=1e-10)
    >>> x = np.random.default_rng(1).standard_normal((2, 3))
    >>> z, state = deq.forward(params, x)
    >>> W = layer.weight(params)
    >>> np.allclose(z, np.maximum(z @ W.T + x @ params.U.T + params.b, 0)), state.result.success
    (True, True)
    >>> grads, grad_x = deq.backward(params, state, np.ones_like(z))
    >>> grads.A.shape, grad_x.shape
    ((5, 5), (2, 3))
    """

    layer: MonotoneLayer
    activation: Any = "relu"
    method: SplittingMethod = PeacemanRachford(step=1.0)
    tol: float = 1e-4
    maxiter: int = 500
    backward_method: SplittingMethod | None = None
    backward_tol: float | None = None
    backward_maxiter: int | None = None
    check_every: int | str = "auto"
    record: str = "checks"

    def __post_init__(self):
        if not isinstance(self.layer, MonotoneLayer):
            raise TypeError(
                "layer must be a MonotoneLayer (e.g. nn.MonDense), "
                f"got {type(self.layer).__name__}"
            )
        object.__setattr__(self, "activation", _resolve_activation(self.activation))
        # the layer's own nonlinearity around it (the border mask of conv layers);
        # not a field: ``activation`` (and so the configuration) keeps the user's.
        object.__setattr__(self, "_sigma", self.layer.nonlinearity(self.activation))
        for name in ("method", "backward_method"):
            value = getattr(self, name)
            if value is None and name == "backward_method":
                continue
            if not isinstance(value, SplittingMethod):
                raise TypeError(
                    f"{name} must be a SplittingMethod (e.g. ops.PeacemanRachford(step=1.0)), "
                    f"got {type(value).__name__}"
                )
        check_positive(self.tol, "tol")
        check_positive_int(self.maxiter, "maxiter")
        if self.check_every != "auto":
            check_positive_int(self.check_every, "check_every")
        if self.record not in ("checks", "every"):
            raise ValueError(f"record must be 'checks' or 'every', got {self.record!r}")
        if self.backward_tol is not None:
            check_positive(self.backward_tol, "backward_tol")
        if self.backward_maxiter is not None:
            check_positive_int(self.backward_maxiter, "backward_maxiter")

    # -- configuration ------------------------------------------------------------
    @property
    def nonlinearity(self):
        r"""The nonlinearity :math:`\sigma` actually applied: ``layer.nonlinearity(activation)``
        (:meth:`MonotoneLayer.nonlinearity <opsplit.nn.protocol.MonotoneLayer.nonlinearity>`),
        i.e. :attr:`activation` itself for a dense layer and :attr:`activation`
        in the interior with ``0`` on the padding ring of every grid for the
        convolutional layers."""
        return self._sigma

    @property
    def _bw_method(self):
        return self.method if self.backward_method is None else self.backward_method

    @property
    def _bw_tol(self):
        return self.tol if self.backward_tol is None else self.backward_tol

    @property
    def _bw_maxiter(self):
        return self.maxiter if self.backward_maxiter is None else self.backward_maxiter

    def with_step(self, step: float, backward_step: float | None = None) -> MonDEQ:
        """A copy with the forward method's step ``α`` replaced.

        The backward problem follows when it shares the forward method;
        an explicit ``backward_method`` keeps its step unless ``backward_step``
        is given.
        """
        check_positive(step, "step")
        new = {"method": dataclasses.replace(self.method, step=float(step))}
        if backward_step is not None:
            check_positive(backward_step, "backward_step")
            new["backward_method"] = dataclasses.replace(self._bw_method, step=float(backward_step))
        return dataclasses.replace(self, **new)

    def with_options(self, **changes) -> MonDEQ:
        """A copy with fields replaced (``tol=``, ``maxiter=``, ``backward_method=``, ...)."""
        return dataclasses.replace(self, **changes)

    # -- precomputation -----------------------------------------------------------
    def prepare(self, params) -> PreparedOperators:
        r"""Everything the solves need of :math:`I - W`, once per parameter update.

        For each distinct step size of the forward and backward methods one
        :func:`~opsplit.operators.precompute` of the maps of ``A`` the methods
        apply, read from their :attr:`~opsplit.SplittingMethod.applies_A`: the inverse
        :math:`(I + \alpha(I - W))^{-1}` (Douglas–Rachford), its Cayley map
        (Peaceman–Rachford), the forward step :math:`I - \alpha(I - W)`
        (forward–backward).  Pass the result as ``prepared=`` to
        :meth:`forward`; the backward and tangent solves reuse it through the
        state, the adjoint problem by transposed views.

        Parameters
        ----------
        params : parameters of :attr:`layer`

        Returns
        -------
        PreparedOperators
        """
        monotone = self.layer.monotone(params)
        needs: dict[float, set[str]] = {}
        for method in (self.method, self._bw_method):
            needs.setdefault(method.step, set()).update(method.applies_A)
        steps = {
            step: precompute(monotone, step, **{"resolvent": False, **dict.fromkeys(maps, True)})
            for step, maps in needs.items()
        }
        return PreparedOperators(
            monotone=monotone,
            margin=self.layer.m,
            forward=steps[self.method.step],
            backward=steps[self._bw_method.step],
        )

    def _check_prepared(self, prepared):
        if not isinstance(prepared, PreparedOperators):
            raise TypeError(
                "prepared must be the PreparedOperators of MonDEQ.prepare(params), "
                f"got {type(prepared).__name__}"
            )
        for role, method, steps in (
            ("forward", self.method, prepared.forward),
            ("backward", self._bw_method, prepared.backward),
        ):
            if steps.step != method.step or any(
                getattr(steps, _STEP_MAPS[name]) is None for name in method.applies_A
            ):
                raise ValueError(
                    f"prepared does not fit the {role} method {method}: it was made by "
                    "another MonDEQ's prepare (other methods or step sizes); use this "
                    "MonDEQ's prepare(params)"
                )

    # -- forward ------------------------------------------------------------------
    def forward(self, params, x, *, prepared: PreparedOperators | None = None, z0=None):
        """Solve for the equilibrium :math:`z^* = \\sigma(W z^* + U x + b)`.

        Parameters
        ----------
        params : parameters of :attr:`layer`
        x : array, shape (batch, ...)
            Finite input of the parameters' library, dtype and device.
        prepared : PreparedOperators, optional
            ``self.prepare(params)``, when already computed for these
            parameters (it is not checked against them).
        z0 : array or tuple, optional
            Starting point (the method's governing variable), of the hidden
            state's shape; zeros by default.

        Returns
        -------
        z : array or tuple of arrays
        state : EquilibriumState
        """
        layer = self.layer
        if prepared is None:
            prepared = self.prepare(params)
        else:
            self._check_prepared(prepared)
        layer.check_input(params, x)
        inj = layer.injection(params, x)
        F = LinearMonotone(
            prepared.monotone,
            scale(-1.0, inj),
            precomputed=prepared.forward,
            strong_monotonicity=prepared.margin,
        )
        problem = Inclusion(F, Subdifferential(self.nonlinearity))
        if z0 is None:
            xp = namespace(inj)
            z0 = vmap(xp.zeros_like, inj)
        else:
            _check_like(z0, inj, "z0", "the state")
        result = solve(
            problem,
            self.method,
            z0,
            tol=self.tol,
            maxiter=self.maxiter,
            check_every=self.check_every,
            record=self.record,
        )
        z = result.x
        pre = add(sub(z, prepared.monotone.matvec(z)), inj)
        return z, EquilibriumState(x, z, pre, prepared, result)

    # -- linearized problems ------------------------------------------------------
    def _linearized_solve(self, state, rhs, *, adjoint):
        """Zero of ``(I - W)ᵀ r + D r - rhs`` (adjoint) or ``(I - W) r + D r - rhs``."""
        jac = vmap(self.nonlinearity.derivative, state.pre_activation)
        prepared = state.prepared
        monotone, steps = prepared.monotone, prepared.backward
        if adjoint:  # transposed views of the same precomputation
            monotone, steps = monotone.H, steps.H
        problem = Inclusion(
            LinearMonotone(monotone, precomputed=steps, strong_monotonicity=prepared.margin),
            LinearizedActivation(jac, rhs),
        )
        result = solve(
            problem,
            self._bw_method,
            vmap(lambda j, c: j * c, jac, rhs),
            tol=self._bw_tol,
            maxiter=self._bw_maxiter,
            check_every=self.check_every,
            record=self.record,
        )
        return result.x, result

    def _check_like_z(self, state, value, name):
        _check_state(state)
        _check_like(value, state.z, name, "z")

    def _check_tangent(self, params, state, dparams, dx):
        """``dparams`` of ``params``'s type and shapes (``None`` entries allowed),
        ``dx`` of ``x``'s shape and dtype."""
        if dx is not None:
            _check_like(dx, state.x, "dx", "x")
            self.layer.check_input(params, dx)
        if dparams is None:
            return
        if type(dparams) is not type(params):
            raise TypeError(
                f"dparams must be {type(params).__name__} like params (None fields count "
                f"as zero), got {type(dparams).__name__}"
            )
        for field, (d, p) in zip(params._fields, zip(dparams, params, strict=True), strict=True):
            if d is None or p is None:
                if d is not None:
                    raise ValueError(f"dparams.{field} is set but params.{field} is None")
                continue
            if isinstance(p, tuple):
                if not isinstance(d, tuple) or len(d) != len(p):
                    raise ValueError(
                        f"dparams.{field} must be a tuple of {len(p)} entries (arrays or "
                        f"None) like params.{field}"
                    )
                for i, (di, pi) in enumerate(zip(d, p)):
                    if di is not None:
                        _check_like(di, pi, f"dparams.{field}[{i}]", f"params.{field}[{i}]")
            else:
                _check_like(d, p, f"dparams.{field}", f"params.{field}")

    def backward(self, params, state: EquilibriumState, grad_z, *, return_result: bool = False):
        r"""Gradients of a loss from :math:`g = \partial\ell/\partial z^*`.

        Solves :math:`0 \in (I - W^\top) r + D r - g` (see the module
        docstring) with the backward method and the precomputation in
        ``state.prepared`` (transposed), then applies the layer's
        hand-written parameter gradients.

        Parameters
        ----------
        params : parameters of :attr:`layer`
            The parameters the forward pass used.
        state : EquilibriumState
            From :meth:`forward`.
        grad_z : array or tuple of arrays
            Of the shape of ``z``.
        return_result : bool
            Also return the backward :class:`~opsplit.SolveResult`.

        Returns
        -------
        grads : parameters' type
            :math:`\partial\ell/\partial` of every field of ``params``.
        grad_x : array
            Of the shape of ``x``.
        result : SolveResult
            Only with ``return_result=True``.
        """
        self._check_like_z(state, grad_z, "grad_z")
        r, result = self._linearized_solve(state, grad_z, adjoint=True)
        grads, grad_x = self.layer.grads(params, state.x, state.z, r)
        return (grads, grad_x, result) if return_result else (grads, grad_x)

    def jvp(
        self,
        params,
        state: EquilibriumState,
        dparams=None,
        dx=None,
        *,
        return_result: bool = False,
    ):
        r"""The equilibrium's directional derivative :math:`dz^*` along ``(dparams, dx)``.

        Solves the tangent problem :math:`0 \in (I - W)\,dz + D\,dz - dq`
        (so :math:`dz = (I - JW)^{-1} J\,dq`, with :math:`dq` the layer's
        ``tangent``) with the backward method and the precomputation in
        ``state.prepared``; ``None`` fields of ``dparams`` count as zero.
        With :meth:`backward` (the vector–Jacobian product) it satisfies the
        adjoint identity
        :math:`\langle dz, w\rangle = \langle \nabla, (dparams, dx)\rangle`.
        """
        _check_state(state)
        self._check_tangent(params, state, dparams, dx)
        dq = self.layer.tangent(params, state.x, state.z, dparams, dx)
        dz, result = self._linearized_solve(state, dq, adjoint=False)
        return (dz, result) if return_result else dz

    # -- dense references ---------------------------------------------------------
    def _dense_system(self, state, *, adjoint):
        """``(K, J)``: per sample the matrix ``I - Wᵀ J`` (adjoint) or ``I - J W``,
        on flattened hidden states, and the flattened ``J``."""
        monotone = state.prepared.monotone
        like = first_array(state.z)
        xp = namespace(like)
        eye = xp.eye(monotone.shape[0], dtype=like.dtype, device=device(like))
        W = eye - monotone.to_dense(like)
        jac = flatten(vmap(self.nonlinearity.derivative, state.pre_activation), monotone.in_shape)
        if adjoint:  # I - Wᵀ diag(J): column j of Wᵀ scaled by J_j
            K = eye - xp.matrix_transpose(W)[None, :, :] * jac[:, None, :]
        else:  # I - diag(J) W
            K = eye - jac[:, :, None] * W[None, :, :]
        return K, jac

    def exact_backward(self, params, state: EquilibriumState, grad_z):
        r""":meth:`backward` by a dense solve of :math:`(I - W^\top J) u = g` per
        sample (``O(batch·n³)`` for ``n`` hidden units; a reference for small
        layers and tests)."""
        self._check_like_z(state, grad_z, "grad_z")
        shape = state.prepared.monotone.in_shape
        xp = namespace(grad_z)
        K, jac = self._dense_system(state, adjoint=True)
        u = xp.linalg.solve(K, flatten(grad_z, shape)[..., None])[..., 0]
        return self.layer.grads(params, state.x, state.z, unflatten(jac * u, shape))

    def exact_jvp(self, params, state: EquilibriumState, dparams=None, dx=None):
        r""":meth:`jvp` by a dense solve of :math:`(I - J W) dz = J\,dq` per sample."""
        _check_state(state)
        self._check_tangent(params, state, dparams, dx)
        shape = state.prepared.monotone.in_shape
        xp = namespace(first_array(state.z))
        dq = flatten(self.layer.tangent(params, state.x, state.z, dparams, dx), shape)
        K, jac = self._dense_system(state, adjoint=False)
        return unflatten(xp.linalg.solve(K, (jac * dq)[..., None])[..., 0], shape)
