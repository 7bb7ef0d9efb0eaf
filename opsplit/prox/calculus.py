r"""Prox calculus: new proximable functions from old ones.

Every rule below gives the prox of the new function in closed form from
the prox of the old one (Bauschke & Combettes, *Convex Analysis and
Monotone Operator Theory in Hilbert Spaces*, 2nd ed., 2017, Prop. 24.8 and
Thm. 14.3; Parikh & Boyd, "Proximal Algorithms", 2014, §2.2):

- ``Scaled(f, c)``:        :math:`\operatorname{prox}_{\gamma c f} =
  \operatorname{prox}_{(c\gamma) f}`;
- ``Translated(f, s)``:    :math:`\operatorname{prox}_{\gamma f(\cdot - s)}(x) = s +
  \operatorname{prox}_{\gamma f}(x - s)`;
- ``Conjugate(f)``:        the Moreau identity
  :math:`\operatorname{prox}_{\gamma f^*}(x) = x - \gamma\operatorname{prox}_{f/\gamma}(x/\gamma)`;
- ``SeparableSum(fs)``:    blockwise prox on tuples of arrays.
"""

from __future__ import annotations

from functools import singledispatch

from .._validate import check_positive, check_real
from ._base import ProxFunction, check_real_or_array
from .functions import (
    L1,
    L2,
    Box,
    L2Ball,
    LInfBall,
    NonNegative,
    SquaredL2,
    Zero,
    ZeroOnMask,
)

__all__ = ["Scaled", "Translated", "Conjugate", "SeparableSum", "closed_form_conjugate"]


def _check_function(f, name="f"):
    if not isinstance(f, ProxFunction):
        raise TypeError(f"{name} must be a ProxFunction, got {type(f).__name__}")
    return f


def _times(scale, constant):
    return None if constant is None else scale * constant


def _largest(constants):
    constants = list(constants)
    return None if None in constants else max(constants)


def _smallest(constants):
    constants = list(constants)
    return None if None in constants else min(constants)


class Scaled(ProxFunction):
    r"""``c·f`` for a constant ``c > 0``: :math:`\operatorname{prox}_{\gamma c f} =
    \operatorname{prox}_{(c\gamma) f}`.

    Examples
    --------
    >>> import numpy as np
    >>> from opsplit.prox.functions import L1
    >>> Scaled(L1(1.0), 2.0).prox(np.array([3.0, -1.0]))
    array([1., 0.])
    """

    def __init__(self, function, scale):
        self.function = _check_function(function, "function")
        self.scale = check_real(scale, "scale", minimum=0.0, strict=True)

    convex = property(lambda self: self.function.convex)
    separable = property(lambda self: self.function.separable)
    indicator = property(lambda self: self.function.indicator)
    smooth = property(lambda self: self.function.smooth)
    lipschitz = property(lambda self: _times(self.scale, self.function.lipschitz))
    strong_convexity = property(lambda self: _times(self.scale, self.function.strong_convexity))

    def value(self, x):
        return self.scale * self.function.value(x)

    def gradient(self, x):
        return self.scale * self.function.gradient(x)

    def prox(self, x, step=1.0):
        check_positive(step, "step")
        return self.function.prox(x, self.scale * step)


class Translated(ProxFunction):
    r"""``x ↦ f(x - shift)``: :math:`\operatorname{prox}(x) = \text{shift} +
    \operatorname{prox}_f(x - \text{shift})`.

    Parameters
    ----------
    function : ProxFunction
    shift : float or array
        Broadcast against ``x``; an array must live where ``x`` does.

    Examples
    --------
    >>> import numpy as np
    >>> from opsplit.prox.functions import NonNegative
    >>> Translated(NonNegative(), 1.0).prox(np.array([0.0, 3.0]))
    array([1., 3.])
    """

    def __init__(self, function, shift):
        self.function = _check_function(function, "function")
        shift = check_real_or_array(shift, "shift")
        self.shift = shift

    convex = property(lambda self: self.function.convex)
    separable = property(lambda self: self.function.separable)
    indicator = property(lambda self: self.function.indicator)
    smooth = property(lambda self: self.function.smooth)
    lipschitz = property(lambda self: self.function.lipschitz)
    strong_convexity = property(lambda self: self.function.strong_convexity)

    def value(self, x):
        return self.function.value(x - self.shift)

    def gradient(self, x):
        return self.function.gradient(x - self.shift)

    def prox(self, x, step=1.0):
        check_positive(step, "step")
        return self.shift + self.function.prox(x - self.shift, step)


