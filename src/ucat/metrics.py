"""Classification, calibration and selective-prediction metrics.

Pure functions over whole-dataset tensors: never per-batch averages (a per-batch ECE is a
different, wrong number). Inputs are CPU or device tensors; outputs are Python floats or dicts
of floats/lists. Probabilities are (N, C), labels (N,) int64.

References:
    Guo et al., "On Calibration of Modern Neural Networks", ICML 2017 (ECE, MCE, reliability).
    Naeini et al., "Obtaining Well Calibrated Probabilities Using Bayesian Binning", AAAI 2015.
    Brier, "Verification of forecasts expressed in terms of probability", 1950.
    Hendrycks & Gimpel, "A Baseline for Detecting Misclassified and OOD Examples", ICLR 2017 (AUROC).
    Geifman & El-Yaniv, "Selective Classification for Deep Neural Networks", NeurIPS 2017 (risk-coverage, AURC).
"""
from __future__ import annotations

from typing import Dict, List

import torch

BINNINGS = ("width", "mass")


def _check(probs: torch.Tensor, labels: torch.Tensor) -> None:
    if probs.ndim != 2:
        raise ValueError(f"expected probs of shape (N, C), got {tuple(probs.shape)}")
    if labels.ndim != 1 or labels.shape[0] != probs.shape[0]:
        raise ValueError(f"expected labels of shape ({probs.shape[0]},), got {tuple(labels.shape)}")
    if probs.shape[0] == 0:
        raise ValueError("metrics need at least one sample")


