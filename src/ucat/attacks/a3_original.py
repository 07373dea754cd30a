"""The authors' Adaptive Auto Attack (A3), behind ``-A a3.variant=original``.

Liu et al., "Practical Evaluation of Adversarial Robustness via Adaptive Auto Attack", CVPR 2022
(arXiv 2203.05154). Followed: liuye6666/adaptive_auto_attack@c3650cd Adaptive_Auto_Attack_main.py,
L-inf, untargeted (``MT=False``), random start (``main(random=True)``), ``average_number=1000``
(1106-1178):

* a first pass (316-336): the clean image and one random corner of the eps-box
  (``x + eps * sign(U(-eps, eps))``); a sample misclassified at either counts as fooled, and the
  corner's logits, sorted, give each sample its classes by rank;
* 13 outer restarts (340-436), each with its own number of inner restarts, step counts and kept
  share ``alpha``; from the fourth on, the schedule depends on whether the adaptive direction
  initialization has fooled at least 5% of the samples left after the first restart (``BIAS_ATK``);
* online statistics-based discarding (OSD, 437-455): each restart attacks the not-yet-fooled
  samples with the highest margin loss seen so far, ``max(osd_min, alpha * left)`` of them;
* each restart (``AAA_white_box`` 101-271): a uniform random start, ``adi`` steps of size eps
  along the sign of the gradient of ``logits . w`` (output-diversified directions w, uniform in
  [-1, 1] per class), then margin-loss steps with a cosine step size from eps down to
  ``0.1 eps`` (at most 10 steps) or ``0.001 eps`` (222); a sample leaves the restart once
  misclassified;
* adaptive direction initialization (ADI, 133-180, 244-263, 358-364): from the third outer restart,
  the direction's weights on the true class and on one runner-up class (the 2nd, 3rd, ... by the
  first pass's rank, cycling) are set from statistics of which directions fooled samples in the
  second outer restart (the sign of their weight on the class they were pushed into and on the
  originally top class), or, once ADI has proved itself (``BIAS_ATK``), set to favour the
  runner-up; the last restarts use the "final" biased directions;
* the iteration budget (303, 441, 462-463): ``average_number`` backward passes per image.

ucat's attack contract attacks one batch per call, so everything the authors keep over the whole
dataset (OSD's ranking, the statistics, the budget) is kept over the batch; with the authors'
``osd_min=100`` a batch of up to 100 images is never discarded from. The dataset-specific settings
(``threshold_class``, the direction override for CIFAR-100 / ImageNet, ImageNet's extra 10 steps
and 1 restart) follow ``regime``, by default chosen from the number of classes (<= 10: cifar10,
<= 100: cifar100, more: imagenet). Also different from the original:

* the rank statistics use row ``C-1-rank`` where the authors hard-code ``9-rank`` (CIFAR-10's
  C-1; with fewer than 10 classes their code fails, with more its statistics are overridden
  anyway); the number of samples ADI fooled is counted after the ADI steps as intended (the
  original's loop variable is shadowed, 252-267); classes are ranked by a full sort (the
  original's ``np.argpartition`` with a vector of ``kth`` is a full sort only when the batch's
  argmin classes cover every rank, 330-331);
* random numbers come from torch (the original mixes torch and Python's ``random``);
* an image is returned per sample: the first misclassified one, else the highest-margin iterate
  (the original reports accuracy only).

The evaluation's ``steps`` and ``step_size`` are not used: A3 is parameter-free.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn

from ..errors import ConfigError
from .caa_full import check_classes

OUTER_RESTARTS = 13                                   # Adaptive_Auto_Attack_main.py:340
_FOOLED_LOSS, _UNSEEN_LOSS = 1.0, -100000.0           # 304, 336


@dataclass(frozen=True)
class Regime:
    threshold: int          # runner-up classes cycled through (threshold_class, 107-114)
    final_threshold: int    # the same for the final directions (166-180)
    override: bool          # CIFAR-100 / ImageNet: fixed direction weights (156-159)
    extra_iters: int        # ImageNet: 10 more steps per restart (431-434)
    extra_restarts: int     # ImageNet: 1 more restart per outer restart


REGIMES: Dict[str, Regime] = {"cifar10": Regime(9, 4, False, 0, 0), "cifar100": Regime(14, 14, True, 0, 0),
                              "imagenet": Regime(20, 20, True, 10, 1)}

# outer restart -> (alpha, max_iter, adi_iter, inner restarts), 365-424 (out_re > 2)
_NO_BIAS = {3: (0.7, 25, 7, 1), 4: (0.6, 30, 7, 1), 5: (0.5, 30, 7, 1), 6: (0.4, 35, 7, 1), 7: (0.3, 40, 7, 1),
            8: (0.2, 45, 7, 1), 9: (0.1, 50, 7, 1), 10: (0.1, 50, 7, 4), 11: (0.065, 55, 7, 4), 12: (0.03, 60, 7, 50)}
_BIAS = {3: (1, 5, 10, 10), 4: (1, 5, 15, 1), 5: (1, 10, 15, 1), 6: (1, 10, 10, 1), 7: (1, 15, 10, 1),
         8: (1, 18, 10, 1), 9: (1, 20, 10, 1), 10: (0.8, 25, 10, 5), 11: (0.5, 35, 10, 5), 12: (0.5, 45, 10, 20)}


def regime_for(n_classes: int, regime: Optional[str]) -> Regime:
    if regime is None:
        regime = "cifar10" if n_classes <= 10 else ("cifar100" if n_classes <= 100 else "imagenet")
    if regime not in REGIMES:
        raise ConfigError("attack_options", f"a3.regime must be one of {', '.join(REGIMES)} (or none), got {regime!r}")
    return REGIMES[regime]


def outer_schedule(out_re: int, bias: bool, regime: Regime, imagenet_restarts: bool) -> Tuple[float, int, int, int]:
    """(alpha, max_iter, adi_iter, inner restarts) of outer restart ``out_re`` (347-434)."""
    if out_re <= 2:
        alpha, max_iter, adi, restarts = 1.0, 8, (0 if out_re == 0 else 7), 1
    else:
        alpha, max_iter, adi, restarts = (_BIAS if bias else _NO_BIAS)[out_re]
        if out_re == 12 and not bias and imagenet_restarts:
            restarts = 31                                                             # 391-392
    return max(alpha, 0.03), max_iter + regime.extra_iters, adi, restarts + regime.extra_restarts


def margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B,) best wrong logit minus the true one (the authors' margin_loss, 66-80, MT=False)."""
    true = logits.gather(1, labels[:, None]).squeeze(1)
    wrong = logits.masked_fill(torch.nn.functional.one_hot(labels, logits.shape[1]).bool(), float("-inf"))
    return wrong.max(1).values - true


