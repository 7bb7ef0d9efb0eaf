r"""Finite-difference operators for total variation on signals and images.

Forward differences, with the adjoints that make ``⟨Dx, y⟩ = ⟨x, Dᵀy⟩`` hold
exactly (the negative divergence of Chambolle, 2004):

- :class:`Difference1D`: ``(Dx)_i = x_{i+1} - x_i`` along the last axis, an
  ``(n - 1) × n`` matrix, ``‖D‖ = 2 cos(π / (2n)) < 2``;
- :class:`Gradient2D`: forward differences along both image axes with the
  Neumann boundary (the difference leaving the image is zero), stacked as
  ``(2, H, W)``: index 0 along the rows (axis ``-2``), index 1 along the
  columns (axis ``-1``); ``‖∇‖² = 4 cos²(π/(2H)) + 4 cos²(π/(2W)) < 8``.

Both norms are exact: ``DᵀD`` is the Laplacian of the path graph (of the grid
graph, a Kronecker sum of two path Laplacians, in 2-D), whose eigenvalues are
``2 - 2 cos(kπ/n)``, ``k = 0, …, n - 1``; :func:`~opsplit.operators.exact_norm`
returns them.  Leading axes are batch axes; the operators adapt to the dtype
and device of their input (``dtype = None``).

References
----------
A. Chambolle, "An algorithm for total variation minimization and
applications", J. Math. Imaging Vis. 20, 2004, §2. G. Strang, "The discrete
cosine transform", SIAM Review 41(1), 1999 (the eigenvalues of the path
Laplacian).
"""

from __future__ import annotations

import math
import numbers

from .._backend import device, namespace
from ._base import LinearOperator
from .basic import check_trailing

__all__ = ["Difference1D", "Gradient2D"]


def _size(value, name: str, minimum: int) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _part(x, axis: int, start=None, stop=None):
    """``x[..., start:stop, :, …]`` with the slice on the negative ``axis``."""
    return x[(..., slice(start, stop)) + (slice(None),) * (-axis - 1)]


def _zeros_like_slice(x, axis: int):
    """Zeros shaped like ``x`` with one entry along ``axis``."""
    shape = list(x.shape)
    shape[x.ndim + axis] = 1
    return namespace(x).zeros(tuple(shape), dtype=x.dtype, device=device(x))


def _difference(x, axis: int):
    """``x[i + 1] - x[i]`` along ``axis`` (one entry shorter)."""
    return _part(x, axis, 1) - _part(x, axis, None, -1)


def _difference_adjoint(y, axis: int):
    """The adjoint of :func:`_difference`: ``(Dᵀy)_i = y_{i-1} - y_i`` with
    ``y_{-1} = y_{n-1} = 0`` (one entry longer than ``y``)."""
    xp = namespace(y)
    zero = _zeros_like_slice(y, axis)
    return xp.concat([zero, y], axis=axis) - xp.concat([y, zero], axis=axis)


def _neumann_difference(x, axis: int):
    """Forward differences along ``axis`` padded with a zero at the end
    (same length as ``x``)."""
    return namespace(x).concat([_difference(x, axis), _zeros_like_slice(x, axis)], axis=axis)


def _neumann_difference_adjoint(p, axis: int):
    """The adjoint of :func:`_neumann_difference`: the last entry of ``p``
    along ``axis`` does not count (the padding is zero whatever ``x`` is)."""
    return _difference_adjoint(_part(p, axis, None, -1), axis)


