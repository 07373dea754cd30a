"""``ucat eval --estimate``: how long an evaluation will take, and its peak memory, before running it.

Robust evaluation is the most expensive thing ucat users run (PGD-100 or AutoAttack on 16
datasets). This times, per model, one batch of the first dataset that still has work: loading it,
building the text head, the clean forward, and every attack at two small budgets (1 and 2
iterations: ``steps`` for PGD/CW/uncertainty, ``n_iter`` and a proportional share of Square's
queries for AutoAttack). An attack's time is close to linear in its budget, ``t(k) = a + k b``,
so the two timings give ``a`` and ``b`` and the full budget's time per image. Finished results
(resume) are left out, as the run would skip them, and under torchrun each rank gets its share.

AutoAttack attacks only the points that are still classified correctly; with 1-2 iterations
more points survive to the later attacks than with the full budget, so its estimate leans high.
Nothing is written to disk.
"""
from __future__ import annotations

import resource
import sys
import time
from typing import Any, Dict, List, Tuple

import torch

from ..units import fmt_eps
from ..device import autocast, seed_everything
from .config import EvalConfig
from .evaluator import Evaluator
from .sharding import loader, process_group

PROBES = (1, 2)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def _budget(attack) -> Tuple[str, int]:
    """The knob that scales an attack's cost and its configured value."""
    if hasattr(attack, "n_iter"):
        return "n_iter", int(attack.n_iter)
    return "steps", int(getattr(attack, "steps", 0))


def _probe_overrides(full, knob: str, k: int, budget: int) -> Dict[str, Any]:
    over: Dict[str, Any] = {knob: k}
    if hasattr(full, "n_queries") and budget > 0:           # AutoAttack's Square: same share of its queries
        over["n_queries"] = max(1, round(int(full.n_queries) * k / budget))
    return over


def _seconds_per_image(ev: Evaluator, clf, images, labels, attack_name: str, eps: float) -> Dict[str, Any]:
    """Seconds per image of one attack at its configured budget, from timings at 1 and 2 iterations."""
    device, prec = ev.device, ev.cfg.precision
    full = ev.attack(attack_name, eps)
    knob, budget = _budget(full)
    n = images.shape[0]

    def run(attack):
        torch.manual_seed(0)
        with autocast(device, prec):
            x_adv = attack(clf, images, labels)
            with torch.no_grad():
                clf(x_adv)

    if budget <= max(PROBES):                               # cheap enough to time as configured
        run(full)                                           # warm-up (allocations, kernels)
        t = _timed(lambda: run(full), device)
        return {"s_per_image": t / n, "budget": f"{knob}={budget}", "method": "timed at the full budget"}
    probes = [ev.attack(attack_name, eps, **_probe_overrides(full, knob, k, budget)) for k in PROBES]
    run(probes[0])                                          # warm-up
    t1, t2 = (_timed(lambda a=a: run(a), device) for a in probes)
    per_iter = max(t2 - t1, 0.0)
    fixed = max(t1 - per_iter, 0.0)
    total = fixed + budget * per_iter
    return {"s_per_image": total / n, "budget": f"{knob}={budget}",
            "method": f"t({PROBES[0]})={t1:.3g} s, t({PROBES[1]})={t2:.3g} s on {n} images, linear in {knob}"}


def _peak_memory(device: torch.device) -> Dict[str, Any]:
    if device.type == "cuda":
        return {"peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30,
                "peak_memory_kind": "CUDA memory allocated by torch (one batch)"}
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss       # Linux: KiB
    return {"peak_memory_gib": kib / 2**20, "peak_memory_kind": "process peak RSS (whole process)"}


def _batch(ev: Evaluator, first, name: str):
    """(images, labels, load seconds per image, batch size) of the first batch of ``first``."""
    b = min(ev.cfg.batch_size, len(first))
    t0 = time.perf_counter()
    images, labels, _, _ = next(iter(loader(first, [(0, list(range(b)))], 0)))
    load_s = (time.perf_counter() - t0) / max(1, images.shape[0])
    if images.shape[0] == 0:
        raise ValueError(f"estimate: the first {b} images of {name!r} are all unreadable")
    return images.to(ev.device), labels.to(ev.device), load_s, b


