"""Every metric an evaluation reports, defined once: name, function, format and where it shows.

:data:`METRICS` drives the result JSON (``result["clean"][key]``, ``result["adv"][key]``), the
columns of ``summary.csv`` and ``summary.md`` (:mod:`ucat.eval.report`), the demo's tables and
plots (:mod:`ucat.demo`). A new metric is one function of :class:`Split` and one row here.

Sources: accuracy, ECE/MCE (15 equal-width bins; Guo et al., ICML 2017), NLL and Brier from
:mod:`ucat.metrics`; uncertainty scores from :func:`ucat.uncertainty.logit_uncertainty`, with the
Dirichlet alpha recorded in every result (``uncertainty_alpha``: the official evaluation's
1e-6 + exp(softplus(z)), VivienLu/UCAT main.py:496/505/583, or UCAT's training form, main.py:390);
misclassification AUROC (Hendrycks & Gimpel, ICLR 2017) and AURC (Geifman & El-Yaniv, NeurIPS
2017) of an uncertainty score against the errors; H = harmonic mean of clean and robust accuracy
(Lu et al., arXiv 2512.12997, Table 16).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Tuple

import torch

from .. import calibration as K
from .. import metrics as M
from ..uncertainty import logit_uncertainty

OUTPUTS = ("csv", "md", "overview", "demo", "plot")
"""Where a column can show: summary.csv, summary.md's per-dataset tables, its overview of averages,
the demo's tables, the demo's summary plot. Every metric is always in the result JSON."""
SPLITS = ("clean", "adv")


class Split:
    """The inputs of every metric of one pass: logits (N, C), labels (N,) and per-sample scores (N,)."""

    def __init__(self, logits: torch.Tensor, labels: torch.Tensor, scores: Dict[str, torch.Tensor],
                 n_bins: int = 15, binning: str = "width"):
        self.logits, self.labels, self.scores = logits.float(), labels, scores
        self.n_bins, self.binning = n_bins, binning

    @cached_property
    def calibration(self) -> Dict[str, Any]:
        return M.calibration_report(self.logits, self.labels, self.n_bins, self.binning)

    @cached_property
    def probs(self) -> torch.Tensor:
        return torch.softmax(self.logits.double(), -1)                               # (N, C)

    @cached_property
    def errors(self) -> torch.Tensor:
        return self.logits.argmax(-1) != self.labels                                 # (N,) bool

    def mean(self, score: str) -> float:
        return float(self.scores[score].double().mean())


@dataclass(frozen=True)
class Metric:
    """One reported number per pass (clean and adversarial), or one per row (``split=None``: derived).

    Args:
        key: its key in ``result["clean"]`` / ``result["adv"]`` (or the row column, derived).
        fn: ``fn(Split) -> float``; derived: ``fn(row) -> float`` over the row's columns.
        columns: report column names of the clean and the adversarial value ("" = not a column).
        headings: Markdown headings of the two columns.
        percent: shown x100 (accuracy, ECE, H); otherwise as a number with 3 decimals.
        shows: outputs of :data:`OUTPUTS` showing both columns; ``"md:adv"`` shows the adversarial one only.
        demo_headings: the demo tables' headings (default: ``headings``).
        describe: the plot axis title.
    """

    key: str
    fn: Optional[Callable[[Any], float]]     # None: filled in by the evaluator (temperature-scaled values)
    columns: Tuple[str, ...]
    headings: Tuple[str, ...]
    percent: bool = False
    shows: FrozenSet[str] = frozenset()
    demo_headings: Optional[Tuple[str, ...]] = None
    describe: str = ""
    derived: bool = False


@dataclass(frozen=True)
class Column:
    name: str
    heading: str
    demo_heading: str
    metric: Metric
    split: Optional[str]               # "clean" | "adv"; None for a derived column

    def shows(self, output: str) -> bool:
        return output in self.metric.shows or (self.split is not None and f"{output}:{self.split}" in self.metric.shows)


def _calib(key: str) -> Callable[[Split], float]:
    return lambda sp: sp.calibration[key]


def _mean(score: str) -> Callable[[Split], float]:
    return lambda sp: sp.mean(score)


def _auroc(score: str) -> Callable[[Split], float]:
    return lambda sp: M.auroc(sp.scores[score], sp.errors)


def _aurc(score: str) -> Callable[[Split], float]:
    return lambda sp: M.aurc(sp.scores[score], sp.errors)


def _cal(fn: Callable[..., float], binned: bool = True) -> Callable[[Split], float]:
    """A :mod:`ucat.calibration` estimator of softmax(logits) (with the run's bins where it takes them)."""
    return lambda sp: fn(sp.probs, sp.labels, sp.n_bins, sp.binning) if binned else fn(sp.probs, sp.labels, sp.n_bins)


def _h(row: Dict[str, Any]) -> float:
    return M.harmonic_mean(row["clean_acc"], row["robust_acc"])


def _pair(stem: str) -> Tuple[str, str]:
    return f"clean_{stem}", f"adv_{stem}"


_ALL = frozenset({"csv", "md", "overview", "demo", "plot"})
METRICS: Tuple[Metric, ...] = (
    Metric("accuracy", _calib("accuracy"), ("clean_acc", "robust_acc"), ("Clean acc", "Robust acc"), True, _ALL,
           describe="accuracy"),
    Metric("H", _h, ("H",), ("H",), True, frozenset({"csv", "md", "overview", "demo"}), derived=True),
    Metric("ece", _calib("ece"), _pair("ece"), ("Clean ECE", "Adv ECE"), True, _ALL, ("ECE clean", "ECE adv"), "ECE"),
    Metric("mce", _calib("mce"), _pair("mce"), ("Clean MCE", "Adv MCE"), True, frozenset({"csv"})),
    Metric("nll", _calib("nll"), _pair("nll"), ("Clean NLL", "Adv NLL"), False, frozenset({"csv"})),
    Metric("brier", _calib("brier"), _pair("brier"), ("Clean Brier", "Adv Brier"), False, frozenset({"csv"})),
    Metric("mean_entropy", _mean("entropy"), _pair("entropy"), ("Clean entropy", "Adv entropy"), False,
           frozenset({"csv", "md", "demo", "plot"}), ("Unc. clean", "Unc. adv"), "predictive entropy / log C"),
    Metric("mean_aleatoric", _mean("aleatoric"), _pair("aleatoric"), ("Clean AU", "Adv AU"), False, frozenset({"csv"})),
    Metric("mean_mutual_information", _mean("mutual_information"), _pair("mutual_information"),
           ("Clean MI", "Adv MI"), False, frozenset({"csv"})),
    Metric("auroc_one_minus_max_prob", _auroc("one_minus_max_prob"), _pair("auroc"), ("Clean AUROC", "Adv AUROC"),
           False, frozenset({"csv", "md:adv"})),
    Metric("aurc_one_minus_max_prob", _aurc("one_minus_max_prob"), _pair("aurc"), ("Clean AURC", "Adv AURC"),
           False, frozenset({"csv"})),
    Metric("rms_calibration_error", _cal(K.rms_calibration_error), _pair("rmsce"), ("Clean RMSCE", "Adv RMSCE"),
           True, frozenset({"csv"})),
    Metric("adaptive_ece", _cal(K.adaptive_ece, False), _pair("adaptive_ece"), ("Clean AdaECE", "Adv AdaECE"),
           True, frozenset({"csv"})),
    Metric("classwise_ece", _cal(K.classwise_ece, False), _pair("classwise_ece"), ("Clean cwECE", "Adv cwECE"),
           True, frozenset({"csv"})),
    Metric("debiased_l2_calibration_error", _cal(K.debiased_l2_calibration_error, False), _pair("debiased_l2"),
           ("Clean dL2", "Adv dL2"), True, frozenset({"csv"})),
    Metric("ece_temperature_scaled", None, _pair("ece_ts"), ("Clean ECE (TS)", "Adv ECE (TS)"), True,
           frozenset({"csv", "md"})),
    Metric("mean_confidence", _mean("confidence"), _pair("confidence"), ("Clean conf.", "Adv conf."), False),
    Metric("mean_predictive", _mean("predictive"), _pair("predictive"), ("Clean PU", "Adv PU"), False),
    Metric("mean_vacuity", _mean("vacuity"), _pair("vacuity"), ("Clean EU", "Adv EU"), False),
    Metric("mean_epistemic_official", _mean("epistemic_official"), _pair("epistemic_official"),
           ("Clean EU (code)", "Adv EU (code)"), False),
    Metric("auroc_entropy", _auroc("entropy"), ("", ""), ("", "")),
    Metric("aurc_entropy", _aurc("entropy"), ("", ""), ("", "")),
    Metric("auroc_mutual_information", _auroc("mutual_information"), ("", ""), ("", "")),
    Metric("aurc_mutual_information", _aurc("mutual_information"), ("", ""), ("", "")),
)
"""The metrics, in report order (columns of every table follow this order)."""

HIST_SCORES = ("entropy", "aleatoric", "mutual_information")
"""Per-sample scores drawn in each result's uncertainty histogram (all normalized by log C)."""


def columns(output: Optional[str] = None) -> List[Column]:
    """Every report column in order, or those that ``output`` shows."""
    cols: List[Column] = []
    for m in METRICS:
        splits = (None,) if m.derived else SPLITS
        for split, name, heading, demo in zip(splits, m.columns, m.headings, m.demo_headings or m.headings):
            if name:
                cols.append(Column(name, heading, demo, m, split))
    return [c for c in cols if output is None or c.shows(output)]


def pass_scores(logits: torch.Tensor, logit_scale: float, temperature: float, alpha: str) -> Dict[str, torch.Tensor]:
    """Per-sample uncertainty scores (N,) of one pass, normalized by log C."""
    return logit_uncertainty(logits.float(), logit_scale, temperature, normalize=True, alpha=alpha)


def measure(logits: torch.Tensor, labels: torch.Tensor, scores: Dict[str, torch.Tensor], n_bins: int = 15,
            binning: str = "width") -> Dict[str, Any]:
    """Every metric of :data:`METRICS` over one whole pass, and its reliability bins."""
    sp = Split(logits, labels, scores, n_bins, binning)
    out: Dict[str, Any] = {m.key: m.fn(sp) for m in METRICS if not m.derived and m.fn is not None}
    out["reliability"] = M.reliability_bins(torch.softmax(sp.logits.double(), -1), labels, n_bins, binning)
    return out


def split_metrics(logits: torch.Tensor, labels: torch.Tensor, logit_scale: float, temperature: float,
                  n_bins: int = 15, binning: str = "width", alpha: str = "ucat") -> Dict[str, Any]:
    """All metrics of one set of logits (clean or adversarial) over the whole set."""
    return measure(logits, labels, pass_scores(logits, logit_scale, temperature, alpha), n_bins, binning)


def row_values(result: Dict[str, Any]) -> Dict[str, Any]:
    """The report columns of one result (``None`` where the result lacks a metric)."""
    row: Dict[str, Any] = {}
    for c in columns():
        if c.split is not None:
            row[c.name] = result.get(c.split, {}).get(c.metric.key)
    for c in columns():
        if c.split is None:
            row[c.name] = c.metric.fn(row)
    return row


def fmt(column: Column, value: Any, digits: int = 2) -> str:
    """A cell: percent with ``digits`` decimals, other numbers with 3; 'nan' for a missing or NaN value."""
    if value is None or (isinstance(value, float) and value != value):
        return "nan"
    return f"{100 * value:.{digits}f}" if column.metric.percent else f"{value:.3f}"
