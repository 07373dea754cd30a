"""Perturbation-size units, converted once at the configuration boundary.

Perturbation sizes and step sizes are given in **1/255 pixel units** on the command line, in
YAML and in every config dataclass (``--eps 1`` means 1/255 of the [0,1] pixel range); the
attacks take fractions of the range, converted with :func:`to_fraction` where an attack is
built. Every output states the unit (``EPS_UNIT``).
"""
from __future__ import annotations

import math

EPS_UNIT = "1/255"


def parse_eps(value: str | float | int, name: str = "eps", upper: float | None = 64.0,
              refuse_fractions: bool = True) -> float:
    """Parse a perturbation size given in 1/255 units; returns the number of 1/255 steps.

    Accepts ``1``, ``0.5``, ``"4/255"`` (explicit unit). A value such as ``0.0039`` looks like a
    fraction of the pixel range and is refused with the conversion, since silently reading it as
    0.0039/255 would make the attack ~255x weaker than meant. ``upper`` bounds L-inf sizes (None
    for L2 radii, which may exceed 64/255); ``refuse_fractions=False`` skips the fraction check.
    ``name`` is the parameter's name as the caller's user knows it (a flag, a YAML key).
    """
    text = str(value).strip()
    if text.endswith("/255"):
        text = text[: -len("/255")]
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"{name} {value!r} is not a number; give it in 1/255 units, e.g. {name} 1 (= 1/255)") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} {value!r} is not a finite number; give a size >= 0 in 1/255 units, e.g. {name} 1")
    if v < 0:
        raise ValueError(f"{name} {value!r} is negative; give a size >= 0 in 1/255 units")
    if refuse_fractions and 0 < v < 0.1:
        raise ValueError(
            f"{name} {value!r} looks like a fraction of the [0,1] pixel range, but ucat takes 1/255 units: "
            f"{v:g} of the range is {name} {v * 255:.4g} (i.e. {v * 255:.4g}/255)"
        )
    if upper is not None and v > upper:
        raise ValueError(f"{name} {value!r} is over {upper:g}/255; ucat takes 1/255 units, e.g. {name} 4 for 4/255")
    return v


def to_fraction(v_255: float) -> float:
    """1/255 units -> fraction of the [0,1] pixel range."""
    return float(v_255) / 255.0


def fmt_eps(v_255: float) -> str:
    return f"{v_255:g}/255"