def _model_rows(ev: Evaluator, spec, work: List[Tuple[str, List[Tuple[str, float]]]]):
    """(rows, the model's summary) of one model over the datasets that still have work."""
    cfg, device, world = ev.cfg, ev.device, ev.info.world_size
    bundle, _ = ev.load_model(spec)
    size = cfg.image_size or bundle.image_size
    first = ev.dataset(work[0][0], size)
    t0 = time.perf_counter()
    clf = ev.classifier(bundle, first)
    head_s = time.perf_counter() - t0
    images, labels, load_s, b = _batch(ev, first, work[0][0])

    def clean():
        with torch.no_grad(), autocast(device, cfg.precision):
            clf(images)

    clean()
    clean_s = _timed(clean, device) / images.shape[0]
    costs = {t: _seconds_per_image(ev, clf, images, labels, *t) for t in sorted({t for _, todo in work for t in todo})}
    rows: List[Dict[str, Any]] = []
    for d, todo in work:
        n = len(ev.dataset(d, size)) if d != work[0][0] else len(first)
        share = -(-n // world)                               # this rank's images
        rows.append({"model": spec.label, "dataset": d, "images": n, "attack": "clean", "eps": None,
                     "seconds": share * (clean_s + load_s), "s_per_image": clean_s + load_s, "budget": "",
                     "method": "timed"})
        for attack_name, eps in todo:
            c = costs[(attack_name, eps)]
            rows.append({"model": spec.label, "dataset": d, "images": n, "attack": attack_name, "eps": eps,
                         "seconds": share * (c["s_per_image"] + load_s), "s_per_image": c["s_per_image"] + load_s,
                         "budget": c["budget"], "method": c["method"]})
    summary = {"model": spec.label, "seconds": sum(r["seconds"] for r in rows), "timed_on": work[0][0], "batch": b,
               "text_head_s_first_dataset": head_s, "load_s_per_image": load_s, "datasets_with_work": len(work)}
    return rows, summary


def _estimate(ev: Evaluator) -> Dict[str, Any]:
    cfg, device = ev.cfg, ev.device
    seed_everything(cfg.seed)
    datasets = ev.datasets()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rows: List[Dict[str, Any]] = []
    per_model: List[Dict[str, Any]] = []
    for spec in cfg.models:
        work = [(d, ev.plan(spec, d, verbose=False).todo) for d in datasets]
        work = [(d, todo) for d, todo in work if todo]
        if not work:
            per_model.append({"model": spec.label, "note": "every result is already finished (resume)"})
            continue
        model_rows, summary = _model_rows(ev, spec, work)
        rows += model_rows
        per_model.append(summary)
    out = {"rows": rows, "models": per_model, "total_seconds": sum(r["seconds"] for r in rows),
           "world_size": ev.info.world_size, "device": str(device), "precision": cfg.precision,
           "text_heads": "one text-tower pass per (model, dataset), cached on disk; not included",
           "is_main": ev.info.is_main}
    out.update(_peak_memory(device))
    return out


def estimate_eval(cfg: EvalConfig) -> Dict[str, Any]:
    """The estimate as a dict: per (model, dataset, attack, eps) rows, the total and peak memory."""
    with process_group(cfg.device) as info:
        return _estimate(Evaluator(cfg, info))


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def format_estimate(est: Dict[str, Any]) -> str:
    """A plain-text table of :func:`estimate_eval`'s result."""
    lines = [f"Estimate on {est['device']} ({est['precision']}"
             + (f", {est['world_size']} processes" if est["world_size"] > 1 else "") + "):", ""]
    lines.append(f"{'model':<24} {'dataset':<22} {'images':>7} {'attack':<14} {'eps':>5} {'s/image':>9} {'time':>10}")
    for r in est["rows"]:
        eps = "" if r["eps"] is None else fmt_eps(r["eps"])
        lines.append(f"{r['model'][:24]:<24} {r['dataset'][:22]:<22} {r['images']:>7} {r['attack'][:14]:<14} "
                     f"{eps:>5} {r['s_per_image']:>9.3g} {_hms(r['seconds']):>10}")
    lines.append("")
    for m in est["models"]:
        if "note" in m:
            lines.append(f"{m['model']}: {m['note']}")
        else:
            lines.append(f"{m['model']}: {_hms(m['seconds'])} in all, timed on one batch of {m['batch']} images of "
                         f"{m['timed_on']}")
    lines.append(f"total: {_hms(est['total_seconds'])} (h:mm:ss); peak memory {est['peak_memory_gib']:.2f} GiB "
                 f"({est['peak_memory_kind']})")
    lines.append("Attacks were timed at 1 and 2 iterations and extrapolated linearly; AutoAttack's estimate "
                 "leans high (it attacks only points still correct). Text heads: " + est["text_heads"] + ".")
    return "\n".join(lines)


def print_estimate(cfg: EvalConfig) -> Dict[str, Any]:
    est = estimate_eval(cfg)
    if est["is_main"]:
        print(format_estimate(est))
        sys.stdout.flush()
    return est
