"""report.html beside summary.md and the CLIP_benchmark JSON beside every result, from a real run."""
import json
import shutil
import subprocess

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score

from ucat.eval import EvalConfig, ModelSpec, run_eval


@pytest.fixture(scope="module")
def run(tmp_path_factory, one_thread):
    out = tmp_path_factory.mktemp("interop") / "out"
    cfg = EvalConfig(models=[ModelSpec("m", "ucat-world")], datasets=["world-shape", "world-size"], attacks=["pgd"],
                     steps=2, n_samples=48, out=str(out), progress=False, save_logits=True)
    return out, run_eval(cfg)


def test_clip_benchmark_json_matches_its_definition(run):
    out, _ = run
    for ds, n_classes in (("world-shape", 6), ("world-size", 2)):
        rec = json.loads((out / "m" / ds / "pgd-eps1_clip_benchmark.json").read_text())
        assert set(rec) >= {"dataset", "model", "pretrained", "task", "metrics", "language"}
        assert rec["task"] == "zeroshot_classification" and rec["dataset"] == ds and rec["model"] == "ucat-world"
        z = np.load(out / "m" / ds / "pgd-eps1_logits.npz")
        for logits, metrics in ((z["clean"], rec["metrics"]), (z["adv"], rec["adversarial"]["metrics"])):
            pred = logits.argmax(1)
            assert metrics["acc1"] == pytest.approx(float((pred == z["labels"]).mean()))
            assert metrics["mean_per_class_recall"] == pytest.approx(balanced_accuracy_score(z["labels"], pred))
            if n_classes >= 5:
                top5 = torch.from_numpy(logits).topk(5, 1).indices.numpy()
                assert metrics["acc5"] == pytest.approx(float((top5 == z["labels"][:, None]).any(1).mean()))
            else:
                assert metrics["acc5"] is None                              # as CLIP_benchmark below 5 classes


def test_report_html_is_self_contained(run):
    out, results = run
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 * len(results)         # reliability, histogram, risk-coverage
    assert "world-shape" in page and "protocol" in page and "http://" not in page and "https://" not in page
    assert "ECE (TS)" not in page                                            # not calibrated: no such column


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="no Chromium installed (apt-get install chromium) to render the page")
def test_report_html_renders(run, tmp_path):
    out, _ = run
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    shot = tmp_path / "report.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=1200,900", (out / "report.html").as_uri()], check=True, capture_output=True,
                   timeout=120)
    from PIL import Image

    assert len(Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 20)) > 50


def test_selective_threshold_from_clean_held_out_images(run):
    """The threshold meets the target risk on the clean held-out part; coverage/risk elsewhere follow from it."""
    from ucat.eval.calibrate import oracle_split

    out, results = run
    r = next(x for x in results if x["dataset"] == "world-shape")
    z = np.load(out / "m" / "world-shape" / "pgd-eps1_logits.npz")
    labels = torch.from_numpy(z["labels"])
    fit, ev = oracle_split(len(labels), 0.2, 0)
    for target, block in r["selective"]["targets"].items():
        t = block["threshold"]
        for name, key in (("clean", "clean"), ("adv", "adv")):
            logits = torch.from_numpy(z[key]).double()
            u = 1 - torch.softmax(logits, -1).max(-1).values
            err = logits.argmax(-1) != labels
            if name == "clean" and t > float("-inf"):
                assert err[fit][u[fit] <= t].double().mean() <= float(target) + 1e-12
                bigger = u[fit][u[fit] > t]                                  # no larger admissible threshold
                for cand in bigger.unique():
                    assert err[fit][u[fit] <= cand].double().mean() > float(target)
            keep = u[ev] <= t
            assert block[name]["coverage"] == pytest.approx(float(keep.double().mean()))
