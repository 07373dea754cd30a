"""Model selection on a held-out split of the *training* data (never a zero-shot test set).

The official UCAT code selected its checkpoint on DTD's test split (VivienLu/UCAT main.py); ucat
measures clean and PGD robust accuracy on a seeded share of the training data instead.
"""
from __future__ import annotations

from typing import Callable, Dict

import torch
import torch.nn as nn
from torch.utils.data import Subset

from ..data import make_loader
from ..device import DistInfo, autocast
from .config import TrainConfig
from .logs import reduce_sum


def validate(classifier: nn.Module, val_set, attack: Callable, cfg: TrainConfig, info: DistInfo,
             local_bs: int) -> Dict[str, float]:
    """Clean and robust accuracy on this rank's shard of the held-out split, summed over ranks.

    ``attack(classifier, images (B,3,H,W), labels (B,)) -> adversarial images``; the RNG stream of
    the training run is left untouched (forked and seeded with ``cfg.seed``)."""
    shard = Subset(val_set, list(range(info.rank, len(val_set), info.world_size)))
    loader = make_loader(shard, batch_size=max(1, 2 * local_bs), shuffle=False, num_workers=cfg.num_workers,
                         device=info.device)
    device = info.device
    was_training = classifier.training
    classifier.eval()
    clean = robust = n = 0.0
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(cfg.seed + 104729 + info.rank)
        for images, labels, _ in loader:
            if images.shape[0] == 0:
                continue
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            with autocast(device, cfg.precision):
                with torch.no_grad():
                    clean += float((classifier(images).argmax(-1) == labels).sum())
                x_adv = attack(classifier, images, labels)
                with torch.no_grad():
                    robust += float((classifier(x_adv).argmax(-1) == labels).sum())
            n += images.shape[0]
    classifier.train(was_training)
    clean, robust, n = reduce_sum([clean, robust, n], info, device)
    return {"clean_acc": clean / max(n, 1), "robust_acc": robust / max(n, 1), "n": int(n)}
