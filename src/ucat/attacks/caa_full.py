"""The full composite adversarial attack (CAA) as its authors define it, behind ``-A caa.variant=full``.

Hsiung et al., "Towards Compositional Adversarial Robustness: Generalizing Adversarial Training to
Composite Semantic Perturbations", CVPR 2023. Followed: IBM/composite-adv@3ade39a
composite_adv/composite_attack.py (the CVPR 2023 release; VivienLu/UCAT's copy differs only by an
explicit ``device`` argument, so its line numbers are one or two higher), ``mode='eval'``:

* components hue, saturation, rotation, brightness, contrast (:mod:`ucat.attacks.semantic`) and
  L-inf, in the authors' index order (18-28), each a sign-gradient ascent of the cross-entropy on
  its own parameter, clamped to its range (``_comp_pgd`` 127-147, ``caa_linf`` 194-214), with step
  2.5 * (half the range) / ``steps`` (78-79); ranges from the authors' pool (44-47), the L-inf
  one being the evaluation's eps;
* semantic parameters start uniformly at random in their range (85-95); L-inf starts at its input;
* early stop per sample: a component's gradient is zeroed for samples it has misclassified, and a
  sample misclassified at a component's entry is set to the identity (149-192, 201-209);
* order (``update_attack_order`` 219-275): ``fixed`` (the order ``enabled`` lists, 236-239),
  ``random`` (a new permutation per start, 240-241) or ``scheduled`` (242-273): ``schedule_iters``
  passes (the authors' ``iter_num``, 5; 72), each preceded by an order update: a surrogate in
  which every position mixes all components weighted by a doubly stochastic matrix (3 inner
  steps each, 249-260), the surrogate loss's gradient added to the matrix before ``exp`` and 20
  Sinkhorn normalizations (230-234, 271), the order read off greedily row by row (220-228), with
  noise ``2 (N(0,1) + 1)`` redrawn until the order changes (270-273);
* between passes not-yet-misclassified samples restart from the clean image, their semantic
  parameters carried over (``caa_attack`` 277-321).

``variant=full`` is the authors' "full attacks, scheduled order" (getting_started.ipynb: all six
components, ``order_schedule="scheduled"``, the constructor's ``iter_num=5``, ``start_num=1``,
composite_attack.py:13); its inner steps are the evaluation's ``steps`` (the authors' default 10).

Differences, each a consequence of ucat's attack contract or a guard against a failure of the
original, none changing what a misclassified sample is:

* the authors keep the scheduling matrix across batches on one attack object; ucat starts every
  call from a fresh random matrix, so a batch's result does not depend on earlier batches
  (sharding, resume);
* a component applied to a sample already misclassified at its entry passes it through unchanged
  (the authors apply it at its identity value, an identity up to float rounding of the HSV round
  trip or the resampling);
* with one component the scheduled order has nothing to change (the authors' redraw loop would not
  end); the order update runs in float64 when float32 ``exp`` overflows, and gives up after 100
  redraws;
* the authors' early-stop mask starts empty, so a sample the model misclassifies clean can be
  returned correct; ucat then returns the clean image (robust accuracy never above clean);
* the inner loops stop once every sample is misclassified (nothing would move any more).

The attack leaves a per-sample trace (order, parameters, L-inf perturbation) that :func:`replay`
turns back into the adversarial images, which is how the tests check the budget.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from .semantic import COMPONENTS, DEFAULT_RANGES, IDENTITY, SEMANTIC, apply

ORDERS = ("fixed", "random", "scheduled")
SCHEDULE_INNER_STEPS = 3            # composite_attack.py:249 (the surrogate's inner steps)
SINKHORN_ITERS = 20                 # composite_attack.py:230
_MAX_REDRAWS = 100
#: the largest half-width each semantic range may have (hue in radians, rotation in degrees;
#: saturation and contrast factors stay >= 0, as kornia requires)
MAX_HALF_WIDTH = {"hue": math.pi, "saturation": 1.0, "rotation": 180.0, "brightness": 1.0, "contrast": 1.0}


@dataclass(frozen=True)
class CompositeSpec:
    """What one composite attack runs: the components in their fixed order, ranges, steps."""

    components: Tuple[str, ...]
    order: str
    ranges: Dict[str, Tuple[float, float]]          # every semantic component, plus "linf": (-eps, eps)
    steps: int                                      # inner iterations per component
    linf_step: float
    schedule_iters: int = 5
    starts: int = 1

    def step(self, name: str) -> float:
        """composite_attack.py:78-79: 2.5 * (half the range) / inner iterations."""
        if name == "linf":
            return self.linf_step
        lo, hi = self.ranges[name]
        return 2.5 * ((hi - lo) / 2) / self.steps

    @property
    def enabled(self) -> Tuple[str, ...]:
        """The components in the authors' index order (their ``attack_dict``, composite_attack.py:19,28)."""
        return tuple(c for c in COMPONENTS if c in self.components)


