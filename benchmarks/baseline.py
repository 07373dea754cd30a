"""The research-style step that ucat replaces, written from its description, for side-by-side timing.

What the original implementations compute per step (docs/performance.md; the official UCAT code's
forward and training step: Lu et al., "Calibrating Uncertainty for Zero-Shot Adversarial CLIP", arXiv
2512.12997; TeCoA: Mao et al., "Understanding Zero-Shot Adversarial Robustness for Large-Scale
Models", ICLR 2023; PMG-AFT: Wang et al., "Pre-trained Model Guided Fine-Tuning for Zero-Shot
Adversarial Robustness", CVPR 2024):

* every logits call is CLIP's *full* forward: the image tower on the batch AND the text tower on
  the prompts of all C classes, ``logits = exp(logit_scale) * norm(f(x)) @ norm(g(T))^T``;
* the whole model requires gradients (only ``model.visual`` is in the optimizer), so every
  ``loss.backward()`` also back-propagates through the text tower;
* the PGD attack calls ``loss.backward()`` on the model (not ``autograd.grad`` w.r.t. the input),
  once per attack step, with the text tower re-encoded each time;
* the frozen original model (a deep copy of the whole CLIP) runs under ``no_grad``, also
  re-encoding the text.

Nothing here is used by the library; it exists only so that the benchmarks can report an honest
ratio measured in the same run as ucat's step.
"""
from __future__ import annotations

import copy
from typing import Callable, Dict

import torch
import torch.nn as nn
import torch.nn.functional as F

from ucat.device import autocast


TEMPLATE = "This is a photo of a {}"


def class_tokens(bundle, num_classes: int, device: torch.device) -> torch.Tensor:
    """(C, L) token ids of one prompt per synthetic class (the research code's single template)."""
    names = [f"object number {i}" for i in range(num_classes)]
    return bundle.tokenizer([TEMPLATE.format(n) for n in names]).to(device)


