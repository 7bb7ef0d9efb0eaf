"""Sphinx configuration for the opsplit documentation.

Build with ``python -m sphinx -W --keep-going -q -b html docs docs/_build/html``;
it needs nothing beyond the ``dev`` extra (no theme or extension downloads).

The gallery (sphinx-gallery) is generated from ``examples/``: every
``examples/plot_*.py`` is executed, single-threaded, and its printed output
and matplotlib figures are shown under its code; the other scripts
(``verify_convergence.py`` trains a network) are shown without running.
Each gallery script is sized to run in a few seconds, so the whole build
stays within a couple of minutes on two cores.  Set ``OPSPLIT_GALLERY=0``
to render the gallery without executing anything (a fast docs check).
"""

from __future__ import annotations

import importlib
import os
import sys

sys.path.insert(0, os.path.abspath(".."))

from threadpoolctl import threadpool_limits  # noqa: E402

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
    "sphinx_gallery.gen_gallery",
]

# The examples' matrices are small: one BLAS thread avoids oversubscribing a
# busy 2-core machine (threaded BLAS was hundreds of times slower there).
# threadpoolctl limits the libraries already loaded: SciPy's own OpenBLAS too.
import scipy.linalg  # noqa: E402, F401

threadpool_limits(1)

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    # Execute the gallery scripts only; the rest are rendered as code.
    "filename_pattern": r"/plot_",
    "plot_gallery": os.environ.get("OPSPLIT_GALLERY", "1") != "0",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    # sg_execution_times.rst (per-example run times) would be an orphan page.
    "write_computation_times": False,
    "show_memory": False,
}

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


def _generic_signature_only(app, domain, objtype, contentnode):
    """Print a ``functools.singledispatch`` function's signature once.

    Autodoc appends one signature per registered implementation (the
    structure rules of ``shifted_inverse``, ``exact_range``, ...), even after
    an explicit ``.. autofunction:: name(args)``; the rules are not API, so
    only the generic signature is kept.  The extra signatures carry no
    target, so no reference is lost.
    """
    if domain != "py" or objtype != "function":
        return
    from sphinx import addnodes

    desc = contentnode.parent
    signatures = [n for n in desc.children if isinstance(n, addnodes.desc_signature)]
    if len(signatures) < 2:
        return
    first = signatures[0]
    obj = _lookup(f"{first.get('module', '')}.{first.get('fullname', '')}")
    if hasattr(obj, "registry") and hasattr(obj, "dispatch"):
        for extra in signatures[1:]:
            desc.remove(extra)


def _lookup(name):
    """The object a dotted name refers to (importing its module), or None."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for part in parts[i:]:
                obj = getattr(obj, part)
        except AttributeError:
            return None
        return getattr(obj, "__func__", obj)  # classmethods: the function
    return None


def _resolve_public_name(app, env, node, contnode):
    """Resolve a reference by a public alias to where the object is documented.

    Every object is documented once, under the module that defines it
    (``opsplit.operators.basic.Dense``) or the package that lists it
    (``opsplit.splitting.SplittingMethod``); docstrings and pages refer to it
    by the name users import (``opsplit.Dense``, ``opsplit.nn.MonDEQ``,
    ``opsplit.SplittingMethod.step_limit``).  The documented name whose
    object *is* the referenced one is used.
    """
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py" or not target.startswith("opsplit."):
        return None
    obj = _lookup(target)
    if obj is None:
        return None
    domain = env.get_domain("py")
    last = target.rsplit(".", 1)[-1]
    for name in domain.objects:
        if name != target and name.rsplit(".", 1)[-1] == last and _lookup(name) is obj:
            return domain.resolve_xref(
                env, node["refdoc"], app.builder, node["reftype"], name, node, contnode
            )
    return None


def setup(app):
    app.connect("object-description-transform", _generic_signature_only)
    app.connect("missing-reference", _resolve_public_name)
