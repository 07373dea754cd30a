"""The training configuration: one typed dataclass, the same keys as the ``ucat train`` flags and
the YAML recipes in ``configs/``. Perturbation sizes are in 1/255 units here (converted to fractions
once, where the trainer builds its attacks: ``ucat.train.trainer.make_attacks``)."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from ..data import num_workers_setting
from ..errors import ConfigError
from ..methods.base import check_method_options
from ..units import parse_eps

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "constant")
SELECTIONS = ("last", "best")
PRECISIONS = ("fp32", "bf16", "fp16", "auto")   # auto: fp16 on CUDA, fp32 elsewhere

# (name, lowest allowed value) of the whole-number settings, and of those that may also be None.
_INTEGERS = (("epochs", 1), ("batch_size", 1), ("log_every", 1), ("attack_steps", 0), ("warmup_steps", 0),
             ("last_n_blocks", 0), ("val_attack_steps", 0), ("checkpoint_every", 0), ("keep_checkpoints", 1),
             ("seed", -2 ** 63))
_OPTIONAL_INTEGERS = (("max_steps", 1), ("n_samples", 1))


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved as ``config.yaml`` in the run directory.

    The defaults are the UCAT paper's protocol (Lu et al., arXiv 2512.12997; official main.py/main.sh): SGD momentum 0.9, lr 1e-4,
    no weight decay, 1000 warm-up steps then cosine, 10 epochs, batch 256, L-inf PGD training
    attack eps 1/255, 2 steps of 1/255, seed 0.
    """

    method: str = "ucat"                      # a name in ucat.methods.METHODS
    model: str = "ucat-world"                 # open_clip architecture or shipped ucat model
    pretrained: Optional[str] = None          # tag (openai), weights file, hf-hub id; None = shipped/random
    data: str = "world-train"                 # dataset name, ImageFolder path or .csv
    data_root: Optional[str] = None           # None -> $UCAT_DATA (datasets that need a root)
    data_cache: Optional[str] = None          # folder of preprocessed uint8 caches (ucat.data.cache); None = decode
    split: Optional[str] = None               # None -> the dataset's training split ("train")
    n_samples: Optional[int] = None           # use a random subset of the training data
    templates: Optional[List[str]] = None     # None -> the dataset's templates ("This is a photo of a {}")
    epochs: int = 10
    max_steps: Optional[int] = None           # cap on optimizer steps (the schedule is planned over the cap)
    batch_size: int = 256                     # GLOBAL batch: split over torchrun processes
    lr: float = 1e-4
    optimizer: str = "sgd"                    # sgd (momentum) | adamw
    momentum: float = 0.9                     # SGD momentum (paper: 0.9)
    weight_decay: float = 0.0
    warmup_steps: int = 1000                  # linear warm-up lr*(step+1)/warmup, as the official code
    schedule: str = "cosine"                  # cosine to 0 after warm-up | constant
    grad_clip: Optional[float] = None         # max global grad norm; None = no clipping
    precision: str = "fp32"                   # fp32 | bf16 | fp16 (CUDA only, with GradScaler) | auto
    device: str = "auto"
    eps: float = 1.0                          # training attack radius, 1/255 units
    attack: str = "pgd"                       # training attack (ucat.attacks registry)
    attack_steps: int = 2
    attack_step_size: float = 1.0             # 1/255 units
    method_options: Dict[str, Any] = field(default_factory=dict)   # e.g. {"tau": 1e5}
    val_fraction: float = 0.0                 # held-out share of the TRAINING data for model selection
    val_attack_steps: int = 10                # PGD steps of the validation attack (eps as training)
    select: str = "last"                      # last | best (robust accuracy on the held-out split)
    checkpoint_every: int = 500               # steps between checkpoints (also at every epoch end)
    keep_checkpoints: int = 2                 # how many periodic checkpoints to keep
    resume: Optional[str] = None              # checkpoint dir, run dir, or "auto" (latest in --out)
    out: str = "runs/train"
    seed: int = 0
    num_workers: Union[int, str] = "auto"      # loader workers; auto = 0 on CPU, up to 16 per process on CUDA
    last_n_blocks: int = 0                    # 0 = whole image tower; N = last N blocks + ln_post/proj
    log_every: int = 10                       # steps between CSV/TensorBoard rows
    progress: bool = True                     # tqdm progress bar with ETA (rank 0)

    def validate(self) -> None:
        """Refuse bad values (:class:`ucat.errors.ConfigError` naming the parameter and the fix) and
        normalize the good ones (numbers from text, eps in 1/255 units, ``num_workers``)."""
        self.eps = _eps("eps", self.eps)
        self.attack_step_size = _eps("attack_step_size", self.attack_step_size)
        for name, choices in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("select", SELECTIONS),
                              ("precision", PRECISIONS)):
            if getattr(self, name) not in choices:
                raise ConfigError(name, f"{getattr(self, name)!r}: choose one of {', '.join(choices)}")
        for name, low in _INTEGERS:
            setattr(self, name, _number(name, getattr(self, name), low, integer=True))
        for name, low in _OPTIONAL_INTEGERS:
            if getattr(self, name) is not None:
                setattr(self, name, _number(name, getattr(self, name), low, integer=True))
        self.lr = _number("lr", self.lr, 0.0, strict=True)
        self.momentum = _number("momentum", self.momentum, 0.0)
        self.weight_decay = _number("weight_decay", self.weight_decay, 0.0)
        if self.grad_clip is not None:
            self.grad_clip = _number("grad_clip", self.grad_clip, 0.0, strict=True)
        self.val_fraction = _number("val_fraction", self.val_fraction, 0.0)
        if not self.val_fraction < 1:
            raise ConfigError("val_fraction", f"{self.val_fraction}: give a share in [0, 1), e.g. 0.02")
        if self.select == "best" and not self.val_fraction > 0:
            raise ConfigError("select", "best needs a held-out split of the training data: set val_fraction "
                                        "(e.g. 0.02); ucat never selects checkpoints on the zero-shot test sets")
        if self.method_options is None:
            self.method_options = {}
        self.method_options = check_method_options(self.method, self.method_options)
        try:
            self.num_workers = num_workers_setting(self.num_workers)
        except ValueError:
            raise ConfigError("num_workers", f"{self.num_workers!r}: give 'auto' or a whole number >= 0 "
                                             f"(0 = load in the main process)") from None
        _check_data_root(self.data_root)


