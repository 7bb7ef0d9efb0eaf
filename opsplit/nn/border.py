r"""The border nonlinearity of the convolutional monDEQs.

The convolutional layers work on zero-padded grids whose outer ring must
stay zero (the padding of the next step).  Winston & Kolter's conv models
apply ReLU inside and 0 on the ring; as a proximal operator that is the
prox of

.. math::

    f(z) = \sum_{\text{interior}} f_\sigma(z_{ij}) + \iota_{\{0\}}(z_{\text{ring}}),

the activation's function on the interior plus the indicator of zero on the
ring, so any activation composes with the border: :class:`BorderMasked`
wraps one.  Its prox (for every step), reflection and derivative are the
activation's in the interior and ``0`` (reflection ``-x``, derivative ``0``)
on the ring.  Tuples of arrays (the tiers of a multi-tier state) are handled
tier by tier, each with its own ring.
"""

from __future__ import annotations

from .._backend import device, namespace
from .._validate import check_positive_int
from .._vectors import vmap
from ..prox._base import restrict
from ..prox.activations import Activation, get_activation

__all__ = ["BorderMasked"]


class BorderMasked(Activation):
    r"""``activation`` on the interior of the last two axes, ``0`` on a ring of width ``ring``.

    Parameters
    ----------
    activation : str or Activation
        The interior activation (``"relu"``, ``"tanh"``, ... or an object).
    ring : int
        Width of the outer ring forced to zero (``1`` for the monDEQ layers).

    Examples
    --------
    >>> import numpy as np
    >>> sigma = BorderMasked("relu")
    >>> v = np.array([[-1.0, 2.0, 3.0], [4.0, -5.0, 6.0], [7.0, 8.0, 9.0]])
    >>> sigma.activate(v)
    array([[0., 0., 0.],
           [0., 0., 0.],
           [0., 0., 0.]])
    >>> sigma.activate(np.ones((4, 4)))[1:3, 1:3]
    array([[1., 1.],
           [1., 1.]])
    >>> sigma.derivative(np.ones((4, 4))).sum()
    np.float64(4.0)
    """

    # Not entrywise-identical: it handles tuples (one ring per tier) itself.
    separable = False
    name = "border_masked"

    def __init__(self, activation="relu", ring: int = 1):
        activation = get_activation(activation)
        self.ring = check_positive_int(ring, "ring")
        if isinstance(activation, BorderMasked) and activation.ring == self.ring:
            activation = activation.activation  # masking twice is masking once
        self.activation = activation

    def _interior(self, x):
        """Boolean ``(n1, n2)`` mask of the interior (broadcasts over leading axes)."""
        xp = namespace(x)
        n1, n2 = x.shape[-2:]
        w = self.ring
        rows = xp.arange(n1, device=device(x))
        cols = xp.arange(n2, device=device(x))
        inside_r = (rows >= w) & (rows < n1 - w)
        inside_c = (cols >= w) & (cols < n2 - w)
        return inside_r[:, None] & inside_c[None, :]

    def _masked(self, fn, ring_value=None):
        """``fn`` inside, ``ring_value`` (``None``: zero) on the ring."""

        def apply(v):
            # ``fn`` on the whole array, then the ring's four strips overwritten
            # (a fresh array, so nothing shared is mutated): one full pass,
            # where a broadcast ``where`` would take four.
            xp = namespace(v)
            out = fn(v)
            if out is v:
                out = xp.asarray(v, copy=True)
            w = self.ring
            for strip in (
                (..., slice(None, w), slice(None)),
                (..., slice(-w, None), slice(None)),
                (..., slice(w, -w), slice(None, w)),
                (..., slice(w, -w), slice(-w, None)),
            ):
                out[strip] = 0.0 if ring_value is None else ring_value(v[strip])
            return out

        return apply

    def prox(self, x, step: float = 1.0):
        return vmap(self._masked(lambda v: self.activation.prox(v, step)), x)

    def reflect(self, x, step: float = 1.0):
        return vmap(self._masked(lambda v: self.activation.reflect(v, step), _negative), x)

    def prox_derivative(self, v, step: float = 1.0):
        return vmap(self._masked(lambda u: self.activation.prox_derivative(u, step)), v)

    def derivative(self, v):
        return vmap(self._masked(self.activation.derivative), v)

    def value(self, x):
        parts = x if isinstance(x, tuple) else (x,)
        total = None
        for v in parts:
            xp = namespace(v)
            w = self.ring
            inner = self.activation.value(v[..., w:-w, w:-w])
            ring_zero = xp.where(self._interior(v), 0.0, v) == 0
            term = restrict(inner, ring_zero)
            total = term if total is None else total + term
        return total

    def __repr__(self) -> str:
        return f"BorderMasked({self.activation!r}, ring={self.ring})"


def _negative(v):
    return -v
