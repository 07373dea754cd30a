"""Outputs for people and other tools: ``report.html`` beside ``summary.md``, and a
CLIP_benchmark-compatible JSON beside each result.

* ``report.html`` (:func:`write_report`): one self-contained page (:mod:`ucat.html`) with the
  summary's tables (sortable), every result's reliability diagram and uncertainty histogram
  embedded, the protocol and the package versions. It opens from disk with no network.
* ``<result>_clip_benchmark.json`` (:func:`clip_benchmark_record`): the record CLIP_benchmark
  writes for ``zeroshot_classification`` (LAION-AI/CLIP_benchmark ``clip_benchmark/cli.py`` and
  ``metrics/zeroshot_classification.py``: ``{dataset, model, pretrained, task, metrics: {acc1,
  acc5, mean_per_class_recall}, language}``; acc5 is null below 5 classes, mean per-class recall
  is scikit-learn's balanced accuracy), on the clean images, so results merge with a user's
  existing benchmark tables; the adversarial numbers follow under ``adversarial`` (a key
  CLIP_benchmark's readers ignore). Dataset names are CLIP_benchmark's where it has the dataset.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

import torch

from .. import html
from ..data.wds import CLIP_BENCHMARK_NAMES
from ..io import save_json
from . import results as R
from .multilabel import ROW_COLUMNS
from .report import present, single_label, summary_rows
from .sharding import PassLogits
from .table import columns, fmt


def _zeroshot_metrics(logits: torch.Tensor, labels: torch.Tensor) -> Dict[str, Optional[float]]:
    c = logits.shape[1]
    top = logits.topk(min(5, c), dim=1).indices                                     # (N, k)
    acc1 = float((top[:, 0] == labels).double().mean())
    acc5 = float((top == labels.view(-1, 1)).any(1).double().mean()) if c >= 5 else None
    pred = top[:, 0]
    recalls = [float((pred[labels == k] == k).double().mean()) for k in range(c) if bool((labels == k).any())]
    return {"acc1": acc1, "acc5": acc5, "mean_per_class_recall": sum(recalls) / len(recalls)}


def clip_benchmark_record(res: Dict[str, Any], clean: PassLogits, adv: PassLogits) -> Dict[str, Any]:
    """The CLIP_benchmark JSON of one result (clean metrics; the attack's under ``adversarial``)."""
    return {"dataset": CLIP_BENCHMARK_NAMES.get(res["dataset"], res["dataset"]), "model": res["arch"],
            "pretrained": res["checkpoint"] or res["pretrained"] or "", "task": "zeroshot_classification",
            "metrics": _zeroshot_metrics(clean.logits, clean.labels), "language": "en",
            "adversarial": {"attack": res["attack"], "eps": res["eps"], "eps_unit": res["eps_unit"],
                            "metrics": _zeroshot_metrics(adv.logits, adv.labels)},
            "ucat": {"model_label": res["model"], "protocol": res["protocol"], "n": res["counts"]["n"]}}


def write_clip_benchmark(path: Path, res: Dict[str, Any], clean: PassLogits, adv: PassLogits) -> None:
    save_json(path.with_name(path.stem + "_clip_benchmark.json"), clip_benchmark_record(res, clean, adv))


def _multilabel_table(results: List[Dict[str, Any]]) -> List[html.Table]:
    multi = [r for r in results if r.get("task") == "multilabel"]
    if not multi:
        return []
    heads = ["Model", "Dataset", "Attack", "eps", "n"] + [f"{h} {sp}" for h, _, _ in ROW_COLUMNS for sp in ("clean", "adv")]
    body = [[r["model"], r["dataset"], r["attack"], f"{r['eps']:g}/255", r["counts"]["n"],
             *[f"{100 * f(r[sp]):.2f}" for _, _, f in ROW_COLUMNS for sp in ("clean", "adv")]] for r in multi]
    return [html.Table("Multi-label results (%)", heads, body)]


def _tables(results: List[Dict[str, Any]]) -> List[html.Table]:
    multi = _multilabel_table(results)
    results = single_label(results)
    rows, cols = summary_rows(results), columns("md")
    tables = []
    groups: Dict[tuple, List[Dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["attack"], float(r["eps"])), []).append(r)
    for (model, attack, eps), rs in groups.items():
        shown = [c for c in cols if c.metric.fn is not None or any(present(r.get(c.name)) for r in rs)]
        body = [[r["dataset"], r["n"], *[fmt(c, r[c.name]) for c in shown], "ok" if r["sanity_ok"] else "WARN"]
                for r in rs]
        keys = [[None, r["n"], *[r[c.name] for c in shown], None] for r in rs]
        avg = [i for i, r in enumerate(rs) if r["dataset"] == "Average"]
        tables.append(html.Table(f"{model} under {attack}, eps {eps:g}/255", ["Dataset", "n", *[c.heading for c in shown],
                                 "Checks"], body, keys, avg))
    return tables + multi


def write_report(results: Iterable[Dict[str, Any]], out: Path, title: str = "ucat eval") -> Path:
    """``report.html`` in ``out``: the summary tables, every result's figures, the protocol and versions."""
    results = list(results)
    figures: List[Path] = []
    for r in single_label(results):
        stem = R.result_path(out, r["model"], r["dataset"], r["attack"], float(r["eps"])).with_suffix("")
        figures += [Path(f"{stem}_reliability.png"), Path(f"{stem}_uncertainty.png"), Path(f"{stem}_riskcov.png")]
    protocols = sorted({str(r.get("protocol")) for r in results})
    versions = results[0].get("versions", {}) if results else {}
    meta = {"protocol": ", ".join(protocols), "results": len(results),
            **{k: versions[k] for k in ("ucat", "torch", "open_clip_torch", "git") if k in versions}}
    note = ("Accuracy, ECE and H in %; eps in 1/255 of the pixel range; click a column heading to sort. "
            "Per-result JSON (every metric, the full config) lies beside this page.")
    page = html.Page(title, _tables(results), figures, meta, note)
    return html.write(page, Path(out) / "report.html")
