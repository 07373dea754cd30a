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
  rule with the eps actually used). The authors' full CAA (hue, saturation, rotation, brightness,
  contrast and L-inf, in a fixed, random or scheduled order) is ``-A caa.variant=full``, or any
  composite with ``-A caa.enabled=...`` and ``-A caa.order=...``: :mod:`ucat.attacks.caa_full`.
* ``a3``: the official simplified A3 (adaptive auto attack, Liu et al., "Practical Evaluation of
  Adversarial Robustness via Adaptive Auto Attack", CVPR 2022; attacks.py 266-405, run with
  ``num_restarts=1``, ``step_size`` = the evaluation's step, ``osd_start=0``, ``osd_inc=0.1``,
  ``early_stop``, ``rand_init``, ``use_adi``; main.py 552-570): uniform random start, signed
  CE-gradient steps, per-sample early stop (a sample is frozen at the first step it is
  misclassified), and across restarts the official online statistics-based discarding (the
  easiest ``osd_start + r * osd_inc`` share of samples skipped in restart r, ranked by loss) and
  adaptive direction initialization (a bias of 0.25 eps along the sign of the summed successful
  directions of earlier restarts); per sample the highest-loss restart is kept. With one restart,
  as the official evaluation runs it, OSD and ADI do nothing. The authors' A3 (its output-space
  adaptive directions, statistics-based discarding and step schedule) is ``-A a3.variant=original``:
  :mod:`ucat.attacks.a3_original`.
