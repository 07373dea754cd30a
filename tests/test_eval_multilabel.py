"""Multi-label evaluation end to end: world-multilabel and a tiny COCO 2017 copy, multi-label attacks,
mAP and P/R/F1@3/@5 in the JSON, summary.md and summary_multilabel.csv; single-label attacks refused."""
import json

import numpy as np
import pytest
import torch

from ucat.cli import main
from ucat.data import subsample
from ucat.eval import EvalConfig, ModelSpec, run_eval
from ucat.multilabel import multilabel_metrics
from ucat.world.multilabel import load_multilabel


def test_world_multilabel_results_match_the_metrics_of_the_saved_logits(tmp_path, one_thread):
    cfg = EvalConfig(models=[ModelSpec("m", "ucat-world")], datasets=["world-multilabel"], attacks=["pgd-bce", "cw-ml"],
                     steps=3, n_samples=60, out=str(tmp_path / "out"), progress=False, save_logits=True)
    results = run_eval(cfg)
    assert [r["task"] for r in results] == ["multilabel", "multilabel"]
    z = np.load(tmp_path / "out" / "m" / "world-multilabel" / "pgd-bce-eps1_logits.npz")
    ds = subsample(load_multilabel("test"), 60, seed=0)                        # what the evaluator drew
    assert (z["labels"] == np.stack([ds[int(i)][1].numpy() for i in z["index"]])).all()
    r = results[0]
    for split, key in (("clean", "clean"), ("adv", "adv")):
        ref = multilabel_metrics(torch.from_numpy(z[key]), torch.from_numpy(z["labels"]), 3)
        assert r[split]["mAP"] == pytest.approx(ref["mAP"]) and r[split]["top3"]["micro_f1"] == pytest.approx(ref["micro_f1"])
    assert r["adv"]["mAP"] <= r["clean"]["mAP"] and r["sanity"]["checks"]["finite"]
    md = (tmp_path / "out" / "summary.md").read_text()
    assert "Multi-label results" in md and "pgd-bce" in md and "cw-ml" in md
    csv = (tmp_path / "out" / "summary_multilabel.csv").read_text().splitlines()
    assert csv[0].startswith("model,dataset,attack") and len(csv) == 3


def test_single_label_attack_on_multilabel_data_is_refused(tmp_path, capsys):
    assert main(["eval", "--datasets", "world-multilabel", "--attacks", "pgd", "--out", str(tmp_path / "o")]) == 2
    assert "pgd-bce or cw-ml" in capsys.readouterr().err


@pytest.fixture()
def coco_root(tmp_path):
    from PIL import Image

    from ucat.data.coco import CATEGORIES

    base = tmp_path / "coco2017"
    (base / "annotations").mkdir(parents=True)
    (base / "val2017").mkdir()
    rng = np.random.default_rng(0)
    data = {"images": [], "annotations": [], "categories": [{"id": i, "name": n} for i, n in CATEGORIES]}
    for k in range(12):
        name = f"{k + 1:012d}.jpg"
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(base / "val2017" / name)
        data["images"].append({"id": k + 1, "file_name": name})
        for c in rng.choice([1, 2, 3, 18, 62], size=2, replace=False):
            data["annotations"].append({"id": len(data["annotations"]) + 1, "image_id": k + 1, "category_id": int(c)})
    (base / "annotations" / "instances_val2017.json").write_text(json.dumps(data))
    return tmp_path


def test_coco2017_evaluates_from_the_release_layout(coco_root, tmp_path, one_thread):
    cfg = EvalConfig(models=[ModelSpec("m", "ucat-tiny")], datasets=["coco2017"], data_root=str(coco_root),
                     attacks=["pgd-bce"], steps=1, out=str(tmp_path / "out"), progress=False, batch_size=6)
    r = run_eval(cfg)[0]
    assert r["task"] == "multilabel" and r["counts"] == {"n": 12, "n_skipped": 0, "n_classes": 80, "n_unlabelled": 0}
    assert r["clean"]["top5"]["micro_recall"] >= 0 and "mAP" in r["adv"]
