"""AutoAttack through the maintained ``pyautoattack`` packaging of the original code (not vendored).

Croce & Hein, "Reliable Evaluation of Adversarial Robustness with an Ensemble of Diverse
Parameter-free Attacks", ICML 2020 (arXiv 2003.01690); original code fra31/auto-attack@a392200
(the commit the official UCAT code pins, VivienLu/UCAT requirements.txt). Three named variants:

* ``aa-paper``: APGD-CE + APGD-DLR, 100 iterations, 1 restart: what the UCAT, TeCoA and TGA-ZSR
  papers call "AutoAttack" (``version='standard'`` with ``attacks_to_run`` overridden,
  VivienLu/UCAT attacks.py:121-132, main.py:457-461; APGD-CE alone on the binary PCAM).
* ``aa-standard``: the real standard AutoAttack, APGD-CE, APGD-T, FAB-T and Square with the
  original hyperparameters (fra31/auto-attack autoattack.py:302-319).
* ``aa-robustvlm``: the composition FARE's CLIP_benchmark fork runs, APGD-CE with 5 restarts +
  APGD-T (9 target classes, 1 restart), 100 iterations, ``version='custom'`` (chs20/RobustVLM
  CLIP_benchmark/clip_benchmark/metrics/zeroshot_classification.py:128-136, autoattack/autoattack.py:34-49).

Iterations: any ``n_iter`` gets exactly the step-size schedule pyautoattack builds for it. The
checkpoints (``n_iter_2``, ``n_iter_min``, ``size_decr``) are computed in ``APGDAttack.__init__``
(autopgd_base.py:153-155), so the APGD objects are constructed for ``n_iter`` (every other setting
copied from what ``AutoAttack`` built) rather than having ``n_iter`` patched in afterwards, which
kept the 100-iteration checkpoints and never halved the step of a shorter run.

Restarts: ``restarts=R`` sets ``n_restarts`` of APGD-CE/-DLR and of APGD-T (per target class);
FAB-T always runs 1 (pyautoattack sets ``fab.n_restarts = 1`` for it), Square 1 (standard).

Classes: each component needs a minimum number of classes (:data:`MIN_CLASSES`: DLR divides by
z_(1) - z_(3), the targeted DLR by z_(1) - (z_(3) + z_(4))/2, autopgd_base.py:191-197, 596-600;
pyautoattack checks.py:117-135 only warns). With fewer, the adapter runs the defined subset, in the
original order, and records it (``notes``, ``config()["ran"]``): 3 classes run APGD-CE, APGD-DLR,
FAB-T and Square (no APGD-T); 2 classes APGD-CE, FAB-T and Square. Target counts are
``min(9, C - 1)``. AutoAttack runs its cascade itself (only still-robust points are attacked further).
"""
from __future__ import annotations

import logging
from typing import Dict, List, Optional

import torch
import torch.nn as nn
from pyautoattack import AutoAttack
from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted

from ..errors import ConfigError
from .base import ATTACKS, Attack, num_classes_of
from .options import check_iterations

_NORMS = {"linf": "Linf", "l2": "L2"}

#: fewest classes each AutoAttack component is defined for (see the module docstring)
MIN_CLASSES: Dict[str, int] = {"apgd-ce": 2, "apgd-dlr": 3, "apgd-t": 4, "fab": 2, "fab-t": 2, "square": 2}


