"""Uncertainty-targeted attack: confident mistakes, so calibration claims face an attacker who targets them.

Standard attacks (PGD, CW, AutoAttack) only flip the prediction; a model whose uncertainty rises
under attack then looks well calibrated. This attack flips the prediction *and* drives the chosen
uncertainty score down, producing high-confidence errors. Per sample it maximizes

    L(x') = log p_t(x') - beta * u(x'),     t = argmax_{j != y} z_j(x')   (re-chosen every step)

where p = softmax(z) are the classifier's probabilities and u is one of

* ``entropy``:   predictive entropy of softmax(z), divided by log C;
* ``epistemic``: the Dirichlet mutual information of UCAT's concentration
  alpha = exp((z/s + 1)/tau') (Lu et al., arXiv 2512.12997; :func:`ucat.uncertainty.dirichlet_stats`),
  divided by log C. It spans many orders of magnitude (about (C-1)/(2 alpha_0) for large alpha_0,
  ~1e-13 at cosines near 1), so the loss uses log u for it;
* ``max-prob``:  1 - max_c p_c.

The first term is a targeted cross-entropy towards the strongest wrong class: it flips the
prediction and, once flipped, keeps raising that class's confidence, which itself lowers every
score above; the second term targets the chosen score exactly. ``beta`` trades the two.

Ideas cited: high-confidence adversarial examples with a confidence margin kappa (Carlini & Wagner,
"Towards Evaluating the Robustness of Neural Networks", IEEE S&P 2017, arXiv 1608.04644); attacks
on uncertainty estimates rather than on accuracy (Galil & El-Yaniv, "Disrupting Deep Uncertainty
Estimation Without Harming Accuracy", NeurIPS 2021, arXiv 2110.13741; Ledda et al., "Adversarial
Attacks Against Uncertainty Quantification", ICCV Workshops 2023, arXiv 2309.10586). Optimized with
the PGD loop of Madry et al., ICLR 2018.
"""
from __future__ import annotations

import math
from typing import Dict

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from ..uncertainty import DEFAULT_TEMPERATURE, concentration, dirichlet_stats, softmax_entropy
from .base import ATTACKS
from .pgd import LossPGD

SCORES = ("entropy", "epistemic", "max-prob")


def uncertainty_score(logits: torch.Tensor, score: str, logit_scale: float,
                      temperature: float = DEFAULT_TEMPERATURE) -> torch.Tensor:
    """(B, C) logits -> (B,) differentiable uncertainty (higher = more uncertain)."""
    if score == "entropy":
        return softmax_entropy(logits, normalize=True)
    if score == "epistemic":
        alpha = concentration(logits, logit_scale, temperature)               # (B, C)
        return dirichlet_stats(alpha, normalize=True)["epistemic"]
    if score == "max-prob":
        return 1.0 - torch.softmax(logits.float(), dim=-1).amax(-1)
    raise ValueError(f"uncertainty score {score!r}: choose one of {', '.join(SCORES)}")


@ATTACKS.register("uncertainty")
class UncertaintyAttack(LossPGD):
    """Confident-misclassification attack (see the module docstring for the loss and citations).

    Args:
        eps, step_size, steps, norm, random_start, restarts: as :class:`ucat.attacks.PGD`.
        score: ``"entropy"`` (default), ``"epistemic"`` or ``"max-prob"``.
        beta: weight of the uncertainty term (default 1.0).
        temperature: tau' of the Dirichlet concentration (``epistemic`` only; 0.07 as in UCAT).
    """

    name = "uncertainty"

    def __init__(self, eps: float, step_size: float, steps: int, score: str = "entropy", beta: float = 1.0,
                 temperature: float = DEFAULT_TEMPERATURE, **kw):
        super().__init__(eps, step_size, steps, **kw)
        if score not in SCORES:
            raise ConfigError("attack_options", f"uncertainty.score {score!r}: choose one of {', '.join(SCORES)}")
        if beta < 0:
            raise ConfigError("attack_options", f"uncertainty.beta must be >= 0, got {beta}")
        if temperature <= 0:
            raise ConfigError("attack_options", f"uncertainty.temperature must be > 0, got {temperature}")
        self.score = score
        self.beta = float(beta)
        self.temperature = float(temperature)

    def config(self) -> Dict[str, object]:
        return {**super().config(), "score": self.score, "beta": self.beta, "temperature": self.temperature}

    def uncertainty(self, logits: torch.Tensor, classifier: nn.Module) -> torch.Tensor:
        s = float(getattr(classifier, "logit_scale", 100.0))
        return uncertainty_score(logits, self.score, s, self.temperature)

    def sample_loss(self, logits: torch.Tensor, labels: torch.Tensor, classifier: nn.Module) -> torch.Tensor:
        logp = F.log_softmax(logits.float(), dim=-1)                            # (B, C)
        wrong = logits.detach().masked_fill(F.one_hot(labels, logits.shape[1]).bool(), -math.inf)
        target = wrong.argmax(-1)                                               # (B,) strongest wrong class
        u = self.uncertainty(logits, classifier)                                # (B,)
        if self.score == "epistemic":
            u = torch.log(u.clamp_min(1e-30))
        return logp.gather(1, target[:, None]).squeeze(1) - self.beta * u


__all__ = ["SCORES", "UncertaintyAttack", "uncertainty_score"]
