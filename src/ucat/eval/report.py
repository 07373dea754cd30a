"""Aggregate reports of ``ucat eval`` results: ``summary.csv``, ``summary.md`` and the demo's tables.

A row per (model, dataset, attack, eps), plus an average row per (model, attack, eps) whose H is
the paper's: the harmonic mean of the *averaged* clean and robust accuracy (Lu et al., arXiv
2512.12997, Table 16 caption). Per-dataset H values are the harmonic mean of that dataset's own
clean and robust accuracy. Which columns exist and where they show: :data:`ucat.eval.table.METRICS`.
"""
from __future__ import annotations

import csv
import io
import math
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Sequence, Tuple

from ..io import atomic_write_text
from ..units import EPS_UNIT, fmt_eps
from .multilabel import multilabel_csv, multilabel_markdown
from .ood import ood_markdown
from .table import Column, columns, fmt, row_values

GroupKey = Tuple[str, str, float]      # (model, attack, eps)


def _groups(results: Iterable[Dict[str, Any]]) -> "OrderedDict[GroupKey, List[Dict[str, Any]]]":
    groups: "OrderedDict[GroupKey, List[Dict[str, Any]]]" = OrderedDict()
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
    """The report row of one result: identity, counts, every column of the metric table, the checks."""
    row: Dict[str, Any] = {"model": r["model"], "dataset": r["dataset"], "attack": r["attack"], "eps": r["eps"],
                           "eps_unit": r.get("eps_unit", EPS_UNIT), "norm": _norm(r), "n": r["counts"]["n"],
                           "n_skipped": r["counts"]["n_skipped"]}
    row.update(row_values(r))
    row["sanity_ok"] = all(r.get("sanity", {}).get("checks", {}).values())
    return row


def _average(model: str, attack: str, eps: float, rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    avg: Dict[str, Any] = {"model": model, "dataset": "Average", "attack": attack, "eps": eps,
                           "eps_unit": rows[0]["eps_unit"], "norm": rows[0]["norm"], "n": sum(r["n"] for r in rows),
                           "n_skipped": sum(r["n_skipped"] for r in rows)}
    for c in columns():
        if c.split is not None:
            avg[c.name] = _mean([r[c.name] for r in rows])
    for c in columns():
        if c.split is None:
            avg[c.name] = c.metric.fn(avg)          # derived from the averages (the paper's H)
    avg["sanity_ok"] = all(r["sanity_ok"] for r in rows)
    return avg


def summary_rows(results: Iterable[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """A row per result, and after each (model, attack, eps) group its ``Average`` row (paper's H)."""
    out: List[Dict[str, Any]] = []
    for (model, attack, eps), rs in _groups(results).items():
        rows = [result_row(r) for r in rs]
        out.extend(rows + [_average(model, attack, eps, rows)])
    return out


def summary_csv(results: Iterable[Dict[str, Any]]) -> str:
    rows = summary_rows(results)
    buf = io.StringIO()
    fields = ["model", "dataset", "attack", "eps", "eps_unit", "norm", "n", "n_skipped",
              *[c.name for c in columns("csv")], "sanity_ok"]
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for row in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else "nan" if v is None else v) for k, v in row.items()})
    return buf.getvalue()


def present(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and v != v)


def markdown_table(rows: Sequence[Dict[str, Any]], lead: Sequence[Tuple[str, str, Callable[[Dict[str, Any]], Any]]],
                   cols: Sequence[Column], trail: Sequence[Tuple[str, str, Callable[[Dict[str, Any]], Any]]] = (),
                   digits: int = 2, demo: bool = False) -> List[str]:
    """Markdown lines: ``lead`` (heading, align, cell) columns, the metric ``cols``, then ``trail``.

    Columns the evaluator fills only on request (temperature-scaled values) are left out when no row has one.
    """
    cols = [c for c in cols if c.metric.fn is not None or any(present(r.get(c.name)) for r in rows)]
    heads = [h for h, _, _ in lead] + [c.demo_heading if demo else c.heading for c in cols] + [h for h, _, _ in trail]
    aligns = [a for _, a, _ in lead] + ["---:"] * len(cols) + [a for _, a, _ in trail]
    lines = ["| " + " | ".join(heads) + " |", "|" + "|".join(aligns) + "|"]
    for r in rows:
        cells = [str(f(r)) for _, _, f in lead] + [fmt(c, r[c.name], digits) for c in cols] + [str(f(r)) for _, _, f in trail]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _budget(r: Dict[str, Any]) -> str:
    return f"{fmt_eps(r['eps'])} {r['norm']}" if r["norm"] else "-"


