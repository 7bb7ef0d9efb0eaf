r"""Optimizers as ``init``/``update`` pairs, and learning-rate schedules.

Parameters, gradients and optimizer states are *trees*: arrays, or
(named) tuples of trees, such as ``ClassifierParams(deq=DenseParams(...),
head=LinearParams(...))``.  Updates are pure: they return new trees and never
modify their inputs.

>>> import numpy as np
>>> from opsplit.nn import Adam
>>> opt = Adam(lr=0.1)
>>> params = (np.array([1.0, -2.0]),)
>>> state = opt.init(params)
>>> params, state = opt.update(params, (np.array([0.5, -0.5]),), state)
>>> params[0], state.count
(array([ 0.9, -1.9]), 1)
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, NamedTuple

from .._backend import namespace

__all__ = [
    "tree_map",
    "tree_leaves",
    "tree_items",
    "tree_unflatten",
    "SGD",
    "SGDState",
    "Adam",
    "AdamState",
    "StepSchedule",
    "OneCycleSchedule",
    "ConstantSchedule",
]


# ---------------------------------------------------------------- trees ----


def _is_node(t) -> bool:
    return isinstance(t, tuple)


def _rebuild(node, children):
    if hasattr(node, "_fields"):  # NamedTuple
        return type(node)(*children)
    return tuple(children)


def tree_map(fn, tree, *rest):
    """Apply ``fn`` leafwise over trees of the same structure (``None`` stays ``None``)."""
    if _is_node(tree):
        for other in rest:
            if not _is_node(other) or len(other) != len(tree):
                raise ValueError("trees have different structures")
        return _rebuild(tree, [tree_map(fn, *parts) for parts in zip(tree, *rest)])
    if tree is None:
        return None
    return fn(tree, *rest)


def tree_items(tree, prefix: str = ""):
    """``[(name, leaf), ...]`` in a fixed order; names join NamedTuple field
    names (or tuple positions) with dots, e.g. ``"deq.A"``."""
    if _is_node(tree):
        names = tree._fields if hasattr(tree, "_fields") else [str(i) for i in range(len(tree))]
        out = []
        for name, child in zip(names, tree):
            out.extend(tree_items(child, f"{prefix}.{name}" if prefix else name))
        return out
    if tree is None:
        return []
    return [(prefix, tree)]


def tree_leaves(tree) -> list:
    """The leaves of ``tree`` in :func:`tree_items` order."""
    return [leaf for _, leaf in tree_items(tree)]


def tree_unflatten(template, leaves):
    """Rebuild a tree shaped like ``template`` from ``leaves`` (in leaf order)."""
    it = iter(leaves)
    out = tree_map(lambda _: next(it), template)
    if next(it, None) is not None:
        raise ValueError("more leaves than the template has")
    return out


# ----------------------------------------------------------- optimizers ----


def _check_lr(lr, name="lr") -> float:
    if not isinstance(lr, numbers.Real) or isinstance(lr, bool):
        raise TypeError(f"{name} must be a real number, got {type(lr).__name__}")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"{name} must be a finite number > 0, got {lr}")
    return float(lr)


def _check_unit(value, name, *, closed=False) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    ok = 0 <= value <= 1 if closed else 0 <= value < 1
    if not ok:
        raise ValueError(f"{name} must be in [0, 1{']' if closed else ')'}, got {value}")
    return float(value)


def _zeros_like(a):
    xp = namespace(a)
    return xp.zeros_like(a)


class SGDState(NamedTuple):
    """Momentum buffers (a tree like the parameters)."""

    velocity: Any


@dataclass(frozen=True)
class SGD:
    r"""Stochastic gradient descent with (heavy-ball or Nesterov) momentum.

    With gradient ``g``, momentum ``mu`` and learning rate ``lr``, as in
    PyTorch's ``torch.optim.SGD`` (no dampening):

    .. math::

        v \leftarrow \mu\,v + g,\qquad
        p \leftarrow p - \mathrm{lr}\,(g + \mu v \;\text{(Nesterov)}\;\text{or}\; v).

    References
    ----------
    I. Sutskever et al., "On the importance of initialization and momentum
    in deep learning", ICML 2013.

    Examples
    --------
    >>> import numpy as np
    >>> opt = SGD(lr=0.5, momentum=0.9)
    >>> p, s = opt.update((np.array(1.0),), (np.array(2.0),), opt.init((np.array(1.0),)))
    >>> p, s = opt.update(p, (np.array(2.0),), s)
    >>> float(p[0])     # 1 - 0.5*2 - 0.5*(0.9*2 + 2)
    -1.9
    """

    lr: float = 1e-2
    momentum: float = 0.9
    nesterov: bool = False

    def __post_init__(self):
        _check_lr(self.lr)
        _check_unit(self.momentum, "momentum")
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")

    def init(self, params) -> SGDState:
        """Zero momentum buffers shaped like ``params``."""
        return SGDState(tree_map(_zeros_like, params))

    def update(self, params, grads, state: SGDState, lr: float | None = None):
        """Return ``(new_params, new_state)``; ``lr`` overrides ``self.lr`` (schedules)."""
        lr = self.lr if lr is None else _check_lr(lr)
        mu = self.momentum
        velocity = tree_map(lambda v, g: mu * v + g, state.velocity, grads)
        if self.nesterov:
            step = tree_map(lambda v, g: g + mu * v, velocity, grads)
        else:
            step = velocity
        return tree_map(lambda p, s: p - lr * s, params, step), SGDState(velocity)


class AdamState(NamedTuple):
    """Step count and the first and second moment estimates."""

    count: int
    mu: Any
    nu: Any


@dataclass(frozen=True)
class Adam:
    r"""Adam (Kingma & Ba, ICLR 2015), in PyTorch's arithmetic.

    With gradient ``g`` at step ``t``:

    .. math::

        \mu \leftarrow \beta_1 \mu + (1-\beta_1) g,\qquad
        \nu \leftarrow \beta_2 \nu + (1-\beta_2) g^2,

        p \leftarrow p - \frac{\mathrm{lr}}{1-\beta_1^t}\,
        \frac{\mu}{\sqrt{\nu}/\sqrt{1-\beta_2^t} + \epsilon}.

    References
    ----------
    D. P. Kingma and J. Ba, "Adam: a method for stochastic optimization",
    ICLR 2015.

    Examples
    --------
    >>> import numpy as np
    >>> opt = Adam(lr=1e-3)
    >>> p, s = opt.update((np.array([3.0]),), (np.array([-7.0]),), opt.init((np.array([3.0]),)))
    >>> np.allclose(p[0], 3.0 + 1e-3)     # the first step has length lr
    True
    """

    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self):
        _check_lr(self.lr)
        _check_unit(self.beta1, "beta1")
        _check_unit(self.beta2, "beta2")
        _check_lr(self.eps, "eps")

    def init(self, params) -> AdamState:
        """Step count 0 and zero moments shaped like ``params``."""
        return AdamState(0, tree_map(_zeros_like, params), tree_map(_zeros_like, params))

    def update(self, params, grads, state: AdamState, lr: float | None = None):
        """Return ``(new_params, new_state)``; ``lr`` overrides ``self.lr`` (schedules)."""
        lr = self.lr if lr is None else _check_lr(lr)
        b1, b2, eps = self.beta1, self.beta2, self.eps
        count = int(state.count) + 1
        step_size = lr / (1.0 - b1**count)
        root_bc2 = math.sqrt(1.0 - b2**count)
        mu = tree_map(lambda m, g: b1 * m + (1.0 - b1) * g, state.mu, grads)
        nu = tree_map(lambda v, g: b2 * v + (1.0 - b2) * (g * g), state.nu, grads)

        def step(p, m, v):
            xp = namespace(p)
            return p - step_size * (m / (xp.sqrt(v) / root_bc2 + eps))

        return tree_map(step, params, mu, nu), AdamState(count, mu, nu)


# ------------------------------------------------------------ schedules ----


@dataclass(frozen=True)
class ConstantSchedule:
    """The same learning rate throughout.

    >>> ConstantSchedule(1e-3)(7.5)
    0.001
    """

    lr: float = 1e-3

    def __post_init__(self):
        _check_lr(self.lr)

    def __call__(self, epoch: float) -> float:
        return self.lr


@dataclass(frozen=True)
class StepSchedule:
    r"""Multiply the learning rate by ``gamma`` at each milestone epoch.

    ``epoch`` counts from 0 and may be fractional (``epoch + batch/n``):

    .. math::

        \mathrm{lr}(t) = \mathrm{lr}\cdot\gamma^{\#\{k:\ \mathrm{milestones}_k \le t\}} .

    The monDEQ paper's MNIST schedule is ``StepSchedule(1e-3, milestones=(10,))``:
    ``1e-3`` for epochs 0–9 and ``1e-4`` from epoch 10 on (PyTorch
    ``StepLR(step_size=10, gamma=0.1)``, Winston & Kolter 2020).

    Examples
    --------
    >>> s = StepSchedule(1e-3, milestones=(10,))
    >>> s(0), s(9.9), s(10)
    (0.001, 0.001, 0.0001)
    """

    lr: float = 1e-3
    milestones: tuple = (10,)
    gamma: float = 0.1

    def __post_init__(self):
        _check_lr(self.lr)
        _check_lr(self.gamma, "gamma")
        ms = tuple(self.milestones)
        if any(not isinstance(m, numbers.Real) or m < 0 for m in ms):
            raise ValueError(f"milestones must be numbers >= 0, got {ms}")
        if list(ms) != sorted(ms):
            raise ValueError(f"milestones must be increasing, got {ms}")
        object.__setattr__(self, "milestones", ms)

    def __call__(self, epoch: float) -> float:
        passed = sum(1 for m in self.milestones if epoch >= m)
        return self.lr * self.gamma**passed


@dataclass(frozen=True)
class OneCycleSchedule:
    r"""A piecewise-linear one-cycle schedule (Smith & Topin 2019).

    The rate rises linearly from ``base_lr`` to ``max_lr`` over the first
    ``pct_start`` of the cycle, falls back to ``base_lr`` at the end of the
    cycle (``epochs - cooldown``), then moves linearly to ``final_lr`` over the
    last ``cooldown`` epochs.  The monDEQ paper's ``1cycle`` mode is
    ``OneCycleSchedule(max_lr, epochs, base_lr=1e-3, cooldown=5)``.

    Examples
    --------
    >>> s = OneCycleSchedule(1e-2, epochs=10, base_lr=1e-3)
    >>> [round(s(t), 6) for t in (0, 5, 10)]
    [0.001, 0.01, 0.001]
    """

    max_lr: float = 1e-2
    epochs: int = 10
    base_lr: float | None = None
    pct_start: float = 0.5
    cooldown: int = 0
    final_lr: float | None = None

    def __post_init__(self):
        _check_lr(self.max_lr, "max_lr")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be an integer >= 1, got {self.epochs!r}")
        if not isinstance(self.cooldown, int) or not 0 <= self.cooldown < self.epochs:
            raise ValueError(f"cooldown must be an integer in [0, epochs), got {self.cooldown!r}")
        if not 0 < self.pct_start < 1:
            raise ValueError(f"pct_start must be in (0, 1), got {self.pct_start}")
        if self.base_lr is not None:
            _check_lr(self.base_lr, "base_lr")
        if self.final_lr is not None:
            _check_lr(self.final_lr, "final_lr")

    def __call__(self, epoch: float) -> float:
        base = self.max_lr / 10.0 if self.base_lr is None else self.base_lr
        final = base if self.final_lr is None else self.final_lr
        cycle = self.epochs - self.cooldown
        peak = self.pct_start * cycle
        t = min(max(float(epoch), 0.0), float(self.epochs))
        if t <= peak:
            return base + (self.max_lr - base) * t / peak
        if t <= cycle:
            return self.max_lr + (base - self.max_lr) * (t - peak) / (cycle - peak)
        return base + (final - base) * (t - cycle) / self.cooldown
