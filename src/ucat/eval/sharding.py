"""How one evaluation pass is split over processes and put back together.

The batches of a dataset are fixed by the dataset order and the batch size, dealt round-robin to
the ranks (:func:`rank_batches`), every batch's attack is seeded from (seed, model, dataset,
attack, eps, batch id) (:func:`batch_seed`), and rank 0 merges the per-sample logits by sample
index (:func:`merge`), so a ``torchrun`` run's metrics equal a single process's exactly.
The process group has one owner, :func:`process_group`.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist

from ..data import collate_indexed
from ..device import DistInfo, all_gather_object, cleanup_distributed, init_distributed

Batch = Tuple[int, List[int]]          # (global batch id, sample indices)


@dataclass
class PassLogits:
    """The logits of one pass (clean or adversarial) over a dataset, or this rank's share of it.

    ``index`` (N,) sample indices in increasing order after :func:`merge`; ``labels`` (N,);
    ``logits`` (N, C) float32; ``n_skipped`` unreadable images; ``notes`` the attack's notes.
    """

    index: torch.Tensor
    labels: torch.Tensor
    logits: torch.Tensor
    n_skipped: int = 0
    notes: List[str] = field(default_factory=list)

    @classmethod
    def concat(cls, parts: Sequence["PassLogits"], num_classes: int) -> "PassLogits":
        """Parts in order, one pass; an empty list gives an empty (0, C) pass."""
        notes: List[str] = []
        for p in parts:
            notes.extend(n for n in p.notes if n not in notes)
        if not parts:
            return cls(torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long),
                       torch.empty(0, num_classes), 0, notes)
        return cls(torch.cat([p.index for p in parts]), torch.cat([p.labels for p in parts]),
                   torch.cat([p.logits for p in parts]), sum(p.n_skipped for p in parts), notes)


class _Indexed(torch.utils.data.Dataset):
    """Items ``(image, label, index)``, or None for an unreadable image."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        item = self.dataset[i]
        if item is None:
            return None
        label = item[1] if isinstance(item[1], torch.Tensor) and item[1].ndim >= 1 else int(item[1])   # multi-hot or int
        return item[0], label, i


def rank_batches(n: int, batch_size: int, info: DistInfo) -> List[Batch]:
    """(global batch id, sample indices) of this rank: batches fixed by order, dealt round-robin."""
    batches = [(b, list(range(s, min(s + batch_size, n)))) for b, s in enumerate(range(0, n, batch_size))]
    return [bt for bt in batches if bt[0] % info.world_size == info.rank]


def loader(dataset, batches: List[Batch], num_workers: int = 0, pin_memory: bool = False):
    """A DataLoader over exactly ``batches``, yielding ``(images, labels, index, n_skipped)``
    (:func:`ucat.data.collate_indexed`: an all-unreadable batch has images of shape (0, 3, 0, 0))."""
    return torch.utils.data.DataLoader(_Indexed(dataset), batch_sampler=[idx for _, idx in batches],
                                       collate_fn=collate_indexed, num_workers=num_workers, pin_memory=pin_memory)


def batch_seed(*parts: Any) -> int:
    """A 60-bit seed from the parts' string forms (the same on every rank and every run)."""
    h = hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()
    return int(h[:15], 16)


def merge(part: PassLogits, info: DistInfo) -> Optional[PassLogits]:
    """Every rank's part merged by sample index on rank 0 (None on the other ranks)."""
    parts = all_gather_object(part, info)
    if not info.is_main:
        return None
    whole = PassLogits.concat(parts, part.logits.shape[1])
    order = torch.argsort(whole.index)
    return PassLogits(whole.index[order], whole.labels[order], whole.logits[order], whole.n_skipped, whole.notes)


def agreed(obj: Any, info: DistInfo) -> Any:
    """Rank 0's value of ``obj`` on every rank (decisions must not diverge)."""
    return all_gather_object(obj, info)[0]


@contextlib.contextmanager
def process_group(device: str = "auto") -> Iterator[DistInfo]:
    """The process group of one evaluation: built on entry (under ``torchrun``), torn down on exit.

    Re-entrant: when a group already exists (a caller owns it), it is used and left alone.
    """
    owner = not dist.is_initialized()
    info = init_distributed(device)
    try:
        yield info
    finally:
        if owner:
            cleanup_distributed(info)
