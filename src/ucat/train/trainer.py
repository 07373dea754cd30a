"""The trainer: one loop for every method, on CPU, one GPU, or many through ``torchrun``.

The loop follows the official UCAT/TGA-ZSR training step (UCAT main.py) with these fixes
lists: the training attack never leaks gradients into the optimizer step (``ucat.attacks`` takes
input gradients only), the Dirichlet math is float64 inside, model selection uses a held-out split
of the *training* data, never a zero-shot test set.

Exact resume: the data order is a pure function of (seed, epoch) (a ``DistributedSampler``
permutation), a checkpoint stores the position inside the epoch, the optimizer, scheduler,
GradScaler and every rank's RNG states, and DataLoader iterators are created outside the global
RNG stream. On CPU a run killed after k steps and resumed from its last checkpoint ends with
weights bit-identical to an uninterrupted run (tested).
"""
from __future__ import annotations

import copy
import csv
import hashlib
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import DistributedSampler, Subset

from ..io import save_json, save_run_config, to_jsonable
from ..units import EPS_UNIT, fmt_eps, to_fraction
from ..device import (DistInfo, all_gather_object, autocast, barrier, check_precision, cleanup_distributed,
                      init_distributed, rng_state, seed_everything, set_rng_state)
from .config import TrainConfig

CHECKPOINT_DIR = "checkpoints"
LOG_FILE = "train_log.csv"
VAL_FILE = "val_log.csv"


class TrainingDiverged(RuntimeError):
    """The loss became NaN/inf; the run stopped and kept its last good checkpoint."""


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


# ---------------------------------------------------------------------------------------------
# data order


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


def _held_out_split(n: int, fraction: float, seed: int) -> Tuple[List[int], List[int]]:
    """(train indices, validation indices) of a seeded random split of ``n`` samples."""
    g = torch.Generator().manual_seed(int(seed) + 7919)
    perm = torch.randperm(n, generator=g).tolist()
    n_val = max(1, int(round(n * fraction))) if fraction > 0 else 0
    if n_val >= n:
        raise ValueError(f"--val-fraction {fraction} leaves no training data out of {n} samples")
    return sorted(perm[n_val:]), sorted(perm[:n_val])


def _default_split(name: str) -> Optional[str]:
    """``train`` for registered datasets that have it (build_dataset defaults to the test split)."""
    from ..data import DATASETS, expand_datasets

    expand_datasets([])   # makes sure every dataset module has registered its datasets
    if name in DATASETS:
        info = DATASETS.get(name)
        return "train" if "train" in info.splits else info.default_split
    return None


def _build_training_data(cfg: TrainConfig, image_size: int):
    from ..data import build_dataset, subsample

    split = cfg.split if cfg.split is not None else _default_split(cfg.data)
    ds = build_dataset(cfg.data, root=cfg.data_root, split=split, image_size=image_size)
    if cfg.n_samples is not None and cfg.n_samples < len(ds):
        ds = subsample(ds, cfg.n_samples, seed=cfg.seed)
    if len(ds) == 0:
        raise ValueError(f"--data {cfg.data}: the training set is empty")
    return ds


# ---------------------------------------------------------------------------------------------
# parameters, optimizer, schedule


def trainable_parameters(visual: nn.Module, last_n_blocks: int = 0) -> List[nn.Parameter]:
    """The image-tower parameters to train: all, or the last N transformer blocks + ln_post/proj."""
    if last_n_blocks <= 0:
        return [p for p in visual.parameters()]
    blocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
    if blocks is None:
        raise ValueError("--last-n-blocks needs a ViT image tower (visual.transformer.resblocks); "
                         "use --last-n-blocks 0 to train the whole tower")
    if last_n_blocks > len(blocks):
        raise ValueError(f"--last-n-blocks {last_n_blocks}: the image tower has only {len(blocks)} blocks")
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


# ---------------------------------------------------------------------------------------------
# checkpoints


def _step_dir(root: Path, step: int) -> Path:
    return root / CHECKPOINT_DIR / f"step-{step:08d}"


