r"""Verify the constants behind a uniqueness certificate.

:func:`opsplit.solve` believes the strong-monotonicity constants that
operators declare (and the ``margin`` a user supplies) and says so in its
certificate ("declared, not verified").  :func:`verify` checks them:

- an affine operator whose structure gives its margin exactly (dense,
  diagonal, FFT) is measured, not believed;
- any other operator is searched for a counterexample to its declared
  constant (plain monotonicity when none is declared) by
  :func:`~opsplit.diagnostics.check_monotone`: sampled pairs refined by a
  search from the worst ones.  A search can refute a constant, never prove
  it; a constant it does not refute is reported as "checked by sampling".

When a constant is refuted the certificate is withdrawn (``unique=False``)
with the counterexample's value; :func:`opsplit.solve` runs the same check
when given ``verify=ops.diagnostics.verify``.
"""

from __future__ import annotations

from .._certify import Certificate, certify, make_certificate, operator_margin, withdrawn
from .._vectors import is_tuple
from .checks import check_monotone

__all__ = ["verify"]


def _one_sample(x, batch_ndim):
    """The first sample of a batch (an array or a tuple of arrays)."""
    if batch_ndim == 0:
        return x
    index = (0,) * batch_ndim + (Ellipsis,)
    return tuple(part[index] for part in x) if is_tuple(x) else x[index]


def verify(problem, result=None, *, x_like=None, seed: int = 0) -> Certificate:
    r"""Check the constants behind the uniqueness certificate of ``problem``.

    Parameters
    ----------
    problem : Inclusion
        The problem whose operators' constants are checked.
    result : SolveResult, optional
        A solve of ``problem``: its certificate is the one checked (so a
        ``margin`` supplied to :func:`opsplit.solve` is checked too), and its
        solution gives the shape of the sampled points.
    x_like : array or tuple of arrays, optional
        One input (shape, library, dtype, device) for the sampling search;
        defaults to the first sample of ``result.x``.
    seed : int
        Seed of the sampling search.

    Returns
    -------
    Certificate
        ``verified=True`` when no constant was refuted (``unique`` as before,
        the reason says how each was checked); ``unique=False`` with the
        refuted constant and the counterexample's value otherwise.

    Examples
    --------
    >>> import numpy as np, opsplit as ops
    >>> G = ops.Gradient(lambda x: x - 2 * np.sin(x), strong_monotonicity=1.0)
    >>> prob = ops.Inclusion(G, ops.Subdifferential(ops.prox.Zero()))
    >>> res = ops.solve(prob, ops.ForwardBackward(0.1), np.full(1, 2.0), tol=1e-10)
    >>> res.unique, res.verified          # believed, and said to be believed
    (True, False)
    >>> cert = ops.diagnostics.verify(prob, res)
    >>> cert.unique, cert.reason.split(":")[0]
    (False, 'uniqueness not certified')
    """
    cert = result.certificate if result is not None else certify(problem)
    if cert.margin is None:
        return cert
    if x_like is None and result is not None:
        x = problem.lift(result.x)  # on the space the iteration ran in (Consensus: N blocks)
        x_like = _one_sample(x, problem.batch_ndim(x))
    total, how = 0.0, []
    for role, op in zip("ABC", problem.operators):
        m, source = operator_margin(op)
        if source == "computed":
            total += m
            how.append(f"{role}: {m:.4g}, computed exactly")
            continue
        claimed = m or 0.0
        report = check_monotone(op, x_like, strong=claimed, seed=seed)
        if not report.passed:
            what = f"{claimed:.4g}-strongly monotone" if claimed else "monotone"
            return withdrawn(cert, (
                f"{role} was declared {what}, but a sampled pair gives "
                f"⟨Ax - Ay, x - y⟩/‖x - y‖² = {report.worst:.4g} (check_monotone); "
                "the zero need not be unique"
            ))
        total += claimed
        how.append(f"{role}: {claimed:.4g}, checked by sampling")
    if cert.margin > total * (1 + 1e-9) + 1e-12:
        return withdrawn(cert, (
            f"the margin {cert.margin:.4g} exceeds what the operators give, "
            f"{total:.4g} ({'; '.join(how)})"
        ))
    return make_certificate(cert.margin, "; ".join(how), verified=True)
