"""Identity, dense and diagonal linear operators."""

from __future__ import annotations

from .._backend import check_finite, check_floating, device, namespace
from .._vectors import is_block_shape
from ._base import LinearOperator

__all__ = ["Identity", "Dense", "Diagonal", "check_trailing"]


def check_trailing(x, shape: tuple, name: str = "x") -> None:
    """Raise ``ValueError`` unless the trailing axes of ``x`` equal ``shape``.

    For block (tuple) vectors ``shape`` is a tuple of shapes, checked blockwise.
    """
    if is_block_shape(shape):
        if not isinstance(x, tuple) or len(x) != len(shape):
            raise ValueError(f"{name} must be a tuple of {len(shape)} arrays")
        for i, (part, part_shape) in enumerate(zip(x, shape)):
            check_trailing(part, part_shape, f"{name}[{i}]")
        return
    if isinstance(x, tuple):
        raise ValueError(f"{name} must be an array, not a tuple")
    nd = len(shape)
    if x.ndim < nd or tuple(x.shape[x.ndim - nd :]) != tuple(shape):
        raise ValueError(
            f"{name} must end with axes {tuple(shape)}, got an array of shape {tuple(x.shape)}"
        )


def _as_shape(shape) -> tuple:
    if isinstance(shape, int):
        return (shape,)
    if is_block_shape(shape):  # block vectors: a tuple of shapes
        return tuple(_as_shape(s) for s in shape)
    return tuple(int(s) for s in shape)


class Identity(LinearOperator):
    """The identity on arrays whose trailing axes are ``shape``.

    Parameters
    ----------
    shape : int or tuple of int
        Trailing shape the operator acts on.

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> ops.Identity(3) @ np.arange(3.0)
    array([0., 1., 2.])
    """

    def __init__(self, shape):
        self.in_shape = self.out_shape = _as_shape(shape)

    def matvec(self, x):
        check_trailing(x, self.in_shape)
        return x

    def rmatvec(self, y):
        check_trailing(y, self.out_shape, "y")
        return y


class Dense(LinearOperator):
    """A dense matrix ``M`` acting on the last axis: ``y = M x``.

    Row batches are supported: for ``x`` of shape ``(..., n)`` the result
    has shape ``(..., m)``, computed as one matrix product ``x @ Mᵀ``.

    Parameters
    ----------
    matrix : array, shape (m, n)
        A finite real floating matrix (NumPy, CuPy or any array-API array).

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> A = ops.Dense(np.array([[1.0, 2.0], [0.0, 1.0]]))
    >>> A @ np.array([1.0, 1.0]), A.H @ np.array([1.0, 1.0])
    (array([3., 1.]), array([1., 3.]))
    """

    def __init__(self, matrix):
        check_floating(matrix, "matrix")
        if matrix.ndim != 2:
            raise ValueError(f"matrix must be 2-D, got shape {tuple(matrix.shape)}")
        check_finite(matrix, "matrix")
        self.matrix = matrix
        self.dtype = matrix.dtype
        self.in_shape = (matrix.shape[1],)
        self.out_shape = (matrix.shape[0],)
        self._matrix_t = namespace(matrix).matrix_transpose(matrix)

    def matvec(self, x):
        if isinstance(x, tuple) or x.shape[-1:] != self.in_shape:  # cheap test first
            check_trailing(x, self.in_shape)
        return x @ self._matrix_t

    def rmatvec(self, y):
        if isinstance(y, tuple) or y.shape[-1:] != self.out_shape:
            check_trailing(y, self.out_shape, "y")
        return y @ self.matrix

    def to_dense(self, like=None):
        return self.matrix

    def _like(self, like):
        return self.matrix


class Diagonal(LinearOperator):
    """Elementwise scaling ``y = d * x`` over trailing axes of ``d.shape``.

    Parameters
    ----------
    diagonal : array
        Finite real floating array; the operator acts on trailing axes equal to
        ``diagonal.shape``.

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> ops.Diagonal(np.array([1.0, 2.0])) @ np.ones((2, 2))
    array([[1., 2.],
           [1., 2.]])
    """

    def __init__(self, diagonal):
        check_floating(diagonal, "diagonal")
        check_finite(diagonal, "diagonal")
        self.diagonal = diagonal
        self.dtype = diagonal.dtype
        self.in_shape = self.out_shape = tuple(diagonal.shape)

    def matvec(self, x):
        check_trailing(x, self.in_shape)
        return self.diagonal * x

    rmatvec = matvec

    def to_dense(self, like=None):
        xp = namespace(self.diagonal)
        d = xp.reshape(self.diagonal, (-1,))
        n = d.shape[0]
        eye = xp.eye(n, dtype=d.dtype, device=device(d))
        return eye * d[None, :]

    def _like(self, like):
        return self.diagonal
