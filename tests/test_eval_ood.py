"""ucat eval --ood: detection scores of every uncertainty measure, OOD images clean and attacked to look familiar."""
import json

import pytest
import torch

from ucat.detection import ood_scores
from ucat.eval import EvalConfig, ModelSpec, run_eval
from ucat.eval.ood import MEASURES


def test_ood_scores_clean_and_attacked(tmp_path, one_thread):
    cfg = EvalConfig(models=[ModelSpec("m", "ucat-world")], datasets=["world-shape"], ood=["world-multilabel"],
                     attacks=["none"], n_samples=80, out=str(tmp_path / "out"), progress=False, plots=False)
    run_eval(cfg)
    rec = json.loads((tmp_path / "out" / "m" / "world-shape" / "ood-world-multilabel.json").read_text())
    assert rec["n_in"] == 80 and rec["n_out"] == 80 and set(rec["measures"]) == set(MEASURES)
    for m, v in rec["measures"].items():
        for part in ("clean", "attacked"):
            assert 0 <= v[part]["auroc"] <= 1 and 0 <= v[part]["fpr_at_95_tpr"] <= 1
    # raising the OOD images' confidence (calib-over) can only make max-prob detection worse
    mp = rec["measures"]["one_minus_max_prob"]
    assert mp["attacked"]["auroc"] <= mp["clean"]["auroc"]
    assert rec["attack"]["name"] == "calib-over" and "Out-of-distribution" in (tmp_path / "out" / "summary.md").read_text()


def test_ood_scores_match_the_detection_function():
    s_in, s_out = torch.tensor([0.1, 0.2, 0.3]), torch.tensor([0.25, 0.9])
    r = ood_scores(s_in, s_out)
    assert r["auroc"] == pytest.approx(5 / 6)                # 5 of the 6 (in, out) pairs ranked right
