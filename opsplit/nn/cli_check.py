"""``opsplit check CHECKPOINT``: certificates of a trained monDEQ classifier.

Prints the model's configuration, the exact margin of ``I - W`` against the
declared ``m``, ``‖I - W‖``, the input-to-logits Lipschitz bound, the
uniqueness certificate, and the certified ℓ₂ robustness of a batch of test
images: the radii and the certified accuracy at fixed radii ``--eps``
(in pixel units of images in ``[0, 1]``).  Exits with status 1 when the
margin check fails, 2 on bad arguments or an unreadable checkpoint.
"""

from __future__ import annotations

from threadpoolctl import threadpool_limits

from ._cli import add_checkpoint_arguments, load_test_batch, pixel_scale, positive_float
from .certify import DEFAULT_EPS, certify_classifier, robustness_radii
from .checkpoint import load_classifier
from .train import blas_threads

__all__ = ["add_arguments", "run"]

DEFAULT_SAMPLES = 256


def add_arguments(parser) -> None:
    """Add the ``opsplit check`` options to ``parser``."""
    add_checkpoint_arguments(parser)
    parser.add_argument("--tol", type=positive_float, default=None,
                        help="tolerance of the equilibrium solves for the radii "
                             "(default 100·eps of the dtype)")
    parser.add_argument("--eps", type=float, nargs="+", default=list(DEFAULT_EPS),
                        metavar="EPS",
                        help="l2 radii at which the certified accuracy is reported, in pixel "
                             "units of [0, 1] images (default "
                             + " ".join(f"{e:g}" for e in DEFAULT_EPS) + ")")


def run(args) -> int:
    """Run ``opsplit check`` with parsed ``args``; return the exit status."""
    bad = [e for e in args.eps if not 0 <= e < float("inf")]
    if bad:
        raise ValueError(f"--eps must be finite numbers >= 0, got {bad}")
    model, params, meta = load_classifier(args.checkpoint)
    x, y, data = load_test_batch(model, meta, args, DEFAULT_SAMPLES)
    dtype = str(params.head.weight.dtype)
    with threadpool_limits(limits=blas_threads(args.threads, model, len(y)), user_api="blas"):
        cert = certify_classifier(model, params)
        rc = robustness_radii(model, params, x.astype(dtype), cert=cert, tol=args.tol)
    print(f"checkpoint {args.checkpoint}, epoch {meta['epoch']}: {model.describe()}")
    print(cert.summary())
    print(f"robustness on the first {len(y)} test images of {data.name}:")
    print(rc.summary(labels=y, eps=args.eps, scale=pixel_scale(data),
                     unit="pixel units of [0, 1] images"))
    return 0 if cert.margin_check.passed else 1
