"""Contrastive pretraining of the tiny CLIP ``ucat-world`` on the procedural world, and its
zero-shot evaluation.

The loss is CLIP's symmetric InfoNCE (Radford et al., "Learning Transferable Visual Models From
Natural Language Supervision", ICML 2021, Sec. 2.3 and Fig. 3): with unit-norm image features
f_i and caption features g_j, logits L_ij = s * <f_i, g_j>, cross-entropy over rows and over
columns. One deviation, documented: captions that are *identical strings* inside a batch are
all positives of each other (soft targets spread evenly over them), because this world repeats
short captions often and calling them negatives would teach the model contradictions.

The token embedding table (49408 x width, the bulk of the parameters) is frozen at its seeded
random initialization: only ~100 words occur in this world, and a dense AdamW update of the
whole table would cost more than the rest of the step. Everything else trains.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import numpy as np
import torch
import open_clip
import torch.nn.functional as F

from . import scenes as world
from .geometry import cosine_stats, ucat_loss_ratio
from .tasks import SUITE, TASKS, load_task
from ..models.clip import OPENAI_MEAN, OPENAI_STD, ClipBundle, ImageEncoder, register_model_configs
from ..device import resolve_device
from ..io import package_versions, save_json, to_jsonable
from ..models.checkpoint import save_safetensors_atomic
from ..models.zero_shot import ZeroShotClassifier

ARCH = "ucat-world"
GEOMETRY_EPS = 4.0     # the demo's eps (1/255 units): UCAT's lambda*KL/CE is recorded at it


@dataclass
class PretrainConfig:
    """Recipe of ``ucat world pretrain`` (the shipped model's values are the defaults)."""

    out: str = "runs/world-pretrain"
    arch: str = ARCH
    steps: int = 5000
    batch_size: int = 128
    lr: float = 2e-3
    min_lr: float = 1e-5
    warmup: int = 100
    weight_decay: float = 0.05
    pool: int = 40000           # distinct pretraining scenes (captions are re-sampled every visit)
    group: int = 8              # siblings per group (hard negatives); batches hold whole groups
    seed: int = 0
    threads: int = 1            # torch CPU threads (1 is fastest on a busy 2-core machine)
    eval_n: int = 500           # images per suite task in the recorded zero-shot evaluation
    eval_seed: int = 0
    log_every: int = 50
    device: str = "cpu"
    logit_scale: float = 100.0  # s = exp(logit_scale) at the start; OpenAI CLIP's trained value (its clamp)
    learn_scale: bool = False   # learn s (clamped at 100) instead of holding it fixed
    gap_target: float | None = 0.2   # pin the batch's mean image-caption cosine here (None: no pin); see gap_penalty
    gap_weight: float = 10.0
    tasks: List[str] = field(default_factory=lambda: list(TASKS))   # recorded zero-shot evaluation


class _CaptionTokens:
    """Tokenize captions through a string cache (the world repeats captions a lot)."""

    def __init__(self, tokenizer: Callable):
        self.tokenizer = tokenizer
        self.cache: Dict[str, torch.Tensor] = {}

    def __call__(self, captions: Sequence[str]) -> torch.Tensor:
        missing = [c for c in dict.fromkeys(captions) if c not in self.cache]
        if missing:
            toks = self.tokenizer(missing)                                  # (M, context)
            for c, t in zip(missing, toks):
                self.cache[c] = t
        return torch.stack([self.cache[c] for c in captions])               # (B, context)


def clip_loss(img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor, caption_ids: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE (Radford et al. 2021) with identical captions as shared positives.

    img, txt: (B, D) unit-norm features; scale: scalar s; caption_ids: (B,) int ids of the
    caption strings (equal id = identical caption).
    """
    logits = scale * img @ txt.t()                                          # (B, B)
    same = (caption_ids[:, None] == caption_ids[None, :]).float()           # (B, B), diagonal = 1
    target = same / same.sum(1, keepdim=True)                               # (B, B) rows sum to 1
    loss_i = -(target * logits.log_softmax(1)).sum(1).mean()
    loss_t = -(target * logits.t().log_softmax(1)).sum(1).mean()           # ``same`` is symmetric
    return 0.5 * (loss_i + loss_t)


def gap_penalty(img: torch.Tensor, txt: torch.Tensor, target: float) -> torch.Tensor:
    """(mean_ij <f_i, g_j> - target)^2 over the batch's image x caption pairs.

    InfoNCE at a fixed logit scale is (nearly) blind to the *level* of the cosines: adding the same
    amount to every cosine of an image row leaves its softmax unchanged, so where the level settles
    (the modality gap, Liang et al., "Mind the Gap", NeurIPS 2022) is an accident of initialisation.
    UCAT's Dirichlet alpha = exp((cos + 1)/tau') is not blind to it (alpha_0 grows e-fold every
    0.07 of cosine), so the level is pinned near OpenAI CLIP's (about 0.2; docs/world.md).
    """
    return (img @ txt.t()).mean().sub(target).square()


def make_model(arch: str = ARCH, seed: int = 0, device: str | torch.device = "cpu"):
    """A freshly initialised (seeded) open_clip model of ``arch`` with its pixel-space encoder."""
    register_model_configs()
    torch.manual_seed(seed)
    model = open_clip.create_model(arch, pretrained=None, device=torch.device(device))
    return model


def bundle_of(model, arch: str = ARCH) -> ClipBundle:
    """Wrap a bare open_clip model as a :class:`ClipBundle` (pixels in [0,1], OpenAI mean/std)."""
    size = model.visual.image_size
    size = int(size[0] if isinstance(size, (tuple, list)) else size)
    enc = ImageEncoder(model.visual, OPENAI_MEAN, OPENAI_STD, size).to(next(model.parameters()).device)
    return ClipBundle(model=model, encoder=enc, tokenizer=open_clip.get_tokenizer(arch), arch=arch,
                      pretrained=None, image_size=size, mean=OPENAI_MEAN, std=OPENAI_STD)


@torch.no_grad()
def zero_shot_accuracy(bundle: ClipBundle, tasks: Sequence[str] = SUITE, n: int = 500, seed: int = 0,
                       split: str = "test", batch_size: int = 500) -> Dict[str, float]:
    """Top-1 zero-shot accuracy (%) of ``bundle`` on each world task's fixed sample."""
    was = bundle.model.training
    bundle.model.eval()
    out: Dict[str, float] = {}
    device = next(bundle.model.parameters()).device
    for name in tasks:
        ds = load_task(name, split, n=n, seed=seed)
        clf = ZeroShotClassifier.from_dataset(bundle, ds)
        correct = 0
        for i in range(0, len(ds), batch_size):
            x = ds.images[i:i + batch_size].to(device)                     # (b, 3, 32, 32)
            y = ds.labels[i:i + batch_size].to(device)                     # (b,)
            correct += int((clf(x).argmax(1) == y).sum())
        out[name] = round(100.0 * correct / len(ds), 2)
    bundle.model.train(was)
    return out


def chance_levels(tasks: Sequence[str] = SUITE) -> Dict[str, float]:
    return {t: round(100.0 / len(TASKS[t].classes), 2) for t in tasks}


def _lr_at(step: int, cfg: PretrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(p, 1.0)))


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check(cfg: PretrainConfig) -> None:
    if cfg.steps < 1 or cfg.batch_size < 2:
        raise ValueError(f"steps={cfg.steps}, batch_size={cfg.batch_size}: need steps >= 1 and batch_size >= 2")
    if cfg.group < 1 or cfg.group > cfg.batch_size:
        raise ValueError(f"group={cfg.group}: need 1 <= group <= batch_size ({cfg.batch_size})")
    if not 1.0 <= cfg.logit_scale <= 100.0:
        raise ValueError(f"logit_scale={cfg.logit_scale}: need 1 <= logit_scale <= 100 (CLIP clamps it at 100)")
    if cfg.pool < cfg.batch_size:
        raise ValueError(f"pool={cfg.pool} is smaller than batch_size={cfg.batch_size}; raise --pool")


