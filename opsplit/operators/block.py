r"""Block operators over tuples of arrays (multi-tier states).

A block operator maps a tuple ``(x_0, ..., x_{n-1})`` to a tuple; block
``i`` of the input has trailing shape ``in_shape[i]`` and may carry leading
batch axes (the same on every block).  Block lower-triangular operators are
the multi-scale convolutions of multi-tier monDEQs (Winston & Kolter,
NeurIPS 2020, §4); their shifted inverse is a block forward substitution
with structured solves on the diagonal.
"""

from __future__ import annotations

from .._vectors import is_block_shape
from ._base import LinearOperator
from .shifted import _check_shift, shifted_inverse, shifted_operator

__all__ = ["BlockDiagonal", "BlockLowerTriangular", "BlockForwardSubstitution"]


def _check_blocks(ops, name: str) -> None:
    for op in ops:
        if not isinstance(op, LinearOperator):
            raise TypeError(f"{name} must hold LinearOperators, got {type(op).__name__}")
        if is_block_shape(op.in_shape):
            raise ValueError(f"{name} must hold operators on arrays, not nested block operators")


def _check_tuple(x, n: int, name: str) -> None:
    if not isinstance(x, tuple):
        raise TypeError(f"{name} must be a tuple of {n} arrays, got {type(x).__name__}")
    if len(x) != n:
        raise ValueError(f"{name} must be a tuple of {n} arrays, got {len(x)}")


def _first_dtype(ops):
    return next((op.dtype for op in ops if op.dtype is not None), None)


def _first_like(owner, ops, like):
    """The first array an operator among ``ops`` can supply (see ``LinearOperator._like``)."""
    for op in ops:
        try:
            return op._like(like)
        except ValueError:
            continue
    return LinearOperator._like(owner, like)


def _add(total, term):
    return term if total is None else total + term


class BlockDiagonal(LinearOperator):
    r"""``(x_0, …, x_{n-1}) ↦ (D_0 x_0, …, D_{n-1} x_{n-1})``.

    Parameters
    ----------
    blocks : sequence of LinearOperator
        The diagonal blocks ``D_i`` (each acting on arrays, not tuples).

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> from opsplit.operators.block import BlockDiagonal
    >>> D = BlockDiagonal([ops.Diagonal(np.array([2.0])), ops.Identity(2)])
    >>> D @ (np.ones(1), np.ones(2))
    (array([2.]), array([1., 1.]))
    """

    def __init__(self, blocks):
        blocks = list(blocks)
        if not blocks:
            raise ValueError("blocks must hold at least one operator")
        _check_blocks(blocks, "blocks")
        self.blocks = blocks
        self.in_shape = tuple(op.in_shape for op in blocks)
        self.out_shape = tuple(op.out_shape for op in blocks)
        self.dtype = _first_dtype(blocks)

    def matvec(self, x):
        _check_tuple(x, len(self.blocks), "x")
        return tuple(op.matvec(part) for op, part in zip(self.blocks, x, strict=True))

    def rmatvec(self, y):
        _check_tuple(y, len(self.blocks), "y")
        return tuple(op.rmatvec(part) for op, part in zip(self.blocks, y, strict=True))

    def _like(self, like):
        return _first_like(self, self.blocks, like)


class BlockLowerTriangular(LinearOperator):
    r"""``y_i = Σ_{j ≤ i} L_ij x_j``: a block lower-triangular operator.

    Parameters
    ----------
    blocks : list of lists of LinearOperator or None
        Row ``i`` has ``i + 1`` entries ``L_i0, …, L_ii``; ``None`` marks a
        zero block.  Diagonal blocks are required (they fix the block
        shapes); ``L_ij`` must map ``in_shape[j]`` to ``out_shape[i]``.

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> from opsplit.operators.block import BlockLowerTriangular
    >>> L = BlockLowerTriangular([[ops.Identity(1)],
    ...                           [ops.Dense(np.array([[1.0], [2.0]])), ops.Identity(2)]])
    >>> L @ (np.ones(1), np.zeros(2))
    (array([1.]), array([1., 2.]))
    """

    def __init__(self, blocks):
        rows = [list(row) for row in blocks]
        if not rows:
            raise ValueError("blocks must hold at least one row")
        for i, row in enumerate(rows):
            if len(row) != i + 1:
                raise ValueError(f"blocks row {i} must have {i + 1} entries, got {len(row)}")
            if row[i] is None:
                raise ValueError(f"blocks[{i}][{i}] (a diagonal block) must not be None")
        present = [op for row in rows for op in row if op is not None]
        _check_blocks(present, "blocks")
        self.blocks = rows
        self.in_shape = tuple(row[i].in_shape for i, row in enumerate(rows))
        self.out_shape = tuple(row[i].out_shape for i, row in enumerate(rows))
        for i, row in enumerate(rows):
            for j, op in enumerate(row[:i]):
                if op is not None and (
                    op.in_shape != self.in_shape[j] or op.out_shape != self.out_shape[i]
                ):
                    raise ValueError(
                        f"blocks[{i}][{j}] maps {op.in_shape} -> {op.out_shape}, expected "
                        f"{self.in_shape[j]} -> {self.out_shape[i]}"
                    )
        self.dtype = _first_dtype(present)

    def matvec(self, x):
        _check_tuple(x, len(self.blocks), "x")
        out = []
        for row in self.blocks:
            total = None
            for op, part in zip(row, x[: len(row)], strict=True):
                if op is not None:
                    total = _add(total, op.matvec(part))
            out.append(total)
        return tuple(out)

    def rmatvec(self, y):
        n = len(self.blocks)
        _check_tuple(y, n, "y")
        out = []
        for j in range(n):
            total = None
            for i in range(j, n):
                op = self.blocks[i][j]
                if op is not None:
                    total = _add(total, op.rmatvec(y[i]))
            out.append(total)
        return tuple(out)

    def _like(self, like):
        return _first_like(self, [op for row in self.blocks for op in row if op is not None], like)


