r"""The monDEQ equilibrium and its implicit, hand-derived backward pass.

Both passes are monotone inclusions solved by :func:`opsplit.solve` with the
same splitting methods (Winston & Kolter 2020, Theorems 1–3).

**Forward.**  With :math:`\sigma = \operatorname{prox}_f` the equilibrium
:math:`z = \sigma(W z + U x + b)` is the zero of

.. math::

    0 \in \underbrace{(I - W) z - (U x + b)}_{F(z)} + \partial f(z),

``F`` being ``m``-strongly monotone; forward–backward uses
:math:`\operatorname{prox}_{\alpha f}`, Peaceman–Rachford and Douglas–Rachford
also :math:`(I + \alpha(I - W))^{-1}`, computed once per parameter value.

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
and ``x`` follow from ``r`` (:meth:`MonDense.grads
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

from .._backend import device, namespace
from .._result import SolveResult
from .._solve import solve
from .._validate import check_positive, check_positive_int
from ..operators import LinearMonotone, ResolventOperator, Subdifferential
from ..operators.basic import check_trailing
from ..problems import Inclusion
from ..splitting import ForwardBackward, PeacemanRachford, SplittingMethod
from .mondense import DenseOperators, DenseParams, MonDense

__all__ = ["MonDEQ", "EquilibriumState", "LinearizedActivation"]


class EquilibriumState(NamedTuple):
    """What :meth:`MonDEQ.forward` leaves for the backward pass.

    Attributes
    ----------
    x : array, shape (batch, in_features)
        The input.
    z : array, shape (batch, width)
        The equilibrium :math:`z^*`.
    pre_activation : array, shape (batch, width)
        :math:`v = W z^* + U x + b`, where :math:`\\sigma'` is evaluated.
    operators : DenseOperators
        :math:`I - W` and its shifted inverses, shared with the backward pass.
    result : SolveResult
        The forward solve (``result.iterations``, ``result.history``,
        ``result.success``, ``result.message``).
    """

    x: Any
    z: Any
    pre_activation: Any
    operators: DenseOperators
    result: SolveResult


class LinearizedActivation(ResolventOperator):
    r"""The monotone operator :math:`\tilde G(r) = D r - c` with :math:`D = 1/J - 1`.

    ``J`` (the activation's derivative at the equilibrium, entries in
    ``[0, 1]``) and ``c`` have the batch's shape; entries with ``J = 0``
    force ``r = 0``.  Its resolvent is elementwise

    .. math::

        (I + \alpha\tilde G)^{-1}(y) = \frac{J\,(y + \alpha c)}{J + \alpha(1 - J)}
        = \frac{y + \alpha c}{1 + \alpha D} .

    Parameters
    ----------
    jac : array, shape (batch, width)
        The diagonal :math:`J`.
    rhs : array, shape (batch, width)
        The constant ``c``.

    Examples
    --------
    >>> import numpy as np
    >>> G = LinearizedActivation(np.array([1.0, 0.5, 0.0]), np.array([1.0, 1.0, 1.0]))
    >>> G.resolvent(1.0)(np.zeros(3))     # D = (0, 1, inf): (0 + 1)/(1 + D)
    array([1. , 0.5, 0. ])
    """

    def __init__(self, jac, rhs):
        if tuple(jac.shape) != tuple(rhs.shape):
            raise ValueError(f"jac {tuple(jac.shape)} and rhs {tuple(rhs.shape)} differ")
        self.jac, self.rhs = jac, rhs
        self.core_shape = tuple(jac.shape[-1:])

    def validate(self, x, name="x"):
        check_trailing(x, self.core_shape, name)

    def _affine(self, step, scale, offset):
        """``y ↦ (scale·factor + offset)·y + scale·factor·α c``, precomputed."""
        check_positive(step, "step")
        factor = self.jac / (self.jac + step * (1.0 - self.jac))
        gain = scale * factor + offset
        shift = (scale * step) * (factor * self.rhs)
        return lambda y: gain * y + shift

    def resolvent(self, step):
        return self._affine(step, 1.0, 0.0)

    def reflected_resolvent(self, step):
        # 2J - I is elementwise affine too: two passes per application.
        return self._affine(step, 2.0, -1.0)


def _resolve_activation(activation):
    from ..prox.activations import get_activation

    return get_activation(activation)


@dataclass(frozen=True)
class MonDEQ:
    r"""A monotone operator equilibrium network layer: forward, backward, JVP.

    Parameters
    ----------
    layer : MonDense
        The parametrization of ``W``, ``U``, ``b``.
    activation : str or activation
        ``"relu"`` (default), ``"leaky_relu"``, ``"hardtanh"``, ``"tanh"``,
        ``"sigmoid"``, ``"softplus"``, or an activation object from
        :mod:`opsplit.prox.activations` (a proximal function with
        ``derivative``); used through its :math:`\operatorname{prox}^\alpha`.
    method : SplittingMethod
        Forward solver: ``ops.PeacemanRachford(step=1.0)`` (default),
        ``ops.DouglasRachford`` or ``ops.ForwardBackward`` (needs
        :math:`\alpha < 2m/L^2`, see
        :meth:`MonDense.lipschitz <opsplit.nn.mondense.MonDense.lipschitz>`).
    tol, maxiter : float, int
        Forward stopping rule (relative fixed-point residual, see
        :func:`opsplit.solve`).
    backward_method, backward_tol, backward_maxiter : optional
        The same for the backward (and tangent) problem; default to the
        forward ones.
    check_every : int or "auto"
        Host checks of the residual: every ``check_every`` iterations, or
        where the measured rate predicts convergence (``"auto"``, the
        default; see :func:`opsplit.solve`).

    Notes
    -----
    A solve that does not converge is not an error: ``state.result.success``
    and ``state.result.message`` say so (training loops log it).  Arrays stay
    in their library, device and dtype (float32 in, float32 out).

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

    layer: MonDense
    activation: Any = "relu"
    method: SplittingMethod = PeacemanRachford(step=1.0)
    tol: float = 1e-4
    maxiter: int = 500
    backward_method: SplittingMethod | None = None
    backward_tol: float | None = None
    backward_maxiter: int | None = None
    check_every: int | str = "auto"

    def __post_init__(self):
        if not isinstance(self.layer, MonDense):
            raise TypeError(f"layer must be a MonDense, got {type(self.layer).__name__}")
        object.__setattr__(self, "activation", _resolve_activation(self.activation))
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
        if self.backward_tol is not None:
            check_positive(self.backward_tol, "backward_tol")
        if self.backward_maxiter is not None:
            check_positive_int(self.backward_maxiter, "backward_maxiter")

    # -- configuration ------------------------------------------------------------
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
    def prepare(self, params: DenseParams) -> DenseOperators:
        r""":math:`I - W` and, for the resolvent-based methods in use,
        :math:`(I + \alpha(I - W))^{-1}`: compute once per parameter update and
        pass as ``operators=`` to :meth:`forward` (the backward pass reuses it
        through the state)."""
        steps = [
            method.step
            for method in (self.method, self._bw_method)
            if not isinstance(method, ForwardBackward)
        ]
        return self.layer.operators(params, steps)

    # -- forward ------------------------------------------------------------------
    def forward(self, params: DenseParams, x, *, operators: DenseOperators | None = None, z0=None):
        """Solve for the equilibrium :math:`z^* = \\sigma(W z^* + U x + b)`.

        Parameters
        ----------
        params : DenseParams
        x : array, shape (batch, in_features)
            Finite input of the parameters' library, dtype and device.
        operators : DenseOperators, optional
            ``self.prepare(params)``, when already computed for these parameters.
        z0 : array, shape (batch, width), optional
            Starting point (the method's governing variable); zeros by default.

        Returns
        -------
        z : array, shape (batch, width)
        state : EquilibriumState
        """
        layer = self.layer
        if operators is None:
            operators = self.prepare(params)
        elif not isinstance(operators, DenseOperators):
            raise TypeError(f"operators must be DenseOperators, got {type(operators).__name__}")
        layer.check_input(params, x)
        xp = namespace(x)
        inj = layer.injection(params, x)
        F = LinearMonotone(
            operators.monotone,
            -inj,
            inverse=operators.inverse(self.method.step),
            strong_monotonicity=operators.m,
        )
        problem = Inclusion(F, Subdifferential(self.activation))
        if z0 is None:
            z0 = xp.zeros(inj.shape, dtype=x.dtype, device=device(x))
        result = solve(
            problem,
            self.method,
            z0,
            tol=self.tol,
            maxiter=self.maxiter,
            check_every=self.check_every,
        )
        z = result.x
        pre = z - operators.monotone.matvec(z) + inj
        return z, EquilibriumState(x, z, pre, operators, result)

    # -- linearized problems ------------------------------------------------------
    def _linearized_solve(self, state, rhs, *, adjoint):
        """Zero of ``(I - W)ᵀ r + D r - rhs`` (adjoint) or ``(I - W) r + D r - rhs``."""
        jac = self.activation.derivative(state.pre_activation)
        method = self._bw_method
        operators = state.operators
        M = operators.monotone
        inverse = operators.inverse(method.step)
        if adjoint:
            M = M.H
            inverse = None if inverse is None else (inverse[0], inverse[1].H)
        problem = Inclusion(
            LinearMonotone(M, inverse=inverse, strong_monotonicity=operators.m),
            LinearizedActivation(jac, rhs),
        )
        result = solve(
            problem,
            method,
            jac * rhs,
            tol=self._bw_tol,
            maxiter=self._bw_maxiter,
            check_every=self.check_every,
        )
        return result.x, result

    def _check_like_z(self, state, value, name):
        if not isinstance(state, EquilibriumState):
            raise TypeError(f"state must be an EquilibriumState, got {type(state).__name__}")
        namespace(value)
        if tuple(value.shape) != tuple(state.z.shape):
            raise ValueError(
                f"{name} must have the shape of z {tuple(state.z.shape)}, got {tuple(value.shape)}"
            )
        if value.dtype != state.z.dtype:
            raise TypeError(f"{name} has dtype {value.dtype} but z has {state.z.dtype}")

    def backward(
        self, params: DenseParams, state: EquilibriumState, grad_z, *, return_result: bool = False
    ):
        r"""Gradients of a loss from :math:`g = \partial\ell/\partial z^*`.

        Solves :math:`0 \in (I - W^\top) r + D r - g` (see the module
        docstring) with the backward method, then applies the hand-written
        parameter gradients.

        Parameters
        ----------
        params : DenseParams
            The parameters the forward pass used.
        state : EquilibriumState
            From :meth:`forward`.
        grad_z : array, shape (batch, width)
        return_result : bool
            Also return the backward :class:`~opsplit.SolveResult`.

        Returns
        -------
        grads : DenseParams
            :math:`\partial\ell/\partial` of every field of ``params``.
        grad_x : array, shape (batch, in_features)
        result : SolveResult
            Only with ``return_result=True``.
        """
        self._check_like_z(state, grad_z, "grad_z")
        r, result = self._linearized_solve(state, grad_z, adjoint=True)
        grads, grad_x = self.layer.grads(params, state.x, state.z, r)
        return (grads, grad_x, result) if return_result else (grads, grad_x)

    def _tangent_rhs(self, params, state, dparams, dx):
        """``dq = dW z + dU x + db + U dx`` for the tangent problem."""
        xp = namespace(state.z)
        dq = self.layer.injection_tangent(params, state.x, dparams, dx)
        weights = () if dparams is None else (dparams.A, dparams.B, dparams.g, dparams.h)
        if any(t is not None for t in weights):
            dM = self.layer.monotone_tangent(params, dparams)  # d(I - W) = -dW
            dq = dq - xp.matmul(state.z, xp.matrix_transpose(dM))
        return dq

    def jvp(
        self,
        params: DenseParams,
        state: EquilibriumState,
        dparams: DenseParams | None = None,
        dx=None,
        *,
        return_result: bool = False,
    ):
        r"""The equilibrium's directional derivative :math:`dz^*` along ``(dparams, dx)``.

        Solves the tangent problem :math:`0 \in (I - W)\,dz + D\,dz - dq`
        (so :math:`dz = (I - JW)^{-1} J\,dq`) with the backward method;
        ``None`` fields of ``dparams`` count as zero.  With :meth:`backward`
        (the vector–Jacobian product) it satisfies the adjoint identity
        :math:`\langle dz, w\rangle = \langle \nabla, (dparams, dx)\rangle`.
        """
        if dx is not None:
            self.layer.check_input(params, dx)
        dq = self._tangent_rhs(params, state, dparams, dx)
        dz, result = self._linearized_solve(state, dq, adjoint=False)
        return (dz, result) if return_result else dz

    # -- dense references ---------------------------------------------------------
    def _dense_system(self, params, state, *, adjoint):
        xp = namespace(state.z)
        W = self.layer.weight(params)
        jac = self.activation.derivative(state.pre_activation)
        n = W.shape[0]
        eye = xp.eye(n, dtype=W.dtype, device=device(W))
        if adjoint:  # I - Wᵀ diag(J): column j of Wᵀ scaled by J_j
            K = eye - xp.matrix_transpose(W)[None, :, :] * jac[:, None, :]
        else:  # I - diag(J) W
            K = eye - jac[:, :, None] * W[None, :, :]
        return K, jac

    def exact_backward(self, params: DenseParams, state: EquilibriumState, grad_z):
        r""":meth:`backward` by a dense solve of :math:`(I - W^\top J) u = g` per
        sample (``O(batch·width³)``; a reference for small widths and tests)."""
        self._check_like_z(state, grad_z, "grad_z")
        xp = namespace(grad_z)
        K, jac = self._dense_system(params, state, adjoint=True)
        u = xp.linalg.solve(K, grad_z[..., None])[..., 0]
        return self.layer.grads(params, state.x, state.z, jac * u)

    def exact_jvp(
        self,
        params: DenseParams,
        state: EquilibriumState,
        dparams: DenseParams | None = None,
        dx=None,
    ):
        r""":meth:`jvp` by a dense solve of :math:`(I - J W) dz = J\,dq` per sample."""
        if dx is not None:
            self.layer.check_input(params, dx)
        xp = namespace(state.z)
        dq = self._tangent_rhs(params, state, dparams, dx)
        K, jac = self._dense_system(params, state, adjoint=False)
        return xp.linalg.solve(K, (jac * dq)[..., None])[..., 0]
