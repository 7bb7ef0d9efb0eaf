"""Sphinx configuration for the opsplit documentation.

Build with ``python -m sphinx -W --keep-going -q -b html docs docs/_build/html``;
it needs nothing beyond the ``dev`` extra (no theme or extension downloads).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

import opsplit  # noqa: E402

project = "opsplit"
author = "opsplit developers"
copyright = "2026, opsplit developers"
release = opsplit.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]

# numpydoc-style docstrings through napoleon.
napoleon_google_docstring = False
napoleon_numpy_docstring = True
# ``Attributes`` sections become field lists, not object descriptions, so a
# documented attribute never duplicates one autodoc finds (NamedTuple fields,
# dataclass fields).
napoleon_use_ivar = True
napoleon_use_rtype = False
# Extra numpydoc-like headings used in the docstrings.
napoleon_custom_sections = ["Traits", "Derivation", "Algorithm"]

autodoc_default_options = {
    "member-order": "bysource",
}
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autoclass_content = "class"
# Overrides without a docstring of their own (matvec, prepare, ...) are
# documented once, on the base class.
autodoc_inherit_docstrings = False
add_module_names = False

templates_path: list[str] = []
exclude_patterns = ["_build"]
root_doc = "index"

html_theme = "alabaster"
html_theme_options = {
    "description": "Monotone operator splitting on NumPy and CuPy arrays",
    "fixed_sidebar": True,
}
html_static_path: list[str] = []
