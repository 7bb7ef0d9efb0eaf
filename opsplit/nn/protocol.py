r"""What an equilibrium layer provides to :class:`~opsplit.nn.MonDEQ`.

A monDEQ layer is the equilibrium :math:`z = \sigma(W z + U x + b)` of one
parametrization of ``W`` (dense, convolutional, multi-tier, ...).  The
equilibrium and its implicit backward pass (:mod:`opsplit.nn.deq`) are the
same for every layer; they ask the layer only for what
:class:`MonotoneLayer` declares:

- its parameters (:meth:`~MonotoneLayer.init_params`,
  :meth:`~MonotoneLayer.check_params`) and its inputs
  (:meth:`~MonotoneLayer.check_input`);
- the linear operator :math:`I - W` (:meth:`~MonotoneLayer.monotone`), whose
  type carries its structure: a :class:`~opsplit.Dense` matrix, an FFT
  convolution, a block lower-triangular operator.  :meth:`MonDEQ.prepare
  <opsplit.nn.MonDEQ.prepare>` computes from it, once per parameter update,
  the shifted inverse :math:`(I + \alpha(I - W))^{-1}`, its Cayley map and
  the forward step that the splitting methods in use need
  (:func:`opsplit.operators.precompute`, which dispatches on that type), and
  the adjoint problem's versions as adjoint views of the same values;
- the constant input :math:`q_0 = U x + b` (:meth:`~MonotoneLayer.injection`);
- derivatives of :math:`q = W z + U x + b` at fixed ``z``: along a tangent
  (:meth:`~MonotoneLayer.tangent`) and its adjoint, the parameter and input
  gradients (:meth:`~MonotoneLayer.grads`);
- the strong-monotonicity margin :attr:`~MonotoneLayer.m` of :math:`I - W`
  and a Lipschitz bound (:meth:`~MonotoneLayer.lipschitz`) for choosing
  step sizes, and a bound on the input map's norm
  (:meth:`~MonotoneLayer.input_norm`) for certificates.
- the nonlinearity built from the user's activation
  (:meth:`~MonotoneLayer.nonlinearity`: the activation itself by default,
  masked to zero on the padding ring by the convolutional layers).

Hidden states are arrays whose first axis is the batch, or tuples of such
arrays (one block per tier of a multi-tier layer); :meth:`injection`,
:meth:`monotone` and :meth:`tangent` agree on that structure, and
:class:`~opsplit.nn.MonDEQ` handles it through the block-aware vector
arithmetic of :mod:`opsplit._vectors`.

A new layer subclasses :class:`MonotoneLayer` in its own module; nothing in
:mod:`opsplit.nn.deq` changes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from .._backend import device, namespace
from ..operators import LinearOperator

__all__ = ["MonotoneLayer"]


class MonotoneLayer(ABC):
    r"""A layer :math:`z = \sigma(W z + U x + b)` with :math:`I - W \succeq m I`.

    Parameters are a ``NamedTuple`` of arrays of one library, dtype and
    device (``None`` for absent optional fields) with an ``arrays()`` method
    listing the present fields; gradients have the same type.  Every method
    takes arrays of that library and returns arrays of it (no host copies,
    except in :meth:`check_input` and :meth:`lipschitz`).

    Attributes
    ----------
    m : float
        The strong-monotonicity margin: :math:`\langle (I - W) v, v\rangle
        \ge m \|v\|^2` for every parameter value (guaranteed by the
        parametrization, not checked).
    """

    m: float

    @abstractmethod
    def init_params(self, seed=0, *, dtype="float64", like=None):
        """Initial parameters drawn from a seeded generator (``like``: an array
        whose library and device they are created on)."""

    @abstractmethod
    def check_params(self, params) -> None:
        """Raise ``TypeError``/``ValueError`` naming the field that does not fit."""

    @abstractmethod
    def check_input(self, params, x) -> None:
        """Raise ``TypeError``/``ValueError`` naming ``x`` unless it is a finite
        batch of inputs in the parameters' library, dtype and device."""

    @abstractmethod
    def monotone(self, params) -> LinearOperator:
        r"""The operator :math:`I - W` on hidden states (batch axes leading),
        of a type with a structure-aware shifted inverse
        (:func:`opsplit.operators.shifted_inverse`).  Checks ``params``."""

    def monotone_matrix(self, params):
        r"""The dense matrix of :math:`I - W`: :meth:`monotone` on one state
        flattened row-major (the blocks of a tuple state concatenated in order);
        for tests and tiny states, as it has (state size)² entries."""
        return self.monotone(params).to_dense()

    def weight(self, params):
        """The dense weight matrix ``W`` (:meth:`monotone_matrix` subtracted from
        the identity)."""
        M = self.monotone_matrix(params)
        xp = namespace(M)
        return xp.eye(M.shape[0], dtype=M.dtype, device=device(M)) - M

    @abstractmethod
    def injection(self, params, x):
        """The constant input :math:`U x + b`: a hidden state (array or tuple)."""

    @abstractmethod
    def tangent(self, params, x, z, dparams=None, dx=None):
        r"""The directional derivative :math:`dq = dW\,z + dU\,x + db + U\,dx` of
        :math:`q = W z + U x + b` at fixed ``z``; ``None`` (for ``dparams``,
        ``dx`` or a field of ``dparams``) counts as zero."""

    @abstractmethod
    def grads(self, params, x, z, r):
        r"""The adjoint of :meth:`tangent`: from :math:`r = \partial\ell/\partial q`
        (a hidden state), return ``(grads, grad_x)`` with ``grads`` of the
        parameters' type and ``grad_x`` of ``x``'s shape."""

    def input_norm(self, params) -> float:
        r"""An upper bound on the norm :math:`\|U\|_2` of the input map
        :math:`x \mapsto U x` (a host float): with the margin ``m`` it bounds the
        equilibrium's Lipschitz constant in ``x`` by :math:`\|U\|_2/m`
        (:func:`opsplit.nn.certify_layer`).  A layer that cannot bound it
        raises ``NotImplementedError`` (the default)."""
        raise NotImplementedError(
            f"{type(self).__name__} gives no bound on the norm of its input map "
            "(MonotoneLayer.input_norm)"
        )

    def nonlinearity(self, activation):
        r"""The nonlinearity :math:`\sigma` of the equilibrium built from the user's
        ``activation`` (an :class:`~opsplit.prox.activations.Activation`).

        :class:`~opsplit.nn.MonDEQ` always applies the activation through this
        method, so a layer whose states carry structure the activation must
        respect (the zero padding ring of the convolutional layers,
        :class:`~opsplit.nn.border.BorderMasked`) enforces it for every
        activation.  The default returns ``activation`` unchanged.
        """
        return activation

    @abstractmethod
    def lipschitz(self, params) -> float:
        r"""An upper bound on :math:`\|I - W\|_2` (a host float): forward–backward
        converges for :math:`\alpha < 2m/L^2`."""
