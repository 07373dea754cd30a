"""Named evaluation protocols: every setting of a published evaluation, with its source.

``ucat eval --protocol NAME`` takes each flag's default from the protocol; flags a user sets
override it and are recorded in every result (``protocol`` and ``protocol_overrides``).
The settings and their file:line sources are documented in ``docs/protocols.md``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

from .registry import Registry


@dataclass(frozen=True)
class Protocol:
    """One published evaluation protocol. Sizes in 1/255 units.

    Fields that a dataset builder needs are ``classnames`` ("official": the names and prompts the
    official code encodes; "clip": CLIP's curated names) and ``interpolation`` ("bilinear" or
    "bicubic", for the resize of every dataset); the evaluator reads the rest.
    """

    name: str
    description: str
    datasets: Tuple[str, ...]
    attacks: Tuple[str, ...]
    eps: Tuple[float, ...]
    steps: int
    step_size: Optional[float]                 # 1/255 units; None = eps
    restarts: int = 1
    n_samples: Optional[int] = None            # per dataset; None = the whole split
    classnames: str = "official"               # "official" | "clip"
    templates: str = "paper"                   # "paper" | "ensemble"
    interpolation: str = "bilinear"            # "bilinear" | "bicubic"
    uncertainty_alpha: str = "official"        # how the uncertainty columns build alpha (see docs/protocols.md)
    attack_options: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    sources: Dict[str, str] = field(default_factory=dict)   # setting -> "repo file:line" or paper section


PROTOCOLS: Registry[Protocol] = Registry("protocol")
