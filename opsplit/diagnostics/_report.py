"""What the checks return: a small report, and numbers that state their accuracy."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CheckReport", "CheckFailed", "Estimate"]


class CheckFailed(AssertionError):
    """Raised by a check called with ``raise_on_fail=True`` when it fails.

    The failing :class:`CheckReport` is available as ``exc.report``.
    """

    def __init__(self, report: CheckReport):
        super().__init__(str(report))
        self.report = report


@dataclass(frozen=True)
class CheckReport:
    """The outcome of one check.

    Attributes
    ----------
    name : str
        What was tested, e.g. ``"monotone"`` or ``"adjoint"``.
    passed : bool
        Whether the property held within ``tolerance``.
    worst : float
        The worst observed value of the tested quantity (its meaning is in
        ``quantity``); for exact checks, the exact value.
    required : float
        The bound ``worst`` is compared with.
    tolerance : float
        The allowance for rounding used in the comparison.
    quantity : str
        What ``worst`` measures, in words.
    method : str
        How ``worst`` was obtained (exact formula, sampling and search, ...).
    evaluations : int
        Number of operator evaluations (pairs or vectors) tried; 0 for exact checks.
    """

    name: str
    passed: bool
    worst: float
    required: float
    tolerance: float
    quantity: str
    method: str
    evaluations: int = 0

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        return (
            f"{self.name}: {verdict}: {self.quantity} = {self.worst:.6g} "
            f"(required {self.required:.6g}, tolerance {self.tolerance:.2g}; {self.method})"
        )

    def raise_if_failed(self) -> CheckReport:
        """Raise :class:`CheckFailed` unless the check passed; return ``self``."""
        if not self.passed:
            raise CheckFailed(self)
        return self


def compare(name, worst, required, tol, better, quantity, method, evaluations=0) -> CheckReport:
    """The report of ``worst`` against the bound ``required`` within ``tol``:
    passed when ``worst >= required - tol`` (``better="higher"``) or
    ``worst <= required + tol`` (``better="lower"``)."""
    if better == "higher":
        passed = worst >= required - tol
    else:
        passed = worst <= required + tol
    return CheckReport(
        name=name,
        passed=bool(passed),
        worst=float(worst),
        required=float(required),
        tolerance=float(tol),
        quantity=quantity,
        method=method,
        evaluations=evaluations,
    )


def finish(report: CheckReport, raise_on_fail: bool) -> CheckReport:
    """Return ``report``, raising :class:`CheckFailed` first when asked and failed."""
    if raise_on_fail:
        report.raise_if_failed()
    return report


class Estimate(float):
    """A float that says how it was obtained and how accurate it is.

    Behaves as the plain number everywhere (arithmetic returns ``float``);
    the extra attributes record its provenance.

    Attributes
    ----------
    error : float
        A bound on the distance to the exact value: 0 for exact formulas
        (up to rounding); for Lanczos, the residual of the extreme Ritz pair
        (an eigenvalue lies within ``error`` of the value).
    method : str
        How the value was computed.
    exact : bool
        True when computed by a direct formula (eigenvalues of a small
        matrix, per-frequency symbols).

    Examples
    --------
    >>> from opsplit.diagnostics import Estimate
    >>> e = Estimate(2.0, error=0.0, method="eigvalsh", exact=True)
    >>> e + 1, e.method
    (3.0, 'eigvalsh')
    """

    error: float
    method: str
    exact: bool

    def __new__(cls, value, *, error: float = 0.0, method: str = "", exact: bool = False):
        obj = super().__new__(cls, value)
        obj.error = float(error)
        obj.method = method
        obj.exact = bool(exact)
        return obj

    def describe(self) -> str:
        """The value with its accuracy and method, as one line."""
        if self.exact:
            return f"{float(self):.6g} (exact: {self.method})"
        return f"{float(self):.6g} ± {self.error:.2g} ({self.method})"
