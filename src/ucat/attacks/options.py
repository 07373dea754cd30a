"""Attack options, checked when an attack is constructed: unknown names and wrong types are one clear error.

An attack's options are the keyword parameters of its ``__init__`` and, where that forwards
``**kw``, of its bases' (``CW(kappa=..., restarts=...)`` reaches :class:`ucat.attacks.pgd.LossPGD`).
Their kinds come from the annotations (``float``, ``int``, ``bool``, ``str``, ``float | None``)
or, failing that, from the defaults. ``-A cw.kappa=abc`` or ``-A pgd.foo=1`` thus fail before any
image is attacked, naming the attack and its valid options (issue 13 item 7).

The settings every evaluation passes (``eps``, ``step_size``, ``steps``, ``norm``, ``restarts``) are
reported under their own names (``ConfigError("steps", ...)``); the others as attack options
(``ConfigError("attack_options", "cw.kappa must be a number, got 'abc'")``).
"""
from __future__ import annotations

import inspect
import math
from typing import Any, Dict, Optional, Tuple

from ..errors import ConfigError

#: settings with their own evaluation parameter (the rest are per-attack options, ``-A ATTACK.KEY=VALUE``)
COMMON = ("eps", "step_size", "steps", "norm", "restarts")
_KINDS = ("bool", "int", "float", "str")


def _kind(p: inspect.Parameter) -> Tuple[Optional[str], bool]:
    """(kind, None allowed) of one parameter; kind None = anything goes."""
    ann = p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", "")
    ann = str(ann or "")
    allow_none = "None" in ann or "Optional" in ann or (p.default is None)
    for kind in _KINDS:
        if kind in ann.replace("None", "").replace("Optional", ""):
            return kind, allow_none
    if p.default is not inspect.Parameter.empty and p.default is not None:
        name = type(p.default).__name__
        return (name if name in _KINDS else None), allow_none
    return None, allow_none


def option_parameters(cls: type) -> Dict[str, inspect.Parameter]:
    """name -> parameter of every keyword option ``cls(...)`` accepts (following ``**kw`` to the bases)."""
    opts: Dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        forwards = False
        for p in list(inspect.signature(init).parameters.values())[1:]:
            if p.kind is inspect.Parameter.VAR_KEYWORD:
                forwards = True
            elif p.kind is not inspect.Parameter.VAR_POSITIONAL:
                opts.setdefault(p.name, p)
        if not forwards:
            break
    return opts


def _where(attack: str, key: str) -> Tuple[str, str]:
    """(ConfigError parameter, how the message names the setting)."""
    return (key, f"({attack})") if key in COMMON else ("attack_options", f"{attack}.{key}")


def _check_value(attack: str, key: str, value: Any, p: inspect.Parameter) -> None:
    kind, allow_none = _kind(p)
    param, label = _where(attack, key)
    if value is None:
        if allow_none or kind is None:
            return
        raise ConfigError(param, f"{label} must be set (a {kind}), got None")
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(param, f"{label} must be true or false, got {value!r}")
    elif kind in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(param, f"{label} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(param, f"{label} must be a finite number, got {value!r}")
        if kind == "int" and int(value) != value:
            raise ConfigError(param, f"{label} must be an integer, got {value!r}")
    elif kind == "str" and not isinstance(value, str):
        raise ConfigError(param, f"{label} must be a string, got {value!r}")


def check_options(cls: type, args: tuple, kw: Dict[str, Any]) -> None:
    """Refuse unknown option names and values of the wrong kind for ``cls(*args, **kw)``.

    Raises:
        ConfigError: naming the attack (``cls.name``), the option and, for an unknown one, the valid options.
    """
    attack = getattr(cls, "name", cls.__name__)
    params = option_parameters(cls)
    unknown = sorted(k for k in kw if k not in params)
    if unknown:
        valid = ", ".join(sorted(params)) or "(none)"
        raise ConfigError("attack_options", f"{attack}: unknown option {unknown[0]!r}; valid options of "
                                            f"{attack}: {valid}")
    positional = [n for n, p in params.items() if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    values = dict(zip(positional, args))
    values.update(kw)
    for key, value in values.items():
        _check_value(attack, key, value, params[key])


def check_iterations(attack: str, key: str, value: int) -> None:
    """An iterative attack needs at least one iteration (``steps=0`` would be a random start labelled as PGD)."""
    param, label = _where(attack, key)
    if int(value) < 1:
        raise ConfigError(param, f"must be >= 1 for {attack} (an iterative attack), got {value}"
                          if param == key else f"{label} must be >= 1 (an iterative attack), got {value}")


__all__ = ["COMMON", "check_iterations", "check_options", "option_parameters"]
