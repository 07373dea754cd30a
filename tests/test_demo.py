"""``ucat demo --quick`` end to end: the shipped CLIP, TeCoA and UCAT, the table and the report files."""
import json

import pytest


@pytest.mark.slow
def test_demo_quick_end_to_end(tmp_path, capsys):
    from ucat.cli import main

    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--eval-n", "24"]) == 0
    text = capsys.readouterr().out
    assert "[4/4] comparison" in text and "| UCAT |" in text and "| TeCoA |" in text
    rec = json.loads((out / "demo.json").read_text())
    md = (out / "demo.md").read_text()
    assert "## Per task" in md and "world-heldout" in md
    rows = rec["table"]
    models = {r["model"] for r in rows}
    assert models == {"CLIP", "TeCoA", "UCAT"}
    tasks = rec["tasks"]
    assert len(tasks) >= 6
    for m in models:
        mine = [r for r in rows if r["model"] == m]
        assert len(mine) == len(tasks) + 1 and mine[-1]["task"] == "Average"
        for r in mine:
            assert 0.0 <= r["robust_acc"] <= r["clean_acc"] + 1e-9 <= 1.0 + 1e-9
            assert 0.0 <= r["clean_entropy"] <= 1.0 and 0.0 <= r["adv_entropy"] <= 1.0
        avg = mine[-1]
        assert abs(avg["clean_acc"] - sum(r["clean_acc"] for r in mine[:-1]) / len(tasks)) < 1e-9
    # the shipped CLIP's clean accuracy is far above chance even on this tiny sample
    clip = next(r for r in rows if r["model"] == "CLIP" and r["task"] == "Average")
    assert clip["clean_acc"] > 0.5
    for name in rec["plots"]:
        assert (out / name).is_file() and (out / name).stat().st_size > 1000
    assert (out / "demo_summary.png").is_file()
    assert len(rec["phenomenon"]["lines"]) == 5


def test_demo_rejects_bad_input(tmp_path):
    from ucat.cli import main

    assert main(["demo", "--quick", "--out", str(tmp_path), "--eps", "0.004"]) == 2
    assert main(["demo", "--quick", "--out", str(tmp_path), "--eval-n", "0"]) == 2
