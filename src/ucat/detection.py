"""Deciding from uncertainty: out-of-distribution detection scores and selective prediction with a
threshold fixed on clean held-out data.

Pure functions over whole-set tensors; a higher ``score`` means "more likely positive" (an OOD
image, an error), e.g. an uncertainty measure.

References:
    Hendrycks & Gimpel, "A Baseline for Detecting Misclassified and Out-of-Distribution Examples
        in Neural Networks", ICLR 2017 (AUROC, AUPR with OOD as positives).
    Liang, Li & Srikant, "Enhancing the Reliability of Out-of-distribution Image Detection in
        Neural Networks" (ODIN), ICLR 2018 (FPR at 95% TPR).
    Geifman & El-Yaniv, "Selective Classification for Deep Neural Networks", NeurIPS 2017
        (a threshold chosen for a target risk on held-out data, then applied).
"""
from __future__ import annotations

from typing import Dict

import torch

from .errors import ConfigError
from .metrics import auroc


def _scores_and_labels(in_scores: torch.Tensor, out_scores: torch.Tensor):
    s_in, s_out = in_scores.double().flatten().cpu(), out_scores.double().flatten().cpu()
    if s_in.numel() == 0 or s_out.numel() == 0:
        raise ConfigError("scores", "need at least one in-distribution and one out-of-distribution image")
    if not (torch.isfinite(s_in).all() and torch.isfinite(s_out).all()):
        raise ConfigError("scores", "contain NaN or infinity")
    scores = torch.cat([s_in, s_out])                                       # (N_in + N_out,)
    positive = torch.cat([torch.zeros(len(s_in)), torch.ones(len(s_out))]).bool()
    return scores, positive


def aupr(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """Area under the precision-recall curve as average precision: sum_k (R_k - R_{k-1}) P_k over
    the distinct thresholds, highest first (ties enter together), as scikit-learn's
    ``average_precision_score``."""
    s, y = scores.double().flatten().cpu(), positive.bool().flatten().cpu()
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    order = torch.argsort(s, descending=True, stable=True)
    s, y = s[order], y[order].double()
    tp, fp = torch.cumsum(y, 0), torch.cumsum(1 - y, 0)
    last = torch.ones_like(s, dtype=torch.bool)                             # last index of each tie group
    last[:-1] = s[1:] != s[:-1]
    tp, fp = tp[last], fp[last]
    precision, recall = tp / (tp + fp), tp / n_pos
    prev = torch.cat([torch.zeros(1, dtype=torch.float64), recall[:-1]])
    return float(((recall - prev) * precision).sum())


def fpr_at_tpr(scores: torch.Tensor, positive: torch.Tensor, tpr: float = 0.95) -> float:
    """The false-positive rate at the lowest threshold whose true-positive rate reaches ``tpr``."""
    s, y = scores.double().flatten().cpu(), positive.bool().flatten().cpu()
    pos, neg = s[y], s[~y]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    k = int(torch.ceil(torch.tensor(tpr * len(pos))).item())               # positives to flag
    threshold = torch.sort(pos, descending=True).values[max(k, 1) - 1]       # flag score >= threshold
    return float((neg >= threshold).double().mean())


def ood_scores(in_scores: torch.Tensor, out_scores: torch.Tensor) -> Dict[str, float]:
    """AUROC, AUPR (OOD as the positive class) and FPR at 95% TPR of telling ``out`` from ``in``
    with one score per image (higher = more likely out of distribution)."""
    scores, positive = _scores_and_labels(in_scores, out_scores)
    return {"auroc": auroc(scores, positive), "aupr": aupr(scores, positive),
            "fpr_at_95_tpr": fpr_at_tpr(scores, positive, 0.95),
            "n_in": int((~positive).sum()), "n_out": int(positive.sum())}


def threshold_for_risk(uncertainty: torch.Tensor, errors: torch.Tensor, target_risk: float) -> float:
    """The largest uncertainty threshold t such that keeping the images with uncertainty <= t has a
    selective risk (error rate among the kept) of at most ``target_risk``; -inf if none has.

    Chosen on clean held-out data, then applied unchanged to the data a deployed model faces.
    """
    if not 0 <= target_risk <= 1:
        raise ConfigError("target_risk", f"must be in [0, 1], got {target_risk}")
    u, e = uncertainty.double().flatten().cpu(), errors.double().flatten().cpu()
    order = torch.argsort(u, stable=True)
    u, e = u[order], e[order]
    k = torch.arange(1, len(u) + 1, dtype=torch.float64)
    risk = torch.cumsum(e, 0) / k                                            # risk when keeping the k most certain
    last = torch.ones_like(u, dtype=torch.bool)                              # thresholds between distinct values
    last[:-1] = u[1:] != u[:-1]
    ok = (risk <= target_risk + 1e-12) & last
    return float(u[ok].max()) if ok.any() else float("-inf")


def selective_at_threshold(uncertainty: torch.Tensor, errors: torch.Tensor, threshold: float) -> Dict[str, float]:
    """Coverage and selective risk when abstaining on every image with uncertainty above ``threshold``."""
    u, e = uncertainty.double().flatten().cpu(), errors.double().flatten().cpu()
    keep = u <= threshold
    n_keep = int(keep.sum())
    return {"coverage": n_keep / max(len(u), 1), "risk": float(e[keep].mean()) if n_keep else float("nan"),
            "threshold": float(threshold), "n": int(len(u))}
