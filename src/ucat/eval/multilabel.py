"""Multi-label results: a dataset whose items carry multi-hot targets (``world-multilabel``, ``coco2017``).

The official UCAT multi-label evaluation (VivienLu/UCAT main-multilabel.py 560-694): zero-shot
logits over the label set, attacked with the multi-label PGD (BCE) or CW (``ucat.attacks.multilabel``),
scored by mAP and micro/macro precision, recall and F1 of the top-3 and top-5 labels
(:mod:`ucat.multilabel`, over the whole set rather than per batch). Calibration: per-label ECE of
sigmoid(logits / s) (each label a yes/no forecast, as the BCE attack reads the logits).

A result has ``task: "multilabel"``; its ``clean`` / ``adv`` blocks hold ``mAP``, ``top3`` and
``top5`` (the P/R/F1 dictionaries) and ``label_ece``. ``summary.md`` gets a section of them and
``summary_multilabel.csv`` a row per result.
"""
from __future__ import annotations

import csv
import io
import math
import warnings
from typing import Any, Dict, Iterable, List

from ..attacks import ATTACKS
from ..errors import ConfigError
from ..io import to_jsonable
from ..multilabel import label_ece, multilabel_metrics
from .record import Job, header
from .sharding import PassLogits

TOP_K = (3, 5)
ROW_COLUMNS = (("mAP", "mAP", lambda s: s["mAP"]), ("P@3", "top3_micro_precision", lambda s: s["top3"]["micro_precision"]),
            ("R@3", "top3_micro_recall", lambda s: s["top3"]["micro_recall"]),
            ("F1@3", "top3_micro_f1", lambda s: s["top3"]["micro_f1"]),
            ("F1@5", "top5_micro_f1", lambda s: s["top5"]["micro_f1"]), ("label ECE", "label_ece", lambda s: s["label_ece"]))


def is_multilabel(ds) -> bool:
    return bool(getattr(ds, "multilabel", False))


def check_attacks(dataset: str, attacks: Iterable[str]) -> None:
    """Multi-label data needs multi-label attacks (or ``none``); refused in one line otherwise."""
    bad = [a for a in attacks if a != "none" and not getattr(ATTACKS.get(a), "multilabel", False)]
    if bad:
        raise ConfigError("attacks", f"{', '.join(bad)} attack single labels, but {dataset!r} is multi-label: use "
                                     f"pgd-bce or cw-ml (the official multi-label attacks), or none")


def _split(logits, targets, logit_scale: float) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k in TOP_K:
        m = multilabel_metrics(logits, targets, k)
        out.setdefault("mAP", m["mAP"])                     # mAP does not depend on k
        out[f"top{k}"] = {key: v for key, v in m.items() if key not in ("mAP", "top_k")}
    out["label_ece"] = label_ece(logits, targets, logit_scale)
    return out


def _flat(split: Dict[str, Any]) -> Dict[str, float]:
    flat = {"mAP": split["mAP"], "label_ece": split["label_ece"]}
    for k in TOP_K:
        flat.update({f"top{k}_{key}": v for key, v in split[f"top{k}"].items() if isinstance(v, float)})
    return flat


def multilabel_result(job: Job, cfg, attack_name: str, eps: float, step: float, attack, clean: PassLogits,
                      adv: PassLogits, secs: float) -> Dict[str, Any]:
    """The record of one multi-label (model, dataset, attack, eps)."""
    if len(clean.labels) == 0:
        raise ValueError(f"dataset {job.dataset!r}: every image was unreadable")
    s = job.clf.logit_scale
    res = header(job, cfg, attack_name, eps, step, attack)
    res.update({"task": "multilabel", "attack_notes": list(adv.notes),
                "counts": {"n": int(len(clean.labels)), "n_skipped": int(clean.n_skipped),
                           "n_classes": int(clean.logits.shape[1]),
                           "n_unlabelled": int((clean.labels.sum(1) == 0).sum())}})
    res["clean"], res["adv"] = _split(clean.logits, clean.labels, s), _split(adv.logits, adv.labels, s)
    bad = [f"{name}.{k}" for name in ("clean", "adv") for k, v in _flat(res[name]).items()
           if not (isinstance(v, float) and math.isfinite(v))]
    checks = {"finite": not bad, "robust_map_le_clean": bool(res["adv"]["mAP"] <= res["clean"]["mAP"] + 1e-12)}
    warn = ([f"non-finite metrics: {', '.join(bad)}"] if bad else []) + \
        ([] if checks["robust_map_le_clean"] else ["robust mAP above clean: a weak or broken attack?"])
    for w in warn:
        warnings.warn(f"{job.spec.label}/{job.dataset}/{attack_name}: {w}", stacklevel=2)
    res.update({"sanity": {"checks": checks, "warnings": warn}, "non_finite": bad, "time_s": secs,
                "config": to_jsonable(cfg)})
    return res


def multilabel_markdown(results: List[Dict[str, Any]]) -> str:
    """The summary section of the multi-label results (percent), one table per model and attack."""
    if not results:
        return ""
    lines = ["## Multi-label results (mAP and micro P/R/F1 of the top-k labels, %)", "",
             "| Model | Dataset | Attack | eps | n | " + " | ".join(f"{h} clean | {h} adv" for h, _, _ in ROW_COLUMNS) + " |",
             "|---|---|---|---|---:|" + "---:|" * (2 * len(ROW_COLUMNS))]
    for r in results:
        cells = [f"{100 * f(r[sp]):.2f}" for _, _, f in ROW_COLUMNS for sp in ("clean", "adv")]
        lines.append(f"| {r['model']} | {r['dataset']} | {r['attack']} | {r['eps']:g}/255 | {r['counts']['n']} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def multilabel_csv(results: List[Dict[str, Any]]) -> str:
    buf = io.StringIO()
    fields = ["model", "dataset", "attack", "eps", "eps_unit", "n"] + \
        [f"{sp}_{key}" for _, key, _ in ROW_COLUMNS for sp in ("clean", "adv")]
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in results:
        row = {"model": r["model"], "dataset": r["dataset"], "attack": r["attack"], "eps": r["eps"],
               "eps_unit": r["eps_unit"], "n": r["counts"]["n"]}
        row.update({f"{sp}_{key}": f"{f(r[sp]):.6g}" for _, key, f in ROW_COLUMNS for sp in ("clean", "adv")})
        w.writerow(row)
    return buf.getvalue()
