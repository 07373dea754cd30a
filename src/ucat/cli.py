"""``ucat`` command line: argv -> config -> library calls; no logic of its own.

Each subcommand lives in :mod:`ucat.commands` as a module exposing ``add_arguments(parser)`` and
``run(args) -> int``. Every error that is the user's to fix (bad input, a bad file, a full or
read-only disk, Ctrl-C) ends as one line on stderr and a non-zero exit; ``--debug`` (or
``UCAT_DEBUG=1``) shows the full traceback instead.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from typing import List, Optional

from . import __version__
from .commands import COMMANDS
from .config import apply_config_file
from .errors import ConfigError, UcatError

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

_OS_HINTS = {
    errno.ENOSPC: "the disk is full: free space or choose another --out",
    errno.EDQUOT: "the disk quota is exceeded: free space or choose another --out",
    errno.EROFS: "the file system is read-only: choose a writable --out",
    errno.EACCES: "permission denied: choose a folder you can write to, or fix its permissions",
    errno.EPERM: "operation not permitted: choose a folder you can write to, or fix its permissions",
    errno.ENOTDIR: "a path component is a file, not a folder: check --out and the paths you gave",
    errno.EISDIR: "a folder was given where a file is expected: check the paths you gave",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ucat", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"ucat {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks (also UCAT_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_) in COMMANDS.items():
        sub.add_parser(name, help=help_, add_help=False)
    return parser


def error_line(e: BaseException) -> str:
    """The one line a user sees for an error that is theirs to fix."""
    if isinstance(e, ConfigError):
        return e.for_flags()
    if isinstance(e, KeyError) and e.args:
        return str(e.args[0])
    if isinstance(e, OSError) and not isinstance(e, FileNotFoundError) and e.errno in _OS_HINTS:
        where = f" ({e.filename})" if e.filename else ""
        return f"{_OS_HINTS[e.errno]}{where}"
    return str(e) or type(e).__name__


def _debug_requested(argv: List[str]) -> bool:
    return "--debug" in argv or os.environ.get("UCAT_DEBUG", "").lower() in ("1", "true", "yes")


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(argv)
    argv = [a for a in argv if a != "--debug"]
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
    try:
        apply_config_file(sub, rest)
    except (ValueError, FileNotFoundError) as e:
        sub.error(str(e))
    args = sub.parse_args(rest)
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"ucat {name}: interrupted; finished results and checkpoints are kept (rerun to resume)",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except (UcatError, ValueError, KeyError, OSError) as e:
        # Bad input or environment: one clear line, no traceback (--debug for the traceback).
        if debug:
            raise
        print(f"ucat {name}: error: {error_line(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
