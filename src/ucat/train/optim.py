"""What is trained and how: the parameters, the optimizer, the learning-rate schedule, the scaler."""
from __future__ import annotations

import math
from typing import List

import torch
import torch.nn as nn

from ..errors import ConfigError
from .config import TrainConfig


def trainable_parameters(visual: nn.Module, last_n_blocks: int = 0) -> List[nn.Parameter]:
    """The image-tower parameters to train: all, or the last N transformer blocks + ln_post/proj."""
    if last_n_blocks <= 0:
        return [p for p in visual.parameters()]
    blocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
    if blocks is None:
        raise ConfigError("last_n_blocks", "needs a ViT image tower (visual.transformer.resblocks); "
                                           "use 0 to train the whole tower")
    if last_n_blocks > len(blocks):
        raise ConfigError("last_n_blocks", f"{last_n_blocks}: the image tower has only {len(blocks)} blocks")
    params: List[nn.Parameter] = []
    for blk in list(blocks)[-last_n_blocks:]:
        params += list(blk.parameters())
    for name in ("ln_post", "proj"):
        obj = getattr(visual, name, None)
        if isinstance(obj, nn.Parameter):
            params.append(obj)
        elif isinstance(obj, nn.Module):
            params += list(obj.parameters())
    return params


def lr_multiplier(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Official UCAT/TGA-ZSR schedule (utils.py cosine_lr): lr*(step+1)/warmup during warm-up, then
    0.5*(1+cos(pi*e/E))*lr with e the step after warm-up and E the remaining steps."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    e, es = step - warmup_steps, max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(e, es) / es))


def make_optimizer(cfg: TrainConfig, params: List[nn.Parameter]) -> torch.optim.Optimizer:
    """SGD (momentum) or AdamW over ``params``, with torch's fused kernels where this torch has them.

    The fused implementations update every tensor in one kernel per device. On a 2-core CPU they took
    a ViT-B-32 image tower's SGD step from 0.10 s to 0.06 s and AdamW's from 0.5 s to 0.12 s
    (benchmarks/bench_optimizer.py, docs/performance.md); older torch versions, or parameters on other
    devices, get the default.
    """
    if cfg.optimizer == "sgd":
        make = lambda **kw: torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,  # noqa: E731
                                            weight_decay=cfg.weight_decay, **kw)
    else:
        make = lambda **kw: torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **kw)  # noqa: E731
    if all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params):
        try:
            return make(fused=True)
        except (RuntimeError, TypeError, ValueError):     # this torch has no fused kernel for it
            pass
    return make()


def make_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer, total_steps: int):
    """The per-step schedule of :func:`lr_multiplier` as a ``LambdaLR``."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_multiplier(s, total_steps, cfg.warmup_steps, cfg.schedule))


def make_scaler(cfg: TrainConfig, device: torch.device) -> torch.amp.GradScaler:
    """fp16 loss scaling (a no-op scaler for fp32/bf16)."""
    return torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
