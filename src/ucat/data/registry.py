"""Dataset registry: one name -> one builder; named collections such as ``zs16``.

Every builder has the signature ``builder(root, split, transform, **kwargs) -> Dataset`` and
returns a ``torch.utils.data.Dataset`` of ``(image_tensor, label)`` pairs that carries
``.classes`` (human-readable class names, index = label) and ``.templates`` (prompt templates
with ``{}``), and optionally ``.prompts`` (explicit per-class prompt lists, which win over
templates, e.g. PCAM's two fixed sentences).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from ..registry import Registry


@dataclass
class DatasetInfo:
    """How to build one dataset and how to explain it to a user who lacks it."""

    name: str
    builder: Callable                  # builder(root, split, transform, **kw) -> Dataset
    num_classes: Optional[int] = None  # None when it depends on the data (folders, CSV)
    layout: str = ""                   # the directory layout expected under the root
    how_to_get: str = ""               # where to download / how to prepare
    default_split: str = "test"        # the paper's protocol split
    splits: Sequence[str] = ("test",)
    needs_root: bool = True            # False for generated datasets (the procedural world)
    extra: Dict = field(default_factory=dict)


DATASETS: Registry[DatasetInfo] = Registry("dataset")
COLLECTIONS: Dict[str, List[str]] = {}


def register_dataset(name: str, **info) -> Callable:
    """Decorator: ``@register_dataset("cifar10", num_classes=10, layout=..., how_to_get=...)``."""

    def deco(builder: Callable) -> Callable:
        DATASETS.register(name, DatasetInfo(name=name, builder=builder, **info))
        return builder

    return deco


def register_collection(name: str, members: Sequence[str]) -> None:
    COLLECTIONS[name] = list(members)
