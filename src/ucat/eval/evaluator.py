"""Robust and calibrated zero-shot evaluation: logits once, pure metrics after, one JSON per result.

For every (model, dataset) the text head is built once and the clean logits are computed once;
for every attack the adversarial logits are computed once (each model is attacked with its own
white-box examples). Metrics come from :mod:`ucat.metrics` and :mod:`ucat.uncertainty` over the
whole evaluated set, never per batch. Protocol: Lu et al., "Calibrating Uncertainty for Zero-Shot
Adversarial CLIP", arXiv 2512.12997 (PGD-100 / CW-100 / AutoAttack at eps = 1/255; H = harmonic
mean of the averaged clean and robust accuracy); ECE with 15 equal-width bins (Guo et al., ICML
2017) on softmax(s * cos) is ucat's own protocol (the paper states none).

Distributed: under ``torchrun`` the batches of a dataset (fixed by the dataset order and the
batch size) are dealt round-robin to the ranks, every batch's attack is seeded from (seed,
dataset, attack, batch index), and rank 0 merges the per-sample results by sample index, so the
metrics equal a single-process run's exactly.

Resumable: each result JSON is written atomically when its work is done; a rerun with the same
settings loads it instead of recomputing.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch

from ..io import package_versions, save_json, to_jsonable
from ..units import EPS_UNIT, fmt_eps, to_fraction
from ..device import (DistInfo, all_gather_object, autocast, barrier, check_precision, init_distributed,
                      seed_everything)

RESULT_VERSION = 1


@dataclass
class ModelSpec:
    """One model to evaluate: an open_clip architecture + weights, optionally with ``ucat train`` vision weights.

    Args:
        label: name used in reports and output folders.
        model: open_clip architecture or shipped model name (``ViT-B-32``, ``ucat-world``).
        pretrained: tag, local weights file or hf-hub id (None: random init / shipped weights).
        checkpoint: vision weights written by ``ucat train`` (loaded into the image tower).
    """

    label: str
    model: str
    pretrained: Optional[str] = None
    checkpoint: Optional[str] = None


@dataclass
class EvalConfig:
    """Everything an evaluation depends on; saved next to every result.

    Perturbation sizes (``eps``, ``step_size``) are in **1/255 units** (``eps=[1]`` is 1/255),
    converted once to fractions of [0,1] when the attacks are built.
    """

    models: List[ModelSpec] = field(default_factory=list)
    datasets: List[str] = field(default_factory=lambda: ["world-suite"])
    data_root: Optional[str] = None
    split: Optional[str] = None               # None: each dataset's protocol split
    attacks: List[str] = field(default_factory=lambda: ["pgd"])
    eps: List[float] = field(default_factory=lambda: [1.0])   # 1/255 units; several -> one result each
    steps: int = 10                           # the paper uses 100 (PGD-100, CW-100)
    step_size: Optional[float] = None         # 1/255 units; None -> eps (the paper: step 1/255 at eps 1/255)
    norm: str = "linf"
    restarts: int = 1
    attack_options: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # e.g. {"cw": {"kappa": 50}}
    n_samples: Optional[int] = None           # seeded random subset per dataset (None: all)
    batch_size: int = 64
    device: str = "auto"
    precision: str = "fp32"
    seed: int = 0
    out: str = "runs/eval"
    save_logits: bool = False
    n_bins: int = 15
    binning: str = "width"
    temperature: float = 0.07                 # tau' of the Dirichlet uncertainty (UCAT)
    num_workers: Union[int, str] = "auto"      # loader workers; auto = 0 on CPU, up to 16 per process on CUDA
    image_size: Optional[int] = None          # None: the model's own resolution
    templates: Optional[List[str]] = None     # None: each dataset's prompts
    plots: bool = True
    progress: bool = True
    resume: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.eps, (int, float)):
            self.eps = [float(self.eps)]
        self.models = [m if isinstance(m, ModelSpec) else ModelSpec(**m) for m in self.models]
        from ..data import num_workers_setting

        self.num_workers = num_workers_setting(self.num_workers)


# ----------------------------------------------------------------------------- data plumbing

class _Indexed(torch.utils.data.Dataset):
    """Items ``(image, label, index)``, or None for an unreadable image."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        item = self.dataset[i]
        return None if item is None else (item[0], int(item[1]), i)


