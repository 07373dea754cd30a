"""``ucat demo``: the whole story offline on the shipped tiny CLIP (the main job); see :mod:`ucat.demo`."""
from __future__ import annotations

import argparse
from typing import Any, Dict

from ..demo import DemoConfig, run_demo
from ..units import parse_eps


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = DemoConfig()
    parser.add_argument("--out", default=d.out, help="output folder (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="a tiny budget for CI (about a minute)")
    parser.add_argument("--eps", default=None, help="attack radius in 1/255 units (default 4 = 4/255; 1 is the paper's setting at 224 px)")
    parser.add_argument("--eval-steps", type=int, default=None, help="PGD steps at evaluation")
    parser.add_argument("--eval-n", type=int, default=None, help="images per suite task")
    parser.add_argument("--train-steps", type=int, default=None, help="fine-tuning steps per method")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--device", default=None, help="cpu (default), cuda or auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (0 = torch's default)")


def run(args: argparse.Namespace) -> int:
    over: Dict[str, Any] = {"out": args.out}
    for key in ("eval_steps", "eval_n", "train_steps", "seed", "device", "threads"):
        if getattr(args, key) is not None:
            over[key] = getattr(args, key)
    if args.eps is not None:
        over["eps"] = parse_eps(args.eps, "--eps")
    cfg = DemoConfig.quick(**over) if args.quick else DemoConfig(**over)
    run_demo(cfg)
    return 0
