"""The logit geometry of a world CLIP, measured: what UCAT's Dirichlet sees.

UCAT reads CLIP's logits z = s * cos as a Dirichlet concentration alpha = exp((cos + 1) / tau')
(Lu et al., arXiv 2512.12997; official code VivienLu/UCAT main.py:353-401) and weighs its KL
term with lambda = 3.9e-8, a value set for OpenAI CLIP's cosines (about 0.2-0.3, differing by a
few hundredths across classes) and its logit scale s = 100. Whether a small world model is in the
same regime is a question of numbers, so this module measures them:

* :func:`cosine_stats`: per image, the cosines to every class's text embedding: their mean, their
  spread across classes (std), the true class's cosine and the margin to the best wrong class;
* :func:`ucat_loss_ratio`: at the start of UCAT fine-tuning (trainable = frozen model), the CE and
  lambda * KL on PGD images of ``world-train``, and their ratio;
* :func:`robust_vs_eps`: zero-shot robust accuracy under L-inf PGD against the budget.
"""
from __future__ import annotations

import copy
from typing import Dict, List, Sequence

import numpy as np
import torch

from ..attacks.pgd import PGD
from ..methods.base import create_method
from ..models.clip import ClipBundle
from ..models.zero_shot import ZeroShotClassifier
from ..units import to_fraction
from .tasks import SUITE, load_task


def _classifier(bundle: ClipBundle, task: str, split: str, n: int, seed: int):
    ds = load_task(task, split, n=n, seed=seed)
    return ds, ZeroShotClassifier.from_dataset(bundle, ds).eval()


@torch.no_grad()
def cosine_stats(bundle: ClipBundle, tasks: Sequence[str] = SUITE, n: int = 500, seed: int = 0,
                 split: str = "test") -> Dict[str, Dict[str, float]]:
    """Per task: statistics of cos(f(x), t_c) over the task's images (and ``"all"``, pooled).

    Keys: ``mean`` (mean cosine over all image x class pairs), ``std_across_classes`` (mean over
    images of the std of its C cosines), ``true`` (mean cosine to the true class), ``best_wrong``
    (mean of the highest wrong-class cosine), ``margin`` (mean of true - best wrong), ``min`` and
    ``max`` (over all pairs).
    """
    out: Dict[str, Dict[str, float]] = {}
    pooled: Dict[str, List[np.ndarray]] = {k: [] for k in ("cos", "std", "true", "wrong")}
    for task in tasks:
        ds, clf = _classifier(bundle, task, split, n, seed)
        cos = (clf(ds.images) / clf.logit_scale).double()                  # (N, C)
        y = ds.labels.long()
        true = cos.gather(1, y[:, None]).squeeze(1)                         # (N,)
        wrong = cos.scatter(1, y[:, None], float("-inf")).max(1).values     # (N,)
        parts = {"cos": cos.flatten().numpy(), "std": cos.std(1, unbiased=False).numpy(),
                 "true": true.numpy(), "wrong": wrong.numpy()}
        out[task] = _summarize(parts)
        for k, v in parts.items():
            pooled[k].append(v)
    out["all"] = _summarize({k: np.concatenate(v) for k, v in pooled.items()})
    return out


def _summarize(parts: Dict[str, np.ndarray]) -> Dict[str, float]:
    return {"mean": float(parts["cos"].mean()), "std_across_classes": float(parts["std"].mean()),
            "true": float(parts["true"].mean()), "best_wrong": float(parts["wrong"].mean()),
            "margin": float((parts["true"] - parts["wrong"]).mean()),
            "min": float(parts["cos"].min()), "max": float(parts["cos"].max())}


def ucat_loss_ratio(bundle: ClipBundle, eps: float = 4.0, attack_steps: int = 2, n: int = 256,
                    seed: int = 0, batch_size: int = 64, **ucat_options) -> Dict[str, float]:
    """CE and lambda * KL of UCAT's loss at the start of fine-tuning, on ``world-train`` PGD images.

    eps in 1/255 units; the training attack is the paper's (``attack_steps`` steps of size eps,
    random start). At the start the trainable model equals the frozen one, as in fine-tuning's
    first step. Returns the means over ``n`` images, ``ratio`` = lambda * KL / CE and ``cos_shift``,
    the mean |cos(x_adv) - cos(x)| over images and classes.
    """
    ds, clf = _classifier(bundle, "world-train", "train", n, seed)
    e = to_fraction(eps)
    attack = PGD(eps=e, step_size=e, steps=attack_steps)
    method = create_method("ucat", clf, copy.deepcopy(clf.encoder), attack, **ucat_options)
    torch.manual_seed(seed)
    sums = {"ce": 0.0, "kl": 0.0, "kl_weighted": 0.0, "cos_shift": 0.0}
    for i in range(0, len(ds), batch_size):
        x, y = ds.images[i:i + batch_size], ds.labels[i:i + batch_size].long()
        out = method(x, y)
        shift = (out["logits_adv"] - method.reference_logits(x)).abs().mean() / clf.logit_scale
        out = {**out, "cos_shift": shift}
        for k in sums:
            sums[k] += float(out[k]) * len(x)
    res = {k: v / len(ds) for k, v in sums.items()}
    res["lambda"] = method.kl_weight
    res["ratio"] = res["kl_weighted"] / res["ce"] if res["ce"] > 0 else float("inf")
    return res


def robust_vs_eps(bundle: ClipBundle, eps_list: Sequence[float], tasks: Sequence[str] = SUITE, n: int = 200,
                  seed: int = 0, steps: int = 10) -> Dict[str, Dict[str, float]]:
    """Zero-shot accuracy (%) under L-inf PGD (``steps`` steps of eps/4, random start) per eps (1/255 units)."""
    out: Dict[str, Dict[str, float]] = {}
    for eps in eps_list:
        e = to_fraction(eps)
        row: Dict[str, float] = {}
        for task in tasks:
            ds, clf = _classifier(bundle, task, "test", n, seed)
            torch.manual_seed(seed)
            x = PGD(eps=e, step_size=e / 4, steps=steps)(clf, ds.images, ds.labels.long()) if e > 0 else ds.images
            with torch.no_grad():
                row[task] = round(100.0 * float((clf(x).argmax(1) == ds.labels).float().mean()), 2)
        row["mean"] = round(float(np.mean([row[t] for t in tasks])), 2)
        out[f"{eps:g}"] = row
    return out
