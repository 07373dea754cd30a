"""Deterministic subsampling and a DataLoader that survives unreadable images.

``make_loader`` yields ``(images, labels, n_skipped)``: images float32 (B,3,H,W) in [0,1], labels
int64 (B,), and how many items of that batch were unreadable (returned as ``None`` by the
dataset) and dropped. A batch whose items were all unreadable has B = 0 (images of shape
(0, 3, 0, 0)); skip it. :func:`collate_indexed` is the same collate for ``(image, label, index)``
items (the evaluator's sharded loaders). A cached dataset (:mod:`ucat.data.cache`) yields uint8
pixels; :func:`to_float_pixels` makes them the float32 that ``ToTensor`` makes, bit for bit, in the
collate, or on the device after the copy when ``make_loader`` is given a CUDA device.
"""
from __future__ import annotations

import os
import random
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..errors import ConfigError

_ATTRS = ("classes", "templates", "prompts", "name", "split", "multilabel")


class SubsetDataset(Dataset):
    """A subset that keeps the parent's ``.classes``, ``.templates``, ``.prompts`` and ``.targets``."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = [int(i) for i in indices]
        for a in _ATTRS:
            if hasattr(dataset, a):
                setattr(self, a, getattr(dataset, a))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        return self.dataset[self.indices[i]]

    @property
    def targets(self) -> List[int]:
        parent = dataset_targets(self.dataset)
        return [parent[i] for i in self.indices]


def dataset_targets(dataset: Dataset) -> List[int]:
    """Labels of every item: ``.targets`` where the dataset has it, else read item by item."""
    for attr in ("targets", "labels"):
        t = getattr(dataset, attr, None)
        if t is not None and not callable(t) and len(t) == len(dataset):
            return [int(v) for v in t]
    out = []
    for i in range(len(dataset)):
        item = dataset[i]
        if item is None:
            raise ValueError(f"dataset item {i} is unreadable and the dataset has no .targets, so a per-class "
                             f"subsample cannot know its label; use per_class=False")
        out.append(int(item[1]))
    return out


def subsample(dataset: Dataset, n: Optional[int], per_class: bool = False, seed: int = 0) -> Dataset:
    """A seeded random subset: ``n`` items in total, or ``n`` per class with ``per_class=True``.

    The same (dataset, n, per_class, seed) always gives the same items, in dataset order. ``n``
    None or at least the dataset size returns the dataset itself (total mode). Attributes
    (``.classes``, ``.templates``, ``.prompts``, ``.targets``) are kept.
    """
    if n is None:
        return dataset
    n = int(n)
    if n <= 0:
        raise ValueError(f"subsample size must be positive, got {n}; leave it out (None) to keep every item")
    g = torch.Generator().manual_seed(int(seed))
    if not per_class:
        if n >= len(dataset):
            return dataset
        idx = torch.randperm(len(dataset), generator=g)[:n].sort().values.tolist()
        return SubsetDataset(dataset, idx)
    targets = torch.tensor(dataset_targets(dataset), dtype=torch.long)          # (N,)
    chosen = []
    for c in torch.unique(targets).tolist():
        members = torch.nonzero(targets == c).flatten()                          # (N_c,)
        perm = torch.randperm(len(members), generator=g)[:n]
        chosen.append(members[perm])
    idx = torch.cat(chosen).sort().values.tolist() if chosen else []
    return SubsetDataset(dataset, idx)


# ``ToTensor``'s own float conversion (torchvision functional.py: ``img.to(float32).div(255)``), done once
# on the CPU for the 256 values: the table a device gathers from. A device's own ``x / 255`` may not be
# this (CUDA divides by a scalar as ``x * (1/255)``, which differs in 126 of the 256 values).
_PIXEL_VALUES = torch.arange(256, dtype=torch.uint8).to(torch.float32).div(255)
_PIXEL_TABLES = {}


def pixel_table(device: Union[torch.device, str] = "cpu") -> torch.Tensor:
    """float32 (256,): value v -> v / 255 exactly as ``ToTensor`` computes it, on ``device``."""
    device = torch.device(device)
    if device not in _PIXEL_TABLES:
        _PIXEL_TABLES[device] = _PIXEL_VALUES.to(device)
    return _PIXEL_TABLES[device]


def to_float_pixels(images: torch.Tensor, gather: Optional[bool] = None) -> torch.Tensor:
    """uint8 pixels (B, 3, H, W) -> float32 in [0,1], bit-identical to ``ToTensor``; float input -> float32.

    On the CPU the same operation as ``ToTensor``; on another device (or with ``gather=True``) a gather
    from :func:`pixel_table`."""
    if images.dtype != torch.uint8:
        return images.float()
    if not (images.device.type != "cpu" if gather is None else gather):
        return images.to(torch.float32).div_(255)       # the same division, in the new tensor
    table = pixel_table(images.device)
    return table.index_select(0, images.reshape(-1).to(torch.int32)).view(images.shape)


def _collate(batch, fields: int, keep_uint8: bool = False):
    """The one collate core: drop ``None`` (unreadable) items, stack the image (float32; uint8 pixels
    are converted unless ``keep_uint8``), make int64 tensors of the other ``fields - 1`` fields
    (label, index), and count the dropped items."""
    kept = [b for b in batch if b is not None]
    n_skipped = len(batch) - len(kept)
    if not kept:                                                                 # every item unreadable
        return (torch.empty(0, 3, 0, 0), *[torch.empty(0, dtype=torch.long) for _ in range(fields - 1)], n_skipped)
    bad = [b for b in kept if len(b) < fields]
    if bad:
        raise ValueError(f"collate: a dataset item has {len(bad[0])} fields, expected {fields} "
                         f"({'(image, label, index)' if fields == 3 else '(image, label)'})")
    images = torch.stack([torch.as_tensor(b[0]) for b in kept])                  # (B,3,H,W)
    images = images if keep_uint8 and images.dtype == torch.uint8 else to_float_pixels(images)
    rest = [_stack_field([b[k] for b in kept]) for k in range(1, fields)]                 # (B,) or (B, C) each
    return (images, *rest, n_skipped)


def _stack_field(values) -> torch.Tensor:
    """int64 (B,) of integer labels / indices, or (B, C) of multi-hot targets (multi-label datasets)."""
    if isinstance(values[0], torch.Tensor) and values[0].ndim >= 1:
        return torch.stack([v.long() for v in values])
    return torch.as_tensor([int(v) for v in values], dtype=torch.long)


def collate_skip_unreadable(batch):
    """``(images (B,3,H,W), labels (B,), n_skipped)`` from ``(image, label)`` items; ``None`` items
    (unreadable images) are dropped and counted."""
    return _collate(batch, 2)


def collate_indexed(batch):
    """``(images (B,3,H,W), labels (B,), index (B,), n_skipped)`` from ``(image, label, index)``
    items: :func:`collate_skip_unreadable` with each kept item's sample index."""
    return _collate(batch, 3)


