"""`ucat eval` never reports a stale, overwritten or non-finite result, and refuses bad input before any work.

Each case: the exit code through ``ucat.cli.main``, the message names the culprit, nothing valid
was overwritten. Tiny folder datasets (3 colour classes) and the random ``ucat-tiny`` CLIP.
"""
import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from PIL import Image

from ucat.cli import main as cli_main
from ucat.eval.evaluator import Evaluator
from ucat.eval.results import ResultLock, dataset_slug


def _colours(root, n=3, shift=0):
    g = torch.Generator().manual_seed(shift)
    for name, rgb in {"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200)}.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            noise = torch.randint(-40, 40, (32, 32, 3), generator=g)
            arr = (torch.tensor(rgb).view(1, 1, 3) + noise).clamp(0, 255).to(torch.uint8).numpy()
            Image.fromarray(arr).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return _colours(tmp_path_factory.mktemp("data") / "colours")


def _args(data, out, *extra):
    return ["eval", "--model", "ucat-tiny", "--datasets", *map(str, data if isinstance(data, list) else [data]),
            "--device", "cpu", "--no-progress", "--no-plots", "--batch-size", "5", "--steps", "1",
            "--attacks", "none", "--out", str(out), *extra]


def _strict(path):
    """The JSON, refusing NaN/Infinity literals (strict RFC 8259)."""
    def bad(c):
        raise AssertionError(f"{path}: non-strict JSON constant {c}")
    return json.loads(path.read_text(), parse_constant=bad)


def _checkpoint(path, scale):
    from ucat.models import load_clip
    from ucat.models.checkpoint import save_vision_weights

    torch.manual_seed(0)
    bundle = load_clip("ucat-tiny")
    with torch.no_grad():
        bundle.model.visual.proj.mul_(scale)
    save_vision_weights(bundle.encoder, path, {"arch": "ucat-tiny"})


def test_retrained_checkpoint_is_recomputed_and_says_why(folder, tmp_path, capsys):
    ckpt, out = tmp_path / "run" / "final.safetensors", tmp_path / "eval"
    ckpt.parent.mkdir()
    _checkpoint(ckpt, 1.0)
    assert cli_main(_args(folder, out, "--checkpoint", str(ckpt))) == 0
    res = out / "final" / dataset_slug(str(folder)) / "none-eps0.json"
    first = _strict(res)
    _checkpoint(ckpt, -1.0)                                   # "retrain" into the same path
    capsys.readouterr()
    assert cli_main(_args(folder, out, "--checkpoint", str(ckpt))) == 0
    err = capsys.readouterr().err
    assert "recomputing" in err and "weights changed" in err and "none-eps0.json" in err
    second = _strict(res)
    assert second["key"]["weights"] != first["key"]["weights"]
    fresh_out = tmp_path / "fresh"
    assert cli_main(_args(folder, fresh_out, "--checkpoint", str(ckpt))) == 0
    fresh = _strict(fresh_out / "final" / dataset_slug(str(folder)) / "none-eps0.json")
    assert second["clean"]["accuracy"] == fresh["clean"]["accuracy"]     # the new model's numbers, not the old
    assert second["clean"]["nll"] == fresh["clean"]["nll"] != first["clean"]["nll"]


def test_changed_images_are_recomputed(tmp_path, capsys):
    data, out = _colours(tmp_path / "pics"), tmp_path / "eval"
    assert cli_main(_args(data, out)) == 0
    (data / "red" / "0.png").unlink()
    capsys.readouterr()
    assert cli_main(_args(data, out)) == 0
    err = capsys.readouterr().err
    assert "recomputing" in err and "data changed" in err
    assert _strict(out / "ucat-tiny" / dataset_slug(str(data)) / "none-eps0.json")["counts"]["n"] == 8


def test_finished_result_is_not_recomputed(folder, tmp_path, monkeypatch, capsys):
    out = tmp_path / "eval"
    assert cli_main(_args(folder, out)) == 0
    monkeypatch.setattr(Evaluator, "logits", lambda *a, **k: pytest.fail("a finished result was recomputed"))
    assert cli_main(_args(folder, out)) == 0
    assert "recomputing" not in capsys.readouterr().err


def test_two_folders_with_the_same_name_give_two_results(tmp_path):
    a, b = _colours(tmp_path / "a" / "pics"), _colours(tmp_path / "b" / "pics", n=2, shift=1)
    out = tmp_path / "eval"
    assert cli_main(_args([a, b], out)) == 0
    found = sorted((out / "ucat-tiny").glob("pics-*/none-eps0.json"))
    assert len(found) == 2
    assert sorted(_strict(f)["counts"]["n"] for f in found) == [6, 9]
    assert len((out / "summary.csv").read_text().splitlines()) == 1 + 2 + 1     # two rows and the average


def test_a_result_being_computed_by_a_live_run_is_refused(folder, tmp_path, capsys):
    out = tmp_path / "eval"
    path = out / "ucat-tiny" / dataset_slug(str(folder)) / "none-eps0.json"
    path.parent.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (path.parent / "none-eps0.json.lock").write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname()}))
        assert cli_main(_args(folder, out)) == 2
        assert "being computed by another run" in capsys.readouterr().err
        assert not path.exists()
    finally:
        holder.kill()
        holder.wait()
    assert cli_main(_args(folder, out)) == 0                  # the holder is gone: its lock is stale, taken over
    assert path.is_file() and not (path.parent / "none-eps0.json.lock").exists()


def test_lock_is_exclusive(tmp_path):
    first, second = ResultLock(tmp_path / "r.json"), ResultLock(tmp_path / "r.json")
    first.acquire()
    with pytest.raises(Exception, match="another run"):
        second.acquire()
    first.release()
    second.acquire()
    second.release()


