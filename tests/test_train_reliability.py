"""Training faults (issue 13): bad settings, non-finite steps, unreadable data, pickled or damaged
checkpoints, changed settings on resume. Each case: a non-zero exit, one line naming the culprit,
and nothing valid overwritten."""
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from ucat.cli import main as cli_main
from ucat.methods import METHODS, Method
from ucat.train import TrainConfig, TrainingDiverged, train
from ucat.train.checkpoints import check_checkpoint, list_checkpoints
from ucat.train.state import decode, encode

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """2 colour classes x 4 noisy 32x32 PNGs."""
    root = tmp_path_factory.mktemp("two")
    g = torch.Generator().manual_seed(1)
    for name, rgb in {"red": (200, 30, 30), "blue": (30, 30, 200)}.items():
        (root / name).mkdir()
        for i in range(4):
            arr = (torch.tensor(rgb).view(1, 1, 3) + torch.randint(-30, 30, (32, 32, 3), generator=g))
            Image.fromarray(arr.clamp(0, 255).to(torch.uint8).numpy()).save(root / name / f"{i}.png")
    return root


def args(folder, out, *extra):
    return ["train", "--method", "tecoa", "--model", "ucat-tiny", "--data", str(folder), "--batch-size", "4",
            "--warmup-steps", "1", "--lr", "0.001", "--device", "cpu", "--no-progress", "--out", str(out), *extra]


@pytest.fixture(scope="module")
def finished(folder, tmp_path_factory):
    """A finished 2-step run with a checkpoint at each step (bytes of its final model kept)."""
    out = tmp_path_factory.mktemp("done") / "run"
    assert cli_main(args(folder, out, "--max-steps", "2", "--checkpoint-every", "1")) == 0
    return out


