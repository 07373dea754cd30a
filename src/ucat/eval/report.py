"""Aggregate reports of ``ucat eval`` results: ``summary.csv`` and ``summary.md``.

A row per (model, dataset, attack, eps), plus an average row per (model, attack, eps) whose H is
the paper's: the harmonic mean of the *averaged* clean and robust accuracy (Lu et al., arXiv
2512.12997, Table 16 caption). Per-dataset H values are the harmonic mean of that dataset's own
clean and robust accuracy.
"""
from __future__ import annotations

import csv
import io
import math
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, Iterable, List, Sequence, Tuple

from ..io import atomic_write_text
from ..units import EPS_UNIT, fmt_eps
from ..metrics import harmonic_mean

# (csv column, split, metric key)
COLUMNS: Sequence[Tuple[str, str, str]] = (
    ("clean_acc", "clean", "accuracy"), ("robust_acc", "adv", "accuracy"),
    ("clean_ece", "clean", "ece"), ("adv_ece", "adv", "ece"),
    ("clean_mce", "clean", "mce"), ("adv_mce", "adv", "mce"),
    ("clean_nll", "clean", "nll"), ("adv_nll", "adv", "nll"),
    ("clean_brier", "clean", "brier"), ("adv_brier", "adv", "brier"),
    ("clean_entropy", "clean", "mean_entropy"), ("adv_entropy", "adv", "mean_entropy"),
    ("clean_aleatoric", "clean", "mean_aleatoric"), ("adv_aleatoric", "adv", "mean_aleatoric"),
    ("clean_epistemic", "clean", "mean_epistemic"), ("adv_epistemic", "adv", "mean_epistemic"),
    ("clean_auroc", "clean", "auroc_max_prob"), ("adv_auroc", "adv", "auroc_max_prob"),
    ("clean_aurc", "clean", "aurc_max_prob"), ("adv_aurc", "adv", "aurc_max_prob"),
)


def _groups(results: Iterable[Dict[str, Any]]) -> "OrderedDict[Tuple[str, str, float], List[Dict[str, Any]]]":
    groups: "OrderedDict[Tuple[str, str, float], List[Dict[str, Any]]]" = OrderedDict()
    for r in results:
        groups.setdefault((r["model"], r["attack"], float(r["eps"])), []).append(r)
    return groups


def _mean(values: List[float]) -> float:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(vals) / len(vals) if vals else float("nan")


def _norm(r: Dict[str, Any]) -> str:
    """The threat model of a result ("linf", "l2"; "" when the attack has none)."""
    return str(r.get("attack_config", {}).get("norm", ""))


def result_row(r: Dict[str, Any]) -> Dict[str, Any]:
    row: Dict[str, Any] = {"model": r["model"], "dataset": r["dataset"], "attack": r["attack"], "eps": r["eps"],
                           "eps_unit": r.get("eps_unit", EPS_UNIT), "norm": _norm(r), "n": r["counts"]["n"],
                           "n_skipped": r["counts"]["n_skipped"]}
    for col, split, key in COLUMNS:
        row[col] = r[split][key]
    row["H"] = harmonic_mean(row["clean_acc"], row["robust_acc"])
    row["sanity_ok"] = all(r.get("sanity", {}).get("checks", {}).values())
    return row


