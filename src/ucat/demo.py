"""``ucat demo``: the whole story offline, on a laptop CPU, with the shipped tiny CLIP ``ucat-world``.

1. Evaluate the shipped CLIP clean and under PGD on the procedural world's zero-shot suite
   (``world-suite``) and state the phenomenon as measured numbers (Lu et al., "Calibrating
   Uncertainty for Zero-Shot Adversarial CLIP", arXiv 2512.12997: under attack accuracy collapses
   while predictive uncertainty does not rise to match, so calibration error grows).
2. Fine-tune TeCoA (Mao et al., "Understanding Zero-Shot Adversarial Robustness for Large-Scale
   Models", ICLR 2023) and UCAT (Lu et al. 2025) on the fine-tuning task ``world-train`` with the
   same budget, optimizer and training attack (:func:`ucat.train.train`).
3. Evaluate all three models on the suite with :func:`ucat.eval.run_eval` (same attack, same
   images, same seeds).
4. Print a comparison table (per task and average: clean/robust accuracy, ECE clean/adv, mean
   normalized predictive entropy clean/adv, H) and write ``demo.md``, ``demo.json`` and PNG plots.

Nothing here is tuned per method: both methods share every setting, and the numbers are reported
as measured, whichever way they fall.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from .eval import EvalConfig, METRICS, ModelSpec, columns, markdown_table, result_path, run_eval, summary_rows
from .eval.plots import pyplot, reliability_diagram, save_figure
from .eval.report import result_row
from .errors import ConfigError
from .io import atomic_write_text, package_versions, save_json, save_run_config
from .train import TrainConfig, train
from .uncertainty import softmax_entropy
from .world import tasks as world

MODEL = "ucat-world"
BASE_LABEL = "CLIP"
METHODS = ("tecoa", "ucat")
LABELS = {"tecoa": "TeCoA", "ucat": "UCAT"}


@dataclass
class DemoConfig:
    """The demo's settings (``--quick`` swaps in :meth:`quick`). Perturbation sizes in 1/255 units."""

    out: str = "ucat-demo"
    eps: float = 4.0                 # attack radius, 1/255 units (see docs/demo.md for why not 1)
    eval_steps: int = 10             # PGD steps at evaluation (step size eps/4)
    eval_n: int = 500                # images per suite task
    train_steps: int = 250           # optimizer steps per fine-tuned method
    train_n: int = 9600              # world-train images used for fine-tuning
    batch_size: int = 64
    optimizer: str = "adamw"         # shared by both methods; see docs/demo.md for why not the paper's SGD
    lr: float = 1e-4                 # cosine schedule after warm-up, shared by both methods
    warmup_steps: int = 10
    train_attack_steps: int = 2      # the paper's training attack: 2 steps of size eps
    seed: int = 0
    device: str = "cpu"
    threads: int = 1                 # torch CPU threads (1 is fastest on a busy 2-core machine)
    tasks: List[str] = field(default_factory=list)   # empty: the whole world-suite

    @classmethod
    def quick(cls, **kw) -> "DemoConfig":
        base = dict(eval_steps=3, eval_n=40, train_steps=10, train_n=640, batch_size=32, warmup_steps=2)
        base.update(kw)
        return cls(**base)


def _say(msg: str = "") -> None:
    print(msg, flush=True)


def _eval_config(cfg: DemoConfig, tasks: List[str], out: Path, models: List[ModelSpec]) -> EvalConfig:
    return EvalConfig(models=models, datasets=tasks, attacks=["pgd"], eps=[cfg.eps], steps=cfg.eval_steps,
                      step_size=cfg.eps / 4, n_samples=cfg.eval_n, batch_size=250, device=cfg.device,
                      seed=cfg.seed, out=str(out / "eval"), save_logits=True, plots=True, progress=False,
                      uncertainty_alpha="ucat")


