"""``ucat`` command line: argv -> config -> library calls; no logic of its own.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``;
modules are imported only when their command runs, so ``ucat --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from . import __version__
from .commands import COMMANDS

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ucat", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"ucat {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_) in COMMANDS.items():
        sub.add_parser(name, help=help_, add_help=False)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help", "--version") or argv[0] not in COMMANDS:
        if argv and argv[0] not in ("-h", "--help", "--version") and not argv[0].startswith("-"):
            parser.error(f"unknown command {argv[0]!r}; choose from {', '.join(COMMANDS)}")
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
        return 0
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(COMMANDS[name][0])
    sub = argparse.ArgumentParser(prog=f"ucat {name}", description=COMMANDS[name][1])
    module.add_arguments(sub)
    from .config import apply_config_file

    try:
        apply_config_file(sub, rest)
    except (ValueError, FileNotFoundError) as e:
        sub.error(str(e))
    args = sub.parse_args(rest)
    from .models.clip import WeightsUnavailableError

    try:
        return int(module.run(args) or 0)
    except (ValueError, FileNotFoundError, KeyError, WeightsUnavailableError) as e:
        # Bad input: one clear line, no traceback (set UCAT_DEBUG=1 for the traceback).
        import os

        if os.environ.get("UCAT_DEBUG"):
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"ucat {name}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
