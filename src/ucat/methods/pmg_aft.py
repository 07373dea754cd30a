"""PMG-AFT: pre-trained-model-guided adversarial fine-tuning.

Wang et al., "Pre-trained Model Guided Fine-Tuning for Zero-Shot Adversarial Robustness", CVPR 2024
(official code github.com/serendipity1122/Pre-trained-Model-Guided-Fine-Tuning-for-Zero-Shot-
Adversarial-Robustness, PMG_AFT.py:736-738).
"""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F

from .base import METHODS, Method, ce_loss


def kl_sum(target_logits: torch.Tensor, input_logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax(target) || softmax(input)) summed over batch *and* classes, as the official
    ``nn.KLDivLoss(reduction="sum")(log_softmax(input), softmax(target))``. (B, C), (B, C) -> ()."""
    log_q = F.log_softmax(input_logits.float(), dim=-1)      # (B, C)
    log_p = F.log_softmax(target_logits.float(), dim=-1)     # (B, C)
    return (log_p.exp() * (log_p - log_q)).sum()


@METHODS.register("pmg-aft")
class PMGAFT(Method):
    """PMG-AFT (Wang et al., CVPR 2024).

        L = CE(z_theta(x_adv), y)
            + w_ref   * KL_sum( softmax(z_0(x_adv))   || softmax(z_theta(x_adv)) )
            + w_clean * KL_sum( softmax(z_theta(x))   || softmax(z_theta(x_adv)) )

    Reductions as the official code: CE is a batch mean, both KL terms are *summed* over batch and
    classes; weights 1 and 1. The frozen model sees the *adversarial* image; the clean branch is
    the trainable model on the clean image, not detached (gradients flow through both sides).

    Under N data-parallel processes each process's sums are multiplied by N (``world_size``), so
    that after DDP's gradient average the KL terms weigh as the sum over the global batch, as in a
    single-process run with that batch.

    Options:
        ref_weight: weight of the KL to the frozen model on x_adv (1).
        clean_weight: weight of the KL to the trainable model on clean x (1).
        ce_weight: weight of the CE term (1).
    """

    def __init__(self, classifier, reference, attack, *, ref_weight: float = 1.0, clean_weight: float = 1.0,
                 ce_weight: float = 1.0):
        super().__init__(classifier, reference, attack)
        self.ref_weight = float(ref_weight)
        self.clean_weight = float(clean_weight)
        self.ce_weight = float(ce_weight)

    def options(self):
        return {"ref_weight": self.ref_weight, "clean_weight": self.clean_weight, "ce_weight": self.ce_weight}

    def loss_from_logits(self, logits_adv, logits_clean, logits_ref_adv, labels) -> Dict[str, torch.Tensor]:
        """(B, C) trainable adv, (B, C) trainable clean, (B, C) frozen adv logits, (B,) labels -> loss dict."""
        ce = ce_loss(logits_adv, labels)
        kl_ref = self.world_size * kl_sum(logits_ref_adv.detach(), logits_adv)
        kl_clean = self.world_size * kl_sum(logits_clean, logits_adv)
        loss = self.ce_weight * ce + self.ref_weight * kl_ref + self.clean_weight * kl_clean
        return {"loss": loss, "ce": ce.detach(), "kl_ref": kl_ref.detach(), "kl_clean": kl_clean.detach()}

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        x_adv = self.adversarial(images, labels)          # (B, 3, H, W)
        logits_adv = self.classifier(x_adv)               # (B, C)
        logits_clean = self.classifier(images)            # (B, C)
        logits_ref_adv = self.reference_logits(x_adv)     # (B, C), frozen, no_grad
        out = self.loss_from_logits(logits_adv, logits_clean, logits_ref_adv, labels)
        out["logits_adv"] = logits_adv.detach()
        return out
