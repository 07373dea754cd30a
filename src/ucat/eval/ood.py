"""Out-of-distribution detection by uncertainty: does it rise off the familiar, also under attack?

``ucat eval --datasets IN --ood OUT [OUT ...]``: the images of OUT are classified with IN's
zero-shot classifier (IN's class names), and every uncertainty measure (1 - max p, entropy, and the
Dirichlet measures) is scored at telling OUT from IN: AUROC, AUPR (OOD as the positive class) and
FPR at 95% TPR (Hendrycks & Gimpel, ICLR 2017; Liang et al., ICLR 2018), with
:func:`ucat.detection.ood_scores`. Twice: with OUT clean, and with OUT attacked to look familiar
(``--ood-attack``, default ``calib-over``: within the same eps, raise the confidence of whatever
OUT's images are classified as, which lowers their uncertainty), the case where an over-confident
robust model fails. IN is always clean. ImageNet vs ImageNet-O is the pair the official UCAT code
lists; any two datasets or folders work. One JSON per (model, IN, OUT): ``<IN>/ood-<OUT>.json``.
"""
from __future__ import annotations

from typing import Any, Dict, List

import torch

from ..data import subsample
from ..detection import ood_scores
from ..io import save_json
from . import results as R
from ..units import EPS_UNIT
from .sharding import PassLogits, merge
from .table import pass_scores

MEASURES = ("one_minus_max_prob", "entropy", "mutual_information", "vacuity", "aleatoric")


class Unlabelled(torch.utils.data.Dataset):
    """``ds``'s images with label 0: OOD images have no label in IN's label set."""

    def __init__(self, ds):
        self.ds = ds
        self.classes, self.templates = getattr(ds, "classes", []), getattr(ds, "templates", [])

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        item = self.ds[i]
        return None if item is None else (item[0], 0)


def ood_record(model: str, in_name: str, out_name: str, in_pass: PassLogits, out_clean: PassLogits,
               out_attacked: PassLogits, logit_scale: float, cfg, attack_config: Dict[str, Any], eps: float) -> Dict[str, Any]:
    """Detection scores of every measure, OUT clean and OUT attacked, against IN clean."""
    def scores(p: PassLogits) -> Dict[str, torch.Tensor]:
        return pass_scores(p.logits, logit_scale, cfg.temperature, cfg.uncertainty_alpha)

    s_in, s_clean, s_adv = scores(in_pass), scores(out_clean), scores(out_attacked)
    measures = {m: {"clean": ood_scores(s_in[m], s_clean[m]), "attacked": ood_scores(s_in[m], s_adv[m])}
                for m in MEASURES}
    return {"task": "ood", "model": model, "in": in_name, "out": out_name, "n_in": int(len(in_pass.labels)),
            "n_out": int(len(out_clean.labels)), "measures": measures, "attack": attack_config, "eps": eps,
            "eps_unit": EPS_UNIT, "uncertainty_alpha": cfg.uncertainty_alpha,
            "positive": "out-of-distribution (higher uncertainty = more likely OOD)"}


def ood_markdown(records: List[Dict[str, Any]]) -> str:
    if not records:
        return ""
    lines = ["## Out-of-distribution detection (AUROC / FPR at 95% TPR; OUT clean -> OUT attacked to look familiar)",
             "", "| Model | IN | OUT | measure | AUROC clean | AUROC attacked | FPR95 clean | FPR95 attacked |",
             "|---|---|---|---|---:|---:|---:|---:|"]
    for r in records:
        for m, v in r["measures"].items():
            lines.append(f"| {r['model']} | {r['in']} | {r['out']} | {m} | {v['clean']['auroc']:.3f} | "
                         f"{v['attacked']['auroc']:.3f} | {v['clean']['fpr_at_95_tpr']:.3f} | "
                         f"{v['attacked']['fpr_at_95_tpr']:.3f} |")
    return "\n".join(lines) + "\n"


def evaluate_ood(ev, spec, bundle, dataset: str) -> None:
    """Score OOD detection of every ``cfg.ood`` set against ``dataset`` (IN), with IN's classifier."""
    c = ev.cfg
    size = c.image_size or bundle.image_size
    ds_in = ev.dataset(dataset, size)
    clf = ev.classifier(bundle, ds_in)
    in_pass = merge(ev.logits(clf, ds_in, desc=f"{spec.label}/{dataset} ood-in"), ev.info)
    eps = c.eps[0]
    attack = ev.attack(c.ood_attack, eps)
    for out in c.ood:
        ds_out = Unlabelled(subsample(ev.build(out, size, templates=False), c.n_samples, seed=c.seed))
        parts = (spec.label, dataset, "ood", out, eps)
        clean = merge(ev.logits(clf, ds_out, desc=f"ood {out} clean"), ev.info)
        attacked = merge(ev.logits(clf, ds_out, attack, parts, f"ood {out} {c.ood_attack}"), ev.info)
        if ev.info.is_main:
            rec = ood_record(spec.label, dataset, out, in_pass, clean, attacked, clf.logit_scale, c,
                             attack.config(), eps)
            path = ev.result_path(spec.label, dataset, "ood", 0).with_name(f"ood-{R.dataset_slug(out)}.json")
            save_json(path, {**rec, "config": c, "versions": ev.versions})
            ev.ood_records.append(rec)
