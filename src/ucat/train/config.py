"""The training configuration: one typed dataclass, the same keys as the ``ucat train`` flags and
the YAML recipes in ``configs/``. Perturbation sizes are in 1/255 units here (converted once,
in the trainer, with ``ucat.units.to_fraction``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

from ..units import parse_eps

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "constant")
SELECTIONS = ("last", "best")


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
    precision: str = "fp32"                   # fp32 | bf16 | fp16 (CUDA only, with GradScaler)
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
        """Refuse bad values with messages that name the fix."""
        self.eps = parse_eps(self.eps, "--eps")
        self.attack_step_size = parse_eps(self.attack_step_size, "--attack-step-size")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"--optimizer {self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"--schedule {self.schedule!r}: choose one of {', '.join(SCHEDULES)}")
        if self.select not in SELECTIONS:
            raise ValueError(f"--select {self.select!r}: choose one of {', '.join(SELECTIONS)}")
        if self.select == "best" and not self.val_fraction > 0:
            raise ValueError("--select best needs a held-out split of the training data: set --val-fraction "
                             "(e.g. 0.02); ucat never selects checkpoints on the zero-shot test sets")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"--val-fraction {self.val_fraction}: give a share in [0, 1), e.g. 0.02")
        for name in ("epochs", "batch_size", "log_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"--max-steps must be >= 1, got {self.max_steps}")
        if self.lr <= 0:
            raise ValueError(f"--lr must be > 0, got {self.lr}")
        if self.attack_steps < 0 or self.warmup_steps < 0 or self.last_n_blocks < 0:
            raise ValueError("--attack-steps, --warmup-steps and --last-n-blocks must be >= 0")
        if self.n_samples is not None and self.n_samples < 1:
            raise ValueError(f"--n-samples must be >= 1, got {self.n_samples}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"--grad-clip must be > 0, got {self.grad_clip}")
        from ..data import num_workers_setting

        self.num_workers = num_workers_setting(self.num_workers)
        if self.data_root and "{dataset}" not in str(self.data_root):
            import os
            from pathlib import Path

            roots = [r for r in str(self.data_root).split(os.pathsep) if r]   # several roots: a:b
            if not any(Path(r).expanduser().is_dir() for r in roots):
                raise FileNotFoundError(f"--data-root {self.data_root}: no such directory; point it at the "
                                        f"folder holding your datasets (or set UCAT_DATA)")
