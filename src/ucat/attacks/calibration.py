"""Attacks on calibration itself: change the confidence, never the predicted label.

Obadinma, Guo & Zhu, "Calibration Attack: A Framework For Adversarial Attacks Targeting
Calibration" (arXiv 2401.02718): within the same eps-ball as an accuracy attack, move each image's
confidence in its *predicted* class while its prediction stays what it was on the clean image, so
accuracy is untouched and only calibration moves:

* ``calib-under``: lower the confidence of every prediction (underconfidence attack);
* ``calib-over``: raise it (overconfidence attack);
* ``calib-max``: the maximum-miscalibration attack: correct predictions made underconfident,
  wrong ones overconfident (the direction that raises ECE most);
* ``calib-random``: under or over per image, at random (seeded).

ucat optimizes log p(predicted class) with signed-gradient PGD steps (their paper uses a
query-based search; the white-box gradient is at least as strong) and keeps the label by
construction: a step that would change an image's prediction is undone and that image stops
(its last label-preserving point is kept). Gradients reach the input only.
"""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from .base import ATTACKS, Attack
from .options import check_iterations

MODES = ("under", "over", "max", "random")


class CalibrationAttack(Attack):
    """Base of the calibration attacks; ``mode`` picks the direction per image (see the module docstring)."""

    name = "calibration"
    mode = "under"

    def __init__(self, eps: float, step_size: float, steps: int = 10, norm: str = "linf", random_start: bool = False):
        super().__init__(eps, step_size, steps, norm)
        check_iterations(self.name, "steps", steps)
        if norm != "linf":
            raise ConfigError("norm", f"{norm!r}: the calibration attacks are L-inf attacks")
        self.random_start = bool(random_start)

    def config(self) -> Dict[str, object]:
        return {**super().config(), "mode": self.mode, "random_start": self.random_start, "keeps_labels": True}

    def directions(self, predicted: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(B,) +1 to raise the confidence of an image's prediction, -1 to lower it."""
        ones = torch.ones_like(predicted, dtype=torch.float32)
        if self.mode == "over":
            return ones
        if self.mode == "under":
            return -ones
        if self.mode == "max":
            return torch.where(predicted == labels, -ones, ones)
        return torch.where(torch.rand(predicted.shape, device=predicted.device) < 0.5, -ones, ones)

    def perturb(self, classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x0 = images.detach()
        with torch.no_grad():
            pred = classifier(x0).float().argmax(1)                                   # (B,) clean predictions
        d = self.directions(pred, labels)
        x = x0.clone()
        if self.random_start:
            x = (x0 + torch.empty_like(x0).uniform_(-self.eps, self.eps)).clamp(0, 1)
            with torch.no_grad():
                moved = classifier(x).float().argmax(1) != pred
            x[moved] = x0[moved]
        alive = torch.ones_like(pred, dtype=torch.bool)
        for _ in range(self.steps):
            x.requires_grad_(True)
            with torch.enable_grad():
                logp = F.log_softmax(classifier(x).float(), -1).gather(1, pred.view(-1, 1)).squeeze(1)   # (B,)
                (grad,) = torch.autograd.grad((d * logp).sum(), [x])
            step = torch.where(alive.view(-1, 1, 1, 1), self.step_size * grad.detach().float().sign(), 0.0)
            cand = (x0 + (x.detach() + step - x0).clamp(-self.eps, self.eps)).clamp(0, 1)
            with torch.no_grad():
                keeps = classifier(cand).float().argmax(1) == pred
            x = torch.where(keeps.view(-1, 1, 1, 1), cand, x.detach())             # undo a label-changing step
            alive = alive & keeps
            if not alive.any():
                break
        return x.detach()


@ATTACKS.register("calib-under")
class UnderconfidenceAttack(CalibrationAttack):
    """Lower every prediction's confidence, labels unchanged (Obadinma et al., arXiv 2401.02718)."""

    name, mode = "calib-under", "under"


@ATTACKS.register("calib-over")
class OverconfidenceAttack(CalibrationAttack):
    """Raise every prediction's confidence, labels unchanged (Obadinma et al., arXiv 2401.02718)."""

    name, mode = "calib-over", "over"


@ATTACKS.register("calib-max")
class MaximumMiscalibrationAttack(CalibrationAttack):
    """Correct predictions underconfident, wrong ones overconfident (Obadinma et al., arXiv 2401.02718)."""

    name, mode = "calib-max", "max"


@ATTACKS.register("calib-random")
class RandomMiscalibrationAttack(CalibrationAttack):
    """Under or over at random per image, labels unchanged (Obadinma et al., arXiv 2401.02718)."""

    name, mode = "calib-random", "random"
