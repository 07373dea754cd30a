"""Post-hoc temperature scaling in ``ucat eval`` (Guo et al., ICML 2017), the baseline every
calibration claim must beat; Tu et al. (ICML 2024) found it improves vision-language models'
calibration from few examples.

One temperature T is fitted by exact NLL minimization (:func:`ucat.calibration.fit_temperature`)
on images that are never evaluated, then every calibration metric is recomputed on softmax(z / T):

* ``oracle``: per dataset, a seeded ``fraction`` of the evaluated images is held out to fit T and
  the metrics (before and after) are computed on the rest; the split is recorded. The upper bound.
* ``zero-shot``: one T per model (and per attack when fitted on adversarial logits) from a
  calibration set the user names (e.g. the training distribution's held-out split), applied to
  every evaluated dataset; refused when it is one of the evaluated sets (same name and split).

``fit="clean"`` fits on clean logits (what a deployer has); ``fit="adversarial"`` on the same
attack's adversarial logits of the fitting images.
"""
from __future__ import annotations

from typing import Any, Dict, Tuple

import torch

from .. import calibration as K
from .. import metrics as M

SETTINGS = ("oracle", "zero-shot")
FITS = ("clean", "adversarial")


def oracle_split(n: int, fraction: float, seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(fitting positions, evaluated positions): a seeded random ``fraction`` of ``n`` images held out."""
    g = torch.Generator().manual_seed(int(seed) + 15485863)
    perm = torch.randperm(n, generator=g)
    n_fit = max(K.MIN_FIT_SAMPLES, int(round(n * fraction)))
    if n_fit >= n:
        raise ValueError(f"the oracle temperature needs more images: {n} evaluated, {n_fit} to hold out for the fit "
                         f"(at least {K.MIN_FIT_SAMPLES}) leave none to evaluate; evaluate more images or use the "
                         f"zero-shot setting with a calibration set")
    return perm[:n_fit].sort().values, perm[n_fit:].sort().values


def scaled_metrics(logits: torch.Tensor, labels: torch.Tensor, temperature: float, n_bins: int,
                   binning: str) -> Dict[str, float]:
    """Every calibration metric of softmax(logits / T)."""
    z = logits.double() / float(temperature)
    p = torch.softmax(z, -1)
    rep = M.calibration_report(z, labels, n_bins, binning)
    return {"accuracy": rep["accuracy"], "ece": rep["ece"], "mce": rep["mce"], "nll": rep["nll"], "brier": rep["brier"],
            "rms_calibration_error": K.rms_calibration_error(p, labels, n_bins, binning),
            "adaptive_ece": K.adaptive_ece(p, labels, n_bins), "classwise_ece": K.classwise_ece(p, labels, n_bins),
            "debiased_l2_calibration_error": K.debiased_l2_calibration_error(p, labels, n_bins),
            "mean_confidence": float(p.max(-1).values.mean())}


def calibrated_block(fit: Dict[str, Any], clean: Tuple[torch.Tensor, torch.Tensor],
                     adv: Tuple[torch.Tensor, torch.Tensor], n_bins: int, binning: str,
                     described: Dict[str, Any]) -> Dict[str, Any]:
    """The result's ``calibrated`` block: the fit, and before/after metrics of the evaluated images."""
    t = fit["temperature"]
    out: Dict[str, Any] = {"method": "temperature", **described, "temperature": t,
                           "fit_nll_before": fit["nll_before"], "fit_nll_after": fit["nll_after"],
                           "at_bound": fit["at_bound"], "n_fit": fit["n"], "n_evaluated": int(clean[1].shape[0])}
    for name, (z, y) in (("clean", clean), ("adv", adv)):
        out[name] = {"before": scaled_metrics(z, y, 1.0, n_bins, binning),
                     "after": scaled_metrics(z, y, t, n_bins, binning)}
    return out
