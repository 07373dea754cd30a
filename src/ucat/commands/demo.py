"""``ucat demo``: Table 16 in miniature offline on the shipped tiny CLIP (the main job); see :mod:`ucat.demo`.

Every :class:`ucat.demo.DemoConfig` field is a flag of the same name, so the ``demo_config.yaml`` a
run writes is reusable with ``--config``.
"""
from __future__ import annotations

import argparse
from typing import Any, Dict

from ..demo import ATTACKS, METHODS, DemoConfig, run_demo
from ..units import parse_eps

_FLAGS = ("methods", "seeds", "seed", "eval_steps", "eval_n", "train_steps", "train_n", "batch_size", "optimizer",
          "lr_scale", "calibration_data", "calibration_split", "calibration_n", "uncertainty_score", "eval_plots", "tasks", "device", "threads")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d, q = DemoConfig(), DemoConfig.quick()
    parser.add_argument("--config", default=None, help="a demo_config.yaml written by an earlier run")
    parser.add_argument("--out", default=d.out, help="output folder (default %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help=f"the CI budget: one seed, {q.train_steps} steps, {q.eval_n} images per task (under a minute)")
    parser.add_argument("--seeds", type=int, default=None, help=f"number of seeds (default {d.seeds}; --quick 1)")
    parser.add_argument("--seed", type=int, default=None, help=f"the first seed (default {d.seed})")
    parser.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                        help=f"fine-tuned rows (default all: {' '.join(METHODS)}); the CLIP row always runs")
    parser.add_argument("--eps", default=None, help="attack radius in 1/255 units, training and evaluation (default 4)")
    parser.add_argument("--eval-steps", type=int, default=None,
                        help=f"steps of every evaluation attack ({', '.join(ATTACKS)}; AutoAttack's n_iter)")
    parser.add_argument("--eval-n", type=int, default=None, help="images per suite task")
    parser.add_argument("--train-steps", type=int, default=None, help="fine-tuning steps, every method")
    parser.add_argument("--train-n", type=int, default=None, help="world-train images fine-tuned on")
    parser.add_argument("--batch-size", type=int, default=None, help="fine-tuning batch, every method")
    parser.add_argument("--optimizer", default=None, help=f"every method's optimizer: adamw (default) or sgd")
    parser.add_argument("--lr-scale", type=float, default=None, help="every recipe's lr times this (default 1)")
    parser.add_argument("--calibration-data", default=None,
                        help="the world task whose clean images fit the '+ TS' temperature (default world-train)")
    parser.add_argument("--calibration-split", default=None, help="its split (default val)")
    parser.add_argument("--calibration-n", type=int, default=None,
                        help="images fitting the temperature (default 500; --quick 200)")
    parser.add_argument("--uncertainty-score", default=None,
                        help="what the uncertainty attack drives down: entropy (default), epistemic, max-prob")
    parser.add_argument("--eval-plots", action="store_true", default=None,
                        help="also ucat eval's per-result reliability/uncertainty/risk PNGs (slow)")
    parser.add_argument("--tasks", nargs="+", default=None, help="world tasks (default the whole world-suite)")
    parser.add_argument("--device", default=None, help="cpu (default), cuda or auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (0 = torch's default)")


def config_from_args(args: argparse.Namespace) -> DemoConfig:
    over: Dict[str, Any] = {"out": args.out}
    for key in _FLAGS:
        if getattr(args, key, None) is not None:
            over[key] = getattr(args, key)
    if getattr(args, "eps", None) is not None:
        over["eps"] = parse_eps(args.eps, "--eps")
    return DemoConfig.quick(**over) if args.quick else DemoConfig(**over)


def run(args: argparse.Namespace) -> int:
    run_demo(config_from_args(args))
    return 0
