"""The one direction of imports (docs: the design guide's layer diagram).

Every module of :mod:`opsplit` is parsed (no import runs) and every import in
it — at module level, inside functions, under ``TYPE_CHECKING`` — must point
to its own layer or a lower one::

    _backend, _vectors, _validate, _io  ←  operators  ←  prox  ←  problems  ←  splitting
      ←  _solve, _certify, _result  ←  diagnostics  ←  plot  ←  nn  ←  distributed  ←  cli

This replaces three narrower tests (operators import nothing above them; the
driver and the methods import no diagnostics; nothing below ``nn`` imports it),
each of which caught a real cycle hidden by a lazy import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import opsplit

ROOT = Path(opsplit.__file__).parent

#: Layer of each top-level module or subpackage of opsplit, lowest first.
LAYERS = (
    ("_backend", "_vectors", "_validate", "_io"),
    ("operators",),
    ("prox",),
    ("problems",),
    ("splitting",),
    ("_solve", "_certify", "_result"),
    ("diagnostics",),
    ("plot",),
    ("nn",),
    ("distributed",),
    ("cli", ""),  # "": the package root, which re-exports every layer
)
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _top(module: str) -> str | None:
    """The top-level part of ``opsplit`` that the dotted ``module`` belongs to
    (``""`` for the package root), or ``None`` outside opsplit."""
    parts = module.split(".")
    if parts[0] != "opsplit":
        return None
    return parts[1] if len(parts) > 1 else ""


def imported_tops(relpath: tuple[str, ...], source: str):
    """``(line, top)`` for every opsplit import of the module at ``relpath``
    (path parts below the package root, e.g. ``("nn", "deq.py")``)."""
    package = ["opsplit", *relpath[:-1]]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            if module == "opsplit":  # `from opsplit import x` / `from .. import x`
                targets = [f"opsplit.{alias.name}" if alias.name in RANK else "opsplit"
                           for alias in node.names]
            else:
                targets = [module]
        else:
            continue
        for target in targets:
            top = _top(target)
            if top is not None:
                yield node.lineno, top


def violations(relpath: tuple[str, ...], source: str) -> list[str]:
    """The imports of the module at ``relpath`` that point to a higher layer."""
    own = Path(relpath[0]).stem
    found = []
    for line, top in imported_tops(relpath, source):
        if top not in RANK:
            found.append(f"{'/'.join(relpath)}:{line} imports opsplit.{top}, in no layer")
        elif RANK[top] > RANK[own]:
            found.append(f"{'/'.join(relpath)}:{line} imports opsplit.{top or '(root)'}")
    return found


def _modules():
    for path in sorted(ROOT.rglob("*.py")):
        relpath = path.relative_to(ROOT).parts
        if relpath == ("__init__.py",):
            continue  # the root re-exports every layer
        yield relpath, path.read_text(encoding="utf-8")


def test_every_module_belongs_to_a_layer():
    tops = {Path(relpath[0]).stem for relpath, _ in _modules()}
    assert tops <= set(RANK), sorted(tops - set(RANK))
    # the walk really sees the package (a wrong root would pass vacuously)
    assert {"operators", "splitting", "diagnostics", "nn", "cli"} <= tops


def test_imports_point_down_only():
    found = [v for relpath, source in _modules() for v in violations(relpath, source)]
    assert found == []


@pytest.mark.parametrize(
    ("relpath", "source", "culprit"),
    [
        # the cycle issue 7 found: a method importing the certificates lazily
        (("splitting", "forward_backward.py"),
         "def f():\n    from ..diagnostics.certificates import x\n", "opsplit.diagnostics"),
        # the driver importing diagnostics
        (("_solve.py",), "from .diagnostics import rates\n", "opsplit.diagnostics"),
        # diagnostics importing nn, absolutely and under TYPE_CHECKING
        (("diagnostics", "study.py"),
         "if TYPE_CHECKING:\n    import opsplit.nn.model\n", "opsplit.nn"),
        # operators importing the package root (which imports every layer)
        (("operators", "basic.py"), "from .. import solve\n", "opsplit.(root)"),
        (("prox", "functions.py"), "from opsplit import plot\n", "opsplit.plot"),
    ],
)
def test_the_check_catches_upward_imports(relpath, source, culprit):
    found = violations(relpath, source)
    assert len(found) == 1 and found[0].endswith(culprit), found


def test_the_check_allows_imports_downward_and_within_a_layer():
    source = (
        "from .._backend import namespace\nfrom ..operators import Dense\n"
        "from . import certificates\nimport numpy as np\n"
        "def f():\n    from ..splitting import METHODS\n"
    )
    assert violations(("diagnostics", "study.py"), source) == []
    assert list(imported_tops(("nn", "deq.py"), "from .. import plot\n")) == [(1, "plot")]
