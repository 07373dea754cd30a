"""Sanity checks recorded in every result, and checks across the results of one (model, dataset).

As AutoAttack keeps its checks in ``checks.py`` (fra31/auto-attack autoattack/checks.py), the
evaluator's are here: per result (eps = 0 leaves the logits unchanged; robust accuracy is not
above clean; every metric that must be finite is), and across results (an attack declared at
least as strong as another is not above it beyond noise; robust accuracy does not rise with eps
beyond noise). A failed check is recorded in the result (``sanity.checks``), warned, and shown as
``WARN`` in the summary; a non-finite metric also makes the run exit non-zero.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Dict, List, Tuple

import torch

from ..attacks import ATTACKS
from ..units import fmt_eps
from .table import METRICS, SPLITS

ResultKey = Tuple[str, float]           # (attack, eps)


def noise(p: float, n: int) -> float:
    """Two binomial standard errors (at least one sample): what 'beyond noise' means."""
    return max(1.0 / max(n, 1), 2.0 * math.sqrt(max(p * (1 - p), 0.0) / max(n, 1)))


def non_finite_keys(result: Dict[str, Any]) -> List[str]:
    """``"clean.ece"``-style keys of every metric whose value is NaN, infinite or missing."""
    bad = []
    for split in SPLITS:
        for m in METRICS:
            if m.derived or (m.fn is None and m.key not in result[split]):   # filled on request only
                continue
            v = result[split].get(m.key)
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                bad.append(f"{split}.{m.key}")
    return bad


def _undefined_ok(key: str) -> bool:
    """AUROC is undefined (NaN) when every point is an error or none is: not a failure."""
    return key.split(".", 1)[1].startswith("auroc_")


def sanity_checks(result: Dict[str, Any], clean_logits: torch.Tensor, adv_logits: torch.Tensor) -> Dict[str, Any]:
    """``{"checks": {name: ok}, "warnings": [...], "non_finite": [...]}`` of one result."""
    checks: Dict[str, Any] = {}
    warn: List[str] = []
    clean, robust = result["clean"]["accuracy"], result["adv"]["accuracy"]
    bad = non_finite_keys(result)
    finite_logits = bool(torch.isfinite(clean_logits).all() and torch.isfinite(adv_logits).all())
    checks["finite"] = finite_logits and all(_undefined_ok(k) for k in bad)
    if not checks["finite"]:
        what = "the logits hold NaN or infinity; " if not finite_logits else ""
        warn.append(f"{what}non-finite metrics: {', '.join(k for k in bad if not _undefined_ok(k))}")
    if result["eps"] == 0:
        same = torch.equal(clean_logits, adv_logits)
        checks["eps0_robust_equals_clean"] = bool(same and clean == robust)
        if not checks["eps0_robust_equals_clean"]:
            warn.append(f"eps = 0 but robust accuracy {robust:.4f} != clean {clean:.4f}")
    checks["robust_le_clean"] = bool(robust <= clean + 1e-12)
    if not checks["robust_le_clean"]:
        warn.append(f"robust accuracy {robust:.4f} is above clean {clean:.4f}: the attack made some wrong "
                    f"points right (a weak or broken attack?)")
    return {"checks": checks, "warnings": warn, "non_finite": bad}


def cross_checks(results: Dict[ResultKey, Dict[str, Any]], where: str,
                 save: Callable[[ResultKey, Dict[str, Any]], None]) -> None:
    """Checks across the results of one (model, dataset); a result whose checks changed is ``save``d."""

    def record(key: ResultKey, check: str, ok: bool, msg: str) -> None:
        res = results[key]
        if res["sanity"]["checks"].get(check) == ok:
            return
        res["sanity"]["checks"][check] = bool(ok)
        if not ok:
            res["sanity"]["warnings"].append(msg)
            warnings.warn(f"{where}: {msg}", stacklevel=3)
        save(key, res)

    for (name, eps), res in results.items():
        r, n = res["adv"]["accuracy"], res["counts"]["n"]
        for ref in getattr(ATTACKS.get(name), "at_least_as_strong_as", ()):
            other = results.get((ref, eps))
            if other is not None:
                r_ref = other["adv"]["accuracy"]
                record((name, eps), f"robust_not_above_{ref}", r <= r_ref + noise(r_ref, n),
                       f"{name} robust accuracy {r:.4f} is above {ref}'s {r_ref:.4f} beyond noise")
        smaller = [e for (a, e) in results if a == name and e < eps]
        if smaller:
            e0 = max(smaller)
            r0 = results[(name, e0)]["adv"]["accuracy"]
            record((name, eps), "robust_monotone_in_eps", r <= r0 + noise(r0, n),
                   f"{name} robust accuracy {r:.4f} at eps {fmt_eps(eps)} is above {r0:.4f} at eps {fmt_eps(e0)} "
                   f"beyond noise")