def collate_uint8(batch):
    """:func:`collate_skip_unreadable`, leaving uint8 pixels (a cached dataset's) uint8 for the device."""
    return _collate(batch, 2, keep_uint8=True)


def yields_uint8(dataset) -> bool:
    """Whether ``dataset`` (or the dataset a Subset wraps) is a cache yielding uint8 pixels."""
    for _ in range(16):
        if dataset is None or getattr(dataset, "yields_uint8", False):
            return dataset is not None
        dataset = getattr(dataset, "dataset", None)
    return False


class DeviceLoader(DataLoader):
    """A DataLoader whose uint8 batches are copied to ``target_device`` and made float32 there
    (:func:`to_float_pixels`): a quarter of the bytes over the bus, no float work on the CPU."""

    def __init__(self, *args, target_device: Union[torch.device, str], **kw):
        self.target_device = torch.device(target_device)
        super().__init__(*args, **kw)

    def __iter__(self):
        for images, *rest in super().__iter__():
            yield (to_float_pixels(images.to(self.target_device, non_blocking=True)), *rest)


def _seed_worker(worker_id: int) -> None:
    s = torch.initial_seed() % 2 ** 32
    np.random.seed(s)
    random.seed(s)


MAX_AUTO_WORKERS = 16


def usable_cpus() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. under a job scheduler)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):     # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def resolve_num_workers(value: Union[int, str, None], device: Union[torch.device, str] = "cpu",
                        local_world_size: Optional[int] = None) -> int:
    """Loader worker processes for the ``num_workers`` setting (an integer >= 0, or ``"auto"``).

    ``auto``: none on a CPU device, where the model step already keeps every core busy and decoding
    one batch costs about 1% of a step; on CUDA, the usable cores shared among this node's processes
    (``local_world_size``, default torchrun's ``LOCAL_WORLD_SIZE``), less one for the process
    itself, at most 16 per process. One core decodes and resizes about 140 ImageNet-sized JPEGs
    (or 350 TinyImageNet images) per second to 224 px, while a ViT-B-32 UCAT step on one H200
    consumes about 2,400 images/s (benchmarks/bench_loader.py, docs/performance.md).
    """
    if value is None or str(value).strip().lower() == "auto":
        if torch.device(device).type != "cuda":
            return 0
        if local_world_size is None:
            local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
        return max(1, min(MAX_AUTO_WORKERS, usable_cpus() // max(1, int(local_world_size)) - 1))
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = -1
    if n < 0 or str(value).strip() not in (str(n), f"+{n}"):
        raise ConfigError("num_workers", f"{value!r}: give 'auto' or a whole number >= 0 (0 = load in the main process)")
    return n


def num_workers_setting(value: Union[int, str, None]) -> Union[int, str]:
    """A validated ``num_workers`` setting as configs keep it: ``"auto"`` or an integer >= 0."""
    n = resolve_num_workers(value)                     # refuses anything but 'auto' or an integer >= 0
    return "auto" if value is None or str(value).strip().lower() == "auto" else n


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool = False, num_workers: Union[int, str] = 0,
                sampler: Optional[Sampler] = None, seed: int = 0, drop_last: bool = False,
                pin_memory: Optional[bool] = None, persistent_workers: bool = False,
                device: Optional[Union[torch.device, str]] = None) -> DataLoader:
    """A DataLoader over any ucat dataset yielding ``(images, labels, n_skipped)`` batches.

    Shuffling is seeded (``seed``); with a ``sampler`` (e.g. DistributedSampler) leave
    ``shuffle`` False. Worker processes are seeded from the loader's generator.
    ``device``: where the batches go; it resolves ``num_workers="auto"`` (:func:`resolve_num_workers`)
    and, unless ``pin_memory`` is given, pins batches for CUDA.
    ``persistent_workers`` keeps the workers alive between epochs (training).
    A cached dataset's uint8 batches go to a CUDA ``device`` as uint8 and become float there
    (:class:`DeviceLoader`); elsewhere the collate converts them. Either way the floats are ``ToTensor``'s.
    """
    if batch_size < 1:
        raise ConfigError("batch_size", f"must be >= 1, got {batch_size}")
    if device is None and isinstance(num_workers, str) and num_workers.strip().lower() == "auto":
        raise ValueError("make_loader needs device= to resolve 'auto' (or resolve it with "
                         "resolve_num_workers('auto', device) first)")
    on_cuda = device is not None and torch.device(device).type == "cuda"
    num_workers = resolve_num_workers(num_workers, device if device is not None else "cpu")
    pin_memory = on_cuda if pin_memory is None else bool(pin_memory)
    if sampler is not None and shuffle:
        raise ValueError("give either shuffle=True or a sampler (which does its own shuffling), not both")
    g = torch.Generator().manual_seed(int(seed))
    on_device = on_cuda and yields_uint8(dataset)
    kw = dict(batch_size=batch_size, shuffle=shuffle, sampler=sampler, num_workers=num_workers,
              collate_fn=collate_uint8 if on_device else collate_skip_unreadable, drop_last=drop_last,
              pin_memory=pin_memory, generator=g, worker_init_fn=_seed_worker if num_workers > 0 else None,
              persistent_workers=bool(persistent_workers and num_workers > 0))
    return DeviceLoader(dataset, target_device=device, **kw) if on_device else DataLoader(dataset, **kw)