def _eps(name: str, value: Any) -> float:
    """A perturbation size in 1/255 units (:func:`ucat.units.parse_eps`) as a ConfigError on ``name``."""
    try:
        return parse_eps(value, name)
    except ValueError as e:
        msg = str(e)
        raise ConfigError(name, msg[len(name) + 1:] if msg.startswith(name + " ") else msg) from None


def _number(name: str, value: Any, low: float, integer: bool = False, strict: bool = False) -> Any:
    """``value`` as a finite number >= ``low`` (> ``low`` when ``strict``), an int when ``integer``."""
    kind = "a whole number" if integer else "a finite number"
    try:
        if isinstance(value, bool):
            raise TypeError
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(name, f"must be {kind}, got {value!r}") from None
    if not math.isfinite(v) or (integer and not v.is_integer()):
        raise ConfigError(name, f"must be {kind}, got {value!r}")
    if v < low or (strict and v <= low):
        raise ConfigError(name, f"must be {'>' if strict else '>='} {low:g}, got {value!r}")
    return int(v) if integer else v


def _check_data_root(data_root: Optional[str]) -> None:
    if not data_root or "{dataset}" in str(data_root):
        return
    roots = [r for r in str(data_root).split(os.pathsep) if r]   # several roots: a:b
    if not any(Path(r).expanduser().is_dir() for r in roots):
        raise ConfigError("data_root", f"{data_root}: no such directory; point it at the folder holding your "
                                       f"datasets (or set UCAT_DATA)")


def resolve_precision(precision: str, device_type: str) -> str:
    """``auto`` -> fp16 (with a GradScaler) on CUDA, as the official codes' AMP; fp32 elsewhere."""
    if precision != "auto":
        return precision
    return "fp16" if device_type == "cuda" else "fp32"
