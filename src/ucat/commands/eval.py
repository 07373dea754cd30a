"""``ucat eval``: clean and robust accuracy, calibration and uncertainty of a CLIP under attack.

    ucat eval                                             # shipped ucat-world model, world suite, PGD at 1/255
    ucat eval --model ViT-B-32 --pretrained openai --datasets zs16 --data-root DIR \\
              --attacks pgd cw aa-paper --eps 1 --steps 100 --out runs/eval-clip
    ucat eval --model ViT-B-32 --pretrained openai --checkpoint runs/ucat/final.safetensors \\
              --compare-original --datasets cifar10 --n-samples 1000 --out runs/eval-ucat
    ucat eval --model ucat-world --datasets /photos/my_classes --attacks pgd uncertainty
    torchrun --nproc_per_node=4 -m ucat eval --datasets zs16 ...   # shards each dataset over GPUs

Sizes (``--eps``, ``--step-size``) are in 1/255 units. Flag names equal the YAML keys of ``--config``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Dict, List

import torch.distributed as dist

from ..config import parse_cli_value
from ..device import DistInfo, cleanup_distributed
from ..eval.estimate import print_estimate
from ..eval.evaluator import EvalConfig, ModelSpec, run_eval
from ..eval.report import summary_table
from ..units import parse_eps

_D = EvalConfig()


class _AttackOptions(argparse.Action):
    """``-A ATTACK.KEY=VALUE`` (repeatable) -> {attack: {key: value}}."""

    def __call__(self, parser, namespace, values, option_string=None):
        merged: Dict[str, Dict[str, Any]] = {k: dict(v) for k, v in (getattr(namespace, self.dest, None) or {}).items()}
        if "=" not in values or "." not in values.split("=", 1)[0]:
            parser.error(f"{option_string} {values!r}: expected ATTACK.KEY=VALUE, e.g. {option_string} cw.kappa=50")
        lhs, v = values.split("=", 1)
        attack, key = lhs.split(".", 1)
        merged.setdefault(attack.strip(), {})[key.strip().replace("-", "_")] = parse_cli_value(v)
        setattr(namespace, self.dest, merged)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, help="YAML file of defaults (keys = flag names); flags override it")
    g = p.add_argument_group("model")
    g.add_argument("--model", default="ucat-world", help="open_clip architecture or shipped model (default %(default)s)")
    g.add_argument("--pretrained", default=None, help="pretrained tag (openai), local weights file or hf-hub id")
    g.add_argument("--checkpoint", nargs="+", default=None, metavar="FILE",
                   help="vision weights written by `ucat train` (several: one model each)")
    g.add_argument("--label", default=None, help="name of the model in reports (default: checkpoint stem or --model)")
    g.add_argument("--compare-original", action="store_true",
                   help="also evaluate the original CLIP (no --checkpoint); each model is attacked with its own examples")
    g = p.add_argument_group("data")
    g.add_argument("--datasets", nargs="+", default=list(_D.datasets),
                   help="registry names, collections (zs16, world-suite) or ImageFolder/CSV paths")
    g.add_argument("--data-root", default=None, help="folder holding the datasets (default: $UCAT_DATA)")
    g.add_argument("--split", default=None, help="dataset split (default: each dataset's protocol split)")
    g.add_argument("--n-samples", type=int, default=None, help="seeded random subset of each dataset")
    g.add_argument("--templates", nargs="+", default=None, help="prompt templates with {} (default: the dataset's)")
    g.add_argument("--image-size", type=int, default=None, help="input resolution (default: the model's)")
    g = p.add_argument_group("attacks (sizes in 1/255 units)")
    g.add_argument("--attacks", nargs="+", default=list(_D.attacks),
                   help="pgd, pgd-l2, cw, aa-paper, aa-standard, uncertainty, none (default: pgd)")
    g.add_argument("--eps", nargs="+", default=["1"], help="perturbation size(s) in 1/255 units (default 1)")
    g.add_argument("--steps", type=int, default=_D.steps, help="attack steps (default %(default)s; the paper: 100)")
    g.add_argument("--step-size", default=None, help="step in 1/255 units (default: eps, as in the paper)")
    g.add_argument("--norm", choices=("linf", "l2"), default=_D.norm,
                   help="threat model of pgd/cw/uncertainty/AutoAttack (L2 sizes are also in 1/255 units)")
    g.add_argument("--restarts", type=int, default=_D.restarts)
    g.add_argument("-A", "--attack-option", dest="attack_options", action=_AttackOptions, default={},
                   metavar="ATTACK.KEY=VALUE", help="an attack option, repeatable (cw.kappa=0, uncertainty.score=epistemic, "
                                                    "aa-standard.n_queries=1000)")
    g = p.add_argument_group("run")
    g.add_argument("--batch-size", type=int, default=_D.batch_size)
    g.add_argument("--device", default=_D.device, help="auto | cpu | cuda | cuda:N")
    g.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default=_D.precision)
    g.add_argument("--seed", type=int, default=_D.seed)
    g.add_argument("--num-workers", default=_D.num_workers,
                   help="loader worker processes, or auto (0 on CPU; on CUDA the cores per process less one, at most 16)")
    g.add_argument("--out", default=_D.out, help="output folder (default %(default)s)")
    g.add_argument("--save-logits", action="store_true", help="also save per-sample clean/adversarial logits (npz)")
    g.add_argument("--n-bins", type=int, default=_D.n_bins, help="calibration bins (default %(default)s)")
    g.add_argument("--binning", choices=("width", "mass"), default=_D.binning)
    g.add_argument("--temperature", type=float, default=_D.temperature, help="tau' of the Dirichlet uncertainty")
    g.add_argument("--no-resume", dest="resume", action="store_false", help="recompute finished results")
    g.add_argument("--no-plots", dest="plots", action="store_false", help="skip the PNG figures")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    g.add_argument("--estimate", action="store_true",
                   help="print the run's time and peak memory, from one timed batch per attack, and exit")


def model_specs(args: argparse.Namespace) -> List[ModelSpec]:
    ckpts = args.checkpoint or []
    if isinstance(ckpts, str):
        ckpts = [ckpts]
    if not ckpts:
        return [ModelSpec(args.label or args.model, args.model, args.pretrained, None)]
    specs = []
    for i, c in enumerate(ckpts):
        path = Path(c)
        label = args.label if (args.label and len(ckpts) == 1) else path.stem
        if any(s.label == label for s in specs):
            label = f"{path.parent.name}-{path.stem}"
        specs.append(ModelSpec(label, args.model, args.pretrained, str(c)))
    if args.compare_original:
        specs.insert(0, ModelSpec(f"{args.model} (original)", args.model, args.pretrained, None))
    return specs


def _parse_size(value: Any, name: str, norm: str) -> float:
    """1/255 units; L2 radii may exceed the L-inf sanity bound of 64/255 (e.g. 0.5 of the range = 127.5)."""
    if norm == "l2":
        return parse_eps(value, name, upper=None, refuse_fractions=False)
    return parse_eps(value, name)


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    eps = args.eps if isinstance(args.eps, list) else [args.eps]
    step = None if args.step_size in (None, "") else _parse_size(args.step_size, "--step-size", args.norm)
    return EvalConfig(
        models=model_specs(args), datasets=list(args.datasets), data_root=args.data_root, split=args.split,
        attacks=list(args.attacks), eps=[_parse_size(e, "--eps", args.norm) for e in eps], steps=args.steps, step_size=step,
        norm=args.norm, restarts=args.restarts, attack_options=dict(args.attack_options or {}),
        n_samples=args.n_samples, batch_size=args.batch_size, device=args.device, precision=args.precision,
        seed=args.seed, out=args.out, save_logits=args.save_logits, n_bins=args.n_bins, binning=args.binning,
        temperature=args.temperature, num_workers=args.num_workers, image_size=args.image_size,
        templates=args.templates, plots=args.plots, progress=args.progress, resume=args.resume)


def run(args: argparse.Namespace) -> int:
    if args.compare_original and not args.checkpoint:
        raise ValueError("--compare-original compares a --checkpoint with the original model; give --checkpoint FILE")
    cfg = config_from_args(args)
    try:
        if getattr(args, "estimate", False):
            print_estimate(cfg)
            return 0
        results = run_eval(cfg)
        if not dist.is_initialized() or dist.get_rank() == 0:
            print(summary_table(results))
            print(f"results in {cfg.out}/ (summary.md, summary.csv, one JSON per model/dataset/attack)", file=sys.stderr)
    finally:
        if dist.is_initialized():
            cleanup_distributed(DistInfo(world_size=dist.get_world_size()))
    return 0
