"""--bootstrap N: per-result intervals equal an independent bootstrap of the saved logits; the
Average row's interval resamples every dataset independently."""
import json

import numpy as np
import pytest
import torch

from ucat import metrics as M
from ucat.calibration import bootstrap_interval
from ucat.errors import ConfigError
from ucat.eval import EvalConfig, ModelSpec, run_eval


def test_intervals_per_result_and_for_the_average(tmp_path, one_thread):
    cfg = EvalConfig(models=[ModelSpec("m", "ucat-world")], datasets=["world-shape", "world-count"], steps=2,
                     n_samples=60, out=str(tmp_path / "out"), progress=False, plots=False, save_logits=True,
                     bootstrap=50)
    results = run_eval(cfg)
    r = results[0]
    z = np.load(tmp_path / "out" / "m" / "world-shape" / "pgd-eps1_logits.npz")
    labels = torch.from_numpy(z["labels"])
    iv = r["intervals"]
    ref = bootstrap_interval(M.accuracy, torch.from_numpy(z["adv"]), labels, n_boot=50, seed=iv["seed"])
    assert iv["accuracy"]["adv"] == pytest.approx(list(ref))
    assert iv["accuracy"]["clean"][0] <= r["clean"]["accuracy"] <= iv["accuracy"]["clean"][1]
    assert results[1]["intervals"]["seed"] != iv["seed"]                 # datasets resampled independently
    summary = json.loads((tmp_path / "out" / "summary_intervals.json").read_text())
    avg = summary["averages"][0]
    mean_acc = (r["adv"]["accuracy"] + results[1]["adv"]["accuracy"]) / 2
    assert avg["datasets"] == ["world-shape", "world-count"] and avg["accuracy"]["adv"][0] <= mean_acc <= avg["accuracy"]["adv"][1]
    width = lambda v: v[1] - v[0]                                         # noqa: E731
    assert width(avg["accuracy"]["adv"]) < max(width(iv["accuracy"]["adv"]), width(results[1]["intervals"]["accuracy"]["adv"]))
    assert "Bootstrap 95% intervals" in (tmp_path / "out" / "summary.md").read_text()


def test_bad_bootstrap_count_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="bootstrap"):
        run_eval(EvalConfig(models=[ModelSpec("m", "ucat-world")], out=str(tmp_path / "o"), bootstrap=3))
