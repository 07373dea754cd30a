"""The step loop and the epoch loop, over a set-up :class:`Run` (built by :mod:`ucat.train.trainer`).

One optimizer step (:func:`train_step`) follows the official UCAT/TGA-ZSR training step (VivienLu/UCAT
main.py, train loop): the method's loss on a batch (its training attack inside), backward, optional
clipping, the optimizer and scheduler steps. Before a step counts, its loss, gradients and updated
weights are checked (:mod:`ucat.train.guards`); after it, the step's log row and any due checkpoint
are written and the callbacks run.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..device import DistInfo, all_gather_object, autocast, barrier, rng_state
from ..errors import UcatError
from ..io import to_jsonable
from ..models.checkpoint import export_open_clip
from .checkpoints import save_checkpoint
from .config import TrainConfig
from .guards import check_exportable, diverged, first_nonfinite_grad, first_nonfinite_weight, loss_is_finite
from .logs import LOG_FILE, VAL_FILE, CsvLog, StepStats, reduce_sum, say, scalar_parts
from .validation import validate


class NoUsableData(UcatError, ValueError):
    """An epoch of the training data held no readable image: nothing to train on."""


@dataclass
class TrainState:
    """What a callback of :func:`ucat.train.train` sees after each optimizer step."""

    step: int                                   # optimizer steps done (1 after the first)
    epoch: int                                  # the epoch of this step (0-based)
    batch_in_epoch: int                         # batches of this epoch consumed so far
    total_steps: int                            # the planned number of steps
    parts: Dict[str, float]                     # this step's loss terms (this rank's values)
    lr: float                                   # the learning rate this step used
    last_checkpoint: Optional[Path]             # the newest checkpoint written (None before the first)
    out_dir: Path


Callback = Callable[[int, TrainState], Any]


@dataclass
class Run:
    """Everything the loop works on; built once by the trainer's set-up."""

    cfg: TrainConfig
    info: DistInfo
    out_dir: Path
    local_bs: int
    bundle: Any                                 # ucat.models.ClipBundle
    method: nn.Module                           # the method module (its classifier holds the trained tower)
    model: nn.Module                            # the method, or the method under DistributedDataParallel
    named: List[Tuple[str, nn.Parameter]]       # the trained parameters by name
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    sampler: Any
    loader: Any
    val_set: Any
    val_attack: Optional[Callable]
    steps_per_epoch: int
    total_steps: int
    meta: Dict[str, Any]
    callbacks: Sequence[Callback] = ()
    step: int = 0
    start_epoch: int = 0
    start_batch: int = 0
    best: Optional[Dict[str, Any]] = None
    last_checkpoint: Optional[Path] = None
    logs: Dict[str, Any] = field(default_factory=dict)   # train/val CsvLog, tensorboard, progress bar
    t0: float = field(default_factory=time.time)

    @property
    def device(self) -> torch.device:
        return self.info.device


def state_dict(run: Run, epoch: int, batch_in_epoch: int) -> Dict[str, Any]:
    """The resumable training state (collective: gathers every rank's RNG states)."""
    cfg = run.cfg
    return {"step": run.step, "epoch": epoch, "batch_in_epoch": batch_in_epoch,
            "optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
            "scaler": run.scaler.state_dict(), "rng": all_gather_object(rng_state(), run.info), "best": run.best,
            "data_order": {"seed": cfg.seed, "world_size": run.info.world_size, "local_batch": run.local_bs,
                           "sampler": "DistributedSampler(shuffle, seed + epoch)"},
            "data": run.meta.get("data_fingerprint"), "config": to_jsonable(cfg)}


def checkpoint(run: Run, epoch: int, batch_in_epoch: int) -> None:
    state = state_dict(run, epoch, batch_in_epoch)        # collective (RNG gather): every rank
    if run.info.is_main:
        run.last_checkpoint = save_checkpoint(run.out_dir, run.step, run.bundle.encoder, state, run.meta,
                                              run.cfg.keep_checkpoints)
    barrier(run.info)


def train_step(run: Run, images: torch.Tensor, labels: torch.Tensor, epoch: int) -> Tuple[Dict[str, Any], float]:
    """One optimizer step on (B,3,H,W) images and (B,) labels; returns (the method's output, lr).

    Raises :class:`ucat.train.guards.TrainingDiverged` (nothing of the step applied to disk) when the
    loss, a gradient (without fp16 loss scaling, which skips such steps itself) or an updated weight
    is non-finite."""
    cfg, opt, scaler = run.cfg, run.optimizer, run.scaler
    opt.zero_grad(set_to_none=True)
    with autocast(run.device, cfg.precision):
        out = run.model(images, labels)
    loss, number = out["loss"], run.step + 1
    if not loss_is_finite(loss, run.info, run.device):
        raise diverged(number, epoch, "loss", scalar_parts(out), run.out_dir)
    scaler.scale(loss).backward()
    if cfg.grad_clip is not None:
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_([p for _, p in run.named], cfg.grad_clip)
    if not scaler.is_enabled():
        bad = first_nonfinite_grad(run.named)
        if bad is not None:
            raise diverged(number, epoch, f"gradient of {bad}", scalar_parts(out), run.out_dir)
    scaler.step(opt)
    scaler.update()
    bad = first_nonfinite_weight(run.named)
    if bad is not None:
        raise diverged(number, epoch, f"weights ({bad}) after the update", scalar_parts(out), run.out_dir)
    lr = opt.param_groups[0]["lr"]
    run.scheduler.step()
    run.step = number
    return out, lr