def _uniform(lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand(()))


class A3Run:
    """One call of the authors' A3 on one batch (the state their main loop keeps over the dataset)."""

    def __init__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float,
                 regime: Regime, imagenet: bool, osd_min: int, budget: int):
        self.model, self.x0, self.y, self.eps = model, images.detach(), labels, float(eps)
        self.regime, self.imagenet, self.osd_min = regime, imagenet, int(osd_min)
        b = images.shape[0]
        self.total_budget, self.used = b * int(budget), 0
        self.best, self.best_margin = self.x0.clone(), torch.full((b,), -math.inf, device=images.device)
        self.max_loss = torch.full((b,), _UNSEEN_LOSS, dtype=torch.float64, device=images.device)
        self.left = torch.ones(b, dtype=torch.bool, device=images.device)             # not yet fooled
        self.sorted = torch.empty(0)
        self.n_classes = 0
        self.stats = torch.empty(0)
        self.wrong_dir = self.correct_dir = 0.0
        self.adi_fooled = 0

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model(x).float()

    def first_pass(self) -> None:
        """316-336: clean and one random corner of the box; the corner's class ranking."""
        clean = self._logits(self.x0)
        self.n_classes = clean.shape[1]
        corner = (self.x0 + self.eps * torch.empty_like(self.x0).uniform_(-self.eps, self.eps).sign()).clamp(0, 1)
        noisy = self._logits(corner)
        self.sorted = noisy.argsort(dim=1)                                     # ascending: top class last
        fooled_clean, fooled_corner = clean.argmax(1) != self.y, noisy.argmax(1) != self.y
        m_clean, m_corner = margin(clean, self.y), margin(noisy, self.y)
        pick = ~fooled_clean & (fooled_corner | (m_corner > m_clean))
        self.best = torch.where(pick.view(-1, 1, 1, 1), corner, self.x0)
        self.best_margin = torch.where(pick, m_corner, m_clean)
        self.left = ~(fooled_clean | fooled_corner)
        self.max_loss[~self.left] = _FOOLED_LOSS
        self.stats = torch.zeros(self.n_classes, self.n_classes + 1, dtype=torch.float64, device=self.x0.device)

    def directions(self, idx: torch.Tensor, out_re: int, bias: bool, final: bool, no_class: int) -> torch.Tensor:
        """133-180: the output-space directions (n, C) of one restart, adapted from the third on."""
        n, c, k = idx.numel(), self.n_classes, self.n_classes / 10
        w = torch.empty(n, c, device=self.x0.device).uniform_(-1.0, 1.0)
        if out_re <= 1:
            return w
        rows, y, ranked = torch.arange(n, device=w.device), self.y[idx], self.sorted[idx]
        target = ranked[:, c - 2 - no_class % min(self.regime.threshold, c - 1)]
        wd, cd = self.wrong_dir, self.correct_dir
        if bias:
            w[rows, y], w[rows, target] = k * _uniform(-0.1, 0.5), k * 0.8
        else:
            for cond, (lo, hi), sign in (((wd > 0 and cd > 0), (-0.1, 0.5), 1), ((wd < 0 and cd > 0), (-0.1, 0.5), -1),
                                         ((wd < 0 and cd < 0), (-0.5, 0.1), -1), ((wd >= 0 and cd <= 0), (-0.5, 0.1), 1),
                                         (self.regime.override, (-0.5, 0.1), 1)):
                if cond:
                    w[rows, y], w[rows, target] = k * _uniform(lo, hi), sign * k * 0.8
        if final:
            if bias:
                w[rows, y], w[rows, target] = 0.0, k * 0.8
            else:
                final_target = ranked[:, c - 2 - no_class % min(self.regime.final_threshold, c - 1)]
                w[rows, y], w[rows, final_target] = k * _uniform(-0.8, 0.1), k * 0.8
        return w

    def _record(self, batch_idx: torch.Tensor, w: torch.Tensor, fooled: torch.Tensor, pred: torch.Tensor) -> None:
        """244-263: add the fooling directions, in rank order, to the statistics rows 0 and C-1-rank
        (``batch_idx``, ``w``, ``fooled``, ``pred``: the samples attacked in this step)."""
        ranked = self.sorted[batch_idx[fooled]]                                   # (m, C)
        w_ranked = w[fooled].gather(1, ranked).double()
        rank = (ranked == pred[fooled, None]).float().argmax(1)
        rows = torch.cat((torch.zeros_like(rank), self.n_classes - 1 - rank))
        counted = torch.cat((w_ranked, torch.ones(w_ranked.shape[0], 1, dtype=torch.float64, device=w.device)), 1)
        self.stats.index_add_(0, rows, torch.cat((counted, counted)))

    def _step_size(self, i: int, adi: int, steps: int) -> float:
        """204-222: eps on the direction steps, then a cosine from eps to 0.1 or 0.001 eps."""
        if i < adi:
            return self.eps
        low = self.eps * (0.1 if steps <= 10 else 0.001)
        return low + (self.eps - low) * (1 + math.cos(math.pi * (i - adi) / (steps + 1))) / 2

    def white_box(self, idx: torch.Tensor, steps: int, adi: int, out_re: int, bias: bool, final: bool,
                  no_class: int) -> torch.Tensor:
        """``AAA_white_box`` (101-271) on the samples ``idx``: the samples' highest margin, (n,)."""
        x0, y = self.x0[idx], self.y[idx]
        x = (x0 + torch.empty_like(x0).uniform_(-self.eps, self.eps)).clamp(0, 1)           # 117-120
        w = self.directions(idx, out_re, bias, final, no_class)
        active = torch.ones(idx.numel(), dtype=torch.bool, device=x0.device)
        top = torch.full((idx.numel(),), _UNSEEN_LOSS, dtype=torch.float64, device=x0.device)
        for i in range(adi + steps):
            a = active.nonzero().squeeze(1)
            self.used += a.numel()
            xa = x[a].detach().requires_grad_(True)
            with torch.enable_grad():
                logits = self.model(xa).float()
                loss = (logits * w[a]).sum() if i < adi else margin(logits, y[a]).sum()
                (grad,) = torch.autograd.grad(loss, [xa])
            xa = (x0[a] + (xa.detach() + self._step_size(i, adi, steps) * grad.sign() - x0[a]).clamp(
                -self.eps, self.eps)).clamp(0, 1)
            out = self._logits(xa)
            m, pred = margin(out, y[a]), out.argmax(1)
            top[a] = torch.maximum(top[a], m.double())
            x[a] = xa
            fooled = pred != y[a]
            better = (m > self.best_margin[idx[a]]) | fooled
            self.best[idx[a[better]]] = xa[better]
            self.best_margin[idx[a[better]]] = m[better]
            if out_re >= 1 and adi > 0 and bool(fooled.any()):
                self._record(idx[a], w[a], fooled, pred)
            if i < adi:                        # the samples fooled by the end of the direction steps (266-267)
                self.adi_fooled += int(fooled.sum())
            active[a[fooled]] = False
            if not bool(active.any()):
                break
        self.left[idx[~active]] = False
        return top

    def select(self, alpha: float) -> torch.Tensor:
        """OSD (441-453): the not-yet-fooled samples with the highest margin loss so far, indices."""
        n_left, b = int(self.left.sum()), self.left.numel()
        need = (b - n_left) + min(max(self.osd_min, int(n_left * alpha)), n_left)
        kth = torch.topk(self.max_loss, need).values[-1]
        return ((self.max_loss >= kth) & (self.max_loss < 0)).nonzero().squeeze(1)

    def steps_for(self, out_re: int, restarts: int, n_attacked: int, max_iter: int, adi: int) -> int:
        """462-463: the margin steps of one restart, from the budget left (which rarely binds)."""
        remaining = self.total_budget - self.used
        steps = int(remaining / (restarts * (OUTER_RESTARTS - out_re)) * n_attacked)
        return min(max(steps, 15), max_iter + adi)

    def restart(self, out_re: int, alpha: float, max_iter: int, adi: int, restarts: int, bias: bool,
                no_class: int) -> int:
        """One inner restart (437-495): OSD's choice, the attack, the bookkeeping; the samples still left."""
        idx = self.select(alpha)
        if idx.numel() == 0:
            return 0
        final = not ((out_re < 10 and not bias) or (out_re < 11 and bias))
        steps = self.steps_for(out_re, restarts, idx.numel(), max_iter, adi)
        top = self.white_box(idx, steps, adi, out_re, bias, final, no_class)
        self.max_loss[idx] = torch.maximum(self.max_loss[idx], top)
        return int(self.left[idx].sum())

    def run(self) -> torch.Tensor:
        """The authors' main loop (340-499) over this batch."""
        self.first_pass()
        epoch, bias, robust_after, restart_1 = -2, False, int(self.left.sum()), 0
        for out_re in range(OUTER_RESTARTS):
            if out_re == 1:
                restart_1 = robust_after
            if out_re == 2:
                c = self.n_classes
                self.wrong_dir = float(sum(self.stats[i, c - i - 1] for i in range(1, c)))
                self.correct_dir = float(self.stats[1:, c - 1].sum())
            if out_re > 2:
                bias = not self.adi_fooled < 0.05 * restart_1
            alpha, max_iter, adi, restarts = outer_schedule(out_re, bias, self.regime, self.imagenet)
            if int(self.left.sum()) < self.left.numel() * 0.1:                         # 435-436
                alpha, restarts = 1.0, restarts + 10
            for _ in range(restarts):
                epoch += 1
                if not bool(self.left.any()):
                    return self.best
                robust_after = self.restart(out_re, alpha, max_iter, adi, restarts, bias, epoch)
        return self.best


def original_a3(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float, regime: Optional[str],
                osd_min: int, budget: int) -> torch.Tensor:
    """Run the authors' A3 once on one batch (see the module docstring)."""
    with torch.no_grad():
        n_classes = int(model(images[:1]).shape[1])
    check_classes(n_classes, "a3 (variant original)")
    chosen = regime_for(n_classes, regime)
    run = A3Run(model, images, labels, eps, chosen, chosen is REGIMES["imagenet"], osd_min, budget)
    return run.run().detach()


__all__ = ["A3Run", "OUTER_RESTARTS", "REGIMES", "margin", "original_a3", "outer_schedule", "regime_for"]
