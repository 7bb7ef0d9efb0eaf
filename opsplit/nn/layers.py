r"""Model pieces around the equilibrium layer, each with a hand-written backward.

Every piece follows one pattern: ``forward(...) -> (output, cache)`` and
``backward(..., cache, grad_output) -> (grads, grad_input)``, where ``cache``
holds what the backward needs.  Arrays may come from NumPy, CuPy or any
array-API library; outputs keep the input's dtype and device.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from array_api_compat import device as _device

from .._backend import check_floating, from_host, namespace
from .._validate import check_float_dtype

__all__ = [
    "LinearParams",
    "Linear",
    "Flatten",
    "AvgPool2d",
    "softmax_cross_entropy",
    "accuracy_count",
]


class LinearParams(NamedTuple):
    """Parameters of :class:`Linear`: ``weight`` (out, in) and ``bias`` (out,)."""

    weight: object
    bias: object


class Linear:
    r"""An affine layer on the last axis: ``y = x Wᵀ + b``.

    Backward, for ``g = ∂ℓ/∂y``:

    .. math::

        \frac{\partial \ell}{\partial W} = g^\top x,\qquad
        \frac{\partial \ell}{\partial b} = \textstyle\sum_{\text{batch}} g,\qquad
        \frac{\partial \ell}{\partial x} = g\,W .

    Parameters
    ----------
    in_features : int
        Size of the last axis of the input ``x`` (at least 1).
    out_features : int
        Size of the last axis of the output ``y`` (at least 1).

    Examples
    --------
    >>> import numpy as np
    >>> lin = Linear(3, 2)
    >>> p = lin.init_params(seed=0, dtype="float64")
    >>> y, cache = lin.forward(p, np.ones((4, 3)))
    >>> grads, gx = lin.backward(p, cache, np.ones((4, 2)))
    >>> y.shape, grads.weight.shape, np.allclose(grads.bias, 4.0), gx.shape
    ((4, 2), (2, 3), True, (4, 3))
    """

    def __init__(self, in_features: int, out_features: int):
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.in_features = in_features
        self.out_features = out_features

    def __repr__(self):
        return f"Linear(in_features={self.in_features}, out_features={self.out_features})"

    def init_params(self, seed=0, *, dtype="float64", like=None, scheme="torch") -> LinearParams:
        """Random initial parameters, drawn on the host from
        ``numpy.random.default_rng(seed)`` and copied to ``like``'s library and
        device (NumPy when ``like`` is ``None``) with dtype ``dtype``.

        ``scheme="torch"``: PyTorch's default ``nn.Linear`` initialisation,
        weight and bias uniform on ``±1/sqrt(in_features)``.
        ``scheme="glorot"``: weight uniform on
        ``±sqrt(6/(in_features + out_features))`` (Glorot & Bengio, AISTATS
        2010), zero bias.
        """
        rng = np.random.default_rng(seed)
        shape = (self.out_features, self.in_features)
        if scheme == "torch":
            bound = 1.0 / math.sqrt(self.in_features)
            w = rng.uniform(-bound, bound, size=shape)
            b = rng.uniform(-bound, bound, size=(self.out_features,))
        elif scheme == "glorot":
            bound = math.sqrt(6.0 / (self.in_features + self.out_features))
            w = rng.uniform(-bound, bound, size=shape)
            b = np.zeros(self.out_features)
        else:
            raise ValueError(f"scheme must be 'torch' or 'glorot', got {scheme!r}")
        dtype = check_float_dtype(dtype)
        return LinearParams(from_host(w, like, dtype), from_host(b, like, dtype))

    def check_params(self, params: LinearParams, name: str = "params") -> None:
        """Raise ``ValueError``/``TypeError`` naming the field that does not fit."""
        expected = {
            "weight": (self.out_features, self.in_features),
            "bias": (self.out_features,),
        }
        for field, shape in expected.items():
            value = getattr(params, field)
            check_floating(value, f"{name}.{field}")
            if tuple(value.shape) != shape:
                raise ValueError(
                    f"{name}.{field} must have shape {shape}, got {tuple(value.shape)}"
                )

    def forward(self, params: LinearParams, x):
        """Return ``(x Wᵀ + b, x)``; ``x`` has shape ``(..., in_features)``."""
        check_floating(x, "x")
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"x must have {self.in_features} features on its last axis, "
                f"got shape {tuple(x.shape)}"
            )
        xp = namespace(x, params.weight)
        return xp.matmul(x, xp.matrix_transpose(params.weight)) + params.bias, x

    def backward(self, params: LinearParams, cache, grad_y):
        """Return ``(LinearParams(∂ℓ/∂W, ∂ℓ/∂b), ∂ℓ/∂x)``."""
        x = cache
        xp = namespace(grad_y, x)
        g2 = xp.reshape(grad_y, (-1, self.out_features))
        x2 = xp.reshape(x, (-1, self.in_features))
        grad_w = xp.matmul(xp.matrix_transpose(g2), x2)
        grad_b = xp.sum(g2, axis=0)
        grad_x = xp.matmul(grad_y, params.weight)
        return LinearParams(grad_w, grad_b), grad_x


class Flatten:
    """Merge all axes after the first: ``(n, d1, d2, ...) -> (n, d1*d2*...)``.

    Examples
    --------
    >>> import numpy as np
    >>> y, shape = Flatten().forward(np.zeros((2, 1, 3, 3)))
    >>> y.shape, Flatten().backward(shape, y).shape
    ((2, 9), (2, 1, 3, 3))
    """

    def __repr__(self):
        return "Flatten()"

    def forward(self, x):
        """Return ``(x reshaped to (n, -1), x.shape)``."""
        if x.ndim < 1:
            raise ValueError("x must have a leading batch axis, got a 0-d array")
        xp = namespace(x)
        n = x.shape[0]
        features = math.prod(x.shape[1:])
        return xp.reshape(x, (n, features)), tuple(x.shape)

    def backward(self, cache, grad_y):
        """Reshape ``grad_y`` back to the input's shape ``cache``."""
        return namespace(grad_y).reshape(grad_y, cache)


