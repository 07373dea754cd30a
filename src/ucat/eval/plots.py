"""PNG figures of one result: reliability diagrams and clean-vs-adversarial uncertainty histograms.

Reliability diagrams follow Guo et al., "On Calibration of Modern Neural Networks", ICML 2017:
per confidence bin, the accuracy (y) against the mean confidence, with the diagonal as perfect
calibration. matplotlib runs with the non-interactive Agg backend.
"""
from __future__ import annotations

import os
from typing import Dict, Sequence

import torch

from ..io import atomic_path
from .table import HIST_SCORES


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend."""
    import matplotlib  # deferred: ~0.4 s to import, needed only when a figure is drawn (--no-plots skips it)

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt  # deferred with matplotlib above

    return plt


def save_figure(fig, path: str | os.PathLike) -> None:
    """Write ``fig`` atomically (temporary file, then rename) and close it."""
    try:
        with atomic_path(path) as tmp:           # a unique temporary name: concurrent runs never collide
            fig.savefig(tmp, dpi=80, format="png")
    finally:
        pyplot().close(fig)


def reliability_diagram(clean_bins: Dict, adv_bins: Dict, path: str | os.PathLike, title: str = "") -> None:
    """Two panels (clean, adversarial) of bin accuracy vs confidence, from :func:`ucat.metrics.reliability_bins`."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.4), sharey=True)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.12, top=0.84, wspace=0.08)
    for ax, bins, name in ((axes[0], clean_bins, "clean"), (axes[1], adv_bins, "adversarial")):
        edges = bins["edges"]
        lefts, widths = edges[:-1], [b - a for a, b in zip(edges[:-1], edges[1:])]
        acc = [0.0 if a != a else a for a in bins["accuracy"]]           # NaN (empty bin) -> 0 bar
        conf = [None if c != c else c for c in bins["confidence"]]
        ax.bar(lefts, acc, width=widths, align="edge", edgecolor="black", color="tab:blue", alpha=0.75,
               label="accuracy")
        gap_x = [l + w / 2 for l, w, c in zip(lefts, widths, conf) if c is not None]
        gap_y = [c for c in conf if c is not None]
        ax.plot(gap_x, gap_y, "o", color="tab:red", ms=4, label="mean confidence")
        ax.plot([0, 1], [0, 1], "--", color="gray", lw=1)
        n = sum(bins["count"])
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (max softmax)", title=f"{name} (n={n})")
    axes[0].set_ylabel("accuracy")
    axes[0].legend(loc="upper left", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    save_figure(fig, path)


def uncertainty_histogram(clean: Dict[str, torch.Tensor], adv: Dict[str, torch.Tensor], path: str | os.PathLike,
                          title: str = "", keys: Sequence[str] = HIST_SCORES) -> None:
    """Histograms of per-sample uncertainty scores (normalized by log C), clean vs adversarial."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.6))
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.15, top=0.82, wspace=0.3)
    for ax, k in zip(axes, keys):
        c, a = clean[k].double().cpu().numpy(), adv[k].double().cpu().numpy()
        hi = float(max(c.max(initial=0.0), a.max(initial=0.0), 1e-12))
        bins = [hi * i / 30 for i in range(31)]
        ax.hist(c, bins=bins, alpha=0.6, label="clean", color="tab:blue")
        ax.hist(a, bins=bins, alpha=0.6, label="adversarial", color="tab:red")
        ax.set(xlabel=f"{k} (/ log C)", ylabel="count")
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    save_figure(fig, path)


def risk_coverage_plot(curves: Dict[str, Dict[str, Sequence[float]]], path: str | os.PathLike, title: str = "") -> None:
    """Selective risk against coverage (the most certain images kept first), one curve per pass."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 3.8))
    fig.subplots_adjust(left=0.15, right=0.97, bottom=0.14, top=0.86)
    for name, colour in (("clean", "tab:blue"), ("adversarial", "tab:red")):
        if name in curves:
            ax.plot(curves[name]["coverage"], curves[name]["risk"], color=colour, label=name)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="coverage", ylabel="selective risk (error rate)")
    ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    save_figure(fig, path)