class _Logits(nn.Module):
    """The classifier as a plain float32 logits model (what AutoAttack's ``predict`` expects)."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x).float()                                    # (B, C)


class _Collect(logging.Handler):
    """AutoAttack's warnings into ``notes``; its class-count check is left out, the plan decides that
    (it warns about the targeted DLR even when only the untargeted one runs)."""

    def __init__(self, sink: List[str]):
        super().__init__(level=logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        if record.funcName != "check_n_classes":
            self.sink.append(f"autoattack: {record.getMessage()}")


def rescheduled(apgd: APGDAttack, n_iter: int, **changes) -> APGDAttack:
    """A fresh APGD (or APGD-T) for ``n_iter`` iterations, every other setting copied from ``apgd``.

    Constructing it is what gives ``n_iter`` its own checkpoint schedule (``n_iter_2``,
    ``n_iter_min``, ``size_decr``; fra31/auto-attack autopgd_base.py:153-155). ``changes``
    override constructor arguments (``n_restarts``, ``n_target_classes``).
    """
    kw = dict(norm=apgd.norm, n_restarts=apgd.n_restarts, eps=apgd.eps, seed=apgd.seed, eot_iter=apgd.eot_iter,
              rho=apgd.thr_decr, topk=apgd.topk, verbose=apgd.verbose, device=apgd.device,
              use_largereps=apgd.use_largereps, is_tf_model=apgd.is_tf_model, logger=apgd.logger)
    if isinstance(apgd, APGDAttack_targeted):
        kw["n_target_classes"] = apgd.n_target_classes
    else:
        kw["loss"] = apgd.loss
    kw.update(changes)
    fresh = type(apgd)(apgd.model, n_iter=int(n_iter), **kw)
    fresh.use_rs = apgd.use_rs
    return fresh


class AutoAttackAdapter(Attack):
    """Base of the AutoAttack variants (see the module docstring).

    Args:
        eps: radius, fraction of [0,1].
        step_size, steps: accepted for the common constructor and ignored: AutoAttack is
            parameter-free and uses its own step sizes; ``n_iter`` (default 100, the original)
            sets its iterations.
        norm: ``"linf"`` or ``"l2"``.
        n_iter: APGD/FAB iterations (>= 1), with pyautoattack's schedule for that count.
        n_queries: Square's query budget (default 5000, the original).
        seed: AutoAttack's seed (its global-RNG seeding is confined to the call).
        restarts: ``n_restarts`` of APGD-CE/-DLR and APGD-T; None: the variant's own
            (:attr:`apgd_restarts`, :attr:`apgd_t_restarts`).
    """

    name = "autoattack"
    uses_backward = True   # FAB calls .backward(): parameter grads are saved and restored
    at_least_as_strong_as = ("pgd",)
    attacks_to_run: List[str] = []
    #: n_restarts of APGD-CE/-DLR and APGD-T when ``restarts`` is not given (standard version: 1 and 1)
    apgd_restarts: int = 1
    apgd_t_restarts: int = 1

    def __init__(self, eps: float, step_size: float = 0.0, steps: int = 100, norm: str = "linf",
                 n_iter: int = 100, n_queries: int = 5000, seed: int = 0, restarts: Optional[int] = None):
        super().__init__(eps, 0.0, int(n_iter), norm)
        check_iterations(self.name, "n_iter", n_iter)
        if int(n_queries) < 1:
            raise ConfigError("attack_options", f"{self.name}.n_queries must be >= 1, got {n_queries}")
        if restarts is not None and int(restarts) < 1:
            raise ConfigError("restarts", f"must be >= 1, got {restarts}")
        self.n_iter = int(n_iter)
        self.n_queries = int(n_queries)
        self.seed = int(seed)
        self.restarts = None if restarts is None else int(restarts)
        self.last_run: List[str] = []

    def restarts_of(self) -> Dict[str, int]:
        """n_restarts per component as they run (FAB-T and Square always 1)."""
        r = self.restarts
        return {"apgd": r or self.apgd_restarts, "apgd-t": r or self.apgd_t_restarts, "fab-t": 1, "square": 1}

    def config(self) -> Dict[str, object]:
        return {"name": self.name, "eps": self.eps, "norm": self.norm, "n_iter": self.n_iter,
                "n_queries": self.n_queries, "seed": self.seed, "restarts": self.restarts_of(),
                "attacks": list(self.attacks_to_run), "ran": list(self.last_run), "package": "pyautoattack"}

    def plan(self, n_classes: int) -> List[str]:
        """The components defined for ``n_classes`` classes, in the original order (:data:`MIN_CLASSES`)."""
        return [a for a in self.attacks_to_run if n_classes >= MIN_CLASSES[a]]

    def build(self, model: nn.Module, device: torch.device, n_classes: int) -> AutoAttack:
        """The configured ``pyautoattack.AutoAttack`` for ``model`` (logits) with ``n_classes`` classes."""
        aa = AutoAttack(model, device=device, eps=self.eps, norm=_NORMS[self.norm], seed=self.seed,
                        version="standard")
        aa.attacks_to_run = self.plan(n_classes)
        n_targets = max(1, min(9, n_classes - 1))
        restarts = self.restarts_of()
        aa.apgd = rescheduled(aa.apgd, self.n_iter, n_restarts=restarts["apgd"])
        aa.apgd_targeted = rescheduled(aa.apgd_targeted, self.n_iter, n_restarts=restarts["apgd-t"],
                                       n_target_classes=n_targets)
        aa.fab.n_iter = self.n_iter
        aa.fab.n_target_classes = n_targets
        aa.square.n_queries = self.n_queries
        return aa

    def _note_plan(self, n_classes: int, planned: List[str]) -> None:
        dropped = [a for a in self.attacks_to_run if a not in planned]
        if dropped:
            need = ", ".join(f"{a} needs >= {MIN_CLASSES[a]}" for a in dropped)
            ran = "+".join(planned) or "nothing"
            self.notes.append(f"{n_classes} classes ({need}): ran {ran} instead of {'+'.join(self.attacks_to_run)}")

    def perturb(self, classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        model = _Logits(classifier)
        with torch.no_grad():
            n_classes = num_classes_of(classifier, model(images[:1]))
        planned = self.plan(n_classes)
        self._note_plan(n_classes, planned)
        self.last_run = planned
        if not planned:                     # one class: nothing can be misclassified
            return images.clone()
        aa = self.build(model, images.device, n_classes)
        logger = logging.getLogger("auto-attack")
        handler = _Collect(self.notes)
        logger.addHandler(handler)
        devices = [images.device] if images.device.type == "cuda" else []
        requires = [(p, p.requires_grad) for p in classifier.parameters()]
        try:
            for p, _ in requires:          # no parameter gradients are needed for an input attack
                p.requires_grad_(False)
            with torch.random.fork_rng(devices=devices):
                x_adv, _ = aa.run_standard_evaluation(images, labels, batch_size=images.shape[0])
        finally:
            for p, flag in requires:
                p.requires_grad_(flag)
            logger.removeHandler(handler)
        return x_adv.detach().float()


@ATTACKS.register("aa-paper")
class AutoAttackPaper(AutoAttackAdapter):
    """AutoAttack as the UCAT/TeCoA/TGA-ZSR papers ran it: APGD-CE + APGD-DLR, 100 iterations, 1 restart
    (Croce & Hein, ICML 2020, arXiv 2003.01690; VivienLu/UCAT attacks.py:121-132, main.py:457-461)."""

    name = "aa-paper"
    attacks_to_run = ["apgd-ce", "apgd-dlr"]


@ATTACKS.register("aa-standard")
class AutoAttackStandard(AutoAttackAdapter):
    """Standard AutoAttack: APGD-CE, APGD-T, FAB-T, Square with the original hyperparameters
    (Croce & Hein, ICML 2020, arXiv 2003.01690; fra31/auto-attack autoattack.py:302-319)."""

    name = "aa-standard"
    attacks_to_run = ["apgd-ce", "apgd-t", "fab-t", "square"]


@ATTACKS.register("aa-robustvlm")
class AutoAttackRobustVLM(AutoAttackAdapter):
    """AutoAttack as FARE's CLIP_benchmark fork runs it: APGD-CE (5 restarts) + APGD-T (9 targets, 1 restart),
    100 iterations (Schlarmann et al., ICML 2024; chs20/RobustVLM
    CLIP_benchmark/clip_benchmark/metrics/zeroshot_classification.py:128-136, autoattack/autoattack.py:34-49)."""

    name = "aa-robustvlm"
    attacks_to_run = ["apgd-ce", "apgd-t"]
    apgd_restarts = 5


__all__ = ["MIN_CLASSES", "AutoAttackAdapter", "AutoAttackPaper", "AutoAttackRobustVLM", "AutoAttackStandard",
           "rescheduled"]
