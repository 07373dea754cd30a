"""The registry of published robust checkpoints: facts consistent, an offline user told exactly
what to fetch, and a file in the published shape (a bare vision state dict, .pt) loaded once present."""
import open_clip
import pytest
import torch

from ucat.cli import main
from ucat.models import ZeroShotClassifier, load_clip
from ucat.models import robust as R
from ucat.models.checkpoint import load_vision_weights


def test_registry_facts_are_consistent():
    assert len(R.ROBUST) == 14
    for name, c in R.ROBUST.items():
        assert name == c.name and c.method in ("tecoa", "fare") and c.eps in (1, 2, 4)
        assert (c.url is None) == (c.filename is None) and (c.url or c.hub)
        assert c.arch in open_clip.list_models()
        assert c.base in open_clip.list_pretrained_tags_by_model(c.arch), (c.arch, c.base)
        if c.url:
            assert c.filename.endswith(".pt") and c.method in c.filename and f"eps_{c.eps:g}" in c.filename


def test_missing_file_says_what_to_fetch_and_where(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(R.ENV_WEIGHTS, str(tmp_path))
    with pytest.raises(R.CheckpointNotDownloaded) as e:
        R.resolve_robust("fare4-b32")
    msg = str(e.value)
    assert R.ROBUST["fare4-b32"].url in msg and str(tmp_path / "vitb32_fare_eps_4.pt") in msg
    assert R.resolve_robust("fare4-b32-laion") == ("hf-hub:chs20/FARE4-ViT-B-32-laion2B-s34B-b79K", None, None)
    with pytest.raises(KeyError, match="known"):
        R.resolve_robust("fare5")
    assert main(["models", "--robust", "--filter", "fare4"]) == 0
    out = capsys.readouterr().out
    assert "fare4-l14" in out and "fare4-b32-laion" in out and "fare2" not in out and str(tmp_path) in out


def test_a_published_shape_file_loads_once_present(tmp_path, monkeypatch, tiny_bundle):
    """A RobustVLM-style .pt (``torch.save(model.visual.state_dict())``), here for the tiny arch."""
    fake = R.RobustCheckpoint("fake1-tiny", "ucat-tiny", "none", "fare", "test", 1, "test",
                              url="https://example.invalid/s/x/download/tiny_fare_eps_1.pt")
    monkeypatch.setitem(R.ROBUST, fake.name, fake)
    monkeypatch.setenv(R.ENV_WEIGHTS, str(tmp_path))
    g = torch.Generator().manual_seed(0)
    visual = {k: v + 0.01 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v
              for k, v in tiny_bundle.model.visual.state_dict().items()}
    torch.save(visual, tmp_path / fake.filename)
    arch, _, ckpt = R.resolve_robust("fake1-tiny")
    bundle = load_clip(arch, None)
    load_vision_weights(bundle, ckpt)
    for k, v in bundle.model.visual.state_dict().items():
        assert torch.equal(v, visual[k])
    clf = ZeroShotClassifier.from_bundle(bundle, ["a", "b"], ["{}"])
    assert torch.isfinite(clf(torch.rand(2, 3, 32, 32))).all()


def test_ucat_eval_by_name_says_what_to_fetch(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(R.ENV_WEIGHTS, str(tmp_path / "weights"))
    assert main(["eval", "--model", "tecoa4-b32", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "vitb32_tecoa_eps_4.pt" in err and str(tmp_path / "weights") in err and not (tmp_path / "out").exists()


def test_pretrained_vision_state_dict_on_a_base(tmp_path, tiny_bundle, capsys):
    """--pretrained FILE --base TAG: a RobustVLM-shaped file (visual. prefix, wrapped in a dict) on its base."""
    state = {"state_dict": {f"visual.{k}": v for k, v in tiny_bundle.model.visual.state_dict().items()}}
    f = tmp_path / "fare_like.pt"
    torch.save(state, f)
    out = tmp_path / "out"
    assert main(["eval", "--model", "ucat-tiny", "--pretrained", str(f), "--base", "none", "--datasets", "world-shape",
                 "--n-samples", "8", "--attacks", "none", "--out", str(out), "--no-progress", "--no-plots"]) == 0
    assert list(out.rglob("none-eps0.json"))
    wrong = tmp_path / "wrong.pt"
    torch.save({"visual.proj": torch.zeros(3, 3)}, wrong)
    assert main(["eval", "--model", "ucat-tiny", "--pretrained", str(wrong), "--base", "none",
                 "--out", str(tmp_path / "o2")]) == 2
    assert "wrong.pt" in capsys.readouterr().err
