"""Smoke tests: every benchmark script runs in --smoke mode and prints well-formed JSON lines.

The numbers are not checked (CPU timings are noise here); the structure and the invariants of the
records are. Each script's ``main`` runs in-process (seconds); one test runs the isolated
subprocess path that CPU peak-memory numbers rely on.
"""
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))


def _lines(capsys):
    out = capsys.readouterr().out
    recs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert recs, f"no JSON lines printed: {out[-500:]}"
    for r in recs:
        assert r["schema"] == "ucat-bench/1"
        assert "date" in r and "bench" in r
    return recs


def test_train_step_smoke(capsys, tmp_path):
    import bench_train_step

    jsonl = tmp_path / "b.jsonl"
    rc = bench_train_step.main(["--smoke", "--device", "cpu", "--jsonl", str(jsonl)])
    recs = _lines(capsys)
    assert rc == 0, recs
    by_variant = {r["variant"]: r for r in recs}
    assert set(by_variant) == {"ours", "baseline", "floor", "summary", "loss_check"}
    for v in ("ours", "baseline", "floor"):
        r = by_variant[v]
        assert r["status"] == "ok", r
        assert r["median_s"] > 0 and r["images_per_s"] == pytest.approx(r["batch"] / r["median_s"])
        assert r["machine"]["torch"] and r["precision"] == "fp32" and r["arch"] == "ucat-tiny"
        assert r["interleaved"] is True and len(r["times_s"]) == r["reps"] == 1
    s = by_variant["summary"]
    assert s["speedup_vs_baseline"] == pytest.approx(
        by_variant["baseline"]["median_s"] / by_variant["ours"]["median_s"], rel=1e-2)
    # FLOPs of the UCAT floor per image: 2 attack passes (2F each) + 3F + 1F = 8 forwards
    assert by_variant["floor"]["flops_per_image"] > 0
    assert by_variant["floor"]["flops_per_image"] % 8 == 0
    assert len(jsonl.read_text().splitlines()) == len(recs)
    # bf16 autocast keeps the loss within a few percent of fp32 (Dirichlet terms stay fp32+)
    check = by_variant["loss_check"]
    assert check["status"] == "ok" and set(check["loss_fp32"]) >= {"loss", "ce", "kl"}
    assert check["loss_rel_diff"] < 0.05


def test_train_step_isolated_worker_reports_memory(capsys):
    import bench_train_step

    rc = bench_train_step.main(["--smoke", "--device", "cpu", "--isolate", "yes", "--variants", "floor",
                                "--threads", "1"])
    recs = _lines(capsys)
    assert rc == 0, recs
    floor = next(r for r in recs if r["variant"] == "floor")
    assert floor["status"] == "ok", floor
    assert floor["isolated"] is True
    assert floor["peak_rss_bytes"] >= floor["rss_after_setup_bytes"] > 0
    assert floor["peak_mem_bytes"] == floor["peak_rss_bytes"] - floor["rss_after_setup_bytes"]


def test_unknown_method_is_reported_not_crashed(capsys):
    import bench_train_step

    rc = bench_train_step.main(["--smoke", "--device", "cpu", "--methods", "nope", "--variants", "floor"])
    recs = _lines(capsys)
    assert rc == 1
    assert "no floor definition" in recs[0]["error"]


def test_eval_smoke(capsys):
    import bench_eval

    rc = bench_eval.main(["--smoke", "--device", "cpu"])
    recs = _lines(capsys)
    assert rc == 0, [r for r in recs if r.get("status") not in (None, "ok")]
    attacks = [r for r in recs if r["bench"] == "eval_attack" and r["variant"] != "summary"]
    assert {(r["attack"], r["variant"]) for r in attacks} == {
        ("pgd", "ours"), ("pgd", "baseline"), ("pgd", "ours-frozen"), ("cw", "ours"), ("cw", "ours-frozen")}
    assert all(r["s_per_image"] > 0 for r in attacks)
    full = [r for r in recs if r["bench"] == "eval_full"]
    assert len(full) == 1 and full[0]["status"] == "ok" and full[0]["rc"] == 0


def test_text_head_smoke(capsys):
    import bench_text_head

    rc = bench_text_head.main(["--smoke", "--device", "cpu"])
    recs = _lines(capsys)
    assert rc == 0
    builds = [r for r in recs if r["variant"] == "build"]
    assert [(r["classes"], r["templates"], r["prompts"]) for r in builds] == [(5, 1, 5), (5, 2, 10)]
    assert builds[1]["s_per_prompt"] == pytest.approx(builds[1]["median_s"] / 10)
    assert all(r["hit_equals_miss"] is True for r in recs if r["variant"] == "cache")
    per_call = [r for r in recs if r["variant"] == "research_per_call"]
    assert len(per_call) == 1 and per_call[0]["fwd_bwd_median_s"] > 0 and per_call[0]["fwd_median_s"] > 0