def _fine_tune(cfg: DemoConfig, m: str, out: Path, timings: Dict[str, float]) -> str:
    """Fine-tune one method on world-train; the path of its exported weights."""
    t1 = time.time()
    _say(f"[2/4] fine-tuning {LABELS[m]} on world-train: {cfg.train_steps} steps of batch {cfg.batch_size}, "
         f"PGD-{cfg.train_attack_steps} at eps {cfg.eps:g}/255 (same settings for every method)")
    tc = TrainConfig(method=m, model=MODEL, data="world-train", n_samples=cfg.train_n, epochs=10**6,
                     max_steps=cfg.train_steps, batch_size=cfg.batch_size, lr=cfg.lr, optimizer=cfg.optimizer,
                     momentum=0.9, warmup_steps=cfg.warmup_steps, schedule="cosine", eps=cfg.eps,
                     attack="pgd", attack_steps=cfg.train_attack_steps, attack_step_size=cfg.eps,
                     out=str(out / "train" / m), seed=cfg.seed, device=cfg.device, progress=False,
                     checkpoint_every=10**9, keep_checkpoints=1, log_every=max(1, cfg.train_steps // 10),
                     resume=None)
    result = train(tc)
    weights = result.export or result.final or result.checkpoint
    if weights is None:
        raise RuntimeError(f"training {m} wrote no weights in {result.out_dir}")
    timings[f"train_{m}_s"] = round(time.time() - t1, 1)
    hist = [h for h in result.history if "loss" in h]
    if hist:
        _say(f"      loss {float(hist[0]['loss']):.3f} -> {float(hist[-1]['loss']):.3f} ({timings[f'train_{m}_s']:.0f}s)")
    return str(weights)


def _check(cfg: DemoConfig) -> None:
    if not cfg.eps > 0:
        raise ConfigError("eps", f"{cfg.eps}: the demo needs a positive attack radius (1/255 units, e.g. 1)")
    for name in ("eval_steps", "eval_n", "train_steps", "train_n", "batch_size"):
        if int(getattr(cfg, name)) < 1:
            raise ConfigError(name, f"must be >= 1, got {getattr(cfg, name)}")


def _stages(cfg: DemoConfig, tasks: List[str], out: Path) -> Dict[str, Any]:
    t0 = time.time()
    timings: Dict[str, float] = {}
    base = ModelSpec(BASE_LABEL, MODEL)
    _say(f"[1/4] the shipped CLIP ({MODEL}) on {len(tasks)} world tasks, clean and under PGD-{cfg.eval_steps} "
         f"at eps {cfg.eps:g}/255 ({cfg.eval_n} images per task)")
    res_base = run_eval(_eval_config(cfg, tasks, out, [base]))
    timings["eval_clip_s"] = round(time.time() - t0, 1)
    phen = phenomenon(res_base)
    for line in phen["lines"]:
        _say("      " + line)
    checkpoints = {m: _fine_tune(cfg, m, out, timings) for m in METHODS}
    t2 = time.time()
    _say(f"[3/4] evaluating {BASE_LABEL}, TeCoA and UCAT on the suite (same images, same attack)")
    specs = [base] + [ModelSpec(LABELS[m], MODEL, checkpoint=checkpoints[m]) for m in METHODS]
    results = run_eval(_eval_config(cfg, tasks, out, specs))
    timings["eval_all_s"] = round(time.time() - t2, 1)
    _say("[4/4] comparison")
    table = comparison_rows(results, [s.label for s in specs], tasks)
    md = comparison_markdown(table, cfg, phenomenon(results, BASE_LABEL))
    timings["total_s"] = round(time.time() - t0, 1)
    plots = write_plots(results, table, [s.label for s in specs], out)
    record = {"config": asdict(cfg), "tasks": tasks, "phenomenon": phen, "table": table,
              "checkpoints": checkpoints, "plots": plots, "timings": timings, "eps_unit": "1/255",
              "versions": package_versions()}
    atomic_write_text(out / "demo.md", md)
    save_json(out / "demo.json", record)
    _say(md)
    _say(f"wrote {out / 'demo.md'}, {out / 'demo.json'} and {len(plots)} plots in {out} "
         f"({timings['total_s']:.0f}s); per-result JSON, reliability diagrams and uncertainty histograms "
         f"are in {out / 'eval'}")
    return record


def run_demo(cfg: DemoConfig) -> Dict[str, Any]:
    """Run the four stages; returns the ``demo.json`` record (also written to ``cfg.out``)."""
    _check(cfg)
    tasks = list(cfg.tasks) or list(world.SUITE)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    save_run_config(out, cfg, name="demo_config")
    prev_threads = torch.get_num_threads()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    try:
        return _stages(cfg, tasks, out)
    finally:
        torch.set_num_threads(prev_threads)


# ----------------------------------------------------------------------------- numbers
def _mean(xs: List[float]) -> float:
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return sum(xs) / len(xs) if xs else float("nan")


def comparison_rows(results: List[Dict[str, Any]], labels: List[str], tasks: List[str]) -> List[Dict[str, Any]]:
    """One row per (model, task) and an ``Average`` row per model (:func:`ucat.eval.summary_rows`:
    every column of the metric table, accuracies/ECE as fractions, H of the averages)."""
    rows: List[Dict[str, Any]] = []
    for label in labels:
        mine = [r for t in tasks for r in results if r["model"] == label and r["dataset"] == t]
        for row in summary_rows(mine):
            row["task"] = row.pop("dataset")
            rows.append(row)
    return rows


def phenomenon(results: List[Dict[str, Any]], label: Optional[str] = None) -> Dict[str, Any]:
    """The paper's phenomenon for the original CLIP, as measured (averages over the suite)."""
    rows = [result_row(r) for r in results if label is None or r["model"] == label]
    p = {c.name: _mean([r[c.name] for r in rows]) for c in columns() if c.split is not None}
    lines = [
        f"accuracy           clean {100 * p['clean_acc']:6.2f}%  ->  under attack {100 * p['robust_acc']:6.2f}%",
        f"ECE                clean {100 * p['clean_ece']:6.2f}%  ->  under attack {100 * p['adv_ece']:6.2f}%",
        f"mean confidence    clean {p['clean_confidence']:6.3f}   ->  under attack {p['adv_confidence']:6.3f}",
        f"predictive entropy clean {p['clean_entropy']:6.3f}   ->  under attack {p['adv_entropy']:6.3f}  (normalized by log C)",
    ]
    verdict = []
    verdict.append("accuracy collapses" if p["robust_acc"] < 0.5 * p["clean_acc"] else "accuracy drops"
                   if p["robust_acc"] < p["clean_acc"] else "accuracy does not drop")
    verdict.append("uncertainty FALLS under attack (the model grows more confident while wrong)"
                   if p["adv_entropy"] < p["clean_entropy"] else
                   "uncertainty rises under attack, but far less than the error does"
                   if (p["adv_entropy"] - p["clean_entropy"]) < (p["clean_acc"] - p["robust_acc"]) else
                   "uncertainty rises at least as much as the error")
    verdict.append("ECE rises" if p["adv_ece"] > p["clean_ece"] else "ECE does not rise")
    lines.append("measured: " + "; ".join(verdict) + ".")
    return {"averages": p, "lines": lines}


def comparison_markdown(rows: List[Dict[str, Any]], cfg: DemoConfig, phen: Dict[str, Any]) -> str:
    cols = columns("demo")
    model = ("Model", "---", lambda r: r["model"])
    lines = ["# ucat demo: the shipped tiny CLIP, TeCoA and UCAT on the procedural world", "",
             f"Attack: PGD-{cfg.eval_steps} (L-inf), eps = {cfg.eps:g}/255, step eps/4; {cfg.eval_n} images per task. "
             f"Fine-tuning: {cfg.train_steps} {cfg.optimizer} steps (lr {cfg.lr:g}) of batch {cfg.batch_size} on world-train, PGD-"
             f"{cfg.train_attack_steps} training attack at the same eps, identical for both methods.", "",
             "## The phenomenon (shipped CLIP, average over the suite)", ""]
    lines += ["    " + ln for ln in phen["lines"]]
    lines += ["", "## Averages", ""]
    lines += markdown_table([r for r in rows if r["task"] == "Average"], [model], cols, digits=1, demo=True)
    lines += ["", "## Per task", ""]
    tasks = list(dict.fromkeys(r["task"] for r in rows if r["task"] != "Average"))
    per_task = [r for t in tasks for r in rows if r["task"] == t]
    lines += markdown_table(per_task, [("Task", "---", lambda r: r["task"]), model], cols, digits=1, demo=True)
    lines += ["", "Accuracy, ECE (15 equal-width bins) and H in %. Unc. = mean entropy of the softmax, divided "
              "by log C (0 = certain, 1 = uniform). H = harmonic mean of clean and robust accuracy (of the "
              "averages in the Averages table, as in the UCAT paper). Numbers are as measured on this run; "
              "nothing was tuned per method.", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- plots
def _summary_plot(plt, avg: Dict[str, Dict[str, Any]], labels: List[str], out: Path) -> str:
    """Bars of the averages, one panel per metric the table shows on the plot (clean vs under attack)."""
    panels = [(m.describe + (" (%)" if m.percent else ""), *m.columns, 100.0 if m.percent else 1.0)
              for m in METRICS if "plot" in m.shows]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.8))
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.12, top=0.85, wspace=0.28)
    x = np.arange(len(labels))
    for ax, (title, c, a, k) in zip(axes, panels):
        ax.bar(x - 0.2, [k * avg[lb][c] for lb in labels], 0.4, label="clean", color="tab:blue")
        ax.bar(x + 0.2, [k * avg[lb][a] for lb in labels], 0.4, label="under attack", color="tab:red")
        ax.set_xticks(x, labels)
        ax.set_title(title, fontsize=10)
    axes[0].legend(fontsize=8)
    fig.suptitle("average over the world suite", fontsize=10)
    path = out / "demo_summary.png"
    save_figure(fig, path)
    return path.name