def _collate(batch):
    kept = [b for b in batch if b is not None]
    if not kept:
        return torch.empty(0, 3, 1, 1), torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long), len(batch)
    images = torch.stack([torch.as_tensor(b[0]) for b in kept]).float()           # (B, 3, H, W)
    labels = torch.tensor([b[1] for b in kept], dtype=torch.long)                 # (B,)
    index = torch.tensor([b[2] for b in kept], dtype=torch.long)                  # (B,)
    return images, labels, index, len(batch) - len(kept)


def _rank_batches(n: int, batch_size: int, info: DistInfo) -> List[Tuple[int, List[int]]]:
    """(global batch id, sample indices) of this rank: batches fixed by order, dealt round-robin."""
    batches = [(b, list(range(s, min(s + batch_size, n)))) for b, s in enumerate(range(0, n, batch_size))]
    return [bt for bt in batches if bt[0] % info.world_size == info.rank]


def _loader(dataset, batches: List[Tuple[int, List[int]]], num_workers: int, pin_memory: bool = False):
    return torch.utils.data.DataLoader(_Indexed(dataset), batch_sampler=[idx for _, idx in batches],
                                       collate_fn=_collate, num_workers=num_workers, pin_memory=pin_memory)


def _batch_seed(*parts: Any) -> int:
    h = hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()
    return int(h[:15], 16)


def _slug(text: str) -> str:
    text = str(text).rstrip("/\\")
    if "/" in text or "\\" in text:
        text = Path(text).name or text
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_") or "x"


# ----------------------------------------------------------------------------- metrics

def _error_scores(logits: torch.Tensor, logit_scale: float, temperature: float) -> Dict[str, torch.Tensor]:
    from ..uncertainty import logit_uncertainty

    u = logit_uncertainty(logits, logit_scale, temperature, normalize=True)
    return {"entropy": u["entropy"], "aleatoric": u["aleatoric"], "epistemic": u["epistemic"],
            "predictive": u["predictive"], "epistemic_paper": u["epistemic_paper"],
            "max_prob": 1.0 - u["confidence"], "confidence": u["confidence"]}


def split_metrics(logits: torch.Tensor, labels: torch.Tensor, logit_scale: float, temperature: float,
                  n_bins: int, binning: str) -> Dict[str, Any]:
    """All metrics of one set of logits (clean or adversarial) over the whole set."""
    from .. import metrics as M

    logits = logits.float()
    rep = M.calibration_report(logits, labels, n_bins, binning)
    scores = _error_scores(logits, logit_scale, temperature)
    errors = logits.argmax(-1) != labels                                          # (N,)
    out: Dict[str, Any] = {k: rep[k] for k in ("accuracy", "ece", "mce", "nll", "brier")}
    for k in ("confidence", "entropy", "aleatoric", "epistemic", "predictive", "epistemic_paper"):
        out[f"mean_{k}"] = float(scores[k].double().mean())
    for k in ("max_prob", "entropy", "epistemic"):
        out[f"auroc_{k}"] = M.auroc(scores[k], errors)
        out[f"aurc_{k}"] = M.aurc(scores[k], errors)
    out["reliability"] = M.reliability_bins(torch.softmax(logits.double(), -1), labels, n_bins, binning)
    return out


def _noise(p: float, n: int) -> float:
    """Two binomial standard errors (at least one sample): what 'beyond noise' means."""
    return max(1.0 / max(n, 1), 2.0 * math.sqrt(max(p * (1 - p), 0.0) / max(n, 1)))


def sanity_checks(result: Dict[str, Any], clean_logits: torch.Tensor, adv_logits: torch.Tensor) -> Dict[str, Any]:
    """Checks recorded in every result; failures are also warned."""
    checks: Dict[str, Any] = {}
    warn: List[str] = []
    clean, robust = result["clean"]["accuracy"], result["adv"]["accuracy"]
    if result["eps"] == 0:
        same = torch.equal(clean_logits, adv_logits)
        checks["eps0_robust_equals_clean"] = bool(same and clean == robust)
        if not checks["eps0_robust_equals_clean"]:
            warn.append(f"eps = 0 but robust accuracy {robust:.4f} != clean {clean:.4f}")
    checks["robust_le_clean"] = bool(robust <= clean + 1e-12)
    if not checks["robust_le_clean"]:
        warn.append(f"robust accuracy {robust:.4f} is above clean {clean:.4f}: the attack made some wrong "
                    f"points right (a weak or broken attack?)")
    return {"checks": checks, "warnings": warn}