def full_clip_logits(model: nn.Module, normalize: Callable, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """CLIP's full forward as the research code calls it: (B, 3, S, S) in [0,1] -> (B, C) logits."""
    img = F.normalize(model.encode_image(normalize(x)), dim=-1)             # (B, D)
    txt = F.normalize(model.encode_text(tokens), dim=-1)                    # (C, D): text tower, every call
    return model.logit_scale.exp() * img @ txt.t()                         # (B, C)


def research_pgd(model: nn.Module, normalize: Callable, tokens: torch.Tensor, x: torch.Tensor,
                 y: torch.Tensor, eps: float, step_size: float, steps: int) -> torch.Tensor:
    """PGD-Linf the research way: ``loss.backward()`` on the model, one full CLIP forward per step."""
    delta = torch.empty_like(x).uniform_(-eps, eps)                          # (B, 3, S, S)
    delta = ((x + delta).clamp(0, 1) - x).requires_grad_(True)
    for _ in range(steps):
        loss = F.cross_entropy(full_clip_logits(model, normalize, x + delta, tokens).float(), y)
        loss.backward()                                    # fills .grad of every parameter, both towers
        g = delta.grad.detach()
        d = (delta.detach() + step_size * g.sign()).clamp(-eps, eps)
        delta.data = (x + d).clamp(0, 1) - x
        delta.grad.zero_()
    return (x + delta).detach()


def _dirichlet_kl_mean(alpha_p: torch.Tensor, alpha_q: torch.Tensor) -> torch.Tensor:
    from torch.distributions import Dirichlet, kl_divergence

    return kl_divergence(Dirichlet(alpha_p.float()), Dirichlet(alpha_q.float())).mean()


def _loss_ucat(model, frozen, normalize, tokens, x, x_adv, y) -> torch.Tensor:
    """UCAT (official main.py train step): CE(z_adv, y) + lambda * mean KL(Dir(alpha_adv) || Dir(alpha_ori))."""
    z_adv = full_clip_logits(model, normalize, x_adv, tokens)              # (B, C)
    with torch.no_grad():
        z_ori = full_clip_logits(frozen, normalize, x, tokens)             # (B, C)
    s = float(model.logit_scale.detach().exp())
    a_adv = 1e-6 + torch.exp((z_adv.float() / s + 1) / 0.07)                 # (B, C)
    a_ori = 1e-6 + torch.exp((z_ori.float() / s + 1) / 0.07)                 # (B, C)
    lam = 1e5 / float(torch.exp(F.softplus(torch.tensor(2 / 0.07))))
    return F.cross_entropy(z_adv.float(), y) + lam * _dirichlet_kl_mean(a_adv, a_ori)


def _loss_tecoa(model, frozen, normalize, tokens, x, x_adv, y) -> torch.Tensor:
    """TeCoA: CE of the adversarial logits."""
    return F.cross_entropy(full_clip_logits(model, normalize, x_adv, tokens).float(), y)


def _loss_pmg_aft(model, frozen, normalize, tokens, x, x_adv, y) -> torch.Tensor:
    """PMG-AFT: CE + KL_sum(frozen(x_adv) || model(x_adv)) + KL_sum(model(x) || model(x_adv))."""
    z_adv = full_clip_logits(model, normalize, x_adv, tokens).float()      # (B, C)
    with torch.no_grad():
        z_ori = full_clip_logits(frozen, normalize, x_adv, tokens).float()  # (B, C)
    z_clean = full_clip_logits(model, normalize, x, tokens).float()        # (B, C)
    kl = nn.KLDivLoss(reduction="sum")
    logp = F.log_softmax(z_adv, dim=-1)
    return F.cross_entropy(z_adv, y) + kl(logp, F.softmax(z_ori, -1)) + kl(logp, F.softmax(z_clean, -1))


RESEARCH_LOSSES: Dict[str, Callable] = {"ucat": _loss_ucat, "tecoa": _loss_tecoa, "pmg-aft": _loss_pmg_aft}
"""Methods whose research code re-encodes the text tower per step (FARE's loss uses no text)."""


class ResearchStep:
    """One research-style training step of ``method`` (see the module docstring).

    The trainable model is the whole CLIP with every parameter requiring gradients; the optimizer
    holds ``model.visual`` only (SGD, momentum 0.9), as in the research code. Attack gradients
    that leak into ``.grad`` are zeroed before the loss (the research code relied on GradScaler
    to make them negligible; bf16 has no scaler).
    """

    def __init__(self, bundle, method: str, num_classes: int, eps: float, step_size: float, steps: int,
                 precision: str, device: torch.device, lr: float = 1e-5):
        if method not in RESEARCH_LOSSES:
            raise ValueError(f"no research-style baseline for method {method!r}; "
                             f"available: {', '.join(sorted(RESEARCH_LOSSES))}")
        self.model = bundle.model.to(device).train()
        self.model.requires_grad_(True)
        self.frozen = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.normalize = bundle.encoder.normalize
        self.tokens = class_tokens(bundle, num_classes, device)             # (C, L)
        self.loss_fn = RESEARCH_LOSSES[method]
        self.eps, self.step_size, self.steps = eps, step_size, steps
        self.precision, self.device = precision, device
        self.opt = torch.optim.SGD(self.model.visual.parameters(), lr=lr, momentum=0.9)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        self.opt.zero_grad(set_to_none=True)
        with autocast(self.device, self.precision):
            x_adv = research_pgd(self.model, self.normalize, self.tokens, images, labels,
                                 self.eps, self.step_size, self.steps)
            self.opt.zero_grad(set_to_none=True)
            loss = self.loss_fn(self.model, self.frozen, self.normalize, self.tokens, images, x_adv, labels)
        loss.backward()
        self.opt.step()
        return float(loss.detach())


class ResearchPGDEval:
    """Research-style PGD evaluation of a (frozen) CLIP: full forward + ``loss.backward()`` per step.

    Parameters require gradients, as in the research validate loop, so every backward also
    runs through the text tower and writes parameter gradients.
    """

    def __init__(self, bundle, num_classes: int, eps: float, step_size: float, steps: int,
                 precision: str, device: torch.device):
        self.model = bundle.model.to(device).eval().requires_grad_(True)
        self.normalize = bundle.encoder.normalize
        self.tokens = class_tokens(bundle, num_classes, device)
        self.eps, self.step_size, self.steps = eps, step_size, steps
        self.precision, self.device = precision, device

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, self.precision):
            x_adv = research_pgd(self.model, self.normalize, self.tokens, images, labels,
                                 self.eps, self.step_size, self.steps)
            with torch.no_grad():
                logits = full_clip_logits(self.model, self.normalize, x_adv, self.tokens)
        self.model.zero_grad(set_to_none=True)
        return logits
