"""Linear operators: one registry of operator factories, every test loops over it.

Each factory ``(backend, dtype, rng) -> (op, like)`` builds a small operator on
the backend; ``like`` is an array giving library, dtype and device to
``to_dense`` for operators that hold none.  Every check is run for every
registry entry, backend and dtype: the dot test, agreement with an
independently assembled dense matrix, shifted inverses (or the refusal to
build one), dtype and device preservation and shape errors.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
from array_api_compat import device
from conftest import make_backend, rtol_for, to_numpy

from opsplit.operators import (
    AdjointOperator,
    Dense,
    Diagonal,
    Identity,
    LinearMonotone,
    LinearOperator,
    ProductOperator,
    ScaledOperator,
    StructureError,
    SumOperator,
    exact_margin,
    exact_norm,
    flatten,
    precompute,
    shifted_inverse,
    shifted_operator,
    unflatten,
)
from opsplit.operators.basic import check_trailing
from opsplit.operators.block import BlockDiagonal, BlockLowerTriangular
from opsplit.operators.conv import Conv2dFFT
from opsplit.operators.scipy_interop import ScipyOperator, from_scipy, to_scipy
from opsplit.operators.sparse import Sparse

A_SHIFT, B_SHIFT = 3.0, 0.7  # (aI + bL) is well conditioned: every ‖L‖ here is about 1


# -- building blocks ----------------------------------------------------------
def _is_block(shape):
    return bool(shape) and isinstance(shape[0], tuple)


def random_vector(backend, dtype, rng, shape, batch=(2,)):
    """A random array (or tuple of arrays for a block shape) with batch axes."""
    if _is_block(shape):
        return tuple(random_vector(backend, dtype, rng, s, batch) for s in shape)
    return backend.asarray(rng.standard_normal((*batch, *shape)), dtype)


def matrix(backend, dtype, rng, m, n):
    """A random ``m × n`` matrix with spectral norm about 1."""
    return backend.asarray(rng.standard_normal((m, n)) / (np.sqrt(m) + np.sqrt(n)), dtype)


def kernel(rng, c_out, c_in, kh, kw):
    """A NumPy kernel whose convolution has norm about 1."""
    return rng.standard_normal((c_out, c_in, kh, kw)) / np.sqrt(c_in * kh * kw)


def conv(backend, dtype, rng, c_out, c_in, kh, kw, image_shape):
    return Conv2dFFT(backend.asarray(kernel(rng, c_out, c_in, kh, kw), dtype), image_shape)


def add(x, y):
    """``x + y`` for arrays or tuples of arrays."""
    return tuple(map(add, x, y)) if isinstance(x, tuple) else x + y


def scale(s, x):
    """``s·x`` for arrays or tuples of arrays."""
    return tuple(scale(s, p) for p in x) if isinstance(x, tuple) else s * x


def flat_numpy(v, shape):
    """``v`` flattened over ``shape`` (blocks concatenated), as float64 NumPy."""
    return to_numpy(flatten(v, shape)).astype(np.float64)


class ReshapedDense(LinearOperator):
    """A dense matrix between arbitrary trailing shapes (couples tiers of blocks)."""

    def __init__(self, mat, in_shape, out_shape):
        self.inner = Dense(mat)
        self.in_shape, self.out_shape, self.dtype = in_shape, out_shape, mat.dtype

    def matvec(self, x):
        check_trailing(x, self.in_shape, "x")
        return unflatten(self.inner.matvec(flatten(x, self.in_shape)), self.out_shape)

    def rmatvec(self, y):
        check_trailing(y, self.out_shape, "y")
        return unflatten(self.inner.rmatvec(flatten(y, self.out_shape)), self.in_shape)

    def _like(self, like):
        return self.inner.matrix


class WrongAdjointDense(Dense):
    """A dense operator whose adjoint is deliberately wrong (applies ``M``, not ``Mᵀ``)."""

    def rmatvec(self, y):
        return y @ self._matrix_t


# -- the registry -------------------------------------------------------------
OPERATORS = {}  # name -> factory(backend, dtype, rng) -> (op, like)
STRUCTURED = set()  # square operators with a structure-aware shifted inverse
NUMPY_ONLY = set()  # SciPy-backed operators


def operator_case(name, *, structured=False, numpy_only=False):
    def register(factory):
        OPERATORS[name] = factory
        if structured:
            STRUCTURED.add(name)
        if numpy_only:
            NUMPY_ONLY.add(name)
        return factory

    return register


def make(name, backend, dtype, seed=0):
    if name in NUMPY_ONLY and backend.name != "numpy":
        pytest.skip("SciPy operators run on NumPy only (see test_scipy_interop_backends)")
    rng = np.random.default_rng(seed)
    return OPERATORS[name](backend, dtype, rng)


def _like(backend, dtype):
    return backend.asarray(np.zeros(1), dtype)


@operator_case("identity", structured=True)
def _(backend, dtype, rng):
    return Identity((2, 3)), _like(backend, dtype)


@operator_case("dense_square", structured=True)
def _(backend, dtype, rng):
    return Dense(matrix(backend, dtype, rng, 4, 4)), _like(backend, dtype)


@operator_case("dense_rect")
def _(backend, dtype, rng):
    return Dense(matrix(backend, dtype, rng, 3, 5)), _like(backend, dtype)


@operator_case("diagonal_1d", structured=True)
def _(backend, dtype, rng):
    return Diagonal(backend.asarray(rng.uniform(0.5, 1.5, 5), dtype)), _like(backend, dtype)


@operator_case("diagonal_2d", structured=True)
def _(backend, dtype, rng):
    d = backend.asarray(rng.uniform(-1.0, 1.0, (2, 3)), dtype)
    return Diagonal(d), _like(backend, dtype)


@operator_case("conv", structured=True)
def _(backend, dtype, rng):
    return conv(backend, dtype, rng, 3, 3, 3, 3, (5, 6)), _like(backend, dtype)


@operator_case("conv_rect")  # C_out != C_in and an even kernel width
def _(backend, dtype, rng):
    return conv(backend, dtype, rng, 2, 3, 3, 2, (4, 5)), _like(backend, dtype)


@operator_case("sum")
def _(backend, dtype, rng):
    a, b = Dense(matrix(backend, dtype, rng, 4, 4)), Dense(matrix(backend, dtype, rng, 4, 4))
    return a + b, _like(backend, dtype)


@operator_case("difference_conv")
def _(backend, dtype, rng):
    a = conv(backend, dtype, rng, 2, 3, 3, 3, (4, 4))
    return a - conv(backend, dtype, rng, 2, 3, 1, 1, (4, 4)), _like(backend, dtype)


@operator_case("scaled_conv", structured=True)
def _(backend, dtype, rng):
    return 0.5 * conv(backend, dtype, rng, 2, 2, 3, 3, (4, 4)), _like(backend, dtype)


@operator_case("negated_dense", structured=True)
def _(backend, dtype, rng):
    return -Dense(matrix(backend, dtype, rng, 4, 4)), _like(backend, dtype)


@operator_case("product_square")
def _(backend, dtype, rng):
    d = Diagonal(backend.asarray(rng.uniform(0.5, 1.5, 4), dtype))
    return Dense(matrix(backend, dtype, rng, 4, 4)) @ d, _like(backend, dtype)


@operator_case("product_rect")
def _(backend, dtype, rng):
    a, b = matrix(backend, dtype, rng, 3, 5), matrix(backend, dtype, rng, 5, 4)
    return Dense(a) @ Dense(b), _like(backend, dtype)


@operator_case("adjoint_rect")
def _(backend, dtype, rng):
    return Dense(matrix(backend, dtype, rng, 3, 5)).H, _like(backend, dtype)


@operator_case("adjoint_conv", structured=True)
def _(backend, dtype, rng):
    return conv(backend, dtype, rng, 3, 3, 3, 3, (5, 6)).H, _like(backend, dtype)


def _block_diagonal(backend, dtype, rng):
    return BlockDiagonal(
        [
            conv(backend, dtype, rng, 2, 2, 3, 3, (4, 4)),
            Diagonal(backend.asarray(rng.uniform(0.5, 1.5, 3), dtype)),
            Dense(matrix(backend, dtype, rng, 2, 2)),
        ]
    )


def _block_lower(backend, dtype, rng):
    """Three tiers (2, 4, 4), (3, 2, 2), (4,), coupled by dense maps; L20 is zero."""
    s0, s1, s2 = (2, 4, 4), (3, 2, 2), (4,)
    return BlockLowerTriangular(
        [
            [conv(backend, dtype, rng, 2, 2, 3, 3, s0[1:])],
            [
                ReshapedDense(matrix(backend, dtype, rng, 12, 32), s0, s1),
                conv(backend, dtype, rng, 3, 3, 2, 2, s1[1:]),
            ],
            [None, ReshapedDense(matrix(backend, dtype, rng, 4, 12), s1, s2), Identity(s2)],
        ]
    )


@operator_case("block_diagonal", structured=True)
def _(backend, dtype, rng):
    return _block_diagonal(backend, dtype, rng), _like(backend, dtype)


@operator_case("block_diagonal_rect")
def _(backend, dtype, rng):
    blocks = [
        Dense(matrix(backend, dtype, rng, 2, 3)),
        conv(backend, dtype, rng, 1, 2, 1, 3, (2, 3)),
    ]
    return BlockDiagonal(blocks), _like(backend, dtype)


@operator_case("block_lower", structured=True)
def _(backend, dtype, rng):
    return _block_lower(backend, dtype, rng), _like(backend, dtype)


@operator_case("block_lower_two_tiers", structured=True)
def _(backend, dtype, rng):
    op = BlockLowerTriangular(
        [
            [Diagonal(backend.asarray(rng.uniform(0.5, 1.5, 3), dtype))],
            [Dense(matrix(backend, dtype, rng, 2, 3)), Dense(matrix(backend, dtype, rng, 2, 2))],
        ]
    )
    return op, _like(backend, dtype)


@operator_case("scaled_block_lower", structured=True)
def _(backend, dtype, rng):
    return 0.8 * _block_lower(backend, dtype, rng), _like(backend, dtype)


@operator_case("adjoint_block_lower", structured=True)
def _(backend, dtype, rng):
    return _block_lower(backend, dtype, rng).H, _like(backend, dtype)


@operator_case("sum_blocks")
def _(backend, dtype, rng):
    lower = _block_lower(backend, dtype, rng)
    diag = BlockDiagonal([Identity(s) for s in lower.in_shape])
    return lower + diag - 0.5 * lower, _like(backend, dtype)


@operator_case("from_scipy", numpy_only=True)
def _(backend, dtype, rng):
    m = sp.random(4, 6, density=0.5, random_state=rng, dtype=np.float64).astype(dtype)
    return from_scipy(m.tocsr()), np.zeros(1, dtype=dtype)


NAMES = sorted(OPERATORS)


# -- independent references ---------------------------------------------------
def reference_dense(op):
    """The dense matrix of ``op`` assembled from its parts' matrices (float64 NumPy).

    Independent of ``op.matvec``, except for ``Conv2dFFT`` whose ``to_dense``
    is checked against explicit circular shifts in
    ``test_conv_dense_matches_circular_shifts``.
    """
    if isinstance(op, Identity):
        return np.eye(op.shape[0])
    if isinstance(op, (Dense, ReshapedDense)):
        return to_numpy(op.inner.matrix if isinstance(op, ReshapedDense) else op.matrix)
    if isinstance(op, Diagonal):
        return np.diag(to_numpy(op.diagonal).ravel())
    if isinstance(op, Conv2dFFT):
        return to_numpy(op.to_dense())
    if isinstance(op, ScipyOperator):
        return op.linop.A.toarray()
    if isinstance(op, Sparse):
        return op.matrix.toarray()
    if isinstance(op, SumOperator):
        return reference_dense(op.a) + reference_dense(op.b)
    if isinstance(op, ScaledOperator):
        return op.scalar * reference_dense(op.op)
    if isinstance(op, ProductOperator):
        return reference_dense(op.a) @ reference_dense(op.b)
    if isinstance(op, AdjointOperator):
        return reference_dense(op.op).T
    if isinstance(op, BlockDiagonal):
        return scipy.linalg.block_diag(*(reference_dense(b) for b in op.blocks))
    if isinstance(op, BlockLowerTriangular):
        n = len(op.blocks)
        sizes_in = [int(np.prod(s)) for s in op.in_shape]
        sizes_out = [int(np.prod(s)) for s in op.out_shape]
        rows = [
            [
                reference_dense(op.blocks[i][j])
                if j <= i and op.blocks[i][j] is not None
                else np.zeros((sizes_out[i], sizes_in[j]))
                for j in range(n)
            ]
            for i in range(n)
        ]
        return np.block(rows)
    raise AssertionError(f"no reference for {type(op).__name__}")


def circular_conv_reference(k, image_shape):
    """Dense matrix of the centred circular cross-correlation, by explicit shifts.

    ``y[o, i, j] = Σ_{c,p,q} k[o, c, p, q] x[c, i + p - kh//2, j + q - kw//2]``
    (indices mod H, W): each tap is a Kronecker product of cyclic shift matrices.
    """
    c_out, c_in, kh, kw = k.shape
    height, width = image_shape

    def shift(n, d):  # (S x)_i = x_{(i + d) mod n}
        return np.roll(np.eye(n), d, axis=1)

    dense = np.zeros((c_out * height * width, c_in * height * width))
    for p in range(kh):
        for q in range(kw):
            spatial = np.kron(shift(height, p - kh // 2), shift(width, q - kw // 2))
            dense += np.kron(k[:, :, p, q], spatial)
    return dense


def adjoint_mismatch(op, x, y):
    """Largest relative gap ``|⟨Ax, y⟩ - ⟨x, Aᴴy⟩|`` over the batch rows."""
    ax = flat_numpy(op.matvec(x), op.out_shape)
    aty = flat_numpy(op.rmatvec(y), op.in_shape)
    xf, yf = flat_numpy(x, op.in_shape), flat_numpy(y, op.out_shape)
    lhs, rhs = np.sum(ax * yf, axis=-1), np.sum(xf * aty, axis=-1)
    norms = np.linalg.norm(ax, axis=-1) * np.linalg.norm(yf, axis=-1)
    norms += np.linalg.norm(xf, axis=-1) * np.linalg.norm(aty, axis=-1)
    return float(np.max(np.abs(lhs - rhs) / norms))


def parts(v):
    return v if isinstance(v, tuple) else (v,)


# -- (a) dot test -------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_dot_test(name, backend, dtype):
    op, _ = make(name, backend, dtype)
    rng = np.random.default_rng(1)
    x = random_vector(backend, dtype, rng, op.in_shape, batch=(2, 3))
    y = random_vector(backend, dtype, rng, op.out_shape, batch=(2, 3))
    assert adjoint_mismatch(op, x, y) < rtol_for(dtype)


def test_dot_test_detects_a_wrong_adjoint(backend, dtype):
    rng = np.random.default_rng(2)
    op = WrongAdjointDense(matrix(backend, dtype, rng, 4, 4))
    x, y = (random_vector(backend, dtype, rng, (4,)) for _ in range(2))
    assert adjoint_mismatch(op, x, y) > 1e-2
    assert adjoint_mismatch(Dense(op.matrix), x, y) < rtol_for(dtype)


# -- (b) dense matrices -------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_matches_dense(name, backend, dtype):
    op, like = make(name, backend, dtype)
    dense = to_numpy(op.to_dense(like))
    assert dense.shape == op.shape
    tol = rtol_for(dtype)
    np.testing.assert_allclose(dense, reference_dense(op), rtol=tol, atol=tol)
    rng = np.random.default_rng(3)
    x = random_vector(backend, dtype, rng, op.in_shape)
    y = random_vector(backend, dtype, rng, op.out_shape)
    np.testing.assert_allclose(
        flat_numpy(op @ x, op.out_shape), flat_numpy(x, op.in_shape) @ dense.T, atol=tol
    )
    np.testing.assert_allclose(
        flat_numpy(op.H @ y, op.in_shape), flat_numpy(y, op.out_shape) @ dense, atol=tol
    )


CONV_SHAPES = [
    pytest.param((3, 3, 3, 3), (5, 6), id="C3-3x3-5x6"),
    pytest.param((2, 3, 2, 3), (4, 5), id="C2x3-2x3-4x5"),
    pytest.param((1, 2, 4, 1), (4, 3), id="C1x2-4x1-4x3"),
]


@pytest.mark.parametrize(("kernel_shape", "image_shape"), CONV_SHAPES)
def test_conv_dense_matches_circular_shifts(kernel_shape, image_shape, backend, dtype):
    k = kernel(np.random.default_rng(4), *kernel_shape)
    op = Conv2dFFT(backend.asarray(k, dtype), image_shape)
    assert op.symbol.shape == (image_shape[0], image_shape[1] // 2 + 1, *kernel_shape[:2])
    tol = rtol_for(dtype)
    np.testing.assert_allclose(
        to_numpy(op.to_dense()), circular_conv_reference(k, image_shape), atol=tol
    )
    # A symbol built from the kernel's first output channel alone is the top block.
    top = Conv2dFFT.from_symbol(op.symbol[:, :, :1, :], image_shape)
    rows = image_shape[0] * image_shape[1]
    np.testing.assert_allclose(to_numpy(top.to_dense()), to_numpy(op.to_dense())[:rows], atol=tol)


def test_conv_reference_fails_for_a_shifted_kernel():
    """The circular-shift reference is sensitive to the kernel centre convention."""
    k = kernel(np.random.default_rng(5), 2, 2, 3, 3)
    dense = Conv2dFFT(k, (5, 6)).to_dense()
    assert not np.allclose(dense, circular_conv_reference(np.roll(k, 1, axis=-1), (5, 6)))


# -- (c), (d) shifted inverses ------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_shifted_inverse(name, backend, dtype):
    op, like = make(name, backend, dtype)
    if name not in STRUCTURED:
        with pytest.raises((StructureError, ValueError)):
            shifted_inverse(op, A_SHIFT, B_SHIFT)
        return
    inv = shifted_inverse(op, A_SHIFT, B_SHIFT)
    assert inv.in_shape == inv.out_shape == op.in_shape
    rng = np.random.default_rng(6)
    x = random_vector(backend, dtype, rng, op.in_shape)
    tol = rtol_for(dtype)
    rhs = add(scale(A_SHIFT, x), scale(B_SHIFT, op @ x))
    np.testing.assert_allclose(
        flat_numpy(inv @ rhs, op.in_shape), flat_numpy(x, op.in_shape), rtol=tol, atol=tol
    )
    rhs_h = add(scale(A_SHIFT, x), scale(B_SHIFT, op.H @ x))
    np.testing.assert_allclose(
        flat_numpy(inv.H @ rhs_h, op.in_shape), flat_numpy(x, op.in_shape), rtol=tol, atol=tol
    )
    shifted = A_SHIFT * np.eye(op.shape[0]) + B_SHIFT * reference_dense(op)
    np.testing.assert_allclose(
        to_numpy(inv.to_dense(like)), np.linalg.inv(shifted), rtol=tol, atol=tol
    )
    y = random_vector(backend, dtype, rng, op.in_shape)
    assert adjoint_mismatch(inv, x, y) < rtol_for(dtype)


def test_unstructured_sum_has_no_shifted_inverse(backend):
    rng = np.random.default_rng(7)
    op = Dense(matrix(backend, "float64", rng, 3, 3)) + Dense(matrix(backend, "float64", rng, 3, 3))
    with pytest.raises(StructureError, match="SumOperator"):
        shifted_inverse(op, 1.0, 1.0)


def test_shifted_inverse_wrong_answer_is_detected(backend):
    """The inverse check fails for the inverse of a different shift."""
    op, like = make("conv", backend, "float64")
    wrong = to_numpy(shifted_inverse(op, A_SHIFT, -B_SHIFT).to_dense())
    shifted = A_SHIFT * np.eye(op.shape[0]) + B_SHIFT * reference_dense(op)
    assert not np.allclose(wrong, np.linalg.inv(shifted), atol=1e-3)


def test_shifted_inverse_of_block_lower_is_forward_substitution(backend):
    """Off-diagonal blocks count: dropping them gives a different (wrong) inverse."""
    op, like = make("block_lower", backend, "float64")
    lower = shifted_inverse(op, A_SHIFT, B_SHIFT)
    diagonal = shifted_inverse(BlockDiagonal([row[i] for i, row in enumerate(op.blocks)]))
    assert not np.allclose(to_numpy(lower.to_dense()), to_numpy(diagonal.to_dense()))


@pytest.mark.parametrize("name", NAMES)
def test_shifted_operator(name, backend, dtype):
    """``aI + bL`` as one value agrees with the dense ``aI + bL``, and so does its adjoint;
    for dense, diagonal and FFT structure it is one operator of that structure."""
    op, like = make(name, backend, dtype)
    if op.in_shape != op.out_shape:
        with pytest.raises(ValueError, match="square"):
            shifted_operator(op, A_SHIFT, B_SHIFT)
        return
    shifted = shifted_operator(op, A_SHIFT, B_SHIFT)
    expected = A_SHIFT * np.eye(op.shape[0]) + B_SHIFT * reference_dense(op)
    tol = rtol_for(dtype)
    np.testing.assert_allclose(to_numpy(shifted.to_dense(like)), expected, rtol=tol, atol=tol)
    np.testing.assert_allclose(
        to_numpy(shifted.H.to_dense(like)), expected.T, rtol=tol, atol=tol
    )
    kinds = {"dense_square": Dense, "negated_dense": Dense, "diagonal_1d": Diagonal,
             "diagonal_2d": Diagonal, "conv": Conv2dFFT, "scaled_conv": Conv2dFFT,
             "block_diagonal": BlockDiagonal}
    if name in kinds:
        assert isinstance(shifted, kinds[name])
    if name == "adjoint_conv":
        assert isinstance(shifted, AdjointOperator) and isinstance(shifted.op, Conv2dFFT)


@pytest.mark.parametrize("name", sorted(STRUCTURED))
def test_precompute_and_its_adjoint_match_the_dense_steps(name, backend, dtype):
    """inverse, Cayley map and forward step of ``L`` and of ``Lᴴ`` (through ``P.H``)."""
    op, like = make(name, backend, dtype)
    step = B_SHIFT
    P = precompute(op, step, reflection=True, forward=True)
    L = reference_dense(op)
    eye = np.eye(L.shape[0])
    tol = rtol_for(dtype)
    for steps, matrix in ((P, L), (P.H, L.T)):
        inverse = np.linalg.inv(eye + step * matrix)
        expected = {"inverse": inverse, "cayley": 2 * inverse - eye, "forward": eye - step * matrix}
        for field, value in expected.items():
            dense = to_numpy(getattr(steps, field).to_dense(like))
            np.testing.assert_allclose(dense, value, rtol=tol, atol=tol, err_msg=field)
    assert P.H.H.step == step
    LinearMonotone(op, precomputed=P.H.H)  # P.H.H is P's precomputation of op: accepted
    LinearMonotone(op.H, precomputed=P.H)
    with pytest.raises(ValueError, match="another operator"):
        LinearMonotone(op.H, precomputed=P)


# names whose structure gives the margin / the norm exactly
EXACT_MARGIN = {"identity", "dense_square", "diagonal_1d", "diagonal_2d", "conv", "scaled_conv",
                "negated_dense", "adjoint_conv", "block_diagonal"}
EXACT_NORM = EXACT_MARGIN | {"dense_rect", "conv_rect", "adjoint_rect", "block_diagonal_rect"}


@pytest.mark.parametrize("name", NAMES)
def test_exact_margin_and_norm_match_the_dense_matrix(name, backend):
    op, _ = make(name, backend, "float64")
    D = reference_dense(op)
    norm = exact_norm(op)
    if name in EXACT_NORM:
        assert norm == pytest.approx(np.linalg.norm(D, 2), rel=1e-12)
    else:
        assert norm is None
    if op.in_shape != op.out_shape:
        with pytest.raises(ValueError, match="square"):
            exact_margin(op)
        return
    margin = exact_margin(op)
    if name in EXACT_MARGIN:
        assert margin == pytest.approx(np.linalg.eigvalsh((D + D.T) / 2).min(), abs=1e-12)
    else:
        assert margin is None


def test_exact_margin_sees_a_non_monotone_operator():
    """A skew part does not count; a negative eigenvalue of the symmetric part does."""
    assert exact_margin(Dense(np.array([[0.0, 5.0], [-5.0, 0.0]]))) == pytest.approx(0.0)
    assert exact_margin(Diagonal(np.array([-1.0, 1.0]))) == -1.0
    imw = Identity((1, 4, 4)) - Conv2dFFT(2.0 * np.ones((1, 1, 1, 1)), (4, 4))
    assert exact_margin(imw) == pytest.approx(-1.0)
    assert exact_margin(Dense(np.eye(2)) @ Dense(np.eye(2))) is None


# -- (f) dtype and device -----------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_dtype_and_device_preserved(name, backend, dtype):
    op, _ = make(name, backend, dtype)
    rng = np.random.default_rng(8)
    x = random_vector(backend, dtype, rng, op.in_shape)
    y = random_vector(backend, dtype, rng, op.out_shape)
    outputs = [*parts(op @ x), *parts(op.H @ y)]
    if name in STRUCTURED:
        outputs += parts(shifted_inverse(op, A_SHIFT, B_SHIFT) @ x)
    for out in outputs:
        assert out.dtype == backend.dtype(dtype)
        assert device(out) == device(parts(x)[0])


# -- (g) shape errors ---------------------------------------------------------
def _wrong_shape(backend, dtype, rng, shape):
    if _is_block(shape):
        return (*random_vector(backend, dtype, rng, shape[:-1]),) + (
            random_vector(backend, dtype, rng, (*shape[-1][:-1], shape[-1][-1] + 1)),
        )
    return random_vector(backend, dtype, rng, (*shape[:-1], shape[-1] + 1))


@pytest.mark.parametrize("name", NAMES)
def test_shape_mismatch_raises(name, backend, dtype):
    op, _ = make(name, backend, dtype)
    rng = np.random.default_rng(9)
    with pytest.raises(ValueError, match=r"\b[xy]\b"):
        op @ _wrong_shape(backend, dtype, rng, op.in_shape)
    with pytest.raises(ValueError, match=r"\b[xy]\b"):
        op.H @ _wrong_shape(backend, dtype, rng, op.out_shape)


@pytest.mark.parametrize("name", ["block_diagonal", "block_lower"])
def test_block_operators_check_tuples(name, backend):
    op, _ = make(name, backend, "float64")
    x = random_vector(backend, "float64", np.random.default_rng(10), op.in_shape)
    with pytest.raises(ValueError, match="x must be a tuple of 3 arrays"):
        op @ x[:2]
    with pytest.raises(TypeError, match="x must be a tuple"):
        op @ x[0]
    with pytest.raises(ValueError, match="y must be a tuple of 3 arrays"):
        op.H @ x[:2]


def _bad_constructions():
    k = np.ones((2, 2, 3, 3))
    d = Dense(np.ones((2, 3)))
    return [
        (lambda: Conv2dFFT(np.ones((2, 3, 3)), (4, 4)), ValueError, "kernel"),
        (lambda: Conv2dFFT(k, (2, 4)), ValueError, "kernel"),
        (lambda: Conv2dFFT(np.ones((1, 1, 1, 1), dtype=int), (2, 2)), TypeError, "kernel"),
        (lambda: Conv2dFFT(k, (4,)), ValueError, "image_shape"),
        (
            lambda: Conv2dFFT.from_symbol(np.ones((4, 4, 2, 2), complex), (4, 4)),
            ValueError,
            "symbol",
        ),
        (lambda: Conv2dFFT.from_symbol(np.ones((4, 3, 2, 2)), (4, 4)), TypeError, "symbol"),
        (
            lambda: Conv2dFFT.from_symbol(np.full((4, 3, 2, 2), np.nan, complex), (4, 4)),
            ValueError,
            "symbol must be finite",
        ),
        (lambda: Conv2dFFT(np.full((1, 1, 1, 1), np.inf), (2, 2)), ValueError, "kernel must be"),
        (lambda: Dense(np.array([[1.0, np.nan]])), ValueError, "matrix must be finite"),
        (lambda: Diagonal(np.array([1.0, -np.inf])), ValueError, "diagonal must be finite"),
        (lambda: shifted_inverse(Diagonal(np.array([1.0, -2.0])), 1, 0.5), ValueError, "singular"),
        (lambda: shifted_inverse(Dense(-np.eye(2)), 1.0, 1.0), ValueError, "singular"),
        (lambda: shifted_operator(Dense(np.ones((2, 3))), 1.0, 1.0), ValueError, "square"),
        (lambda: shifted_inverse(Conv2dFFT(np.ones((1, 2, 1, 1)), (2, 2))), ValueError, "C_out"),
        (lambda: BlockDiagonal([]), ValueError, "blocks"),
        (lambda: BlockDiagonal([np.eye(2)]), TypeError, "blocks"),
        (lambda: BlockLowerTriangular([[d], [d]]), ValueError, "row 1"),
        (lambda: BlockLowerTriangular([[d], [None, None]]), ValueError, r"blocks\[1\]\[1\]"),
        (lambda: BlockLowerTriangular([[Identity(3)], [d, Identity(3)]]), ValueError, "blocks"),
        (lambda: shifted_inverse(BlockDiagonal([d])), ValueError, "square"),
        (lambda: shifted_inverse(BlockLowerTriangular([[d]])), ValueError, "square"),
        (lambda: from_scipy([[1.0]]), TypeError, "linop"),
        (lambda: from_scipy(sp.eye(2, dtype=int)), TypeError, "dtype"),
        (lambda: to_scipy(np.eye(2)), TypeError, "op"),
    ]


@pytest.mark.parametrize(("build", "error", "match"), _bad_constructions())
def test_bad_construction_raises(build, error, match):
    with pytest.raises(error, match=match):
        build()


# -- SciPy interop ------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_to_scipy_round_trip(name, dtype):
    backend = make_backend("numpy")
    op, like = make(name, backend, dtype)
    exported = to_scipy(op)
    assert exported.shape == op.shape
    dense = reference_dense(op)
    tol = rtol_for(dtype)
    np.testing.assert_allclose(exported.matmat(np.eye(op.shape[1], dtype=dtype)), dense, atol=tol)
    np.testing.assert_allclose(
        exported.rmatmat(np.eye(op.shape[0], dtype=dtype)), dense.T, atol=tol
    )
    v = np.random.default_rng(11).standard_normal(op.shape[1]).astype(dtype)
    np.testing.assert_allclose(exported.matvec(v), dense @ v, atol=tol)
    back = from_scipy(exported)
    np.testing.assert_allclose(to_numpy(back.to_dense()), dense, atol=tol)


def test_from_scipy_like_sets_dtype():
    wrapped = from_scipy(sp.eye(3, format="csr"), like=np.zeros(1, dtype=np.float32))
    out = wrapped @ np.ones((2, 3), dtype=np.float32)
    assert out.dtype == np.float32
    assert out.shape == (2, 3)


def test_scipy_interop_backends(backend):
    """SciPy operators accept NumPy arrays only, and say so for any other library."""
    rng = np.random.default_rng(12)
    x = random_vector(backend, "float64", rng, (3,))
    wrapped = from_scipy(sp.eye(3, format="csr"))
    dense = Dense(matrix(backend, "float64", rng, 3, 3))
    if backend.name == "numpy":
        np.testing.assert_allclose(wrapped @ x, x)
        np.testing.assert_allclose(to_scipy(dense).matvec(np.ones(3)), dense.matrix @ np.ones(3))
        return
    with pytest.raises(TypeError, match="x must be a NumPy array"):
        wrapped @ x
    with pytest.raises(TypeError, match="op must hold NumPy arrays"):
        to_scipy(dense)
    with pytest.raises(TypeError, match="like"):
        from_scipy(sp.eye(3), like=x)