def _optimizer(model, cfg: PretrainConfig) -> torch.optim.Optimizer:
    """AdamW, weight decay on matrices only (the frozen token table excluded)."""
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)


def _train(model, bundle, images_u8, scenes, cfg: PretrainConfig, device, log, t_start: float):
    """The contrastive loop over whole sibling groups; returns (history rows, final loss EMA)."""
    tokens = _CaptionTokens(bundle.tokenizer)
    opt = _optimizer(model, cfg)
    rng = np.random.default_rng([cfg.seed, 11])
    n_groups = cfg.pool // cfg.group
    per_batch = max(1, cfg.batch_size // cfg.group)                     # whole sibling groups

    def _order():
        return (rng.permutation(n_groups)[:, None] * cfg.group + np.arange(cfg.group)[None, :]).reshape(-1)

    order, cursor, history, running = _order(), 0, [], None
    for step in range(cfg.steps):
        if cursor + per_batch * cfg.group > len(order):
            order, cursor = _order(), 0
        idx = order[cursor:cursor + per_batch * cfg.group]
        cursor += per_batch * cfg.group
        caps = [world.caption(scenes[i], rng) for i in idx]
        ids = {c: k for k, c in enumerate(dict.fromkeys(caps))}
        cap_ids = torch.tensor([ids[c] for c in caps], device=device)   # (B,)
        x = images_u8[idx].to(device).float().div_(255.0)               # (B, 3, 32, 32)
        t = tokens(caps).to(device)                                     # (B, context)
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, cfg)
        f = F.normalize(bundle.encoder(x), dim=-1)                      # (B, D)
        g_ = F.normalize(model.encode_text(t), dim=-1)                  # (B, D)
        loss = clip_loss(f, g_, model.logit_scale.exp(), cap_ids)
        if cfg.gap_target is not None:
            loss = loss + cfg.gap_weight * gap_penalty(f, g_, cfg.gap_target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        lv = float(loss.detach())
        running = lv if running is None else 0.9 * running + 0.1 * lv
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            rec = {"step": step, "loss": round(lv, 4), "loss_ema": round(running, 4),
                   "lr": _lr_at(step, cfg), "scale": round(float(model.logit_scale.detach().exp()), 2),
                   "elapsed_s": round(time.time() - t_start, 1)}
            history.append(rec)
            log(json.dumps(rec))
    return history, running


def measure(bundle: ClipBundle, tasks: Sequence[str], n: int = 500, seed: int = 0):
    """(zero-shot accuracy per task, logit geometry) of ``bundle``: what the record states."""
    acc = zero_shot_accuracy(bundle, tasks, n, seed)
    suite = [t for t in tasks if t in SUITE]
    geometry = {"logit_scale": round(bundle.logit_scale, 4),
                "cosines": cosine_stats(bundle, suite, n, seed)["all"] if suite else None,
                "ucat_start": ucat_loss_ratio(bundle, eps=GEOMETRY_EPS, seed=seed)}
    return acc, geometry


def _write(model, bundle, cfg: PretrainConfig, history, running, t_start: float) -> Dict:
    """Weights (fp16), checksum and the record, measured on the weights as stored (fp16 values)."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / f"{cfg.arch}.safetensors"
    state = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in model.state_dict().items()}
    # one metadata key: safetensors writes several in a random order, which would make the
    # file's checksum differ between identical runs
    save_safetensors_atomic(state, weights, metadata={"format": f"open_clip state_dict of {cfg.arch}, fp16"})
    digest = sha256_file(weights)
    (out / f"{cfg.arch}.sha256").write_text(f"{digest}  {weights.name}\n")
    model.load_state_dict({k: v.float() for k, v in state.items()})      # the record describes the file
    acc, geometry = measure(bundle, cfg.tasks, cfg.eval_n, cfg.eval_seed)
    suite = [t for t in cfg.tasks if t in SUITE]
    record = {
        "arch": cfg.arch, "weights": weights.name, "sha256": digest, "zero_shot_accuracy": acc, "suite": suite,
        "suite_mean": round(float(np.mean([acc[t] for t in suite])), 2) if suite else None,
        "chance": chance_levels(cfg.tasks), "geometry": geometry,
        "eval": {"split": "test", "n_per_task": cfg.eval_n, "seed": cfg.eval_seed, "precision": "fp32 compute on the stored fp16 weights"},
        "recipe": to_jsonable(asdict(cfg)), "final_loss_ema": round(running, 4), "history": history,
        "train_seconds": round(time.time() - t_start, 1), "versions": package_versions(),
    }
    save_json(out / f"{cfg.arch}.json", record)
    return record


def pretrain(cfg: PretrainConfig, log: Callable[[str], None] = print) -> Dict:
    """Train ``cfg.arch`` contrastively on the world; write weights, checksum and a record.

    Writes into ``cfg.out``: ``ucat-world.safetensors`` (fp16 state dict of the whole CLIP,
    loadable by ``open_clip.create_model(arch, pretrained=path)``), ``ucat-world.sha256`` and
    ``ucat-world.json`` (recipe, loss history, zero-shot accuracy per task, chance levels).
    Returns that record.
    """
    _check(cfg)
    prev_threads = torch.get_num_threads()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    t_start = time.time()
    try:
        model = make_model(cfg.arch, cfg.seed, device)
        model.train()
        model.token_embedding.weight.requires_grad_(False)
        with torch.no_grad():
            model.logit_scale.fill_(math.log(cfg.logit_scale))
        model.logit_scale.requires_grad_(cfg.learn_scale)
        bundle = bundle_of(model, cfg.arch)
        images_u8, scenes = _pool(cfg.pool, cfg.seed, cfg.group)                       # (P, 3, 32, 32) uint8
        log(f"rendered {len(scenes)} pretraining scenes in {time.time() - t_start:.1f}s")
        history, running = _train(model, bundle, images_u8, scenes, cfg, device, log, t_start)
        model.eval()
        record = _write(model, bundle, cfg, history, running, t_start)
        log(f"zero-shot accuracy (%): {json.dumps(record['zero_shot_accuracy'])}")
        return record
    finally:
        torch.set_num_threads(prev_threads)


def _pool(n: int, seed: int, group: int):
    """``n`` pretraining scenes and their images as uint8 (N, 3, 32, 32)."""
    return world.pretraining_pairs(n, seed, group)