def _threat(attack: str, eps: float, norm: str) -> str:
    return f"{attack} ({'L-inf' if norm == 'linf' else norm.upper()}), eps = {fmt_eps(eps)}" if norm else attack


def summary_table(results: Iterable[Dict[str, Any]]) -> str:
    """Markdown: per (model, attack, eps) a table with a row per dataset and the average row.

    Accuracies, ECE and H in percent; entropy is normalized by log C (in [0, 1]); AUROC is the
    misclassification AUROC of 1 - max prob on the adversarial images. When several models or
    attacks were evaluated, an overview of the averages comes first.
    """
    results = single_label(results)
    if not results:
        return "_no results_\n"
    rows = summary_rows(results)
    lines: List[str] = []
    groups = _groups(results)
    if len(groups) > 1:
        lead = [("Model", "---", lambda r: r["model"]), ("Attack", "---", lambda r: r["attack"]),
                ("eps", "---", _budget)]
        lines += ["## Overview (averages over datasets)", ""]
        lines += markdown_table([r for r in rows if r["dataset"] == "Average"], lead, columns("overview")) + [""]
    for (model, attack, eps), rs in groups.items():
        lines += [f"## {model} under {_threat(attack, eps, _norm(rs[0]))}", ""]
        mine = [r for r in rows if (r["model"], r["attack"], float(r["eps"])) == (model, attack, eps)]
        lead = [("Dataset", "---", lambda r: f"**{r['dataset']}**" if r["dataset"] == "Average" else r["dataset"]),
                ("n", "---:", lambda r: r["n"])]
        trail = [("Checks", "---", lambda r: "ok" if r["sanity_ok"] else "WARN")]
        lines += markdown_table(mine, lead, columns("md"), trail) + [""]
    lines.append(f"Accuracy, ECE (15 equal-width bins unless stated in the JSON) and H in %; eps in {EPS_UNIT} "
                 f"of the pixel range; H of the average row = harmonic mean of the averaged clean and robust "
                 f"accuracy (as in the UCAT paper).")
    return "\n".join(lines) + "\n"


def single_label(results: Iterable[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The single-label results (multi-label ones have their own tables: :mod:`ucat.eval.multilabel`)."""
    return [r for r in results if r.get("task") != "multilabel"]


def write_summary(results: Iterable[Dict[str, Any]], out_dir: str | Path,
                  ood: Sequence[Dict[str, Any]] = (), extra: str = "") -> None:
    """Write ``summary.csv`` and ``summary.md`` (and ``summary_multilabel.csv``) in ``out_dir`` (atomically)."""
    results = list(results)
    out = Path(out_dir)
    multi = [r for r in results if r.get("task") == "multilabel"]
    single = single_label(results)
    atomic_write_text(out / "summary.csv", summary_csv(single))
    if multi:
        atomic_write_text(out / "summary_multilabel.csv", multilabel_csv(multi))
    atomic_write_text(out / "summary.md", "# ucat eval summary\n\n" + summary_markdown(results)
                      + ("\n" + ood_markdown(list(ood)) if ood else "") + ("\n" + extra if extra else ""))


def summary_markdown(results: Iterable[Dict[str, Any]]) -> str:
    """The body of ``summary.md``: the single-label tables, then the multi-label section (if any)."""
    results = list(results)
    multi = [r for r in results if r.get("task") == "multilabel"]
    single = single_label(results)
    md = summary_table(single) if single or not multi else ""
    return md + ("\n" + multilabel_markdown(multi) if multi else "")
