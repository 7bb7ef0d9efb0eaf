"""Base classes for proximable functions and activations, and the small helpers they share."""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod

from .._backend import check_finite, check_floating, device, namespace, same_library, to_numpy
from .._validate import check_positive, check_real

__all__ = [
    "ProxFunction",
    "Activation",
    "float_mask",
    "check_array",
    "check_real_or_array",
    "check_last_axis",
    "check_broadcasts",
    "like_input",
    "holds",
    "restrict",
    "zero_scalar",
    "membership_tolerance",
]


def check_array(value, name: str, *, ndim=None, finite=True):
    """``value`` if it is a real floating array with ``ndim`` axes (any number
    when ``None``) and finite entries (only no NaN when ``finite=False``);
    ``TypeError``/``ValueError`` naming ``name`` otherwise.

    The finiteness check is one reduction and one host transfer: call it when
    data is given (at construction), never inside iterations.
    """
    check_floating(value, name)
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} axes, got shape {tuple(value.shape)}")
    if finite:
        check_finite(value, name)
    elif holds(namespace(value).isnan(value), any):
        raise ValueError(f"{name} must not contain nan")
    return value


def holds(condition, reduce=all) -> bool:
    """Whether a Python bool, or every entry (``reduce=any``: some entry) of
    a boolean array, is true: one reduction and one explicit host transfer,
    for checks of data at construction, never inside iterations."""
    if isinstance(condition, bool):
        return condition
    xp = namespace(condition)
    return bool(to_numpy(xp.all(condition) if reduce is all else xp.any(condition)))


def check_real_or_array(value, name: str, *, finite=True):
    """``value`` as a Python float (a real number) or as is (a real floating
    array), validated by :func:`check_real` or :func:`check_array`."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return check_real(value, name, finite=finite)
    try:
        namespace(value)
    except TypeError as exc:
        raise TypeError(
            f"{name} must be a real number or a real floating array, got {type(value).__name__}"
        ) from exc
    return check_array(value, name, finite=finite)


def check_last_axis(x, size=None, name: str = "x") -> None:
    """Raise ``ValueError`` unless ``x`` has a last axis (the one a
    non-separable function acts on), of length ``size`` when given."""
    if x.ndim < 1:
        raise ValueError(f"{name} must have at least one axis (the function acts on the last)")
    if size is not None and x.shape[-1] != size:
        raise ValueError(
            f"{name} must have {size} entries on its last axis, got shape {tuple(x.shape)}"
        )


def check_broadcasts(data, x, name: str) -> None:
    """Raise ``ValueError`` unless the array ``data`` broadcasts to ``x``'s
    shape (against its trailing axes) without enlarging it."""
    shape, target = tuple(data.shape), tuple(x.shape)
    fits = len(shape) <= len(target) and all(
        s in (1, t) for s, t in zip(reversed(shape), reversed(target))
    )
    if not fits:
        raise ValueError(f"{name} of shape {shape} does not broadcast to x's shape {target}")


def like_input(data, x, name: str):
    """The array ``data`` in ``x``'s dtype (no copy when it matches), after
    checking that it comes from ``x``'s library and lives on its device."""
    same_library(data, x, name, "x")
    return namespace(x).astype(data, x.dtype, copy=False)


def restrict(total, inside):
    """``total`` where every entry of the boolean array ``inside`` holds, else ``+inf``.

    Both stay on the device: the result is a 0-d array of ``total``'s library.
    """
    xp = namespace(inside)
    return xp.where(xp.all(inside), total, xp.inf)


def zero_scalar(x):
    """A 0-d zero with the dtype and device of ``x``."""
    return namespace(x).zeros((), dtype=x.dtype, device=device(x))


def float_mask(mask, like):
    """A boolean mask as 0/1 in ``like``'s dtype."""
    return namespace(like).astype(mask, like.dtype)


def membership_tolerance(x) -> float:
    """Relative slack ``sqrt(eps)`` of ``x``'s dtype for membership in sets whose
    projection rounds (balls, simplices), as ``isapprox`` does: the projection
    of a large point carries an error proportional to that point, which the
    projected point alone cannot reveal."""
    return math.sqrt(float(namespace(x).finfo(x.dtype).eps))