class AvgPool2d:
    r"""Average pooling of the last two axes over non-overlapping ``size × size`` windows.

    PyTorch's ``avg_pool2d(x, size)`` (stride ``size``, no padding, floor
    mode): rows and columns beyond the last whole window are dropped.  For
    ``x`` of shape ``(..., H, W)`` the output has shape ``(..., H // size,
    W // size)`` and

    .. math::

        y_{\dots,i,j} = \frac{1}{s^2}\sum_{a,b=0}^{s-1} x_{\dots,\,si+a,\,sj+b},
        \qquad
        \frac{\partial \ell}{\partial x_{\dots,\,si+a,\,sj+b}}
        = \frac{1}{s^2}\,\frac{\partial \ell}{\partial y_{\dots,i,j}},

    zero for the dropped rows and columns.  The monDEQ paper's single
    convolution model pools its ``(C, H + 2, W + 2)`` state with ``size = 4``
    before the linear head.

    Parameters
    ----------
    size : int
        Window size and stride, at least 1.

    Examples
    --------
    >>> import numpy as np
    >>> pool = AvgPool2d(2)
    >>> y, cache = pool.forward(np.arange(25.0).reshape(1, 1, 5, 5))
    >>> y[0, 0]
    array([[ 3.,  5.],
           [13., 15.]])
    >>> pool.backward(cache, np.ones((1, 1, 2, 2)))[0, 0]
    array([[0.25, 0.25, 0.25, 0.25, 0.  ],
           [0.25, 0.25, 0.25, 0.25, 0.  ],
           [0.25, 0.25, 0.25, 0.25, 0.  ],
           [0.25, 0.25, 0.25, 0.25, 0.  ],
           [0.  , 0.  , 0.  , 0.  , 0.  ]])
    """

    def __init__(self, size: int):
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"size must be a positive integer, got {size!r}")
        self.size = size

    def __repr__(self):
        return f"AvgPool2d({self.size})"

    def output_shape(self, shape) -> tuple:
        """The trailing shape of the output for an input of trailing shape ``shape``."""
        s = self.size
        return (*shape[:-2], shape[-2] // s, shape[-1] // s)

    def forward(self, x):
        """Return ``(pooled x, x.shape)``; ``x`` has at least two axes, each of
        the last two at least ``size`` long."""
        check_floating(x, "x")
        s = self.size
        if x.ndim < 2 or x.shape[-2] < s or x.shape[-1] < s:
            raise ValueError(
                f"x must have two trailing axes of at least size={s}, got {tuple(x.shape)}"
            )
        xp = namespace(x)
        *lead, H, W = x.shape
        h, w = H // s, W // s
        windows = xp.reshape(x[..., : h * s, : w * s], (*lead, h, s, w, s))
        return xp.mean(windows, axis=(-3, -1)), tuple(x.shape)

    def backward(self, cache, grad_y):
        """Spread ``grad_y / size²`` over each window; zeros on dropped rows and columns."""
        xp = namespace(grad_y)
        s, shape = self.size, cache
        *lead, h, w = grad_y.shape
        spread = xp.broadcast_to((grad_y / (s * s))[..., :, None, :, None], (*lead, h, s, w, s))
        grad = xp.reshape(spread, (*lead, h * s, w * s))
        H, W = shape[-2:]
        dev = _device(grad_y)
        if W > w * s:
            grad = xp.concat(
                [grad, xp.zeros((*lead, h * s, W - w * s), dtype=grad.dtype, device=dev)], axis=-1
            )
        if H > h * s:
            grad = xp.concat(
                [grad, xp.zeros((*lead, H - h * s, W), dtype=grad.dtype, device=dev)], axis=-2
            )
        return grad


def _check_labels(logits, labels):
    check_floating(logits, "logits")
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (batch, classes), got {tuple(logits.shape)}")
    xp = namespace(logits)
    try:
        xp_labels = namespace(labels)
    except TypeError as exc:
        raise TypeError(f"labels must be an array, got {type(labels).__name__}") from exc
    if xp_labels is not xp:
        raise TypeError("labels and logits come from different array libraries")
    if not xp.isdtype(labels.dtype, "integral"):
        raise TypeError(f"labels must have an integer dtype, got {labels.dtype}")
    if tuple(labels.shape) != (logits.shape[0],):
        raise ValueError(
            f"labels must have shape ({logits.shape[0]},) to match logits, "
            f"got {tuple(labels.shape)}"
        )


def _one_hot(labels, num_classes, like):
    xp = namespace(like)
    classes = xp.arange(num_classes, dtype=labels.dtype, device=_device(like))
    return xp.astype(xp.reshape(labels, (-1, 1)) == classes, like.dtype)


def softmax_cross_entropy(logits, labels):
    r"""Mean softmax cross-entropy and its gradient with respect to ``logits``.

    With a stable log-sum-exp (``s = logits - max``):

    .. math::

        \log p = s - \log\textstyle\sum_j e^{s_j},\qquad
        \ell = -\frac1n \sum_i \log p_{i, y_i},\qquad
        \frac{\partial \ell}{\partial\,\mathrm{logits}} = \frac{p - \mathrm{onehot}(y)}{n}.

    Parameters
    ----------
    logits : array, shape (n, classes)
    labels : integer array, shape (n,)
        Class indices in ``[0, classes)``, same library and device.

    Returns
    -------
    loss : 0-d array
        The mean loss, in ``logits``' dtype.
    grad : array, shape (n, classes)

    Examples
    --------
    >>> import numpy as np
    >>> loss, grad = softmax_cross_entropy(np.zeros((2, 4)), np.array([0, 3]))
    >>> np.allclose(loss, np.log(4)), np.allclose(grad.sum(axis=1), 0)
    (True, True)
    """
    _check_labels(logits, labels)
    xp = namespace(logits)
    n, c = logits.shape
    shifted = logits - xp.max(logits, axis=1, keepdims=True)
    log_p = shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))
    onehot = _one_hot(labels, c, logits)
    loss = -xp.sum(onehot * log_p) / n
    grad = (xp.exp(log_p) - onehot) / n
    return loss, grad


def accuracy_count(logits, labels):
    """Number of rows whose arg-max equals the label (a 0-d integer array)."""
    _check_labels(logits, labels)
    xp = namespace(logits)
    hits = xp.argmax(logits, axis=1) == xp.astype(labels, xp.int64)
    return xp.sum(xp.astype(hits, xp.int64))