def _per_task_plot(plt, rows: List[Dict[str, Any]], labels: List[str], out: Path) -> str:
    tasks = list(dict.fromkeys(r["task"] for r in rows if r["task"] != "Average"))
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(tasks)), 3.8))
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.22, top=0.9)
    w = 0.8 / max(1, len(labels))
    for i, lb in enumerate(labels):
        vals = [next((100 * r["robust_acc"] for r in rows if r["model"] == lb and r["task"] == t), 0.0) for t in tasks]
        ax.bar(np.arange(len(tasks)) + (i - (len(labels) - 1) / 2) * w, vals, w, label=lb)
    ax.set_xticks(np.arange(len(tasks)), [t.replace("world-", "") for t in tasks], rotation=20)
    ax.set_ylabel("robust accuracy (%)")
    ax.legend(fontsize=8)
    ax.set_title("robust accuracy per task", fontsize=10)
    path = out / "demo_robust_per_task.png"
    save_figure(fig, path)
    return path.name


def _hist_plot(plt, ent: Dict[str, Any], out: Path) -> str:
    fig, axes = plt.subplots(1, len(ent), figsize=(4 * len(ent), 3.4), sharey=True)
    axes = np.atleast_1d(axes)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.16, top=0.84, wspace=0.08)
    bins = np.linspace(0, 1, 26)
    for ax, (lb, (c, a)) in zip(axes, ent.items()):
        ax.hist(c, bins=bins, alpha=0.6, color="tab:blue", label="clean")
        ax.hist(a, bins=bins, alpha=0.6, color="tab:red", label="under attack")
        ax.set(title=lb, xlabel="predictive entropy / log C")
    axes[0].legend(fontsize=8)
    fig.suptitle("uncertainty of every suite image, clean vs adversarial", fontsize=10)
    path = out / "demo_uncertainty_hist.png"
    save_figure(fig, path)
    return path.name


