"""The errors ucat reports as one line (``ucat.cli`` prints them; ``--debug`` shows the traceback).

Library code names its *parameters* (``batch_size``); the command layer names *flags*
(``--batch-size``): :class:`ConfigError` carries the parameter so that :mod:`ucat.cli` can say
which flag (or YAML key) to fix.
"""
from __future__ import annotations

from typing import Optional


class UcatError(Exception):
    """Base of every error that is the user's to fix (bad input, bad files, bad environment)."""


class ConfigError(UcatError, ValueError):
    """A bad value of one configuration parameter.

    ``str(e)`` reads ``"<param> <message>"`` (library wording); :meth:`for_flags` reads
    ``"--<param-with-dashes> <message>"`` (command-line wording).
    """

    def __init__(self, param: str, message: str):
        self.param, self.message = param, message
        super().__init__(f"{param} {message}")

    def for_flags(self, flag: Optional[str] = None) -> str:
        return f"{flag or '--' + self.param.replace('_', '-')} {self.message}"


class UnsafeFileError(UcatError, ValueError):
    """A file ucat refuses to read because reading it could execute code (a pickle)."""


class CorruptFileError(UcatError, ValueError):
    """A file that exists but cannot be read as what it claims to be (truncated, empty, wrong format)."""


class NonFiniteError(UcatError, RuntimeError):
    """A computation produced NaN or infinity; nothing non-finite is ever written as a result."""
