"""Calibration beyond one ECE: more estimators, intervals, and the temperature-scaling baseline.

Pure functions over whole-dataset tensors, as :mod:`ucat.metrics`: probabilities (N, C),
labels (N,) int64, logits (N, C). Bins follow :func:`ucat.metrics.reliability_bins` (right-closed,
confidence 1.0 in the last bin; ``binning="mass"`` = equal-count bins).

References:
    Guo et al., "On Calibration of Modern Neural Networks", ICML 2017 (temperature scaling).
    Kumar, Liang & Ma, "Verified Uncertainty Calibration", NeurIPS 2019 (the debiased L2
        estimator; their ``calibration`` package's ``unbiased_l2_ce``).
    Nixon et al., "Measuring Calibration in Deep Learning", CVPR-W 2019 (classwise and adaptive,
        equal-mass, calibration errors; RMS calibration error).
    Kull et al., "Beyond temperature scaling", NeurIPS 2019 (classwise ECE).
    Efron & Tibshirani, "An Introduction to the Bootstrap", 1993 (percentile intervals).
"""
from __future__ import annotations

import math
from typing import Callable, Dict, List, Sequence, Tuple

import torch

from .errors import ConfigError, NonFiniteError
from .metrics import ece, reliability_bins

#: the fewest images a temperature is fitted on; below this the fit is noise.
MIN_FIT_SAMPLES = 20
_BETA_RANGE = (1e-3, 1e3)          # inverse temperatures searched: T in [1e-3, 1e3]


def _bins_with_counts(probs: torch.Tensor, labels: torch.Tensor, n_bins: int, binning: str):
    b = reliability_bins(probs, labels, n_bins, binning)
    return [(c, a, n) for c, a, n in zip(b["confidence"], b["accuracy"], b["count"]) if n > 0]


def rms_calibration_error(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15,
                          binning: str = "width") -> float:
    """RMS (L2) calibration error of the top-1 prediction: sqrt(sum_b n_b/N (acc_b - conf_b)^2)."""
    bins = _bins_with_counts(probs, labels, n_bins, binning)
    total = sum(n for _, _, n in bins)
    return math.sqrt(sum(n * (c - a) ** 2 for c, a, n in bins) / total)