def list_checkpoints(run_dir: Path) -> List[Path]:
    d = Path(run_dir) / CHECKPOINT_DIR
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.is_dir() and p.name.startswith("step-")
                  and (p / "state.pt").is_file() and (p / "weights.safetensors").is_file())


def resolve_resume(resume: Optional[str], out_dir: Path) -> Optional[Path]:
    """``auto`` -> the latest checkpoint in ``out_dir`` (or None); a run dir -> its latest; a step dir."""
    if not resume:
        return None
    if resume == "auto":
        found = list_checkpoints(out_dir)
        return found[-1] if found else None
    p = Path(resume)
    if (p / "state.pt").is_file():
        return p
    if p.is_dir():
        found = list_checkpoints(p)
        if found:
            return found[-1]
    raise FileNotFoundError(f"--resume {resume}: no checkpoint there; give a run directory with a "
                            f"'{CHECKPOINT_DIR}/step-*' folder, one such folder, or --resume auto")


def _save_checkpoint(out_dir: Path, step: int, encoder: nn.Module, state: Dict[str, Any],
                     metadata: Dict[str, Any], keep: int) -> Path:
    """Write weights.safetensors + state.pt into a temporary folder, then rename it into place."""
    from ..models.checkpoint import save_vision_weights

    final = _step_dir(out_dir, step)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_vision_weights(encoder, tmp / "weights.safetensors", {**metadata, "step": step})
    torch.save(state, tmp / "state.pt")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in list_checkpoints(out_dir)[:-max(1, keep)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _weights_digest(visual: nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(visual.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# logging


class _CsvLog:
    """Rank-0 CSV log; on resume the rows after the resumed step are dropped (they were written
    by the killed run after its last checkpoint and are recomputed)."""

    def __init__(self, path: Path, enabled: bool, keep_until_step: Optional[int]):
        self.path, self.enabled, self.fields = path, enabled, None
        if not enabled:
            return
        rows = read_csv(path) if (keep_until_step is not None and path.is_file()) else []
        rows = [r for r in rows if int(float(r.get("step", 0))) <= (keep_until_step or 0)]
        path.parent.mkdir(parents=True, exist_ok=True)
        if rows:
            self.fields = list(rows[0].keys())
            with open(path, "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=self.fields)
                w.writeheader()
                w.writerows(rows)
        elif path.exists():
            path.unlink()

    def write(self, row: Dict[str, Any]) -> None:
        if not self.enabled:
            return
        if self.fields is None:
            self.fields = list(row.keys())
            with open(self.path, "w", newline="") as fh:
                csv.DictWriter(fh, fieldnames=self.fields).writeheader()
        with open(self.path, "a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=self.fields, extrasaction="ignore").writerow(row)


def read_csv(path: Path) -> List[Dict[str, Any]]:
    if not Path(path).is_file():
        return []
    with open(path, newline="") as fh:
        return [dict(r) for r in csv.DictReader(fh)]


def _tensorboard(out_dir: Path, enabled: bool):
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard is optional
        return None
    return SummaryWriter(str(out_dir / "tensorboard"))


def _scalar_parts(out: Dict[str, Any]) -> Dict[str, float]:
    parts = {}
    for k, v in out.items():
        if isinstance(v, torch.Tensor) and v.ndim == 0:
            parts[k] = float(v.detach().float())
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            parts[k] = float(v)
    return parts


def _reduce_sum(values: List[float], info: DistInfo, device: torch.device) -> List[float]:
    if not info.distributed:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


# ---------------------------------------------------------------------------------------------
# validation


def _validate(classifier: nn.Module, val_set, cfg: TrainConfig, info: DistInfo, local_bs: int) -> Dict[str, float]:
    """Clean and robust accuracy on this rank's shard of the held-out split, summed over ranks."""
    from ..attacks import create_attack
    from ..data import make_loader

    shard = Subset(val_set, list(range(info.rank, len(val_set), info.world_size)))
    loader = make_loader(shard, batch_size=max(1, 2 * local_bs), shuffle=False, num_workers=cfg.num_workers,
                         device=info.device)
    attack = create_attack(cfg.attack, eps=to_fraction(cfg.eps), step_size=to_fraction(cfg.attack_step_size),
                           steps=cfg.val_attack_steps)
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
    clean, robust, n = _reduce_sum([clean, robust, n], info, device)
    return {"clean_acc": clean / max(n, 1), "robust_acc": robust / max(n, 1), "n": int(n)}


# ---------------------------------------------------------------------------------------------
# the run


def _say(info: DistInfo, *msg: Any) -> None:
    """Rank-0 message on stderr, written around an active progress bar."""
    if info.is_main:
        from tqdm.auto import tqdm

        tqdm.write(" ".join(str(m) for m in msg), file=sys.stderr)


def train(cfg: TrainConfig, *, _stop_after_step: Optional[int] = None) -> TrainResult:
    """Fine-tune CLIP's image encoder with ``cfg.method``; see :class:`TrainConfig`.

    Under ``torchrun`` the method module (whose only trainable parameters are the image
    encoder's) is wrapped in DistributedDataParallel; rank 0 logs, checkpoints and exports.
    ``_stop_after_step`` stops the run right after that step as if the process were killed
    (no final checkpoint, no export); it exists to test exact resume.

    Raises:
        KeyError: unknown method or attack (with the known names).
        ValueError / FileNotFoundError: bad configuration or data, with the fix.
        TrainingDiverged: the loss became non-finite (the last good checkpoint is kept).
    """
    from ..methods import METHODS, method_options

    cfg = copy.deepcopy(cfg)
    cfg.validate()
    METHODS.get(cfg.method)  # fail fast on an unknown method ...
    unknown = sorted(set(cfg.method_options or {}) - set(method_options(cfg.method)))
    if unknown:              # ... or option, before any model is loaded
        valid = ", ".join(f"{k}={v!r}" for k, v in method_options(cfg.method).items()) or "(none)"
        raise ValueError(f"method {cfg.method!r} has no option(s) {', '.join(unknown)}; its options are: {valid}")
    info = init_distributed(cfg.device)
    try:
        return _train(cfg, info, _stop_after_step)
    finally:
        cleanup_distributed(info)


def _train(cfg: TrainConfig, info: DistInfo, stop_after: Optional[int]) -> TrainResult:
    from ..attacks import create_attack
    from ..data import make_loader
    from ..methods import create_method
    from ..models import ZeroShotClassifier, load_clip
    from ..models.checkpoint import export_open_clip

    device = info.device
    check_precision(cfg.precision, device)
    if cfg.batch_size % info.world_size:
        raise ValueError(f"--batch-size {cfg.batch_size} is the global batch and must be divisible by the "
                         f"{info.world_size} processes")
    local_bs = cfg.batch_size // info.world_size
    out_dir = Path(cfg.out)
    resume_from = resolve_resume(cfg.resume, out_dir)
    if resume_from is None and list_checkpoints(out_dir):
        # A new run never mixes its checkpoints with an earlier run's: those are set aside (one
        # generation is kept), so `--resume auto` can only find this run's own.
        previous = out_dir / f"{CHECKPOINT_DIR}.previous"
        barrier(info)
        if info.is_main:
            shutil.rmtree(previous, ignore_errors=True)
            os.replace(out_dir / CHECKPOINT_DIR, previous)
            _say(info, f"ucat train: {out_dir} held checkpoints of an earlier run; moved them to {previous} "
                       f"(to continue that run instead, use --resume auto)")
        barrier(info)

    # Model, frozen reference, data, text head. Seed first so that random inits agree everywhere.
    seed_everything(cfg.seed)
    bundle = load_clip(cfg.model, cfg.pretrained, device=device)
    for p in bundle.model.parameters():            # text tower, logit scale: frozen
        p.requires_grad_(False)
    reference = copy.deepcopy(bundle.encoder)       # the original image encoder, never updated
    train_full = _build_training_data(cfg, bundle.image_size)
    if cfg.val_fraction > 0:
        tr_idx, va_idx = _held_out_split(len(train_full), cfg.val_fraction, cfg.seed)
        train_set, val_set = Subset(train_full, tr_idx), Subset(train_full, va_idx)
    else:
        train_set, val_set = train_full, None
    classifier = ZeroShotClassifier.from_dataset(bundle, train_full, templates=cfg.templates or None)
    params = trainable_parameters(bundle.model.visual, cfg.last_n_blocks)
    for p in params:
        p.requires_grad_(True)

    eps, step_size = to_fraction(cfg.eps), to_fraction(cfg.attack_step_size)
    attack = create_attack(cfg.attack, eps=eps, step_size=step_size, steps=cfg.attack_steps)
    method = create_method(cfg.method, classifier, reference, attack, **dict(cfg.method_options or {}))
    method.world_size = info.world_size     # for batch-summed loss terms (see Method.world_size)
    method.to(device).train()

    sampler = ResumableSampler(train_set, info.world_size, info.rank, cfg.seed)
    loader = make_loader(train_set, batch_size=local_bs, sampler=sampler, num_workers=cfg.num_workers,
                         seed=cfg.seed, device=device, persistent_workers=True)
    steps_per_epoch = math.ceil(sampler.full_len() / local_bs)
    total_steps = cfg.epochs * steps_per_epoch
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)

    optimizer = make_optimizer(cfg, params)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_multiplier(s, total_steps, cfg.warmup_steps, cfg.schedule))
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")

    step, start_epoch, start_batch = 0, 0, 0
    best: Optional[Dict[str, float]] = None
    if resume_from is not None:
        from ..models.checkpoint import load_vision_weights

        # Our own file (written by _save_checkpoint): it holds RNG states, which need full unpickling.
        state = torch.load(resume_from / "state.pt", map_location="cpu", weights_only=False)
        was = state.get("config", {})
        for key in ("method", "model"):
            if was.get(key) not in (None, getattr(cfg, key)):
                raise ValueError(f"--resume {resume_from}: that run used --{key} {was.get(key)}, this one "
                                 f"--{key} {getattr(cfg, key)}; resume with the same settings or start a new --out")
        load_vision_weights(bundle, resume_from / "weights.safetensors")
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        step, start_epoch, start_batch = state["step"], state["epoch"], state["batch_in_epoch"]
        best = state.get("best")
        order = state.get("data_order", {})
        if order.get("world_size") != info.world_size or order.get("local_batch") != local_bs:
            _say(info, f"ucat train: warning: resuming with {info.world_size} process(es) x batch {local_bs} "
                       f"instead of {order.get('world_size')} x {order.get('local_batch')}: the data order "
                       f"differs from the interrupted run (the resume is not bit-exact)")
        rngs = state["rng"]
        set_rng_state(rngs[info.rank] if info.rank < len(rngs) else rngs[0])
        _say(info, f"ucat train: resumed from {resume_from} at step {step} (epoch {start_epoch}, "
                   f"batch {start_batch})")
    else:
        seed_everything(cfg.seed + info.rank)   # per-rank attack noise; identical set-up above

    model = method
    if info.distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        # The buffers (text head, pixel mean/std) are identical on every rank: no per-forward sync.
        # torch >= 2.14 names this forward_sync_buffers (broadcast_buffers is deprecated there).
        import inspect

        no_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(DDP).parameters
                   else {"broadcast_buffers": False})
        model = DDP(method, device_ids=[device.index] if device.type == "cuda" else None, **no_sync)

    # Run directory, logs.
    meta = {"method": cfg.method, "method_options": method.options(), "arch": cfg.model,
            "pretrained": cfg.pretrained, "data": cfg.data, "eps": cfg.eps, "eps_unit": EPS_UNIT,
            "attack": cfg.attack, "attack_steps": cfg.attack_steps, "attack_step_size": cfg.attack_step_size,
            "seed": cfg.seed}
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_run_config(out_dir, {**to_jsonable(cfg), "resolved_method_options": method.options(),
                                  "world_size": info.world_size, "local_batch_size": local_bs,
                                  "steps_per_epoch": steps_per_epoch, "total_steps": total_steps,
                                  "trainable_parameters": sum(p.numel() for p in params)})
    keep_until = step if resume_from is not None else None
    log = _CsvLog(out_dir / LOG_FILE, info.is_main, keep_until)
    val_log = _CsvLog(out_dir / VAL_FILE, info.is_main, keep_until)
    tb = _tensorboard(out_dir, info.is_main)
    _say(info, f"ucat train: {cfg.method} {method.options()} | {cfg.model} ({cfg.pretrained or 'default weights'}) | "
               f"{cfg.data}: {len(train_set)} train / {len(val_set) if val_set is not None else 0} held-out, "
               f"{classifier.num_classes} classes | attack {cfg.attack} eps {fmt_eps(cfg.eps)} x {cfg.attack_steps} steps "
               f"of {fmt_eps(cfg.attack_step_size)} | {total_steps} steps on {info.world_size} x {device} "
               f"({cfg.precision}) -> {out_dir}")

    from tqdm.auto import tqdm

    bar = tqdm(total=total_steps, initial=step, disable=not (info.is_main and cfg.progress),
               dynamic_ncols=True, desc=f"train {cfg.method}", file=sys.stderr)
    last_ckpt = resume_from
    acc: Dict[str, float] = {}
    t0 = time.time()
    stopped_early = False

    def state_dict(epoch: int, batch_in_epoch: int) -> Dict[str, Any]:
        return {"step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch,
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(), "rng": all_gather_object(rng_state(), info), "best": best,
                "data_order": {"seed": cfg.seed, "world_size": info.world_size, "local_batch": local_bs,
                               "sampler": "DistributedSampler(shuffle, seed + epoch)"},
                "config": to_jsonable(cfg)}

    def checkpoint(epoch: int, batch_in_epoch: int) -> None:
        nonlocal last_ckpt
        st = state_dict(epoch, batch_in_epoch)        # collective (RNG gather): every rank
        if info.is_main:
            last_ckpt = _save_checkpoint(out_dir, step, bundle.encoder, st, meta, cfg.keep_checkpoints)
        barrier(info)

    epoch = start_epoch
    for epoch in range(start_epoch, cfg.epochs):
        if step >= total_steps:
            break
        skip = start_batch if epoch == start_epoch else 0
        sampler.set_epoch(epoch)
        sampler.set_skip(skip * local_bs)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            batches = iter(loader)                    # iterator creation draws from the RNG: isolate it
        batch_in_epoch = skip
        for images, labels, n_skipped in batches:
            if step >= total_steps:
                break
            # A batch whose images were all unreadable is skipped by every rank together.
            n_here = _reduce_sum([float(images.shape[0] == 0)], info, device)[0] if info.distributed \
                else float(images.shape[0] == 0)
            if n_here > 0:
                batch_in_epoch += 1
                acc["_skipped"] = acc.get("_skipped", 0.0) + float(n_skipped)
                continue
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            with autocast(device, cfg.precision):
                out = model(images, labels)
            loss = out["loss"]
            finite = _reduce_sum([float(torch.isfinite(loss.detach()).all())], info, device)[0]
            if finite < info.world_size:
                parts = {k: round(v, 6) for k, v in _scalar_parts(out).items()}
                raise TrainingDiverged(
                    f"non-finite loss at step {step + 1} (epoch {epoch}): {parts}. The run stopped; the last good "
                    f"checkpoint is {last_ckpt or '(none yet)'}" + (f" (continue with --resume {last_ckpt})" if last_ckpt else "")
                    + ". Try a lower --lr, --precision fp32, or --grad-clip 1.0.")
            scaler.scale(loss).backward()
            if cfg.grad_clip is not None:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            lr = optimizer.param_groups[0]["lr"]
            scheduler.step()
            step += 1
            batch_in_epoch += 1

            # Per-term running sums, reduced over ranks at log time.
            for k, v in _scalar_parts(out).items():
                acc[k] = acc.get(k, 0.0) + v
            logits = out.get("logits_adv", out.get("logits"))
            if logits is not None:
                acc["_correct"] = acc.get("_correct", 0.0) + float((logits.argmax(-1) == labels).sum())
            acc["_n"] = acc.get("_n", 0.0) + images.shape[0]
            acc["_steps"] = acc.get("_steps", 0.0) + 1
            acc["_skipped"] = acc.get("_skipped", 0.0) + float(n_skipped)
            bar.update(1)
            if step % cfg.log_every == 0 or step == total_steps:
                keys = sorted(acc)
                sums = dict(zip(keys, _reduce_sum([acc[k] for k in keys], info, device)))
                row = {"step": step, "epoch": epoch, "lr": lr}
                for k in keys:
                    if not k.startswith("_"):
                        row[k] = sums[k] / sums["_steps"]
                row["acc_train_adv" if "logits_adv" in out else "acc_train"] = sums.get("_correct", 0.0) / max(sums["_n"], 1)
                row["samples"] = int(sums["_n"])
                row["skipped"] = int(sums["_skipped"])
                row["elapsed_s"] = round(time.time() - t0, 3)
                log.write(row)
                if tb is not None:
                    for k, v in row.items():
                        if k not in ("step", "epoch"):
                            tb.add_scalar(f"train/{k}", v, step)
                bar.set_postfix(loss=f"{row['loss']:.4g}")
                acc = {}
            if stop_after is not None and step >= stop_after:
                stopped_early = True
                break
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and batch_in_epoch < steps_per_epoch \
                    and step < total_steps:
                checkpoint(epoch, batch_in_epoch)
        if stopped_early:
            break
        # End of the epoch (or of the step budget): validate, select, checkpoint.
        done_epoch = batch_in_epoch >= steps_per_epoch
        if val_set is not None:
            v = _validate(method.classifier, val_set, cfg, info, local_bs)
            row = {"step": step, "epoch": epoch, **v}
            val_log.write(row)
            if tb is not None:
                tb.add_scalar("val/clean_acc", v["clean_acc"], step)
                tb.add_scalar("val/robust_acc", v["robust_acc"], step)
            _say(info, f"ucat train: epoch {epoch} step {step}: held-out clean {v['clean_acc']:.4f} "
                       f"robust {v['robust_acc']:.4f} (n={v['n']})")
            key = (v["robust_acc"], v["clean_acc"])
            if best is None or key > (best["robust_acc"], best["clean_acc"]):
                best = {**v, "step": step, "epoch": epoch}
                if info.is_main:
                    export_open_clip(bundle.model, out_dir / "best.safetensors", {**meta, "step": step, "selected_by": v})
        checkpoint(epoch + 1 if done_epoch else epoch, 0 if done_epoch else batch_in_epoch)
        if step >= total_steps:
            break
    bar.close()
    if tb is not None:
        tb.close()

    result = TrainResult(out_dir=out_dir, checkpoint=last_ckpt, export=None, steps=step)
    if stopped_early:
        return result

    digests = all_gather_object(_weights_digest(bundle.model.visual), info)
    if len(set(digests)) != 1:
        raise RuntimeError(f"ranks ended with different weights ({digests}); this is a bug, please report it")
    if info.is_main:
        result.final = export_open_clip(bundle.model, out_dir / "final.safetensors", {**meta, "step": step})
        if best is not None and (out_dir / "best.safetensors").is_file():
            result.best = out_dir / "best.safetensors"
        result.export = result.best if (cfg.select == "best" and result.best is not None) else result.final
        result.history = read_csv(out_dir / LOG_FILE)
        result.validation = read_csv(out_dir / VAL_FILE)
        save_json(out_dir / "summary.json", {
            "method": cfg.method, "method_options": method.options(), "arch": cfg.model, "steps": step,
            "export": result.export, "final": result.final, "best": result.best, "best_validation": best,
            "select": cfg.select, "last_checkpoint": last_ckpt, "world_size": info.world_size,
            "rank_weight_digests": digests, "eps": cfg.eps, "eps_unit": EPS_UNIT,
            "elapsed_s": round(time.time() - t0, 3)})
        _say(info, f"ucat train: done, {step} steps; model -> {result.export}")
    barrier(info)
    return result