def snapshot(out: Path):
    return {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("extra, culprit", [
    (["--lr", "nan"], "--lr must be a finite number, got nan"),
    (["--lr", "inf"], "--lr must be a finite number"),
    (["--eps", "nan"], "--eps 'nan' is not a finite number"),
    (["--momentum", "-1"], "--momentum must be >= 0"),
    (["-O", "foo=1"], "-O foo: method 'tecoa' has no such option"),
    (["-O", "ce_weight=abc"], "-O ce_weight='abc': method 'tecoa' takes a number"),
    (["-O", "ce_weight=nan"], "-O ce_weight=nan: must be a finite number"),
])
def test_bad_settings_are_refused_before_anything_is_written(folder, finished, extra, culprit, capsys):
    before = snapshot(finished)
    assert cli_main(args(folder, finished, *extra)) == 2
    err = capsys.readouterr().err
    assert culprit in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert snapshot(finished) == before


def test_divergence_stops_before_writing_and_names_the_last_finite_checkpoint(folder, finished, tmp_path, capsys):
    """--lr 1e30: a non-finite step in a folder with a finished run: the run stops, nothing overwritten."""
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    final = (run / "final.safetensors").read_bytes()
    rc = cli_main(args(folder, run, "--lr", "1e30", "--max-steps", "2"))
    err = capsys.readouterr().err
    assert rc == 1 and "non-finite" in err and " at step " in err and "Traceback" not in err
    assert "the last intact checkpoint is (none yet)" in err
    assert (run / "final.safetensors").read_bytes() == final


class _NanGradient(Method):
    """Test-only: a finite loss whose gradient is NaN (d sqrt(|0 * z|) = inf * 0)."""

    uses_attack = False

    def forward(self, images, labels):
        logits = self.classifier(images)
        loss = torch.nn.functional.cross_entropy(logits, labels) + torch.sqrt((logits * 0).sum().abs())
        return {"loss": loss}


def test_non_finite_gradient_is_named(folder, tmp_path):
    METHODS.register("test-nan-grad", _NanGradient)
    try:
        cfg = TrainConfig(method="test-nan-grad", model="ucat-tiny", data=str(folder), batch_size=4, warmup_steps=1,
                          device="cpu", progress=False, out=str(tmp_path / "g"), max_steps=2)
        with pytest.raises(TrainingDiverged, match=r"non-finite gradient of .* at step 1") as info:
            train(cfg)
        assert info.value.step == 1 and info.value.checkpoint is None
        assert not (tmp_path / "g" / "final.safetensors").exists() and not list_checkpoints(tmp_path / "g")
    finally:
        METHODS._items.pop("test-nan-grad")


def test_unreadable_data_is_refused_and_nothing_exported(tmp_path, capsys):
    data = tmp_path / "broken"
    for c in ("a", "b"):
        (data / c).mkdir(parents=True)
        for i in range(3):
            (data / c / f"{i}.png").write_bytes(b"not an image at all")
    out = tmp_path / "run"
    rc = cli_main(args(data, out, "--max-steps", "2"))
    err = capsys.readouterr().err
    assert rc == 2 and "no readable image" in err and "Traceback" not in err
    assert not (out / "final.safetensors").exists()


def test_pickled_state_never_executes(folder, tmp_path, capsys):
    """A state.pt whose unpickling would create a marker file: refused by name, never run."""
    marker = tmp_path / "PWNED"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    ckpt = tmp_path / "run" / "checkpoints" / "step-00000002"
    ckpt.mkdir(parents=True)
    (ckpt / "state.pt").write_bytes(pickle.dumps({"step": Payload()}))
    torch.save({}, ckpt / "weights.safetensors")
    rc = cli_main(args(folder, tmp_path / "run", "--resume", "auto"))
    err = capsys.readouterr().err
    assert rc == 2 and str(ckpt / "state.pt") in err and "pickle" in err
    assert not marker.exists()


def test_resume_refuses_changed_settings(folder, finished, capsys):
    config = (finished / "config.yaml").read_bytes()
    rc = cli_main(args(folder, finished, "--max-steps", "2", "--checkpoint-every", "1", "--resume", "auto",
                       "--lr", "0.1", "--eps", "4"))
    err = capsys.readouterr().err
    assert rc == 2 and "lr 0.001 -> 0.1" in err and "eps 1.0 -> 4.0" in err
    assert (finished / "config.yaml").read_bytes() == config


def test_damaged_latest_checkpoint_falls_back_and_stale_temp_is_cleaned(folder, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli_main(args(folder, out, "--max-steps", "2", "--checkpoint-every", "1")) == 0
    first, latest = list_checkpoints(out)
    weights = latest / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])                  # truncated
    assert check_checkpoint(latest) is not None and check_checkpoint(first) is None
    stale = out / "checkpoints" / ".tmp-step-00000009-999999999"
    stale.mkdir()
    capsys.readouterr()
    assert cli_main(args(folder, out, "--max-steps", "2", "--checkpoint-every", "1", "--resume", "auto")) == 0
    err = capsys.readouterr().err
    assert "skipping damaged" in err and str(first) in err and f"resumed from {first} at step 1" in err
    assert not stale.exists()


def test_resume_auto_on_an_empty_folder_says_it_starts_fresh(folder, tmp_path, capsys):
    assert cli_main(args(folder, tmp_path / "new", "--max-steps", "1", "--resume", "auto")) == 0
    assert "no checkpoint in" in capsys.readouterr().err and (tmp_path / "new" / "final.safetensors").is_file()


def test_state_encoding_round_trips_exactly():
    import random

    import numpy as np

    from ucat.device import rng_state

    p = torch.nn.Parameter(torch.randn(3, 2))
    opt = torch.optim.AdamW([p], lr=0.1)
    p.grad = torch.randn(3, 2)
    opt.step()
    state = {"rng": rng_state(), "opt": opt.state_dict(), "x": float("nan"), "t": (1, "a", None), 3: [True]}
    tensors = {}
    tree = encode(state, tensors)
    back = decode(tree, tensors)
    assert back["rng"]["python"] == random.getstate()
    np.testing.assert_array_equal(back["rng"]["numpy"][1], np.random.get_state()[1])
    assert torch.equal(back["rng"]["torch"], torch.get_rng_state())
    assert torch.equal(back["opt"]["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert back["opt"]["param_groups"][0]["betas"] == (0.9, 0.999) and back["t"] == (1, "a", None)
    assert back[3] == [True] and back["x"] != back["x"]