def _log_step(run: Run, stats: StepStats, out: Dict[str, Any], epoch: int, lr: float) -> None:
    cfg = run.cfg
    run.logs["bar"].update(1)
    if run.step % cfg.log_every and run.step != run.total_steps:
        return
    row = stats.row(run.step, epoch, lr, "logits_adv" in out, run.info, run.device)
    row["elapsed_s"] = round(time.time() - run.t0, 3)
    run.logs["train"].write(row)
    tb = run.logs.get("tb")
    if tb is not None:
        for k, v in row.items():
            if k not in ("step", "epoch"):
                tb.add_scalar(f"train/{k}", v, run.step)
    run.logs["bar"].set_postfix(loss=f"{row['loss']:.4g}")


def _all_empty(run: Run, images: torch.Tensor) -> bool:
    """Whether any rank's batch has no readable image (then every rank skips it together)."""
    empty = float(images.shape[0] == 0)
    return (reduce_sum([empty], run.info, run.device)[0] if run.info.distributed else empty) > 0


def run_epoch(run: Run, epoch: int, stats: StepStats) -> int:
    """The steps of one epoch (from the resume position in the first); returns the batches consumed."""
    cfg, device = run.cfg, run.device
    skip = run.start_batch if epoch == run.start_epoch else 0
    run.sampler.set_epoch(epoch)
    run.sampler.set_skip(skip * run.local_bs)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        batches = iter(run.loader)                # iterator creation draws from the RNG: isolate it
    batch_in_epoch, usable, unreadable = skip, 0, 0
    for images, labels, n_skipped in batches:
        if run.step >= run.total_steps:
            break
        batch_in_epoch += 1
        if _all_empty(run, images):
            stats.add("_skipped", n_skipped)
            unreadable += int(n_skipped)
            continue
        usable += 1
        out, lr = train_step(run, images.to(device, non_blocking=True), labels.to(device, non_blocking=True), epoch)
        stats.add_step(out, labels, int(n_skipped))
        _log_step(run, stats, out, epoch, lr)
        if cfg.checkpoint_every and run.step % cfg.checkpoint_every == 0 and batch_in_epoch < run.steps_per_epoch \
                and run.step < run.total_steps:
            checkpoint(run, epoch, batch_in_epoch)
        state = TrainState(run.step, epoch, batch_in_epoch, run.total_steps, scalar_parts(out), lr,
                           run.last_checkpoint, run.out_dir)
        for callback in run.callbacks:
            callback(run.step, state)
    if usable == 0 and skip == 0:
        raise NoUsableData(f"data {cfg.data}: epoch {epoch} held no readable image ({unreadable} could not be "
                           f"read); nothing was trained or exported. Check the files (ucat data check)")
    return batch_in_epoch


def end_of_epoch(run: Run, epoch: int, batch_in_epoch: int) -> None:
    """Validate and select (with a held-out split), then checkpoint."""
    done_epoch = batch_in_epoch >= run.steps_per_epoch
    if run.val_set is not None:
        v = validate(run.method.classifier, run.val_set, run.val_attack, run.cfg, run.info, run.local_bs)
        run.logs["val"].write({"step": run.step, "epoch": epoch, **v})
        tb = run.logs.get("tb")
        if tb is not None:
            tb.add_scalar("val/clean_acc", v["clean_acc"], run.step)
            tb.add_scalar("val/robust_acc", v["robust_acc"], run.step)
        say(run.info, f"ucat train: epoch {epoch} step {run.step}: held-out clean {v['clean_acc']:.4f} "
                      f"robust {v['robust_acc']:.4f} (n={v['n']})")
        best = run.best
        if best is None or (v["robust_acc"], v["clean_acc"]) > (best["robust_acc"], best["clean_acc"]):
            run.best = {**v, "step": run.step, "epoch": epoch}
            if run.info.is_main:
                path = run.out_dir / "best.safetensors"
                check_exportable(run.bundle.model, path)
                export_open_clip(run.bundle.model, path, {**run.meta, "step": run.step, "selected_by": v})
    checkpoint(run, epoch + 1 if done_epoch else epoch, 0 if done_epoch else batch_in_epoch)


def run_epochs(run: Run) -> None:
    """Every remaining epoch, up to the step budget."""
    stats = StepStats()
    for epoch in range(run.start_epoch, run.cfg.epochs):
        if run.step >= run.total_steps:
            break
        batch_in_epoch = run_epoch(run, epoch, stats)
        end_of_epoch(run, epoch, batch_in_epoch)
        if run.step >= run.total_steps:
            break


def open_logs(run: Run, resumed: bool, bar_factory: Callable[..., Any], tb: Any) -> None:
    """The CSV logs (rows after a resumed step dropped), TensorBoard and the progress bar."""
    keep_until = run.step if resumed else None
    run.logs.update(train=CsvLog(run.out_dir / LOG_FILE, run.info.is_main, keep_until),
                    val=CsvLog(run.out_dir / VAL_FILE, run.info.is_main, keep_until), tb=tb,
                    bar=bar_factory(total=run.total_steps, initial=run.step))
