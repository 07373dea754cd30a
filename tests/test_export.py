"""`ucat export`: the open_clip Hugging Face layout loads with open_clip's own local-dir: loader and
gives the logits `ucat eval --checkpoint` computes; existing folders are never overwritten silently."""
import json

import open_clip
import pytest
import torch
import torch.nn.functional as F

from ucat.cli import main
from ucat.models import ZeroShotClassifier, load_clip
from ucat.models.checkpoint import export_open_clip, load_vision_weights
from ucat.models.hub import CONFIG_NAME, WEIGHTS_NAME, export_hub

CLASSES = ["red circle", "blue square", "green triangle"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, one_thread):
    """A 'fine-tuned' ucat-world: its image projection perturbed, saved as `ucat train` exports."""
    bundle = load_clip("ucat-world")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        bundle.model.visual.proj.add_(0.05 * torch.randn(bundle.model.visual.proj.shape, generator=g))
    path = tmp_path_factory.mktemp("run") / "final.safetensors"
    export_open_clip(bundle.model, path, {"method": "tecoa", "arch": "ucat-world", "pretrained": None, "eps": 4,
                                          "attack": "pgd", "attack_steps": 2, "attack_step_size": 4,
                                          "data": "world-train", "step": 7, "seed": 0})
    return path


def test_export_loads_in_open_clip_with_the_same_logits(checkpoint, tmp_path):
    out = export_hub(checkpoint, tmp_path / "hub")
    assert sorted(p.name for p in out.iterdir()) == sorted([CONFIG_NAME, WEIGHTS_NAME, "README.md"])
    # ucat's path: `ucat eval --model ucat-world --checkpoint final.safetensors`
    ours = load_clip("ucat-world")
    load_vision_weights(ours, checkpoint)
    clf = ZeroShotClassifier.from_bundle(ours, CLASSES, ["a photo of a {}."]).eval()
    # open_clip's own loader, nothing of ucat involved
    model, _, _ = open_clip.create_model_and_transforms(f"local-dir:{out}")
    tok = open_clip.get_tokenizer(f"local-dir:{out}")
    cfg = json.loads((out / CONFIG_NAME).read_text())
    mean = torch.tensor(cfg["preprocess_cfg"]["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(cfg["preprocess_cfg"]["std"]).view(1, 3, 1, 1)
    x = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    model.eval()
    with torch.no_grad():
        f = F.normalize(model.encode_image((x - mean) / std), dim=-1)
        t = F.normalize(model.encode_text(tok([f"a photo of a {c}." for c in CLASSES])), dim=-1)
        theirs = model.logit_scale.exp() * f @ t.t()
        assert torch.allclose(clf(x), theirs, atol=1e-4), (clf(x) - theirs).abs().max()


def test_model_card_and_refusals(checkpoint, tmp_path, capsys):
    out = tmp_path / "hub"
    assert main(["export", str(checkpoint), "--out", str(out), "--license", "mit"]) == 0
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: open_clip\npipeline_tag: zero-shot-image-classification\nlicense: mit")
    assert "tecoa" in card and "4/255 (L-inf)" in card and "world-train" in card and "hf upload" in card
    before = (out / WEIGHTS_NAME).read_bytes()
    assert main(["export", str(checkpoint), "--out", str(out)]) == 2               # exists: refused
    assert "exists" in capsys.readouterr().err and (out / WEIGHTS_NAME).read_bytes() == before
    assert main(["export", str(checkpoint), "--out", str(out), "--force"]) == 0
    assert main(["export", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) == 2
    assert "no checkpoint there" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]          # no temp folder left


def test_ucat_loads_an_exported_folder_as_local_dir(checkpoint, tmp_path, capsys):
    """`--model local-dir:DIR` (open_clip's id for a Hugging Face-layout folder) loads the export;
    a half-copied folder is one line naming what is missing."""
    out = export_hub(checkpoint, tmp_path / "hub")
    bundle = load_clip(f"local-dir:{out}")
    ours = load_clip("ucat-world")
    load_vision_weights(ours, checkpoint)
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.allclose(bundle.encoder(x), ours.encoder(x), atol=1e-5)
    half = tmp_path / "half"
    half.mkdir()
    (half / CONFIG_NAME).write_text((out / CONFIG_NAME).read_text())
    assert main(["eval", "--model", f"local-dir:{half}", "--out", str(tmp_path / "o")]) == 2
    assert "lacks open_clip_model.safetensors" in capsys.readouterr().err
