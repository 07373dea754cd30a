"""TeCoA: text-guided contrastive adversarial training (CE on adversarial zero-shot logits).

Mao et al., "Understanding Zero-Shot Adversarial Robustness for Large-Scale Models", ICLR 2023
(official code github.com/cvlab-columbia/ZSRobust4FoundationModel, finetuning.py:814-830).
"""
from __future__ import annotations

from typing import Dict

import torch

from .base import METHODS, Method, ce_loss


@METHODS.register("tecoa")
class TeCoA(Method):
    """TeCoA (Mao et al., ICLR 2023): L = CE(z_theta(x_adv), y) against the text embeddings of
    all training classes; x_adv from the training attack (PGD on the same CE). One forward pass
    of the trainable model per step besides the attack; the frozen reference is not used.

    Options:
        ce_weight: weight of the CE term (1).
    """

    def __init__(self, classifier, reference, attack, *, ce_weight: float = 1.0):
        super().__init__(classifier, reference, attack)
        self.ce_weight = float(ce_weight)

    def options(self):
        return {"ce_weight": self.ce_weight}

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        x_adv = self.adversarial(images, labels)          # (B, 3, H, W)
        logits_adv = self.classifier(x_adv)               # (B, C)
        ce = ce_loss(logits_adv, labels)
        return {"loss": self.ce_weight * ce, "ce": ce.detach(), "logits_adv": logits_adv.detach()}
