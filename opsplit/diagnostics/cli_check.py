"""``opsplit check CHECKPOINT``: certificates of a trained monDEQ classifier.

Prints the exact margin of ``I - W`` against the declared ``m``, ``‖I - W‖``,
the input-to-logits Lipschitz bound, the uniqueness certificate and a summary
of the certified ℓ₂ robustness radii on a batch of test images.  Exits with
status 1 when the margin check fails.
"""

from __future__ import annotations

from ._cli import add_common_arguments, load_classifier, load_test_batch

__all__ = ["add_arguments", "run"]


def add_arguments(parser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--tol", type=float, default=None,
                        help="tolerance of the equilibrium solves for the radii "
                             "(default 100·eps of the dtype)")


def run(args) -> int:
    model, params, meta = load_classifier(args.checkpoint)
    from .mondeq import certify_classifier, robustness_radii

    cert = certify_classifier(model, params)
    print(f"checkpoint {args.checkpoint}: dense monDEQ, width {model.layer.width}, "
          f"{model.num_classes} classes, epoch {meta.get('epoch', '?')}")
    print(cert.summary())
    x, y, name = load_test_batch(meta, args.data, args.samples)
    rc = robustness_radii(model, params, x.astype(str(params.head.weight.dtype)), cert=cert,
                          tol=args.tol)
    print(f"robustness on the first {len(y)} test images of {name}:")
    print(rc.summary(labels=y))
    return 0 if cert.margin_check.passed else 1
