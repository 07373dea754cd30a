"""What an evaluation depends on (:class:`EvalConfig`, :class:`ModelSpec`) and its validation.

Validation names *parameters* (``ConfigError("steps", "must be >= 1, got 0")``); the command
layer turns them into flags. Everything that can be refused is refused here, before a model is
loaded or an image is read.
"""
from __future__ import annotations

import math
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

from ..data import num_workers_setting
from ..errors import ConfigError
from ..uncertainty import ALPHA_FORMS

NORMS = ("linf", "l2")
PRECISIONS = ("fp32", "bf16", "fp16")
BINNINGS = ("width", "mass")
CLASSNAMES = ("official", "clip")
INTERPOLATIONS = ("bilinear", "bicubic")
CALIBRATIONS = ("temperature",)
CALIBRATION_SETTINGS = ("oracle", "zero-shot")
CALIBRATION_FITS = ("clean", "adversarial")


@dataclass
class ModelSpec:
    """One model to evaluate: an open_clip architecture + weights, optionally with ``ucat train`` vision weights.

    Args:
        label: name used in reports and output folders.
        model: open_clip architecture or shipped model name (``ViT-B-32``, ``ucat-world``).
        pretrained: tag, local weights file or hf-hub id (None: random init / shipped weights).
        checkpoint: vision weights written by ``ucat train`` (loaded into the image tower).
    """

    label: str
    model: str
    pretrained: Optional[str] = None
    checkpoint: Optional[str] = None


@dataclass
class EvalConfig:
    """Everything an evaluation depends on; saved next to every result.

    Perturbation sizes (``eps``, ``step_size``) are in **1/255 units** (``eps=[1]`` is 1/255),
    converted once to fractions of [0,1] when the attacks are built. The defaults are the
    ``quick`` protocol's (:mod:`ucat.protocols`); ``protocol`` / ``protocol_overrides`` record
    which named protocol filled them and which settings the caller changed.
    """

    models: List[ModelSpec] = field(default_factory=list)
    datasets: List[str] = field(default_factory=lambda: ["world-suite"])
    data_root: Optional[str] = None
    data_cache: Optional[str] = None          # folder of preprocessed uint8 caches (ucat.data.cache); None = decode
    split: Optional[str] = None               # None: each dataset's protocol split
    attacks: List[str] = field(default_factory=lambda: ["pgd"])
    eps: List[float] = field(default_factory=lambda: [1.0])   # 1/255 units; several -> one result each
    steps: int = 10                           # the paper uses 100 (PGD-100, CW-100)
    step_size: Optional[float] = 1.0          # 1/255 units, at every eps (VivienLu/UCAT main.sh: 1/255); None -> eps
    norm: str = "linf"
    restarts: int = 1
    attack_options: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # e.g. {"cw": {"kappa": 50}}
    n_samples: Optional[int] = None           # seeded random subset per dataset (None: all)
    batch_size: int = 64
    device: str = "auto"
    precision: str = "fp32"
    seed: int = 0
    out: str = "runs/eval"
    save_logits: bool = False
    n_bins: int = 15
    binning: str = "width"
    temperature: float = 0.07                 # tau' of the Dirichlet uncertainty (UCAT)
    uncertainty_alpha: str = "official"       # "official" | "ucat": ucat.uncertainty.ALPHA_FORMS (as quick)
    num_workers: Union[int, str] = "auto"      # loader workers; auto = 0 on CPU, up to 16 per process on CUDA
    image_size: Optional[int] = None          # None: the model's own resolution
    templates: Union[None, str, List[str]] = "paper"   # "paper" | "ensemble" | a list; None: the builder's
    classnames: Optional[str] = "official"    # "official" | "clip"; None: the dataset builder's default
    interpolation: Optional[str] = "bilinear"  # "bilinear" | "bicubic"; None: the dataset builder's default
    protocol: Optional[str] = "quick"         # the named protocol the defaults came from (these defaults: quick)
    protocol_overrides: Dict[str, Any] = field(default_factory=dict)   # settings that differ from it
    calibrate: Optional[str] = None           # "temperature": post-hoc temperature scaling (ucat.eval.calibrate)
    calibration_setting: str = "oracle"       # "oracle" (held-out part of each dataset) | "zero-shot" (a named set)
    calibration_fit: str = "clean"            # fit T on "clean" or "adversarial" logits of the fitting images
    calibration_fraction: float = 0.2         # oracle: share of each evaluated dataset held out to fit T
    calibration_data: Optional[str] = None    # zero-shot: the calibration dataset (never an evaluated one)
    calibration_split: Optional[str] = None   # zero-shot: its split (None: the dataset's protocol split)
    calibration_n: Optional[int] = 1000       # zero-shot: a seeded subset of it (None: all)
    bootstrap: int = 0                        # bootstrap resamples for 95% intervals (0: none; ucat.eval.intervals)
    ood: List[str] = field(default_factory=list)   # out-of-distribution sets scored against each evaluated one
    ood_attack: str = "calib-over"            # the attack that makes OOD images look familiar (at the first eps)
    plots: bool = True
    progress: bool = True
    resume: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.eps, (int, float)):
            self.eps = [float(self.eps)]
        if isinstance(self.attacks, str):
            self.attacks = [self.attacks]
        if isinstance(self.datasets, str):
            self.datasets = [self.datasets]
        if isinstance(self.ood, str):
            self.ood = [self.ood]
        self.models = [m if isinstance(m, ModelSpec) else ModelSpec(**m) for m in self.models]
        self.num_workers = num_workers_setting(self.num_workers)


