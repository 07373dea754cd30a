"""Trainer: exact resume, export loadable by open_clip and ucat, held-out selection, divergence
handling, the CLI's bad-input errors, and a 2-process gloo run with identical weights."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from ucat.cli import main as cli_main
from ucat.methods import METHODS, Method
from ucat.train import TrainConfig, TrainingDiverged, lr_multiplier, train
from ucat.train.checkpoints import list_checkpoints

CLASSES = ["red", "green", "blue", "yellow"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """A generated ImageFolder tree: 4 colour classes x 6 noisy 32x32 images."""
    root = tmp_path_factory.mktemp("colours")
    g = torch.Generator().manual_seed(0)
    base = {"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200), "yellow": (200, 200, 30)}
    for name, rgb in base.items():
        (root / name).mkdir()
        for i in range(6):
            noise = torch.randint(-40, 40, (32, 32, 3), generator=g)
            arr = (torch.tensor(rgb).view(1, 1, 3) + noise).clamp(0, 255).to(torch.uint8).numpy()
            Image.fromarray(arr).save(root / name / f"{i}.png")
    return root


def tiny_cfg(folder, out, **kw):
    base = dict(method="ucat", model="ucat-tiny", data=str(folder), epochs=1, batch_size=4, lr=1e-3,
                warmup_steps=2, log_every=1, progress=False, device="cpu", out=str(out), seed=0)
    base.update(kw)
    return TrainConfig(**base)


def visual_weights(path):
    return {k: v for k, v in load_file(str(path)).items() if k.startswith("visual.")}


def test_schedule_matches_the_official_cosine():
    assert lr_multiplier(0, 100, 10, "cosine") == pytest.approx(0.1)
    assert lr_multiplier(9, 100, 10, "cosine") == pytest.approx(1.0)
    assert lr_multiplier(10, 100, 10, "cosine") == pytest.approx(1.0)
    assert lr_multiplier(55, 100, 10, "cosine") == pytest.approx(0.5)
    assert lr_multiplier(99, 100, 10, "cosine") == pytest.approx(0.5 * (1 + math.cos(89 / 90 * math.pi)))
    assert lr_multiplier(50, 100, 10, "constant") == 1.0


class _Killed(Exception):
    pass


def test_kill_and_resume_is_bit_identical(image_folder, tmp_path):
    """4 uninterrupted steps == (killed after step 3, last checkpoint at step 2) + resume."""
    straight = train(tiny_cfg(image_folder, tmp_path / "a", max_steps=4))
    seen = []

    def kill_at_3(step, state):      # the public callback hook: raising stops the run like a kill
        seen.append((step, state.epoch, state.last_checkpoint.name if state.last_checkpoint else None))
        if step == 3:
            raise _Killed

    with pytest.raises(_Killed):
        train(tiny_cfg(image_folder, tmp_path / "b", max_steps=4, checkpoint_every=2), callbacks=[kill_at_3])
    assert seen == [(1, 0, None), (2, 0, "step-00000002"), (3, 0, "step-00000002")]
    assert [c.name for c in list_checkpoints(tmp_path / "b")] == ["step-00000002"]
    assert not (tmp_path / "b" / "final.safetensors").exists()
    resumed = train(tiny_cfg(image_folder, tmp_path / "b", max_steps=4, checkpoint_every=2, resume="auto"))
    a, b = visual_weights(straight.final), visual_weights(resumed.final)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["step"] for r in resumed.history] == ["1", "2", "3", "4"]    # the killed run's step 3 row was replaced
    assert float(resumed.history[-1]["loss"]) == pytest.approx(float(straight.history[-1]["loss"]), rel=0, abs=0)
    # the run directory: resolved config + versions, per-term CSV, checkpoint pair, summary
    out = tmp_path / "a"
    assert (out / "config.yaml").is_file() and (out / "versions.json").is_file()
    assert {"ce", "kl", "kl_weighted", "loss", "lr", "acc_train_adv"} <= set(straight.history[0])
    ckpt = straight.checkpoint
    assert {p.name for p in ckpt.iterdir()} == {"weights.safetensors", "state.safetensors", "state.json"}
    assert json.loads((out / "summary.json").read_text())["steps"] == 4
    # a fresh run in the same folder sets the earlier run's checkpoints aside instead of mixing them
    again = train(tiny_cfg(image_folder, out, max_steps=1))
    assert [c.name for c in (out / "checkpoints").iterdir()] == ["step-00000001"]
    assert (out / "checkpoints.previous" / ckpt.name / "state.json").is_file() and again.steps == 1


def test_export_loads_in_open_clip_and_ucat(image_folder, tmp_path):
    import open_clip

    from ucat.models import load_clip
    from ucat.models.checkpoint import load_vision_weights, read_metadata

    res = train(tiny_cfg(image_folder, tmp_path / "run", method="tecoa", max_steps=2, last_n_blocks=1,
                         val_fraction=0.25, select="best", val_attack_steps=1))
    assert res.best is not None and res.export == res.best and res.validation
    exported = load_file(str(res.final))
    model = open_clip.create_model("ucat-tiny", pretrained=str(res.final))
    for k, v in model.state_dict().items():
        assert torch.equal(v, exported[k]), k
    fresh = load_clip("ucat-tiny")
    meta = load_vision_weights(fresh, res.final)
    assert meta["method"] == "tecoa" and meta["eps"] == 1.0 and meta["eps_unit"] == "1/255"
    assert torch.equal(fresh.model.visual.proj, exported["visual.proj"])
    # last_n_blocks=1: the first block and the text tower are untouched
    torch.manual_seed(0)
    original = load_clip("ucat-tiny")
    sd = original.model.state_dict()
    assert torch.equal(exported["visual.transformer.resblocks.0.mlp.c_fc.weight"], sd["visual.transformer.resblocks.0.mlp.c_fc.weight"])
    assert torch.equal(exported["token_embedding.weight"], sd["token_embedding.weight"])
    assert not torch.equal(exported["visual.transformer.resblocks.1.mlp.c_fc.weight"], sd["visual.transformer.resblocks.1.mlp.c_fc.weight"])
    assert read_metadata(res.checkpoint / "weights.safetensors")["method"] == "tecoa"


class _NanAfterTwo(Method):
    """Test-only method: plain CE whose loss turns NaN at the third call."""

    uses_attack = False

    def __init__(self, classifier, reference, attack=None):
        super().__init__(classifier, reference, attack)
        self.calls = 0

    def forward(self, images, labels):
        self.calls += 1
        loss = torch.nn.functional.cross_entropy(self.classifier(images), labels)
        return {"loss": loss * float("nan") if self.calls > 2 else loss}


@pytest.fixture()
def nan_method():
    METHODS.register("test-nan-after-2", _NanAfterTwo)
    yield "test-nan-after-2"
    METHODS._items.pop("test-nan-after-2")   # keep the registry as shipped for other tests


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(image_folder, tmp_path, nan_method):
    with pytest.raises(TrainingDiverged, match=r"non-finite loss at step 3.*last intact checkpoint is .*step-00000002"):
        train(tiny_cfg(image_folder, tmp_path / "nan", method=nan_method, checkpoint_every=2))
    ckpts = sorted((tmp_path / "nan" / "checkpoints").iterdir())
    assert [c.name for c in ckpts] == ["step-00000002"]
    w = load_file(str(ckpts[0] / "weights.safetensors"))
    assert all(torch.isfinite(v).all() for v in w.values())


def test_cli_bad_input(image_folder, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("UCAT_DATA", raising=False)
    assert cli_main(["train", "--method", "trades", "--data", str(image_folder)]) == 2
    err = capsys.readouterr().err
    assert "unknown method 'trades'" in err and "tecoa" in err and "ucat" in err
    assert cli_main(["train", "--eps", "0.0039", "--data", str(image_folder)]) == 2
    err = capsys.readouterr().err
    assert "--eps '0.0039'" in err and "0.9945" in err
    assert cli_main(["train", "--data", "tinyimagenet", "--data-root", str(tmp_path / "nowhere")]) == 2
    assert "nowhere: no such directory" in capsys.readouterr().err
    assert cli_main(["train", "--model", "ucat-tiny", "--data", "tinyimagenet", "--device", "cpu"]) == 2
    assert "--data-root" in capsys.readouterr().err
    assert cli_main(["train", "--select", "best"]) == 2
    assert "--val-fraction" in capsys.readouterr().err
    assert cli_main(["train", "--precision", "fp16", "--device", "cpu", "--data", str(image_folder)]) == 2
    assert "fp16 needs a CUDA device" in capsys.readouterr().err
    assert cli_main(["train", "-O", "tau=1e5", "-O", "lamda=2", "--model", "ucat-tiny", "--device", "cpu",
                     "--data", str(image_folder), "--out", str(tmp_path / "bad-option")]) == 2
    assert "-O lamda: method 'ucat' has no such option(s)" in capsys.readouterr().err


def test_cli_config_file_with_overrides(image_folder, tmp_path, capsys):
    cfg = tmp_path / "recipe.yaml"
    cfg.write_text("method: pmg-aft\nmodel: ucat-tiny\nepochs: 1\nbatch_size: 8\nlr: 0.001\nwarmup_steps: 1\n"
                   "eps: 1\nattack_steps: 1\nmethod_options:\n  ref_weight: 0.5\n")
    out = tmp_path / "cli"
    rc = cli_main(["train", "--config", str(cfg), "--data", str(image_folder), "--max-steps", "1", "--device", "cpu",
                   "-O", "clean_weight=2", "--out", str(out), "--no-progress", "--precision", "bf16"])
    assert rc == 0
    assert "final.safetensors" in capsys.readouterr().out
    saved = (out / "config.yaml").read_text()
    assert "pmg-aft" in saved and "ref_weight: 0.5" in saved and "clean_weight: 2" in saved and "bf16" in saved


def test_torchrun_two_gloo_processes_end_identical(image_folder, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "ucat", "train", "--method", "tecoa",
           "--model", "ucat-tiny", "--data", str(image_folder), "--batch-size", "8", "--max-steps", "2",
           "--warmup-steps", "1", "--lr", "0.01", "--device", "cpu", "--no-progress", "--out", str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    digests = summary["rank_weight_digests"]
    assert summary["world_size"] == 2 and len(digests) == 2 and digests[0] == digests[1]
    from ucat.models import load_clip

    torch.manual_seed(0)
    start = load_clip("ucat-tiny").model.state_dict()
    final = load_file(str(out / "final.safetensors"))
    assert not torch.equal(final["visual.proj"], start["visual.proj"])   # it trained


@pytest.mark.parametrize("recipe", ["ucat", "tecoa", "pmg-aft", "fare", "tga-zsr"])
def test_shipped_recipes_parse_and_validate(recipe):
    """configs/*.yaml: keys are the CLI's, values validate, and the method accepts its options."""
    import argparse

    from ucat.config import apply_config_file
    from ucat.methods import method_options
    from ucat.commands.train import add_arguments, config_from_args

    path = Path(__file__).resolve().parents[1] / "configs" / f"{recipe}.yaml"
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    apply_config_file(parser, ["--config", str(path)])
    cfg = config_from_args(parser.parse_args(["--config", str(path)]))
    cfg.validate()
    assert cfg.method == recipe and cfg.model == "ViT-B-32" and cfg.pretrained == "openai"
    assert cfg.data == "tinyimagenet" and cfg.eps == 1 and cfg.attack_steps == 2 and cfg.epochs == 10
    assert set(cfg.method_options) <= set(method_options(recipe))


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_optimizer_uses_fused_kernels_and_matches_the_reference_update(name):
    from ucat.train.optim import make_optimizer

    torch.manual_seed(0)
    ref_params = [torch.nn.Parameter(torch.randn(7, 5)), torch.nn.Parameter(torch.randn(5))]
    params = [torch.nn.Parameter(p.detach().clone()) for p in ref_params]
    cfg = TrainConfig(optimizer=name, lr=0.05, weight_decay=0.01)
    opt = make_optimizer(cfg, params)
    ref = (torch.optim.SGD(ref_params, lr=0.05, momentum=cfg.momentum, weight_decay=0.01, foreach=False)
           if name == "sgd" else torch.optim.AdamW(ref_params, lr=0.05, weight_decay=0.01, foreach=False))
    if opt.defaults.get("fused") is not True:
        pytest.skip("this torch has no fused CPU kernel for " + name)
    for step in range(3):
        grads = [torch.randn_like(p) for p in params]
        for p, q, g in zip(params, ref_params, grads):
            p.grad, q.grad = g.clone(), g.clone()
        opt.step()
        ref.step()
    for p, q in zip(params, ref_params):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
