"""Training recipes shipped inside the package: ``ucat/recipes/<name>.yaml``, one per method's
official recipe (``configs/`` in the repository holds byte-identical readable copies; a test keeps
them equal). ``ucat train --recipe NAME`` (or ``--config NAME``) uses one; ``--list-recipes`` lists
them with the first line of each file's header comment."""
from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import List, Optional, Tuple

SUFFIX = ".yaml"


def recipes_dir() -> Path:
    return Path(str(resources.files("ucat") / "recipes"))


def recipe_names() -> List[str]:
    return sorted(p.name[: -len(SUFFIX)] for p in recipes_dir().glob(f"*{SUFFIX}"))


def recipe_path(name: str) -> Optional[Path]:
    """The shipped recipe called ``name`` (``ucat`` or ``ucat.yaml``), or None."""
    stem = name[: -len(SUFFIX)] if name.endswith(SUFFIX) else name
    if "/" in stem or "\\" in stem or stem.startswith("."):
        return None
    path = recipes_dir() / f"{stem}{SUFFIX}"
    return path if path.is_file() else None


def describe(name: str) -> str:
    """The first line of the recipe's header comment."""
    path = recipe_path(name)
    for line in (path.read_text(encoding="utf-8").splitlines() if path else []):
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return ""


def list_recipes() -> List[Tuple[str, str]]:
    """(name, one-line description) of every shipped recipe."""
    return [(n, describe(n)) for n in recipe_names()]
