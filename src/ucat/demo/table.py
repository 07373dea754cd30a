"""The demo's Markdown: Table 16 in miniature (mean +- std over seeds), the phenomenon, per attack, per task.

Columns are ``ucat eval``'s (:func:`ucat.eval.columns`: names, headings, percent or not) and cells
are formatted with its :func:`ucat.eval.table.fmt`; the per-attack and per-task tables are its
:func:`ucat.eval.markdown_table` over the seed means, so the demo and ``ucat eval`` cannot disagree.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ..eval import columns, markdown_table
from ..eval.table import Column, fmt
from ..units import fmt_eps
from .aggregate import find
from .config import ATTACK_LABELS, ATTACKS, TS_SUFFIX, DemoConfig
from .phenomenon import SCORES, num

TABLE16 = ("pgd", "cw", "aa-paper")
Spec = Tuple[str, Column, str]            # (attack whose row holds the value, column, heading)


def main_columns() -> List[Spec]:
    """Clean acc, robust acc per attack, H per attack, ECE clean, ECE per attack (Table 16's layout + ECE)."""
    by = {c.name: c for c in columns()}
    specs: List[Spec] = [("pgd", by["clean_acc"], by["clean_acc"].demo_heading)]
    specs += [(a, by["robust_acc"], f"{ATTACK_LABELS[a]} acc") for a in TABLE16]
    specs += [(a, by["H"], f"{by['H'].demo_heading} {ATTACK_LABELS[a]}") for a in TABLE16]
    specs += [("pgd", by["clean_ece"], by["clean_ece"].demo_heading)]
    specs += [(a, by["adv_ece"], f"ECE {ATTACK_LABELS[a]}") for a in TABLE16]
    return specs


def mean_std(column: Column, c: Optional[Dict[str, Any]], digits: int = 1) -> str:
    """``mean ± std`` with the metric table's format (the mean alone with one seed; 'nan' when missing)."""
    if c is None or c["mean"] is None:
        return "nan"
    s = fmt(column, c["mean"], digits)
    return s if c["std"] is None else f"{s} ± {fmt(column, c['std'], digits)}"


def _grid(rows: List[Dict[str, Any]], models: List[str], specs: List[Spec]) -> List[str]:
    lines = ["| Model | " + " | ".join(h for _, _, h in specs) + " |", "|---|" + "---:|" * len(specs)]
    for m in models:
        cells = []
        for attack, col, _ in specs:
            r = find(rows, m, attack)
            cells.append(mean_std(col, r["columns"].get(col.name) if r else None))
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return lines


def _order(order: List[str]) -> List[str]:
    return list(order) + [m + TS_SUFFIX for m in order]


def main_table(rows: List[Dict[str, Any]], order: List[str], cfg: DemoConfig) -> str:
    """``demo_table.md``: the rows, then their temperature-scaled baselines, suite averages."""
    seeds = f"mean ± std over {cfg.seeds} seeds" if cfg.seeds > 1 else "one seed"
    lines = [f"Table 16 in miniature: the world suite, eps {fmt_eps(cfg.eps)} L-inf, {cfg.eval_steps}-step attacks "
             f"(AA = APGD-CE + APGD-DLR, {cfg.eval_steps} iterations), {cfg.eval_n} images per task; {seeds}.", ""]
    lines += _grid(rows, _order(order), main_columns())
    lines += ["", "Accuracy, H and ECE (15 bins) in %. H = harmonic mean of the averaged clean and robust accuracy. "
              f"\"+ TS\": the same model with one temperature fitted on {cfg.calibration_n} clean held-out "
              f"{cfg.calibration_data} ({cfg.calibration_split}) images and applied to every task; scaling keeps "
              "every prediction, so accuracy is the row above's.", ""]
    return "\n".join(lines)


def uncertainty_table(phen: Dict[str, Any]) -> List[str]:
    heads = ["Model"] + [f"{name} {w}" for _, name in SCORES for w in ("clean", "PGD", ATTACK_LABELS["uncertainty"])]
    heads += [f"{ATTACK_LABELS['uncertainty']} acc", f"ECE {ATTACK_LABELS['uncertainty']}"]
    lines = ["| " + " | ".join(heads) + " |", "|---|" + "---:|" * (len(heads) - 1)]
    for p in phen["rows"]:
        cells = []
        for key, _ in SCORES:
            cells += [num(p["pgd"][key]["clean"]), num(p["pgd"][key]["adv"]), num(p["uncertainty"][key]["adv"])]
        u = p["uncertainty"]
        cells += [f"{100 * u['robust_acc']:.1f}", f"{100 * u['adv_ece']:.1f}"]
        lines.append(f"| {p['model']} | " + " | ".join(cells) + " |")
    return lines


def _means(rows: List[Dict[str, Any]], attack: str, task: Optional[str] = "Average") -> List[Dict[str, Any]]:
    """The models' rows as ``ucat eval``'s report rows (seed means), for :func:`ucat.eval.markdown_table`
    (the "+ TS" rows are not repeated: their ECE is the ``ECE (TS)`` columns)."""
    out = []
    for r in rows:
        if r["attack"] == attack and (task is None or r["task"] == task) and not r["ts"]:
            out.append({"model": r["model"], "task": r["task"], **{k: c["mean"] for k, c in r["columns"].items()}})
    return out


def _detail_columns() -> List[Column]:
    extra = ("clean_ece_ts", "adv_ece_ts")         # MI spans decades: in the uncertainty table, not at 3 decimals
    return columns("demo") + [c for c in columns() if c.name in extra]


def detail_tables(rows: List[Dict[str, Any]], tasks: List[str]) -> List[str]:
    """Per attack the averages of every row, then robust accuracy per task under PGD (seed means)."""
    lead = [("Model", "---", lambda r: r["model"])]
    lines: List[str] = []
    for attack in ATTACKS:
        lines += [f"### {ATTACK_LABELS[attack]} ({attack})", ""]
        lines += markdown_table(_means(rows, attack), lead, _detail_columns(), digits=1, demo=True) + [""]
    per_task = [r for t in tasks for r in _means(rows, "pgd", None) if r["task"] == t]
    acc = [c for c in columns("demo") if c.name in ("clean_acc", "robust_acc", "clean_ece", "adv_ece")]
    lines += ["### Per task, under PGD", ""]
    lines += markdown_table(per_task, [("Task", "---", lambda r: r["task"])] + lead, acc, digits=1, demo=True)
    return lines + [""]


_BOOKKEEPING = ("step", "epoch", "lr", "samples", "skipped", "elapsed_s", "acc_train_adv")


def _terms(row: Dict[str, float]) -> str:
    """A training-log row's loss terms (every numeric column but the bookkeeping ones)."""
    return ", ".join(f"{k} {num(v)}" if abs(v) < 1e4 else f"{k} {v:.2e}" for k, v in row.items()
                     if k not in _BOOKKEEPING) or "-"


def _training_table(recipes: Dict[str, Dict[str, Any]], training: Dict[str, Any]) -> List[str]:
    first = next(iter(training.values()), {}) if training else {}
    seed = next(iter(training), "")
    lines = ["| Method | recipe: optimizer, lr, batch, warm-up/steps | demo lr | demo warm-up | training attack | "
             f"method options | loss terms, first log row (seed {seed}) | last log row |", "|---|---|---:|---:|---|---|---|---|"]
    for label, s in recipes.items():
        opts = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in s["method_options"].items())
        run = first.get(s["method"], {})
        lines.append(f"| {label} | {s['recipe_optimizer']}, {s['recipe_lr']:g}, {s['recipe_batch_size']}, "
                     f"{s['recipe_warmup_steps']}/{s['recipe_steps']} | {s['lr']:g} | {s['warmup_steps']} | "
                     f"{s['attack']}-{s['attack_steps']}, eps {fmt_eps(s['eps'])}, step {fmt_eps(s['attack_step_size'])} "
                     f"| {opts or '-'} | {_terms(run.get('first', {}))} | {_terms(run.get('last', {}))} |")
    return lines


