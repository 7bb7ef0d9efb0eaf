"""Proximal functions, their calculus, and activations as proximal operators."""

from ._base import Activation, ProxFunction
from .activations import (
    HardTanh,
    LeakyReLU,
    ReLU,
    activation_config,
    activation_from_config,
    get_activation,
)
from .affine import AffineSet, HalfSpace
from .calculus import Conjugate, Scaled, SeparableSum, Translated, closed_form_conjugate
from .functions import (
    L1,
    L2,
    Box,
    ElasticNet,
    Huber,
    L1Ball,
    L2Ball,
    LInfBall,
    NonNegative,
    Simplex,
    SquaredL2,
    Zero,
    ZeroOnMask,
    soft_threshold,
)
from .groups import GroupL1
from .logistic import Logistic
from .matrix import NuclearNorm, SpectralNormBall
from .monotone import NormalCone, SmoothSubdifferential, Subdifferential
from .smooth import LeastSquares
from .smooth_activations import Sigmoid, SmoothActivation, Softplus, Tanh
from .tv import TotalVariation1D

__all__ = [
    "ProxFunction",
    "Zero",
    "NonNegative",
    "Box",
    "ZeroOnMask",
    "L1",
    "L2",
    "SquaredL2",
    "ElasticNet",
    "Huber",
    "L2Ball",
    "LInfBall",
    "L1Ball",
    "Simplex",
    "AffineSet",
    "HalfSpace",
    "soft_threshold",
    "Logistic",
    "NuclearNorm",
    "SpectralNormBall",
    "GroupL1",
    "TotalVariation1D",
    "Scaled",
    "Translated",
    "Conjugate",
    "SeparableSum",
    "closed_form_conjugate",
    "Activation",
    "SmoothActivation",
    "ReLU",
    "LeakyReLU",
    "HardTanh",
    "Tanh",
    "Sigmoid",
    "Softplus",
    "get_activation",
    "Subdifferential",
    "SmoothSubdifferential",
    "NormalCone",
    "LeastSquares",
    "activation_config",
    "activation_from_config",
]
