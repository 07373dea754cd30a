"""AutoAttack through the maintained ``pyautoattack`` packaging of the original code (not vendored).

Croce & Hein, "Reliable Evaluation of Adversarial Robustness with an Ensemble of Diverse
Parameter-free Attacks", ICML 2020 (arXiv 2003.01690). Two named variants:

* ``aa-paper``: APGD-CE + APGD-DLR, 100 iterations, 1 restart: what the UCAT, TeCoA and TGA-ZSR
  papers call "AutoAttack" (their code sets ``version='standard'`` and then overrides
  ``attacks_to_run``; Lu et al., arXiv 2512.12997, evaluation protocol).
* ``aa-standard``: the real standard AutoAttack, APGD-CE, APGD-T, FAB-T and Square with the
  original hyperparameters.

The number of classes comes from the classifier (AutoAttack's targeted attacks crash with an
IndexError when it is wrong, and only once some point survives). DLR and targeted attacks need at
least 3 classes: with fewer (PCAM is binary) the adapter runs APGD-CE alone and records a note.
AutoAttack runs its cascade itself (only still-robust points are attacked further; the points it
never fools are returned unchanged).
"""
from __future__ import annotations

import logging
from typing import Dict, List

import torch
import torch.nn as nn

from .base import ATTACKS, Attack, num_classes_of

_NORMS = {"linf": "Linf", "l2": "L2"}


class _Logits(nn.Module):
    """The classifier as a plain float32 logits model (what AutoAttack's ``predict`` expects)."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x).float()                                    # (B, C)


class _Collect(logging.Handler):
    def __init__(self, sink: List[str]):
        super().__init__(level=logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(f"autoattack: {record.getMessage()}")


class AutoAttackAdapter(Attack):
    """Base of the two AutoAttack variants (see the module docstring).

    Args:
        eps: radius, fraction of [0,1].
        step_size, steps: accepted for the common constructor and ignored: AutoAttack is
            parameter-free and uses its own step sizes; ``n_iter`` (default 100, the original)
            sets its iterations.
        n_queries: Square's query budget (default 5000, the original).
        norm: ``"linf"`` or ``"l2"``.
        seed: AutoAttack's seed (its global-RNG seeding is confined to the call).
    """

    name = "autoattack"
    uses_backward = True   # FAB calls .backward(): parameter grads are saved and restored
    at_least_as_strong_as = ("pgd",)
    attacks_to_run: List[str] = []

    def __init__(self, eps: float, step_size: float = 0.0, steps: int = 100, norm: str = "linf",
                 n_iter: int = 100, n_queries: int = 5000, seed: int = 0):
        super().__init__(eps, 0.0, int(n_iter), norm)
        self.n_iter = int(n_iter)
        self.n_queries = int(n_queries)
        self.seed = int(seed)
        self.last_run: List[str] = []

    def config(self) -> Dict[str, object]:
        return {"name": self.name, "eps": self.eps, "norm": self.norm, "n_iter": self.n_iter,
                "n_queries": self.n_queries, "seed": self.seed,
                "attacks": list(self.attacks_to_run), "package": "pyautoattack"}

    def plan(self, n_classes: int) -> List[str]:
        """The attacks to run for ``n_classes`` classes (CE only below 3 classes)."""
        if n_classes < 3:
            return ["apgd-ce"]
        return list(self.attacks_to_run)

    def _build(self, model: nn.Module, device: torch.device, n_classes: int):
        try:
            from pyautoattack import AutoAttack
        except ImportError as e:  # pragma: no cover - the package is a dependency
            raise ImportError("AutoAttack needs the 'pyautoattack' package: pip install pyautoattack") from e
        aa = AutoAttack(model, device=device, eps=self.eps, norm=_NORMS[self.norm], seed=self.seed,
                        version="standard")
        aa.attacks_to_run = self.plan(n_classes)
        aa.apgd.n_iter = self.n_iter
        aa.apgd_targeted.n_iter = self.n_iter
        aa.fab.n_iter = self.n_iter
        aa.square.n_queries = self.n_queries
        n_targets = max(1, min(9, n_classes - 1))
        aa.apgd_targeted.n_target_classes = n_targets
        aa.fab.n_target_classes = n_targets
        return aa

    def perturb(self, classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        model = _Logits(classifier)
        with torch.no_grad():
            n_classes = num_classes_of(classifier, model(images[:1]))
        planned = self.plan(n_classes)
        if planned != list(self.attacks_to_run):
            self.notes.append(f"{n_classes} classes: DLR/targeted attacks need >= 3 classes, ran "
                              f"{'+'.join(planned)} instead of {'+'.join(self.attacks_to_run)}")
        aa = self._build(model, images.device, n_classes)
        logger = logging.getLogger("auto-attack")
        handler = _Collect(self.notes)
        logger.addHandler(handler)
        devices = [images.device] if images.device.type == "cuda" else []
        requires = [(p, p.requires_grad) for p in classifier.parameters()]
        try:
            for p, _ in requires:          # no parameter gradients are needed for an input attack
                p.requires_grad_(False)
            with torch.random.fork_rng(devices=devices):
                x_adv, _ = aa.run_standard_evaluation(images, labels, batch_size=images.shape[0])
        finally:
            for p, flag in requires:
                p.requires_grad_(flag)
            logger.removeHandler(handler)
        self.last_run = planned
        return x_adv.detach().float()


@ATTACKS.register("aa-paper")
class AutoAttackPaper(AutoAttackAdapter):
    """AutoAttack as the UCAT/TeCoA/TGA-ZSR papers ran it: APGD-CE + APGD-DLR, 100 iterations, 1 restart
    (Croce & Hein, ICML 2020, arXiv 2003.01690; protocol of Lu et al., arXiv 2512.12997)."""

    name = "aa-paper"
    attacks_to_run = ["apgd-ce", "apgd-dlr"]


@ATTACKS.register("aa-standard")
class AutoAttackStandard(AutoAttackAdapter):
    """Standard AutoAttack: APGD-CE, APGD-T, FAB-T, Square with the original hyperparameters
    (Croce & Hein, ICML 2020, arXiv 2003.01690)."""

    name = "aa-standard"
    attacks_to_run = ["apgd-ce", "apgd-t", "fab-t", "square"]


__all__ = ["AutoAttackAdapter", "AutoAttackPaper", "AutoAttackStandard"]
