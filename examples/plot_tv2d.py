r"""
Total-variation denoising of a photograph
=========================================

The grey-level "china" photograph that ships with scikit-learn
(:func:`sklearn.datasets.load_sample_image`), downsampled 4× to
``106 × 160`` pixels and corrupted by Gaussian noise, is denoised by the
isotropic total variation (Rudin, Osher and Fatemi 1992):

.. math::

    \min_x\; \tfrac12\|x - y\|_2^2 + \lambda \sum_{i,j} \|(\nabla x)_{:,i,j}\|_2,

with :class:`opsplit.operators.Gradient2D` (forward differences, Neumann
boundary, ``‖∇‖² < 8``).  Two methods:

* Chambolle–Pock on :class:`opsplit.Composite` ``f(x) + g(∇x)``, with
  ``f = ½‖· − y‖²`` and ``g`` the sum of the pixels' gradient norms (a
  proximable function written here in a few lines), ``τ = 0.05`` and
  ``σ = 0.99/(τ‖∇‖²)``;
* FISTA with restart on the dual (Chambolle 2004), a constrained
  least-squares problem,

  .. math::

      x = y - \nabla^\top u,\qquad
      0 \in \underbrace{\nabla(\nabla^\top u - y)}_{A(u)}
      + N_{\{\|u_{:,i,j}\|_2 \le \lambda\}}(u),

  step ``1/‖∇‖²``: the projection scales each pixel's 2-vector back onto the
  disc of radius ``λ``.

The test (``tests/test_gallery.py``) compares the answer with CVXPY on a
small crop.  Run as a script: ``python examples/plot_tv2d.py [--small]``.
"""

from __future__ import annotations

import argparse

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_sample_image

import opsplit as ops
from opsplit.operators import Gradient2D

# %%
# The photograph, in grey levels in [0, 1], downsampled by averaging
# ``factor × factor`` blocks.


def load_image(factor: int = 4, crop=None):
    """The grey "china" photograph, ``factor``-times smaller (optionally a ``crop``)."""
    rgb = load_sample_image("china.jpg").astype(np.float64) / 255.0
    grey = rgb @ np.array([0.299, 0.587, 0.114])
    h, w = (s // factor * factor for s in grey.shape)
    grey = grey[:h, :w].reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))
    if crop is not None:
        grey = grey[crop]
    return grey


def tv(x) -> float:
    """Isotropic total variation ``Σ ‖(∇x)_{:,i,j}‖₂``."""
    g = Gradient2D(x.shape) @ x
    return float(np.sum(np.sqrt(g[0] ** 2 + g[1] ** 2)))


def objective(y, lam, x) -> float:
    return 0.5 * float(np.sum((x - y) ** 2)) + lam * tv(x)


class PixelNorms(ops.prox.ProxFunction):
    """``λ Σᵢⱼ ‖p[:, i, j]‖₂`` on ``(2, H, W)`` gradients: the isotropic TV's ``g``.

    A user-defined proximable function needs only ``value`` and ``prox``; the
    prox shrinks each pixel's 2-vector towards 0 by ``λ·step`` (group soft
    thresholding), and the prox of the conjugate, the projection of each
    pixel's vector onto the disc of radius ``λ``, follows from Moreau's
    identity (:class:`opsplit.prox.Conjugate`).
    """

    def __init__(self, lam):
        self.lam = lam

    def value(self, p):
        return self.lam * np.sum(np.sqrt(np.sum(p * p, axis=-3)))

    def prox(self, p, step=1.0):
        norms = np.sqrt(np.sum(p * p, axis=-3, keepdims=True))
        return p * np.maximum(0.0, 1.0 - self.lam * step / np.maximum(norms, 1e-300))


# %%
# The methods; each returns the denoised image with its solve result.


def solve(y, lam, *, tol=1e-5, maxiter=5000, tau=0.05):
    """Every method on the TV problem: ``{name: (x, SolveResult)}``."""
    G = Gradient2D(y.shape)
    g = PixelNorms(lam)
    results = {}
    # Chambolle-Pock on f(x) + g(∇x), f = ½‖x − y‖², σ = 0.99/(τ‖∇‖²).
    composite = ops.Composite(f=ops.prox.Translated(ops.prox.SquaredL2(), y), g=g, K=G)
    res = ops.solve(composite, ops.ChambollePock(step=tau), np.zeros_like(y), tol=tol,
                    maxiter=maxiter)
    results["Chambolle-Pock"] = (res.x, res)
    # The dual, min ½‖∇ᵀu − y‖² + g*(u): a projected gradient (FISTA) problem.
    lip = G.norm() ** 2
    dual_grad = ops.Gradient(lambda u: G @ (G.H @ u - y), lipschitz=lip, core_shape=G.out_shape)
    dual = ops.Inclusion(dual_grad, ops.Subdifferential(ops.prox.Conjugate(g)))
    res = ops.solve(dual, ops.FISTA(step=1.0 / lip), np.zeros(G.out_shape), tol=tol,
                    maxiter=maxiter)
    results["dual FISTA (restart)"] = (y - G.H @ res.x, res)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="2-D TV denoising of a photograph.")
    parser.add_argument("--small", action="store_true", help="a small crop (for tests)")
    args = parser.parse_args(argv)
    clean = load_image(4, crop=(slice(30, 62), slice(40, 72)) if args.small else None)
    rng = np.random.default_rng(0)
    y = clean + 0.1 * rng.standard_normal(clean.shape)
    lam = 0.08
    results = solve(y, lam)
    print(f"TV denoising of a {clean.shape[0]}×{clean.shape[1]} photograph, λ = {lam}; "
          f"noisy PSNR {psnr(y, clean):.2f} dB")
    print(f"{'method':<24} {'iterations':>10} {'time [ms]':>10} {'status':<18} "
          f"{'objective':>14} {'PSNR [dB]':>9}")
    ok = True
    for name, (x, res) in results.items():
        ok &= res.success
        print(f"{name:<24} {res.iterations:>10d} {1e3 * res.wall_time:>10.1f} "
              f"{res.status.value:<18} {objective(y, lam, x):>14.8g} {psnr(x, clean):>9.2f}")
    x = next(iter(results.values()))[0]
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.2), layout="constrained")
    for ax, image, title in zip(axes, (clean, y, x), ("photograph", "noisy", "TV denoised")):
        ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0)
        ax.set_title(title)
        ax.set_axis_off()
    ops.plot.residuals([r for _, r in results.values()], labels=list(results), ax=axes[3],
                       title="residuals")
    return 0 if ok else 1


def psnr(x, clean) -> float:
    """Peak signal-to-noise ratio for images in [0, 1]."""
    return float(-10.0 * np.log10(np.mean((x - clean) ** 2)))


if __name__ == "__main__":
    if main():
        raise SystemExit(1)
