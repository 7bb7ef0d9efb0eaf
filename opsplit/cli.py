"""The ``opsplit`` command.

Subcommands live next to the code they drive; each module provides
``add_arguments(parser)`` and ``run(args) -> int``:

- ``train``: :mod:`opsplit.nn.cli_train`
- ``check``: :mod:`opsplit.nn.cli_check`
- ``study``: :mod:`opsplit.nn.cli_study`
- ``solve-distributed``: :mod:`opsplit.distributed.cli`

Errors the user can fix (bad arguments, unreadable or mismatched files,
unwritable directories) are printed as one line, ``opsplit COMMAND: error:
...``, with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__

_SUBCOMMANDS = {
    "train": ("opsplit.nn.cli_train", "train a monDEQ and report its accuracy"),
    "check": ("opsplit.nn.cli_check", "verify a trained monDEQ checkpoint"),
    "study": ("opsplit.nn.cli_study", "step-size study of a trained monDEQ"),
    "solve-distributed": ("opsplit.distributed.cli",
                          "solve a sharded l1-regularized regression on Dask workers"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="opsplit",
        description="Monotone operator splitting and monotone operator equilibrium networks.",
    )
    parser.add_argument("--version", action="version", version=f"opsplit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in _SUBCOMMANDS.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue  # subcommand not built yet
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 0
    try:
        return int(args._run(args) or 0)
    except (ValueError, TypeError, OSError) as exc:
        print(f"opsplit {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
