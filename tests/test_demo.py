"""``ucat demo`` end to end on a reduced setting (2 seeds, 2 tasks, tiny n, 2 steps): all seven rows and
their temperature-scaled baselines, finite, mean/std over seeds equal to the per-seed values', seeds
that differ, the same row order in Markdown and JSON, progress lines, the files it writes."""
import hashlib
import json
import statistics

import pytest

ROWS = ["CLIP", "TeCoA", "FARE", "PMG-AFT", "TGA-ZSR", "Comp-TGA", "UCAT"]
ATTACKS = ["pgd", "cw", "aa-paper", "uncertainty"]
ARGS = ["--quick", "--seeds", "2", "--tasks", "world-colour", "world-shape", "--eval-n", "30", "--eval-steps", "1",
        "--train-steps", "2", "--train-n", "64", "--batch-size", "16"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    import contextlib
    import io

    from ucat.cli import main

    out = tmp_path_factory.mktemp("demo") / "run"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["demo", "--out", str(out), *ARGS])
    assert code == 0
    return out, json.loads((out / "demo.json").read_text()), buf.getvalue()


def _avg(rec, model, attack):
    return next(r for r in rec["table"] if (r["model"], r["attack"], r["task"]) == (model, attack, "Average"))


def _seed_row(rec, seed, model, attack, task="Average"):
    return next(r for r in rec["per_seed"][str(seed)] if (r["model"], r["attack"], r["dataset"]) == (model, attack, task))


@pytest.mark.slow
def test_all_rows_and_ts_rows_with_finite_values(demo):
    out, rec, text = demo
    assert rec["rows"] == ROWS and rec["seeds"] == [0, 1] and rec["tasks"] == ["world-colour", "world-shape"]
    for model in ROWS + [m + " + TS" for m in ROWS]:
        for attack in ATTACKS:
            cols = _avg(rec, model, attack)["columns"]
            shown = ["clean_acc", "robust_acc", "H", "clean_ece", "adv_ece"]
            if not model.endswith(" + TS"):
                shown += ["clean_entropy", "adv_entropy", "clean_mutual_information", "adv_mutual_information"]
            for name in shown:
                c = cols[name]
                assert len(c["values"]) == 2 and all(v is not None for v in c["values"]), (model, attack, name)
                assert c["mean"] is not None and c["std"] is not None
            for name in ("clean_acc", "robust_acc", "clean_ece", "adv_ece"):
                assert all(0.0 <= v <= 1.0 for v in cols[name]["values"])
    assert "| UCAT + TS |" in (out / "demo_table.md").read_text() and "| Comp-TGA |" in text


@pytest.mark.slow
def test_mean_std_equal_the_per_seed_values(demo):
    _, rec, _ = demo
    for model in ("CLIP", "FARE", "UCAT + TS"):
        for attack in ("pgd", "aa-paper"):
            for name in ("clean_acc", "robust_acc", "adv_ece"):
                vals = [_seed_row(rec, s, model, attack)[name] for s in (0, 1)]
                c = _avg(rec, model, attack)["columns"][name]
                assert c["values"] == pytest.approx(vals)
                assert c["mean"] == pytest.approx(statistics.mean(vals), abs=1e-12)
                assert c["std"] == pytest.approx(statistics.stdev(vals), abs=1e-12)
            # H of the averages (the paper's), per seed, from the per-seed clean and robust accuracy
            r = _seed_row(rec, 0, model, attack)
            a, b = r["clean_acc"], r["robust_acc"]
            assert r["H"] == pytest.approx(0.0 if a + b == 0 else 2 * a * b / (a + b))


@pytest.mark.slow
def test_seeds_differ(demo):
    out, rec, _ = demo
    for model in ROWS:
        differs = [name for attack in ATTACKS for name in ("robust_acc", "adv_ece", "adv_entropy", "clean_ece")
                   if _seed_row(rec, 0, model, attack)[name] != _seed_row(rec, 1, model, attack)[name]]
        assert differs, f"{model}: both seeds gave identical numbers"
    for m in ("tecoa", "ucat"):
        w = [hashlib.sha256(open(rec["training"][str(s)][m]["weights"], "rb").read()).hexdigest() for s in (0, 1)]
        assert w[0] != w[1], f"{m}: the fine-tuning seed does not change the weights"
    assert rec["training"]["0"]["tecoa"]["weights"].startswith(str(out / "train" / "seed0"))


@pytest.mark.slow
def test_rows_in_the_same_order_in_md_and_json(demo):
    out, rec, _ = demo
    order = ROWS + [m + " + TS" for m in ROWS]
    table = [ln.split("|")[1].strip() for ln in (out / "demo_table.md").read_text().splitlines()
             if ln.startswith("| ") and not ln.startswith("| Model")]
    assert table == order
    assert list(dict.fromkeys(r["model"] for r in rec["table"])) == order
    md = (out / "demo.md").read_text()
    pgd = md.split("### PGD (pgd)")[1].split("###")[0]
    assert [ln.split("|")[1].strip() for ln in pgd.splitlines() if ln.startswith("| ") and "Model" not in ln] == ROWS
    assert [p["model"] for p in rec["phenomenon"]["rows"]] == ROWS


@pytest.mark.slow
def test_progress_lines_and_files(demo):
    out, rec, text = demo
    n = 2 * (6 + 7) + 1
    lines = [ln for ln in text.splitlines() if ln.startswith("[")]
    assert len(lines) == n and lines[0].startswith(f"[1/{n}] fine-tuning TeCoA seed 0 ... ETA ")
    assert any(ln.startswith(f"[{6 + 7 + 3}/{n}] fine-tuning PMG-AFT seed 1 ... ETA ") for ln in lines)
    for name in ("demo.md", "demo_table.md", "demo.json", "demo_config.yaml", "demo_log.txt",
                 "eval/seed0/report.html", "eval/seed1/summary.md"):
        assert (out / name).is_file(), name
    assert "UCAT" in (out / "eval" / "seed1" / "report.html").read_text()
    assert len(rec["plots"]) == 5
    for name in rec["plots"]:
        assert (out / name).stat().st_size > 1000
    assert len(rec["timings"]["stages"]) == n - 1          # all but the report stage, which writes them


@pytest.mark.slow
def test_demo_config_yaml_is_reusable(demo, tmp_path, capsys):
    from ucat.cli import main

    out, _, _ = demo
    # the written settings load as flags; an override on top is checked like any flag
    assert main(["demo", "--config", str(out / "demo_config.yaml"), "--out", str(tmp_path / "x"), "--seeds", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--seeds" in err[0]
