"""Monotone operator equilibrium networks (monDEQ, Winston & Kolter, NeurIPS 2020).

The forward equilibrium and the backward (implicit-gradient) problem are both
solved by opsplit's splitting methods through :func:`opsplit.solve`; every
derivative is written by hand and checked by :func:`~opsplit.nn.checks.gradcheck`.
Everything monDEQ-specific lives here: the model and its exact configuration
(:mod:`~opsplit.nn.model`), training (:mod:`~opsplit.nn.train`), checkpoints,
certificates of trained models (:mod:`~opsplit.nn.certify`) and the
``opsplit train`` / ``check`` / ``study`` commands.

Names are loaded on first use, so importing :mod:`opsplit.nn` stays cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    # layer, equilibrium and gradients
    "MonDense": "mondense",
    "DenseParams": "mondense",
    "MonDEQ": "deq",
    "EquilibriumState": "deq",
    "gradcheck": "checks",
    "GradcheckReport": "checks",
    "FieldCheck": "checks",
    "PreparedOperators": "deq",
    "MonotoneLayer": "protocol",
    "LinearizedActivation": "deq",
    "MonConv": "monconv",
    "ConvParams": "monconv",
    "MonMultiConv": "monmulticonv",
    "MultiConvParams": "monmulticonv",
    "BorderMasked": "border",
    # model pieces, optimisation, data, training
    "Linear": "layers",
    "Flatten": "layers",
    "AvgPool2d": "layers",
    "softmax_cross_entropy": "layers",
    "SGD": "optim",
    "Adam": "optim",
    "StepSchedule": "optim",
    "OneCycleSchedule": "optim",
    "load_dataset": "data",
    "Dataset": "dataset",
    "save_checkpoint": "checkpoint",
    "load_checkpoint": "checkpoint",
    "load_classifier": "checkpoint",
    "CheckpointError": "checkpoint",
    # the model and its training
    "Classifier": "model",
    "ClassifierParams": "model",
    "fit": "train",
    "FitHistory": "train",
    "EpochRecord": "train",
    "tune_alpha": "train",
    "blas_threads": "train",
    "CHECKPOINT_NAME": "train",
    # certificates and studies of trained models
    "LayerCertificate": "certify",
    "certify_layer": "certify",
    "certify_classifier": "certify",
    "RobustnessCertificate": "certify",
    "robustness_radii": "certify",
    "mondeq_step_study": "certify",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'opsplit.nn' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