def summary_rows(results: Iterable[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """A row per result, and after each (model, attack, eps) group its ``Average`` row (paper's H)."""
    out: List[Dict[str, Any]] = []
    for (model, attack, eps), rs in _groups(results).items():
        rows = [result_row(r) for r in rs]
        out.extend(rows)
        avg: Dict[str, Any] = {"model": model, "dataset": "Average", "attack": attack, "eps": eps,
                               "eps_unit": rows[0]["eps_unit"], "norm": rows[0]["norm"], "n": sum(r["n"] for r in rows),
                               "n_skipped": sum(r["n_skipped"] for r in rows)}
        for col, _, _ in COLUMNS:
            avg[col] = _mean([r[col] for r in rows])
        avg["H"] = harmonic_mean(avg["clean_acc"], avg["robust_acc"])
        avg["sanity_ok"] = all(r["sanity_ok"] for r in rows)
        out.append(avg)
    return out


def summary_csv(results: Iterable[Dict[str, Any]]) -> str:
    rows = summary_rows(results)
    buf = io.StringIO()
    fields = ["model", "dataset", "attack", "eps", "eps_unit", "norm", "n", "n_skipped", *[c for c, _, _ in COLUMNS],
              "H", "sanity_ok"]
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


def _pct(v: float) -> str:
    return "nan" if v is None or math.isnan(v) else f"{100 * v:.2f}"


def _num(v: float) -> str:
    return "nan" if v is None or math.isnan(v) else f"{v:.3f}"


def summary_table(results: Iterable[Dict[str, Any]]) -> str:
    """Markdown: per (model, attack, eps) a table with a row per dataset and the average row.

    Accuracies, ECE and H in percent; entropy is normalized by log C (in [0, 1]); AUROC is the
    misclassification AUROC of 1 - max prob on the adversarial images. When several models or
    attacks were evaluated, an overview of the averages comes first.
    """
    results = list(results)
    if not results:
        return "_no results_\n"
    rows = summary_rows(results)
    lines: List[str] = []
    groups = _groups(results)
    if len(groups) > 1:
        lines += ["## Overview (averages over datasets)", "",
                  "| Model | Attack | eps | Clean acc | Robust acc | H | Clean ECE | Adv ECE |",
                  "|---|---|---|---:|---:|---:|---:|---:|"]
        for r in rows:
            if r["dataset"] == "Average":
                budget = f"{fmt_eps(r['eps'])} {r['norm']}" if r["norm"] else "-"
                lines.append(f"| {r['model']} | {r['attack']} | {budget} | {_pct(r['clean_acc'])} | "
                             f"{_pct(r['robust_acc'])} | {_pct(r['H'])} | {_pct(r['clean_ece'])} | {_pct(r['adv_ece'])} |")
        lines.append("")
    for (model, attack, eps), rs in groups.items():
        norm = _norm(rs[0])
        threat = f"{attack} ({'L-inf' if norm == 'linf' else norm.upper()}), eps = {fmt_eps(eps)}" if norm else attack
        lines += [f"## {model} under {threat}", "",
                  "| Dataset | n | Clean acc | Robust acc | H | Clean ECE | Adv ECE | Clean entropy | Adv entropy "
                  "| Adv AUROC | Checks |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in rows:
            if (r["model"], r["attack"], float(r["eps"])) != (model, attack, eps):
                continue
            name = f"**{r['dataset']}**" if r["dataset"] == "Average" else r["dataset"]
            lines.append(f"| {name} | {r['n']} | {_pct(r['clean_acc'])} | {_pct(r['robust_acc'])} | {_pct(r['H'])} | "
                         f"{_pct(r['clean_ece'])} | {_pct(r['adv_ece'])} | {_num(r['clean_entropy'])} | "
                         f"{_num(r['adv_entropy'])} | {_num(r['adv_auroc'])} | {'ok' if r['sanity_ok'] else 'WARN'} |")
        lines.append("")
    lines.append(f"Accuracy, ECE (15 equal-width bins unless stated in the JSON) and H in %; eps in {EPS_UNIT} "
                 f"of the pixel range; H of the average row = harmonic mean of the averaged clean and robust "
                 f"accuracy (as in the UCAT paper).")
    return "\n".join(lines) + "\n"


def write_summary(results: Iterable[Dict[str, Any]], out_dir: str | Path) -> None:
    """Write ``summary.csv`` and ``summary.md`` in ``out_dir`` (atomically)."""
    results = list(results)
    out = Path(out_dir)
    atomic_write_text(out / "summary.csv", summary_csv(results))
    atomic_write_text(out / "summary.md", "# ucat eval summary\n\n" + summary_table(results))