def parse_components(text: str) -> Tuple[str, ...]:
    names = tuple(n.strip() for n in str(text).split(",") if n.strip())
    bad = [n for n in names if n not in COMPONENTS]
    if not names or bad or len(set(names)) != len(names):
        raise ConfigError("attack_options", f"caa.enabled must list distinct components of {', '.join(COMPONENTS)} "
                                            f"separated by commas, got {text!r}")
    return names


def semantic_ranges(half_widths: Dict[str, Optional[float]]) -> Dict[str, Tuple[float, float]]:
    """Symmetric ranges about each operation's identity (None: the authors' range)."""
    ranges = dict(DEFAULT_RANGES)
    for name, width in half_widths.items():
        if width is None:
            continue
        if not 0.0 <= float(width) <= MAX_HALF_WIDTH[name]:
            raise ConfigError("attack_options", f"caa.{name}_range must be in [0, {MAX_HALF_WIDTH[name]:g}], got {width}")
        ranges[name] = (IDENTITY[name] - float(width), IDENTITY[name] + float(width))
    return ranges


def _sinkhorn(m: torch.Tensor) -> torch.Tensor:
    """composite_attack.py:230-234: alternate column and row normalization, 20 times."""
    for _ in range(SINKHORN_ITERS):
        m = m / m.sum(dim=0, keepdim=True)
        m = m / m.sum(dim=1, keepdim=True)
    return m


def _greedy_order(m: torch.Tensor) -> torch.Tensor:
    """composite_attack.py:220-228 (named ``hungarian`` there): row by row, the best column not yet taken."""
    n = m.shape[0]
    order = -torch.arange(1, n + 1)
    for i in range(n):
        k = 1
        order[i] = torch.topk(m[i], k).indices[k - 1]
        while torch.unique(order).numel() != n:
            k += 1
            order[i] = torch.topk(m[i], k).indices[k - 1]
    return order