class ProxFunction(ABC):
    r"""A closed convex (or at least proximable) function ``f``.

    Subclasses implement :meth:`value` (``f(x)``, summed over all entries,
    ``+inf`` outside the domain of an indicator) and :meth:`prox`:

    .. math::

        \operatorname{prox}_{\text{step}\,f}(x) =
        \arg\min_p\; f(p) + \frac{1}{2\,\text{step}} \|p - x\|^2 .

    Traits
    ------
    convex, separable (acts entrywise), indicator (the indicator of a set,
    so ``prox`` is a projection, independent of ``step``), smooth
    (differentiable with a Lipschitz gradient: such a function implements
    :meth:`gradient` and sets ``lipschitz``, the Lipschitz constant of the
    gradient, and, where known, ``strong_convexity``; its
    :class:`~opsplit.Subdifferential` can then be evaluated, forward).

    A prox that needs a per-step precomputation (a factorization) does it in
    :meth:`prox_map`, which returns the map for one step as a value.
    """

    convex = True
    separable = False
    indicator = False
    smooth = False
    #: Lipschitz constant of the gradient of a smooth function (``None``: unknown).
    lipschitz = None
    #: Strong convexity constant of a smooth function (``None``: unknown).
    strong_convexity = None

    @abstractmethod
    def value(self, x):
        """``f(x)`` as a 0-d array of ``x``'s library."""

    @abstractmethod
    def prox(self, x, step: float = 1.0):
        """The proximal operator with parameter ``step`` (> 0)."""

    def prox_map(self, step: float = 1.0):
        r"""The map :math:`x \mapsto \operatorname{prox}_{\text{step}\,f}(x)` for one
        step, with any precomputation it needs (a factorization) done once, here.

        Solvers call it once per step size and apply the returned callable to
        every iterate; by default it calls :meth:`prox`.
        """
        step = check_positive(step, "step")
        return lambda x: self.prox(x, step)

    def reflect_map(self, step: float = 1.0, prox_map=None):
        r"""The map :math:`x \mapsto 2\operatorname{prox}_{\text{step}\,f}(x) - x`
        for one step, like :meth:`prox_map`.

        ``prox_map``, a map :meth:`prox_map` returned for this ``step``, lets
        a function with a precomputation reuse it; by default the reflection
        calls :meth:`reflect` (which knows closed forms, like ReLU's ``|x|``).
        """
        step = check_positive(step, "step")
        return lambda x: self.reflect(x, step)

    def gradient(self, x):
        """The gradient of a smooth function (trait ``smooth``) at ``x``.

        Raises
        ------
        TypeError
            For a function that is not smooth.
        """
        raise TypeError(f"{type(self).__name__} is not smooth: it has no gradient")

    def reflect(self, x, step: float = 1.0):
        r"""The reflected prox :math:`2\operatorname{prox}_{\text{step}\,f}(x) - x`
        (Peaceman–Rachford's reflection); subclasses with a cheaper closed
        form override it."""
        return 2.0 * self.prox(x, step) - x

    def __call__(self, x):
        return self.value(x)

    def conjugate(self):
        """The convex conjugate ``f*``, proximable through the Moreau identity."""
        from .calculus import Conjugate

        return Conjugate(self)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class Activation(ProxFunction):
    """An activation ``σ = prox_f`` of a separable convex ``f``.

    Subclasses implement :meth:`value`, :meth:`prox` and
    :meth:`prox_derivative`; ``activate`` and ``derivative`` are their
    ``step = 1`` cases. A registered activation has a ``name`` (its key in
    :func:`~opsplit.prox.activations.get_activation`) and ``config_fields``,
    the constructor arguments that :func:`~opsplit.prox.activations.activation_config`
    records.
    """

    separable = True
    name = ""
    #: Constructor arguments that define the activation (its configuration).
    config_fields: tuple[str, ...] = ()

    def activate(self, v):
        """The activation ``σ(v)``, i.e. ``prox(v, 1.0)``."""
        return self.prox(v, 1.0)

    def derivative(self, v):
        """``σ'(v)`` entrywise at the pre-activation ``v`` (same shape and dtype)."""
        return self.prox_derivative(v, 1.0)

    @abstractmethod
    def prox_derivative(self, v, step: float = 1.0):
        """``d prox_{step f}(v) / dv`` entrywise (same shape and dtype as ``v``)."""

    def prox_and_derivative(self, v, step: float = 1.0):
        """``(prox(v, step), prox_derivative(v, step))``, sharing work where possible."""
        return self.prox(v, step), self.prox_derivative(v, step)
