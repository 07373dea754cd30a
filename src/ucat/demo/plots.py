"""The demo's figures (PNG), drawn for any number of rows: grouped bars with seed std as error bars.

* ``demo_accuracy.png``: clean and robust accuracy under every attack, per row;
* ``demo_calibration.png``: ECE clean and under every attack, per row, without and with temperature scaling;
* ``demo_uncertainty.png``: mean entropy and epistemic MI, clean / PGD / uncertainty attack, per row;
* ``demo_tradeoff.png``: clean against AutoAttack accuracy (Table 16's trade-off), one point per row;
* ``demo_uncertainty_hist.png``: per-image entropy, clean vs PGD, one panel per row (the first seed).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..eval import result_path
from ..eval.plots import pyplot, save_figure
from ..uncertainty import softmax_entropy
from .aggregate import find
from .config import ATTACK_LABELS, ATTACKS, TS_SUFFIX

Series = Tuple[str, List[float], List[float]]        # (legend, means, stds) over the rows


def _get(rows, model: str, attack: str, column: str, k: float = 1.0) -> Tuple[float, float]:
    r = find(rows, model, attack)
    c = r["columns"].get(column) if r else None
    if c is None or c["mean"] is None:
        return float("nan"), 0.0
    return k * c["mean"], k * (c["std"] or 0.0)


def _series(rows, models: Sequence[str], parts: Sequence[Tuple[str, str, str]], k: float = 1.0) -> List[Series]:
    """(legend, attack, column) -> one series over ``models``."""
    out = []
    for legend, attack, column in parts:
        vals = [_get(rows, m, attack, column, k) for m in models]
        out.append((legend, [v for v, _ in vals], [s for _, s in vals]))
    return out


def _bars(ax, models: Sequence[str], series: List[Series], ylabel: str, log: bool = False) -> None:
    x = np.arange(len(models))
    w = 0.84 / max(1, len(series))
    for i, (legend, means, stds) in enumerate(series):
        ax.bar(x + (i - (len(series) - 1) / 2) * w, means, w, yerr=stds, capsize=2, label=legend)
    ax.set_xticks(x, list(models), rotation=25 if len(models) > 5 else 0, ha="right" if len(models) > 5 else "center")
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.grid(axis="y", alpha=0.3)


def _accuracy(plt, rows, models, out: Path) -> str:
    parts = [("clean", "pgd", "clean_acc")] + [(ATTACK_LABELS[a], a, "robust_acc") for a in ATTACKS]
    fig, ax = plt.subplots(figsize=(max(7.0, 1.3 * len(models)), 4.0))
    fig.subplots_adjust(left=0.08, right=0.99, bottom=0.2, top=0.9)
    _bars(ax, models, _series(rows, models, parts, 100.0), "accuracy (%)")
    ax.legend(fontsize=8, ncol=len(parts))
    ax.set_title("suite-average accuracy, clean and under each attack (error bars: std over seeds)", fontsize=10)
    save_figure(fig, out / "demo_accuracy.png")
    return "demo_accuracy.png"


def _calibration(plt, rows, models, out: Path) -> str:
    parts = [("clean", "pgd", "clean_ece")] + [(ATTACK_LABELS[a], a, "adv_ece") for a in ATTACKS]
    fig, axes = plt.subplots(1, 2, figsize=(max(10.0, 2.4 * len(models)), 4.0), sharey=True)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.2, top=0.88, wspace=0.05)
    for ax, suffix, title in ((axes[0], "", "as trained"), (axes[1], TS_SUFFIX, "+ temperature scaling")):
        names = [m + suffix for m in models]
        _bars(ax, models, _series(rows, names, parts, 100.0), "ECE (%)")
        ax.set_title(title, fontsize=10)
    axes[0].legend(fontsize=8, ncol=len(parts))
    save_figure(fig, out / "demo_calibration.png")
    return "demo_calibration.png"


def _uncertainty(plt, rows, models, out: Path) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(max(10.0, 2.4 * len(models)), 4.0))
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.2, top=0.88, wspace=0.18)
    for ax, key, name, log in ((axes[0], "entropy", "predictive entropy / log C", False),
                               (axes[1], "mutual_information", "epistemic (Dirichlet MI) / log C", True)):
        parts = [("clean", "pgd", f"clean_{key}"), ("PGD", "pgd", f"adv_{key}"),
                 (ATTACK_LABELS["uncertainty"], "uncertainty", f"adv_{key}")]
        series = _series(rows, models, parts)
        vals = [v for _, means, _ in series for v in means if not math.isnan(v)]
        wide = bool(vals) and min(vals) > 0 and max(vals) / min(vals) > 100     # log scale only over decades
        _bars(ax, models, series, name, log=log and wide)
        ax.margins(y=0.25)
        ax.set_title(name, fontsize=10)
    axes[0].legend(fontsize=8, ncol=3, loc="upper left")
    save_figure(fig, out / "demo_uncertainty.png")
    return "demo_uncertainty.png"


def _tradeoff(plt, rows, models, out: Path) -> str:
    fig, ax = plt.subplots(figsize=(5.6, 4.6))
    fig.subplots_adjust(left=0.13, right=0.97, bottom=0.12, top=0.9)
    for m in models:
        (cx, sx), (ay, sy) = _get(rows, m, "aa-paper", "clean_acc", 100.0), _get(rows, m, "aa-paper", "robust_acc", 100.0)
        ax.errorbar([cx], [ay], xerr=[sx], yerr=[sy], fmt="o", capsize=2, label=m)
        ax.annotate(m, (cx, ay), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set(xlabel="clean accuracy (%)", ylabel="AutoAttack accuracy (%)")
    ax.grid(alpha=0.3)
    ax.set_title("clean vs robust (AA), suite averages", fontsize=10)
    save_figure(fig, out / "demo_tradeoff.png")
    return "demo_tradeoff.png"


def _entropies(eval_dir: Path, label: str, tasks: Sequence[str], eps: float) -> Optional[Tuple[Any, Any]]:
    c_all, a_all = [], []
    for t in tasks:
        f = result_path(eval_dir, label, t, "pgd", eps)
        f = f.with_name(f"{f.stem}_logits.npz")
        if f.is_file():
            z = np.load(f)
            c_all.append(softmax_entropy(torch.from_numpy(z["clean"]), normalize=True).numpy())
            a_all.append(softmax_entropy(torch.from_numpy(z["adv"]), normalize=True).numpy())
    return (np.concatenate(c_all), np.concatenate(a_all)) if c_all else None


def _hist(plt, models, eval_dir: Path, tasks: Sequence[str], eps: float, out: Path) -> Optional[str]:
    ent = {m: e for m in models for e in [_entropies(eval_dir, m, tasks, eps)] if e is not None}
    if not ent:
        return None
    ncol = min(4, len(ent))
    nrow = math.ceil(len(ent) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.8 * nrow), sharex=True, squeeze=False)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.1, top=0.88, wspace=0.2, hspace=0.35)
    bins = np.linspace(0, 1, 26)
    for ax, (m, (c, a)) in zip(axes.flat, ent.items()):
        ax.hist(c, bins=bins, alpha=0.6, color="tab:blue", label="clean")
        ax.hist(a, bins=bins, alpha=0.6, color="tab:red", label="PGD")
        ax.set_title(m, fontsize=9)
    for ax in list(axes.flat)[len(ent):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("per-image predictive entropy / log C, clean vs PGD (first seed, all tasks)", fontsize=10)
    save_figure(fig, out / "demo_uncertainty_hist.png")
    return "demo_uncertainty_hist.png"


def write_plots(rows: List[Dict[str, Any]], order: List[str], out: Path, eval_dir: Path,
                tasks: Sequence[str] = (), eps: float = 0.0) -> List[str]:
    """Every figure of the module docstring; the file names written."""
    plt = pyplot()
    models = [m for m in order if find(rows, m, "pgd") is not None]
    names = [_accuracy(plt, rows, models, out), _calibration(plt, rows, models, out),
             _uncertainty(plt, rows, models, out), _tradeoff(plt, rows, models, out)]
    hist = _hist(plt, models, eval_dir, tasks, eps, out) if tasks else None
    return names + ([hist] if hist else [])
