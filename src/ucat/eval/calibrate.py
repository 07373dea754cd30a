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
from ..calibration import held_out_split as oracle_split
from .. import metrics as M
from ..data import subsample
from .multilabel import is_multilabel
from .sharding import PassLogits, merge

SETTINGS = ("oracle", "zero-shot")
FITS = ("clean", "adversarial")


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


def zero_shot_fit(ev, job, attack, attack_name: str, eps: float) -> None:
    """Fit the zero-shot temperature of this model (and attack, when fitted on adversarial logits) once."""
    c = ev.cfg
    if not c.calibrate or c.calibration_setting != "zero-shot" or is_multilabel(job.ds):
        return
    adversarial = c.calibration_fit == "adversarial"
    key = (job.spec.label,) + ((attack_name, eps) if adversarial else ())
    if key in ev.fits:
        return
    ds = ev.build(c.calibration_data, c.image_size or job.bundle.image_size, c.calibration_split, templates=False)
    ds = subsample(ds, c.calibration_n, seed=c.seed + 1)
    clf = ev.classifier(job.bundle, ds)
    parts = ("calibration", job.spec.label, c.calibration_data, attack_name, eps)
    fit_pass = merge(ev.logits(clf, ds, attack if adversarial else None, parts, f"calibration {key}"), ev.info)
    if ev.info.is_main:
        ev.fits[key] = {**K.fit_temperature(fit_pass.logits, fit_pass.labels), "dataset": c.calibration_data,
                           "split": getattr(ds, "split", c.calibration_split)}
    else:
        ev.fits[key] = {}

def calibrate_result(ev, res: Dict[str, Any], job, attack_name: str, eps: float, clean: PassLogits,
                     adv: PassLogits) -> None:
    """Add the ``calibrated`` block and the temperature-scaled ECE columns to a result (rank 0)."""
    c = ev.cfg
    if not c.calibrate:
        return
    if not (torch.isfinite(clean.logits).all() and torch.isfinite(adv.logits).all()):
        res["calibrated"] = {"method": "temperature", "skipped": "non-finite logits (see non_finite)"}
        return
    described: Dict[str, Any] = {"setting": c.calibration_setting, "fit": c.calibration_fit}
    if c.calibration_setting == "oracle":
        fit_idx, ev = oracle_split(len(clean.labels), c.calibration_fraction, c.seed)
        src = clean if c.calibration_fit == "clean" else adv
        fit = K.fit_temperature(src.logits[fit_idx], src.labels[fit_idx])
        described["split"] = {"held_out_fraction": c.calibration_fraction, "seed": c.seed,
                              "n_fit": int(len(fit_idx)), "n_evaluated": int(len(ev))}
    else:
        key = (job.spec.label,) + ((attack_name, eps) if c.calibration_fit == "adversarial" else ())
        fit = ev.fits[key]
        ev = torch.arange(len(clean.labels))
        described["calibration_data"] = {"dataset": fit["dataset"], "split": fit["split"], "n": fit["n"]}
    block = calibrated_block(fit, (clean.logits[ev], clean.labels[ev]), (adv.logits[ev], adv.labels[ev]),
                             c.n_bins, c.binning, described)
    res["calibrated"] = block
    res["clean"]["ece_temperature_scaled"] = block["clean"]["after"]["ece"]
    res["adv"]["ece_temperature_scaled"] = block["adv"]["after"]["ece"]