def adaptive_ece(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """Top-label ECE over equal-mass (adaptive) bins: every bin holds ~N/n_bins images (Nixon et al.)."""
    return ece(probs, labels, n_bins, binning="mass")


def classwise_ece(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """Classwise ECE (Kull et al. 2019; Nixon et al.'s SCE): the mean over classes c of the ECE of the
    scores p_ic against the events y_i = c, each over ``n_bins`` equal-width bins of p_ic."""
    p = probs.double().cpu()                                               # (N, C)
    y = labels.cpu()
    n, c = p.shape
    edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64)
    idx = (torch.searchsorted(edges, p.contiguous(), right=False) - 1).clamp(0, n_bins - 1)   # (N, C)
    hit = torch.nn.functional.one_hot(y, c).double()                       # (N, C)
    total = 0.0
    for k in range(c):
        conf = torch.bincount(idx[:, k], weights=p[:, k], minlength=n_bins)
        freq = torch.bincount(idx[:, k], weights=hit[:, k], minlength=n_bins)
        total += float((conf - freq).abs().sum()) / n                     # sum_b n_b/N |mean p - freq|
    return total / c


def debiased_l2_calibration_error(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """Kumar et al.'s debiased estimate of the top-label L2 calibration error (equal-mass bins).

    Per bin b with n_b >= 2 images: (conf_b - acc_b)^2 - acc_b (1 - acc_b) / (n_b - 1) removes the
    plug-in estimate's sampling bias; the bins are weighted by n_b / N, the sum clipped at 0 and
    square-rooted (bins with one image contribute 0), as their ``unbiased_l2_ce``.
    """
    bins = _bins_with_counts(probs, labels, n_bins, "mass")
    total = sum(n for _, _, n in bins)
    est = sum(n / total * ((c - a) ** 2 - a * (1 - a) / (n - 1)) for c, a, n in bins if n >= 2)
    return math.sqrt(max(est, 0.0))


# ----------------------------------------------------------------------------- intervals

def bootstrap_interval(metric: Callable[[torch.Tensor, torch.Tensor], float], logits: torch.Tensor,
                       labels: torch.Tensor, n_boot: int = 1000, seed: int = 0,
                       level: float = 0.95) -> Tuple[float, float]:
    """Percentile bootstrap interval of ``metric(logits, labels)`` over images resampled with
    replacement (seeded: the same call gives the same interval)."""
    return bootstrap_mean_interval(metric, [(logits, labels)], n_boot, seed, level)


def bootstrap_mean_interval(metric: Callable[[torch.Tensor, torch.Tensor], float],
                            sets: Sequence[Tuple[torch.Tensor, torch.Tensor]], n_boot: int = 1000,
                            seed: int = 0, level: float = 0.95) -> Tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``metric`` over several datasets (the
    "Average" row), each dataset resampled independently in every replicate."""
    if not 0 < level < 1:
        raise ConfigError("level", f"must be in (0, 1), got {level}")
    if n_boot < 10:
        raise ConfigError("n_boot", f"must be >= 10, got {n_boot}")
    g = torch.Generator().manual_seed(int(seed))
    values: List[float] = []
    for _ in range(n_boot):
        reps = []
        for logits, labels in sets:
            i = torch.randint(0, labels.shape[0], (labels.shape[0],), generator=g)   # (N,)
            reps.append(metric(logits[i], labels[i]))
        values.append(sum(reps) / len(reps))
    v = torch.tensor(values, dtype=torch.float64)
    lo, hi = torch.quantile(v, torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)).tolist()
    return float(lo), float(hi)


def bootstrap_replicates(metrics: Dict[str, Callable[[torch.Tensor, torch.Tensor], float]], logits: torch.Tensor,
                         labels: torch.Tensor, n_boot: int = 1000, seed: int = 0) -> Dict[str, torch.Tensor]:
    """(n_boot,) replicate values of every metric, all on the same seeded resamples of the images
    (so that several datasets' replicates can be averaged index by index for the Average row)."""
    if n_boot < 10:
        raise ConfigError("n_boot", f"must be >= 10, got {n_boot}")
    g = torch.Generator().manual_seed(int(seed))
    out = {name: torch.empty(n_boot, dtype=torch.float64) for name in metrics}
    for b in range(n_boot):
        i = torch.randint(0, labels.shape[0], (labels.shape[0],), generator=g)       # (N,)
        for name, fn in metrics.items():
            out[name][b] = fn(logits[i], labels[i])
    return out


def percentile_interval(values: torch.Tensor, level: float = 0.95) -> Tuple[float, float]:
    """The percentile interval of bootstrap replicate ``values`` (NaN replicates left out)."""
    v = values.double()
    v = v[~torch.isnan(v)]
    if v.numel() == 0:
        return float("nan"), float("nan")
    lo, hi = torch.quantile(v, torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)).tolist()
    return float(lo), float(hi)


# ----------------------------------------------------------------------------- temperature scaling

def held_out_split(n: int, fraction: float, seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(fitting positions, evaluated positions): a seeded random ``fraction`` of ``n`` images held out."""
    g = torch.Generator().manual_seed(int(seed) + 15485863)
    perm = torch.randperm(n, generator=g)
    n_fit = max(MIN_FIT_SAMPLES, int(round(n * fraction)))
    if n_fit >= n:
        raise ValueError(f"the oracle temperature needs more images: {n} evaluated, {n_fit} to hold out for the fit "
                         f"(at least {MIN_FIT_SAMPLES}) leave none to evaluate; evaluate more images or use the "
                         f"zero-shot setting with a calibration set")
    return perm[:n_fit].sort().values, perm[n_fit:].sort().values


def _check_fit_input(logits: torch.Tensor, labels: torch.Tensor) -> None:
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ConfigError("logits", f"expected (N, C) logits and (N,) labels, got {tuple(logits.shape)} "
                                    f"and {tuple(labels.shape)}")
    if logits.shape[1] < 2:
        raise ConfigError("logits", "have one class: a temperature cannot be fitted on a one-class set")
    if logits.shape[0] < MIN_FIT_SAMPLES:
        raise ConfigError("logits", f"hold {logits.shape[0]} images; fitting a temperature needs at least "
                                    f"{MIN_FIT_SAMPLES}: use a larger calibration set")
    if not torch.isfinite(logits).all():
        raise NonFiniteError("the calibration logits contain NaN or infinity; the model or the attack "
                             "diverged: fix that before fitting a temperature")
    if labels.unique().numel() < 2:
        raise ConfigError("labels", "of the calibration set hold a single class: a temperature fitted there "
                                    "says nothing about the others; use a set with several classes")


def nll_at(logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> float:
    """Mean NLL of softmax(logits / T) in float64."""
    return float(torch.nn.functional.cross_entropy(logits.double() / temperature, labels))


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> Dict[str, float]:
    """The temperature T minimizing the NLL of softmax(logits / T) on (logits, labels) (Guo et al.).

    Exact and deterministic: the NLL is convex in beta = 1/T (a log-sum-exp of functions linear in
    beta, minus a linear term), so a safeguarded Newton iteration on beta in float64 (bisection on
    the sign of the derivative when a Newton step leaves the bracket) finds the minimum to 1e-12.
    If the NLL still falls at the bracket's end (e.g. every image correct with a margin) the end
    is returned, flagged ``at_bound``. The fitted NLL is never above the NLL at T = 1.

    Returns ``{"temperature", "nll_before" (T=1), "nll_after", "at_bound", "n"}``.
    """
    _check_fit_input(logits, labels)
    z = logits.double().cpu()                                            # (N, C)
    zy = z.gather(1, labels.cpu().view(-1, 1)).squeeze(1)                # (N,)

    def grad_hess(beta: float) -> Tuple[float, float]:
        p = torch.softmax(beta * z, -1)                                  # (N, C)
        mean = (p * z).sum(-1)                                           # E_p[z]  (N,)
        var = (p * z * z).sum(-1) - mean ** 2                            # Var_p[z] (N,)
        return float((mean - zy).mean()), float(var.clamp_min(0).mean())

    lo, hi = _BETA_RANGE
    g_lo, g_hi = grad_hess(lo)[0], grad_hess(hi)[0]
    at_bound = False
    if g_lo >= 0 and g_hi <= 0:           # convex and flat over the bracket: every T fits equally
        beta = 1.0
    elif g_hi <= 0:                       # still falling at T = 1e-3 (e.g. all right with a margin)
        beta, at_bound = hi, True
    elif g_lo >= 0:                       # still falling at T = 1e3
        beta, at_bound = lo, True
    else:
        beta = 1.0
        for _ in range(200):
            g, h = grad_hess(beta)
            if abs(g) < 1e-12:
                break
            if g > 0:
                hi = beta
            else:
                lo = beta
            step = beta - g / h if h > 0 else None
            beta = step if step is not None and lo < step < hi else 0.5 * (lo + hi)
            if hi - lo < 1e-14 * max(1.0, beta):
                break
    before, after = nll_at(z, labels, 1.0), nll_at(z, labels, 1.0 / beta)
    if after > before:                     # cannot happen for an exact minimum; kept as a guarantee
        beta, after = 1.0, before
    return {"temperature": 1.0 / beta, "nll_before": before, "nll_after": after, "at_bound": at_bound,
            "n": int(labels.shape[0])}
