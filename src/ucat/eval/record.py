"""One result record: the settings it was computed under, its counts, its metrics and its checks.

The per-sample uncertainty scores are computed once per pass here and handed back with the
record (the plots draw them); nothing reads a setting back out of a finished record.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import torch

from ..io import to_jsonable
from ..uncertainty import ALPHA_DESCRIPTIONS
from ..units import EPS_UNIT, fmt_eps, to_fraction
from .checks import sanity_checks
from .config import EvalConfig, ModelSpec
from .intervals import result_intervals
from .selective import selective_block
from .sharding import PassLogits, batch_seed
from .table import measure, pass_scores


@dataclass
class Job:
    """One (model, dataset): the model, its checkpoint metadata, the evaluated data and its classifier."""

    spec: ModelSpec
    dataset: str
    bundle: Any
    ckpt_meta: Dict[str, Any]
    ds: Any
    clf: Any


def title(attack_name: str, eps: float) -> str:
    return f"{attack_name} eps={fmt_eps(eps)}"


def header(job: Job, cfg: EvalConfig, attack_name: str, eps: float, step: float, attack) -> Dict[str, Any]:
    spec, bundle = job.spec, job.bundle
    return {
        "model": spec.label, "arch": spec.model, "pretrained": bundle.pretrained, "checkpoint": spec.checkpoint,
        "checkpoint_metadata": job.ckpt_meta, "dataset": job.dataset, "split": getattr(job.ds, "split", cfg.split),
        "protocol": cfg.protocol, "protocol_overrides": dict(cfg.protocol_overrides),
        "attack": attack_name, "eps": eps, "eps_unit": EPS_UNIT, "eps_fraction": to_fraction(eps),
        "step_size": step, "steps": cfg.steps, "attack_config": attack.config(),
        "logit_scale": job.clf.logit_scale, "temperature": cfg.temperature,
        "uncertainty_alpha": cfg.uncertainty_alpha, "alpha_form": ALPHA_DESCRIPTIONS[cfg.uncertainty_alpha],
        "n_bins": cfg.n_bins, "binning": cfg.binning, "precision": cfg.precision, "seed": cfg.seed,
        "image_size": cfg.image_size or bundle.image_size,
    }


def build_result(job: Job, cfg: EvalConfig, attack_name: str, eps: float, step: float, attack,
                 clean: PassLogits, adv: PassLogits, secs: float
                 ) -> Tuple[Dict[str, Any], Dict[str, Dict[str, torch.Tensor]], Optional[Dict[str, Any]]]:
    """(the result record, the per-sample scores of both passes, the bootstrap replicates or None) of one
    attack on one (model, dataset)."""
    if not torch.equal(clean.index, adv.index):
        raise RuntimeError("clean and adversarial passes saw different samples (unreadable images changed?)")
    if len(clean.labels) == 0:
        raise ValueError(f"dataset {job.dataset!r}: every image was unreadable")
    s = job.clf.logit_scale
    scores = {name: pass_scores(p.logits, s, cfg.temperature, cfg.uncertainty_alpha)
              for name, p in (("clean", clean), ("adv", adv))}
    res = header(job, cfg, attack_name, eps, step, attack)
    res["attack_notes"] = list(adv.notes)
    res["counts"] = {"n": int(len(clean.labels)), "n_skipped": int(clean.n_skipped),
                     "n_classes": int(clean.logits.shape[1])}
    res["clean"] = measure(clean.logits, clean.labels, scores["clean"], cfg.n_bins, cfg.binning)
    res["adv"] = measure(adv.logits, adv.labels, scores["adv"], cfg.n_bins, cfg.binning)
    replicates = None
    if torch.isfinite(clean.logits).all() and torch.isfinite(adv.logits).all():
        res["selective"] = selective_block(clean.logits, adv.logits, clean.labels, cfg.seed)
        if cfg.bootstrap:
            seed = batch_seed(cfg.seed, "bootstrap", job.dataset) % 2 ** 31      # independent per dataset
            res["intervals"], replicates = result_intervals(clean.logits, adv.logits, clean.labels,
                                                            cfg.bootstrap, seed)
    res["sanity"] = sanity_checks(res, clean.logits, adv.logits)
    res["non_finite"] = res["sanity"].pop("non_finite")
    where = f"{job.spec.label}/{job.dataset}/{attack_name}"
    for w in res["sanity"]["warnings"] + [f"{attack_name}: {n}" for n in adv.notes]:
        warnings.warn(f"{where}: {w}", stacklevel=2)
    res.update({"time_s": secs, "config": to_jsonable(cfg)})
    return res, scores, replicates
