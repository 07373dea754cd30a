"""CLIP loading, the zero-shot classifier and its text head."""
import pytest
import torch
import torch.nn.functional as F

from ucat.models import ZeroShotClassifier, build_text_head, load_clip, make_prompts
from ucat.models.zero_shot import cached_text_head


def test_logits_are_scaled_cosines_and_batch_invariant(tiny_classifier, tiny_bundle):
    torch.manual_seed(0)
    x = torch.rand(7, 3, 32, 32)
    logits = tiny_classifier(x)
    assert logits.shape == (7, 5)
    # logits = s * cos(f(x), t_c) with f the normalized-pixel image tower
    mean = torch.tensor(tiny_bundle.mean).view(1, 3, 1, 1)
    std = torch.tensor(tiny_bundle.std).view(1, 3, 1, 1)
    f = F.normalize(tiny_bundle.model.encode_image((x - mean) / std), dim=-1)
    ref = tiny_classifier.logit_scale * f @ tiny_classifier.text_head.t()
    torch.testing.assert_close(logits, ref, rtol=1e-5, atol=1e-5)
    # independent of batch size and of the order of images in the batch
    one_by_one = torch.cat([tiny_classifier(x[i:i + 1]) for i in range(7)])
    torch.testing.assert_close(one_by_one, logits, rtol=1e-5, atol=1e-5)
    perm = torch.randperm(7)
    torch.testing.assert_close(tiny_classifier(x[perm]), logits[perm], rtol=1e-5, atol=1e-5)


def test_text_head_is_mean_of_normalized_prompt_embeddings(tiny_bundle):
    prompts = make_prompts(["cat", "dog"], ["a photo of a {}.", "a drawing of a {}."])
    assert prompts[1] == ["a photo of a dog.", "a drawing of a dog."]
    head = build_text_head(tiny_bundle.model, tiny_bundle.tokenizer, prompts)
    with torch.no_grad():
        e = F.normalize(tiny_bundle.model.encode_text(tiny_bundle.tokenizer(prompts[0])), dim=-1)
    torch.testing.assert_close(head[0], F.normalize(e.mean(0), dim=0), rtol=1e-5, atol=1e-6)
    assert torch.allclose(head.norm(dim=-1), torch.ones(2))


def test_text_head_is_a_buffer_not_recomputed(tiny_classifier, monkeypatch):
    calls = []
    import open_clip

    monkeypatch.setattr(open_clip.CLIP, "encode_text", lambda *a, **k: calls.append(1))
    tiny_classifier(torch.rand(2, 3, 32, 32))
    assert calls == []
    assert "text_head" in dict(tiny_classifier.named_buffers())
    assert not tiny_classifier.text_head.requires_grad


def test_text_head_cache_round_trip(tiny_bundle, tmp_path):
    prompts = make_prompts(["a", "b", "c"], ["{}"])
    h1 = cached_text_head(tiny_bundle.model, tiny_bundle.tokenizer, prompts, cache_dir=tmp_path)
    files = list(tmp_path.glob("text_head_*.safetensors"))
    assert len(files) == 1
    h2 = cached_text_head(tiny_bundle.model, tiny_bundle.tokenizer, prompts, cache_dir=tmp_path)
    torch.testing.assert_close(h1, h2)
    cached_text_head(tiny_bundle.model, tiny_bundle.tokenizer, make_prompts(["a", "b"], ["{}"]), cache_dir=tmp_path)
    assert len(list(tmp_path.glob("text_head_*.safetensors"))) == 2     # keyed by prompts


def test_pixels_in_unit_range_and_resize_inside_model(tiny_bundle):
    enc = tiny_bundle.encoder
    x64 = torch.rand(2, 3, 64, 64)
    x32 = F.interpolate(x64, size=(32, 32), mode="bicubic", align_corners=False)
    with torch.no_grad():
        torch.testing.assert_close(enc(x64), enc(x32), rtol=1e-5, atol=1e-5)
    t = tiny_bundle.transform()
    from PIL import Image

    img = Image.new("RGB", (50, 40), (255, 0, 0))
    out = t(img)
    assert out.shape == (3, 32, 32) and out.min() >= 0 and out.max() <= 1
    assert out[0].mean() == pytest.approx(1.0)


def test_weights_round_trip_through_local_files(tiny_bundle, tmp_path):
    from safetensors.torch import save_file

    sd = {k: v.contiguous() for k, v in tiny_bundle.model.state_dict().items()}
    st, pt = tmp_path / "w.safetensors", tmp_path / "w.pt"
    save_file(sd, str(st))
    torch.save(sd, pt)
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        ref = tiny_bundle.encoder(x)
        for path in (st, pt):
            b = load_clip("ucat-tiny", pretrained=str(path))
            torch.testing.assert_close(b.encoder(x), ref)
            assert b.pretrained == str(path)


@pytest.mark.parametrize("model,pretrained,exc,match", [
    ("no-such-arch", None, ValueError, "unknown architecture"),
    ("ViT-B/32", None, ValueError, "Did you mean"),
    ("", None, ValueError, "--model is empty"),
    ("ucat-tiny", "missing/weights.safetensors", FileNotFoundError, "no such weights file"),
    ("ViT-B-32", "not-a-tag", ValueError, "not a known tag"),
    ("ViT-B-32", "openai", RuntimeError, "Pass a local weights file"),
])
def test_bad_model_arguments_fail_at_once_with_the_fix(model, pretrained, exc, match, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import time

    t = time.time()
    with pytest.raises(exc, match=match):
        load_clip(model, pretrained)
    assert time.time() - t < 10


def test_empty_class_names_or_templates_are_errors(tiny_bundle):
    with pytest.raises(ValueError, match="class names are empty"):
        ZeroShotClassifier.from_bundle(tiny_bundle, [], ["{}"])
    with pytest.raises(ValueError, match="templates are empty"):
        ZeroShotClassifier.from_bundle(tiny_bundle, ["a"], [])
    with pytest.raises(ValueError, match="placeholder"):
        ZeroShotClassifier.from_bundle(tiny_bundle, ["a"], ["a photo"])
