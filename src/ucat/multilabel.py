"""Multi-label metrics: mAP and precision / recall / F1 at top-k, per-label calibration.

Follows the official UCAT multi-label evaluation (VivienLu/UCAT main-multilabel.py,
``compute_multilabel_metrics`` at lines 113-206, used at 676-694 with ``top_k`` 3 and 5 on the raw
zero-shot logits): per-class average precision (scikit-learn's step-wise AP) over the images,
classes whose labels are all equal left out of the mean (NaN there); a prediction is the top-k
labels of an image; micro P/R/F1 pool every (image, label) decision, macro P/R/F1 average the
per-class ones (a class never predicted and never present counts 0, with the official eps).

One deliberate difference: the official script computes these per batch and averages the batch
values weighted by batch size (``AverageMeter.update(value, batch_size)``); ucat computes them once
over the whole set (a per-batch mAP is a different number). :func:`batch_mean` reproduces the
official aggregation for comparison with its tables.

Scores: AP ranks images per class, so any per-class monotone map of the logits (the logit scale,
a sigmoid) gives the same AP; top-k is per image and equally invariant. Calibration of
multi-label outputs is measured per label on sigmoid(logits / s) with s the logit scale (each
label an independent yes/no, as the BCE objective of the official multi-label attack reads the
logits; :func:`label_ece`).
"""
from __future__ import annotations

from typing import Callable, Dict, List

import torch

from .detection import aupr
from .errors import ConfigError

EPS = 1e-12


def _check(scores: torch.Tensor, targets: torch.Tensor) -> None:
    if scores.ndim != 2 or scores.shape != targets.shape:
        raise ConfigError("targets", f"must be multi-hot (N, C) like the scores, got {tuple(targets.shape)} "
                                     f"for scores {tuple(scores.shape)}")
    if scores.shape[0] == 0:
        raise ConfigError("scores", "hold no image")
    t = targets.cpu()
    if not torch.all((t == 0) | (t == 1)):
        raise ConfigError("targets", "must hold only 0 and 1")
    if not torch.isfinite(scores).all():
        raise ConfigError("scores", "contain NaN or infinity")


def average_precisions(scores: torch.Tensor, targets: torch.Tensor) -> List[float]:
    """Per-class AP of ranking the images by that class's score; NaN where the class's labels are all equal."""
    _check(scores, targets)
    out = []
    for c in range(scores.shape[1]):
        y = targets[:, c].bool()
        out.append(float("nan") if bool(y.all()) or not bool(y.any()) else aupr(scores[:, c], y))
    return out


def top_k_predictions(scores: torch.Tensor, k: int) -> torch.Tensor:
    """(N, C) 0/1: the k highest-scoring labels of each image (ties broken by torch.topk)."""
    k = min(int(k), scores.shape[1])
    if k < 1:
        raise ConfigError("top_k", f"must be >= 1, got {k}")
    pred = torch.zeros_like(scores, dtype=torch.long)
    return pred.scatter_(1, torch.topk(scores, k, dim=1).indices, 1)


def _prf(tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor):
    p = tp / torch.clamp(tp + fp, min=EPS)
    r = tp / torch.clamp(tp + fn, min=EPS)
    return p, r, 2 * p * r / torch.clamp(p + r, min=EPS)


def multilabel_metrics(scores: torch.Tensor, targets: torch.Tensor, top_k: int) -> Dict[str, float]:
    """mAP and micro/macro precision, recall and F1 of the top-k predictions, over the whole set."""
    _check(scores, targets)
    aps = torch.tensor(average_precisions(scores, targets), dtype=torch.float64)
    y = targets.long().cpu()
    pred = top_k_predictions(scores.double().cpu(), top_k)
    tp_c, fp_c = (y * pred).sum(0).double(), ((1 - y) * pred).sum(0).double()          # (C,)
    fn_c = (y * (1 - pred)).sum(0).double()
    micro = _prf(tp_c.sum(), fp_c.sum(), fn_c.sum())
    macro = [v.mean() for v in _prf(tp_c, fp_c, fn_c)]
    valid = ~torch.isnan(aps)
    return {"mAP": float(aps[valid].mean()) if valid.any() else float("nan"), "top_k": int(top_k),
            "micro_precision": float(micro[0]), "micro_recall": float(micro[1]), "micro_f1": float(micro[2]),
            "macro_precision": float(macro[0]), "macro_recall": float(macro[1]), "macro_f1": float(macro[2]),
            "n_classes_with_ap": int(valid.sum())}


def batch_mean(metric: Callable[[torch.Tensor, torch.Tensor], Dict[str, float]], scores: torch.Tensor,
               targets: torch.Tensor, batch_size: int) -> Dict[str, float]:
    """The official aggregation: ``metric`` per consecutive batch, averaged weighted by batch size
    (main-multilabel.py 676-694, ``AverageMeter.update(value, batch_size)``; a batch's NaN mAP,
    e.g. no class with both labels, propagates as it does there)."""
    sums: Dict[str, float] = {}
    n = 0
    for s in range(0, scores.shape[0], batch_size):
        part = metric(scores[s:s + batch_size], targets[s:s + batch_size])
        b = min(batch_size, scores.shape[0] - s)
        for k, v in part.items():
            sums[k] = sums.get(k, 0.0) + float(v) * b
        n += b
    return {k: v / n for k, v in sums.items()}


def label_ece(logits: torch.Tensor, targets: torch.Tensor, logit_scale: float, n_bins: int = 15) -> float:
    """Per-label ECE: every (image, label) is a yes/no forecast p = sigmoid(logit / s) of "label
    present", binned into ``n_bins`` equal-width right-closed bins over all labels pooled;
    sum_b n_b/(N C) |mean p - frequency of presence|."""
    _check(logits, targets)
    p = torch.sigmoid(logits.double().cpu() / float(logit_scale)).flatten()              # (N*C,)
    y = targets.double().cpu().flatten()
    edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64)
    idx = (torch.searchsorted(edges, p.contiguous(), right=False) - 1).clamp(0, n_bins - 1)
    conf = torch.bincount(idx, weights=p, minlength=n_bins)
    freq = torch.bincount(idx, weights=y, minlength=n_bins)
    return float((conf - freq).abs().sum() / p.numel())
