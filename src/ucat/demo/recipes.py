"""Each method's shipped paper recipe (``ucat/recipes/<method>.yaml``) scaled to the demo's one budget.

The scaling rule, the same for every method (docs/demo.md):

* kept from the recipe: the method and its options, the training attack and its number of steps,
  the schedule, momentum, weight decay, trained blocks and precision;
* shared: model (the shipped ``ucat-world``), data (``world-train``), steps x batch, the seed, the
  training eps (the demo's), the optimizer (one config value);
* scaled by one shared rule: the learning rate is the recipe's times ``lr_scale`` (so the recipes'
  ratios between methods stay); the attack step is the recipe's step times demo eps / recipe eps
  (so step / eps stays); the warm-up is the recipe's share of its own run (recipe warm-up steps
  over the recipe's steps: epochs x ceil(train images / batch)) times the demo's steps.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict

import yaml

from ..recipes import recipe_path
from ..train import TrainConfig
from .config import MODEL, DemoConfig

#: training images of the data set each recipe was written for (all: TinyImageNet train, paper.md Sec. 2)
RECIPE_TRAIN_IMAGES = {"tinyimagenet": 100_000}


def load_recipe(method: str) -> Dict[str, Any]:
    """The shipped recipe of ``method`` as a dict (``ucat/recipes/<method>.yaml``)."""
    path = recipe_path(method)
    if path is None:
        raise FileNotFoundError(f"no shipped recipe for method {method!r} (ucat/recipes/{method}.yaml)")
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


def recipe_steps(recipe: Dict[str, Any]) -> int:
    """The optimizer steps of the recipe's own run: epochs x ceil(training images / batch)."""
    data = recipe.get("data", "tinyimagenet")
    if data not in RECIPE_TRAIN_IMAGES:
        raise ValueError(f"recipe data {data!r}: its training-set size is unknown to the demo's scaling rule")
    return int(recipe.get("epochs", 10)) * math.ceil(RECIPE_TRAIN_IMAGES[data] / int(recipe.get("batch_size", 256)))


def scaled_settings(cfg: DemoConfig, method: str) -> Dict[str, Any]:
    """The TrainConfig fields of ``method``'s recipe under the demo's budget (see the module docstring)."""
    r = load_recipe(method)
    recipe_eps = float(r.get("eps", 1.0))
    warmup = int(r.get("warmup_steps", 0))
    return {
        "method": r.get("method", method), "method_options": dict(r.get("method_options") or {}),
        "attack": r.get("attack", "pgd"), "attack_steps": int(r.get("attack_steps", 2)),
        "attack_step_size": float(r.get("attack_step_size", recipe_eps)) * cfg.eps / recipe_eps,
        "eps": float(cfg.eps), "optimizer": cfg.optimizer, "lr": float(r.get("lr", 1e-4)) * cfg.lr_scale,
        "momentum": float(r.get("momentum", 0.9)), "weight_decay": float(r.get("weight_decay", 0.0)),
        "schedule": r.get("schedule", "cosine"), "last_n_blocks": int(r.get("last_n_blocks", 0)),
        "precision": r.get("precision", "auto"),
        "warmup_steps": int(round(cfg.train_steps * warmup / recipe_steps(r))),
        "recipe_lr": float(r.get("lr", 1e-4)), "recipe_optimizer": r.get("optimizer", "sgd"),
        "recipe_batch_size": int(r.get("batch_size", 256)), "recipe_eps": recipe_eps,
        "recipe_steps": recipe_steps(r), "recipe_warmup_steps": warmup,
    }


def train_config(cfg: DemoConfig, method: str, seed: int, out: Path) -> TrainConfig:
    """The ``ucat.train.train`` config of one fine-tuning: ``method``'s scaled recipe, seed ``seed``."""
    s = {k: v for k, v in scaled_settings(cfg, method).items() if not k.startswith("recipe_")}
    return TrainConfig(model=MODEL, pretrained=None, data="world-train", n_samples=cfg.train_n, epochs=10 ** 6,
                       max_steps=cfg.train_steps, batch_size=cfg.batch_size, out=str(out), seed=seed,
                       device=cfg.device, progress=False, checkpoint_every=10 ** 9, keep_checkpoints=1,
                       log_every=max(1, cfg.train_steps // 10), resume=None, select="last", **s)
