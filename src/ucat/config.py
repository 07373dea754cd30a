"""Configuration files and ``key=value`` options: YAML defaults under command-line flags.

timm's pattern: a ``--config FILE.yaml`` supplies parser defaults, explicit flags still win, and
unknown keys are refused. YAML is read with ``yaml.safe_load`` (no code execution). Units live
in :mod:`ucat.units`, file writing in :mod:`ucat.io`.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Dict

import yaml

from .recipes import recipe_names, recipe_path


def parse_cli_value(text: str) -> Any:
    """A ``key=value`` option value from the command line: '1e5' -> 1e5, '3' -> 3, 'true' -> True,
    'none' -> None, anything else stays a string."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def load_config_file(path: str | os.PathLike) -> Dict[str, Any]:
    """Read a YAML (or JSON) file of defaults; keys use the flag names with ``_`` or ``-``."""
    p = Path(path)
    if not p.is_file():
        p = recipe_path(str(path))                  # a shipped recipe by name (ucat/recipes/NAME.yaml)
        if p is None:
            raise FileNotFoundError(f"--config {path}: no such file or shipped recipe "
                                    f"(recipes: {', '.join(recipe_names())})")
    try:
        with open(p, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        where = getattr(e, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where is not None else ""
        raise ValueError(f"--config {path}: not a valid YAML file{at}: "
                         f"{getattr(e, 'problem', None) or type(e).__name__}; fix the file or pass another") from None
    if not isinstance(data, dict):
        raise ValueError(f"--config {path}: expected a mapping of option: value, got {type(data).__name__}")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def apply_config_file(parser: argparse.ArgumentParser, argv: list[str] | None) -> None:
    """Values from ``--config FILE`` become parser defaults; explicit flags still win.

    A list-valued option given as one YAML scalar (``attacks: pgd``) becomes a one-item list,
    never a string read letter by letter.
    """
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", "--recipe", dest="config", default=None)
    known, _ = pre.parse_known_args(argv)
    if not known.config:
        return
    cfg = load_config_file(known.config)
    actions = {a.dest: a for a in parser._actions}
    unknown = sorted(set(cfg) - set(actions))
    if unknown:
        raise ValueError(f"--config {known.config}: unknown option(s) {', '.join(unknown)}; "
                         f"valid options are the command's flags (see --help)")
    for key, value in cfg.items():
        if actions[key].nargs in ("+", "*") and isinstance(value, (str, int, float)):
            cfg[key] = [value]
    parser.set_defaults(**cfg)