@singledispatch
def closed_form_conjugate(function):
    """The convex conjugate of ``function`` as a ProxFunction, or ``None`` if unknown.

    Register more closed forms with ``@closed_form_conjugate.register``.
    Known: ``Zero ↔ Box(0, 0)``, ``NonNegative → Box(-inf, 0)``,
    ``L1(λ) ↔ LInfBall(λ)``, ``L2(λ) ↔ L2Ball(λ)``, ``SquaredL2(λ) →
    SquaredL2(1/λ)``, ``Box(-r, r) → L1(r)`` (scalar bounds), ``ZeroOnMask(m) → ZeroOnMask(~m)``,
    and through the calculus: ``Scaled`` indicators, ``Conjugate`` (``f** = f``)
    and ``SeparableSum``.

    Examples
    --------
    >>> from opsplit.prox.functions import L1
    >>> closed_form_conjugate(L1(2.0))
    LInfBall(radius=2.0)
    """
    return None


@closed_form_conjugate.register
def _(function: Zero):
    return Box(0.0, 0.0)


@closed_form_conjugate.register
def _(function: NonNegative):
    return Box(-float("inf"), 0.0)


@closed_form_conjugate.register
def _(function: Box):
    inf = float("inf")
    if not (isinstance(function.low, float) and isinstance(function.high, float)):
        return None  # array bounds: the support function Σ max(low·y, high·y) is not in the library
    if function.low == -inf and function.high == inf:
        return Box(0.0, 0.0)
    if function.low == function.high == 0.0:
        return Zero()
    if function.low == 0.0 and function.high == inf:
        return Box(-inf, 0.0)
    if function.high == 0.0 and function.low == -inf:
        return NonNegative()
    if function.low == -function.high:
        return L1(function.high)
    return None


@closed_form_conjugate.register
def _(function: ZeroOnMask):
    # the indicator of a coordinate subspace: its conjugate is that of the complement
    return ZeroOnMask(~function.mask)


@closed_form_conjugate.register
def _(function: L1):
    return LInfBall(function.lam)


@closed_form_conjugate.register
def _(function: LInfBall):
    return L1(function.radius)


@closed_form_conjugate.register
def _(function: L2):
    return L2Ball(function.lam)


@closed_form_conjugate.register
def _(function: L2Ball):
    return L2(function.radius)


@closed_form_conjugate.register
def _(function: SquaredL2):
    return SquaredL2(1.0 / function.lam) if function.lam > 0 else Box(0.0, 0.0)


@closed_form_conjugate.register
def _(function: Scaled):
    # (c·ι_C)* = ι_C* ; other scalings would need x ↦ c f*(x / c)
    return closed_form_conjugate(function.function) if function.indicator else None


