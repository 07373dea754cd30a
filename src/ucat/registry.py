"""One registry type for every extension point (methods, attacks, datasets).

Pattern learned from timm's ``register_model`` / ``model_entrypoint``: a name maps to a
factory; lookups of unknown names fail with the list of known ones.
"""
from __future__ import annotations

import warnings
from typing import Callable, Dict, Generic, Iterator, List, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> object map with a decorator for registration.

    Example::

        ATTACKS = Registry("attack")

        @ATTACKS.register("pgd")
        class PGD: ...

        ATTACKS.get("pgd")
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: Dict[str, T] = {}

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        """Register ``obj`` under ``name``; usable as ``@registry.register(name)``."""
        key = self._key(name)

        def _add(item: T) -> T:
            if key in self._items and self._items[key] is not item:
                warnings.warn(f"{self.kind} {name!r} is registered twice; the later one wins", stacklevel=3)
            self._items[key] = item
            return item

        return _add(obj) if obj is not None else _add

    def get(self, name: str) -> T:
        key = self._key(name)
        if key not in self._items:
            known = ", ".join(self.names()) or "(none)"
            raise KeyError(f"unknown {self.kind} {name!r}; known {self.kind}s: {known}")
        return self._items[key]

    def names(self) -> List[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._key(name) in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    @staticmethod
    def _key(name: str) -> str:
        # "pmg-aft", "pmg_aft" and "PMG-AFT" name the same thing.
        return name.strip().lower().replace("_", "-")
