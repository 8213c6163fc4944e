"""``python -m dynamics <command>``: the theory's command line.

Each module listed in :data:`COMMAND_MODULES` exposes ``register(subparsers)`` or a tuple
``REGISTRARS`` of such functions, each of which adds its subcommand(s) and sets ``func``
(``args -> summary dict``) as the parser default. Adding a
command means adding a module to the list; nothing here switches on command names.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Sequence

COMMAND_MODULES = (
    "dynamics.demo",     # demo: the phase-portrait theory demo
    "dynamics.cli",      # modes, scalar, matrix, reduced, sgd (dynamics.cli.REGISTRARS)
)


def _registrars(modules: Sequence[str]):
    """Yield ``register`` of each importable module; a module that does not exist (yet) is
    skipped, any other import error propagates."""
    for name in modules:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name == name:
                continue
            raise
        if hasattr(mod, "register"):
            yield mod.register
        yield from getattr(mod, "REGISTRARS", ())


def build_parser(modules: Sequence[str] = COMMAND_MODULES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dynamics",
        description="Learning dynamics of BYOL / SimSiam in the linear two-layer model "
                    "(Tian, Chen & Ganguli, ICML 2021).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for register in _registrars(modules):
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .integrate import NonFiniteStateError
    from .jsonio import ensure_writable

    try:
        if getattr(args, "out", None):
            ensure_writable(args.out)
        summary = args.func(args)
    except NonFiniteStateError as err:  # a numerical result, not bad input: exit 3 as realnet's NaN/inf
        parser.exit(3, f"{parser.prog} {args.command}: diverged: {err}\n")
    except ValueError as err:  # bad input: a message naming the argument, no traceback
        parser.exit(2, f"{parser.prog} {args.command}: error: {err}\n")
    except MemoryError:
        parser.exit(2, f"{parser.prog} {args.command}: error: out of memory; use smaller sizes\n")
    except OSError as err:  # e.g. the disk filled up while writing
        parser.exit(2, f"{parser.prog} {args.command}: error: cannot write {err.filename or ''}: "
                       f"{err.strerror or err}\n")
    if summary is not None and not getattr(args, "quiet", False):
        print(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
