"""CAA and A3 as the official UCAT evaluation runs them (L-inf, untargeted, early stop per sample).

* ``caa``: the composite adversarial attack (Hsiung et al., "Towards Compositional Adversarial
  Robustness: Generalizing Adversarial Training to Composite Semantic Perturbations", CVPR 2023)
  restricted, as the official evaluation runs it, to its L-inf component in a fixed order
  (VivienLu/UCAT attacks.py 177-235: ``enabled_attack=[5]``, ``order_schedule='fixed'``,
  ``start_num=1``, ``mode='eval'``; main.py 531-551). composite_attack.py: no random start (the
  L-inf component starts at the image, ``caa_linf`` 195-216), ``inner_iter_num`` = the evaluation's
  steps, signed CE-gradient steps, projection to the eps ball and [0,1], and early stop: once a
  sample is misclassified its gradient is zeroed, so it stays at the first misclassified point.
  The step is computed at construction from the *default* ImageNet pool (4/255), before the
  evaluation overrides eps: 2.5 * (4/255) / steps (composite_attack.py 45-80), i.e. 0.1/255 at 100
  steps whatever eps is. ``linf_step_from_eps=True`` uses 2.5 * eps / steps instead (CAA's own
  rule with the eps actually used). The semantic components (hue, saturation, rotation,
  brightness, contrast) of the full CAA are not implemented here.
* ``a3``: the official simplified A3 (adaptive auto attack, Liu et al., "Practical Evaluation of
  Adversarial Robustness via Adaptive Auto Attack", CVPR 2022; attacks.py 266-405, run with
  ``num_restarts=1``, ``step_size`` = the evaluation's step, ``osd_start=0``, ``osd_inc=0.1``,
  ``early_stop``, ``rand_init``, ``use_adi``; main.py 552-570): uniform random start, signed
  CE-gradient steps, per-sample early stop (a sample is frozen at the first step it is
  misclassified), and across restarts the official online statistics-based discarding (the
  easiest ``osd_start + r * osd_inc`` share of samples skipped in restart r, ranked by loss) and
  adaptive direction initialization (a bias of 0.25 eps along the sign of the summed successful
  directions of earlier restarts); per sample the highest-loss restart is kept. With one restart,
  as the official evaluation runs it, OSD and ADI do nothing. The authors' full A3 (its learned
  ADI and statistics) is not reproduced.
"""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from .base import ATTACKS, Attack
from .options import check_iterations

CAA_DEFAULT_EPS = 4 / 255          # CompositeAttack's ImageNet L-inf pool, which sets its step


def _project(x: torch.Tensor, x0: torch.Tensor, eps: float) -> torch.Tensor:
    return (x0 + (x - x0).clamp(-eps, eps)).clamp(0.0, 1.0)


