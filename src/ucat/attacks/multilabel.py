"""Attacks on multi-label zero-shot classification: labels are multi-hot (B, C) 0/1 targets.

As the official UCAT multi-label evaluation runs them (VivienLu/UCAT attacks_multilabel.py):

* ``pgd-bce`` (``attack_pgd``, lines 17-58): PGD ascent on ``BCEWithLogitsLoss(reduction="sum")``
  of the zero-shot logits against the multi-hot targets, uniform random start in the L-inf ball,
  sign steps, clamped to [0,1] (no early stop, one restart).
* ``cw-ml`` (``attack_CW`` with ``multilabel=True``, lines 60-113): the margin between the mean
  logit of the present labels and the largest logit of an absent one, ``-relu(correct - wrong +
  kappa)`` maximized with the same loop, kappa = 50 (on scale-100 logits).

Both use :func:`ucat.attacks.base.pgd_perturb` (the PGD loop checked against the official
single-label attacks), so gradients reach the input only.
"""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import ATTACKS, Attack, pgd_perturb
from .options import check_iterations


class MultiLabelAttack(Attack):
    """Base: ``labels`` are multi-hot (B, C) targets (``multilabel = True`` tells the contract)."""

    multilabel = True
    name = "multilabel"

    def __init__(self, eps: float, step_size: float, steps: int, norm: str = "linf", random_start: bool = True):
        super().__init__(eps, step_size, steps, norm)
        check_iterations(self.name, "steps", steps)
        self.random_start = bool(random_start)

    def objective(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(B, C) logits, (B, C) 0/1 targets -> scalar to maximize."""
        raise NotImplementedError

    def config(self) -> Dict[str, object]:
        return {**super().config(), "random_start": self.random_start}

    def perturb(self, classifier: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        t = targets.float()
        return pgd_perturb(lambda x: self.objective(classifier(x).float(), t), images, self.eps, self.step_size,
                           self.steps, self.norm, self.random_start)


@ATTACKS.register("pgd-bce")
class MultiLabelPGD(MultiLabelAttack):
    """PGD on the summed binary cross-entropy of every label (official attacks_multilabel.py 17-58)."""

    name = "pgd-bce"

    def objective(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, targets, reduction="sum")


@ATTACKS.register("cw-ml")
class MultiLabelCW(MultiLabelAttack):
    """The multi-label CW margin (official attacks_multilabel.py 60-113): mean present-label logit
    against the largest absent-label logit, hinge at ``kappa``."""

    name = "cw-ml"

    def __init__(self, eps: float, step_size: float, steps: int, norm: str = "linf", random_start: bool = True,
                 kappa: float = 50.0):
        super().__init__(eps, step_size, steps, norm, random_start)
        self.kappa = float(kappa)

    def config(self) -> Dict[str, object]:
        return {**super().config(), "kappa": self.kappa}

    def objective(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        present = targets.bool()                                                     # (B, C)
        correct = (targets * logits).sum(1) / targets.sum(1).clamp(min=1.0)           # (B,)
        wrong = logits.masked_fill(present, torch.finfo(logits.dtype).min).max(1).values   # (B,)
        return -F.relu(correct - wrong + self.kappa).sum()
