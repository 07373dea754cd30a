"""Bootstrap 95% intervals (``--bootstrap N``) of accuracy, ECE, NLL, Brier and AURC, per result and
for the Average row (Efron & Tibshirani 1993; seeded percentile bootstrap over images).

Per result the images are resampled N times (seeded by the run's seed, the same resamples for
every metric) and the 2.5/97.5 percentiles are recorded under ``intervals``; the replicate values
go to ``<result>_bootstrap.npz`` beside it, so the Average row's interval resamples every dataset
independently (replicate k of the average = the mean of the datasets' replicate k) without
recomputing anything. The intervals are in ``summary_intervals.json`` and a ``summary.md`` section.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy as np
import torch

from .. import metrics as M
from ..calibration import bootstrap_replicates, percentile_interval
from ..io import atomic_path, save_json
from . import results as R


def _aurc(z: torch.Tensor, y: torch.Tensor) -> float:
    return M.aurc(1 - torch.softmax(z.double(), -1).max(-1).values, z.argmax(-1) != y)


METRICS = {"accuracy": M.accuracy, "ece": lambda z, y: M.ece(torch.softmax(z.double(), -1), y),
           "nll": M.nll, "brier": lambda z, y: M.brier(torch.softmax(z.double(), -1), y), "aurc": _aurc}


def result_intervals(clean_logits, adv_logits, labels, n_boot: int, seed: int):
    """(the ``intervals`` block, the replicates to store) of one result."""
    reps = {split: bootstrap_replicates(METRICS, z.float(), labels, n_boot, seed)
            for split, z in (("clean", clean_logits), ("adv", adv_logits))}
    block = {"level": 0.95, "n_boot": n_boot, "seed": seed,
             **{m: {split: list(percentile_interval(reps[split][m])) for split in reps} for m in METRICS}}
    return block, reps


def replicates_path(result: Path) -> Path:
    """Where a result's bootstrap replicates lie: ``<result stem>_bootstrap.npz`` beside its JSON."""
    return result.with_name(result.stem + "_bootstrap.npz")


def save_replicates(path: Path, reps: Dict[str, Dict[str, torch.Tensor]]) -> None:
    with atomic_path(replicates_path(path)) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **{f"{s}.{m}": v.numpy() for s, d in reps.items() for m, v in d.items()})


def average_intervals(results: Sequence[Dict[str, Any]], out: Path) -> List[Dict[str, Any]]:
    """Per (model, attack, eps): the Average row's intervals from the stored replicates."""
    groups: Dict[tuple, List[Dict[str, Any]]] = {}
    for r in results:
        if "intervals" in r:
            groups.setdefault((r["model"], r["attack"], float(r["eps"])), []).append(r)
    rows = []
    for (model, attack, eps), rs in groups.items():
        files = [replicates_path(R.result_path(out, r["model"], r["dataset"], r["attack"], float(r["eps"]))) for r in rs]
        if not all(f.is_file() for f in files) or len({r["intervals"]["n_boot"] for r in rs}) != 1:
            continue
        stored = [np.load(f) for f in files]
        row: Dict[str, Any] = {"model": model, "attack": attack, "eps": eps, "datasets": [r["dataset"] for r in rs]}
        for m in METRICS:
            row[m] = {s: list(percentile_interval(torch.from_numpy(np.mean([z[f"{s}.{m}"] for z in stored], 0))))
                      for s in ("clean", "adv")}
        rows.append(row)
    return rows


def write_intervals(results: Sequence[Dict[str, Any]], out: Path) -> str:
    """``summary_intervals.json`` and the Markdown section ("" when no result has intervals)."""
    with_iv = [r for r in results if "intervals" in r]
    if not with_iv:
        return ""
    avg = average_intervals(with_iv, out)
    save_json(out / "summary_intervals.json", {"results": [{k: r[k] for k in ("model", "dataset", "attack", "eps")}
                                                           | {"intervals": r["intervals"]} for r in with_iv],
                                               "averages": avg})
    fmt = lambda iv: f"[{100 * iv[0]:.2f}, {100 * iv[1]:.2f}]"  # noqa: E731
    lines = ["## Bootstrap 95% intervals (%, seeded; Average rows resample every dataset)", "",
             "| Model | Dataset | Attack | eps | Clean acc | Robust acc | Clean ECE | Adv ECE |",
             "|---|---|---|---|---|---|---|---|"]
    for r in with_iv:
        iv = r["intervals"]
        lines.append(f"| {r['model']} | {r['dataset']} | {r['attack']} | {r['eps']:g}/255 | {fmt(iv['accuracy']['clean'])} | "
                     f"{fmt(iv['accuracy']['adv'])} | {fmt(iv['ece']['clean'])} | {fmt(iv['ece']['adv'])} |")
    for a in avg:
        lines.append(f"| {a['model']} | **Average** | {a['attack']} | {a['eps']:g}/255 | {fmt(a['accuracy']['clean'])} | "
                     f"{fmt(a['accuracy']['adv'])} | {fmt(a['ece']['clean'])} | {fmt(a['ece']['adv'])} |")
    return "\n".join(lines) + "\n"


__all__ = ["METRICS", "average_intervals", "result_intervals", "save_replicates", "write_intervals"]
