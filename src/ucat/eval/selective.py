"""Selective prediction under attack: abstain where the model is uncertain, with the threshold fixed
on clean held-out data and then applied to attacked data, as a deployed abstaining model faces it
(Geifman & El-Yaniv, "Selective Classification for Deep Neural Networks", NeurIPS 2017).

Per result: a seeded 20% of the evaluated images (the same split the oracle temperature uses) gives,
for each target risk, the largest threshold on 1 - max p whose clean selective risk is within the
target (:func:`ucat.detection.threshold_for_risk`); on the other 80% the coverage and risk it
yields are reported for the clean and the adversarial images. A model whose confidence survives
the attack keeps covering images at a risk far above the target.
"""
from __future__ import annotations

from typing import Any, Dict, Sequence

import torch

from ..calibration import held_out_split as oracle_split
from ..detection import selective_at_threshold, threshold_for_risk
from ..metrics import risk_coverage

TARGET_RISKS: Sequence[float] = (0.05, 0.10)
SCORE = "one_minus_max_prob"
HELD_OUT = 0.2


def selective_block(clean_logits: torch.Tensor, adv_logits: torch.Tensor, labels: torch.Tensor,
                    seed: int) -> Dict[str, Any]:
    """Coverage and risk at each target risk, clean and attacked, with the threshold from held-out clean images."""
    n = len(labels)
    out: Dict[str, Any] = {"score": SCORE, "held_out_fraction": HELD_OUT, "seed": seed, "targets": {}}
    try:
        fit, ev = oracle_split(n, HELD_OUT, seed)
    except ValueError:
        out["skipped"] = f"too few images ({n}) to hold out a threshold-fitting part"
        return out
    u = {k: 1 - torch.softmax(z.double(), -1).max(-1).values for k, z in (("clean", clean_logits), ("adv", adv_logits))}
    err = {k: z.argmax(-1) != labels for k, z in (("clean", clean_logits), ("adv", adv_logits))}
    for target in TARGET_RISKS:
        t = threshold_for_risk(u["clean"][fit], err["clean"][fit], target)
        out["targets"][f"{target:g}"] = {"threshold": t, **{k: selective_at_threshold(u[k][ev], err[k][ev], t)
                                                             for k in ("clean", "adv")}}
    return out


def curves(clean_logits: torch.Tensor, adv_logits: torch.Tensor, labels: torch.Tensor) -> Dict[str, Dict]:
    """Risk-coverage curves of 1 - max p (for the plot), clean and adversarial."""
    out = {}
    for name, z in (("clean", clean_logits), ("adversarial", adv_logits)):
        u = 1 - torch.softmax(z.double(), -1).max(-1).values
        out[name] = risk_coverage(u, z.argmax(-1) != labels)
    return out
