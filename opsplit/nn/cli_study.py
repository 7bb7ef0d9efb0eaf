"""``opsplit study CHECKPOINT``: the step-size study of a trained monDEQ
(Winston & Kolter 2020, Figure 3).

Runs the registered splitting methods (:data:`opsplit.splitting.METHODS`:
forward–backward, Peaceman–Rachford, Douglas–Rachford) for
``α ∈ {1, 1/2, …, 1/64}`` on a batch of test images — extended upwards by
powers of two past twice forward–backward's bound ``2m/L²``, so that the
region where forward–backward may fail is always sampled — prints the table
of iterations to the tolerance (failures included) with the paper's
comparison, and writes the figure next to the checkpoint (``study.png``).
"""

from __future__ import annotations

import math
from pathlib import Path

from threadpoolctl import threadpool_limits

from .._io import check_writable_dir, save_figure
from ..splitting import METHODS, inclusion_methods, method_from_name, method_name
from ._cli import add_checkpoint_arguments, load_test_batch, positive_float, positive_int
from .certify import certify_classifier, mondeq_step_study
from .checkpoint import load_classifier
from .train import blas_threads

__all__ = ["add_arguments", "run", "findings", "step_grid", "parse_methods"]

DEFAULT_SAMPLES = 128
PLOT_NAME = "study.png"


def add_arguments(parser) -> None:
    """Add the ``opsplit study`` options to ``parser``."""
    add_checkpoint_arguments(parser)
    parser.add_argument("--tol", type=positive_float, default=1e-4,
                        help="relative residual to reach (default 1e-4)")
    parser.add_argument("--maxiter", type=positive_int, default=500,
                        help="iterations before a run counts as failed (default 500)")
    parser.add_argument("--steps", type=positive_int, default=7,
                        help="number of step sizes 1, 1/2, ..., 2^-(steps-1) (default 7)")
    parser.add_argument("--max-step", type=positive_float, default=None,
                        help="largest step (a power of two); default: 1, or the first power "
                             "of two at least 4m/L² (twice forward-backward's bound)")
    parser.add_argument("--methods", default=",".join(inclusion_methods(2)),
                        help="comma-separated methods among " + ", ".join(inclusion_methods(2))
                             + " (default all)")
    parser.add_argument("--plot", type=Path, default=None, metavar="PNG",
                        help=f"figure to write (default: {PLOT_NAME} next to the checkpoint)")
    parser.add_argument("--no-plot", action="store_true", help="write no figure")


def parse_methods(text: str) -> tuple:
    """Registered method names from a comma-separated list (``"fb,pr"``, ``"DR"``).

    Examples
    --------
    >>> parse_methods("FB, pr,DouglasRachford")
    ('fb', 'pr', 'dr')
    """
    names = tuple(method_name(method_from_name(part.strip(), step=1.0))
                  for part in text.split(",") if part.strip())
    if not names:
        raise ValueError(f"--methods names no method; choose among {', '.join(METHODS)}")
    return names


def findings(study) -> list[str]:
    """The paper's two claims, checked on a study: lines of text."""
    lines = []
    pr, fb = _label(study, "pr"), _label(study, "fb")
    if pr is not None and fb is not None:
        (a_pr, n_pr), (a_fb, n_fb) = study.best(pr), study.best(fb)
        if n_pr is None or n_fb is None:
            lines.append("best steps: a method never converged")
        else:
            verdict = "fewer" if n_pr < n_fb else "not fewer"
            lines.append(f"PR at its best α ({a_pr:g}) needs {n_pr} iterations, FB at its "
                         f"best α ({a_fb:g}) {n_fb}: PR needs {verdict}")
    if fb is not None:
        threshold = study.failure_threshold(fb)
        limit = None
        if study.m is not None and study.L is not None and study.m > 0:
            limit = method_from_name("fb").step_limit(study.m, study.L)
        if threshold is None:
            lines.append("FB converged at every step tried")
        else:
            text = f"FB fails from α = {threshold:g} up"
            if limit is not None:
                text += f"; its theoretical bound is 2m/L² = {limit:.4g}"
            lines.append(text)
    return lines


def _label(study, name):
    """The study's label of the registered method ``name`` (labels may differ in case)."""
    return next((label for label in study.labels if label.lower() == name), None)


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
    """Run ``opsplit study`` with parsed ``args``; return the exit status."""
    methods = parse_methods(args.methods)
    plot_path = None
    if not args.no_plot:
        plot_path = args.plot if args.plot is not None else args.checkpoint.parent / PLOT_NAME
        check_writable_dir(plot_path.parent, "the directory of --plot")
    model, params, meta = load_classifier(args.checkpoint)
    x, _, data = load_test_batch(model, meta, args, DEFAULT_SAMPLES)
    with threadpool_limits(limits=blas_threads(args.threads, model, len(x)), user_api="blas"):
        cert = certify_classifier(model, params)
        steps = step_grid(args.steps, args.max_step, float(cert.margin), float(cert.lipschitz))
        study = mondeq_step_study(
            model, params, x.astype(str(params.head.weight.dtype)), methods=methods,
            steps=steps, tol=args.tol, maxiter=args.maxiter, cert=cert,
        )
    print(f"checkpoint {args.checkpoint}, epoch {meta['epoch']}: {model.describe()}")
    print(f"step-size study on {len(x)} test images of {data.name} "
          f"(m = {float(cert.margin):.4g}, L = ‖I - W‖ "
          f"{'=' if cert.lipschitz.exact else '≤'} {float(cert.lipschitz):.4g})")
    print(study.table())
    for line in findings(study):
        print(line)
    if plot_path is not None:
        from ..plot import step_sweep

        fig = step_sweep(study, title=f"iterations to {args.tol:g} on {data.name}")
        print(f"figure: {save_figure(fig, plot_path, dpi=120)}")
    return 0
