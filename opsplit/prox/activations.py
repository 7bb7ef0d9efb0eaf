r"""Activation functions as proximal operators.

A monotone activation ``σ`` with slope in ``[0, 1]`` is the step-1 proximal
operator of a convex function ``f`` (Winston & Kolter, 2020, Table 1;
Combettes & Pesquet, 2020):

.. math::

    \sigma = \operatorname{prox}_f, \qquad f'(p) = \sigma^{-1}(p) - p ,

and ``f`` is convex because :math:`(\sigma^{-1})'(p) = 1/\sigma'(u) \ge 1`.
Each class below is that ``f`` as a :class:`~opsplit.prox.ProxFunction`, so
``prox(v, step)`` is :math:`\operatorname{prox}_{\text{step}\,f}(v)` for any
``step > 0`` (the monDEQ forward–backward and Peaceman–Rachford iterations
need ``step != 1``), plus what a backward pass needs:

- ``activate(v)`` — the activation ``σ(v) = prox(v, 1.0)``;
- ``derivative(v)`` — ``σ'(v)`` at the pre-activation ``v``;
- ``prox_derivative(v, step)`` — :math:`d\,\operatorname{prox}_{\text{step} f}(v)/dv`,
  by implicit differentiation of ``p + step·f'(p) = v``:
  :math:`1 / (1 + \text{step}\,f''(p))`;
- ``value(x)`` — ``f(x)`` summed over entries, ``+inf`` outside the domain.

This module holds the closed forms (ReLU, leaky ReLU, hard tanh), the
registry of activation names (:func:`get_activation`) and the exact
configuration round trip (:func:`activation_config`,
:func:`activation_from_config`). For ``tanh``, ``sigmoid`` and ``softplus``
the prox has no closed form; it is a scalar root find, done entrywise on the
array backend, in :mod:`opsplit.prox.smooth_activations`; the base class
:class:`~opsplit.prox.Activation` is in :mod:`opsplit.prox`.

References
----------
E. Winston and J. Z. Kolter, "Monotone operator equilibrium networks",
NeurIPS 2020. P. L. Combettes and J.-C. Pesquet, "Deep neural network
structures solving variational inequalities", Set-Valued Var. Anal., 2020.
"""

from __future__ import annotations

from collections.abc import Mapping

from .._backend import namespace
from .._validate import check_positive, check_real
from ._base import Activation, float_mask
from .functions import Box, NonNegative
from .smooth_activations import Sigmoid, Softplus, Tanh

__all__ = [
    "ReLU",
    "LeakyReLU",
    "HardTanh",
    "get_activation",
    "activation_config",
    "activation_from_config",
]


class ReLU(Activation, NonNegative):
    """ReLU: ``f`` is the indicator of ``x ≥ 0``, so ``prox_{αf} = max(·, 0)`` for all ``α``.

    ``derivative`` is 1 for ``v > 0`` and 0 otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> r = ReLU()
    >>> r.activate(np.array([-1.0, 2.0])), r.derivative(np.array([-1.0, 2.0]))
    (array([0., 2.]), array([0., 1.]))
    """

    name = "relu"

    def prox_derivative(self, v, step=1.0):
        check_positive(step, "step")
        return float_mask(v > 0, v)


class HardTanh(Activation, Box):
    """Hard tanh (clipping to ``[low, high]``): ``f`` is the indicator of the box.

    ``derivative`` is 1 strictly inside the box and 0 outside.

    Parameters
    ----------
    low : float
        Lower bound.
    high : float
        Upper bound, ``high >= low``.

    Examples
    --------
    >>> import numpy as np
    >>> HardTanh().activate(np.array([-3.0, 0.5, 2.0]))
    array([-1. ,  0.5,  1. ])
    """

    name = "hardtanh"
    config_fields = ("low", "high")

    def __init__(self, low=-1.0, high=1.0):
        # scalar bounds only: an activation is configured by numbers
        low = check_real(low, "low", finite=False)
        super().__init__(low, check_real(high, "high", finite=False))

    def prox_derivative(self, v, step=1.0):
        check_positive(step, "step")
        return float_mask((v > self.low) & (v < self.high), v)