# ----------------------------------------------------------------------------- the run

class Evaluator:
    """Runs an :class:`EvalConfig`; use :func:`run_eval`."""

    def __init__(self, cfg: EvalConfig):
        if not cfg.models:
            raise ValueError("no model to evaluate: give at least one --model")
        if not cfg.datasets:
            raise ValueError("no dataset to evaluate: give --datasets NAME [NAME ...] or a folder path")
        if not cfg.attacks:
            raise ValueError("no attack: give --attacks (e.g. pgd cw aa-paper; 'none' for clean only)")
        if cfg.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {cfg.batch_size}")
        if cfg.steps < 0:
            raise ValueError(f"--steps must be >= 0, got {cfg.steps}")
        labels = [m.label for m in cfg.models]
        if len(set(labels)) != len(labels):
            raise ValueError(f"model labels must be unique, got {labels}")
        from ..attacks import ATTACKS

        for a in cfg.attacks:
            ATTACKS.get(a)  # unknown names fail now, with the list of known ones
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.info = init_distributed(cfg.device)
        self.device = self.info.device
        check_precision(cfg.precision, self.device)
        self.versions = package_versions()

    def _eps_for(self, attack_name: str) -> List[float]:
        from ..attacks import ATTACKS

        return list(self.cfg.eps) if getattr(ATTACKS.get(attack_name), "uses_eps", True) else [0.0]

    # ---- paths and resume
    def result_path(self, label: str, dataset: str, attack: str, eps: float) -> Path:
        return self.out / _slug(label) / _slug(dataset) / f"{_slug(attack)}-eps{eps:g}.json"

    def _key(self, spec: ModelSpec, dataset: str, attack: str, eps: float) -> Dict[str, Any]:
        c = self.cfg
        return to_jsonable({"version": RESULT_VERSION, "model": dataclasses.asdict(spec), "dataset": dataset,
                            "split": c.split, "attack": attack, "eps": eps, "steps": c.steps,
                            "step_size": c.step_size, "norm": c.norm, "restarts": c.restarts,
                            "attack_options": c.attack_options.get(attack, {}), "n_samples": c.n_samples,
                            "seed": c.seed, "precision": c.precision, "n_bins": c.n_bins, "binning": c.binning,
                            "temperature": c.temperature, "image_size": c.image_size, "templates": c.templates,
                            "batch_size": c.batch_size})

    def _finished(self, path: Path, key: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        if not self.cfg.resume or not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return data if data.get("key") == key else None

    def _agreed(self, obj: Any) -> Any:
        """Rank 0's value of ``obj`` on every rank (decisions must not diverge)."""
        return all_gather_object(obj, self.info)[0]

    # ---- models and data
    def _load_model(self, spec: ModelSpec):
        from ..models import load_clip

        bundle = load_clip(spec.model, spec.pretrained, device=self.device)
        meta: Dict[str, Any] = {}
        if spec.checkpoint:
            try:
                from ..models.checkpoint import load_vision_weights
            except ImportError as e:
                raise ValueError("--checkpoint needs ucat.models.checkpoint (from `ucat train`), which this "
                                 "installation lacks; update ucat") from e
            meta = load_vision_weights(bundle, spec.checkpoint) or {}
        bundle.model.eval()
        bundle.encoder.eval()
        return bundle, meta

    def _dataset(self, name: str, image_size: int):
        from ..data import build_dataset, subsample

        c = self.cfg
        kw: Dict[str, Any] = {}
        if c.templates:
            kw["templates"] = list(c.templates)
        ds = build_dataset(name, root=c.data_root, split=c.split, image_size=image_size, **kw)
        return subsample(ds, c.n_samples, seed=c.seed)

    def _classifier(self, bundle, ds):
        """The zero-shot classifier of ``ds`` (its text head built once, or read from the cache), in eval mode.

        Evaluation never trains. In fp32, frozen weights let attacks skip saving activations for
        weight gradients. Under autocast they are left as they are: autocast caches its low-precision
        copy of a weight only for leaves that require grad, so frozen weights are re-cast on every op
        (a 4.5x slower bf16 attack step on AVX-512-bf16 CPUs, docs/performance.md). Attacks take
        gradients w.r.t. the input only either way.
        """
        from ..models import ZeroShotClassifier

        clf = ZeroShotClassifier.from_dataset(bundle, ds).eval()
        if self.cfg.precision == "fp32":
            clf.requires_grad_(False)
        return clf

    def _attack(self, attack_name: str, eps: float, **override):
        """The attack as configured (``override``: e.g. fewer ``steps`` or ``n_iter``, for --estimate)."""
        from ..attacks import create_attack

        c = self.cfg
        step = c.step_size if c.step_size is not None else eps
        opts = dict(c.attack_options.get(attack_name, {}))
        if c.norm != "linf":
            opts.setdefault("norm", c.norm)
        if c.restarts != 1:
            opts.setdefault("restarts", c.restarts)
        kw = dict(eps=to_fraction(eps), step_size=to_fraction(step), steps=c.steps, **opts)
        kw.update(override)
        return create_attack(attack_name, **kw), step

    # ---- logits
    def _bar(self, total: int, desc: str):
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit="img", leave=False, dynamic_ncols=True, file=sys.stderr,
                    disable=not (self.cfg.progress and self.info.is_main))

    def _logits(self, clf, ds, n: int, attack=None, seed_parts: Sequence[Any] = (), desc: str = ""):
        """This rank's (index, labels, logits, n_skipped, notes) over its batches, adversarial if ``attack``."""
        from ..data import resolve_num_workers

        c = self.cfg
        batches = _rank_batches(n, c.batch_size, self.info)
        idx_all, lab_all, log_all, skipped, notes = [], [], [], 0, []
        devices = [self.device] if self.device.type == "cuda" else []
        with self._bar(n, desc) as bar:
            loader = _loader(ds, batches, resolve_num_workers(c.num_workers, self.device),
                             pin_memory=self.device.type == "cuda")
            for (bid, _), (images, labels, index, n_skip) in zip(batches, loader):
                skipped += int(n_skip)
                if len(labels):
                    images = images.to(self.device, non_blocking=True)
                    labels_d = labels.to(self.device, non_blocking=True)
                    if attack is not None:
                        with torch.random.fork_rng(devices=devices):
                            torch.manual_seed(_batch_seed(c.seed, *seed_parts, bid))
                            with autocast(self.device, c.precision):
                                images = attack(clf, images, labels_d)
                            notes.extend(n for n in attack.notes if n not in notes)
                    with torch.no_grad(), autocast(self.device, c.precision):
                        logits = clf(images).float()
                    idx_all.append(index)
                    lab_all.append(labels)
                    log_all.append(logits.cpu())
                bar.update(len(labels) + int(n_skip))
        C = clf.num_classes
        cat = lambda xs, shape, dt: torch.cat(xs) if xs else torch.empty(shape, dtype=dt)  # noqa: E731
        return (cat(idx_all, (0,), torch.long), cat(lab_all, (0,), torch.long),
                cat(log_all, (0, C), torch.float32), skipped, notes)

    def _merged(self, part) -> Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, List[str]]]:
        """Every rank's part merged by sample index on rank 0 (None on other ranks)."""
        parts = all_gather_object(part, self.info)
        if not self.info.is_main:
            return None
        index = torch.cat([p[0] for p in parts])
        order = torch.argsort(index)
        labels = torch.cat([p[1] for p in parts])[order]
        logits = torch.cat([p[2] for p in parts])[order]
        notes: List[str] = []
        for p in parts:
            notes.extend(n for n in p[4] if n not in notes)
        return index[order], labels, logits, sum(p[3] for p in parts), notes

    # ---- one (model, dataset)
    def _evaluate_dataset(self, spec: ModelSpec, bundle, ckpt_meta, dataset: str, todo: List[Tuple[str, float]],
                          results: Dict[Tuple[str, float], Dict[str, Any]]) -> None:
        c = self.cfg
        size = c.image_size or bundle.image_size
        ds = self._dataset(dataset, size)
        n = len(ds)
        if n == 0:
            raise ValueError(f"dataset {dataset!r} is empty")
        clf = self._classifier(bundle, ds)          # the text head: once per (model, dataset)
        s = clf.logit_scale
        tag = f"{spec.label}/{_slug(dataset)}"
        clean = self._merged(self._logits(clf, ds, n, desc=f"{tag} clean"))
        for attack_name, eps in todo:
            t0 = time.time()
            attack, step = self._attack(attack_name, eps)
            adv = self._merged(self._logits(clf, ds, n, attack, (spec.label, dataset, attack_name, eps),
                                             desc=f"{tag} {attack_name} eps={fmt_eps(eps)}"))
            if self.info.is_main:
                res = self._result(spec, bundle, ckpt_meta, ds, dataset, attack, attack_name, eps, step, clean, adv,
                                   s, time.time() - t0)
                self._write(spec, dataset, attack_name, eps, res, clean, adv)
                results[(attack_name, eps)] = res
            barrier(self.info)

    def _result(self, spec, bundle, ckpt_meta, ds, dataset, attack, attack_name, eps, step, clean, adv, s, secs):
        c = self.cfg
        idx, labels, clean_logits, skipped, _ = clean
        idx_a, labels_a, adv_logits, skipped_a, notes = adv
        if not torch.equal(idx, idx_a):
            raise RuntimeError("clean and adversarial passes saw different samples (unreadable images changed?)")
        if len(labels) == 0:
            raise ValueError(f"dataset {dataset!r}: every image was unreadable")
        res: Dict[str, Any] = {
            "model": spec.label, "arch": spec.model, "pretrained": bundle.pretrained, "checkpoint": spec.checkpoint,
            "checkpoint_metadata": ckpt_meta, "dataset": dataset, "split": getattr(ds, "split", c.split),
            "attack": attack_name, "eps": eps, "eps_unit": EPS_UNIT, "eps_fraction": to_fraction(eps),
            "step_size": step, "steps": c.steps, "attack_config": attack.config(), "attack_notes": notes,
            "logit_scale": s, "temperature": c.temperature, "n_bins": c.n_bins, "binning": c.binning,
            "precision": c.precision, "seed": c.seed, "image_size": c.image_size or bundle.image_size,
            "counts": {"n": int(len(labels)), "n_skipped": int(skipped), "n_classes": int(clean_logits.shape[1])},
            "clean": split_metrics(clean_logits, labels, s, c.temperature, c.n_bins, c.binning),
            "adv": split_metrics(adv_logits, labels, s, c.temperature, c.n_bins, c.binning),
        }
        res["sanity"] = sanity_checks(res, clean_logits, adv_logits)
        for w in res["sanity"]["warnings"] + [f"{attack_name}: {n}" for n in notes]:
            warnings.warn(f"{spec.label}/{dataset}/{attack_name}: {w}", stacklevel=2)
        res.update({"time_s": secs, "world_size": self.info.world_size, "key": self._key(spec, dataset, attack_name, eps),
                    "config": to_jsonable(c), "versions": self.versions})
        return res

    def _write(self, spec, dataset, attack_name, eps, res, clean, adv) -> None:
        path = self.result_path(spec.label, dataset, attack_name, eps)
        stem = path.with_suffix("")
        if self.cfg.plots:
            from .plots import reliability_diagram, uncertainty_histogram

            title = f"{spec.label} | {dataset} | {attack_name} eps={fmt_eps(eps)}"
            reliability_diagram(res["clean"]["reliability"], res["adv"]["reliability"], f"{stem}_reliability.png", title)
            s, tau = res["logit_scale"], res["temperature"]
            uncertainty_histogram(_error_scores(clean[2], s, tau), _error_scores(adv[2], s, tau),
                                  f"{stem}_uncertainty.png", title)
        if self.cfg.save_logits:
            import numpy as np

            tmp = stem.parent / f".{stem.name}_logits.tmp.npz"
            np.savez_compressed(tmp, index=clean[0].numpy(), labels=clean[1].numpy(), clean=clean[2].numpy(),
                                adv=adv[2].numpy())
            tmp.replace(f"{stem}_logits.npz")
        save_json(path, res)   # last: its presence marks the result finished

    # ---- cross-attack checks
    def _cross_checks(self, results: Dict[Tuple[str, float], Dict[str, Any]], spec: ModelSpec, dataset: str) -> None:
        """Checks across results of one (model, dataset): an attack declared at least as strong as another
        is not above it beyond noise; robust accuracy does not rise with eps beyond noise."""
        from ..attacks import ATTACKS

        def record(key: Tuple[str, float], check: str, ok: bool, msg: str) -> None:
            res = results[key]
            if res["sanity"]["checks"].get(check) == ok:
                return
            res["sanity"]["checks"][check] = bool(ok)
            if not ok:
                res["sanity"]["warnings"].append(msg)
                warnings.warn(f"{spec.label}/{dataset}: {msg}", stacklevel=3)
            save_json(self.result_path(spec.label, dataset, *key), res)

        for (name, eps), res in results.items():
            r, n = res["adv"]["accuracy"], res["counts"]["n"]
            for ref in getattr(ATTACKS.get(name), "at_least_as_strong_as", ()):
                other = results.get((ref, eps))
                if other is not None:
                    r_ref = other["adv"]["accuracy"]
                    record((name, eps), f"robust_not_above_{ref}", r <= r_ref + _noise(r_ref, n),
                           f"{name} robust accuracy {r:.4f} is above {ref}'s {r_ref:.4f} beyond noise")
            smaller = [e for (a, e) in results if a == name and e < eps]
            if smaller:
                e0 = max(smaller)
                r0 = results[(name, e0)]["adv"]["accuracy"]
                record((name, eps), "robust_monotone_in_eps", r <= r0 + _noise(r0, n),
                       f"{name} robust accuracy {r:.4f} at eps {fmt_eps(eps)} is above {r0:.4f} at eps {fmt_eps(e0)} "
                       f"beyond noise")

    def _todo(self, spec: ModelSpec, dataset: str):
        """(finished results found on disk, the (attack, eps) pairs still to run), agreed by all ranks."""
        results: Dict[Tuple[str, float], Dict[str, Any]] = {}
        todo: List[Tuple[str, float]] = []
        for attack_name in self.cfg.attacks:
            for eps in self._eps_for(attack_name):
                key = self._key(spec, dataset, attack_name, eps)
                done = self._finished(self.result_path(spec.label, dataset, attack_name, eps), key)
                if done is not None:
                    results[(attack_name, eps)] = done
                else:
                    todo.append((attack_name, eps))
        return results, self._agreed(todo)

    def run(self) -> List[Dict[str, Any]]:
        from ..data import expand_datasets

        c = self.cfg
        seed_everything(c.seed)
        datasets = expand_datasets(c.datasets)
        if not datasets:
            raise ValueError(f"--datasets {c.datasets}: nothing to evaluate after expanding collections")
        all_results: List[Dict[str, Any]] = []
        if self.info.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            save_json(self.out / "eval_config.json", {"config": c, "versions": self.versions, "eps_unit": EPS_UNIT})
        for spec in c.models:
            bundle, meta = None, {}
            for dataset in datasets:
                results, todo = self._todo(spec, dataset)
                if todo:
                    if bundle is None:
                        bundle, meta = self._load_model(spec)
                    self._evaluate_dataset(spec, bundle, meta, dataset, todo, results)
                elif self.info.is_main and c.progress:
                    print(f"{spec.label}/{dataset}: {len(results)} finished result(s) found, skipped", file=sys.stderr)
                if self.info.is_main:
                    self._cross_checks(results, spec, dataset)
                    all_results.extend(results[(a, e)] for a in c.attacks for e in self._eps_for(a) if (a, e) in results)
            del bundle
        if self.info.is_main:
            from .report import write_summary

            write_summary(all_results, self.out)
        barrier(self.info)
        return all_results


def run_eval(cfg: EvalConfig) -> List[Dict[str, Any]]:
    """Evaluate every model on every dataset under every attack; see the module docstring.

    Returns one result dict per (model, dataset, attack, eps) on rank 0 (an empty list on other
    ranks), also written as JSON under ``cfg.out`` with ``summary.csv``, ``summary.md`` and plots.
    """
    return Evaluator(cfg).run()
