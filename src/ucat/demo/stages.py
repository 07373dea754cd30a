"""The demo's stages: per seed, fine-tune every method (``ucat.train.train``), then evaluate every row
(``ucat.eval.run_eval``); then aggregate over seeds and write the tables, JSON and plots.

Each row's evaluation is its own ``run_eval`` call into the seed's ``eval/seed<k>/`` folder with
all rows evaluated so far: the earlier rows' results are resumed from disk (their keys match), so
after the last row that folder's ``summary.md`` and ``report.html`` hold all rows, and a progress
line comes per row. What ``train`` and ``run_eval`` print goes to ``demo_log.txt``.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import torch

from ..eval import EvalConfig, ModelSpec, run_eval
from ..io import atomic_write_text, package_versions, save_json, save_run_config
from ..train import train
from ..units import fmt_eps
from ..world import tasks as world
from .aggregate import aggregate, seed_rows
from .config import ATTACKS, BASE_LABEL, LABELS, MODEL, DemoConfig, validate
from .phenomenon import phenomenon
from .plots import write_plots
from .progress import Progress, Stage, eval_estimate, train_estimate
from .recipes import scaled_settings, train_config
from .table import demo_markdown, main_table


def _say(msg: str = "") -> None:
    print(msg, flush=True)


class _Log:
    """What the library calls print, collected and written to ``demo_log.txt`` (atomically, per stage)."""

    def __init__(self, path: Path):
        self.path, self.text = path, ""

    def call(self, title: str, fn: Callable[[], Any]) -> Any:
        buf = io.StringIO()
        try:
            with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
                return fn()
        finally:
            self.text += f"==== {title}\n{buf.getvalue()}"
            atomic_write_text(self.path, self.text)


def eval_config(cfg: DemoConfig, tasks: List[str], seed: int, out: Path, specs: List[ModelSpec]) -> EvalConfig:
    """One seed's evaluation: clean, PGD, CW, AutoAttack (APGD-CE + APGD-DLR) and the uncertainty attack,
    all with ``eval_steps`` iterations at the demo's eps, and the temperature-scaling baseline (one T per
    model, fitted on clean ``calibration_data`` images: ucat eval's zero-shot calibration setting)."""
    k = cfg.eval_steps
    return EvalConfig(models=specs, datasets=tasks, attacks=list(ATTACKS), eps=[cfg.eps], steps=k,
                      step_size=cfg.eps / 4, n_samples=cfg.eval_n, batch_size=250, device=cfg.device, seed=seed,
                      out=str(out), save_logits=True, plots=cfg.eval_plots, progress=False,
                      uncertainty_alpha="ucat", protocol=None,
                      attack_options={"aa-paper": {"n_iter": k}, "uncertainty": {"score": cfg.uncertainty_score}},
                      calibrate="temperature", calibration_setting="zero-shot", calibration_fit="clean",
                      calibration_data=cfg.calibration_data, calibration_split=cfg.calibration_split,
                      calibration_n=cfg.calibration_n)


def _numbers(row: Dict[str, Any]) -> Dict[str, float]:
    """The numeric columns of a training-log row (the CSV gives text)."""
    out: Dict[str, float] = {}
    for k, v in row.items():
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            pass
    return out


def fine_tune(cfg: DemoConfig, method: str, seed: int, out: Path) -> Dict[str, Any]:
    """One fine-tuning; its exported weights and the first and last training-log rows."""
    result = train(train_config(cfg, method, seed, out))
    weights = result.export or result.final or result.checkpoint
    if weights is None:
        raise RuntimeError(f"training {method} wrote no weights in {result.out_dir}")
    hist = [h for h in result.history if "loss" in h]
    return {"weights": str(weights), "steps": result.steps,
            "first": _numbers(hist[0]) if hist else {}, "last": _numbers(hist[-1]) if hist else {}}


def plan(cfg: DemoConfig, tasks: List[str]) -> List[Stage]:
    """Every stage in order, with its prior time estimate."""
    stages: List[Stage] = []
    labels = cfg.labels()
    n_images = cfg.eval_n * len(tasks)
    for seed in cfg.seed_list():
        for m in [m for m in LABELS if m in cfg.methods]:
            steps = int(scaled_settings(cfg, m)["attack_steps"])
            stages.append(Stage("train", m, seed, f"fine-tuning {LABELS[m]} seed {seed}",
                                train_estimate(cfg.train_steps, cfg.batch_size, steps)))
        for lb in labels:
            stages.append(Stage("eval", lb, seed, f"evaluating {lb} seed {seed} on {len(tasks)} tasks x "
                                                  f"{cfg.eval_n} images, clean + {len(ATTACKS)} attacks",
                                eval_estimate(n_images, cfg.eval_steps, len(ATTACKS))))
    stages.append(Stage("report", "", None, "tables, JSON and plots", 5.0))
    return stages


