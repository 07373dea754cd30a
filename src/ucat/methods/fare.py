"""FARE: unsupervised adversarial fine-tuning of the CLIP image encoder by embedding matching.

Schlarmann et al., "Robust CLIP: Unsupervised Adversarial Fine-Tuning of Vision Embeddings for
Robust Large Vision-Language Models", ICML 2024 (official code github.com/chs20/RobustVLM,
train/adversarial_training_clip.py:296-318, 495-521).
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn.functional as F

from ..attacks import pgd_perturb
from .base import METHODS, Method


def embedding_l2(emb: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, D), (B, D) -> (B,) squared L2 distance summed over dimensions, in float32."""
    return (emb.float() - target.float()).pow(2).sum(-1)


@METHODS.register("fare")
class FARE(Method):
    """FARE (Schlarmann et al., ICML 2024).

        L = mean_b || phi_theta(x_adv) - phi_0(x) ||_2^2        (squared error summed over dims)

    on *unnormalized* image embeddings (``ImageEncoder`` output), with phi_0 the frozen original
    encoder on the clean image. No labels are used. x_adv comes from FARE's own inner attack,
    which maximizes the same loss: L-inf PGD (``ucat.attacks.pgd_perturb``) with a uniform random
    start, ``steps`` iterations (10) of size ``step_size``, with gradient momentum ``momentum``
    (0.9, as the official inner PGD: the step follows sign(0.9 * v + sign(grad))).

    The trainer's training attack only supplies the default ``eps`` and ``step_size``. The
    adversarial zero-shot logits are derived from the same adversarial embedding (a matmul with
    the text head, no extra forward pass) for accuracy logging only.

    Options:
        eps, step_size: inner-attack radius and step (fractions of [0,1]; default: the training
            attack's).
        steps: inner-attack iterations (10).
        momentum: inner-attack gradient momentum (0.9; 0 gives plain PGD).
        weight: weight of the embedding loss (1).
    """

    def __init__(self, classifier, reference, attack=None, *, eps: Optional[float] = None,
                 step_size: Optional[float] = None, steps: int = 10, momentum: float = 0.9, weight: float = 1.0):
        super().__init__(classifier, reference, attack)
        self.eps = float(eps if eps is not None else getattr(attack, "eps", 1.0 / 255))
        self.step_size = float(step_size if step_size is not None else getattr(attack, "step_size", 1.0 / 255))
        self.steps = int(steps)
        self.momentum = float(momentum)
        self.weight = float(weight)

    uses_attack = False  # its own inner attack; ``attack`` only provides defaults

    def options(self):
        return {"eps": self.eps, "step_size": self.step_size, "steps": self.steps, "momentum": self.momentum,
                "weight": self.weight}

    def inner_attack(self, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Maximize sum_b ||phi_theta(x_adv) - target||^2 in the eps-ball; (B, 3, H, W) -> same, detached."""
        encoder = self.classifier.encoder
        modes = {m: m.training for m in encoder.modules()}
        encoder.eval()
        try:
            # Sum over the batch: each sample's input gradient does not depend on the batch size.
            x_adv = pgd_perturb(lambda x: embedding_l2(encoder(x), target).sum(), images,
                                self.eps, self.step_size, self.steps, norm="linf", random_start=True,
                                momentum=self.momentum)
        finally:
            for m, was_training in modes.items():
                m.training = was_training
        return x_adv

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        target = self.reference_features(images)                  # (B, D) frozen, clean, no_grad
        x_adv = self.inner_attack(images, target)                 # (B, 3, H, W)
        emb_adv = self.classifier.encoder(x_adv)                  # (B, D) unnormalized, trainable
        l2 = embedding_l2(emb_adv, target).mean()                 # ()
        with torch.no_grad():
            logits_adv = self.classifier.logits_from_features(F.normalize(emb_adv.detach().float(), dim=-1))
        return {"loss": self.weight * l2, "l2": l2.detach(), "logits_adv": logits_adv}