class Conjugate(ProxFunction):
    r"""The convex conjugate :math:`f^*(y) = \sup_x \langle x, y\rangle - f(x)`.

    The prox comes from the Moreau identity

    .. math::

        \operatorname{prox}_{\text{step}\, f^*}(x) =
        x - \text{step}\cdot\operatorname{prox}_{f/\text{step}}(x / \text{step}),

    so it is available for every ``f``. Where :func:`closed_form_conjugate`
    knows ``f*`` (e.g. ``L1 ↔ LInfBall``), its own prox and value are used
    instead: a projection computed as ``x - (x - P(x))`` would lose the
    digits of ``x``. Without a closed form, :meth:`value` raises
    ``NotImplementedError``.

    Examples
    --------
    >>> import numpy as np
    >>> from opsplit.prox.functions import L1
    >>> Conjugate(L1(1.0)).prox(np.array([3.0, -0.5]))
    array([ 1. , -0.5])
    """

    def __init__(self, function):
        self.function = _check_function(function, "function")
        self._closed = closed_form_conjugate(function)

    convex = True
    separable = property(lambda self: self.function.separable)
    indicator = property(lambda self: self._closed is not None and self._closed.indicator)
    smooth = property(lambda self: self._closed is not None and self._closed.smooth)
    lipschitz = property(lambda self: None if self._closed is None else self._closed.lipschitz)
    strong_convexity = property(
        lambda self: None if self._closed is None else self._closed.strong_convexity
    )

    def gradient(self, x):
        if self._closed is None:
            return super().gradient(x)
        return self._closed.gradient(x)

    def value(self, x):
        if self._closed is None:
            raise NotImplementedError(
                f"no closed form is registered for the conjugate of {self.function!r}; "
                "its prox is available (Moreau identity) but not its value. Register one "
                "with opsplit.prox.calculus.closed_form_conjugate.register."
            )
        return self._closed.value(x)

    def prox(self, x, step=1.0):
        check_positive(step, "step")
        if self._closed is not None:
            return self._closed.prox(x, step)
        return x - step * self.function.prox(x / step, 1.0 / step)

    def conjugate(self):
        """``f** = f`` for closed convex ``f``."""
        return self.function


@closed_form_conjugate.register
def _(function: Conjugate):
    return function.function


class SeparableSum(ProxFunction):
    r"""``f(x₁, …, x_n) = Σ fᵢ(xᵢ)`` on tuples of arrays; the prox acts blockwise.

    Examples
    --------
    >>> import numpy as np
    >>> from opsplit.prox.functions import L1, NonNegative
    >>> f = SeparableSum([NonNegative(), L1(1.0)])
    >>> f.prox((np.array([-1.0, 2.0]), np.array([3.0])))
    (array([0., 2.]), array([2.]))
    """

    def __init__(self, functions):
        functions = tuple(functions)
        if not functions:
            raise ValueError("functions must contain at least one ProxFunction")
        for i, f in enumerate(functions):
            _check_function(f, f"functions[{i}]")
        self.functions = functions

    convex = property(lambda self: all(f.convex for f in self.functions))
    separable = property(lambda self: all(f.separable for f in self.functions))
    indicator = property(lambda self: all(f.indicator for f in self.functions))
    smooth = property(lambda self: all(f.smooth for f in self.functions))
    lipschitz = property(lambda self: _largest(f.lipschitz for f in self.functions))
    strong_convexity = property(
        lambda self: _smallest(f.strong_convexity for f in self.functions)
    )

    def gradient(self, x):
        self._check_blocks(x)
        return tuple(f.gradient(part) for f, part in zip(self.functions, x))

    def _check_blocks(self, x):
        if not isinstance(x, tuple) or len(x) != len(self.functions):
            got = f"a tuple of {len(x)}" if isinstance(x, tuple) else type(x).__name__
            raise ValueError(f"x must be a tuple of {len(self.functions)} arrays, got {got}")

    def value(self, x):
        self._check_blocks(x)
        total = self.functions[0].value(x[0])
        for f, part in zip(self.functions[1:], x[1:]):
            total = total + f.value(part)
        return total

    def prox(self, x, step=1.0):
        check_positive(step, "step")
        self._check_blocks(x)
        return tuple(f.prox(part, step) for f, part in zip(self.functions, x))


@closed_form_conjugate.register
def _(function: SeparableSum):
    parts = [closed_form_conjugate(f) for f in function.functions]
    return None if any(p is None for p in parts) else SeparableSum(parts)
