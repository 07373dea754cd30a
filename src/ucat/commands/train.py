"""``ucat train``: adversarial fine-tuning of CLIP's image encoder with one of ucat's methods.

    ucat train --method ucat --model ViT-B-32 --pretrained openai --data tinyimagenet --data-root DIR \\
               --epochs 10 --batch-size 256 --lr 1e-4 --eps 1 --attack-steps 2 --out runs/ucat
    ucat train --recipe ucat --data-root DIR                       # a shipped recipe, with overrides
    ucat train --config configs/ucat.yaml --data-root DIR          # the same from a file
    ucat train --list-recipes                                      # name + one line each
    torchrun --nproc_per_node=4 -m ucat train --recipe ucat --data-root DIR

Flag names equal the YAML keys of ``--config`` files (``--batch-size`` <-> ``batch_size``).
"""
from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from typing import Any, Dict

from ..config import parse_cli_value
from ..errors import ConfigError, UcatError
from ..recipes import list_recipes
from ..train import TrainingDiverged, train
from ..train.config import OPTIMIZERS, SCHEDULES, SELECTIONS, TrainConfig

_DEFAULTS = TrainConfig()


class _KeyValues(argparse.Action):
    """``-O key=value`` (repeatable) into a dict, on top of a dict given by ``--config``."""

    def __call__(self, parser, namespace, values, option_string=None):
        current = getattr(namespace, self.dest, None)
        merged: Dict[str, Any] = dict(current) if isinstance(current, dict) else {}
        if "=" not in values:
            parser.error(f"{option_string} {values!r}: expected KEY=VALUE, e.g. {option_string} tau=1e5")
        k, v = values.split("=", 1)
        merged[k.strip().replace("-", "_")] = parse_cli_value(v)
        setattr(namespace, self.dest, merged)


