"""Training data: the set, its held-out split, and an order that can resume mid-epoch.

The order is a pure function of (seed, epoch): a ``DistributedSampler`` permutation (one process or
many), which :class:`ResumableSampler` can start part-way through for exact resume.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch.utils.data import DistributedSampler, Subset

from ..data import DATASETS, build_dataset, expand_datasets, subsample
from ..data.cache import cached_dataset
from ..errors import ConfigError
from .config import TrainConfig


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` whose order is a function of (seed, epoch) and which can start
    part-way through an epoch (``set_skip``), for exact mid-epoch resume."""

    def __init__(self, dataset, num_replicas: int, rank: int, seed: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self.skip = 0

    def set_skip(self, n_samples: int) -> None:
        self.skip = max(0, int(n_samples))

    def full_len(self) -> int:
        return super().__len__()

    def __iter__(self):
        return iter(list(super().__iter__())[self.skip:])

    def __len__(self) -> int:
        return max(0, super().__len__() - self.skip)


def held_out_split(n: int, fraction: float, seed: int) -> Tuple[List[int], List[int]]:
    """(train indices, validation indices) of a seeded random split of ``n`` samples."""
    g = torch.Generator().manual_seed(int(seed) + 7919)
    perm = torch.randperm(n, generator=g).tolist()
    n_val = max(1, int(round(n * fraction))) if fraction > 0 else 0
    if n_val >= n:
        raise ConfigError("val_fraction", f"{fraction} leaves no training data out of {n} samples")
    return sorted(perm[n_val:]), sorted(perm[:n_val])


def default_split(name: str) -> Optional[str]:
    """``train`` for registered datasets that have it (build_dataset defaults to the test split)."""
    expand_datasets([])   # makes sure every dataset module has registered its datasets
    if name in DATASETS:
        info = DATASETS.get(name)
        return "train" if "train" in info.splits else info.default_split
    return None


def build_training_data(cfg: TrainConfig, image_size: int):
    """(the whole training set, the part trained on, the held-out part or None)."""
    split = cfg.split if cfg.split is not None else default_split(cfg.data)
    full = build_dataset(cfg.data, root=cfg.data_root, split=split, image_size=image_size)
    full = cached_dataset(full, cfg.data_cache)                 # the same items, from the uint8 cache when given
    if cfg.n_samples is not None and cfg.n_samples < len(full):
        full = subsample(full, cfg.n_samples, seed=cfg.seed)
    if len(full) == 0:
        raise ConfigError("data", f"{cfg.data}: the training set is empty")
    if cfg.val_fraction > 0:
        tr_idx, va_idx = held_out_split(len(full), cfg.val_fraction, cfg.seed)
        return full, Subset(full, tr_idx), Subset(full, va_idx)
    return full, full, None


def data_fingerprint(train_set, classnames: List[str]) -> Dict[str, Any]:
    """What resume compares besides the settings: the training set's size and its classes."""
    digest = hashlib.sha256("\n".join(classnames).encode("utf-8")).hexdigest()[:16]
    return {"n_train": len(train_set), "n_classes": len(classnames), "classes_sha256": digest}


def same_data_spec(a: Any, b: Any) -> bool:
    """Whether two ``data`` settings name the same data (paths compared resolved)."""
    if a == b:
        return True
    try:
        pa, pb = Path(str(a)).expanduser(), Path(str(b)).expanduser()
        return pa.exists() and pb.exists() and pa.resolve() == pb.resolve()
    except OSError:
        return False
