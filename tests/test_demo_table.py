"""The demo's pieces without training: the recipe scaling rule, mean/std over seeds, the TS rows, the
phenomenon's words, the ETA, the tables' row order, and one-line refusals of bad input."""
import statistics
from pathlib import Path

import pytest
import yaml

from ucat.demo import DemoConfig, METHODS, scaled_settings, train_config, validate
from ucat.demo.aggregate import aggregate, cell, seed_rows, ts_result
from ucat.demo.phenomenon import direction, phenomenon
from ucat.demo.progress import Progress, Stage, fmt_duration
from ucat.demo.table import main_table
from ucat.errors import ConfigError

RECIPES = Path(__file__).resolve().parents[1] / "src" / "ucat" / "recipes"


@pytest.mark.parametrize("method", METHODS)
def test_scaling_rule_is_one_rule_for_every_recipe(method, tmp_path):
    recipe = yaml.safe_load((RECIPES / f"{method}.yaml").read_text())
    cfg = DemoConfig(train_steps=200, batch_size=48, eps=4.0, lr_scale=3.0, optimizer="adamw")
    s = scaled_settings(cfg, method)
    recipe_steps = recipe["epochs"] * -(-100_000 // recipe["batch_size"])      # TinyImageNet: 100k images
    assert s["lr"] == pytest.approx(recipe["lr"] * 3.0)
    assert s["warmup_steps"] == round(200 * recipe["warmup_steps"] / recipe_steps)
    assert s["eps"] == 4.0 and s["attack_step_size"] == pytest.approx(recipe["attack_step_size"] * 4.0 / recipe["eps"])
    assert s["attack_steps"] == recipe["attack_steps"] and s["method_options"] == (recipe.get("method_options") or {})
    tc = train_config(cfg, method, 7, tmp_path / "run")
    assert (tc.method, tc.batch_size, tc.max_steps, tc.seed, tc.optimizer) == (method, 48, 200, 7, "adamw")
    assert tc.data == "world-train" and tc.model == "ucat-world"
    tc.validate()                                  # a config the trainer accepts


def test_warmup_share_follows_each_recipe():
    cfg = DemoConfig(train_steps=391)
    # UCAT: batch 256 -> 3910 steps, 1000 warm-up; TGA-ZSR: batch 128 -> 7820 steps, 1000 warm-up
    assert scaled_settings(cfg, "ucat")["warmup_steps"] == 100
    assert scaled_settings(cfg, "tga-zsr")["warmup_steps"] == 50


def test_cell_is_mean_and_sample_std():
    c = cell([0.5, 0.7, 0.9])
    assert c["mean"] == pytest.approx(statistics.mean([0.5, 0.7, 0.9]))
    assert c["std"] == pytest.approx(statistics.stdev([0.5, 0.7, 0.9]))
    assert cell([0.25])["std"] is None and cell([0.25])["mean"] == 0.25
    assert cell([0.1, None])["mean"] is None and cell([0.1, float("nan")])["mean"] is None


def _result(model, dataset, attack, acc, adv_acc, ece=0.1, temperature=1.5):
    clean = {"accuracy": acc, "ece": ece, "mean_entropy": 0.2, "mean_mutual_information": 1e-3}
    adv = {"accuracy": adv_acc, "ece": 2 * ece, "mean_entropy": 0.1, "mean_mutual_information": 2e-3}
    after = lambda a, e: {"accuracy": a, "ece": e, "mce": e, "nll": 1.0, "brier": 0.5}   # noqa: E731
    return {"model": model, "dataset": dataset, "attack": attack, "eps": 4.0, "eps_unit": "1/255",
            "counts": {"n": 50, "n_skipped": 0}, "clean": clean, "adv": adv, "sanity": {"checks": {"finite": True}},
            "calibrated": {"temperature": temperature, "n_evaluated": 40, "clean": {"after": after(acc, ece / 2)},
                           "adv": {"after": after(adv_acc, ece)}}}


def test_ts_rows_come_from_the_calibrated_block():
    ts = ts_result(_result("TeCoA", "world-shape", "pgd", 0.8, 0.3, ece=0.2))
    assert ts["model"] == "TeCoA + TS" and ts["counts"]["n"] == 40
    assert ts["clean"]["ece"] == 0.1 and ts["adv"]["ece"] == 0.2 and ts["temperature"] == 1.5
    rows = seed_rows([_result("A", "t1", "pgd", 0.8, 0.2, temperature=2.0), _result("A", "t2", "pgd", 0.6, 0.4,
                                                                                    temperature=1.0)])
    avg = next(r for r in rows if r["model"] == "A + TS" and r["dataset"] == "Average")
    assert avg["temperature"] == pytest.approx(1.5) and avg["clean_acc"] == pytest.approx(0.7)
    assert avg["H"] == pytest.approx(2 * 0.7 * 0.3 / (0.7 + 0.3))         # H of the averages, as the paper


def test_aggregate_orders_rows_and_matches_hand_values():
    per_seed = {s: seed_rows([_result(m, "t1", "pgd", 0.5 + 0.1 * s + d, 0.2 + 0.05 * s) for m, d in
                              (("B", 0.0), ("A", 0.1))]) for s in (0, 1, 2)}
    rows = aggregate(per_seed, ["A", "B"])
    models = list(dict.fromkeys(r["model"] for r in rows))
    assert models == ["A", "B", "A + TS", "B + TS"]
    a = next(r for r in rows if r["model"] == "A" and r["task"] == "Average")["columns"]["clean_acc"]
    vals = [0.6, 0.7, 0.8]
    assert a["values"] == pytest.approx(vals) and a["mean"] == pytest.approx(0.7)
    assert a["std"] == pytest.approx(statistics.stdev(vals))


def test_direction_words_follow_the_numbers():
    d = direction({"mean": 0.3, "values": [0.3, 0.2, 0.4]}, {"mean": 0.2, "values": [0.1, 0.3, 0.2]})
    assert d["word"] == "falls" and d["fell_in"] == 2 and d["seeds"] == 3
    assert direction({"mean": 0.1, "values": [0.1]}, {"mean": 0.2, "values": [0.2]})["word"] == "rises"


def test_phenomenon_counts_rows_where_entropy_falls():
    per_seed = {0: seed_rows([_result("A", "t", a, 0.9, 0.2) for a in ("pgd", "uncertainty")])}
    rows = aggregate(per_seed, ["A"])
    p = phenomenon(rows, ["A"], "entropy")
    assert p["rows"][0]["pgd"]["entropy"]["word"] == "falls"                # 0.2 -> 0.1 in _result
    assert p["rows"][0]["pgd"]["mutual_information"]["word"] == "rises"     # 1e-3 -> 2e-3
    assert any("entropy falls for 1 of 1 rows" in ln for ln in p["lines"])


def test_main_table_rows_in_order_with_mean_pm_std():
    per_seed = {s: seed_rows([_result(m, "t", a, 0.8, 0.3 + 0.01 * s) for m in ("CLIP", "UCAT")
                              for a in ("pgd", "cw", "aa-paper", "uncertainty")]) for s in (0, 1)}
    rows = aggregate(per_seed, ["CLIP", "UCAT"])
    md = main_table(rows, ["CLIP", "UCAT"], DemoConfig(seeds=2))
    names = [ln.split("|")[1].strip() for ln in md.splitlines() if ln.startswith("| ") and "Model" not in ln]
    assert names == ["CLIP", "UCAT", "CLIP + TS", "UCAT + TS"]
    pgd = f"{100 * statistics.mean([0.30, 0.31]):.1f} ± {100 * statistics.stdev([0.30, 0.31]):.1f}"
    assert pgd in md.splitlines()[4]


def test_eta_uses_measured_times_and_the_kind_ratio():
    stages = [Stage("train", "a", 0, "t a0", 10.0), Stage("train", "b", 0, "t b0", 20.0),
              Stage("train", "a", 1, "t a1", 10.0), Stage("eval", "x", 1, "e x1", 5.0)]
    now = [0.0]
    lines = []
    p = Progress(stages, lines.append, clock=lambda: now[0])

    def work(sec):
        now[0] += sec

    assert p.eta(0) == pytest.approx(45.0)                                   # nothing measured: the priors
    p.run(0, lambda: work(30.0))                                             # a0 took 3x its prior
    assert p.eta(1) == pytest.approx(20 * 3 + 30 + 5)                        # b0 scaled, a1 = a0, eval prior
    p.run(1, lambda: work(20.0))                                             # train ratio now 50/30
    assert p.eta(2) == pytest.approx(30 + 5)
    assert lines[0] == "[1/4] t a0 ... ETA 45s" and lines[1].startswith("[2/4] t b0 ... ETA 1m35s")
    assert fmt_duration(3725) == "1h02m" and fmt_duration(61) == "1m01s"


@pytest.mark.parametrize("kw, param", [({"seeds": 0}, "seeds"), ({"methods": ["nope"]}, "methods"),
                                       ({"methods": ["clean"]}, "methods"), ({"eval_n": 5}, "eval_n"), ({"calibration_data": "world-shape"}, "calibration_data"),
                                       ({"calibration_n": 10}, "calibration_n"),
                                       ({"optimizer": "lbfgs"}, "optimizer"), ({"lr_scale": 0.0}, "lr_scale"),
                                       ({"eps": float("nan")}, "eps"), ({"uncertainty_score": "x"}, "uncertainty_score")])
def test_bad_settings_are_refused_by_name(kw, param):
    with pytest.raises(ConfigError) as e:
        validate(DemoConfig(**kw))
    assert e.value.param == param


@pytest.mark.parametrize("argv, flag", [(["--seeds", "0"], "--seeds"), (["--methods", "tecoa", "sgd-magic"], "--methods"),
                                        (["--eval-n", "5"], "--eval-n")])
def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, argv, flag):
    from ucat.cli import main

    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and flag in err[0]
    assert not out.exists()