"""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from .a3_original import original_a3, regime_for
from .base import ATTACKS, Attack
from .caa_full import ORDERS, CompositeSpec, check_classes, composite_attack, parse_components, semantic_ranges
from .options import check_iterations
from .semantic import COMPONENTS, SEMANTIC

CAA_DEFAULT_EPS = 4 / 255          # CompositeAttack's ImageNet L-inf pool, which sets its step
#: caa.variant -> (components in their fixed order, order, L-inf step from eps): ucat = the official UCAT
#: evaluation's (attacks.py:177-235), full = the authors' full attack, scheduled (IBM/composite-adv getting_started.ipynb)
CAA_VARIANTS = {"ucat": (("linf",), "fixed", False), "full": (COMPONENTS, "scheduled", True)}
A3_VARIANTS = ("ucat", "original")


def _project(x: torch.Tensor, x0: torch.Tensor, eps: float) -> torch.Tensor:
    return (x0 + (x - x0).clamp(-eps, eps)).clamp(0.0, 1.0)


@ATTACKS.register("caa")
class CompositeLinf(Attack):
    """CAA: by default the official evaluation's (its L-inf component only); ``variant="full"`` or
    ``enabled=...`` the authors' composite (:mod:`ucat.attacks.caa_full`). See the module docstring."""

    name = "caa"
    at_least_as_strong_as = ()

    def __init__(self, eps: float, step_size: float = 0.0, steps: int = 100, norm: str = "linf",
                 linf_step_from_eps: bool | None = None, variant: str = "ucat", enabled: str | None = None,
                 order: str | None = None, hue_range: float | None = None, saturation_range: float | None = None,
                 rotation_range: float | None = None, brightness_range: float | None = None,
                 contrast_range: float | None = None, schedule_iters: int = 5, starts: int = 1):
        super().__init__(eps, step_size, steps, norm)
        check_iterations(self.name, "steps", steps)
        if norm != "linf":
            raise ConfigError("norm", f"{norm!r}: caa's budget is L-inf (its semantic components have their own ranges)")
        if variant not in CAA_VARIANTS:
            raise ConfigError("attack_options", f"caa.variant must be one of {', '.join(CAA_VARIANTS)}, got {variant!r}")
        components, default_order, from_eps = CAA_VARIANTS[variant]
        self.variant, self.components = variant, parse_components(enabled) if enabled is not None else components
        self.order = default_order if order is None else order
        if self.order not in ORDERS:
            raise ConfigError("attack_options", f"caa.order must be one of {', '.join(ORDERS)}, got {order!r}")
        for key, value in (("schedule_iters", schedule_iters), ("starts", starts)):
            check_iterations(self.name, key, value)
        self.linf_step_from_eps = from_eps if linf_step_from_eps is None else bool(linf_step_from_eps)
        # composite_attack.py 78-79: 2.5 * (eps range / 2) / inner steps, from the default pool or from eps
        self.step_size = 2.5 * (self.eps if self.linf_step_from_eps else CAA_DEFAULT_EPS) / self.steps
        ranges = semantic_ranges({"hue": hue_range, "saturation": saturation_range, "rotation": rotation_range,
                                  "brightness": brightness_range, "contrast": contrast_range})
        self.spec = None if self.components == ("linf",) else CompositeSpec(
            self.components, self.order, {**ranges, "linf": (-self.eps, self.eps)}, self.steps, self.step_size,
            int(schedule_iters), int(starts))
        self.last_trace = None

    def config(self) -> Dict[str, object]:
        cfg = {**super().config(), "linf_step_from_eps": self.linf_step_from_eps,
               "random_start": any(c in SEMANTIC for c in self.components), "early_stop": True,
               "variant": self.variant, "enabled": list(self.components), "order": self.order}
        if self.spec is not None:
            cfg.update({"ranges": {c: list(self.spec.ranges[c]) for c in self.components if c != "linf"},
                        "schedule_iters": self.spec.schedule_iters if self.order == "scheduled" else 1,
                        "starts": self.spec.starts})
        return cfg

    def perturb(self, classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.spec is not None:
            check_classes(_n_classes(classifier, images), f"caa ({', '.join(self.components)})")
            x_adv, self.last_trace, notes = composite_attack(classifier, images, labels, self.spec)
            self.notes.extend(notes)
            return x_adv
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
    """A3: by default the official evaluation's simplified one; ``variant="original"`` the authors'
    (:mod:`ucat.attacks.a3_original`). See the module docstring."""

    name = "a3"

    def __init__(self, eps: float, step_size: float, steps: int = 100, norm: str = "linf", restarts: int = 1,
                 osd_start: float = 0.0, osd_inc: float = 0.1, adi: bool = True, random_start: bool = True,
                 variant: str = "ucat", osd_min: int = 100, budget: int = 1000, regime: str | None = None):
        super().__init__(eps, step_size, steps, norm)
        check_iterations(self.name, "steps", steps)
        if norm != "linf":
            raise ConfigError("norm", f"{norm!r}: a3 is an L-inf attack")
        if int(restarts) < 1:
            raise ConfigError("restarts", f"must be >= 1, got {restarts}")
        if variant not in A3_VARIANTS:
            raise ConfigError("attack_options", f"a3.variant must be one of {', '.join(A3_VARIANTS)}, got {variant!r}")
        self.restarts, self.osd_start, self.osd_inc = int(restarts), float(osd_start), float(osd_inc)
        self.adi, self.random_start = bool(adi), bool(random_start)
        self.variant, self.osd_min, self.budget, self.regime = variant, int(osd_min), int(budget), regime
        _check_a3_variant_options(self)

    def config(self) -> Dict[str, object]:
        if self.variant == "original":
            return {"name": self.name, "eps": self.eps, "norm": self.norm, "variant": self.variant,
                    "osd_min": self.osd_min, "budget": self.budget, "regime": self.regime, "early_stop": True}
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
        if self.variant == "original":
            return original_a3(classifier, images, labels, self.eps, self.regime, self.osd_min, self.budget)
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


def _n_classes(classifier: nn.Module, images: torch.Tensor) -> int:
    n = getattr(classifier, "num_classes", None)
    if n is None:
        with torch.no_grad():
            n = classifier(images[:1]).shape[-1]
    return int(n)


def _check_a3_variant_options(attack: AdaptiveAutoAttack) -> None:
    """Options of one variant given to the other are refused (they would be silently ignored)."""
    ucat_only = {"restarts": (attack.restarts, 1), "osd_start": (attack.osd_start, 0.0),
                 "osd_inc": (attack.osd_inc, 0.1), "adi": (attack.adi, True), "random_start": (attack.random_start, True)}
    original_only = {"osd_min": (attack.osd_min, 100), "budget": (attack.budget, 1000), "regime": (attack.regime, None)}
    other = ucat_only if attack.variant == "original" else original_only
    for key, (value, default) in other.items():
        if value != default:
            param, label = ("restarts", "(a3)") if key == "restarts" else ("attack_options", f"a3.{key}")
            raise ConfigError(param, f"{label} applies to a3.variant={'ucat' if other is ucat_only else 'original'} "
                                     f"only, not to variant {attack.variant} (the original follows its authors' schedule)")
    if attack.osd_min < 1 or attack.budget < 1:
        raise ConfigError("attack_options", f"a3.osd_min and a3.budget must be >= 1, got {attack.osd_min}, {attack.budget}")
    if attack.regime is not None:
        regime_for(2, attack.regime)