def accuracy(logits_or_probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy in [0, 1]."""
    _check(logits_or_probs, labels)
    return (logits_or_probs.argmax(-1) == labels).double().mean().item()


def _bin_edges(conf: torch.Tensor, n_bins: int, binning: str) -> torch.Tensor:
    if binning == "width":
        return torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64)
    if binning == "mass":
        q = torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64)
        edges = torch.quantile(conf.double().cpu(), q)
        edges[0], edges[-1] = 0.0, 1.0
        return edges
    raise ValueError(f"binning must be one of {BINNINGS}, got {binning!r}")


def reliability_bins(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15,
                     binning: str = "width") -> Dict[str, object]:
    """Per-bin mean confidence, accuracy and count of the top-1 prediction.

    Bins are (lo, hi], with the first bin closed at 0, so a confidence of exactly 1.0 belongs to
    the last bin (torchmetrics puts it in a hidden extra bin). ``binning="mass"`` uses quantile
    edges (equal-count bins). Empty bins have count 0 and NaN confidence/accuracy.
    """
    _check(probs, labels)
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    conf, pred = probs.double().max(-1)
    conf, correct = conf.cpu(), (pred == labels).double().cpu()
    edges = _bin_edges(conf, n_bins, binning)
    # index i such that edges[i] < conf <= edges[i+1]; conf == 0 goes to bin 0.
    idx = (torch.searchsorted(edges, conf, right=False) - 1).clamp(0, n_bins - 1)
    counts = torch.bincount(idx, minlength=n_bins).double()
    conf_sum = torch.bincount(idx, weights=conf, minlength=n_bins)
    acc_sum = torch.bincount(idx, weights=correct, minlength=n_bins)
    nonempty = counts > 0
    nan = torch.full_like(counts, float("nan"))
    return {
        "edges": edges.tolist(),
        "confidence": torch.where(nonempty, conf_sum / counts.clamp_min(1), nan).tolist(),
        "accuracy": torch.where(nonempty, acc_sum / counts.clamp_min(1), nan).tolist(),
        "count": counts.long().tolist(),
        "n_bins": n_bins,
        "binning": binning,
    }


def _gaps(bins: Dict[str, object]) -> List[tuple]:
    return [(abs(c - a), n) for c, a, n in zip(bins["confidence"], bins["accuracy"], bins["count"]) if n > 0]


def ece(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15, binning: str = "width") -> float:
    """Expected calibration error: sum_b (n_b / N) |acc_b - conf_b| over non-empty bins."""
    gaps = _gaps(reliability_bins(probs, labels, n_bins, binning))
    total = sum(n for _, n in gaps)
    return float(sum(g * n for g, n in gaps) / total)


def mce(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15, binning: str = "width") -> float:
    """Maximum calibration error: max_b |acc_b - conf_b| over non-empty bins."""
    return float(max(g for g, _ in _gaps(reliability_bins(probs, labels, n_bins, binning))))


def nll(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean negative log-likelihood of the labels under softmax(logits) (natural log)."""
    _check(logits, labels)
    return torch.nn.functional.cross_entropy(logits.double(), labels).item()


def brier(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Multi-class Brier score: mean_i sum_c (p_ic - 1[y_i = c])^2, in [0, 2]."""
    _check(probs, labels)
    onehot = torch.nn.functional.one_hot(labels, probs.shape[1]).double()
    return ((probs.double() - onehot) ** 2).sum(-1).mean().item()


def auroc(scores: torch.Tensor, errors: torch.Tensor) -> float:
    """Area under the ROC curve of ``scores`` for detecting ``errors`` (1 = misclassified).

    Higher score should mean "more likely an error" (e.g. an uncertainty). Ties count one half
    (Mann-Whitney U). Returns NaN when all points are errors or none is.
    """
    s = scores.double().flatten().cpu()
    e = errors.bool().flatten().cpu()
    if s.shape != e.shape:
        raise ValueError("auroc: scores and errors must have the same length")
    n_pos, n_neg = int(e.sum()), int((~e).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    # average ranks (1-based) with ties sharing their mean rank
    order = torch.argsort(s)
    sorted_s = s[order]
    ranks = torch.empty_like(s)
    uniq, inverse, counts = torch.unique_consecutive(sorted_s, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).double()
    avg_rank = ends - (counts.double() - 1) / 2
    ranks[order] = avg_rank[inverse]
    u = ranks[e].sum() - n_pos * (n_pos + 1) / 2
    return (u / (n_pos * n_neg)).item()


def risk_coverage(uncertainty: torch.Tensor, errors: torch.Tensor) -> Dict[str, List[float]]:
    """Selective risk at every coverage, keeping the most certain points first.

    Returns ``coverage`` (k/N for k = 1..N) and ``risk`` (error rate among the k most certain).
    Ties in uncertainty are broken by a stable sort on the input order.
    """
    u = uncertainty.double().flatten().cpu()
    e = errors.double().flatten().cpu()
    order = torch.sort(u, stable=True).indices
    cum_err = torch.cumsum(e[order], 0)
    k = torch.arange(1, len(u) + 1, dtype=torch.float64)
    return {"coverage": (k / len(u)).tolist(), "risk": (cum_err / k).tolist()}


def aurc(uncertainty: torch.Tensor, errors: torch.Tensor) -> float:
    """Area under the risk-coverage curve (mean selective risk over the N coverages); lower is better."""
    rc = risk_coverage(uncertainty, errors)
    return float(sum(rc["risk"]) / len(rc["risk"]))


def harmonic_mean(clean_acc: float, robust_acc: float) -> float:
    """The paper's H: harmonic mean of (averaged) clean and robust accuracy; 0 when both are 0."""
    if clean_acc < 0 or robust_acc < 0:
        raise ValueError("harmonic_mean: accuracies must be >= 0")
    s = clean_acc + robust_acc
    return 0.0 if s == 0 else 2.0 * clean_acc * robust_acc / s


def calibration_report(logits: torch.Tensor, labels: torch.Tensor, n_bins: int = 15,
                       binning: str = "width") -> Dict[str, object]:
    """Accuracy, ECE, MCE, NLL and Brier of softmax(logits), with the bin settings recorded."""
    probs = torch.softmax(logits.double(), -1)
    return {
        "accuracy": accuracy(logits, labels),
        "ece": ece(probs, labels, n_bins, binning),
        "mce": mce(probs, labels, n_bins, binning),
        "nll": nll(logits, labels),
        "brier": brier(probs, labels),
        "n": int(labels.shape[0]),
        "bins": {"n_bins": n_bins, "binning": binning},
    }