class _Explicit(argparse.Action):
    """A plain store that also records that the flag was given on the command line."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        given = set(getattr(namespace, "explicit_flags", set()))
        setattr(namespace, "explicit_flags", given | {self.dest})


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = _DEFAULTS
    p.add_argument("--config", "--recipe", dest="config", default=None,
                   help="a shipped recipe by name (ucat, tecoa, pmg-aft, fare, tga-zsr, ...: see --list-recipes) "
                        "or a YAML file; flags override it")
    p.add_argument("--list-recipes", action="store_true", help="list the shipped recipes and exit")
    g = p.add_argument_group("method")
    g.add_argument("--method", default=d.method, help="ucat | tecoa | pmg-aft | fare | tga-zsr | clean")
    g.add_argument("-O", "--method-option", dest="method_options", action=_KeyValues, default={},
                   metavar="KEY=VALUE", help="a method option, repeatable (e.g. -O tau=1e5, -O alpha=0.08)")
    g = p.add_argument_group("model and data")
    g.add_argument("--model", action=_Explicit, default=d.model, help="open_clip architecture or shipped model (default %(default)s)")
    g.add_argument("--pretrained", action=_Explicit, default=d.pretrained, help="pretrained tag (openai), weights file or hf-hub id")
    g.add_argument("--data", default=d.data, help="training dataset: registry name, ImageFolder path or .csv")
    g.add_argument("--data-root", default=d.data_root, help="folder holding the datasets (default: $UCAT_DATA)")
    g.add_argument("--data-cache", default=d.data_cache, metavar="DIR",
                   help="read decoded, resized uint8 images from a cache in DIR, built on first use (ucat data cache); "
                        "results are bit-identical without it")
    g.add_argument("--split", default=d.split, help="training split (default: the dataset's train split)")
    g.add_argument("--n-samples", type=int, default=d.n_samples, help="train on a random subset of this size")
    g.add_argument("--templates", nargs="+", default=d.templates, help="prompt templates with {} (default: the dataset's)")
    g = p.add_argument_group("optimization")
    g.add_argument("--epochs", type=int, default=d.epochs)
    g.add_argument("--max-steps", type=int, default=d.max_steps, help="cap on optimizer steps")
    g.add_argument("--batch-size", type=int, default=d.batch_size, help="global batch (split over processes)")
    g.add_argument("--lr", type=float, default=d.lr)
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer)
    g.add_argument("--momentum", type=float, default=d.momentum)
    g.add_argument("--weight-decay", type=float, default=d.weight_decay)
    g.add_argument("--warmup-steps", type=int, default=d.warmup_steps)
    g.add_argument("--schedule", choices=SCHEDULES, default=d.schedule)
    g.add_argument("--grad-clip", type=float, default=d.grad_clip)
    g.add_argument("--precision", choices=("fp32", "bf16", "fp16", "auto"), default=d.precision,
                   help="fp16 needs CUDA (uses a GradScaler); bf16 works on CPU and GPU; "
                        "auto = fp16 on CUDA, fp32 elsewhere (the recipes' setting)")
    g.add_argument("--device", default=d.device, help="auto | cpu | cuda | cuda:N")
    g.add_argument("--last-n-blocks", type=int, default=d.last_n_blocks, help="train only the last N blocks (0 = all)")
    g = p.add_argument_group("training attack (sizes in 1/255 units)")
    g.add_argument("--attack", default=d.attack, help="training attack from ucat.attacks (default %(default)s)")
    g.add_argument("--eps", default=d.eps, help="L-inf radius in 1/255 units (1 = 1/255)")
    g.add_argument("--attack-steps", type=int, default=d.attack_steps)
    g.add_argument("--attack-step-size", default=d.attack_step_size, help="step in 1/255 units")
    g = p.add_argument_group("selection, checkpoints, logging")
    g.add_argument("--val-fraction", type=float, default=d.val_fraction,
                   help="held-out share of the TRAINING data for model selection (0 = none)")
    g.add_argument("--val-attack-steps", type=int, default=d.val_attack_steps)
    g.add_argument("--select", choices=SELECTIONS, default=d.select, help="export the last or the best-on-held-out model")
    g.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, help="steps between checkpoints")
    g.add_argument("--keep-checkpoints", type=int, default=d.keep_checkpoints)
    g.add_argument("--resume", default=d.resume, help="checkpoint folder, run folder, or 'auto' (latest in --out)")
    g.add_argument("--out", default=d.out, help="run directory (default %(default)s)")
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--num-workers", default=d.num_workers,
                   help="loader worker processes, or auto (0 on CPU; on CUDA the cores per process less one, at most 16)")
    g.add_argument("--log-every", type=int, default=d.log_every)
    g.add_argument("--no-progress", dest="progress", action="store_false", default=d.progress,
                   help="no progress bar")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in names}
    given = getattr(args, "explicit_flags", set())
    if "model" in given and "pretrained" not in given and values.get("pretrained") != _DEFAULTS.pretrained \
            and getattr(args, "config", None):
        # A recipe's weights tag belongs to the recipe's model: --model alone replaces both.
        print(f"ucat train: --model {values['model']} replaces the recipe's model, so its --pretrained "
              f"{values['pretrained']!r} is not used (give --pretrained to choose weights)", file=sys.stderr)
        values["pretrained"] = _DEFAULTS.pretrained
    opts = values.get("method_options")
    if opts is None:
        values["method_options"] = {}
    elif not isinstance(opts, dict):
        raise UcatError(f"method_options (in --config) must be a mapping of option: value, got {opts!r}")
    if isinstance(values.get("templates"), str):
        values["templates"] = [values["templates"]]
    return TrainConfig(**values)


# Parameters whose flag is not --<param-with-dashes>.
_FLAGS = {"method_options": "-O"}


def _flag_words(text: str) -> str:
    """Parameter names with an underscore inside a library message (``val_fraction``) as flags."""
    names = [f.name for f in dataclasses.fields(TrainConfig) if "_" in f.name]
    return re.sub(r"(?<![-\w])(" + "|".join(names) + r")(?![\w])",
                  lambda m: _FLAGS.get(m.group(1), "--" + m.group(1).replace("_", "-")), text)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "list_recipes", False):
        for name, description in list_recipes():
            print(f"{name:12s} {description}")
        return 0
    cfg = config_from_args(args)
    try:
        cfg.validate()
        result = train(cfg)
    except ConfigError as e:
        raise UcatError(_flag_words(e.for_flags(_FLAGS.get(e.param)))) from None
    except TrainingDiverged as e:
        hint = f" (continue from it with --resume {e.checkpoint})" if e.checkpoint else ""
        print(f"ucat train: stopped: {e}{hint}. Try a lower --lr, --precision fp32, or --grad-clip 1.0.",
              file=sys.stderr)
        return 1
    if result.export is not None:
        print(f"model: {result.export}")
        print(f"evaluate it with: ucat eval --model {cfg.model} --checkpoint {result.export}")
    return 0