class BlockForwardSubstitution(LinearOperator):
    r"""``(aI + bL)⁻¹`` for a block lower-triangular ``L``, by forward substitution.

    Built by :func:`~opsplit.operators.shifted_inverse`; holds the diagonal
    shifted inverses :math:`D_i = (a I + b L_{ii})^{-1}`.  Applying it solves
    :math:`(aI + bL)\,y = x` block by block; the adjoint solves
    :math:`(aI + bL)^{H} u = v` by backward substitution:

    .. math::

        y_i = D_i \Big(x_i - b \sum_{j<i} L_{ij}\, y_j\Big), \qquad
        u_i = D_i^{H} \Big(v_i - b \sum_{j>i} L_{ji}^{H}\, u_j\Big).

    Parameters
    ----------
    op : BlockLowerTriangular
        The operator ``L`` (its off-diagonal blocks are used).
    diagonal_inverses : sequence of LinearOperator
        The ``D_i``.
    b : float
        The scaling of ``L``.
    """

    def __init__(self, op: BlockLowerTriangular, diagonal_inverses, b: float):
        self.lower = op.blocks
        self.diagonal_inverses = list(diagonal_inverses)
        self.b = float(b)
        self.in_shape, self.out_shape, self.dtype = op.in_shape, op.out_shape, op.dtype

    def matvec(self, x):
        n = len(self.lower)
        _check_tuple(x, n, "x")
        y = []
        for i in range(n):
            rest = x[i]
            for j in range(i):
                op = self.lower[i][j]
                if op is not None:
                    rest = rest - self.b * op.matvec(y[j])
            y.append(self.diagonal_inverses[i].matvec(rest))
        return tuple(y)

    def rmatvec(self, v):
        n = len(self.lower)
        _check_tuple(v, n, "y")
        u = [None] * n
        for i in reversed(range(n)):
            rest = v[i]
            for j in range(i + 1, n):
                op = self.lower[j][i]
                if op is not None:
                    rest = rest - self.b * op.rmatvec(u[j])
            u[i] = self.diagonal_inverses[i].rmatvec(rest)
        return tuple(u)

    def _like(self, like):
        return _first_like(self, self.diagonal_inverses, like)


def _check_square(ops):
    for i, op in enumerate(ops):
        if op.in_shape != op.out_shape:
            raise ValueError(
                f"shifted inverse needs square diagonal blocks; block {i} maps "
                f"{op.in_shape} -> {op.out_shape}"
            )


@shifted_inverse.register
def _(op: BlockDiagonal, a: float = 1.0, b: float = 1.0):
    _check_shift(a, b)
    _check_square(op.blocks)
    return BlockDiagonal([shifted_inverse(block, a, b) for block in op.blocks])


@shifted_inverse.register
def _(op: BlockLowerTriangular, a: float = 1.0, b: float = 1.0):
    _check_shift(a, b)
    diagonal = [row[i] for i, row in enumerate(op.blocks)]
    _check_square(diagonal)
    return BlockForwardSubstitution(op, [shifted_inverse(d, a, b) for d in diagonal], b)


@shifted_operator.register
def _(op: BlockDiagonal, a: float = 1.0, b: float = 1.0):
    _check_shift(a, b)
    _check_square(op.blocks)
    return BlockDiagonal([shifted_operator(block, a, b) for block in op.blocks])
