"""ucat eval --calibrate temperature: the fitted temperature is the NLL minimum of images never
evaluated, the recalibrated metrics are what softmax(z/T) gives, and bad settings are refused."""
import json

import numpy as np
import pytest
import torch

from ucat.calibration import fit_temperature, nll_at
from ucat.errors import ConfigError
from ucat.eval import EvalConfig, ModelSpec, run_eval
from ucat.eval.calibrate import oracle_split
from ucat.metrics import ece


def _cfg(tmp_path, **kw):
    base = dict(models=[ModelSpec("m", "ucat-world")], datasets=["world-shape"], attacks=["pgd"], steps=2,
                n_samples=120, out=str(tmp_path / "out"), plots=False, progress=False, save_logits=True,
                calibrate="temperature")
    base.update(kw)
    return EvalConfig(**base)


def test_oracle_temperature_is_fitted_on_held_out_images_only(tmp_path, one_thread):
    res = run_eval(_cfg(tmp_path))[0]
    cal = res["calibrated"]
    z = np.load(tmp_path / "out" / "m" / "world-shape" / "pgd-eps1_logits.npz")
    clean, adv, labels = (torch.from_numpy(z[k]) for k in ("clean", "adv", "labels"))
    fit_idx, ev_idx = oracle_split(len(labels), 0.2, 0)
    assert not set(fit_idx.tolist()) & set(ev_idx.tolist()) and len(fit_idx) + len(ev_idx) == len(labels)
    ref = fit_temperature(clean[fit_idx], labels[fit_idx])
    assert cal["temperature"] == pytest.approx(ref["temperature"], rel=1e-9)
    assert cal["fit_nll_after"] <= cal["fit_nll_before"] + 1e-12
    assert cal["split"] == {"held_out_fraction": 0.2, "seed": 0, "n_fit": len(fit_idx), "n_evaluated": len(ev_idx)}
    t = cal["temperature"]
    for name, logits in (("clean", clean), ("adv", adv)):
        p = torch.softmax(logits[ev_idx].double() / t, -1)
        assert cal[name]["after"]["ece"] == pytest.approx(ece(p, labels[ev_idx]), abs=1e-12)
        assert cal[name]["after"]["nll"] == pytest.approx(nll_at(logits[ev_idx], labels[ev_idx], t), abs=1e-9)
        assert res[name]["ece_temperature_scaled"] == cal[name]["after"]["ece"]
    md = (tmp_path / "out" / "summary.md").read_text()
    assert "ECE (TS)" in md and "clean_ece_ts" in (tmp_path / "out" / "summary.csv").read_text()
    json.loads((tmp_path / "out" / "m" / "world-shape" / "pgd-eps1.json").read_text())   # strict JSON


def test_zero_shot_temperature_comes_from_the_named_set(tmp_path, one_thread):
    cfg = _cfg(tmp_path, calibration_setting="zero-shot", calibration_data="world-train", calibration_split="val",
               calibration_n=60, calibration_fit="adversarial", datasets=["world-shape", "world-count"])
    results = run_eval(cfg)
    temps = {r["calibrated"]["temperature"] for r in results}
    assert len(temps) == 1                                   # one temperature for every evaluated dataset
    assert results[0]["calibrated"]["calibration_data"] == {"dataset": "world-train", "split": "val", "n": 60}
    assert results[0]["calibrated"]["n_evaluated"] == 120


def test_uncalibrated_runs_do_not_show_the_columns(tmp_path, one_thread):
    run_eval(_cfg(tmp_path, calibrate=None, save_logits=False))
    assert "ECE (TS)" not in (tmp_path / "out" / "summary.md").read_text()


@pytest.mark.parametrize("kw, param", [
    ({"calibration_setting": "zero-shot"}, "calibration_data"),
    ({"calibration_setting": "zero-shot", "calibration_data": "world-shape"}, "calibration_data"),
    ({"calibration_fraction": 1.5}, "calibration_fraction"),
    ({"calibration_fit": "both"}, "calibration_fit"),
])
def test_bad_calibration_settings_are_refused_before_any_work(tmp_path, kw, param):
    with pytest.raises(ConfigError) as e:
        run_eval(_cfg(tmp_path, **kw))
    assert e.value.param == param and not (tmp_path / "out").exists()
