"""Robust and calibrated zero-shot evaluation: logits once, pure metrics after, one JSON per result.

For every (model, dataset) the text head is built once and the clean logits are computed once;
for every attack the adversarial logits are computed once (each model is attacked with its own
white-box examples). Metrics (:mod:`ucat.eval.table`) are computed over the whole evaluated set,
never per batch. Protocols: :mod:`ucat.protocols` (the UCAT paper, Lu et al., arXiv 2512.12997:
PGD-100 / CW-100 / AutoAttack at eps = 1/255, step 1/255; H = harmonic mean of the averaged clean
and robust accuracy); ECE with 15 equal-width bins (Guo et al., ICML 2017) on softmax(s * cos).

Distributed: :mod:`ucat.eval.sharding` (batches dealt to ranks, seeded per batch, merged by
index: a ``torchrun`` run equals a single process exactly). The process group is owned by
:func:`ucat.eval.sharding.process_group`, entered by :func:`run_eval` (and ``--estimate``).

Resumable and never stale: :mod:`ucat.eval.results` (each result JSON is written atomically when
its work is done, keyed by the weights, the data and every setting; a rerun loads what is still
valid and recomputes, saying why, what is not).
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from tqdm.auto import tqdm

from ..attacks import ATTACKS, create_attack
from ..data import build_dataset, expand_datasets, resolve_num_workers, subsample
from ..data.cache import cached_dataset
from ..device import DistInfo, autocast, barrier, check_precision, seed_everything
from ..errors import ConfigError, NonFiniteError
from ..io import atomic_path, package_versions, save_json
from ..models import ZeroShotClassifier, load_clip
from ..models.checkpoint import load_vision_weights
from ..units import EPS_UNIT, to_fraction
from . import results as R
from .calibrate import calibrate_result, zero_shot_fit
from .checks import cross_checks
from .config import EvalConfig, ModelSpec, validate
from .interop import write_clip_benchmark, write_report
from .intervals import save_replicates, write_intervals
from .multilabel import check_attacks, is_multilabel, multilabel_result
from .ood import evaluate_ood
from .plots import reliability_diagram, risk_coverage_plot, uncertainty_histogram
from .record import Job, build_result, title
from .selective import curves as selective_curves
from .report import write_summary
from .sharding import PassLogits, agreed, batch_seed, loader, merge, process_group, rank_batches

Todo = List[Tuple[str, float]]


@dataclass
class Plan:
    """What is finished and what is still to run for one (model, dataset), agreed by every rank."""

    results: Dict[Tuple[str, float], Dict[str, Any]]
    todo: Todo
    keys: Dict[Tuple[str, float], Dict[str, Any]]


class Evaluator:
    """Runs an :class:`EvalConfig` in a process group ``info`` (see :func:`run_eval`)."""

    def __init__(self, cfg: EvalConfig, info: DistInfo):
        validate(cfg)
        self.cfg, self.info, self.device = cfg, info, info.device
        check_precision(cfg.precision, self.device)
        for a in cfg.attacks:
            for eps in self.eps_for(a):
                self.attack(a, eps)          # unknown attacks and bad options fail now, before any work
        self.out = Path(cfg.out)
        self.hashes = R.FileHashes(self.out)
        self._data_fingerprints: Dict[str, Dict[str, Any]] = {}
        self.fits: Dict[Tuple[Any, ...], Dict[str, Any]] = {}      # zero-shot temperatures, per model (and attack)
        self.ood_records: List[Dict[str, Any]] = []
        if cfg.ood:
            self.attack(cfg.ood_attack, cfg.eps[0])                    # a bad OOD attack fails now, too
        self.versions = package_versions()

    # ---- settings
    def eps_for(self, attack_name: str) -> List[float]:
        """The budgets an attack runs at: every eps, or only 0 for an attack without one (``none``)."""
        return list(self.cfg.eps) if getattr(ATTACKS.get(attack_name), "uses_eps", True) else [0.0]

    def step_size(self, eps: float) -> float:
        """The step in 1/255 units: the configured one (1/255 by default), or eps when unset."""
        return self.cfg.step_size if self.cfg.step_size is not None else eps

    def attack(self, attack_name: str, eps: float, **override):
        """The attack as configured (``override``: e.g. fewer ``steps`` or ``n_iter``, for --estimate)."""
        c = self.cfg
        opts = dict(c.attack_options.get(attack_name, {}))
        if c.norm != "linf":
            opts.setdefault("norm", c.norm)
        if c.restarts != 1:
            opts.setdefault("restarts", c.restarts)
        kw = dict(eps=to_fraction(eps), step_size=to_fraction(self.step_size(eps)), steps=c.steps, **opts)
        kw.update(override)
        try:
            return create_attack(attack_name, **kw)
        except ConfigError as e:                 # the attack's own check: named as the -A/--attack-option setting
            raise ConfigError("attack_option", e.message) if e.param == "attack_options" else e from None
        except (TypeError, ValueError) as e:
            raise _refusal(attack_name, opts, c.attack_options.get(attack_name, {}), e) from None

    def datasets(self) -> List[str]:
        names = expand_datasets(self.cfg.datasets)
        if not names:
            raise ConfigError("datasets", f"{self.cfg.datasets}: nothing to evaluate after expanding collections")
        return names

    # ---- resume
    def result_path(self, label: str, dataset: str, attack: str, eps: float) -> Path:
        return R.result_path(self.out, label, dataset, attack, eps)

    def plan(self, spec: ModelSpec, dataset: str, verbose: bool = True) -> Plan:
        """The finished results on disk and the (attack, eps) pairs still to run, agreed by all ranks."""
        c = self.cfg
        weights = R.weights_fingerprint(spec, self.hashes)
        if dataset not in self._data_fingerprints:          # one walk of the files per dataset and run
            self._data_fingerprints[dataset] = R.data_fingerprint(dataset, c.data_root, c.split)
        data = self._data_fingerprints[dataset]
        plan = Plan({}, [], {})
        for attack_name in c.attacks:
            for eps in self.eps_for(attack_name):
                key = R.result_key(c, spec, dataset, attack_name, eps, weights, data)
                path = self.result_path(spec.label, dataset, attack_name, eps)
                done, why = R.load_finished(path, key) if c.resume else (None, None)
                plan.keys[(attack_name, eps)] = key
                if done is not None:
                    plan.results[(attack_name, eps)] = done
                else:
                    plan.todo.append((attack_name, eps))
                    if why and verbose and self.info.is_main:
                        print(f"recomputing {path}: {why}", file=sys.stderr)
        plan.todo = agreed(plan.todo, self.info)
        return plan

    # ---- models and data
    def load_model(self, spec: ModelSpec):
        """(the CLIP bundle in eval mode, the checkpoint's metadata)."""
        bundle = load_clip(spec.model, spec.pretrained, device=self.device)
        meta = (load_vision_weights(bundle, spec.checkpoint) or {}) if spec.checkpoint else {}
        bundle.model.eval()
        bundle.encoder.eval()
        return bundle, meta

    def build(self, name: str, image_size: int, split=None, templates: bool = True):
        """``build_dataset`` with the run's data root, class names and interpolation (and its templates)."""
        c = self.cfg
        kw: Dict[str, Any] = {}
        if templates and c.templates:
            kw["templates"] = c.templates if isinstance(c.templates, str) else list(c.templates)
        for opt in ("classnames", "interpolation"):
            if getattr(c, opt) is not None:
                kw[opt] = getattr(c, opt)
        ds = build_dataset(name, root=c.data_root, split=split, image_size=image_size, **kw)
        return cached_dataset(ds, c.data_cache)                 # the same items, from the uint8 cache when given

    def dataset(self, name: str, image_size: int):
        """The evaluated (seeded, subsampled) dataset; refused when it has fewer than 2 classes."""
        c = self.cfg
        ds = self.build(name, image_size, c.split)
        classes = list(getattr(ds, "classes", []) or [])
        if len(classes) < 2:
            raise ValueError(f"dataset {name!r} has {len(classes)} class(es) {classes}: zero-shot classification "
                             f"needs at least 2 (add a second class folder)")
        return subsample(ds, c.n_samples, seed=c.seed)

    def classifier(self, bundle, ds):
        """The zero-shot classifier of ``ds`` (its text head built once, or read from the cache), in eval mode.

        Evaluation never trains. In fp32, frozen weights let attacks skip saving activations for
        weight gradients. Under autocast they are left as they are: autocast caches its low-precision
        copy of a weight only for leaves that require grad, so frozen weights are re-cast on every op
        (a 4.5x slower bf16 attack step on AVX-512-bf16 CPUs, docs/performance.md). Attacks take
        gradients w.r.t. the input only either way.
        """
        clf = ZeroShotClassifier.from_dataset(bundle, ds).eval()
        if self.cfg.precision == "fp32":
            clf.requires_grad_(False)
        return clf

    # ---- logits
    def logits(self, clf, ds, attack=None, seed_parts: Sequence[Any] = (), desc: str = "") -> PassLogits:
        """This rank's logits over its batches of ``ds``, adversarial if ``attack`` (seeded per batch)."""
        c = self.cfg
        batches = rank_batches(len(ds), c.batch_size, self.info)
        parts: List[PassLogits] = []
        devices = [self.device] if self.device.type == "cuda" else []
        cuda = self.device.type == "cuda"
        with _bar(len(ds), desc, c.progress and self.info.is_main) as bar:
            batch_iter = loader(ds, batches, resolve_num_workers(c.num_workers, self.device), pin_memory=cuda)
            for (bid, _), (images, labels, index, n_skip) in zip(batches, batch_iter):
                notes: List[str] = []
                if len(labels):
                    images = images.to(self.device, non_blocking=True)
                    if attack is not None:
                        with torch.random.fork_rng(devices=devices):
                            torch.manual_seed(batch_seed(c.seed, *seed_parts, bid))
                            with autocast(self.device, c.precision):
                                images = attack(clf, images, labels.to(self.device, non_blocking=True))
                        notes = list(attack.notes)
                    with torch.no_grad(), autocast(self.device, c.precision):
                        out = clf(images).float().cpu()                               # (B, C)
                    parts.append(PassLogits(index, labels, out, int(n_skip), notes))
                else:
                    parts.append(PassLogits(index, labels, torch.empty(0, clf.num_classes), int(n_skip)))
                bar.update(len(labels) + int(n_skip))
        return PassLogits.concat(parts, clf.num_classes)

    # ---- one (model, dataset)
    def _evaluate_dataset(self, job: Job, plan: Plan) -> None:
        c = self.cfg
        locks = {t: R.ResultLock(self.result_path(job.spec.label, job.dataset, *t)) for t in plan.todo}
        try:
            if self.info.is_main:
                for lock in locks.values():
                    lock.acquire()
            tag = f"{job.spec.label}/{R.dataset_slug(job.dataset)}"
            clean = merge(self.logits(job.clf, job.ds, desc=f"{tag} clean"), self.info)
            for attack_name, eps in plan.todo:
                t0 = time.time()
                attack = self.attack(attack_name, eps)
                seed_parts = (job.spec.label, job.dataset, attack_name, eps)
                adv = merge(self.logits(job.clf, job.ds, attack, seed_parts, f"{tag} {title(attack_name, eps)}"),
                            self.info)
                zero_shot_fit(self, job, attack, attack_name, eps)            # collective: every rank
                if self.info.is_main and is_multilabel(job.ds):
                    res, scores, replicates = multilabel_result(job, c, attack_name, eps, self.step_size(eps), attack,
                                                                clean, adv, time.time() - t0), None, None
                elif self.info.is_main:
                    res, scores, replicates = build_result(job, c, attack_name, eps, self.step_size(eps), attack,
                                                           clean, adv, time.time() - t0)
                    calibrate_result(self, res, job, attack_name, eps, clean, adv)
                if self.info.is_main:
                    res.update({"world_size": self.info.world_size, "key": plan.keys[(attack_name, eps)],
                                "versions": self.versions})
                    self._write(self.result_path(job.spec.label, job.dataset, attack_name, eps), res, clean, adv,
                                scores, replicates)
                    plan.results[(attack_name, eps)] = res
                    locks.pop((attack_name, eps)).release()
                barrier(self.info)
        finally:
            for lock in locks.values():
                lock.release()

    def _write(self, path: Path, res: Dict[str, Any], clean: PassLogits, adv: PassLogits,
               scores: Optional[Dict[str, Dict[str, torch.Tensor]]], replicates: Optional[Dict[str, Any]]) -> None:
        """Plots, logits, then the JSON (last: its presence marks the result finished)."""
        stem = path.with_suffix("")
        stem.parent.mkdir(parents=True, exist_ok=True)
        if self.cfg.plots and scores is not None:           # multi-label results have no reliability bins
            head = f"{res['model']} | {res['dataset']} | {title(res['attack'], res['eps'])}"
            reliability_diagram(res["clean"]["reliability"], res["adv"]["reliability"], f"{stem}_reliability.png", head)
            uncertainty_histogram(scores["clean"], scores["adv"], f"{stem}_uncertainty.png", head)
            if torch.isfinite(clean.logits).all() and torch.isfinite(adv.logits).all():
                risk_coverage_plot(selective_curves(clean.logits, adv.logits, clean.labels), f"{stem}_riskcov.png", head)
        if replicates is not None:
            save_replicates(path, replicates)
        if self.cfg.save_logits:
            with atomic_path(f"{stem}_logits.npz") as tmp:
                with open(tmp, "wb") as fh:
                    np.savez_compressed(fh, index=clean.index.numpy(), labels=clean.labels.numpy(),
                                        clean=clean.logits.numpy(), adv=adv.logits.numpy())
        if res.get("task") != "multilabel":
            write_clip_benchmark(path, res, clean, adv)
        save_json(path, res)   # last: its presence marks the result finished

    # ---- the run
    def _model(self, spec: ModelSpec, datasets: List[str]) -> List[Dict[str, Any]]:
        c, out = self.cfg, []
        bundle, meta = None, {}
        for dataset in datasets:
            plan = self.plan(spec, dataset)
            if plan.todo:
                if bundle is None:
                    bundle, meta = self.load_model(spec)
                ds = self.dataset(dataset, c.image_size or bundle.image_size)
                if is_multilabel(ds):
                    check_attacks(dataset, [a for a, _ in plan.todo])
                job = Job(spec, dataset, bundle, meta, ds, self.classifier(bundle, ds))
                self._evaluate_dataset(job, plan)
            elif self.info.is_main and c.progress:
                print(f"{spec.label}/{dataset}: {len(plan.results)} finished result(s) found, skipped", file=sys.stderr)
            if c.ood:
                if bundle is None:
                    bundle, meta = self.load_model(spec)
                evaluate_ood(self, spec, bundle, dataset)
            if self.info.is_main:
                save = lambda key, res, d=dataset: save_json(self.result_path(spec.label, d, *key), res)  # noqa: E731
                if not any(r.get("task") == "multilabel" for r in plan.results.values()):
                    cross_checks(plan.results, f"{spec.label}/{dataset}", save)
                out.extend(plan.results[(a, e)] for a in c.attacks for e in self.eps_for(a) if (a, e) in plan.results)
        return out

    def run(self) -> List[Dict[str, Any]]:
        """Every (model, dataset, attack, eps) result on rank 0 (an empty list elsewhere)."""
        c = self.cfg
        seed_everything(c.seed)
        datasets = self.datasets()
        all_results: List[Dict[str, Any]] = []
        try:
            for spec in c.models:
                all_results.extend(self._model(spec, datasets))
        finally:
            if self.info.is_main:
                self.hashes.save()
        if self.info.is_main:                    # written when the run's results are: a refused run overwrites nothing
            self.out.mkdir(parents=True, exist_ok=True)
            save_json(self.out / "eval_config.json", {"config": c, "versions": self.versions, "eps_unit": EPS_UNIT})
            write_summary(all_results, self.out, self.ood_records, write_intervals(all_results, self.out))
            write_report(all_results, self.out)
        barrier(self.info)
        _refuse_non_finite(all_results)
        return all_results


def _refusal(attack_name: str, opts: Dict[str, Any], user: Dict[str, Any], e: Exception) -> ConfigError:
    """The setting an attack refused, named as the parameter that set it (``restarts``, ``norm`` or an option)."""
    culprit = next((k for k in opts if f"'{k}'" in str(e) or k in str(e)), None)
    param = "attack_option" if culprit is None or culprit in user else culprit
    given = ", ".join(f"{k}={v!r}" for k, v in opts.items()) or "no options"
    return ConfigError(param, f"is not accepted by {attack_name} ({given}): {e}")


def _bar(total: int, desc: str, enabled: bool):
    return tqdm(total=total, desc=desc, unit="img", leave=False, dynamic_ncols=True, file=sys.stderr,
                disable=not enabled)


def _refuse_non_finite(results: List[Dict[str, Any]]) -> None:
    bad = [f"{r['model']}/{r['dataset']}/{r['attack']} eps={r['eps']:g}" for r in results
           if not r["sanity"]["checks"].get("finite", True)]
    if bad:
        first = next(r for r in results if not r["sanity"]["checks"].get("finite", True))
        keys = first.get("non_finite", [])
        logits = "NaN/infinite logits, " if "logits" in first["sanity"]["warnings"][0] else ""
        raise NonFiniteError(f"non-finite metrics in {len(bad)} result(s) ({', '.join(bad[:3])}"
                             f"{', ...' if len(bad) > 3 else ''}): {logits}{', '.join(keys[:4])}"
                             f"{', ...' if len(keys) > 4 else ''}; the model or the attack diverged (check the "
                             f"weights); results written with null, listed under 'non_finite'")


def run_eval(cfg: EvalConfig) -> List[Dict[str, Any]]:
    """Evaluate every model on every dataset under every attack; see the module docstring.

    Returns one result dict per (model, dataset, attack, eps) on rank 0 (an empty list on other
    ranks), also written as JSON under ``cfg.out`` with ``summary.csv``, ``summary.md`` and plots.
    """
    with process_group(cfg.device) as info:
        return Evaluator(cfg, info).run()