class Difference1D(LinearOperator):
    r"""Forward differences along the last axis, the ``(n - 1) × n`` matrix

    .. math::

        (D x)_i = x_{i+1} - x_i, \qquad
        (D^{T} y)_i = y_{i-1} - y_i \quad (y_{-1} = y_{n-1} = 0),

    so that ``λ‖Dx‖₁`` is the 1-D total variation. Its norm is
    ``‖D‖ = 2 cos(π/(2n)) < 2`` (registered with
    :func:`~opsplit.operators.exact_norm`).

    Parameters
    ----------
    n : int
        Length of the signals, ``n >= 2``.

    Examples
    --------
    >>> import math, numpy as np, opsplit as ops
    >>> D = ops.operators.Difference1D(4)
    >>> D @ np.array([1.0, 3.0, 3.0, 0.0])
    array([ 2.,  0., -3.])
    >>> D.H @ np.array([1.0, 0.0, 0.0])
    array([-1.,  1.,  0.,  0.])
    >>> ops.operators.exact_norm(D) == 2 * math.cos(math.pi / 8)
    True
    """

    def __init__(self, n):
        self.n = _size(n, "n", 2)
        self.in_shape = (self.n,)
        self.out_shape = (self.n - 1,)

    def matvec(self, x):
        check_trailing(x, self.in_shape)
        return _difference(x, -1)

    def rmatvec(self, y):
        check_trailing(y, self.out_shape, "y")
        return _difference_adjoint(y, -1)

    def norm(self) -> float:
        """The exact operator norm ``2 cos(π / (2n))``."""
        return 2.0 * math.cos(math.pi / (2 * self.n))

    def __repr__(self) -> str:
        return f"Difference1D(n={self.n})"


class Gradient2D(LinearOperator):
    r"""The discrete gradient of ``H × W`` images: forward differences along
    both axes with the Neumann boundary, stacked on a new axis ``-3``:

    .. math::

        (\nabla x)_{0,i,j} = x_{i+1,j} - x_{i,j} \ (i < H-1), \qquad
        (\nabla x)_{1,i,j} = x_{i,j+1} - x_{i,j} \ (j < W-1),

    and zero on the last row (resp. column). The adjoint is the negative
    divergence :math:`\nabla^{T} p = -\operatorname{div} p` of Chambolle
    (2004); entries of ``p`` on the zero row/column do not enter it. Its norm
    is ``‖∇‖ = 2 (cos²(π/(2H)) + cos²(π/(2W)))^{1/2} < √8`` (registered with
    :func:`~opsplit.operators.exact_norm`). The isotropic total variation is
    the sum over pixels of the 2-norm over axis ``-3`` of ``∇x``.

    Parameters
    ----------
    shape : tuple of int
        The image shape ``(H, W)``, both ``>= 1``.

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> G = ops.operators.Gradient2D((2, 3))
    >>> x = np.array([[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]])
    >>> G @ x
    array([[[ 2.,  1., -1.],
            [ 0.,  0.,  0.]],
    <BLANKLINE>
           [[ 1.,  2.,  0.],
            [ 0.,  0.,  0.]]])
    >>> (G @ x).shape, (G.H @ (G @ x)).shape
    ((2, 2, 3), (2, 3))
    """

    def __init__(self, shape):
        try:
            height, width = shape
        except (TypeError, ValueError) as exc:
            raise TypeError(f"shape must be a pair of ints (H, W), got {shape!r}") from exc
        self.image_shape = (_size(height, "shape[0]", 1), _size(width, "shape[1]", 1))
        self.in_shape = self.image_shape
        self.out_shape = (2, *self.image_shape)

    def matvec(self, x):
        check_trailing(x, self.in_shape)
        xp = namespace(x)
        return xp.stack([_neumann_difference(x, -2), _neumann_difference(x, -1)], axis=-3)

    def rmatvec(self, y):
        check_trailing(y, self.out_shape, "y")
        return _neumann_difference_adjoint(y[..., 0, :, :], -2) + _neumann_difference_adjoint(
            y[..., 1, :, :], -1
        )

    def norm(self) -> float:
        """The exact operator norm ``2 (cos²(π/(2H)) + cos²(π/(2W)))^{1/2}``."""
        # cos(π/2) = 0 exactly for an axis of length 1 (no difference along it)
        cosines = (math.cos(math.pi / (2 * s)) if s > 1 else 0.0 for s in self.image_shape)
        return 2.0 * math.hypot(*cosines)

    def __repr__(self) -> str:
        return f"Gradient2D(shape={self.image_shape})"
