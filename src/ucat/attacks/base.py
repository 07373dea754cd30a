"""The attack contract, its registry and the projected-gradient core every white-box attack shares.

Contract (one for every attack in ucat)::

    x_adv = attack(classifier, images, labels)

* ``classifier`` maps pixels in [0,1] to logits (a :class:`ucat.models.ZeroShotClassifier`, or any
  ``nn.Module`` with a ``num_classes`` attribute or whose logits reveal it);
* ``images`` are float32 (B, 3, H, W) in [0,1], ``labels`` int64 (B,): both are checked and a clear
  ``ValueError`` names what is wrong (float64 or out-of-range inputs are refused rather than silently
  clamped, the quirk seen in other attack libraries);
* gradients are taken with respect to the input only (``torch.autograd.grad``): after an attack every
  parameter's ``.grad`` is exactly what it was before (the UCAT research code leaked attack gradients
  into the optimizer step), and the model's train/eval mode is restored;
* perturbation sizes are *fractions* of the [0,1] range here; the CLI converts from 1/255 units with
  :func:`ucat.units.to_fraction`.

The mode-switching base ``__call__`` follows torchattacks' ``Attack`` (Kim, "Torchattacks: A PyTorch
Repository for Adversarial Attacks", arXiv 2010.01950); the PGD loop is Madry et al., "Towards Deep
Learning Models Resistant to Adversarial Attacks", ICLR 2018 (arXiv 1706.06083).
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional

import torch
import torch.nn as nn

from ..registry import Registry
from .options import check_options

NORMS = ("linf", "l2")

ATTACKS: Registry = Registry("attack")


def check_images(images: torch.Tensor, labels: Optional[torch.Tensor] = None, multilabel: bool = False) -> None:
    """Refuse inputs that attacks would silently mishandle (wrong dtype, range or shape)."""
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"attack images must be a torch.Tensor, got {type(images).__name__}")
    if images.dtype != torch.float32:
        raise ValueError(f"attack images must be float32 in [0,1], got {images.dtype}; "
                         f"convert with images.float() (and keep pixels in [0,1])")
    if images.ndim != 4:
        raise ValueError(f"attack images must be (B, C, H, W), got shape {tuple(images.shape)}")
    if images.numel() and (images.min() < 0 or images.max() > 1):
        raise ValueError(f"attack images must lie in [0,1] (unnormalized pixels), got range "
                         f"[{images.min().item():.3g}, {images.max().item():.3g}]; normalization belongs "
                         f"inside the model (ucat's ImageEncoder), not in the data")
    if not torch.isfinite(images).all():
        raise ValueError("attack images contain NaN or inf")
    if labels is not None:
        want = 2 if multilabel else 1
        if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64 or labels.ndim != want:
            raise ValueError("attack labels must be an int64 tensor of shape " +
                             ("(B, C) of 0/1 (multi-hot)" if multilabel else "(B,)"))
        if labels.shape[0] != images.shape[0]:
            raise ValueError(f"{labels.shape[0]} labels for {images.shape[0]} images")
        if multilabel and labels.numel() and not bool(((labels == 0) | (labels == 1)).all()):
            raise ValueError("multi-label attack targets must hold only 0 and 1")


def check_budget(eps: float, step_size: float, steps: int, norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
    if eps < 0 or step_size < 0:
        raise ValueError(f"eps ({eps}) and step_size ({step_size}) must be >= 0")
    if norm == "linf" and eps > 0.5:
        raise ValueError(f"eps={eps} is a fraction of the [0,1] range and over 0.5; did you pass 1/255 "
                         f"units? convert with ucat.units.to_fraction (e.g. 1 -> {1 / 255:.5f})")
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps}")


def _per_sample_norm(t: torch.Tensor) -> torch.Tensor:
    """(B, ...) -> (B, 1, 1, 1) L2 norms (floored to avoid division by zero)."""
    return t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (t.ndim - 1)))


def _project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    if norm == "linf":
        return delta.clamp(-eps, eps)
    return delta * (eps / _per_sample_norm(delta)).clamp(max=1.0)


def _random_start(images: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """A random point of the eps-ball around each image (uniform in the L-inf box; for L2 a
    uniformly random direction at a uniformly random radius in [0, eps])."""
    if norm == "linf":
        return torch.empty_like(images).uniform_(-eps, eps)
    direction = torch.randn_like(images)
    radius = torch.rand(images.shape[0], *([1] * (images.ndim - 1)), device=images.device, dtype=images.dtype)
    return direction / _per_sample_norm(direction) * radius * eps


def pgd_perturb(loss_fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, eps: float,
                step_size: float, steps: int, norm: str = "linf", random_start: bool = True,
                momentum: float = 0.0) -> torch.Tensor:
    """Projected gradient ascent on ``loss_fn`` inside the eps-ball of ``images`` (Madry et al., ICLR 2018).

    Args:
        loss_fn: x_adv (B, 3, H, W) -> scalar to *maximize*; use a sum over samples so that each
            sample's gradient does not depend on the batch size.
        images: (B, 3, H, W) float32 clean pixels in [0,1].
        eps: radius of the ball, a fraction of the [0,1] range (1/255 ~ 0.00392).
        step_size: ascent step, same unit (L-inf: a signed-gradient step; L2: a step along the
            per-sample unit gradient).
        steps: number of gradient steps.
        norm: ``"linf"`` or ``"l2"``.
        random_start: start from a random point of the ball.
        momentum: 0 (default) for plain PGD; > 0 steps along a normalized velocity
            ``v = normalize(momentum * v + normalize(grad))`` (normalize = sign for L-inf, unit L2
            norm per sample for L2), as FARE's inner attack does with 0.9 (Schlarmann et al.,
            ICML 2024, official ``train/pgd_train.py``).
    Returns:
        (B, 3, H, W) float32 adversarial images, detached, in [0,1] and within eps of ``images``.

    Gradients are taken with ``torch.autograd.grad`` with respect to the input only, so no
    parameter ``.grad`` is touched. The loop runs inside whatever autocast context the caller
    opened; the iterate itself stays float32 and the gradient is cast to float32.
    """
    check_images(images)
    check_budget(eps, step_size, steps, norm)
    x0 = images.detach()
    if eps == 0:
        return x0.clone()
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    delta = _random_start(x0, eps, norm) if random_start else torch.zeros_like(x0)
    x_adv = (x0 + delta).clamp(0.0, 1.0)                                   # (B, 3, H, W)
    unit = (lambda t: t.sign()) if norm == "linf" else (lambda t: t / _per_sample_norm(t))
    velocity = torch.zeros_like(x0)
    for _ in range(int(steps)):
        x_adv.requires_grad_(True)
        with torch.enable_grad():
            loss = loss_fn(x_adv)
            if loss.ndim != 0:
                raise ValueError(f"pgd_perturb: loss_fn must return a scalar, got shape {tuple(loss.shape)}")
            (grad,) = torch.autograd.grad(loss, [x_adv])
        direction = unit(grad.detach().float())                            # (B, 3, H, W)
        if momentum > 0:
            velocity = unit(momentum * velocity + direction)
            direction = velocity
        step = step_size * direction
        delta = _project(x_adv.detach() + step - x0, eps, norm)
        x_adv = (x0 + delta).clamp(0.0, 1.0)
    return x_adv.detach()


def num_classes_of(classifier: nn.Module, logits: Optional[torch.Tensor] = None) -> int:
    n = getattr(classifier, "num_classes", None)
    if n is not None:
        return int(n)
    if logits is None:
        raise ValueError("cannot tell the number of classes: give the classifier a num_classes attribute")
    return int(logits.shape[-1])


class Attack:
    """Base class: input checks, eval mode for the duration, parameter gradients untouched.

    Subclasses implement :meth:`perturb` (images are already checked; the model is in eval mode).
    ``notes`` collects human-readable remarks of the last call (e.g. a fallback), which the
    evaluator records in its JSON.
    """

    name: str = "attack"
    #: True for attacks that call ``.backward()`` internally (third-party code); their
    #: parameter gradients are saved before and restored after.
    uses_backward: bool = False
    #: attacks this one should be at least as strong as (its robust accuracy not above theirs beyond
    #: noise); the evaluator checks it generically and warns.
    at_least_as_strong_as: tuple = ()
    #: False for attacks without a perturbation budget (evaluated once, at eps 0).
    uses_eps: bool = True
    #: True for attacks whose labels are multi-hot (B, C) targets (ucat.attacks.multilabel).
    multilabel: bool = False

    def __new__(cls, *args, **kw):
        # every attack's options are checked at construction, however it is built (registry or class)
        check_options(cls, args, kw)
        return super().__new__(cls)

    def __init__(self, eps: float, step_size: float = 0.0, steps: int = 0, norm: str = "linf"):
        check_budget(eps, step_size, steps, norm)
        self.eps = float(eps)
        self.step_size = float(step_size)
        self.steps = int(steps)
        self.norm = norm
        self.notes: List[str] = []

    def perturb(self, classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def config(self) -> Dict[str, object]:
        """Hyperparameters for reports (sizes as fractions of [0,1])."""
        return {"name": self.name, "eps": self.eps, "step_size": self.step_size, "steps": self.steps,
                "norm": self.norm}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({args})"

    def __call__(self, classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_images(images, labels, self.multilabel)
        self.notes = []
        if images.shape[0] == 0 or self.eps == 0:
            return images.detach().clone()
        modes = {m: m.training for m in classifier.modules()}
        saved = _save_grads(classifier) if self.uses_backward else None
        classifier.eval()
        try:
            x_adv = self.perturb(classifier, images.detach(), labels.detach())
        finally:
            for m, was_training in modes.items():
                m.training = was_training
            if saved is not None:
                _restore_grads(saved)
        return x_adv.detach()


def _save_grads(module: nn.Module) -> list:
    return [(p, p.grad, None if p.grad is None else p.grad.detach().clone()) for p in module.parameters()]


def _restore_grads(saved: list) -> None:
    """Put every ``.grad`` back, in place where the tensor object survived (DDP bucket views)."""
    for p, obj, value in saved:
        if obj is None:
            p.grad = None
        else:
            obj.detach().copy_(value)
            if p.grad is not obj:
                p.grad = obj


@ATTACKS.register("none")
class NoAttack(Attack):
    """The identity "attack": evaluation on clean images only (its robust metrics equal the clean ones)."""

    name = "none"
    uses_eps = False

    def __init__(self, eps: float = 0.0, step_size: float = 0.0, steps: int = 0, norm: str = "linf",
                 restarts: int = 1):
        # the settings every evaluation passes are accepted and ignored; anything else is an unknown option
        super().__init__(0.0, 0.0, 0, norm)

    def config(self) -> Dict[str, object]:
        return {"name": self.name}

    def perturb(self, classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return images.clone()


def create_attack(name: str, eps: float, step_size: Optional[float] = None, steps: int = 10, **kw) -> Attack:
    """Build a registered attack by name. Sizes are fractions of [0,1]; ``step_size=None`` means
    ``eps``. (The official UCAT evaluation keeps the step at 1/255 at every eps, VivienLu/UCAT
    main.py:56,139: protocol ``ucat-paper`` in :mod:`ucat.protocols`.) Unknown options and values
    of the wrong kind raise :class:`ucat.errors.ConfigError` naming the attack and its options."""
    cls = ATTACKS.get(name)
    return cls(eps=eps, step_size=float(eps) if step_size is None else step_size, steps=steps, **kw)


def sample_correct(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B, C) logits, (B,) labels -> (B,) bool: top-1 correct."""
    return logits.argmax(-1) == labels


__all__ = ["ATTACKS", "Attack", "NORMS", "check_images", "check_budget", "create_attack", "num_classes_of",
           "pgd_perturb", "sample_correct"]