def _choice(name: str, value: Any, choices) -> None:
    if value not in choices:
        raise ConfigError(name, f"must be one of {', '.join(map(str, choices))}, got {value!r}")


def _sizes(cfg: EvalConfig) -> None:
    for e in cfg.eps:
        if not isinstance(e, (int, float)) or not math.isfinite(e) or e < 0:
            raise ConfigError("eps", f"must be a finite size >= 0 in 1/255 units, got {e!r}")
    if cfg.step_size is not None and (not math.isfinite(cfg.step_size) or cfg.step_size <= 0):
        raise ConfigError("step_size", f"must be a finite size > 0 in 1/255 units, got {cfg.step_size!r}")


def _calibration(cfg: EvalConfig) -> None:
    if cfg.calibrate is None:
        return
    _choice("calibrate", cfg.calibrate, CALIBRATIONS)
    _choice("calibration_setting", cfg.calibration_setting, CALIBRATION_SETTINGS)
    _choice("calibration_fit", cfg.calibration_fit, CALIBRATION_FITS)
    if not 0 < cfg.calibration_fraction < 1:
        raise ConfigError("calibration_fraction", f"must be in (0, 1), got {cfg.calibration_fraction}")
    if cfg.calibration_setting == "zero-shot":
        if not cfg.calibration_data:
            raise ConfigError("calibration_data", "is empty: the zero-shot temperature needs a calibration set "
                                                  "(e.g. the training distribution's held-out split)")
        if cfg.calibration_data in cfg.datasets and (cfg.calibration_split or None) == (cfg.split or None):
            raise ConfigError("calibration_data", f"{cfg.calibration_data!r} is also evaluated (same split): the "
                                                  f"calibration images must never be evaluated; name another set "
                                                  f"or another split")
        if cfg.calibration_n is not None and cfg.calibration_n < 20:
            raise ConfigError("calibration_n", f"must be >= 20 images to fit a temperature, got {cfg.calibration_n}")


def validate(cfg: EvalConfig) -> None:
    """Refuse every setting that cannot run, naming the parameter (before anything is loaded)."""
    if not cfg.models:
        raise ConfigError("model", "is empty: give at least one model to evaluate")
    if not cfg.datasets:
        raise ConfigError("datasets", "is empty: give a dataset name, a collection (zs16, world-suite) or a folder")
    if not cfg.attacks:
        raise ConfigError("attacks", "is empty: give an attack (e.g. pgd cw aa-paper; 'none' for clean only)")
    for name in ("batch_size", "steps", "restarts", "n_bins"):
        value = getattr(cfg, name)
        if not isinstance(value, int) or value < 1:
            raise ConfigError(name, f"must be an integer >= 1, got {value!r}")
    if cfg.n_samples is not None and cfg.n_samples < 1:
        raise ConfigError("n_samples", f"must be >= 1 (or unset for the whole split), got {cfg.n_samples}")
    _choice("norm", cfg.norm, NORMS)
    _choice("precision", cfg.precision, PRECISIONS)
    _choice("binning", cfg.binning, BINNINGS)
    _choice("uncertainty_alpha", cfg.uncertainty_alpha, ALPHA_FORMS)
    if cfg.classnames is not None:
        _choice("classnames", cfg.classnames, CLASSNAMES)
    if cfg.interpolation is not None:
        _choice("interpolation", cfg.interpolation, INTERPOLATIONS)
    if not (isinstance(cfg.temperature, (int, float)) and math.isfinite(cfg.temperature) and cfg.temperature > 0):
        raise ConfigError("temperature", f"must be a finite number > 0, got {cfg.temperature!r}")
    _sizes(cfg)
    _calibration(cfg)
    if not isinstance(cfg.bootstrap, int) or (cfg.bootstrap != 0 and cfg.bootstrap < 10):
        raise ConfigError("bootstrap", f"must be 0 (off) or >= 10 resamples, got {cfg.bootstrap!r}")
    if Path(cfg.out).exists() and not Path(cfg.out).is_dir():
        raise ConfigError("out", f"{cfg.out} is a file; give a folder for the results")
    labels = [m.label for m in cfg.models]
    if len(set(labels)) != len(labels):
        raise ConfigError("label", f"model labels must be unique, got {labels}")
