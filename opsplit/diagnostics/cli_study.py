"""``opsplit study CHECKPOINT``: the step-size study of a trained monDEQ
(Winston & Kolter 2020, Figure 3).

Runs forward–backward, Peaceman–Rachford and Douglas–Rachford for
``α ∈ {1, 1/2, …, 1/64}`` on a batch of test images — extended upwards by
powers of two past twice forward–backward's bound ``2m/L²``, so that the
region where forward–backward may fail is always sampled — prints the table
of iterations to the tolerance (failures included) with the paper's
comparison, and writes the figure.
"""

from __future__ import annotations

import math

from .._io import save_figure
from ._cli import add_common_arguments, load_classifier, load_test_batch

__all__ = ["add_arguments", "run"]


def add_arguments(parser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--tol", type=float, default=1e-4,
                        help="relative residual to reach (default 1e-4)")
    parser.add_argument("--maxiter", type=int, default=500,
                        help="iterations before a run counts as failed (default 500)")
    parser.add_argument("--steps", type=int, default=7,
                        help="number of step sizes 1, 1/2, ..., 2^-(steps-1) (default 7)")
    parser.add_argument("--max-step", type=float, default=None,
                        help="largest step (a power of two); default: 1, or the first power "
                             "of two at least 4m/L² (twice forward-backward's bound)")
    parser.add_argument("--methods", default="FB,PR,DR",
                        help="comma-separated methods among FB, PR, DR (default all)")
    parser.add_argument("--out", default="study.png",
                        help="figure file to write (default study.png; '' for none)")


def findings(study) -> list[str]:
    """The paper's two claims, checked on a study: lines of text."""
    lines = []
    labels = study.labels
    if "PR" in labels and "FB" in labels:
        (a_pr, n_pr), (a_fb, n_fb) = study.best("PR"), study.best("FB")
        if n_pr is None or n_fb is None:
            lines.append("best steps: a method never converged")
        else:
            verdict = "fewer" if n_pr < n_fb else "not fewer"
            lines.append(f"PR at its best α ({a_pr:g}) needs {n_pr} iterations, FB at its "
                         f"best α ({a_fb:g}) {n_fb}: PR needs {verdict}")
    if "FB" in labels:
        threshold = study.failure_threshold("FB")
        limit = None
        if study.m is not None and study.L is not None and study.m > 0:
            from .rates import fb_step_limit

            limit = fb_step_limit(study.m, study.L)
        if threshold is None:
            lines.append("FB converged at every step tried")
        else:
            text = f"FB fails from α = {threshold:g} up"
            if limit is not None:
                text += f"; its theoretical bound is 2m/L² = {limit:.4g}"
            lines.append(text)
    return lines


def step_grid(count: int, max_step: float | None, m: float, L: float) -> tuple:
    """Powers of two from ``2^-(count-1)`` up to ``max_step`` (default: 1, or past
    twice forward–backward's bound ``2m/L²``), largest first.

    Examples
    --------
    >>> step_grid(3, None, 1.0, 1.0)       # 4m/L² = 4
    (4.0, 2.0, 1.0, 0.5, 0.25)
    >>> step_grid(3, None, 1.0, 4.0)
    (1.0, 0.5, 0.25)
    """
    if count < 1:
        raise ValueError(f"--steps must be >= 1, got {count}")
    if max_step is None:
        top = max(0, math.ceil(math.log2(4.0 * m / L**2))) if m > 0 else 0
    else:
        if not max_step > 0:
            raise ValueError(f"--max-step must be > 0, got {max_step}")
        top = math.floor(math.log2(max_step))
    return tuple(2.0**k for k in range(top, -count, -1))


def run(args) -> int:
    model, params, meta = load_classifier(args.checkpoint)
    from .mondeq import certify_classifier, mondeq_step_study

    methods = tuple(m.strip().upper() for m in args.methods.split(",") if m.strip())
    x, _, name = load_test_batch(meta, args.data, args.samples, default=128)
    cert = certify_classifier(model, params)
    steps = step_grid(args.steps, args.max_step, float(cert.margin), float(cert.lipschitz))
    study = mondeq_step_study(
        model, params, x.astype(str(params.head.weight.dtype)), methods=methods,
        steps=steps, tol=args.tol, maxiter=args.maxiter, cert=cert,
    )
    print(f"step-size study on {len(x)} test images of {name} "
          f"(m = {float(cert.margin):.4g}, L = ‖I - W‖ = {float(cert.lipschitz):.4g})")
    print(study.table())
    for line in findings(study):
        print(line)
    if args.out:
        from ..plot import step_sweep

        fig = step_sweep(study, title=f"iterations to {args.tol:g} on {name}")
        save_figure(fig, args.out, dpi=120)
        print(f"figure written to {args.out}")
    return 0
