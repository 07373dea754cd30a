"""The trainer: one loop for every method, on CPU, one GPU, or many through ``torchrun``.

The loop follows the official UCAT/TGA-ZSR training step (VivienLu/UCAT main.py) with these fixes:
the training attack never leaks gradients into the optimizer step (``ucat.attacks`` takes input
gradients only), the Dirichlet math is float64 inside, model selection uses a held-out split of the
*training* data, never a zero-shot test set.

Exact resume: the data order is a pure function of (seed, epoch) (a ``DistributedSampler``
permutation), a checkpoint stores the position inside the epoch, the optimizer, scheduler,
GradScaler and every rank's RNG states (safetensors + JSON, no pickle), and DataLoader iterators
are created outside the global RNG stream. On CPU a run killed after k steps and resumed from its
last checkpoint ends with weights bit-identical to an uninterrupted run (tested).

:func:`train` orchestrates: check the config, prepare the run folder (resume point, stale
temporary folders, an earlier run's checkpoints), set up model, data, method and optimizer, restore
a checkpoint, run the loop (:mod:`ucat.train.loop`), export.
"""
from __future__ import annotations

import copy
import hashlib
import inspect
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from ..attacks import create_attack
from ..data import make_loader
from ..device import (DistInfo, all_gather_object, barrier, check_precision, cleanup_distributed,
                      init_distributed, seed_everything)
from ..errors import ConfigError
from ..io import save_json, save_run_config, to_jsonable
from ..methods import create_method
from ..models import ZeroShotClassifier, load_clip
from ..models.checkpoint import export_open_clip
from ..units import EPS_UNIT, fmt_eps, to_fraction
from .checkpoints import clean_stale_tmp, list_checkpoints, load_state, resolve_resume, set_aside
from .config import TrainConfig, resolve_precision
from .data import ResumableSampler, build_training_data, data_fingerprint
from .guards import check_exportable, named_trainable
from .logs import LOG_FILE, VAL_FILE, read_csv, say, tensorboard
from .loop import Callback, NoUsableData, Run, open_logs, run_epochs
from .optim import make_optimizer, make_scaler, make_scheduler, trainable_parameters
from .resume import check_settings, restore


@dataclass
class TrainResult:
    out_dir: Path                               # the run directory
    checkpoint: Optional[Path]                  # the last checkpoint directory (weights + state)
    export: Optional[Path]                      # the selected model (open_clip safetensors)
    history: List[Dict[str, Any]] = field(default_factory=list)     # train_log.csv rows
    validation: List[Dict[str, Any]] = field(default_factory=list)  # val_log.csv rows
    final: Optional[Path] = None                # the last model (open_clip safetensors)
    best: Optional[Path] = None                 # the best-on-validation model, when selected
    steps: int = 0


def make_attacks(cfg: TrainConfig) -> Tuple[Callable, Callable]:
    """(training attack, validation attack): the one place eps and step size become fractions."""
    eps, step_size = to_fraction(cfg.eps), to_fraction(cfg.attack_step_size)
    return (create_attack(cfg.attack, eps=eps, step_size=step_size, steps=cfg.attack_steps),
            create_attack(cfg.attack, eps=eps, step_size=step_size, steps=cfg.val_attack_steps))


def train(cfg: TrainConfig, callbacks: Sequence[Callback] = ()) -> TrainResult:
    """Fine-tune CLIP's image encoder with ``cfg.method``; see :class:`TrainConfig`.

    Under ``torchrun`` the method module (whose only trainable parameters are the image encoder's)
    is wrapped in DistributedDataParallel; rank 0 logs, checkpoints and exports.

    Args:
        callbacks: each is called as ``callback(step, state)`` after every optimizer step, once
            that step's log row and any due checkpoint are written (``state``: a
            :class:`ucat.train.loop.TrainState`). An exception raised by a callback stops the run
            there and propagates (no further checkpoint, no export), as if the process were killed.
    Raises:
        KeyError: unknown method or attack (with the known names).
        ConfigError / ValueError / FileNotFoundError: bad configuration or data, with the fix.
        UnsafeFileError / CorruptFileError: a checkpoint to resume from that is a pickle or damaged.
        TrainingDiverged: a non-finite loss, gradient or weight (the last intact checkpoint is named).
    """
    cfg = copy.deepcopy(cfg)
    cfg.validate()                  # includes the method and its options: before any model is loaded
    info = init_distributed(cfg.device)
    try:
        cfg.precision = resolve_precision(cfg.precision, info.device.type)   # recorded resolved
        check_precision(cfg.precision, info.device)
        if cfg.batch_size % info.world_size:
            raise ConfigError("batch_size", f"{cfg.batch_size} is the global batch and must be divisible by "
                                            f"the {info.world_size} processes")
        resume_from, state = _prepare_out(cfg, info)
        run = _setup(cfg, info, callbacks)
        if resume_from is not None:
            restore(run, state, resume_from)
        else:
            seed_everything(cfg.seed + info.rank)   # per-rank attack noise; identical set-up above
        _start(run, resume_from is not None)
        try:
            run_epochs(run)
        finally:
            run.logs["bar"].close()
            if run.logs.get("tb") is not None:
                run.logs["tb"].close()
        return _finish(run)
    finally:
        cleanup_distributed(info)


