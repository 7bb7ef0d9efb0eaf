"""Monotone operators, described by what they offer.

A :class:`ForwardOperator` can be *evaluated* (forward steps); a
:class:`ResolventOperator` offers its resolvent :math:`J_{\\alpha A} =
(I + \\alpha A)^{-1}` (backward steps).  An operator may be both.  Methods
ask for the capability they need through the type, never by probing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from .._backend import check_finite, check_floating, same_library
from .._validate import check_positive
from .._vectors import add, axpy, check_same_shape, dtype_of, first_array, reflect, scale, sub
from ._base import LinearOperator, check_linear
from .basic import check_trailing
from .shifted import shifted_operator
from .steps import LinearSteps, precompute, same_operator

__all__ = [
    "MonotoneOperator",
    "ForwardOperator",
    "ResolventOperator",
    "LinearMonotone",
    "Gradient",
    "ScaledMonotone",
    "ScaledForward",
    "ScaledResolvent",
    "ScaledForwardResolvent",
    "SumMonotone",
    "AffineMap",
]


class MonotoneOperator(ABC):
    """A (maximally) monotone operator on arrays.

    Attributes
    ----------
    core_shape : tuple or None
        Trailing shape of one sample, when the operator knows it; leading
        axes beyond it are batch axes.
    strong_monotonicity : float or None
        A known constant ``m`` with ``⟨Ax - Ay, x - y⟩ ≥ m‖x - y‖²``.
    """

    core_shape = None
    strong_monotonicity = None

    def validate(self, x, name: str = "x") -> None:
        """Raise ``ValueError``/``TypeError`` naming ``name`` if ``x`` does not fit."""

    def __mul__(self, scalar):
        if not isinstance(scalar, (int, float)) or isinstance(scalar, bool):
            return NotImplemented
        return ScaledMonotone(float(scalar), self)

    __rmul__ = __mul__


class ForwardOperator(MonotoneOperator):
    """A monotone operator that can be evaluated directly.

    Attributes
    ----------
    lipschitz : float or None
        A Lipschitz constant, when known.
    cocoercivity : float or None
        ``β`` with ``⟨Ax - Ay, x - y⟩ ≥ β‖Ax - Ay‖²``, when known.
    """

    lipschitz = None
    cocoercivity = None

    @abstractmethod
    def evaluate(self, x):
        """Return ``A(x)``."""

    def __call__(self, x):
        return self.evaluate(x)

    def forward_step(self, step: float) -> Callable:
        """Return the explicit step :math:`x \\mapsto x - \\text{step}\\,A(x)`."""
        step = check_positive(step, "step")

        def forward(x):
            out = self.evaluate(x)
            check_same_shape(out, x, type(self).__name__)
            return axpy(-step, out, x)

        return forward

    def __add__(self, other):
        if not isinstance(other, ForwardOperator):
            return NotImplemented
        return SumMonotone(self, other)


class ResolventOperator(MonotoneOperator):
    """A monotone operator whose resolvent is available."""

    @abstractmethod
    def resolvent(self, step: float) -> Callable:
        """Return the map :math:`x \\mapsto (I + \\text{step}\\,A)^{-1} x`.

        Any precomputation (a factorization, FFT symbols) happens here, once,
        and lives in the returned callable.
        """

    def reflected_resolvent(self, step: float) -> Callable:
        """Return :math:`R_{\\text{step}\\,A} = 2 J_{\\text{step}\\,A} - I`."""
        resolvent = self.resolvent(step)
        return lambda x: reflect(resolvent(x), x)

    def resolvents(self, step: float) -> tuple[Callable, Callable]:
        """Return the resolvent and the reflected resolvent for ``step`` together.

        Methods that apply both (Peaceman–Rachford, to ``B``) ask for them
        here; operators whose two maps share a precomputation (a
        factorization) override it to compute that once.  By default it
        calls :meth:`resolvent` and :meth:`reflected_resolvent`.
        """
        return self.resolvent(step), self.reflected_resolvent(step)


@dataclass(frozen=True)
class AffineMap:
    r"""The affine map :math:`y \mapsto T y - s` (a precomputed value).

    Resolvents and reflected resolvents of :class:`LinearMonotone` take this
    form: :math:`J_{\alpha A}(y) = (I + \alpha L)^{-1} y - (I + \alpha L)^{-1}
    \alpha c` and :math:`R_{\alpha A} = 2 J_{\alpha A} - I`.
    """

    linear: LinearOperator
    shift: object  # an array, a tuple of arrays, or None

    def __call__(self, y):
        out = self.linear.matvec(y)
        return out if self.shift is None else sub(out, self.shift)


class LinearMonotone(ForwardOperator, ResolventOperator):
    r"""The affine monotone map :math:`x \mapsto L x + c`.

    Monotone when the symmetric part of ``L`` is positive semidefinite.  At a
    step size :math:`\alpha` its steps are affine maps:

    .. math::

        J_{\alpha F}(y) = (I + \alpha L)^{-1} y - (I + \alpha L)^{-1} \alpha c,
        \qquad R_{\alpha F} = 2 J_{\alpha F} - I,
        \qquad y - \alpha F(y) = (I - \alpha L) y - \alpha c,

    each applied as one product with a precomputed operator
    (:func:`~opsplit.operators.precompute`).

    Parameters
    ----------
    op : LinearOperator
        The square linear part ``L``.
    offset : array or tuple of arrays, optional
        The constant ``c``; broadcast against the batch (shape ``op.out_shape``
        or with leading batch axes).  Must be finite.
    precomputed : LinearSteps, optional
        ``precompute(op, step, ...)`` (or its ``.H`` for ``op = L.H``) with the
        maps the method applies (a missing forward step or Cayley map is
        formed when asked for, once per call; a missing inverse is an error),
        shared for example between a forward and an adjoint problem.  The
        steps then use it and only its step size: asking for another step
        raises ``ValueError``.  Without it every call to ``resolvent``,
        ``reflected_resolvent`` or ``forward_step`` computes what it needs.
    lipschitz : float, optional
        A known bound on ``‖L‖``.
    strong_monotonicity : float, optional
        A known lower bound on λ_min of the symmetric part of ``L``.
    cocoercivity : float, optional
        A known ``β`` with :math:`\langle Lx, x\rangle \ge \beta\|Lx\|^2`
        (``1/λ_max`` for a symmetric positive semidefinite ``L``; a nonzero
        skew-symmetric ``L`` has none).

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> F = ops.LinearMonotone(ops.Dense(np.eye(2) * 2.0), np.array([1.0, 0.0]))
    >>> F(np.ones(2)), F.resolvent(0.5)(np.ones(2))
    (array([3., 2.]), array([0.25, 0.5 ]))
    """

    def __init__(
        self, op, offset=None, *, precomputed=None, lipschitz=None, strong_monotonicity=None,
        cocoercivity=None,
    ):
        check_linear(op, square=True)
        if offset is not None:
            check_floating(offset, "offset")
            if op.dtype is not None and dtype_of(offset) != op.dtype:
                raise TypeError(f"offset has dtype {dtype_of(offset)}, op has {op.dtype}")
            check_trailing(offset, op.out_shape, "offset")
            check_finite(offset, "offset")
        if precomputed is not None:
            if not isinstance(precomputed, LinearSteps):
                raise TypeError(
                    "precomputed must be a LinearSteps from opsplit.operators.precompute, "
                    f"got {type(precomputed).__name__}"
                )
            if not same_operator(precomputed.op, op):
                raise ValueError(
                    "precomputed was built for another operator: pass precompute(op, step) "
                    "for this op (or its .H for op.H)"
                )
        self.op, self.offset, self.precomputed = op, offset, precomputed
        self.core_shape = op.in_shape
        self.lipschitz = lipschitz
        self.strong_monotonicity = strong_monotonicity
        self.cocoercivity = cocoercivity

    def validate(self, x, name="x"):
        check_trailing(x, self.core_shape, name)
        first = first_array(x)
        if self.offset is not None:
            offset = first_array(self.offset)
            same_library(first, offset, name, "offset")
            if offset.ndim > first.ndim:
                raise ValueError(
                    f"offset has batch axes {tuple(offset.shape)} that {name} of shape "
                    f"{tuple(first.shape)} lacks: give {name} the same batch axes"
                )
        if self.op.dtype is not None:
            same_library(first, self.op._like(None), name, "the operator's array")
            if first.dtype != self.op.dtype:
                raise TypeError(
                    f"{name} has dtype {first.dtype} but the operator has {self.op.dtype}"
                )

    def evaluate(self, x):
        y = self.op.matvec(x)
        return y if self.offset is None else add(y, self.offset)

    def _steps(self, step, **maps) -> LinearSteps:
        """The precomputation for ``step`` holding ``maps`` (keywords of
        :func:`~opsplit.operators.precompute`): the one given, or a new one."""
        step = check_positive(step, "step")
        given = self.precomputed
        if given is None:
            return precompute(self.op, step, **{"resolvent": False, **maps})
        if step != given.step:
            raise ValueError(
                f"step {step} differs from the step {given.step} of the precomputed "
                "operators: precompute for this step"
            )
        if (maps.get("resolvent") or maps.get("reflection")) and given.inverse is None:
            raise ValueError("precomputed holds no inverse: build it with resolvent=True")
        return given

    def _shift(self, inverse, step):
        r""":math:`(I + \alpha L)^{-1} \alpha c`, or ``None`` without an offset."""
        if self.offset is None:
            return None
        return inverse.matvec(scale(step, self.offset))

    def resolvent(self, step):
        steps = self._steps(step, resolvent=True)
        return AffineMap(steps.inverse, self._shift(steps.inverse, steps.step))

    def reflected_resolvent(self, step):
        # R = 2J - I is affine too: one product with the Cayley operator per
        # application instead of a product and two extra passes.
        return self.resolvents(step)[1]

    def resolvents(self, step):
        # One precomputation serves both maps (the Cayley map is built from the inverse).
        steps = self._steps(step, reflection=True)
        shift = self._shift(steps.inverse, steps.step)
        reflected_shift = None if shift is None else scale(2.0, shift)
        cayley = steps.cayley
        if cayley is None:  # precomputed for the resolvent only
            cayley = shifted_operator(steps.inverse, -1.0, 2.0)
        return AffineMap(steps.inverse, shift), AffineMap(cayley, reflected_shift)

    def forward_step(self, step):
        # x - α(Lx + c) = (I - αL)x - αc: one product with a precomputed
        # operator (one matrix when L is dense).
        steps = self._steps(step, forward=True)
        linear = steps.forward
        if linear is None:  # precomputed for resolvents only
            linear = shifted_operator(self.op, 1.0, -steps.step)
        shift = None if self.offset is None else scale(steps.step, self.offset)
        return AffineMap(linear, shift)


class Gradient(ForwardOperator):
    r"""The gradient :math:`\nabla h` of a convex differentiable function.

    Parameters
    ----------
    grad : callable
        ``x ↦ ∇h(x)``.
    lipschitz : float, optional
        Lipschitz constant ``L`` of ``∇h``; by Baillon–Haddad the gradient is
        then ``1/L``-cocoercive.
    strong_monotonicity : float, optional
        Strong convexity constant of ``h``.
    core_shape : tuple, optional
        Trailing shape of one sample.
    """

    def __init__(self, grad, *, lipschitz=None, strong_monotonicity=None, core_shape=None):
        if not callable(grad):
            raise TypeError("grad must be callable")
        self.grad = grad
        self.lipschitz = lipschitz
        self.cocoercivity = None if not lipschitz else 1.0 / lipschitz
        self.strong_monotonicity = strong_monotonicity
        self.core_shape = core_shape

    def evaluate(self, x):
        out = self.grad(x)
        check_same_shape(out, x, "Gradient's grad")
        return out


class ScaledMonotone(MonotoneOperator):
    r"""``s·A`` for ``s > 0``; build it with ``s * A``.

    It offers exactly the capabilities of ``A``: the subclass
    :class:`ScaledForward` evaluates ``s·A(x)``, :class:`ScaledResolvent`
    gives :math:`J_{\alpha s A} = J_{(\alpha s) A}`, and
    :class:`ScaledForwardResolvent` both.
    """

    def __new__(cls, scalar: float, op: MonotoneOperator):
        if cls is ScaledMonotone:
            forward = isinstance(op, ForwardOperator)
            backward = isinstance(op, ResolventOperator)
            cls = {
                (True, True): ScaledForwardResolvent,
                (True, False): ScaledForward,
                (False, True): ScaledResolvent,
            }.get((forward, backward), ScaledMonotone)
        return super().__new__(cls)

    def __init__(self, scalar: float, op: MonotoneOperator):
        if not isinstance(op, MonotoneOperator):
            raise TypeError(f"op must be a MonotoneOperator, got {type(op).__name__}")
        if not scalar > 0:
            raise ValueError(f"scalar must be > 0 to keep monotonicity, got {scalar}")
        self.scalar, self.op = float(scalar), op
        self.core_shape = op.core_shape
        m = op.strong_monotonicity
        self.strong_monotonicity = None if m is None else scalar * m

    def validate(self, x, name="x"):
        self.op.validate(x, name)


class ScaledForward(ScaledMonotone, ForwardOperator):
    """``s·A`` of an evaluable ``A``."""

    def __init__(self, scalar, op):
        super().__init__(scalar, op)
        self.lipschitz = None if op.lipschitz is None else self.scalar * op.lipschitz
        self.cocoercivity = None if op.cocoercivity is None else op.cocoercivity / self.scalar

    def evaluate(self, x):
        return scale(self.scalar, self.op.evaluate(x))


class ScaledResolvent(ScaledMonotone, ResolventOperator):
    """``s·A`` of an ``A`` with a resolvent."""

    def resolvent(self, step):
        return self.op.resolvent(check_positive(step, "step") * self.scalar)

    def reflected_resolvent(self, step):
        return self.op.reflected_resolvent(check_positive(step, "step") * self.scalar)

    def resolvents(self, step):
        return self.op.resolvents(check_positive(step, "step") * self.scalar)


class ScaledForwardResolvent(ScaledForward, ScaledResolvent):
    """``s·A`` of an ``A`` that is both evaluable and has a resolvent."""


class SumMonotone(ForwardOperator):
    """``A + B`` of two directly evaluable monotone operators."""

    def __init__(self, a: ForwardOperator, b: ForwardOperator):
        self.a, self.b = a, b
        self.core_shape = a.core_shape if a.core_shape is not None else b.core_shape
        la, lb = a.lipschitz, b.lipschitz
        self.lipschitz = None if la is None or lb is None else la + lb
        ma, mb = a.strong_monotonicity, b.strong_monotonicity
        self.strong_monotonicity = (ma or 0.0) + (mb or 0.0) if (ma or mb) else None

    def validate(self, x, name="x"):
        self.a.validate(x, name)
        self.b.validate(x, name)

    def evaluate(self, x):
        return add(self.a.evaluate(x), self.b.evaluate(x))
