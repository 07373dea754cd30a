"""Plain (non-adversarial) zero-shot fine-tuning: CE on clean logits.

The cross-entropy zero-shot fine-tuning baseline of Mao et al., "Understanding Zero-Shot
Adversarial Robustness for Large-Scale Models", ICLR 2023 (their "FT" row), and the clean
counterpart of the methods compared in Lu et al., arXiv 2512.12997.
"""
from __future__ import annotations

from typing import Dict

import torch

from .base import METHODS, Method, ce_loss


@METHODS.register("clean")
class Clean(Method):
    """L = CE(z_theta(x), y) on clean images; no attack, no reference forward pass.

    Options:
        ce_weight: weight of the CE term (1).
    """

    uses_attack = False

    def __init__(self, classifier, reference, attack=None, *, ce_weight: float = 1.0):
        super().__init__(classifier, reference, attack)
        self.ce_weight = float(ce_weight)

    def options(self):
        return {"ce_weight": self.ce_weight}

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        logits = self.classifier(images)                  # (B, C)
        ce = ce_loss(logits, labels)
        return {"loss": self.ce_weight * ce, "ce": ce.detach(), "logits": logits.detach()}