def demo_markdown(rows: List[Dict[str, Any]], order: List[str], cfg: DemoConfig, phen: Dict[str, Any],
                  table_md: str, tasks: List[str], recipes: Dict[str, Dict[str, Any]],
                  training: Dict[str, Any]) -> str:
    lines = ["# ucat demo: Table 16 in miniature on the procedural world", "",
             f"Rows: the shipped CLIP (`ucat-world`, not fine-tuned) and {len(order) - 1} methods, each fine-tuned "
             f"on world-train with its own paper recipe scaled to one budget: {cfg.train_steps} steps x batch "
             f"{cfg.batch_size}, {cfg.optimizer}, each recipe's lr x {cfg.lr_scale:g}, training eps "
             f"{fmt_eps(cfg.eps)} (docs/demo.md). Seeds {', '.join(map(str, cfg.seed_list()))} (fine-tuning, "
             f"attack and image-subset seed).", "", "## Table 16 in miniature (suite averages)", "", table_md,
             "## Does the attack lower the uncertainty?", "",
             f"Mean normalized entropy and epistemic uncertainty (Dirichlet mutual information / log C), clean, "
             f"under PGD and under the uncertainty-targeted attack (it drives {cfg.uncertainty_score} down while "
             f"flipping the label); seed means.", ""]
    lines += uncertainty_table(phen) + [""] + [f"- {ln}" for ln in phen["lines"]] + [""]
    lines += ["## Every attack (seed means)", ""] + detail_tables(rows, tasks)
    lines += ["## The scaled recipes", ""] + _training_table(recipes, training) + [""]
    lines += ["Numbers are as measured on this run; nothing was tuned per method. Per-seed values, stds and every "
              "report column are in demo.json; ucat eval's own tables per seed in eval/seed<k>/summary.md.", ""]
    return "\n".join(lines)