def _prepare_out(cfg: TrainConfig, info: DistInfo) -> Tuple[Optional[Path], Optional[Dict[str, Any]]]:
    """(checkpoint to resume from, its state): checked against ``cfg`` before any model is loaded.
    Also removes stale temporary checkpoint folders and sets an earlier run's checkpoints aside."""
    out_dir = Path(cfg.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError("out", f"{out_dir} is a file; give a folder for the run")
    if info.is_main:
        for p in clean_stale_tmp(out_dir):
            say(info, f"ucat train: removed {p}, left by an interrupted checkpoint write")
    barrier(info)
    resume_from = resolve_resume(cfg.resume, out_dir, lambda m: say(info, m))
    state = None
    if resume_from is not None:
        state = load_state(resume_from)
        check_settings(state, cfg, resume_from)
    elif list_checkpoints(out_dir):
        # A new run never mixes its checkpoints with an earlier run's: those are set aside (one
        # generation is kept), so `resume auto` can only find this run's own.
        barrier(info)
        if info.is_main:
            previous = set_aside(out_dir)
            say(info, f"ucat train: {out_dir} held checkpoints of an earlier run; moved them to {previous} "
                      f"(to continue that run instead, resume it)")
        barrier(info)
    return resume_from, state


def _ddp(method: nn.Module, info: DistInfo) -> nn.Module:
    if not info.distributed:
        return method
    # The buffers (text head, pixel mean/std) are identical on every rank: no per-forward sync.
    # torch >= 2.14 names this forward_sync_buffers (broadcast_buffers is deprecated there).
    no_sync = ({"forward_sync_buffers": False}
               if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
               else {"broadcast_buffers": False})
    device = info.device
    return DistributedDataParallel(method, device_ids=[device.index] if device.type == "cuda" else None, **no_sync)


def _setup(cfg: TrainConfig, info: DistInfo, callbacks: Sequence[Callback]) -> Run:
    """Model, frozen reference, data, text head, method, optimizer, schedule. Seeded first so that
    random initializations agree on every rank."""
    device, local_bs = info.device, cfg.batch_size // info.world_size
    seed_everything(cfg.seed)
    bundle = load_clip(cfg.model, cfg.pretrained, device=device)
    for p in bundle.model.parameters():            # text tower, logit scale: frozen
        p.requires_grad_(False)
    reference = copy.deepcopy(bundle.encoder)       # the original image encoder, never updated
    train_full, train_set, val_set = build_training_data(cfg, bundle.image_size)
    classifier = ZeroShotClassifier.from_dataset(bundle, train_full, templates=cfg.templates or None)
    params = trainable_parameters(bundle.model.visual, cfg.last_n_blocks)
    for p in params:
        p.requires_grad_(True)
    attack, val_attack = make_attacks(cfg)
    method = create_method(cfg.method, classifier, reference, attack, **cfg.method_options).bind(bundle)
    method.world_size = info.world_size     # for batch-summed loss terms (see Method.world_size)
    method.to(device).train()
    sampler = ResumableSampler(train_set, info.world_size, info.rank, cfg.seed)
    loader = make_loader(train_set, batch_size=local_bs, sampler=sampler, num_workers=cfg.num_workers,
                         seed=cfg.seed, device=device, persistent_workers=True)
    steps_per_epoch = math.ceil(sampler.full_len() / local_bs)
    total_steps = cfg.epochs * steps_per_epoch if cfg.max_steps is None else \
        min(cfg.epochs * steps_per_epoch, cfg.max_steps)
    optimizer = make_optimizer(cfg, params)
    meta = {"method": cfg.method, "method_options": method.options(), "arch": cfg.model,
            "pretrained": cfg.pretrained, "data": cfg.data, "eps": cfg.eps, "eps_unit": EPS_UNIT,
            "attack": cfg.attack, "attack_steps": cfg.attack_steps, "attack_step_size": cfg.attack_step_size,
            "seed": cfg.seed,
            "data_fingerprint": data_fingerprint(train_set, list(classifier.classnames or []))}
    return Run(cfg=cfg, info=info, out_dir=Path(cfg.out), local_bs=local_bs, bundle=bundle, method=method,
               model=_ddp(method, info), named=named_trainable(bundle.model.visual, params),
               optimizer=optimizer, scheduler=make_scheduler(cfg, optimizer, total_steps),
               scaler=make_scaler(cfg, device), sampler=sampler, loader=loader, val_set=val_set,
               val_attack=val_attack if val_set is not None else None, steps_per_epoch=steps_per_epoch,
               total_steps=total_steps, meta=meta, callbacks=tuple(callbacks))


def _start(run: Run, resumed: bool) -> None:
    """The run folder's config record, the logs, and the one-line summary of what runs."""
    cfg, info = run.cfg, run.info
    if info.is_main:
        run.out_dir.mkdir(parents=True, exist_ok=True)
        save_run_config(run.out_dir, {**to_jsonable(cfg), "resolved_method_options": run.method.options(),
                                      "world_size": info.world_size, "local_batch_size": run.local_bs,
                                      "steps_per_epoch": run.steps_per_epoch, "total_steps": run.total_steps,
                                      "trainable_parameters": sum(p.numel() for _, p in run.named)})
    bar = lambda **kw: tqdm(disable=not (info.is_main and cfg.progress), dynamic_ncols=True,  # noqa: E731
                            desc=f"train {cfg.method}", file=sys.stderr, **kw)
    open_logs(run, resumed, bar, tensorboard(run.out_dir, info.is_main))
    n_val = len(run.val_set) if run.val_set is not None else 0
    say(info, f"ucat train: {cfg.method} {run.method.options()} | {cfg.model} ({cfg.pretrained or 'default weights'}) "
              f"| {cfg.data}: {len(run.sampler.dataset)} train / {n_val} held-out, "
              f"{run.method.classifier.num_classes} classes | attack {cfg.attack} eps {fmt_eps(cfg.eps)} x "
              f"{cfg.attack_steps} steps of {fmt_eps(cfg.attack_step_size)} | {run.total_steps} steps on "
              f"{info.world_size} x {info.device} ({cfg.precision}) -> {run.out_dir}")
    run.t0 = time.time()


def weights_digest(visual: nn.Module) -> str:
    """SHA-256 over the image tower's state dict (ranks compare it at the end)."""
    h = hashlib.sha256()
    for k, v in sorted(visual.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _finish(run: Run) -> TrainResult:
    """Compare the ranks' weights, export the final model (finite, trained), write summary.json."""
    cfg, info, out_dir = run.cfg, run.info, run.out_dir
    result = TrainResult(out_dir=out_dir, checkpoint=run.last_checkpoint, export=None, steps=run.step)
    if run.step == 0:
        raise NoUsableData(f"data {cfg.data}: no optimizer step was taken; nothing was exported")
    digests = all_gather_object(weights_digest(run.bundle.model.visual), info)
    if len(set(digests)) != 1:
        raise RuntimeError(f"ranks ended with different weights ({digests}); this is a bug, please report it")
    if info.is_main:
        check_exportable(run.bundle.model, out_dir / "final.safetensors")
        result.final = export_open_clip(run.bundle.model, out_dir / "final.safetensors",
                                        {**run.meta, "step": run.step})
        if run.best is not None and (out_dir / "best.safetensors").is_file():
            result.best = out_dir / "best.safetensors"
        result.export = result.best if (cfg.select == "best" and result.best is not None) else result.final
        result.history = read_csv(out_dir / LOG_FILE)
        result.validation = read_csv(out_dir / VAL_FILE)
        save_json(out_dir / "summary.json", {
            "method": cfg.method, "method_options": run.method.options(), "arch": cfg.model, "steps": run.step,
            "export": result.export, "final": result.final, "best": result.best, "best_validation": run.best,
            "select": cfg.select, "last_checkpoint": run.last_checkpoint, "world_size": info.world_size,
            "rank_weight_digests": digests, "eps": cfg.eps, "eps_unit": EPS_UNIT,
            "elapsed_s": round(time.time() - run.t0, 3)})
        say(info, f"ucat train: done, {run.step} steps; model -> {result.export}")
    barrier(info)
    return result