class LeakyReLU(Activation):
    r"""Leaky ReLU ``σ(v) = v`` for ``v ≥ 0`` and ``slope·v`` otherwise.

    .. math::

        f(p) = \frac{1}{2}\Bigl(\frac{1}{\text{slope}} - 1\Bigr)\min(p, 0)^2, \qquad
        \operatorname{prox}_{\alpha f}(v) =
        \begin{cases} v & v \ge 0 \\ v / (1 + \alpha(1/\text{slope} - 1)) & v < 0 \end{cases}

    Parameters
    ----------
    slope : float in (0, 1]
        Slope on the negative side (``1`` gives the identity, ``f = 0``).

    Examples
    --------
    >>> import numpy as np
    >>> LeakyReLU(0.5).activate(np.array([-2.0, 3.0]))
    array([-1.,  3.])
    """

    smooth = True
    name = "leaky_relu"
    config_fields = ("slope",)

    def __init__(self, slope=0.01):
        self.slope = check_real(slope, "slope", minimum=0.0, strict=True)
        if self.slope > 1.0:
            raise ValueError(f"slope must be in (0, 1], got {self.slope}")

    lipschitz = property(lambda self: 1.0 / self.slope - 1.0)

    def gradient(self, x):
        return self.lipschitz * namespace(x).minimum(x, 0.0)

    def _negative_factor(self, step):
        return 1.0 / (1.0 + step * (1.0 / self.slope - 1.0))

    def value(self, x):
        xp = namespace(x)
        neg = xp.minimum(x, 0.0)
        return 0.5 * (1.0 / self.slope - 1.0) * xp.sum(neg * neg)

    def prox(self, x, step=1.0):
        check_positive(step, "step")
        xp = namespace(x)
        return xp.where(x >= 0, x, self._negative_factor(step) * x)

    def prox_derivative(self, v, step=1.0):
        check_positive(step, "step")
        c = self._negative_factor(step)
        return c + (1.0 - c) * float_mask(v > 0, v)


_ACTIVATIONS = {cls.name: cls for cls in (ReLU, LeakyReLU, HardTanh, Tanh, Sigmoid, Softplus)}


def get_activation(name, **params) -> Activation:
    """The activation called ``name`` (an :class:`Activation` is returned as is).

    Parameters
    ----------
    name : str or Activation
        One of ``"relu"``, ``"leaky_relu"``, ``"hardtanh"``, ``"tanh"``,
        ``"sigmoid"``, ``"softplus"``.
    **params
        Passed to the class (e.g. ``slope`` for ``"leaky_relu"``).

    Examples
    --------
    >>> get_activation("leaky_relu", slope=0.1)
    LeakyReLU(slope=0.1)
    """
    if isinstance(name, Activation):
        if params:
            raise TypeError("params can only be given together with an activation name")
        return name
    if not isinstance(name, str):
        raise TypeError(f"name must be a string or an Activation, got {type(name).__name__}")
    key = name.lower()
    if key not in _ACTIVATIONS:
        valid = ", ".join(repr(k) for k in _ACTIVATIONS)
        raise ValueError(f"unknown activation {name!r}; valid names are {valid}")
    return _ACTIVATIONS[key](**params)


def activation_config(activation) -> dict:
    """The exact configuration of ``activation`` as a JSON-ready dict.

    The dict holds ``"name"`` and every constructor argument
    (:attr:`Activation.config_fields`), so that
    :func:`activation_from_config` rebuilds the same class with the same
    parameters.

    Parameters
    ----------
    activation : Activation
        One of the registered activations (see :func:`get_activation`).

    Returns
    -------
    dict
        E.g. ``{"name": "leaky_relu", "slope": 0.3}``.

    Raises
    ------
    TypeError
        If ``activation`` is not an :class:`Activation`.
    ValueError
        If its class is not registered (a custom subclass has no name to
        rebuild it from).

    Examples
    --------
    >>> activation_config(LeakyReLU(slope=0.3))
    {'name': 'leaky_relu', 'slope': 0.3}
    >>> activation_from_config({"name": "leaky_relu", "slope": 0.3})
    LeakyReLU(slope=0.3)
    """
    if not isinstance(activation, Activation):
        raise TypeError(f"activation must be an Activation, got {type(activation).__name__}")
    if _ACTIVATIONS.get(activation.name) is not type(activation):
        raise ValueError(
            f"activation of type {type(activation).__name__} is not a registered activation "
            "and has no configuration to rebuild it from"
        )
    fields = {k: getattr(activation, k) for k in activation.config_fields}
    return {"name": activation.name, **fields}


def activation_from_config(config) -> Activation:
    """The activation described by ``config``, exactly (the inverse of :func:`activation_config`).

    Parameters
    ----------
    config : mapping
        ``"name"`` (a registered activation name) and exactly the fields of
        that activation's :attr:`~Activation.config_fields`, no more, no less.

    Returns
    -------
    Activation

    Raises
    ------
    TypeError
        If ``config`` is not a mapping or its name is not a string.
    ValueError
        If the name is missing or unknown, or a field is missing or unknown
        (there are no defaults) or has an invalid value.
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping, got {type(config).__name__}")
    if "name" not in config:
        raise ValueError("config has no 'name' entry")
    name = config["name"]
    if not isinstance(name, str):
        raise TypeError(f"config['name'] must be a string, got {type(name).__name__}")
    if name not in _ACTIVATIONS:
        valid = ", ".join(repr(k) for k in _ACTIVATIONS)
        raise ValueError(f"config names unknown activation {name!r}; valid names are {valid}")
    cls = _ACTIVATIONS[name]
    fields = {k: v for k, v in config.items() if k != "name"}
    missing = [k for k in cls.config_fields if k not in fields]
    unknown = [k for k in fields if k not in cls.config_fields]
    if missing or unknown:
        raise ValueError(
            f"config for activation {name!r} must have exactly the fields "
            f"{list(cls.config_fields)}; missing {missing}, unknown {unknown}"
        )
    return cls(**fields)
