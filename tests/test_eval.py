"""`ucat eval` end to end on the tiny CLIP and a generated ImageFolder; reports, resume, sanity checks, torchrun."""
import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from ucat.cli import main as cli_main
from ucat.eval import EvalConfig, ModelSpec, run_eval, summary_rows, summary_table
from ucat.eval.checks import cross_checks
from ucat.eval.evaluator import Evaluator
from ucat.eval.results import dataset_slug


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A generated ImageFolder: 3 colour classes x 4 noisy 32x32 PNGs, one of them unreadable."""
    root = tmp_path_factory.mktemp("colours")
    g = torch.Generator().manual_seed(0)
    for name, rgb in {"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200)}.items():
        (root / name).mkdir()
        for i in range(4):
            noise = torch.randint(-40, 40, (32, 32, 3), generator=g)
            arr = (torch.tensor(rgb).view(1, 1, 3) + noise).clamp(0, 255).to(torch.uint8).numpy()
            Image.fromarray(arr).save(root / name / f"{i}.png")
    (root / "blue" / "9.png").write_bytes(b"not a png")  # counted in n_skipped, never crashes the run
    return root


def _args(folder, out, *extra):
    return ["eval", "--model", "ucat-tiny", "--datasets", str(folder), "--device", "cpu", "--no-progress",
            "--batch-size", "5", "--steps", "2", "--out", str(out), *extra]


def test_eval_end_to_end_outputs_and_resume(folder, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    rc = cli_main(_args(folder, out, "--attacks", "pgd", "none", "--eps", "0", "2", "--save-logits"))
    assert rc == 0
    printed = capsys.readouterr().out
    assert "Average" in printed and "| Dataset |" in printed
    res_dir = out / "ucat-tiny" / dataset_slug(str(folder))
    assert not (res_dir / "none-eps2.json").exists()          # an attack without a budget runs once
    for stem in ("pgd-eps0", "pgd-eps2", "none-eps0"):
        for suffix in (".json", "_reliability.png", "_uncertainty.png", "_logits.npz"):
            assert (res_dir / f"{stem}{suffix}").is_file(), f"{stem}{suffix} missing"
    assert (out / "summary.csv").is_file() and (out / "summary.md").is_file()

    r0 = json.loads((res_dir / "pgd-eps0.json").read_text())
    assert r0["eps_unit"] == "1/255" and r0["seed"] == 0 and "torch" in r0["versions"]
    assert r0["config"]["eps"] == [0.0, 2.0] and r0["config"]["models"][0]["model"] == "ucat-tiny"
    assert r0["counts"] == {"n": 12, "n_skipped": 1, "n_classes": 3}
    assert r0["sanity"]["checks"]["eps0_robust_equals_clean"] is True
    assert r0["clean"] == r0["adv"]                       # eps = 0: identical metrics
    r2 = json.loads((res_dir / "pgd-eps2.json").read_text())
    assert r2["eps_fraction"] == pytest.approx(2 / 255)
    assert r2["clean"]["accuracy"] == r0["clean"]["accuracy"]   # clean logits are the same pass
    assert r2["adv"]["accuracy"] <= r2["clean"]["accuracy"]
    for k in ("accuracy", "ece", "mce", "nll", "brier", "mean_entropy", "mean_aleatoric", "mean_mutual_information",
              "mean_vacuity", "auroc_one_minus_max_prob", "aurc_one_minus_max_prob"):
        assert k in r2["adv"] and k in r2["clean"]
    logits = dict(__import__("numpy").load(res_dir / "pgd-eps2_logits.npz"))
    assert logits["clean"].shape == (12, 3) and logits["index"].tolist() == sorted(logits["index"].tolist())
    assert abs(logits["adv"] - logits["clean"]).max() > 1e-4        # the attack did move the images
    csv_lines = (out / "summary.csv").read_text().splitlines()
    assert csv_lines[0].startswith("model,dataset,attack,eps") and len(csv_lines) == 1 + 3 * 2  # rows + averages

    # a rerun finds every result and computes nothing
    stamp = (res_dir / "pgd-eps2.json").stat().st_mtime_ns

    def boom(*a, **k):
        raise AssertionError("a finished result was recomputed")

    monkeypatch.setattr(Evaluator, "_evaluate_dataset", boom)
    assert cli_main(_args(folder, out, "--attacks", "pgd", "none", "--eps", "0", "2")) == 0
    assert (res_dir / "pgd-eps2.json").stat().st_mtime_ns == stamp
    # a changed setting is not "finished": it is recomputed
    with pytest.raises(AssertionError, match="recomputed"):
        cli_main(_args(folder, out, "--attacks", "pgd", "--eps", "2", "--seed", "1"))


def test_clean_metrics_do_not_depend_on_batch_size(folder, tmp_path):
    runs = []
    for bs in (2, 7):
        cfg = EvalConfig(models=[ModelSpec("tiny", "ucat-tiny")], datasets=[str(folder)], attacks=["none"],
                         batch_size=bs, device="cpu", out=str(tmp_path / f"bs{bs}"), progress=False, plots=False)
        runs.append(run_eval(cfg)[0])
    a, b = runs
    assert a["counts"] == b["counts"]
    for k in ("accuracy", "ece", "nll", "brier", "mean_entropy"):
        assert a["clean"][k] == pytest.approx(b["clean"][k], rel=1e-5, abs=1e-7)


def test_checkpoint_and_compare_original(folder, tmp_path, capsys):
    from ucat.models import load_clip
    from ucat.models.checkpoint import save_vision_weights

    torch.manual_seed(0)
    bundle = load_clip("ucat-tiny")
    with torch.no_grad():
        bundle.model.visual.proj.mul_(-1.0)           # a visibly different "fine-tuned" tower
    ckpt = tmp_path / "tuned.safetensors"
    save_vision_weights(bundle.encoder, ckpt, {"arch": "ucat-tiny"})
    out = tmp_path / "cmp"
    rc = cli_main(_args(folder, out, "--attacks", "none", "--checkpoint", str(ckpt), "--compare-original", "--no-plots"))
    assert rc == 0
    md = (out / "summary.md").read_text()
    assert "ucat-tiny (original)" in md and "tuned" in md and "Overview" in md
    assert (out / "tuned" / dataset_slug(str(folder)) / "none-eps0.json").is_file()


def test_bad_input_is_one_clear_error(folder, tmp_path, capsys):
    assert cli_main(_args(folder, tmp_path / "x", "--attacks", "fgsm")) == 2
    assert "known attacks" in capsys.readouterr().err
    assert cli_main(_args(folder, tmp_path / "x", "--eps", "0.0039")) == 2
    assert "1/255" in capsys.readouterr().err
    assert cli_main(_args(tmp_path / "missing", tmp_path / "x")) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli_main(_args(folder, tmp_path / "x", "--compare-original")) == 2
    assert "--checkpoint" in capsys.readouterr().err


def _fake(model, dataset, attack, clean, robust, eps=1.0):
    m = {"ece": 0.1, "mce": 0.2, "nll": 1.0, "brier": 0.5, "mean_entropy": 0.3, "mean_aleatoric": 0.3,
         "mean_mutual_information": 0.0, "auroc_one_minus_max_prob": 0.7, "aurc_one_minus_max_prob": 0.2}
    return {"model": model, "dataset": dataset, "attack": attack, "eps": eps, "eps_unit": "1/255",
            "counts": {"n": 100, "n_skipped": 0}, "clean": {**m, "accuracy": clean}, "adv": {**m, "accuracy": robust},
            "sanity": {"checks": {"robust_le_clean": robust <= clean}}}


def test_summary_average_and_paper_h():
    rows = summary_rows([_fake("m", "a", "pgd", 0.6, 0.2), _fake("m", "b", "pgd", 0.4, 0.4)])
    avg = rows[-1]
    assert avg["dataset"] == "Average" and avg["clean_acc"] == pytest.approx(0.5)
    assert avg["robust_acc"] == pytest.approx(0.3)
    assert avg["H"] == pytest.approx(2 * 0.5 * 0.3 / 0.8)            # H of the averages, not average of H
    assert rows[0]["H"] == pytest.approx(2 * 0.6 * 0.2 / 0.8)
    md = summary_table([_fake("m", "a", "pgd", 0.6, 0.2), _fake("m", "a", "cw", 0.6, 0.7)])
    assert "| **Average** |" in md and "37.50" not in md and "WARN" in md   # cw robust > clean is flagged


def test_autoattack_not_above_pgd_is_checked(tmp_path):
    saved = {}
    save = lambda key, res: saved.__setitem__(key, json.loads(json.dumps(res)))  # noqa: E731
    results = {("pgd", 1.0): _fake("m", "d", "pgd", 0.8, 0.30), ("aa-paper", 1.0): _fake("m", "d", "aa-paper", 0.8, 0.50)}
    for r in results.values():
        r["sanity"]["warnings"] = []
    with pytest.warns(UserWarning, match="above pgd"):
        cross_checks(results, "m/d", save)
    assert results[("aa-paper", 1.0)]["sanity"]["checks"]["robust_not_above_pgd"] is False
    assert saved[("aa-paper", 1.0)]["sanity"]["checks"]["robust_not_above_pgd"] is False
    results[("aa-paper", 1.0)]["adv"]["accuracy"] = 0.31              # within noise of n=100
    results[("aa-paper", 1.0)]["sanity"]["checks"].pop("robust_not_above_pgd")
    cross_checks(results, "m/d", save)
    assert results[("aa-paper", 1.0)]["sanity"]["checks"]["robust_not_above_pgd"] is True
    results[("pgd", 4.0)] = _fake("m", "d", "pgd", 0.8, 0.6, eps=4.0)   # more budget, far higher accuracy
    results[("pgd", 4.0)]["sanity"]["warnings"] = []
    with pytest.warns(UserWarning, match="at eps 4/255"):
        cross_checks(results, "m/d", save)
    assert results[("pgd", 4.0)]["sanity"]["checks"]["robust_monotone_in_eps"] is False


def test_split_metrics_reference_values():
    from ucat.eval import split_metrics

    logits = torch.tensor([[4.0, 0.0], [0.0, 4.0], [4.0, 0.0], [0.0, 4.0]])
    labels = torch.tensor([0, 1, 1, 1])
    m = split_metrics(logits, labels, logit_scale=100.0, temperature=0.07, n_bins=15, binning="width")
    p = torch.softmax(torch.tensor([4.0, 0.0]), 0)[0].item()
    assert m["accuracy"] == 0.75
    assert m["ece"] == pytest.approx(abs(p - 0.75))                   # every confidence in one bin
    assert m["mean_confidence"] == pytest.approx(p)
    assert math.isclose(m["auroc_one_minus_max_prob"], 0.5)                     # ties: no ranking information


@pytest.mark.slow
def test_torchrun_two_processes_equal_single_process(folder, tmp_path):
    """2 gloo processes on CPU: dataset batches dealt over ranks, merged by index -> identical metrics."""
    common = ["--model", "ucat-tiny", "--datasets", str(folder), "--device", "cpu", "--no-progress", "--no-plots",
              "--batch-size", "3", "--steps", "2", "--attacks", "pgd", "--eps", "2"]
    single = run_eval(EvalConfig(models=[ModelSpec("ucat-tiny", "ucat-tiny")], datasets=[str(folder)], attacks=["pgd"],
                                 eps=[2.0], steps=2, batch_size=3, device="cpu", out=str(tmp_path / "one"),
                                 progress=False, plots=False))[0]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "ucat", "eval", *common,
           "--out", str(tmp_path / "two")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads((tmp_path / "two" / "ucat-tiny" / dataset_slug(str(folder)) / "pgd-eps2.json").read_text())
    assert two["world_size"] == 2 and single["world_size"] == 1
    assert two["counts"] == single["counts"]
    for split in ("clean", "adv"):
        for k in ("accuracy", "ece", "nll", "brier", "mean_entropy", "mean_mutual_information",
                  "auroc_one_minus_max_prob"):
            assert two[split][k] == pytest.approx(single[split][k], rel=1e-6, abs=1e-9), (split, k)


def test_cli_sizes_in_255_units_and_attack_options():
    import argparse

    from ucat.commands.eval import add_arguments, config_from_args

    p = argparse.ArgumentParser()
    add_arguments(p)
    cfg = config_from_args(p.parse_args(["--eps", "1", "4/255", "--step-size", "0.5", "-A", "cw.kappa=0",
                                         "-A", "uncertainty.score=epistemic"]))
    assert cfg.eps == [1.0, 4.0] and cfg.step_size == 0.5
    assert cfg.attack_options == {"cw": {"kappa": 0}, "uncertainty": {"score": "epistemic"}}
    assert config_from_args(p.parse_args(["--norm", "l2", "--eps", "127.5"])).eps == [127.5]
    with pytest.raises(ValueError, match="over 64/255"):
        config_from_args(p.parse_args(["--eps", "127.5"]))


def test_estimate_skips_finished_results_and_writes_nothing(folder, tmp_path, capsys):
    from ucat.eval.estimate import estimate_eval

    out = tmp_path / "est"
    assert cli_main(_args(folder, out, "--attacks", "pgd", "cw", "--estimate")) == 0
    printed = capsys.readouterr().out
    assert "total:" in printed and "peak memory" in printed and "pgd" in printed and "cw" in printed
    assert not out.exists()                                   # an estimate writes nothing

    assert cli_main(_args(folder, out, "--attacks", "pgd")) == 0     # pgd now finished on disk
    capsys.readouterr()
    cfg = EvalConfig(models=[ModelSpec("ucat-tiny", "ucat-tiny")], datasets=[str(folder)], attacks=["pgd", "cw"],
                     steps=2, batch_size=5, device="cpu", out=str(out), progress=False)
    est = estimate_eval(cfg)
    assert [r["attack"] for r in est["rows"]] == ["clean", "cw"]        # resume: pgd is not redone
    assert all(r["images"] == 13 and r["seconds"] > 0 for r in est["rows"])   # 13 files to read (1 unreadable)
    assert est["rows"][1]["budget"] == "steps=2" and est["rows"][1]["method"] == "timed at the full budget"
    est5 = estimate_eval(dataclasses.replace(cfg, steps=5))   # other steps: other results, both to do
    assert [r["attack"] for r in est5["rows"]] == ["clean", "pgd", "cw"]
    assert est5["rows"][1]["budget"] == "steps=5" and "linear in steps" in est5["rows"][1]["method"]
    assert est["total_seconds"] == pytest.approx(sum(r["seconds"] for r in est["rows"]))
    assert est["peak_memory_gib"] > 0


def test_estimate_probes_scale_autoattack_iterations_and_queries():
    from ucat.attacks import create_attack
    from ucat.eval.estimate import _budget, _probe_overrides

    pgd = create_attack("pgd", eps=1 / 255, step_size=1 / 255, steps=100)
    assert _budget(pgd) == ("steps", 100) and _probe_overrides(pgd, "steps", 2, 100) == {"steps": 2}
    aa = create_attack("aa-standard", eps=1 / 255, n_iter=100, n_queries=5000)
    knob, budget = _budget(aa)
    assert (knob, budget) == ("n_iter", 100)
    assert _probe_overrides(aa, knob, 2, budget) == {"n_iter": 2, "n_queries": 100}
