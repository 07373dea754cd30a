"""``ucat eval``: clean and robust accuracy, calibration and uncertainty of a CLIP under attack.

    ucat eval                                             # shipped ucat-world model, world suite, PGD at 1/255
    ucat eval --protocol ucat-paper --model ViT-B-32 --pretrained openai --data-root DIR --out runs/eval-clip
    ucat eval --model ViT-B-32 --pretrained openai --checkpoint runs/ucat/final.safetensors \\
              --compare-original --datasets cifar10 --n-samples 1000 --out runs/eval-ucat
    ucat eval --model ucat-world --datasets /photos/my_classes --attacks pgd uncertainty
    torchrun --nproc_per_node=4 -m ucat eval --protocol ucat-paper ...   # shards each dataset over GPUs

``--protocol NAME`` (default ``quick``) gives every protocol setting its default (:mod:`ucat.protocols`);
a flag given explicitly overrides it and is recorded in every result (``protocol_overrides``).
Sizes (``--eps``, ``--step-size``) are in 1/255 units. Flag names equal the YAML keys of ``--config``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

from ..config import parse_cli_value
from ..io import to_jsonable
from ..models.robust import ROBUST, resolve_robust
from ..protocols import list_protocols, protocol_defaults
from ..eval.config import (CALIBRATION_FITS, CALIBRATION_SETTINGS, CALIBRATIONS, CLASSNAMES, INTERPOLATIONS,
                           EvalConfig, ModelSpec)
from ..eval.estimate import print_estimate
from ..eval.evaluator import run_eval
from ..eval.report import summary_markdown
from ..uncertainty import ALPHA_FORMS
from ..units import parse_eps

_D = EvalConfig()
DEFAULT_PROTOCOL = "quick"
# EvalConfig fields whose default comes from the protocol (None on the parser = not given).
PROTOCOL_FIELDS = ("datasets", "attacks", "eps", "steps", "step_size", "restarts", "n_samples", "attack_options",
                   "classnames", "templates", "interpolation", "uncertainty_alpha")


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


def _model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", default="ucat-world",
                   help="open_clip architecture, shipped model, or a published robust checkpoint's name "
                        "(ucat models --robust) (default %(default)s)")
    g.add_argument("--pretrained", default=None, help="pretrained tag (openai), local weights file or hf-hub id")
    g.add_argument("--base", default=None, metavar="TAG",
                   help="with --pretrained FILE holding only a vision encoder (e.g. RobustVLM's fare_eps_2.pt): the "
                        "pretrained tag of the base model its text tower comes from (e.g. openai)")
    g.add_argument("--checkpoint", nargs="+", default=None, metavar="FILE",
                   help="vision weights written by `ucat train` (several: one model each)")
    g.add_argument("--label", default=None, help="name of the model in reports (default: checkpoint stem or --model)")
    g.add_argument("--compare-original", action="store_true",
                   help="also evaluate the original CLIP (no --checkpoint); each model is attacked with its own examples")


def _data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data (defaults: the protocol's)")
    g.add_argument("--datasets", nargs="+", default=None,
                   help="registry names, collections (zs16, world-suite) or ImageFolder/CSV paths")
    g.add_argument("--data-root", default=None, help="folder holding the datasets (default: $UCAT_DATA)")
    g.add_argument("--data-cache", default=None, metavar="DIR",
                   help="read decoded, resized uint8 images from a cache in DIR, built on first use (ucat data cache); "
                        "results are bit-identical without it")
    g.add_argument("--split", default=None, help="dataset split (default: each dataset's protocol split)")
    g.add_argument("--n-samples", type=int, default=None, help="seeded random subset of each dataset")
    g.add_argument("--templates", nargs="+", default=None,
                   help="prompt templates with {}, or 'paper' / 'ensemble' (default: the protocol's)")
    g.add_argument("--classnames", choices=CLASSNAMES, default=None,
                   help="official (the names the official code encodes) or clip (CLIP's curated names)")
    g.add_argument("--interpolation", choices=INTERPOLATIONS, default=None,
                   help="resize interpolation (the official preprocessing: bilinear)")
    g.add_argument("--image-size", type=int, default=None, help="input resolution (default: the model's)")


def _attack_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("attacks (sizes in 1/255 units; defaults: the protocol's)")
    g.add_argument("--protocol", default=DEFAULT_PROTOCOL,
                   help=f"named evaluation protocol giving every default below ({', '.join(list_protocols())}; "
                        "default %(default)s; see docs/protocols.md); flags you give override it and are recorded")
    g.add_argument("--attacks", nargs="+", default=None,
                   help="pgd, pgd-l2, cw, aa-paper, aa-standard, uncertainty, none (quick: pgd)")
    g.add_argument("--eps", nargs="+", default=None, help="perturbation size(s) in 1/255 units (quick: 1)")
    g.add_argument("--steps", type=int, default=None, help="attack steps, >= 1 (quick: 10; the paper: 100)")
    g.add_argument("--step-size", default=None,
                   help="step in 1/255 units, the same at every eps (default 1 = 1/255, as the official evaluation)")
    g.add_argument("--norm", choices=("linf", "l2"), default=_D.norm,
                   help="threat model of pgd/cw/uncertainty/AutoAttack (L2 sizes are also in 1/255 units)")
    g.add_argument("--restarts", type=int, default=None)
    g.add_argument("-A", "--attack-option", dest="attack_options", action=_AttackOptions, default=None,
                   metavar="ATTACK.KEY=VALUE", help="an attack option, repeatable (cw.kappa=0, uncertainty.score=epistemic, "
                                                    "aa-standard.n_queries=1000)")


def _run_args(p: argparse.ArgumentParser) -> None:
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
    g.add_argument("--bootstrap", type=int, default=_D.bootstrap,
                   help="seeded bootstrap resamples for 95%% intervals of accuracy, ECE, NLL, Brier, AURC (0 = off; e.g. 1000)")
    g.add_argument("--binning", choices=("width", "mass"), default=_D.binning)
    g.add_argument("--temperature", type=float, default=_D.temperature, help="tau' of the Dirichlet uncertainty")
    g.add_argument("--uncertainty-alpha", choices=ALPHA_FORMS, default=None,
                   help="Dirichlet alpha of the uncertainty columns: official = 1e-6 + exp(softplus(z)) (the official "
                        "evaluation), ucat = exp((z/s+1)/tau') (the training form); default: the protocol's")
    g.add_argument("--no-resume", dest="resume", action="store_false", help="recompute finished results")
    g.add_argument("--no-plots", dest="plots", action="store_false", help="skip the PNG figures")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    g.add_argument("--estimate", action="store_true",
                   help="print the run's time and peak memory, from one timed batch per attack, and exit")


def _calibration_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("post-hoc calibration (the temperature-scaling baseline)")
    g.add_argument("--calibrate", choices=CALIBRATIONS, default=None,
                   help="fit one temperature by NLL on images never evaluated; every result gains a 'calibrated' block")
    g.add_argument("--calibration-setting", choices=CALIBRATION_SETTINGS, default=_D.calibration_setting,
                   help="oracle: a held-out part of each dataset; zero-shot: one temperature from --calibration-data")
    g.add_argument("--calibration-fit", choices=CALIBRATION_FITS, default=_D.calibration_fit,
                   help="fit on clean or on adversarial logits (default %(default)s)")
    g.add_argument("--calibration-fraction", type=float, default=_D.calibration_fraction,
                   help="oracle: share of each dataset held out for the fit (default %(default)s)")
    g.add_argument("--calibration-data", default=None,
                   help="zero-shot: the calibration set (e.g. tinyimagenet with --calibration-split train)")
    g.add_argument("--calibration-split", default=None, help="zero-shot: its split")
    g.add_argument("--calibration-n", type=int, default=_D.calibration_n, help="zero-shot: images used (seeded subset)")


def _ood_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("out-of-distribution detection")
    g.add_argument("--ood", nargs="+", default=[], metavar="DATASET",
                   help="score telling these sets from each --datasets set by uncertainty (e.g. imagenet-o against imagenet)")
    g.add_argument("--ood-attack", default=_D.ood_attack,
                   help="attack making the OOD images look familiar (default %(default)s: raise their confidence)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, help="YAML file of defaults (keys = flag names); flags override it")
    _model_args(p)
    _data_args(p)
    _attack_args(p)
    _run_args(p)
    _calibration_args(p)
    _ood_args(p)


def model_specs(args: argparse.Namespace) -> List[ModelSpec]:
    ckpts = args.checkpoint or []
    if isinstance(ckpts, str):
        ckpts = [ckpts]
    if args.model in ROBUST:                      # a published robust checkpoint by name (ucat models --robust)
        if ckpts or args.pretrained:
            raise ValueError(f"--model {args.model} names a published checkpoint; drop --checkpoint/--pretrained")
        arch, pretrained, checkpoint = resolve_robust(args.model)
        return [ModelSpec(args.label or args.model, arch, pretrained, checkpoint)]
    if getattr(args, "base", None):               # --pretrained is a vision-encoder state dict on top of --base
        if not args.pretrained or ckpts:
            raise ValueError("--base names the base of a vision-encoder file given as --pretrained FILE; give "
                             "--pretrained FILE (and no --checkpoint)")
        return [ModelSpec(args.label or Path(args.pretrained).stem, args.model, args.base, args.pretrained)]
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


def _given(args: argparse.Namespace) -> Dict[str, Any]:
    """The protocol fields set by a flag (or --config), converted to EvalConfig values."""
    given: Dict[str, Any] = {}
    for f in PROTOCOL_FIELDS:
        v = getattr(args, f, None)
        if v is not None:
            given[f] = v
    if "eps" in given:
        eps = given["eps"] if isinstance(given["eps"], list) else [given["eps"]]
        given["eps"] = [_parse_size(e, "--eps", args.norm) for e in eps]
    if "step_size" in given:
        given["step_size"] = None if given["step_size"] == "" else _parse_size(given["step_size"], "--step-size", args.norm)
    if given.get("templates") in (["paper"], ["ensemble"]):
        given["templates"] = given["templates"][0]
    return given


def resolve_protocol(args: argparse.Namespace) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(the protocol fields of the EvalConfig, the ones a flag overrode with a different value)."""
    base = protocol_defaults(args.protocol)
    given = _given(args)
    fields = {f: base[f] for f in PROTOCOL_FIELDS if f in base}
    for f in ("datasets", "attacks", "eps"):
        if f in fields and fields[f] is not None:
            fields[f] = list(fields[f])
    if isinstance(given.get("attack_options"), dict):      # -A merges into the protocol's options, key by key
        merged = {a: dict(o) for a, o in (fields.get("attack_options") or {}).items()}
        for attack, opts in given["attack_options"].items():
            merged.setdefault(attack, {}).update(opts)
        given["attack_options"] = merged
    overrides = {f: v for f, v in given.items() if fields.get(f, getattr(_D, f)) != v}
    fields.update(given)
    return to_jsonable(fields), to_jsonable(overrides)


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    fields, overrides = resolve_protocol(args)
    return EvalConfig(
        models=model_specs(args), data_root=args.data_root, data_cache=args.data_cache, split=args.split,
        norm=args.norm,
        batch_size=args.batch_size, device=args.device, precision=args.precision, seed=args.seed, out=args.out,
        save_logits=args.save_logits, n_bins=args.n_bins, binning=args.binning, temperature=args.temperature,
        num_workers=args.num_workers, image_size=args.image_size, plots=args.plots, progress=args.progress,
        resume=args.resume, protocol=args.protocol, protocol_overrides=overrides, calibrate=args.calibrate,
        calibration_setting=args.calibration_setting, calibration_fit=args.calibration_fit,
        calibration_fraction=args.calibration_fraction, calibration_data=args.calibration_data,
        calibration_split=args.calibration_split, calibration_n=args.calibration_n, ood=list(args.ood or []),
        bootstrap=args.bootstrap,
        ood_attack=args.ood_attack, **fields)


def run(args: argparse.Namespace) -> int:
    if args.compare_original and not args.checkpoint:
        raise ValueError("--compare-original compares a --checkpoint with the original model; give --checkpoint FILE")
    cfg = config_from_args(args)
    if getattr(args, "estimate", False):
        print_estimate(cfg)
        return 0
    results = run_eval(cfg)
    if results:                                   # rank 0 (other ranks get an empty list)
        print(summary_markdown(results))
        print(f"results in {cfg.out}/ (summary.md, summary.csv, one JSON per model/dataset/attack)", file=sys.stderr)
    return 0
