"""PGD (cross-entropy) and CW (margin) attacks: one projected-gradient loop, two losses.

* PGD: Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018
  (arXiv 1706.06083). The UCAT paper's PGD-100: L-inf, eps = 1/255, step 1/255, 100 steps, CE,
  uniform random start, 1 restart (Lu et al., arXiv 2512.12997, evaluation protocol).
* CW: the margin loss of Carlini & Wagner, "Towards Evaluating the Robustness of Neural Networks",
  IEEE S&P 2017 (arXiv 1608.04644), optimized with the same PGD loop ("CW-100" in the UCAT paper,
  kappa = 50 on scale-100 logits).
"""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from .base import ATTACKS, Attack, pgd_perturb, sample_correct
from .options import check_iterations


class LossPGD(Attack):
    """PGD on a per-sample loss of the logits; subclasses define :meth:`sample_loss`.

    With ``restarts > 1`` each sample keeps the restart that fools the classifier (among those,
    the one with the highest loss), else the one with the highest loss.
    """

    name = "loss-pgd"

    def __init__(self, eps: float, step_size: float, steps: int, norm: str = "linf", random_start: bool = True,
                 restarts: int = 1):
        super().__init__(eps, step_size, steps, norm)
        check_iterations(self.name, "steps", steps)
        if int(restarts) < 1:
            raise ConfigError("restarts", f"must be >= 1, got {restarts}")
        self.random_start = bool(random_start)
        self.restarts = int(restarts)

    def sample_loss(self, logits: torch.Tensor, labels: torch.Tensor, classifier: nn.Module) -> torch.Tensor:
        """(B, C) logits, (B,) labels -> (B,) loss to maximize."""
        raise NotImplementedError

    def config(self) -> Dict[str, object]:
        return {**super().config(), "random_start": self.random_start, "restarts": self.restarts}

    def perturb(self, classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        def loss_fn(x: torch.Tensor) -> torch.Tensor:
            return self.sample_loss(classifier(x).float(), labels, classifier).sum()

        best = images.clone()                                                  # (B, 3, H, W)
        best_score = torch.full((images.shape[0],), -float("inf"), device=images.device)
        for _ in range(self.restarts):
            x_adv = pgd_perturb(loss_fn, images, self.eps, self.step_size, self.steps, self.norm, self.random_start)
            if self.restarts == 1:
                return x_adv
            with torch.no_grad():
                logits = classifier(x_adv).float()                             # (B, C)
                # fooled points first (a huge bonus), then the larger loss
                score = self.sample_loss(logits, labels, classifier) + 1e9 * (~sample_correct(logits, labels)).float()
            better = score > best_score
            best[better] = x_adv[better]
            best_score = torch.where(better, score, best_score)
        return best


@ATTACKS.register("pgd")
class PGD(LossPGD):
    """Projected gradient descent on the cross-entropy loss (Madry et al., ICLR 2018, arXiv 1706.06083).

    Args:
        eps: radius (fraction of [0,1]; the paper's 1/255 is ``1/255``).
        step_size: ascent step (paper: 1/255).
        steps: iterations (paper: 100).
        norm: ``"linf"`` (paper) or ``"l2"``.
        random_start: uniform random start in the ball (paper: yes).
        restarts: independent restarts, the worst case per sample is kept (paper: 1).

    Example::

        x_adv = PGD(eps=1/255, step_size=1/255, steps=100)(classifier, images, labels)
    """

    name = "pgd"

    def sample_loss(self, logits: torch.Tensor, labels: torch.Tensor, classifier: nn.Module) -> torch.Tensor:
        return F.cross_entropy(logits, labels, reduction="none")              # (B,)


@ATTACKS.register("pgd-l2")
class PGDL2(PGD):
    """:class:`PGD` under the L2 threat model (Madry et al., ICLR 2018)."""

    name = "pgd-l2"

    def __init__(self, eps: float, step_size: float, steps: int, norm: str = "l2", **kw):
        super().__init__(eps, step_size, steps, norm=norm, **kw)


def margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B, C), (B,) -> (B,) z_y - max_{j != y} z_j (positive iff correctly classified)."""
    true = logits.gather(1, labels[:, None]).squeeze(1)                        # (B,)
    others = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), -float("inf"))
    return true - others.amax(1)


@ATTACKS.register("cw")
class CW(LossPGD):
    """PGD on the Carlini-Wagner margin loss (Carlini & Wagner, IEEE S&P 2017, arXiv 1608.04644).

    Maximizes ``-relu(z_y - max_{j != y} z_j + kappa)``: the loss is active (non-zero gradient)
    on every correctly classified point for any ``kappa >= 0`` and keeps pushing until the point
    is misclassified by a margin of kappa. As in the UCAT paper's CW-100, kappa = 50 is stated for
    logits at scale 100 (a cosine margin of 0.5); it is rescaled to the classifier's own logit
    scale ``s`` as ``kappa * s / 100`` (set ``kappa_scale=None`` to use kappa in raw logit units).

    Args: as :class:`PGD`, plus ``kappa`` (default 50) and ``kappa_scale`` (default 100).
    """

    name = "cw"

    def __init__(self, eps: float, step_size: float, steps: int, kappa: float = 50.0,
                 kappa_scale: float | None = 100.0, **kw):
        super().__init__(eps, step_size, steps, **kw)
        if kappa < 0:
            raise ConfigError("attack_options", f"{self.name}.kappa must be >= 0, got {kappa}")
        if kappa_scale is not None and kappa_scale <= 0:
            raise ConfigError("attack_options", f"{self.name}.kappa_scale must be > 0 (or none), got {kappa_scale}")
        self.kappa = float(kappa)
        self.kappa_scale = kappa_scale

    def config(self) -> Dict[str, object]:
        return {**super().config(), "kappa": self.kappa, "kappa_scale": self.kappa_scale}

    def kappa_for(self, classifier: nn.Module) -> float:
        s = getattr(classifier, "logit_scale", None)
        if self.kappa_scale is None or s is None:
            return self.kappa
        return self.kappa * float(s) / float(self.kappa_scale)

    def sample_loss(self, logits: torch.Tensor, labels: torch.Tensor, classifier: nn.Module) -> torch.Tensor:
        return -F.relu(margin(logits, labels) + self.kappa_for(classifier))   # (B,)