@ATTACKS.register("caa")
class CompositeLinf(Attack):
    """The official evaluation's CAA: its L-inf component only (see the module docstring)."""

    name = "caa"
    at_least_as_strong_as = ()

    def __init__(self, eps: float, step_size: float = 0.0, steps: int = 100, norm: str = "linf",
                 linf_step_from_eps: bool = False):
        super().__init__(eps, step_size, steps, norm)
        check_iterations(self.name, "steps", steps)
        if norm != "linf":
            raise ConfigError("norm", f"{norm!r}: caa is an L-inf attack here (its semantic components are not)")
        self.linf_step_from_eps = bool(linf_step_from_eps)
        # composite_attack.py 75-76: 2.5 * (eps range / 2) / inner steps, from the default pool
        self.step_size = 2.5 * (self.eps if self.linf_step_from_eps else CAA_DEFAULT_EPS) / self.steps

    def config(self) -> Dict[str, object]:
        return {**super().config(), "linf_step_from_eps": self.linf_step_from_eps, "random_start": False,
                "early_stop": True}

    def perturb(self, classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x0 = images.detach()
        x = x0.clone()
        attacked = torch.zeros(x0.shape[0], dtype=torch.bool, device=x0.device)       # (B,)
        for _ in range(self.steps):
            x.requires_grad_(True)
            with torch.enable_grad():
                logits = classifier(x).float()                                        # (B, C)
                loss = F.cross_entropy(logits, labels)
                (grad,) = torch.autograd.grad(loss, [x])
            attacked = attacked | (logits.detach().argmax(1) != labels)
            grad = grad.detach().float()
            grad[attacked] = 0                                                        # early stop
            x = _project(x.detach() + self.step_size * grad.sign(), x0, self.eps)
        return x.detach()


@ATTACKS.register("a3")
class AdaptiveAutoAttack(Attack):
    """The official evaluation's simplified A3 (see the module docstring)."""

    name = "a3"

    def __init__(self, eps: float, step_size: float, steps: int = 100, norm: str = "linf", restarts: int = 1,
                 osd_start: float = 0.0, osd_inc: float = 0.1, adi: bool = True, random_start: bool = True):
        super().__init__(eps, step_size, steps, norm)
        check_iterations(self.name, "steps", steps)
        if norm != "linf":
            raise ConfigError("norm", f"{norm!r}: a3 is an L-inf attack")
        if int(restarts) < 1:
            raise ConfigError("restarts", f"must be >= 1, got {restarts}")
        self.restarts, self.osd_start, self.osd_inc = int(restarts), float(osd_start), float(osd_inc)
        self.adi, self.random_start = bool(adi), bool(random_start)

    def config(self) -> Dict[str, object]:
        return {**super().config(), "restarts": self.restarts, "osd_start": self.osd_start, "osd_inc": self.osd_inc,
                "adi": self.adi, "random_start": self.random_start, "early_stop": True}

    def _restart(self, classifier, x0, labels, active, bias):
        """One restart: PGD with per-sample early stop over the ``active`` samples."""
        delta = torch.empty_like(x0).uniform_(-self.eps, self.eps) if self.random_start else torch.zeros_like(x0)
        if bias is not None:
            delta = (delta + 0.25 * self.eps * bias).clamp(-self.eps, self.eps)
        x = (x0 + delta).clamp(0.0, 1.0)
        alive = active.clone()                                                        # (B,)
        for _ in range(self.steps):
            x.requires_grad_(True)
            with torch.enable_grad():
                logits = classifier(x).float()
                (grad,) = torch.autograd.grad(F.cross_entropy(logits, labels), [x])
            alive = alive & (logits.detach().argmax(1) == labels)
            step = torch.where(alive.view(-1, 1, 1, 1), self.step_size * grad.detach().float().sign(), 0.0)
            x = _project(x.detach() + step, x0, self.eps)
            if not alive.any():
                break
        return x.detach()

    def perturb(self, classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x0 = images.detach()
        b = x0.shape[0]
        per_sample = lambda z: F.cross_entropy(classifier(z).float(), labels, reduction="none")  # noqa: E731
        with torch.no_grad():
            base_loss = per_sample(x0)                                                # (B,) for OSD ranking
        best, best_loss = x0.clone(), torch.full((b,), -1e9, device=x0.device)
        dir_sum = torch.zeros_like(x0)
        for r in range(self.restarts):
            keep = max(1, min(b, int(b * (1.0 - min(1.0, self.osd_start + r * self.osd_inc)))))
            idx = torch.topk(base_loss, keep, largest=True).indices
            active = torch.zeros(b, dtype=torch.bool, device=x0.device)
            active[idx] = True
            bias = dir_sum.sign() if (self.adi and r > 0) else None
            x = self._restart(classifier, x0, labels, active, bias)
            with torch.no_grad():
                loss = per_sample(x)
                fooled = classifier(x).float().argmax(1) != labels
            better = loss > best_loss
            best_loss = torch.where(better, loss, best_loss)
            best = torch.where(better.view(-1, 1, 1, 1), x, best)
            base_loss[idx] = best_loss[idx]
            dir_sum = dir_sum + torch.where(fooled.view(-1, 1, 1, 1), (x - x0).sign(), 0.0)
        return best