def test_scaling_smoke(capsys):
    import bench_scaling

    rc = bench_scaling.main(["--smoke", "--device", "cpu"])
    recs = _lines(capsys)
    assert rc == 0
    summaries = {r["sweep"]: r for r in recs if r.get("variant") == "summary"}
    assert set(summaries) == {"classes", "batch"}
    assert summaries["classes"]["max_over_min"] >= 1.0
    assert summaries["classes"]["classes"] == [10, 1000]


def test_loader_smoke(capsys):
    import bench_loader

    rc = bench_loader.main(["--smoke", "--device", "cpu", "--target-img-s", "100"])
    recs = _lines(capsys)
    assert rc == 0
    assert [r["workers"] for r in recs] == [0, 1]
    for r in recs:
        assert r["bench"] == "loader" and r["images"] == r["images_seen"] == 16
        assert r["images_per_s"] == pytest.approx(16 / r["median_s"])
        assert r["workers_for_target"] >= 1


def test_loader_cache_smoke(capsys):
    import bench_loader

    rc = bench_loader.main(["--smoke", "--device", "cpu", "--cache", "both", "--target-img-s", "100"])
    recs = _lines(capsys)
    assert rc == 0
    assert [(r["mode"], r["workers"]) for r in recs] == [("cache-build", 0), ("decode", 0), ("decode", 1),
                                                         ("cache", 0), ("cache", 1), ("cache-uint8", 0),
                                                         ("cache-uint8", 1)]
    assert all(r["identical"] is True for r in recs[1:])          # cached batches equal the decoded ones
    assert recs[0]["cache_bytes"] >= 16 * 3 * 64 * 64             # 16 uint8 images of 3 x 64 x 64, plus a header
    for r in recs:
        assert r["images_seen"] == 16 and r["workers_for_target"] >= 1


def test_run_all_rejects_unknown_benchmark():
    import run_all

    with pytest.raises(SystemExit):
        run_all.main(["--only", "bench_nope"])


def test_optimizer_smoke(capsys):
    import bench_optimizer

    rc = bench_optimizer.main(["--smoke", "--device", "cpu"])
    recs = _lines(capsys)
    assert rc == 0
    assert {(r["optimizer"], r["variant"]) for r in recs} == {
        (o, v) for o in ("sgd", "adamw") for v in ("loop", "foreach", "ucat")}
    ours = [r for r in recs if r["variant"] == "ucat"]
    assert all(r["status"] == "ok" and r["median_s"] > 0 and r["params"] > 0 for r in ours)


def test_table16_cost_model_and_rates(capsys, tmp_path):
    import table16_cost as t16

    # DTD's 1,880 images in batches of 512 (512, 512, 512, 344), dealt round-robin
    assert t16.rank_loads(1880, 2) == [1024, 856]
    assert t16.rank_loads(1880, 8) == [512, 512, 512, 344, 0, 0, 0, 0]
    names = [d[0] for d in t16.DATASETS]
    assert len(names) == 16 and len(t16.UCAT_CLEAN) == len(t16.UCAT_PGD) == 16
    pcam = t16.passes_per_image(names.index("pcam"), 2)
    assert pcam["pgd"] == (100.0, 1.0)
    # PCAM: APGD-CE alone on its 51.20% clean-correct points; 7 check forwards, 1 clean, 1 ucat logits
    assert pcam["aa"] == pytest.approx((0.512 * 101, 7 + 1 + 2 * 0.512 + 1))
    rec = {"schema": "ucat-bench/1", "date": "d", "bench": "eval_attack", "attack": "pgd", "arch": "ViT-B-32",
           "status": "ok", "batch": 512, "classes": 397, "variant": "ours", "machine": {}}
    lines = [dict(rec, device="cuda", precision="bf16", steps=100, s_per_image=0.01005),
             dict(rec, device="cpu", precision="fp32", variant="ours-frozen", run="E1", steps=2, s_per_image=0.25),
             dict(rec, device="cpu", precision="fp32", variant="ours-frozen", run="E1", steps=4, s_per_image=0.45)]
    src = tmp_path / "rates.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    assert t16.main(["--jsonl", str(src), "--gpus", "1,8"]) == 0
    summary = _lines(capsys)[-1]
    assert summary["g_gpu_s"] == pytest.approx(0.01005 / 100.5)          # 100 steps + the adversarial logits
    assert summary["g_cpu_s"] == pytest.approx(0.1)                        # (0.45 - 0.25) / (4 - 2)
    assert summary["images"] == sum(d[1] for d in t16.DATASETS)
    hours = summary["wall_hours"]
    assert hours["1"] / 8 < hours["8"] < hours["1"]                        # never better than linear
    assert summary["cpu_days"] == pytest.approx(summary["gpu_hours_1"] / 24 * 0.1 / summary["g_gpu_s"])