def _run_seed(cfg: DemoConfig, tasks: List[str], seed: int, out: Path, progress: Progress, log: _Log,
              first: int) -> Tuple[List[Dict[str, Any]], Dict[str, Any], int]:
    """Fine-tune and evaluate at one seed: (its results, its fine-tunings, the next stage index)."""
    runs: Dict[str, Any] = {}
    i = first
    for m in [m for m in LABELS if m in cfg.methods]:
        title, where = progress.stages[i].title, out / "train" / f"seed{seed}" / m
        runs[m] = progress.run(i, lambda m=m, t=title, w=where: log.call(t, lambda: fine_tune(cfg, m, seed, w)))
        i += 1
    specs = [ModelSpec(BASE_LABEL, MODEL)] + [ModelSpec(LABELS[m], MODEL, checkpoint=r["weights"])
                                              for m, r in runs.items()]
    results: List[Dict[str, Any]] = []
    for j in range(len(specs)):
        ec = eval_config(cfg, tasks, seed, out / "eval" / f"seed{seed}", specs[: j + 1])
        results = progress.run(i, lambda ec=ec, t=progress.stages[i].title: log.call(t, lambda: run_eval(ec)))
        i += 1
    return results, runs, i


def _stages(cfg: DemoConfig, tasks: List[str], out: Path) -> Dict[str, Any]:
    stages = plan(cfg, tasks)
    progress, log = Progress(stages, _say), _Log(out / "demo_log.txt")
    _say(f"ucat demo: {len(cfg.labels())} rows ({', '.join(cfg.labels())}) x {cfg.seeds} seed(s) on {len(tasks)} "
         f"world tasks; fine-tuning {cfg.train_steps} steps x batch {cfg.batch_size} ({cfg.optimizer}, each "
         f"recipe's lr x {cfg.lr_scale:g}); attacks {', '.join(ATTACKS)} at eps {fmt_eps(cfg.eps)}, "
         f"{cfg.eval_steps} steps; {len(stages)} stages")
    per_seed: Dict[int, List[Dict[str, Any]]] = {}
    training: Dict[str, Dict[str, Any]] = {}
    i = 0
    for seed in cfg.seed_list():
        results, runs, i = _run_seed(cfg, tasks, seed, out, progress, log, i)
        per_seed[seed] = seed_rows(results)
        training[str(seed)] = runs
    return progress.run(i, lambda: _report(cfg, tasks, out, per_seed, training, progress))


def _report(cfg: DemoConfig, tasks: List[str], out: Path, per_seed: Dict[int, List[Dict[str, Any]]],
            training: Dict[str, Any], progress: Progress) -> Dict[str, Any]:
    order = cfg.labels()
    rows = aggregate(per_seed, order)
    phen = phenomenon(rows, order, cfg.uncertainty_score)
    recipes = {LABELS[m]: scaled_settings(cfg, m) for m in LABELS if m in cfg.methods}
    table_md = main_table(rows, order, cfg)
    md = demo_markdown(rows, order, cfg, phen, table_md, tasks, recipes, training)
    plots = write_plots(rows, order, out, out / "eval" / f"seed{cfg.seed_list()[0]}", tasks, float(cfg.eps))
    record = {"config": asdict(cfg), "tasks": tasks, "seeds": cfg.seed_list(), "attacks": list(ATTACKS),
              "rows": order, "table": rows, "phenomenon": phen, "recipes": recipes, "training": training,
              "per_seed": {str(s): r for s, r in per_seed.items()}, "plots": plots, "eps_unit": "1/255",
              "std": "sample standard deviation over seeds (ddof=1); null with one seed",
              "timings": {"stages": progress.times(), "total_s": round(progress.elapsed(), 1)},
              "versions": package_versions()}
    atomic_write_text(out / "demo_table.md", table_md)
    atomic_write_text(out / "demo.md", md)
    save_json(out / "demo.json", record)
    _say(md)
    _say(f"wrote demo.md, demo_table.md, demo.json, demo_config.yaml and {len(plots)} plots in {out} "
         f"({progress.elapsed():.0f}s); eval/seed<k>/report.html and summary.md: ucat eval's own report per seed")
    return record


def run_demo(cfg: DemoConfig) -> Dict[str, Any]:
    """Run every stage; returns the ``demo.json`` record (also written to ``cfg.out``)."""
    validate(cfg)
    tasks = list(cfg.tasks) or list(world.SUITE)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("demo.md", "demo_table.md", "demo.json"):      # never leave an earlier run's numbers
        (out / stale).unlink(missing_ok=True)
    save_run_config(out, cfg, name="demo_config")
    prev_threads = torch.get_num_threads()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    try:
        return _stages(cfg, tasks, out)
    finally:
        torch.set_num_threads(prev_threads)