def test_non_finite_model_fails_and_writes_no_nan(folder, tmp_path, capsys):
    ckpt, out = tmp_path / "nan.safetensors", tmp_path / "eval"
    _checkpoint(ckpt, float("nan"))
    rc = cli_main(_args(folder, out, "--checkpoint", str(ckpt)))
    err = capsys.readouterr().err
    assert rc != 0 and ("non-finite" in err or "NaN" in err or "nan" in err)
    for f in out.rglob("*.json"):
        r = _strict(f)                                       # never a NaN literal
        if "sanity" in r:
            assert r["sanity"]["checks"]["finite"] is False and "clean.ece" in r["non_finite"]


def test_sanity_checks_flag_nan_logits():
    from ucat.eval.checks import sanity_checks
    from ucat.eval.table import split_metrics

    labels = torch.tensor([0, 1, 1])
    good = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    bad = good.clone()
    bad[0, 0] = float("nan")
    res = {"eps": 1.0, "clean": split_metrics(good, labels, 100.0, 0.07), "adv": split_metrics(bad, labels, 100.0, 0.07)}
    s = sanity_checks(res, good, bad)
    assert s["checks"]["finite"] is False and any(k.startswith("adv.") for k in s["non_finite"])
    ok = sanity_checks({**res, "adv": res["clean"]}, good, good)
    assert ok["checks"]["finite"] is True


@pytest.mark.parametrize("extra, culprit", [
    (["--attacks", "pgd", "-A", "pgd.foo=1"], "foo"),
    (["--attacks", "cw", "-A", "cw.kappa=abc"], "kappa"),
    (["--attacks", "pgd", "--steps", "0"], "--steps"),
    (["--attacks", "pgd", "--norm", "l2", "--eps", "inf"], "--eps"),
])
def test_bad_settings_are_refused_before_any_work(folder, tmp_path, monkeypatch, capsys, extra, culprit):
    monkeypatch.setattr(Evaluator, "logits", lambda *a, **k: pytest.fail("work started before the refusal"))
    assert cli_main(_args(folder, tmp_path / "eval", *extra)) == 2      # later flags win over _args' defaults
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and culprit in err[0], err


def test_one_class_dataset_is_refused(tmp_path, capsys):
    data = tmp_path / "one"
    (data / "only").mkdir(parents=True)
    Image.new("RGB", (32, 32), (10, 20, 30)).save(data / "only" / "0.png")
    assert cli_main(_args(data, tmp_path / "eval")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "class" in err[0] and "one" in err[0]


def test_two_concurrent_runs_into_one_out_never_corrupt_each_other(folder, tmp_path):
    """Same --out, same results, started together: each run finishes or is refused in one line; every JSON is whole."""
    out = tmp_path / "shared"
    cmd = [sys.executable, "-m", "ucat", *_args(folder, out, "--attacks", "none", "pgd", "--eps", "1")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=240) for p in procs]
    codes = [p.returncode for p in procs]
    assert 0 in codes and set(codes) <= {0, 2}, [o[1][-2000:] for o in outs]
    for code, (_, err) in zip(codes, outs):
        assert "Traceback" not in err
        if code == 2:
            assert "being computed by another run" in err
    results = sorted(f for f in (out / "ucat-tiny").rglob("*.json") if not f.name.endswith("_clip_benchmark.json"))
    assert len(results) == 2 and all(_strict(f)["counts"]["n"] == 9 for f in results)
    assert not list(out.rglob("*.lock")) and not list(out.rglob("*.tmp"))


def test_registered_dataset_fingerprint_is_its_own_folder(tmp_path, monkeypatch):
    """A file of the dataset changes the fingerprint; a file of another dataset under the same root does not."""
    from ucat.eval.results import data_fingerprint

    batches = tmp_path / "cifar-10-batches-py"
    batches.mkdir()
    (batches / "test_batch").write_bytes(b"x" * 10)
    (tmp_path / "other-dataset").mkdir()
    before = data_fingerprint("cifar10", str(tmp_path), None)
    (tmp_path / "other-dataset" / "new.bin").write_bytes(b"y")
    assert data_fingerprint("cifar10", str(tmp_path), None) == before
    (batches / "test_batch").write_bytes(b"x" * 11)
    assert data_fingerprint("cifar10", str(tmp_path), None) != before
    gen = data_fingerprint("world-shape", None, None)
    assert gen["generated"] == "world-shape" and gen == data_fingerprint("world-shape", None, None)
    assert data_fingerprint("world-shape", None, "train") != gen


def test_a_refused_run_overwrites_nothing(folder, tmp_path):
    out = tmp_path / "eval"
    assert cli_main(_args(folder, out)) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    one = tmp_path / "one"
    (one / "only").mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(one / "only" / "0.png")
    assert cli_main(_args([folder, one], out)) == 2                     # refused at the second dataset
    assert cli_main(_args(folder, out, "--steps", "0")) == 2
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before


def test_missing_checkpoint_is_one_line(folder, tmp_path, capsys):
    assert cli_main(_args(folder, tmp_path / "eval", "--checkpoint", str(tmp_path / "nope.safetensors"))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.safetensors" in err[0] and "does not exist" in err[0]


def test_out_pointing_at_a_file_is_refused_before_any_work(tmp_path, capsys):
    target = tmp_path / "results.txt"
    target.write_text("finished work")
    assert cli_main(["eval", "--n-samples", "4", "--out", str(target)]) == 2
    assert "--out" in capsys.readouterr().err and target.read_text() == "finished work"