def _reweigh(dsm: torch.Tensor, grad: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    z = dsm + grad + noise
    out = _sinkhorn(torch.exp(z))
    if not bool(torch.isfinite(out).all()):      # float32 exp overflowed: the same, shifted, in float64
        z = z.double()
        out = _sinkhorn(torch.exp(z - z.max())).float()
    return out


class CompositeRun:
    """One call of the full CAA on one batch (the state the authors keep on their attack object)."""

    def __init__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, spec: CompositeSpec):
        self.model, self.x0, self.y, self.spec = model, images.detach(), labels, spec
        self.enabled = spec.enabled
        self.attacked = torch.zeros(images.shape[0], dtype=torch.bool, device=images.device)
        self.scheduling, self.inner = False, spec.steps
        self.dsm: Optional[torch.Tensor] = None
        self.seq: Optional[torch.Tensor] = None
        self.notes: List[str] = []

    def _grad(self, x: torch.Tensor, wrt: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            logits = self.model(x).float()
            (grad,) = torch.autograd.grad(F.cross_entropy(logits, self.y), [wrt])
        return logits.detach(), grad.detach().float()

    def _early_stop(self, entry: torch.Tensor, logits: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        if self.scheduling:
            return grad
        self.attacked = entry | (logits.argmax(1) != self.y)
        return torch.where(self.attacked.view(-1, *([1] * (grad.ndim - 1))), torch.zeros_like(grad), grad)

    def semantic(self, name: str, data: torch.Tensor, value: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """composite_attack.py:127-192: PGD on one semantic parameter (B,)."""
        lo, hi = self.spec.ranges[name]
        entry = self.attacked.clone()
        value = torch.where(entry, torch.full_like(value, IDENTITY[name]), value.detach())
        data = data.detach()
        if lo == hi:                                                  # a zero range is the identity
            return data, value
        keep = None if self.scheduling else entry
        for _ in range(self.inner):
            value = value.detach().requires_grad_(True)
            with torch.enable_grad():
                adv = apply(name, data, value, keep)
            logits, grad = self._grad(adv, value)
            grad = self._early_stop(entry, logits, grad)
            value = torch.clamp(value.detach() + grad.sign() * self.spec.step(name), lo, hi)
            if not self.scheduling and bool(self.attacked.all()):
                break
        with torch.no_grad():
            return apply(name, data, value, keep), value.detach()

    def linf(self, data: torch.Tensor) -> torch.Tensor:
        """composite_attack.py:194-214: PGD in the L-inf ball around the component's input."""
        eps, step = self.spec.ranges["linf"][1], self.spec.linf_step
        entry = self.attacked.clone()
        sur = data.detach()
        adv = sur.clone()
        for _ in range(self.inner):
            adv.requires_grad_(True)
            logits, grad = self._grad(adv, adv)
            grad = self._early_stop(entry, logits, grad)
            adv = (sur + (adv.detach() + step * grad.sign() - sur).clamp(-eps, eps)).clamp(0.0, 1.0)
            if not self.scheduling and bool(self.attacked.all()):
                break
        return adv.detach()

    def _component(self, name: str, data: torch.Tensor, values: Dict[str, torch.Tensor]) -> torch.Tensor:
        if name == "linf":
            return self.linf(data)
        return self.semantic(name, data, values[name])[0]

    def _surrogate_grad(self, values: Dict[str, torch.Tensor]) -> torch.Tensor:
        """composite_attack.py:246-266: the gradient of the mixed-order surrogate w.r.t. the matrix."""
        dsm = self.dsm.detach().requires_grad_(True)
        n = len(self.enabled)
        saved, self.inner, self.scheduling = self.inner, SCHEDULE_INNER_STEPS, True
        try:
            adv = self.x0.clone()
            for t in range(n):
                outs = [self._component(name, adv, values) for name in self.enabled]
                with torch.enable_grad():
                    mixed = torch.zeros_like(adv)
                    for i in range(n):
                        mixed = mixed + dsm[t, i].to(adv.device) * outs[i]
                adv = mixed
            with torch.enable_grad():
                cost = F.cross_entropy(self.model(adv).float(), self.y)
                (grad,) = torch.autograd.grad(cost, [dsm])
        finally:
            self.inner, self.scheduling = saved, False
        return grad.detach()

    def update_order(self, values: Dict[str, torch.Tensor]) -> torch.Tensor:
        """composite_attack.py:219-275: the component indices (into ``enabled``) of the next pass."""
        n = len(self.enabled)
        if self.spec.order == "fixed":
            return torch.tensor([self.enabled.index(c) for c in self.spec.components])
        if self.spec.order == "random":
            return torch.randperm(n)
        if self.dsm is None:
            self.dsm = _sinkhorn(torch.rand((n, n)))
            self.seq = _greedy_order(self.dsm)
        if n == 1:
            return self.seq
        grad = self._surrogate_grad(values)
        previous, noise = self.seq.clone(), torch.zeros_like(self.dsm)
        for _ in range(_MAX_REDRAWS):
            self.dsm = _reweigh(self.dsm, grad, noise)
            self.seq = _greedy_order(self.dsm)
            noise = (torch.randn_like(self.dsm) + 1) * 2          # composite_attack.py:273 (drawn every time)
            if not torch.equal(previous, self.seq):
                break
        else:
            self.notes.append(f"caa: the scheduled order did not change in {_MAX_REDRAWS} redraws; kept it")
        return self.seq

    def _pass(self, adv: torch.Tensor, values: Dict[str, torch.Tensor], seq: torch.Tensor,
              trace: Dict[str, object]) -> torch.Tensor:
        """One pass through the components in order ``seq``; the trace of the samples it restarted."""
        fresh = ~self.attacked
        adv = torch.where(fresh.view(-1, 1, 1, 1), self.x0, adv)
        linf = torch.zeros_like(adv)
        for idx in seq.tolist():
            name = self.enabled[idx]
            if name == "linf":
                before, adv = adv, self.linf(adv)
                linf = adv - before
            else:
                adv, values[name] = self.semantic(name, adv, values[name])
        with torch.no_grad():
            self.attacked = self.attacked | (self.model(adv).float().argmax(1) != self.y)
        order = torch.tensor([COMPONENTS.index(self.enabled[i]) for i in seq.tolist()], device=adv.device)
        trace["order"][fresh] = order
        trace["linf"][fresh] = linf[fresh]
        for name in values:
            trace["values"][name][fresh] = values[name][fresh]
        return adv

    def run(self) -> Tuple[torch.Tensor, Dict[str, object]]:
        b, dev, spec = self.x0.shape[0], self.x0.device, self.spec
        init = {}
        for name in SEMANTIC:                                          # composite_attack.py:86-95, all five
            lo, hi = spec.ranges[name]
            init[name] = torch.rand((spec.starts, b), device=dev) * (hi - lo) + lo
        trace = {"order": torch.tensor([COMPONENTS.index(c) for c in spec.components], device=dev).repeat(b, 1),
                 "values": {n: torch.full((b,), IDENTITY[n], device=dev) for n in self.enabled if n != "linf"},
                 "linf": torch.zeros_like(self.x0)}
        adv = self.x0.clone()
        passes = spec.schedule_iters if spec.order == "scheduled" else 1
        for start in range(spec.starts):
            values = {n: init[n][start].clone() for n in self.enabled if n != "linf"}
            for _ in range(passes):
                adv = self._pass(adv, values, self.update_order(values), trace)
                if bool(self.attacked.all()):
                    break
            if bool(self.attacked.all()):
                break
        return self._never_above_clean(adv, trace)

    def _never_above_clean(self, adv: torch.Tensor, trace: Dict[str, object]) -> Tuple[torch.Tensor, Dict[str, object]]:
        with torch.no_grad():
            back = (self.model(self.x0).float().argmax(1) != self.y) & ~self.attacked
        if bool(back.any()):
            adv = torch.where(back.view(-1, 1, 1, 1), self.x0, adv)
            trace["linf"][back] = 0.0
            for name, v in trace["values"].items():
                v[back] = IDENTITY[name]
        return adv, trace


def composite_attack(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, spec: CompositeSpec
                     ) -> Tuple[torch.Tensor, Dict[str, object], List[str]]:
    """Run the full CAA once: (adversarial images, trace, notes). See the module docstring."""
    run = CompositeRun(model, images, labels, spec)
    adv, trace = run.run()
    return adv.detach(), trace, run.notes


def replay(images: torch.Tensor, trace: Dict[str, object]) -> torch.Tensor:
    """The adversarial images rebuilt from the clean ones and a trace: per sample, its components in
    its order at its parameter values (an identity value passes the image through), and its L-inf
    perturbation added where L-inf came."""
    out = []
    for i in range(images.shape[0]):
        x = images[i:i + 1]
        for c in trace["order"][i].tolist():
            name = COMPONENTS[c]
            if name == "linf":
                x = x + trace["linf"][i:i + 1]
            elif float(trace["values"][name][i]) != IDENTITY[name]:
                x = apply(name, x, trace["values"][name][i:i + 1])
        out.append(x)
    return torch.cat(out)


def check_classes(n_classes: int, what: str) -> None:
    if n_classes < 2:
        raise ConfigError("attacks", f"{what} needs at least 2 classes (its loss has no gradient with "
                                     f"{n_classes}); evaluate this dataset without it")


__all__ = ["CompositeRun", "CompositeSpec", "ORDERS", "check_classes", "composite_attack", "parse_components",
           "replay", "semantic_ranges"]