def write_plots(results: List[Dict[str, Any]], rows: List[Dict[str, Any]], labels: List[str], out: Path) -> List[str]:
    """Accuracy/ECE/uncertainty bars, pooled reliability diagrams and entropy histograms (PNG)."""
    plt = pyplot()
    avg = {r["model"]: r for r in rows if r["task"] == "Average"}
    labels = [lb for lb in labels if lb in avg]
    written = [_summary_plot(plt, avg, labels, out), _per_task_plot(plt, rows, labels, out)]
    for lb in labels:
        mine = [r for r in results if r["model"] == lb]
        if not mine:
            continue
        pooled = {s: _pool_bins([r[s]["reliability"] for r in mine]) for s in ("clean", "adv")}
        path = out / f"demo_reliability_{lb}.png"
        reliability_diagram(pooled["clean"], pooled["adv"], path, f"{lb}: all suite tasks pooled")
        written.append(path.name)
    ent = _entropies(results, labels, out / "eval")
    if ent:
        written.append(_hist_plot(plt, ent, out))
    return written


def _pool_bins(bin_list: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Merge reliability bins of several datasets (same edges): count-weighted accuracy/confidence."""
    edges = bin_list[0]["edges"]
    nb = len(edges) - 1
    count = [sum(b["count"][i] for b in bin_list) for i in range(nb)]
    acc, conf = [], []
    for i in range(nb):
        if count[i] == 0:
            acc.append(float("nan"))
            conf.append(float("nan"))
            continue
        acc.append(sum(b["accuracy"][i] * b["count"][i] for b in bin_list if b["count"][i]) / count[i])
        conf.append(sum(b["confidence"][i] * b["count"][i] for b in bin_list if b["count"][i]) / count[i])
    return {"edges": edges, "accuracy": acc, "confidence": conf, "count": count}


def _entropies(results: List[Dict[str, Any]], labels: List[str], eval_dir: Path) -> Dict[str, Any]:
    """Per model: normalized softmax entropies of every evaluated image (clean, adv), from saved logits."""
    out: Dict[str, Any] = {}
    for lb in labels:
        c_all, a_all = [], []
        for r in results:
            if r["model"] != lb:
                continue
            res = result_path(eval_dir, lb, r["dataset"], r["attack"], float(r["eps"]))
            f = res.with_name(f"{res.stem}_logits.npz")
            if not f.is_file():
                continue
            z = np.load(f)
            c_all.append(softmax_entropy(torch.from_numpy(z["clean"]), normalize=True).numpy())
            a_all.append(softmax_entropy(torch.from_numpy(z["adv"]), normalize=True).numpy())
        if c_all:
            out[lb] = (np.concatenate(c_all), np.concatenate(a_all))
    return out

