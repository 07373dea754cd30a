"""Per-seed report rows (``ucat eval``'s :func:`ucat.eval.summary_rows`) and their mean and std over seeds.

A seed's rows: ``summary_rows`` of its results (a row per model, attack and task, and the
``Average`` row with the paper's H), then the same for the temperature-scaled baseline: each
result's ``calibrated`` block (oracle temperature scaling, :mod:`ucat.eval.calibrate`) read as a
result of the model "<label> + TS", whose metrics are those after scaling on the images not used
to fit T. Those rows have no uncertainty columns (null).
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional

import numpy as np

from ..eval import summary_rows
from .config import TS_SUFFIX

#: row keys that identify a row or count images: never averaged over seeds
_IDENTITY = ("model", "dataset", "attack", "eps", "eps_unit", "norm", "n", "n_skipped", "sanity_ok")


def ts_result(r: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The temperature-scaled baseline of one result as a result of "<model> + TS" (None if not fitted)."""
    cal = r.get("calibrated") or {}
    if "clean" not in cal or "adv" not in cal:
        return None
    out = {k: r[k] for k in ("dataset", "attack", "eps", "eps_unit", "attack_config", "sanity") if k in r}
    out.update({"model": r["model"] + TS_SUFFIX, "counts": {"n": int(cal["n_evaluated"]), "n_skipped": 0},
                "clean": dict(cal["clean"]["after"]), "adv": dict(cal["adv"]["after"]),
                "temperature": float(cal["temperature"])})
    return out


def seed_rows(results: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """One seed's report rows: the models', then their temperature-scaled baselines' (with ``temperature``)."""
    rows = summary_rows(results)
    ts = [t for t in (ts_result(r) for r in results) if t is not None]
    ts_rows = summary_rows(ts)
    temps = {(t["model"], t["attack"], t["dataset"]): t["temperature"] for t in ts}
    for row in ts_rows:
        if row["dataset"] == "Average":
            mine = [v for (m, a, _), v in temps.items() if (m, a) == (row["model"], row["attack"])]
            row["temperature"] = float(np.mean(mine)) if mine else None
        else:
            row["temperature"] = temps.get((row["model"], row["attack"], row["dataset"]))
    return rows + ts_rows


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def cell(values: List[Any]) -> Dict[str, Any]:
    """mean, sample std (ddof=1; None with one value) and the per-seed values; None where any is missing."""
    vals = [float(v) if _finite(v) else None for v in values]
    if not vals or any(v is None for v in vals):
        return {"mean": None, "std": None, "values": vals}
    arr = np.asarray(vals, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else None, "values": vals}


def aggregate(per_seed: Dict[int, List[Dict[str, Any]]], order: List[str]) -> List[Dict[str, Any]]:
    """Rows over seeds, in ``order`` (the models), then the same models' "+ TS" rows; per row and task every
    numeric column as :func:`cell` over the seeds (seed order)."""
    seeds = sorted(per_seed)
    keyed = {s: {(r["model"], r["attack"], r["dataset"]): r for r in per_seed[s]} for s in seeds}
    out: List[Dict[str, Any]] = []
    for model in list(order) + [m + TS_SUFFIX for m in order]:
        for r0 in [r for r in per_seed[seeds[0]] if r["model"] == model]:
            key = (model, r0["attack"], r0["dataset"])
            rs = [keyed[s].get(key, {}) for s in seeds]
            names = [k for k in r0 if k not in _IDENTITY]
            out.append({"model": model, "base": model[: -len(TS_SUFFIX)] if model.endswith(TS_SUFFIX) else model,
                        "ts": model.endswith(TS_SUFFIX), "attack": r0["attack"], "task": r0["dataset"],
                        "n": r0["n"], "columns": {k: cell([r.get(k) for r in rs]) for k in names}})
    return out


def find(rows: List[Dict[str, Any]], model: str, attack: str, task: str = "Average") -> Optional[Dict[str, Any]]:
    return next((r for r in rows if (r["model"], r["attack"], r["task"]) == (model, attack, task)), None)


def mean_of(rows: List[Dict[str, Any]], model: str, attack: str, column: str, task: str = "Average") -> Optional[float]:
    r = find(rows, model, attack, task)
    return None if r is None or column not in r["columns"] else r["columns"][column]["mean"]
