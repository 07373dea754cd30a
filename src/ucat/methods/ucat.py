"""UCAT: CE on adversarial logits + a reverse Dirichlet KL to the frozen CLIP on the clean image.

Lu et al., "Calibrating Uncertainty for Zero-Shot Adversarial CLIP", arXiv 2512.12997, ICML 2026
(official code github.com/VivienLu/UCAT, main.py:353-401).
"""
from __future__ import annotations

import math
from typing import Any, Dict

import torch

from ..uncertainty import concentration, dirichlet_kl
from .base import METHODS, Method, ce_loss


def ucat_lambda(tau: float = 1e5, temperature: float = 0.07) -> float:
    """The official KL weight lambda = tau / exp(softplus(2 / tau')) (UCAT main.py:354-355).

    exp(softplus(2/tau')) ~ e^(2/tau') is the largest attainable concentration; with the
    defaults tau = 1e5, tau' = 0.07 this gives lambda = 3.905e-8.
    """
    z = 2.0 / temperature
    softplus = z + math.log1p(math.exp(-z)) if z > 0 else math.log1p(math.exp(z))
    return float(tau) / math.exp(softplus)


@METHODS.register("ucat")
class UCAT(Method):
    """UCAT (Lu et al., arXiv 2512.12997, ICML 2026).

        L = CE(z_theta(x_adv), y) + lambda * mean_b KL( Dir(alpha(z_theta(x_adv))) || Dir(alpha(z_0(x))) )
        alpha(z) = exp((z / s + 1) / tau') + eps,     lambda = tau / exp(softplus(2 / tau'))

    z_theta is the trainable model, z_0 the frozen original CLIP evaluated on the *clean* image
    under ``no_grad``; s is the classifier's logit scale (100 for OpenAI CLIP). The KL is the
    closed-form Dirichlet KL, computed in float64 (``ucat.uncertainty.dirichlet_kl``). Only the
    adversarial logits of the trainable model and the clean logits of the frozen one are
    computed (the official code also ran the trainable model on clean images, for logging only).

    Options:
        tau: numerator of lambda (1e5 in the official code).
        temperature: tau' of the concentration (0.07).
        kl_weight: set lambda directly (overrides ``tau``).
        alpha_eps: the constant added to alpha (1e-6).
        ce_weight: weight of the CE term (1).
    """

    def __init__(self, classifier, reference, attack, *, tau: float = 1e5, temperature: float = 0.07,
                 kl_weight: float | None = None, alpha_eps: float = 1e-6, ce_weight: float = 1.0):
        super().__init__(classifier, reference, attack)
        if temperature <= 0:
            raise ValueError(f"ucat: temperature (tau') must be > 0, got {temperature}")
        self.tau = float(tau)
        self.temperature = float(temperature)
        self.kl_weight = ucat_lambda(tau, temperature) if kl_weight is None else float(kl_weight)
        self.alpha_eps = float(alpha_eps)
        self.ce_weight = float(ce_weight)

    def options(self) -> Dict[str, Any]:
        return {"tau": self.tau, "temperature": self.temperature, "kl_weight": self.kl_weight,
                "alpha_eps": self.alpha_eps, "ce_weight": self.ce_weight}

    def loss_from_logits(self, logits_adv: torch.Tensor, logits_ref: torch.Tensor,
                         labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        """(B, C) trainable adversarial logits, (B, C) frozen clean logits, (B,) labels -> loss dict."""
        s = self.classifier.logit_scale
        ce = ce_loss(logits_adv, labels)                                                  # ()
        alpha_adv = concentration(logits_adv, s, self.temperature, self.alpha_eps)        # (B, C) fp32
        alpha_ref = concentration(logits_ref.detach(), s, self.temperature, self.alpha_eps)
        kl = dirichlet_kl(alpha_adv, alpha_ref).mean()                                    # ()
        loss = self.ce_weight * ce + self.kl_weight * kl
        return {"loss": loss, "ce": ce.detach(), "kl": kl.detach(),
                "kl_weighted": (self.kl_weight * kl).detach()}

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        x_adv = self.adversarial(images, labels)          # (B, 3, H, W)
        logits_adv = self.classifier(x_adv)               # (B, C), trainable
        logits_ref = self.reference_logits(images)        # (B, C), frozen, clean, no_grad
        out = self.loss_from_logits(logits_adv, logits_ref, labels)
        out["logits_adv"] = logits_adv.detach()
        return out
